//! JSON and JSON Lines: records flattened into readable `key: value` lines.

use super::structured::{OValue, flatten, title_field, value_blocks};
use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, decode};

/// JSON (`.json`): a top-level array gives one Record per element; a top-level object one
/// Record per field (an array of objects under a field: one Record per element).
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonParser;

/// JSON Lines (`.jsonl`, `.ndjson`): each non-empty line is one Record.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonlParser;

fn json_error(e: &serde_json::Error, line_offset: usize) -> ParseError {
    ParseError::Syntax {
        format: "JSON",
        line: e.line() + line_offset,
        column: e.column(),
        message: e.to_string(),
    }
}

impl Parser for JsonParser {
    fn name(&self) -> &'static str {
        "json"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["json"]
    }
    fn mime(&self) -> &'static str {
        "application/json"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let text = decode(bytes);
        let v: OValue = serde_json::from_str(&text).map_err(|e| json_error(&e, 0))?;
        let mut b = DocBuilder::new();
        value_blocks(&v, &mut b);
        let mut meta = serde_json::Map::new();
        match &v {
            OValue::Object(_) => {
                let keys = v.keys().into_iter().map(serde_json::Value::from);
                meta.insert("top_level_keys".into(), keys.collect::<Vec<_>>().into());
            }
            OValue::Array(a) => {
                meta.insert("record_count".into(), a.len().into());
            }
            _ => {}
        }
        let title = title_field(&v);
        Ok(b.finish(title, meta))
    }
}

impl Parser for JsonlParser {
    fn name(&self) -> &'static str {
        "jsonl"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["jsonl", "ndjson"]
    }
    fn mime(&self) -> &'static str {
        "application/jsonl"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let text = decode(bytes);
        let mut b = DocBuilder::new();
        let mut n = 0usize;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: OValue = serde_json::from_str(line).map_err(|e| json_error(&e, i))?;
            b.push_with_path(Vec::new(), BlockKind::Record, &flatten(&v));
            n += 1;
        }
        let mut meta = serde_json::Map::new();
        meta.insert("record_count".into(), n.into());
        Ok(b.finish(None, meta))
    }
}
