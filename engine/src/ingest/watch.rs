//! `sync --watch`: what a burst of file-system events means for the documents, and applying it.
//!
//! The watcher (the CLI) hands over the paths of debounced events; [`changes_of`] keeps those a
//! directory walk of the roots would have ingested (not hidden, not excluded, of a supported
//! type, within the depth asked for, not in the data directory) and splits them into paths that
//! exist (to ingest) and paths that are gone; [`apply_changes`] ingests the former and, with
//! `delete_missing`, removes the documents of the latter as a sync would.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{Progress, SyncOptions, SyncReport, build_globset, sync};
use crate::engine::Engine;
use crate::error::Result;

/// What a burst of events asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Existing files and directories to sync (added or changed).
    pub present: Vec<PathBuf>,
    /// Paths that are gone: the documents of files under them may have to go.
    pub gone: Vec<PathBuf>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.present.is_empty() && self.gone.is_empty()
    }
}

/// Sorts event paths into [`Changes`]; `roots` are the canonical watched roots.
pub fn changes_of(
    engine: &Engine,
    roots: &[PathBuf],
    opts: &SyncOptions,
    events: impl IntoIterator<Item = PathBuf>,
) -> Result<Changes> {
    let mut patterns = engine.config.ingest.exclude.clone();
    patterns.extend(opts.ingest.exclude.iter().cloned());
    let excluded = build_globset(&patterns)?;
    let recursive = opts.ingest.recursive.unwrap_or(true);
    let data_dir = std::fs::canonicalize(&engine.config.data_dir)
        .unwrap_or_else(|_| engine.config.data_dir.clone());
    let mut present = BTreeSet::new();
    let mut gone = BTreeSet::new();
    for path in events {
        let Some(root) = roots.iter().find(|r| path.starts_with(r)) else {
            continue;
        };
        if path.starts_with(&data_dir) || excluded.is_match(&path) {
            continue;
        }
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        // The walk skips hidden entries (editors' swap and temporary files among them).
        if rel
            .components()
            .any(|c| c.as_os_str().to_str().is_some_and(|n| n.starts_with('.')))
        {
            continue;
        }
        let depth = rel.components().count();
        if !recursive && depth > 1 {
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {
                // a directory created or moved in: its files, walked (not the root itself)
                if depth > 0 && recursive {
                    present.insert(path);
                }
            }
            Ok(_) => {
                if engine.parsers.for_path(&path).is_some() {
                    present.insert(path);
                }
            }
            // Gone (or moved away): a file, or a directory of files; the documents say which.
            Err(_) => {
                gone.insert(path);
            }
        }
    }
    // A file inside a directory that is synced anyway needs no sync of its own.
    let dirs: Vec<PathBuf> = present.iter().filter(|p| p.is_dir()).cloned().collect();
    let present = present
        .into_iter()
        .filter(|p| !dirs.iter().any(|d| p != d && p.starts_with(d)))
        .collect();
    Ok(Changes {
        present,
        gone: gone.into_iter().collect(),
    })
}

/// Applies one burst: a sync of the present paths (never deleting: they are not the roots),
/// then, with `delete_missing`, the removal of the documents whose files are gone under the
/// gone paths.
pub fn apply_changes(
    engine: &Engine,
    changes: &Changes,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    if !changes.present.is_empty() {
        let ingest_only = SyncOptions {
            dry_run: false,
            delete_missing: false,
            ingest: opts.ingest.clone(),
        };
        report = sync::sync_paths(engine, &changes.present, &ingest_only, None, progress)?;
        // `missing` of a sync of single files means nothing here: gone paths are below
        report.missing.clear();
    }
    if opts.delete_missing && !changes.gone.is_empty() && report.stopped.is_none() {
        let (deleted, stopped) = sync::delete_missing_under(engine, &changes.gone, progress)?;
        report.deleted.extend(deleted);
        report.stopped = stopped;
    }
    Ok(report)
}

/// The canonical roots a watch follows (those that resolve).
pub fn watch_roots(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect()
}
