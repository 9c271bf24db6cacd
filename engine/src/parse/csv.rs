//! CSV and TSV: header-aware; each row is a Record `col: value; col: value`.

use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, decode};

/// CSV (`.csv`).
#[derive(Debug, Default, Clone, Copy)]
pub struct CsvParser;

/// TSV (`.tsv`, `.tab`).
#[derive(Debug, Default, Clone, Copy)]
pub struct TsvParser;

fn parse_delimited(
    bytes: &[u8],
    delimiter: u8,
    format: &'static str,
) -> Result<ParsedDocument, ParseError> {
    let text = decode(bytes);
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(false)
        // TSV has no quoting convention: a `"` is an ordinary character there.
        .quoting(delimiter != b'\t')
        .from_reader(text.as_bytes());
    let err = |e: csv::Error| {
        let (line, column, message) = match e.kind() {
            csv::ErrorKind::UnequalLengths {
                pos,
                expected_len,
                len,
            } => (
                pos.as_ref()
                    .map_or(0, |p| usize::try_from(p.line()).unwrap_or(0)),
                usize::try_from((*expected_len).min(*len)).unwrap_or(0) + 1,
                format!("row has {len} fields, expected {expected_len}"),
            ),
            _ => (
                e.position()
                    .map_or(0, |p| usize::try_from(p.line()).unwrap_or(0)),
                0,
                e.to_string(),
            ),
        };
        ParseError::Syntax {
            format,
            line,
            column,
            message,
        }
    };
    let mut records = rdr.records();
    let mut b = DocBuilder::new();
    let mut meta = serde_json::Map::new();
    let Some(first) = records.next() else {
        return Ok(b.finish(None, meta));
    };
    let first = first.map_err(err)?;
    // A first row with a numeric field is data, not a header.
    let has_header = !first
        .iter()
        .any(|f| !f.trim().is_empty() && f.trim().parse::<f64>().is_ok());
    let columns: Vec<String> = if has_header {
        first
            .iter()
            .enumerate()
            .map(|(i, c)| match c.trim() {
                "" => format!("column{}", i + 1),
                c => c.to_string(),
            })
            .collect()
    } else {
        (1..=first.len()).map(|i| format!("column{i}")).collect()
    };
    let row_text = |rec: &csv::StringRecord| {
        columns
            .iter()
            .zip(rec.iter())
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(c, v)| format!("{c}: {}", v.trim()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut rows = 0usize;
    if !has_header {
        b.push(BlockKind::Record, &row_text(&first));
        rows += 1;
    }
    for rec in records {
        let rec = rec.map_err(err)?;
        b.push(BlockKind::Record, &row_text(&rec));
        rows += 1;
    }
    meta.insert(
        "columns".into(),
        columns
            .iter()
            .cloned()
            .map(serde_json::Value::from)
            .collect::<Vec<_>>()
            .into(),
    );
    meta.insert("row_count".into(), rows.into());
    meta.insert("has_header".into(), has_header.into());
    Ok(b.finish(None, meta))
}

impl Parser for CsvParser {
    fn name(&self) -> &'static str {
        "csv"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["csv"]
    }
    fn mime(&self) -> &'static str {
        "text/csv"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        parse_delimited(bytes, b',', "CSV")
    }
}

impl Parser for TsvParser {
    fn name(&self) -> &'static str {
        "tsv"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["tsv", "tab"]
    }
    fn mime(&self) -> &'static str {
        "text/tab-separated-values"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        parse_delimited(bytes, b'\t', "TSV")
    }
}
