//! Spreadsheets (XLSX, XLSM, XLSB, XLS, ODS) through `calamine`: each sheet is a section, each
//! row a Record `column: value; column: value`, like the CSV parser (the first row names the
//! columns unless it holds a number).

use std::io::Cursor;

use calamine::{Data, Ods, OdsError, Range, Reader, Xls, XlsError, Xlsb, Xlsx};

use super::package::{is_encrypted_ooxml, is_ole};
use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser};

/// Spreadsheets (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SpreadsheetParser;

const FORMAT: &str = "spreadsheet";

fn corrupt(e: impl std::fmt::Display) -> ParseError {
    ParseError::Corrupt {
        format: FORMAT,
        message: e.to_string(),
    }
}

fn encrypted() -> ParseError {
    ParseError::Encrypted {
        format: FORMAT,
        message: "the workbook is password-protected".into(),
    }
}

/// Every sheet's name and cells. The reader is picked from the bytes (not the extension), so a
/// misnamed workbook still opens, and each reader's own password error is seen.
fn sheets(bytes: &[u8]) -> Result<Vec<(String, Range<Data>)>, ParseError> {
    let cursor = Cursor::new(bytes);
    if is_encrypted_ooxml(bytes) {
        return Err(encrypted());
    }
    if is_ole(bytes) {
        let mut wb: Xls<_> = match Xls::new(cursor) {
            Ok(wb) => wb,
            Err(XlsError::Password) => return Err(encrypted()),
            Err(e) => return Err(corrupt(e)),
        };
        return all_sheets(&mut wb);
    }
    let zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(corrupt)?;
    if zip.index_for_name("content.xml").is_some() {
        let mut wb: Ods<_> = match Ods::new(cursor) {
            Ok(wb) => wb,
            Err(OdsError::Password) => return Err(encrypted()),
            Err(e) => return Err(corrupt(e)),
        };
        all_sheets(&mut wb)
    } else if zip.index_for_name("xl/workbook.bin").is_some() {
        let mut wb: Xlsb<_> = Xlsb::new(cursor).map_err(corrupt)?;
        all_sheets(&mut wb)
    } else {
        let mut wb: Xlsx<_> = Xlsx::new(cursor).map_err(corrupt)?;
        all_sheets(&mut wb)
    }
}

fn all_sheets<RS, R>(wb: &mut R) -> Result<Vec<(String, Range<Data>)>, ParseError>
where
    RS: std::io::Read + std::io::Seek,
    R: Reader<RS>,
    R::Error: std::fmt::Display,
{
    let mut out = Vec::new();
    for name in wb.sheet_names() {
        let range = wb
            .worksheet_range(&name)
            .map_err(|e| corrupt(format!("sheet {name}: {e}")))?;
        out.push((name, range));
    }
    Ok(out)
}

fn cell(d: &Data) -> String {
    match d {
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        other => other.to_string().trim().to_string(),
    }
}

/// Adds one sheet: its name as a heading, then one Record per non-empty row.
fn add_sheet(b: &mut DocBuilder, name: &str, range: &Range<Data>) -> usize {
    b.heading(1, name);
    let mut rows = range
        .rows()
        .map(|r| r.iter().map(cell).collect::<Vec<_>>())
        .filter(|r| r.iter().any(|c| !c.is_empty()));
    let Some(first) = rows.next() else {
        return 0;
    };
    let has_header = !first
        .iter()
        .any(|c| !c.is_empty() && c.parse::<f64>().is_ok());
    let width = range.width();
    let columns: Vec<String> = if has_header {
        (0..width)
            .map(|i| match first.get(i).map(String::as_str) {
                None | Some("") => format!("column{}", i + 1),
                Some(c) => c.to_string(),
            })
            .collect()
    } else {
        (1..=width).map(|i| format!("column{i}")).collect()
    };
    let row_text = |r: &[String]| {
        columns
            .iter()
            .zip(r)
            .filter(|(_, v)| !v.is_empty())
            .map(|(c, v)| format!("{c}: {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut n = 0;
    if !has_header {
        b.push(BlockKind::Record, &row_text(&first));
        n += 1;
    }
    for r in rows {
        b.push(BlockKind::Record, &row_text(&r));
        n += 1;
    }
    n
}

impl Parser for SpreadsheetParser {
    fn name(&self) -> &'static str {
        "spreadsheet"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["xlsx", "xlsm", "xlsb", "xls", "ods"]
    }
    fn mime(&self) -> &'static str {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let sheets = sheets(bytes)?;
        let mut b = DocBuilder::new();
        let mut meta = serde_json::Map::new();
        let mut rows = 0;
        for (name, range) in &sheets {
            rows += add_sheet(&mut b, name, range);
        }
        meta.insert(
            "sheets".into(),
            sheets
                .iter()
                .map(|(n, _)| serde_json::Value::from(n.as_str()))
                .collect::<Vec<_>>()
                .into(),
        );
        meta.insert("row_count".into(), rows.into());
        // A workbook's first sheet name is no title: the file name is the better one.
        Ok(ParsedDocument {
            title: None,
            ..b.finish(None, meta)
        })
    }
}
