//! RTF through `rtf-parser`: the document's text, one paragraph per `\par`.

use std::sync::LazyLock;

use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, decode};

/// RTF (`.rtf`).
#[derive(Debug, Default, Clone, Copy)]
pub struct RtfParser;

const FORMAT: &str = "RTF";

/// `\par` not followed by a letter (so not `\pard`). The crate drops `\par` but keeps `\line`
/// as a newline; paragraph ends are what this parser splits on, so `\par` becomes a blank line.
static PAR: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r"\\par([^a-zA-Z]|$)").ok());

impl Parser for RtfParser {
    fn name(&self) -> &'static str {
        "rtf"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["rtf"]
    }
    fn mime(&self) -> &'static str {
        "application/rtf"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let src = decode(bytes);
        if !src.trim_start().starts_with("{\\rtf") {
            return Err(ParseError::Corrupt {
                format: FORMAT,
                message: "the file does not start with `{\\rtf`".into(),
            });
        }
        let src = match PAR.as_ref() {
            Some(re) => re.replace_all(&src, "\\line\\line$1").into_owned(),
            None => src,
        };
        // The crate indexes and unwraps in places (e.g. on an unpaired UTF-16 escape); a damaged
        // file must be reported as corrupt, not take the ingest down with it.
        let parsed = std::panic::catch_unwind(|| rtf_parser::RtfDocument::try_from(src.as_str()))
            .map_err(|_| ParseError::Corrupt {
                format: FORMAT,
                message: "the RTF reader could not make sense of the file".into(),
            })?
            .map_err(|e| ParseError::Corrupt {
                format: FORMAT,
                message: e.to_string(),
            })?;
        let text = decode(parsed.get_text().as_bytes());
        let mut b = DocBuilder::new();
        for para in text.split("\n\n") {
            b.push(BlockKind::Paragraph, para);
        }
        Ok(b.finish(None, serde_json::Map::new()))
    }
}
