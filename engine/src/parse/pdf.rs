//! PDF through `lopdf`: the text layer of each page, in page order, under a section `Page N`
//! (so a search hit names its page). A scanned page without a text layer yields nothing; a PDF
//! that needs a password is `Encrypted` (one with an empty user password opens as usual).

use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, collapse_ws};

/// PDF (`.pdf`).
#[derive(Debug, Default, Clone, Copy)]
pub struct PdfParser;

const FORMAT: &str = "PDF";

/// The most one content stream may inflate to (lopdf's own guard against decompression bombs).
const MAX_STREAM_BYTES: usize = 64 * 1024 * 1024;

/// A string from the document information dictionary (`/Title`, `/Author`).
fn info(doc: &lopdf::Document, key: &[u8]) -> Option<String> {
    let dict = doc
        .trailer
        .get(b"Info")
        .and_then(|o| o.as_reference())
        .and_then(|id| doc.get_dictionary(id))
        .ok()?;
    let raw = dict.get(key).ok()?;
    let text = lopdf::decode_text_string(raw).ok()?;
    let text = collapse_ws(&text);
    (!text.is_empty()).then_some(text)
}

/// Splits a page's extracted text into paragraphs: blank lines separate them; lines inside a
/// paragraph are joined (PDF text arrives line by line, wrapped where the page wrapped it).
fn page_paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if !cur.is_empty() {
                out.push(cur.join(" "));
                cur.clear();
            }
        } else {
            cur.push(line);
        }
    }
    if !cur.is_empty() {
        out.push(cur.join(" "));
    }
    out
}

impl Parser for PdfParser {
    fn name(&self) -> &'static str {
        "pdf"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["pdf"]
    }
    fn mime(&self) -> &'static str {
        "application/pdf"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let doc = lopdf::Document::load_mem(bytes).map_err(|e| match e {
            lopdf::Error::InvalidPassword | lopdf::Error::Decryption(_) => ParseError::Encrypted {
                format: FORMAT,
                message: e.to_string(),
            },
            other => ParseError::Corrupt {
                format: FORMAT,
                message: other.to_string(),
            },
        })?;
        // lopdf tries the empty user password itself; still encrypted afterwards means a real
        // password is needed.
        if doc.is_encrypted() && !doc.was_encrypted() {
            return Err(ParseError::Encrypted {
                format: FORMAT,
                message: "the document needs a password to open".into(),
            });
        }
        let mut b = DocBuilder::new();
        let pages = doc.get_pages();
        let mut empty_pages = 0usize;
        for &n in pages.keys() {
            let text = doc
                .extract_text_with_limit(&[n], MAX_STREAM_BYTES)
                .map_err(|e| ParseError::Corrupt {
                    format: FORMAT,
                    message: format!("page {n}: {e}"),
                })?;
            let paras = page_paragraphs(&text);
            if paras.is_empty() {
                empty_pages += 1;
            }
            for p in paras {
                b.push_with_path(vec![format!("Page {n}")], BlockKind::Paragraph, &p);
            }
        }
        let mut meta = serde_json::Map::new();
        meta.insert("page_count".into(), pages.len().into());
        if empty_pages > 0 {
            // Usually scanned pages: say so, since their text is not searchable.
            meta.insert("pages_without_text".into(), empty_pages.into());
        }
        if let Some(a) = info(&doc, b"Author") {
            meta.insert("author".into(), a.into());
        }
        Ok(b.finish(info(&doc, b"Title"), meta))
    }
}
