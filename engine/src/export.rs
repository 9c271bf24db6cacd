//! `instant-db export`: the stored documents as a readable bundle of files.
//!
//! One file per document (Markdown, JSON or plain text) with its sections as headings, rebuilt
//! from the chunks' new content (`text[content_start..]`: the overlap repeated at the start of a
//! chunk is left out, so the text appears once), plus an index file. With a size limit a document
//! is split into parts at paragraph boundaries; a single paragraph larger than the limit becomes
//! a part of its own. The output directory must be new or empty: nothing is overwritten.
//!
//! The files go to an [`ExportSink`]: a directory (the CLI, [`export`]) or a tar stream
//! (`POST /api/export`, [`archive::TarSink`]); both receive the same files from [`export_to`].

pub mod archive;

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::filter::Condition;
use crate::store::DocumentRecord;

#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    Deserialize,
    Serialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Markdown,
    Json,
    Txt,
}

impl ExportFormat {
    fn extension(self) -> &'static str {
        match self {
            Self::Markdown => "md",
            Self::Json => "json",
            Self::Txt => "txt",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub format: ExportFormat,
    /// Largest file written, in bytes (`None`: no limit).
    pub max_bytes: Option<usize>,
    /// One subdirectory per document type.
    pub split_by_type: bool,
    /// Leave out the document metadata (source, type, dates, user and format metadata).
    pub metadata: bool,
    pub filter: Vec<Condition>,
}

/// The size limit in bytes from a number of MB (decimals allowed), as the CLI's `--max-size`
/// and the API's `max_size_mb` give it; `what` names the option in the error.
pub fn max_bytes_from_mb(mb: Option<f64>, what: &str) -> Result<Option<usize>> {
    match mb {
        None => Ok(None),
        // The cast saturates: a huge number of MB is "no practical limit", not an error.
        Some(mb) if mb.is_finite() && mb > 0.0 => Ok(Some((mb * 1024.0 * 1024.0) as usize)),
        Some(_) => Err(Error::InvalidInput(format!(
            "{what} is a positive number of MB"
        ))),
    }
}

/// Where an export's files go.
pub trait ExportSink {
    /// Writes one file at `rel`, a relative path with `/` between its parts.
    fn file(&mut self, rel: &str, content: &str) -> Result<()>;
}

/// Files under a directory.
struct DirSink<'a>(&'a Path);

impl ExportSink for DirSink<'_> {
    fn file(&mut self, rel: &str, content: &str) -> Result<()> {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
        }
        std::fs::write(&path, content)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportReport {
    pub dir: String,
    pub documents: usize,
    /// Document files (parts included), the index not counted.
    pub files: usize,
    pub bytes: u64,
    /// Documents split into parts by the size limit.
    pub split_documents: usize,
    pub index: String,
    pub seconds: f64,
}

/// A run of text under one section path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    pub path: Vec<String>,
    pub text: String,
}

/// One entry of the index.
#[derive(Debug, Serialize)]
struct IndexEntry {
    id: String,
    title: String,
    source: String,
    doc_type: String,
    files: Vec<String>,
}

/// The document's sections, from its chunks in order: consecutive chunks of one section path
/// are joined, each contributing only its new content.
pub fn sections_of(engine: &Engine, document_id: &str) -> Result<Vec<Section>> {
    let rows: Vec<(String, String, i64)> = engine.store.read(|c| {
        Ok(c.prepare_cached(
            "SELECT section_path, text, content_start FROM chunks
             WHERE document_id = ?1 ORDER BY chunk_index",
        )?
        .query_map([document_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?)
    })?;
    let mut out: Vec<Section> = Vec::new();
    for (path, text, start) in rows {
        let path: Vec<String> = serde_json::from_str(&path).unwrap_or_default();
        let fresh = text
            .get(usize::try_from(start).unwrap_or(0)..)
            .unwrap_or(&text);
        match out.last_mut() {
            Some(last) if last.path == path => last.text.push_str(fresh),
            _ => out.push(Section {
                path,
                text: fresh.to_string(),
            }),
        }
    }
    for s in &mut out {
        s.text = s.text.trim().to_string();
    }
    out.retain(|s| !s.text.is_empty());
    Ok(out)
}

/// The paragraphs of the sections, each with its section path: the units a split keeps whole.
fn paragraphs(sections: &[Section]) -> Vec<Section> {
    sections
        .iter()
        .flat_map(|s| {
            s.text
                .split("\n\n")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| Section {
                    path: s.path.clone(),
                    text: p.to_string(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Joins consecutive paragraphs of one section path back into sections.
fn regroup(paras: &[Section]) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for p in paras {
        match out.last_mut() {
            Some(last) if last.path == p.path => {
                last.text.push_str("\n\n");
                last.text.push_str(&p.text);
            }
            _ => out.push(p.clone()),
        }
    }
    out
}

fn title_of(doc: &DocumentRecord) -> String {
    doc.title.clone().unwrap_or_else(|| doc.source.clone())
}

/// The metadata lines shown under a Markdown or text title.
fn metadata_lines(doc: &DocumentRecord) -> Vec<String> {
    let mut lines = vec![
        format!("source: {}", doc.source),
        format!("type: {}", doc.doc_type),
    ];
    if let Some(m) = &doc.modified_at {
        lines.push(format!("modified: {m}"));
    }
    lines.push(format!("ingested: {}", doc.ingested_at));
    for (label, v) in [
        ("metadata", &doc.metadata),
        ("format", &doc.format_metadata),
    ] {
        if v.as_object().is_some_and(|o| !o.is_empty()) {
            lines.push(format!("{label}: {v}"));
        }
    }
    lines
}

/// One file's content: the document's head (title, part, metadata) and the given sections.
pub fn render(
    format: ExportFormat,
    doc: &DocumentRecord,
    sections: &[Section],
    metadata: bool,
    part: Option<(usize, usize)>,
) -> String {
    let title = title_of(doc);
    let part_note = part.map(|(i, n)| format!(" (part {i} of {n})"));
    match format {
        ExportFormat::Json => {
            let mut v = serde_json::json!({
                "id": doc.id,
                "title": title,
                "sections": sections,
            });
            if let Some((i, n)) = part {
                v["part"] = i.into();
                v["parts"] = n.into();
            }
            if metadata {
                v["source"] = doc.source.clone().into();
                v["doc_type"] = doc.doc_type.clone().into();
                v["modified_at"] = doc.modified_at.clone().into();
                v["ingested_at"] = doc.ingested_at.clone().into();
                v["metadata"] = doc.metadata.clone();
                v["format_metadata"] = doc.format_metadata.clone();
            }
            let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
            s.push('\n');
            s
        }
        ExportFormat::Markdown => {
            let mut out = format!("# {title}{}\n\n", part_note.unwrap_or_default());
            if metadata {
                for l in metadata_lines(doc) {
                    out.push_str(&format!("- {l}\n"));
                }
                out.push('\n');
            }
            let mut previous: &[String] = &[];
            for s in sections {
                // headings for the levels where this path departs from the previous one
                let common = previous
                    .iter()
                    .zip(&s.path)
                    .take_while(|(a, b)| a == b)
                    .count();
                for (depth, name) in s.path.iter().enumerate().skip(common) {
                    let level = (depth + 2).min(6);
                    out.push_str(&format!("{} {name}\n\n", "#".repeat(level)));
                }
                out.push_str(&s.text);
                out.push_str("\n\n");
                previous = &s.path;
            }
            out
        }
        ExportFormat::Txt => {
            let head = format!("{title}{}", part_note.unwrap_or_default());
            let mut out = format!("{head}\n{}\n\n", "=".repeat(head.chars().count()));
            if metadata {
                for l in metadata_lines(doc) {
                    out.push_str(&l);
                    out.push('\n');
                }
                out.push('\n');
            }
            let mut previous: Option<&Vec<String>> = None;
            for s in sections {
                if previous != Some(&s.path) && !s.path.is_empty() {
                    let h = s.path.join(" › ");
                    out.push_str(&format!("{h}\n{}\n\n", "-".repeat(h.chars().count())));
                }
                out.push_str(&s.text);
                out.push_str("\n\n");
                previous = Some(&s.path);
            }
            out
        }
    }
}

/// The document's files: one, or with `max_bytes` as many parts as needed, each filled with
/// whole paragraphs while it stays under the limit.
pub fn render_parts(
    format: ExportFormat,
    doc: &DocumentRecord,
    sections: &[Section],
    metadata: bool,
    max_bytes: Option<usize>,
) -> Vec<String> {
    let whole = render(format, doc, sections, metadata, None);
    let Some(max) = max_bytes.filter(|m| whole.len() > *m) else {
        return vec![whole];
    };
    let paras = paragraphs(sections);
    // Greedy packing, measured with a placeholder part number of the widest form.
    let widest = paras.len();
    let size = |chunk: &[Section]| {
        render(
            format,
            doc,
            &regroup(chunk),
            metadata,
            Some((widest, widest)),
        )
        .len()
    };
    let mut groups: Vec<Vec<Section>> = Vec::new();
    let mut current: Vec<Section> = Vec::new();
    for p in paras {
        current.push(p);
        if current.len() > 1 && size(&current) > max {
            let last = current.pop().into_iter().collect();
            groups.push(std::mem::replace(&mut current, last));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    let n = groups.len();
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| render(format, doc, &regroup(g), metadata, Some((i + 1, n))))
        .collect()
}

/// A file name from the title: letters, digits and dashes, at most 60 characters.
fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.chars().count() >= 60 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "document".into()
    } else {
        out
    }
}

/// The ids of the documents the filter selects, by source.
fn selected(engine: &Engine, filter: &[Condition]) -> Result<Vec<String>> {
    let (where_sql, params) = crate::filter::to_sql(filter);
    engine.store.read(|c| {
        let sql = format!(
            "SELECT DISTINCT d.id, d.source FROM documents d LEFT JOIN chunks c ON c.document_id = d.id
             WHERE {where_sql} ORDER BY d.source"
        );
        let mut stmt = c.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })
}

/// Exports the selected documents into `dir` (created; it must be empty if it exists).
pub fn export(engine: &Engine, dir: &Path, opts: &ExportOptions) -> Result<ExportReport> {
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(Error::InvalidInput(format!(
            "{} is not empty: export into a new or empty directory (nothing is overwritten)",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let mut report = export_to(engine, &mut DirSink(dir), opts)?;
    report.dir = dir.display().to_string();
    Ok(report)
}

/// Writes the selected documents' files, then the index, into `sink` (the report's `dir` is
/// left empty: the caller knows where the sink writes).
pub fn export_to(
    engine: &Engine,
    sink: &mut dyn ExportSink,
    opts: &ExportOptions,
) -> Result<ExportReport> {
    let started = Instant::now();
    let ext = opts.format.extension();
    let mut report = ExportReport::default();
    let mut index = Vec::new();
    for id in selected(engine, &opts.filter)? {
        let doc = engine.store.get_document(&id)?;
        let sections = sections_of(engine, &id)?;
        let parts = render_parts(opts.format, &doc, &sections, opts.metadata, opts.max_bytes);
        let sub = if opts.split_by_type {
            // the type as it is named in filters (a closed set of `[a-z_]` names)
            let t: String = doc
                .doc_type
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            format!("{}/", if t.is_empty() { "other" } else { &t })
        } else {
            String::new()
        };
        // the id keeps two documents of the same title apart
        let stem = format!("{}-{}", slug(&title_of(&doc)), doc.id);
        let mut files = Vec::new();
        for (i, content) in parts.iter().enumerate() {
            let rel = if parts.len() == 1 {
                format!("{sub}{stem}.{ext}")
            } else {
                format!("{sub}{stem}.part{}.{ext}", i + 1)
            };
            sink.file(&rel, content)?;
            report.bytes += content.len() as u64;
            files.push(rel);
        }
        if parts.len() > 1 {
            report.split_documents += 1;
        }
        report.files += files.len();
        report.documents += 1;
        index.push(IndexEntry {
            id: doc.id.clone(),
            title: title_of(&doc),
            source: doc.source.clone(),
            doc_type: doc.doc_type.clone(),
            files,
        });
    }
    let (name, content) = render_index(opts.format, &index);
    sink.file(name, &content)?;
    report.index = name.to_string();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The index file: its name and content (a table of links in Markdown, lines in text, an array
/// in JSON).
fn render_index(format: ExportFormat, index: &[IndexEntry]) -> (&'static str, String) {
    match format {
        ExportFormat::Json => (
            "index.json",
            serde_json::to_string_pretty(index).unwrap_or_default() + "\n",
        ),
        ExportFormat::Markdown => {
            let mut out = format!(
                "# Export\n\n{} documents.\n\n| title | type | source | files |\n|---|---|---|---|\n",
                index.len()
            );
            let cell = |s: &str| s.replace('|', "\\|");
            for e in index {
                let links: Vec<String> = e
                    .files
                    .iter()
                    .map(|f| format!("[{f}]({})", f.replace(' ', "%20")))
                    .collect();
                out.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    cell(&e.title),
                    e.doc_type,
                    cell(&e.source),
                    links.join(" ")
                ));
            }
            ("index.md", out)
        }
        ExportFormat::Txt => {
            let mut out = format!("{} documents\n\n", index.len());
            for e in index {
                out.push_str(&format!(
                    "{}\n  type: {}\n  source: {}\n  files: {}\n\n",
                    e.title,
                    e.doc_type,
                    e.source,
                    e.files.join(", ")
                ));
            }
            ("index.txt", out)
        }
    }
}

#[cfg(test)]
mod tests;
