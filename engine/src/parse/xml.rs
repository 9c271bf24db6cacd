//! XML: text content only (element names are not emitted). Text gathered from leaf elements
//! forms a paragraph when the enclosing element closes; `title`/`heading` elements become
//! headings at their nesting depth.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::{
    BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, collapse_ws, decode, line_col,
};

/// XML (`.xml`).
#[derive(Debug, Default, Clone, Copy)]
pub struct XmlParser;

const FORMAT: &str = "XML";

fn syntax(text: &str, pos: u64, message: String) -> ParseError {
    let (line, column) = line_col(text, usize::try_from(pos).unwrap_or(usize::MAX));
    ParseError::Syntax {
        format: FORMAT,
        line,
        column,
        message,
    }
}

impl Parser for XmlParser {
    fn name(&self) -> &'static str {
        "xml"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["xml"]
    }
    fn mime(&self) -> &'static str {
        "application/xml"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let text = decode(bytes);
        let mut reader = Reader::from_str(&text);
        reader.config_mut().check_end_names = true;
        let mut b = DocBuilder::new();
        let mut meta = serde_json::Map::new();
        // Per open element: (is heading element, has child elements).
        let mut open: Vec<(bool, bool)> = Vec::new();
        // Depths of elements that contain a heading: their section ends with them.
        let mut section_depths: Vec<usize> = Vec::new();
        // Number of open heading elements (text inside goes to the heading).
        let mut headings_open = 0usize;
        let mut buf = String::new();
        let mut heading_buf = String::new();
        loop {
            let ev = reader
                .read_event()
                .map_err(|e| syntax(&text, reader.error_position(), e.to_string()))?;
            let in_heading = headings_open > 0;
            match ev {
                Event::Start(e) => {
                    let name =
                        String::from_utf8_lossy(e.local_name().as_ref()).to_ascii_lowercase();
                    if open.is_empty() {
                        meta.insert("root_element".into(), name.clone().into());
                    }
                    if let Some(parent) = open.last_mut() {
                        parent.1 = true;
                    }
                    let is_heading = matches!(
                        name.as_str(),
                        "title" | "heading" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6"
                    );
                    if is_heading && !in_heading {
                        b.push(BlockKind::Paragraph, &collapse_ws(&buf));
                        buf.clear();
                    }
                    open.push((is_heading, false));
                    headings_open += usize::from(is_heading);
                }
                Event::Empty(_) => {
                    if let Some(parent) = open.last_mut() {
                        parent.1 = true;
                    }
                    buf.push(' ');
                }
                Event::End(_) => {
                    let (is_heading, has_children) = open.pop().unwrap_or((false, false));
                    headings_open -= usize::from(is_heading);
                    if is_heading && headings_open == 0 {
                        let level = open.len().max(1);
                        b.heading(level, &collapse_ws(&heading_buf));
                        heading_buf.clear();
                        if section_depths.last() != Some(&level) {
                            section_depths.push(level);
                        }
                    } else if has_children || matches!(open.len(), 0) {
                        b.push(BlockKind::Paragraph, &collapse_ws(&buf));
                        buf.clear();
                        // The element that held a heading closes: its section ends.
                        let depth = open.len() + 1;
                        if section_depths.last() == Some(&depth) {
                            section_depths.pop();
                            b.end_section(depth);
                        }
                    } else {
                        buf.push(' ');
                    }
                }
                Event::Text(t) => {
                    let s = t
                        .decode()
                        .map_err(|e| syntax(&text, reader.buffer_position(), e.to_string()))?;
                    if in_heading {
                        heading_buf.push_str(&s)
                    } else {
                        buf.push_str(&s)
                    }
                }
                Event::CData(t) => {
                    let s = String::from_utf8_lossy(&t);
                    if in_heading {
                        heading_buf.push_str(&s)
                    } else {
                        buf.push_str(&s)
                    }
                }
                Event::GeneralRef(r) => {
                    let resolved = if r.is_char_ref() {
                        r.resolve_char_ref().ok().flatten().map(String::from)
                    } else {
                        let name = String::from_utf8_lossy(&r).into_owned();
                        quick_xml::escape::resolve_xml_entity(&name).map(str::to_string)
                    };
                    let s = resolved.unwrap_or_default();
                    if in_heading {
                        heading_buf.push_str(&s)
                    } else {
                        buf.push_str(&s)
                    }
                }
                Event::Eof => break,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
        if !open.is_empty() {
            return Err(syntax(
                &text,
                text.len() as u64,
                "unexpected end of document: unclosed element".into(),
            ));
        }
        b.push(BlockKind::Paragraph, &collapse_ws(&buf));
        Ok(b.finish(None, meta))
    }
}
