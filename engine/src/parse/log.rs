//! Log files: one Record per entry. An entry starts at a line beginning with a timestamp, a
//! level or a bracket; indented lines (stack traces) continue the previous entry.

use std::sync::LazyLock;

use regex::Regex;

use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, decode};

/// Log files (`.log`).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogParser;

static ENTRY_START: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:\d{4}-\d{2}-\d{2}|\d{2}/\d{2}/\d{4}|[a-z]{3} +\d{1,2} \d{2}:\d{2}|\d{2}:\d{2}:\d{2}|\[|\{|(?:trace|debug|info|warn|warning|error|fatal|critical)\b)",
    )
    .ok()
});
static LEVEL: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\b(TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL|CRITICAL)\b").ok());

/// Entries longer than this many lines are split, so a giant log never forms one block.
const MAX_ENTRY_LINES: usize = 50;

impl Parser for LogParser {
    fn name(&self) -> &'static str {
        "log"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["log"]
    }
    fn mime(&self) -> &'static str {
        "text/x-log"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let text = decode(bytes);
        let mut b = DocBuilder::new();
        let mut entry: Vec<&str> = Vec::new();
        let mut levels: std::collections::BTreeMap<String, u64> = Default::default();
        let mut entries = 0u64;
        let starts = |l: &str| ENTRY_START.as_ref().is_some_and(|re| re.is_match(l));
        for line in text.lines() {
            if line.trim().is_empty() {
                continue;
            }
            let new_entry = !line.starts_with([' ', '\t']) && starts(line);
            if (new_entry || entry.len() >= MAX_ENTRY_LINES) && !entry.is_empty() {
                b.push(BlockKind::Record, &entry.join("\n"));
                entry.clear();
            }
            if new_entry {
                entries += 1;
                if let Some(m) = LEVEL.as_ref().and_then(|re| re.find(line)) {
                    let lvl = match m.as_str() {
                        "WARNING" => "WARN",
                        other => other,
                    };
                    *levels.entry(lvl.to_ascii_lowercase()).or_default() += 1;
                }
            }
            entry.push(line);
        }
        if !entry.is_empty() {
            b.push(BlockKind::Record, &entry.join("\n"));
        }
        let mut meta = serde_json::Map::new();
        meta.insert("log_entries".into(), entries.into());
        meta.insert(
            "log_levels".into(),
            serde_json::Value::Object(
                levels
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::from(v)))
                    .collect(),
            ),
        );
        Ok(b.finish(None, meta))
    }
}
