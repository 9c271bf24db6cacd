//! DOCX (Word): paragraphs in order, `Heading N`/`Title` paragraph styles (or an outline level)
//! as sections, numbered or bulleted paragraphs as list items, tables as rows of cells.

use super::package::Package;
use super::xmltree::{self, Element};
use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, collapse_ws};

/// DOCX (`.docx`).
#[derive(Debug, Default, Clone, Copy)]
pub struct DocxParser;

const FORMAT: &str = "DOCX";

/// The text of a run container: `w:t` text, tabs and breaks; deleted text and field codes are
/// not part of what the reader sees.
pub(crate) fn run_text(p: &Element) -> String {
    p.text_with(&|e| match e.name.as_str() {
        "tab" => Some("\t".into()),
        "br" | "cr" => Some("\n".into()),
        "delText" | "instrText" | "pPr" | "rPr" => Some(String::new()),
        _ => None,
    })
}

/// The heading level of a paragraph: `Heading3` → 3, `Title` → 1, or an explicit outline level.
fn heading_level(p: &Element) -> Option<usize> {
    let ppr = p.child("pPr")?;
    if let Some(style) = ppr.child("pStyle").and_then(|s| s.attr("w:val")) {
        let lower = style.to_ascii_lowercase();
        if lower == "title" {
            return Some(1);
        }
        if let Some(n) = lower.strip_prefix("heading")
            && let Ok(n) = n.trim().parse::<usize>()
        {
            return Some(n.clamp(1, 9));
        }
    }
    let lvl = ppr
        .child("outlineLvl")?
        .attr("w:val")?
        .parse::<usize>()
        .ok()?;
    // Level 9 means "body text" in Word.
    (lvl < 9).then_some(lvl + 1)
}

fn is_list_item(p: &Element) -> bool {
    p.child("pPr").is_some_and(|ppr| {
        ppr.child("numPr").is_some()
            || ppr
                .child("pStyle")
                .and_then(|s| s.attr("w:val"))
                .is_some_and(|s| s.to_ascii_lowercase().starts_with("list"))
    })
}

fn table_text(tbl: &Element) -> String {
    tbl.elements()
        .filter(|r| r.name == "tr")
        .map(|row| {
            row.elements()
                .filter(|c| c.name == "tc")
                .map(|c| collapse_ws(&run_text(c)))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .filter(|r| !r.trim_matches([' ', '|']).is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn walk(el: &Element, b: &mut DocBuilder) {
    for child in el.elements() {
        match child.name.as_str() {
            "p" => {
                let text = run_text(child);
                match heading_level(child) {
                    Some(level) => b.heading(level, &text),
                    None if is_list_item(child) => b.push(BlockKind::ListItem, &text),
                    None => b.push(BlockKind::Paragraph, &text),
                }
            }
            "tbl" => b.push(BlockKind::Table, &table_text(child)),
            // Content controls, tracked insertions and the like wrap ordinary paragraphs.
            _ => walk(child, b),
        }
    }
}

/// `dc:title` and `dc:creator` of an OOXML package's `docProps/core.xml`.
pub(crate) fn core_properties(
    pkg: &mut Package<'_>,
    meta: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Option<String>, ParseError> {
    let Some(xml) = pkg.text("docProps/core.xml")? else {
        return Ok(None);
    };
    let core = xmltree::parse(pkg.format(), "docProps/core.xml", &xml)?;
    if let Some(author) = core.child("creator").map(|c| collapse_ws(&c.text()))
        && !author.is_empty()
    {
        meta.insert("author".into(), author.into());
    }
    Ok(core
        .child("title")
        .map(|t| collapse_ws(&t.text()))
        .filter(|t| !t.is_empty()))
}

impl Parser for DocxParser {
    fn name(&self) -> &'static str {
        "docx"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["docx"]
    }
    fn mime(&self) -> &'static str {
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let mut pkg = Package::open(FORMAT, bytes)?;
        let xml = pkg.required_text("word/document.xml")?;
        let doc = xmltree::parse(FORMAT, "word/document.xml", &xml)?;
        let mut meta = serde_json::Map::new();
        let title = core_properties(&mut pkg, &mut meta)?;
        let mut b = DocBuilder::new();
        if let Some(body) = doc.child("body") {
            walk(body, &mut b);
        }
        Ok(b.finish(title, meta))
    }
}
