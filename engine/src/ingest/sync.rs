//! Keeping the documents of folders in step with the files: `instant-db sync` and `POST /api/sync`.
//!
//! A sync is an ingest of the roots (new files added, changed ones replaced, unchanged ones
//! skipped by their content hash: the same rule, [`super::stored_version`]) followed, when asked,
//! by the removal of the documents whose files are gone. Only documents whose source lies under
//! one of the roots are considered: a root is canonicalised and compared component by component
//! (`/a/b` never covers `/a/bc`). An attachment of a mail (`<file>#<name>`) belongs to its file:
//! it goes when the file goes and is never "missing" on its own.
//!
//! A dry run reads and hashes the files (and parses the new and changed ones, so it reports
//! what would fail) and lists what would happen; it writes nothing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{
    FileOutcome, FileReport, IngestOptions, ProblemKind, Progress, Stored, Walk, content_hash,
    read, skip, stored_version, walk,
};
use crate::engine::Engine;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct SyncOptions {
    /// List what would happen; change nothing.
    pub dry_run: bool,
    /// Remove the documents (under the roots) whose files no longer exist.
    pub delete_missing: bool,
    /// Walk options (recursion, excludes) and the user metadata of added or changed documents.
    pub ingest: IngestOptions,
}

/// What a sync did, or (dry run) would do.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SyncReport {
    pub dry_run: bool,
    /// The roots, canonical; documents are deleted under these only.
    pub roots: Vec<String>,
    /// Sources of new documents (mail attachments included, as `<file>#<name>`).
    pub added: Vec<String>,
    /// Sources of documents replaced because their content (or given metadata) changed.
    pub changed: Vec<String>,
    /// Files whose stored document is already up to date.
    pub unchanged: usize,
    /// Documents removed because their file is gone (`delete_missing`; in a dry run, those
    /// that would be), and attachments a changed mail no longer has.
    pub deleted: Vec<String>,
    /// Documents whose file is gone, kept because `delete_missing` was not asked for.
    pub missing: Vec<String>,
    /// Files not ingested (unsupported, unreadable, corrupt...), each with its reason.
    pub problems: Vec<FileReport>,
    /// Chunks written (0 in a dry run).
    pub chunks: usize,
    pub seconds: f64,
    /// As in the ingest report: chunks stored without vectors, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
    /// Set when the sync stopped early (a refused write, a cut request): nothing was deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

impl SyncReport {
    /// Files that failed (not those skipped by design): the CLI exits 1 when there are some.
    pub fn failed(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.outcome == FileOutcome::Failed)
            .count()
    }
}

/// Syncs `paths` (files or directories). With `allowed_roots` (the server) every file must
/// resolve under one of them, as for a path ingest; the caller has checked the paths themselves.
pub fn sync_paths(
    engine: &Engine,
    paths: &[PathBuf],
    opts: &SyncOptions,
    allowed_roots: Option<&[PathBuf]>,
    progress: &dyn Progress,
) -> Result<SyncReport> {
    let started = Instant::now();
    // A root that cannot be resolved is reported by the walk; nothing is deleted under it,
    // so a typo or an unmounted volume never empties the database.
    let roots: Vec<PathBuf> = paths
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let walked = walk(engine, paths, &opts.ingest, allowed_roots)?;
    let mut report = if opts.dry_run {
        plan(engine, walked, &opts.ingest, progress)?
    } else {
        apply(engine, walked, &opts.ingest, progress)?
    };
    report.dry_run = opts.dry_run;
    report.roots = roots.iter().map(|r| r.display().to_string()).collect();
    let missing = missing_documents(engine, &roots)?;
    if !opts.delete_missing {
        report.missing = missing.into_iter().map(|m| m.source).collect();
    } else if opts.dry_run {
        report.deleted = missing.into_iter().map(|m| m.source).collect();
    } else if report.stopped.is_some() {
        // What was not reached is unknown: deleting now could remove what a rerun keeps.
        report.missing = missing.into_iter().map(|m| m.source).collect();
    } else {
        let (deleted, stopped) = delete_documents(engine, missing, progress)?;
        report.deleted.extend(deleted);
        report.stopped = stopped;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Deletes the documents of files that are gone, until cancelled: (sources deleted, why it
/// stopped early).
fn delete_documents(
    engine: &Engine,
    missing: Vec<Missing>,
    progress: &dyn Progress,
) -> Result<(Vec<String>, Option<String>)> {
    let mut deleted = Vec::new();
    let mut stopped = None;
    for m in missing {
        if progress.cancelled() {
            stopped = Some(
                "stopped before every missing document was deleted; run the same sync again"
                    .to_string(),
            );
            break;
        }
        match engine.delete_document(&m.id) {
            // NotFound: deleted meanwhile by someone else, gone either way
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        tracing::info!(source = %m.source, "document of a deleted file removed");
        deleted.push(m.source);
    }
    if !deleted.is_empty() {
        engine.persist_index_if_due()?;
    }
    Ok((deleted, stopped))
}

/// Deletes the documents under `roots` (canonical) whose files are gone: what a sync with
/// `delete_missing` does after its ingest, for callers that know only files were removed
/// (a watch).
pub(super) fn delete_missing_under(
    engine: &Engine,
    roots: &[PathBuf],
    progress: &dyn Progress,
) -> Result<(Vec<String>, Option<String>)> {
    delete_documents(engine, missing_documents(engine, roots)?, progress)
}

/// The ingest of the walked files, its outcomes sorted into the sync report.
fn apply(
    engine: &Engine,
    walked: Walk,
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<SyncReport> {
    let ingest = super::ingest_walked(engine, walked, opts, progress)?;
    let mut report = SyncReport {
        deleted: ingest.removed_attachments,
        chunks: ingest.chunks,
        degraded: ingest.degraded,
        stopped: ingest.stopped,
        problems: ingest.problems,
        ..Default::default()
    };
    for f in ingest.files {
        match f.outcome {
            FileOutcome::Added => report.added.push(f.source),
            FileOutcome::Updated => report.changed.push(f.source),
            FileOutcome::Unchanged => report.unchanged += 1,
            // in `problems` already
            FileOutcome::Skipped | FileOutcome::Failed => {}
        }
    }
    Ok(report)
}

/// What an ingest of the walked files would do, without writing: each file is read and hashed
/// as the ingest would, and new or changed ones are parsed so that their problems show.
fn plan(
    engine: &Engine,
    walked: Walk,
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<SyncReport> {
    let max = engine.config.ingest.max_file_bytes;
    let mut report = SyncReport {
        problems: walked.problems,
        ..Default::default()
    };
    progress.start(walked.files.len());
    for path in &walked.files {
        if progress.cancelled() {
            report.stopped = Some("stopped before every file was looked at".into());
            break;
        }
        let file = plan_file(engine, path, max, opts, walked.roots.as_deref())?;
        match file.outcome {
            FileOutcome::Added => report.added.push(file.source.clone()),
            FileOutcome::Updated => report.changed.push(file.source.clone()),
            FileOutcome::Unchanged => report.unchanged += 1,
            FileOutcome::Skipped | FileOutcome::Failed => report.problems.push(file.clone()),
        }
        progress.file_done(&file);
    }
    progress.finish();
    Ok(report)
}

/// The outcome an ingest of `path` would have.
fn plan_file(
    engine: &Engine,
    path: &Path,
    max: u64,
    opts: &IngestOptions,
    roots: Option<&[PathBuf]>,
) -> Result<FileReport> {
    let src = match read::read_source(path, max, opts.metadata.clone(), roots) {
        Ok(s) => s,
        Err((kind, reason)) => return Ok(skip(path, reason, kind)),
    };
    let outcome = match stored_version(engine, &src, &content_hash(&src.bytes))? {
        Stored::Same => FileOutcome::Unchanged,
        Stored::None => FileOutcome::Added,
        Stored::Other(_) => FileOutcome::Updated,
    };
    if outcome != FileOutcome::Unchanged
        && let Err(e) = engine.parsers.parse_path(Path::new(&src.name), &src.bytes)
    {
        let kind = ProblemKind::of_parse(&e);
        return Ok(skip(Path::new(&src.source), e.to_string(), kind));
    }
    Ok(FileReport {
        source: src.source,
        outcome,
        document_id: None,
        chunks: 0,
        reason: None,
        kind: None,
    })
}

/// A stored document whose file no longer exists.
struct Missing {
    id: String,
    source: String,
}

/// The bounds of a range of sources starting with `prefix`: `[prefix, prefix with its last
/// byte raised by one)`. The last byte is `/` or `#`, so raising it stays ASCII.
fn prefix_range(prefix: String) -> (String, String) {
    let mut upper = prefix.clone();
    if let Some(last) = upper.pop() {
        upper.push(char::from(last as u8 + 1));
    }
    (prefix, upper)
}

/// The documents stored under `root`: its own (a file root), those of the files below it (a
/// directory root) and the attachments of either, each with the file it belongs to.
fn documents_under(engine: &Engine, root: &Path) -> Result<Vec<(String, String, PathBuf)>> {
    let exact = root.display().to_string();
    let dir = if exact.ends_with('/') {
        exact.clone()
    } else {
        format!("{exact}/")
    };
    let (dir_lo, dir_hi) = prefix_range(dir);
    let (att_lo, att_hi) = prefix_range(format!("{exact}#"));
    let rows: Vec<(String, String, Option<String>)> = engine.store.read(|c| {
        Ok(c.prepare_cached(
            "SELECT id, source, json_extract(metadata, '$.attached_to') FROM documents
             WHERE source = ?1 OR (source >= ?2 AND source < ?3) OR (source >= ?4 AND source < ?5)
             ORDER BY source",
        )?
        .query_map(
            rusqlite::params![exact, dir_lo, dir_hi, att_lo, att_hi],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, Option<String>>(2).ok().flatten(),
                ))
            },
        )?
        .collect::<rusqlite::Result<_>>()?)
    })?;
    Ok(rows
        .into_iter()
        .map(|(id, source, attached_to)| {
            let file = PathBuf::from(attached_to.unwrap_or_else(|| source.clone()));
            (id, source, file)
        })
        // Compared by components again: only what really lies under the root is returned.
        .filter(|(_, _, file)| file.starts_with(root))
        .collect())
}

/// Deletes the stored attachments of `source` (`<source>#<name>`, attached to it) that are not
/// among `kept`, its attachments now; returns their sources.
pub(super) fn remove_dropped_attachments(
    engine: &Engine,
    source: &str,
    kept: &[crate::parse::Attachment],
) -> Result<Vec<String>> {
    let (lo, hi) = prefix_range(format!("{source}#"));
    let stored: Vec<(String, String)> = engine.store.read(|c| {
        Ok(c.prepare_cached(
            "SELECT id, source FROM documents
             WHERE source >= ?1 AND source < ?2 AND json_extract(metadata, '$.attached_to') = ?3",
        )?
        .query_map(rusqlite::params![lo, hi, source], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?)
    })?;
    let mut gone = Vec::new();
    for (id, att) in stored {
        let Some(name) = att.strip_prefix(source).and_then(|n| n.strip_prefix('#')) else {
            continue;
        };
        if kept.iter().any(|a| a.name == name) {
            continue;
        }
        match engine.delete_document(&id) {
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        tracing::info!(source = %att, "attachment no longer in its mail removed");
        gone.push(att);
    }
    Ok(gone)
}

/// Whether the file a document came from is gone: not found, or no longer a file (a path
/// component became a file, or the file a directory). Any other error (permissions) keeps it.
fn file_is_gone(file: &Path) -> bool {
    match std::fs::metadata(file) {
        Ok(m) => m.is_dir(),
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        ),
    }
}

/// The documents under `roots` whose files are gone, each once (roots may overlap).
fn missing_documents(engine: &Engine, roots: &[PathBuf]) -> Result<Vec<Missing>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for root in roots {
        for (id, source, file) in documents_under(engine, root)? {
            if file_is_gone(&file) && seen.insert(id.clone()) {
                out.push(Missing { id, source });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_covers_exactly_the_sources_that_start_with_the_prefix() {
        let (lo, hi) = prefix_range("/a/b/".into());
        assert_eq!((lo.as_str(), hi.as_str()), ("/a/b/", "/a/b0"));
        let within = |s: &str| s >= lo.as_str() && s < hi.as_str();
        assert!(within("/a/b/x.md") && within("/a/b/c/d.md"));
        // a sibling with a common prefix sorts outside: `c` > `0`, `-` < `/`
        assert!(!within("/a/bc/x.md") && !within("/a/b-old/x.md") && !within("/a/b"));
        let (lo, hi) = prefix_range("/m.eml#".into());
        assert_eq!((lo.as_str(), hi.as_str()), ("/m.eml#", "/m.eml$"));
    }

    #[test]
    fn a_file_is_gone_when_missing_or_replaced_but_not_when_it_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.md");
        std::fs::write(&file, "x").unwrap();
        assert!(!file_is_gone(&file));
        assert!(file_is_gone(&dir.path().join("b.md")));
        // a path through a file
        assert!(file_is_gone(&file.join("inner.md")));
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        assert!(file_is_gone(&file));
    }
}
