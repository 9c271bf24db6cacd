//! E-mail through `mail-parser`: a single message (`.eml`) or a mailbox of them (`.mbox`).
//! Headers become metadata and a header Record; the body (plain text, or HTML turned into text
//! by the crate) becomes paragraphs; attachments are listed in the text and metadata and handed
//! to ingest as [`Attachment`]s, which it takes as documents of their own when their type is
//! supported (and reports when not).

use std::io::Cursor;

use mail_parser::mailbox::mbox::MessageIterator;
use mail_parser::{Address, Message, MessageParser, MimeHeaders};

use super::{Attachment, BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, collapse_ws};

/// A single e-mail message (`.eml`).
#[derive(Debug, Default, Clone, Copy)]
pub struct EmlParser;

/// A Unix mailbox (`.mbox`): messages separated by `From ` lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct MboxParser;

fn addresses(a: Option<&Address<'_>>) -> Vec<String> {
    let Some(a) = a else {
        return Vec::new();
    };
    a.iter()
        .filter_map(|addr| match (addr.name(), addr.address()) {
            (Some(n), Some(e)) => Some(format!("{n} <{e}>")),
            (None, Some(e)) => Some(e.to_string()),
            (Some(n), None) => Some(n.to_string()),
            (None, None) => None,
        })
        .collect()
}

/// What one message contributes: its header lines, metadata, body paragraphs and attachments.
struct Mail {
    subject: Option<String>,
    headers: Vec<String>,
    meta: serde_json::Map<String, serde_json::Value>,
    body: Vec<String>,
    attachments: Vec<Attachment>,
    listing: Vec<String>,
}

fn read_message(msg: &Message<'_>) -> Mail {
    let mut meta = serde_json::Map::new();
    let mut headers = Vec::new();
    let subject = msg.subject().map(collapse_ws).filter(|s| !s.is_empty());
    for (key, list) in [
        ("from", addresses(msg.from())),
        ("to", addresses(msg.to())),
        ("cc", addresses(msg.cc())),
    ] {
        if list.is_empty() {
            continue;
        }
        let label = format!("{}{}", key[..1].to_ascii_uppercase(), &key[1..]);
        headers.push(format!("{label}: {}", list.join(", ")));
        let value = if key == "from" && list.len() == 1 {
            serde_json::Value::from(list[0].clone())
        } else {
            list.into_iter().map(serde_json::Value::from).collect()
        };
        meta.insert(key.into(), value);
    }
    if let Some(d) = msg.date() {
        headers.push(format!("Date: {}", d.to_rfc3339()));
        meta.insert("date".into(), d.to_rfc3339().into());
    }
    if let Some(s) = &subject {
        headers.push(format!("Subject: {s}"));
        meta.insert("subject".into(), s.clone().into());
    }
    if let Some(id) = msg.message_id() {
        meta.insert("message_id".into(), id.into());
    }
    let body = msg
        .body_text(0)
        .map(|t| {
            super::decode(t.as_bytes())
                .split("\n\n")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut attachments = Vec::new();
    let mut listing = Vec::new();
    let mut listed_meta = Vec::new();
    for (i, part) in msg.attachments().enumerate() {
        let ctype = part
            .content_type()
            .map(|c| match c.subtype() {
                Some(s) => format!("{}/{s}", c.ctype()),
                None => c.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        let name = match part.attachment_name() {
            Some(n) if !n.trim().is_empty() => n.trim().to_string(),
            _ if part.is_message() => format!("attached-message-{}.eml", i + 1),
            _ => format!("attachment-{}", i + 1),
        };
        let bytes = part.contents().to_vec();
        listing.push(format!("{name} ({ctype}, {} bytes)", bytes.len()));
        listed_meta.push(serde_json::json!({
            "name": name,
            "content_type": ctype,
            "size_bytes": bytes.len(),
        }));
        attachments.push(Attachment { name, bytes });
    }
    if !listed_meta.is_empty() {
        meta.insert("attachments".into(), listed_meta.into());
    }
    Mail {
        subject,
        headers,
        meta,
        body,
        attachments,
        listing,
    }
}

fn unreadable(format: &'static str) -> ParseError {
    ParseError::Corrupt {
        format,
        message: "no message headers could be read".into(),
    }
}

/// Adds one message's blocks under the current section.
fn push_mail(b: &mut DocBuilder, m: &Mail) {
    b.push(BlockKind::Record, &m.headers.join("\n"));
    for p in &m.body {
        b.push(BlockKind::Paragraph, p);
    }
    if !m.listing.is_empty() {
        b.push(
            BlockKind::ListItem,
            &format!("Attachments: {}", m.listing.join("; ")),
        );
    }
}

impl Parser for EmlParser {
    fn name(&self) -> &'static str {
        "eml"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["eml"]
    }
    fn mime(&self) -> &'static str {
        "message/rfc822"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let msg = MessageParser::default()
            .parse(bytes)
            .ok_or_else(|| unreadable("EML"))?;
        let m = read_message(&msg);
        if m.headers.is_empty() && m.body.is_empty() {
            return Err(unreadable("EML"));
        }
        let mut b = DocBuilder::new();
        push_mail(&mut b, &m);
        let mut doc = b.finish(m.subject.clone(), m.meta);
        doc.attachments = m.attachments;
        Ok(doc)
    }
}

impl Parser for MboxParser {
    fn name(&self) -> &'static str {
        "mbox"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["mbox"]
    }
    fn mime(&self) -> &'static str {
        "application/mbox"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let mut b = DocBuilder::new();
        let mut attachments = Vec::new();
        let mut count = 0usize;
        for (i, entry) in MessageIterator::new(Cursor::new(bytes)).enumerate() {
            let Ok(entry) = entry else {
                continue;
            };
            let Some(msg) = MessageParser::default().parse(entry.contents()) else {
                continue;
            };
            let m = read_message(&msg);
            count += 1;
            let date = m.meta.get("date").and_then(|d| d.as_str()).unwrap_or("");
            let subject = m.subject.as_deref().unwrap_or("(no subject)");
            // Subjects repeat in a thread; the date tells the messages apart.
            let heading = if date.is_empty() {
                format!("{}. {subject}", i + 1)
            } else {
                format!("{}. {subject} ({date})", i + 1)
            };
            b.heading(1, &heading);
            push_mail(&mut b, &m);
            // Attachments of different messages may share a name.
            attachments.extend(m.attachments.into_iter().map(|a| Attachment {
                name: format!("message-{}/{}", i + 1, a.name),
                bytes: a.bytes,
            }));
        }
        if count == 0 && !bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ParseError::Corrupt {
                format: "MBOX",
                message: "no message found (each must start with a `From ` line)".into(),
            });
        }
        let mut meta = serde_json::Map::new();
        meta.insert("message_count".into(), count.into());
        let mut doc = b.finish(None, meta);
        doc.title = None;
        doc.attachments = attachments;
        Ok(doc)
    }
}
