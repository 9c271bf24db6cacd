//! EPUB: the package (`META-INF/container.xml` → the OPF) gives the reading order (spine);
//! each chapter is XHTML, parsed by the HTML parser and placed under a section named after the
//! chapter (its title, else its first heading, else `Chapter N`). DRM-encrypted chapters
//! (listed in `META-INF/encryption.xml`) make the book `Encrypted`.

use super::package::{Package, resolve};
use super::xmltree;
use super::{Block, BlockKind, HtmlParser, ParseError, ParsedDocument, Parser, collapse_ws};

/// EPUB (`.epub`).
#[derive(Debug, Default, Clone, Copy)]
pub struct EpubParser;

const FORMAT: &str = "EPUB";

fn corrupt(m: String) -> ParseError {
    ParseError::Corrupt {
        format: FORMAT,
        message: m,
    }
}

/// Part names that `META-INF/encryption.xml` says are encrypted. Fonts are often "obfuscated"
/// this way without any DRM, so only the caller's check against the chapters decides.
fn encrypted_parts(pkg: &mut Package<'_>) -> Result<Vec<String>, ParseError> {
    let Some(xml) = pkg.text("META-INF/encryption.xml")? else {
        return Ok(Vec::new());
    };
    let root = xmltree::parse(FORMAT, "META-INF/encryption.xml", &xml)?;
    let mut refs = Vec::new();
    root.find_all("CipherReference", &mut refs);
    Ok(refs
        .iter()
        .filter_map(|r| r.attr("URI"))
        .map(|u| u.trim_start_matches('/').to_string())
        .collect())
}

impl Parser for EpubParser {
    fn name(&self) -> &'static str {
        "epub"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["epub"]
    }
    fn mime(&self) -> &'static str {
        "application/epub+zip"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let mut pkg = Package::open(FORMAT, bytes)?;
        let container = xmltree::parse(
            FORMAT,
            "META-INF/container.xml",
            &pkg.required_text("META-INF/container.xml")?,
        )?;
        let opf_path = container
            .find("rootfile")
            .and_then(|r| r.attr("full-path"))
            .ok_or_else(|| corrupt("container.xml names no rootfile".into()))?
            .to_string();
        let opf = xmltree::parse(FORMAT, &opf_path, &pkg.required_text(&opf_path)?)?;
        let mut meta = serde_json::Map::new();
        let title = opf
            .find("metadata")
            .and_then(|m| m.child("title"))
            .map(|t| collapse_ws(&t.text()))
            .filter(|t| !t.is_empty());
        if let Some(a) = opf
            .find("metadata")
            .and_then(|m| m.child("creator"))
            .map(|t| collapse_ws(&t.text()))
            .filter(|t| !t.is_empty())
        {
            meta.insert("author".into(), a.into());
        }
        let manifest: Vec<(String, String)> = opf
            .find("manifest")
            .map(|m| {
                m.elements()
                    .filter(|i| i.name == "item")
                    .filter_map(|i| {
                        Some((
                            i.attr("id")?.to_string(),
                            resolve(&opf_path, i.attr("href")?),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let spine: Vec<String> = opf
            .find("spine")
            .map(|s| {
                s.elements()
                    .filter(|i| i.name == "itemref")
                    .filter_map(|i| i.attr("idref"))
                    .filter_map(|id| manifest.iter().find(|(m, _)| m == id))
                    .map(|(_, href)| href.clone())
                    .collect()
            })
            .unwrap_or_default();
        let locked = encrypted_parts(&mut pkg)?;
        if let Some(part) = spine.iter().find(|p| locked.contains(p)) {
            return Err(ParseError::Encrypted {
                format: FORMAT,
                message: format!("chapter {part} is DRM-protected"),
            });
        }
        let mut blocks: Vec<Block> = Vec::new();
        let mut chapters = 0usize;
        for part in &spine {
            // A spine may name a part the zip lacks; the other chapters are still read.
            let Some(xhtml) = pkg.bytes(part)? else {
                continue;
            };
            let chapter = HtmlParser.parse(&xhtml)?;
            if chapter.blocks.is_empty() {
                continue;
            }
            chapters += 1;
            let name = chapter
                .title
                .clone()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| format!("Chapter {chapters}"));
            let has_own_heading = chapter
                .blocks
                .first()
                .is_some_and(|b| b.kind == BlockKind::Heading && b.text.trim() == name);
            if !has_own_heading {
                blocks.push(Block {
                    section_path: vec![name.clone()],
                    kind: BlockKind::Heading,
                    text: name.clone(),
                });
            }
            for mut b in chapter.blocks {
                // The chapter heading itself is already the first element of the path.
                if b.section_path.first() != Some(&name) {
                    b.section_path.insert(0, name.clone());
                }
                blocks.push(b);
            }
        }
        meta.insert("chapter_count".into(), chapters.into());
        Ok(ParsedDocument {
            title,
            blocks,
            metadata: meta,
            attachments: Vec::new(),
        })
    }
}
