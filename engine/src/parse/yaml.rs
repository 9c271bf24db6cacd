//! YAML (one or more documents): flattened like JSON.

use serde::Deserialize;

use super::structured::{title_field, value_blocks, yaml_to_ovalue};
use super::{DocBuilder, ParseError, ParsedDocument, Parser, decode};

/// YAML (`.yaml`, `.yml`).
#[derive(Debug, Default, Clone, Copy)]
pub struct YamlParser;

impl Parser for YamlParser {
    fn name(&self) -> &'static str {
        "yaml"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["yaml", "yml"]
    }
    fn mime(&self) -> &'static str {
        "application/yaml"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let text = decode(bytes);
        let mut b = DocBuilder::new();
        let mut title = None;
        let mut docs = 0usize;
        for de in serde_norway::Deserializer::from_str(&text) {
            let v = serde_norway::Value::deserialize(de).map_err(|e| {
                let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                ParseError::Syntax {
                    format: "YAML",
                    line,
                    column,
                    message: e.to_string(),
                }
            })?;
            let v = yaml_to_ovalue(v);
            title = title.or_else(|| title_field(&v));
            value_blocks(&v, &mut b);
            docs += 1;
        }
        let mut meta = serde_json::Map::new();
        meta.insert("yaml_documents".into(), docs.into());
        Ok(b.finish(title, meta))
    }
}
