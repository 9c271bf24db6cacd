//! PPTX (PowerPoint): slides in presentation order (`sldIdLst`, not file names), each a section
//! `Slide N: title`; text boxes and tables as paragraphs; speaker notes under `… › Notes`.

use super::package::{Package, resolve};
use super::xmltree::{self, Element};
use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, collapse_ws};

/// PPTX (`.pptx`).
#[derive(Debug, Default, Clone, Copy)]
pub struct PptxParser;

const FORMAT: &str = "PPTX";

/// One relationship of an OOXML part: (id, type, resolved target part).
struct Rel {
    id: String,
    kind: String,
    target: String,
}

/// The relationships of `part` (from `<folder>/_rels/<name>.rels`), targets resolved.
fn relationships(pkg: &mut Package<'_>, part: &str) -> Result<Vec<Rel>, ParseError> {
    let (folder, name) = part.rsplit_once('/').unwrap_or(("", part));
    let rels_part = if folder.is_empty() {
        format!("_rels/{name}.rels")
    } else {
        format!("{folder}/_rels/{name}.rels")
    };
    let Some(xml) = pkg.text(&rels_part)? else {
        return Ok(Vec::new());
    };
    let root = xmltree::parse(FORMAT, &rels_part, &xml)?;
    Ok(root
        .elements()
        .filter(|e| e.name == "Relationship")
        .filter_map(|e| {
            Some(Rel {
                id: e.attr("Id")?.to_string(),
                kind: e.attr("Type").unwrap_or_default().to_string(),
                target: resolve(part, e.attr("Target")?),
            })
        })
        .collect())
}

/// The placeholder type of a shape (`title`, `ctrTitle`, `body`, `sldNum`, ...), if any.
fn placeholder(sp: &Element) -> Option<&str> {
    sp.child("nvSpPr")?.child("nvPr")?.child("ph")?.attr("type")
}

/// The paragraphs of a text body, one string each.
fn paragraphs(tx: &Element) -> Vec<String> {
    tx.elements()
        .filter(|p| p.name == "p")
        .map(|p| {
            p.text_with(&|e| match e.name.as_str() {
                "br" => Some("\n".into()),
                "pPr" | "rPr" | "endParaRPr" => Some(String::new()),
                _ => None,
            })
        })
        .filter(|t| !t.trim().is_empty())
        .collect()
}

/// A slide's (or notes page's) shapes, including those inside groups, in drawing order.
fn shapes<'a>(el: &'a Element, out: &mut Vec<&'a Element>) {
    for e in el.elements() {
        match e.name.as_str() {
            "sp" | "graphicFrame" => out.push(e),
            "grpSp" => shapes(e, out),
            _ => {}
        }
    }
}

struct Slide {
    title: Option<String>,
    body: Vec<String>,
}

fn read_slide(root: &Element, keep: &dyn Fn(Option<&str>) -> bool) -> Slide {
    let mut slide = Slide {
        title: None,
        body: Vec::new(),
    };
    let Some(tree) = root.child("cSld").and_then(|c| c.child("spTree")) else {
        return slide;
    };
    let mut all = Vec::new();
    shapes(tree, &mut all);
    for sp in all {
        let ph = placeholder(sp);
        if sp.name == "graphicFrame" {
            // A table: one paragraph per row, cells separated by `|`.
            let mut rows = Vec::new();
            sp.find_all("tr", &mut rows);
            for row in rows {
                let mut cells = Vec::new();
                row.find_all("tc", &mut cells);
                let line = cells
                    .iter()
                    .map(|c| collapse_ws(&c.text()))
                    .collect::<Vec<_>>()
                    .join(" | ");
                slide.body.push(line);
            }
            continue;
        }
        let Some(tx) = sp.child("txBody") else {
            continue;
        };
        if matches!(ph, Some("title" | "ctrTitle")) && slide.title.is_none() {
            let t = collapse_ws(&paragraphs(tx).join(" "));
            if !t.is_empty() {
                slide.title = Some(t);
            }
            continue;
        }
        if keep(ph) {
            slide.body.extend(paragraphs(tx));
        }
    }
    slide
}

impl Parser for PptxParser {
    fn name(&self) -> &'static str {
        "pptx"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["pptx"]
    }
    fn mime(&self) -> &'static str {
        "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let mut pkg = Package::open(FORMAT, bytes)?;
        let main = "ppt/presentation.xml";
        let pres = xmltree::parse(FORMAT, main, &pkg.required_text(main)?)?;
        let rels = relationships(&mut pkg, main)?;
        let mut meta = serde_json::Map::new();
        let title = super::docx::core_properties(&mut pkg, &mut meta)?;
        let mut b = DocBuilder::new();
        let ids: Vec<&str> = pres
            .child("sldIdLst")
            .map(|l| l.elements().filter_map(|s| s.attr("r:id")).collect())
            .unwrap_or_default();
        let mut with_notes = 0usize;
        for (n, rid) in ids.iter().enumerate() {
            let Some(part) = rels.iter().find(|r| r.id == *rid).map(|r| r.target.clone()) else {
                continue;
            };
            let Some(xml) = pkg.text(&part)? else {
                continue;
            };
            let slide = read_slide(&xmltree::parse(FORMAT, &part, &xml)?, &|ph| {
                // Slide numbers, dates and footers repeat on every slide and say nothing.
                !matches!(ph, Some("sldNum" | "dt" | "ftr"))
            });
            let heading = match &slide.title {
                Some(t) => format!("Slide {}: {t}", n + 1),
                None => format!("Slide {}", n + 1),
            };
            b.heading(1, &heading);
            for p in &slide.body {
                b.push(BlockKind::Paragraph, p);
            }
            let notes_part = relationships(&mut pkg, &part)?
                .into_iter()
                .find(|r| r.kind.ends_with("/notesSlide"))
                .map(|r| r.target);
            if let Some(notes_part) = notes_part
                && let Some(xml) = pkg.text(&notes_part)?
            {
                let notes = read_slide(&xmltree::parse(FORMAT, &notes_part, &xml)?, &|ph| {
                    ph == Some("body")
                });
                if !notes.body.is_empty() {
                    with_notes += 1;
                }
                for p in &notes.body {
                    b.push_with_path(
                        vec![heading.clone(), "Notes".into()],
                        BlockKind::Paragraph,
                        p,
                    );
                }
            }
        }
        meta.insert("slide_count".into(), ids.len().into());
        meta.insert("slides_with_notes".into(), with_notes.into());
        Ok(b.finish(title, meta))
    }
}
