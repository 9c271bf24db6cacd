//! OpenDocument text (ODT) and presentations (ODP), from the package's `content.xml`.
//! ODT: `text:h` outline levels are sections, lists are list items, tables rows of cells.
//! ODP: each `draw:page` is a section `Slide N: title`, speaker notes under `… › Notes`.
//! (ODS spreadsheets go through `calamine`, see `spreadsheet`.)

use super::package::Package;
use super::xmltree::{self, Element};
use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, collapse_ws};

/// ODT (`.odt`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OdtParser;

/// ODP (`.odp`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OdpParser;

/// Opens an ODF package; one whose manifest declares encrypted entries is `Encrypted` (ODF
/// encrypts each part with a key from the password, so nothing would be readable).
/// An opened ODF document: `content.xml`, metadata from `meta.xml`, and its title.
type Opened = (
    Element,
    serde_json::Map<String, serde_json::Value>,
    Option<String>,
);

fn open(format: &'static str, bytes: &[u8]) -> Result<Opened, ParseError> {
    let mut pkg = Package::open(format, bytes)?;
    if let Some(manifest) = pkg.text("META-INF/manifest.xml")?
        && manifest.contains("encryption-data")
    {
        return Err(ParseError::Encrypted {
            format,
            message: "the document was saved with a password".into(),
        });
    }
    let content = xmltree::parse(format, "content.xml", &pkg.required_text("content.xml")?)?;
    let mut meta = serde_json::Map::new();
    let mut title = None;
    if let Some(xml) = pkg.text("meta.xml")? {
        let m = xmltree::parse(format, "meta.xml", &xml)?;
        title = m
            .find("title")
            .map(|t| collapse_ws(&t.text()))
            .filter(|t| !t.is_empty());
        if let Some(a) = m.find("initial-creator").or_else(|| m.find("creator")) {
            let a = collapse_ws(&a.text());
            if !a.is_empty() {
                meta.insert("author".into(), a.into());
            }
        }
    }
    Ok((content, meta, title))
}

/// Text of a paragraph-like element: `text:s` spaces, tabs and line breaks kept; notes and
/// annotations are left out of the running text.
fn para_text(el: &Element) -> String {
    el.text_with(&|e| match e.name.as_str() {
        "s" => Some(" ".repeat(e.attr("text:c").and_then(|c| c.parse().ok()).unwrap_or(1))),
        "tab" => Some("\t".into()),
        "line-break" => Some("\n".into()),
        "annotation" | "note" => Some(String::new()),
        _ => None,
    })
}

fn table_text(t: &Element) -> String {
    let mut rows = Vec::new();
    t.find_all("table-row", &mut rows);
    rows.iter()
        .map(|r| {
            r.elements()
                .filter(|c| c.name == "table-cell")
                .map(|c| collapse_ws(&para_text(c)))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .filter(|r| !r.trim_matches([' ', '|']).is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn walk_text(el: &Element, b: &mut DocBuilder, in_list: bool) {
    for c in el.elements() {
        match c.name.as_str() {
            "h" => {
                let level = c
                    .attr("text:outline-level")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(1);
                b.heading(level, &para_text(c));
            }
            "p" => b.push(
                if in_list {
                    BlockKind::ListItem
                } else {
                    BlockKind::Paragraph
                },
                &para_text(c),
            ),
            "list" | "list-item" => walk_text(c, b, true),
            "table" => b.push(BlockKind::Table, &table_text(c)),
            // Declarations (styles, forms, sequence declarations) carry no text.
            "sequence-decls" | "variable-decls" | "forms" | "tracked-changes" => {}
            _ => walk_text(c, b, in_list),
        }
    }
}

/// Paragraphs of the text boxes under `el` (a page or a notes page).
fn frame_paragraphs(el: &Element, skip_class: &dyn Fn(Option<&str>) -> bool) -> Vec<String> {
    let mut frames = Vec::new();
    el.find_all("frame", &mut frames);
    let mut out = Vec::new();
    for f in frames {
        if skip_class(f.attr("presentation:class")) {
            continue;
        }
        let mut ps = Vec::new();
        f.find_all("p", &mut ps);
        out.extend(
            ps.iter()
                .map(|p| para_text(p))
                .filter(|t| !t.trim().is_empty()),
        );
    }
    out
}

impl Parser for OdtParser {
    fn name(&self) -> &'static str {
        "odt"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["odt"]
    }
    fn mime(&self) -> &'static str {
        "application/vnd.oasis.opendocument.text"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let (content, meta, title) = open("ODT", bytes)?;
        let mut b = DocBuilder::new();
        if let Some(text) = content.child("body").and_then(|b| b.child("text")) {
            walk_text(text, &mut b, false);
        }
        Ok(b.finish(title, meta))
    }
}

impl Parser for OdpParser {
    fn name(&self) -> &'static str {
        "odp"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["odp"]
    }
    fn mime(&self) -> &'static str {
        "application/vnd.oasis.opendocument.presentation"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let (content, mut meta, title) = open("ODP", bytes)?;
        let mut b = DocBuilder::new();
        let pages: Vec<&Element> = content
            .child("body")
            .and_then(|b| b.child("presentation"))
            .map(|p| p.elements().filter(|e| e.name == "page").collect())
            .unwrap_or_default();
        for (n, page) in pages.iter().enumerate() {
            // The notes live inside the page element; read the slide without them.
            let mut slide = (*page).clone();
            slide
                .children
                .retain(|c| !matches!(c, super::xmltree::Node::Element(e) if e.name == "notes"));
            let slide_title = frame_paragraphs(&slide, &|c| c != Some("title"))
                .first()
                .map(|t| collapse_ws(t));
            let heading = match slide_title {
                Some(t) => format!("Slide {}: {t}", n + 1),
                None => format!("Slide {}", n + 1),
            };
            b.heading(1, &heading);
            for p in frame_paragraphs(&slide, &|c| matches!(c, Some("title" | "page-number"))) {
                b.push(BlockKind::Paragraph, &p);
            }
            if let Some(notes) = page.child("notes") {
                // The notes page also shows a thumbnail of the slide (a `page` frame).
                for p in frame_paragraphs(notes, &|c| matches!(c, Some("page" | "page-number"))) {
                    b.push_with_path(
                        vec![heading.clone(), "Notes".into()],
                        BlockKind::Paragraph,
                        &p,
                    );
                }
            }
        }
        meta.insert("slide_count".into(), pages.len().into());
        Ok(b.finish(title, meta))
    }
}
