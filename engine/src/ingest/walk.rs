//! Finding the files to ingest under the paths a caller named.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::{FileReport, IngestOptions, ProblemKind, skip};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Files found under the given paths, in a stable order, with problems met on the way.
pub struct Walk {
    pub files: Vec<PathBuf>,
    pub problems: Vec<FileReport>,
    /// The canonical `allowed_roots` the files were confined to; the read checks them again on
    /// the opened file (see `read`).
    pub roots: Option<Vec<PathBuf>>,
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| n.starts_with('.') && n != "." && n != "..")
}

pub fn build_globset(patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(
            Glob::new(p)
                .map_err(|e| Error::InvalidInput(format!("invalid exclude pattern `{p}`: {e}")))?,
        );
    }
    b.build()
        .map_err(|e| Error::InvalidInput(format!("invalid exclude patterns: {e}")))
}

/// Where a walk may read. A server ingest is confined to `ingest.allowed_roots`: checking the
/// requested path alone is not enough, because a symbolic link inside a root may point anywhere.
struct Confinement {
    roots: Option<Vec<PathBuf>>,
}

impl Confinement {
    /// The real path of `path` when reading it is allowed; otherwise the report saying why not.
    fn check(&self, path: &Path) -> std::result::Result<PathBuf, FileReport> {
        let Some(roots) = &self.roots else {
            return Ok(path.to_path_buf());
        };
        let real = std::fs::canonicalize(path).map_err(|e| {
            skip(
                path,
                format!("cannot resolve: {e}"),
                ProblemKind::Unreadable,
            )
        })?;
        if roots.iter().any(|r| real.starts_with(r)) {
            Ok(real)
        } else {
            Err(skip(
                path,
                format!(
                    "resolves to {}, outside ingest.allowed_roots; not read",
                    real.display()
                ),
                ProblemKind::OutsideRoots,
            ))
        }
    }
}

/// Why a file of an unknown type is skipped, and what to do.
fn unsupported_reason(path: &Path) -> String {
    match path.extension() {
        Some(ext) => format!(
            "unsupported file type `.{}`: no parser reads it (the README lists the supported formats); convert it or exclude it",
            ext.to_string_lossy()
        ),
        None => "unsupported file: no extension to choose a parser by (the README lists the supported formats); rename it with the right extension or exclude it".to_string(),
    }
}

/// Walks `paths`: named files are taken as they are (even hidden ones); directories are walked
/// (recursively unless told otherwise), skipping hidden entries and excluded globs; files of
/// unsupported types are reported as skipped (the size limit is checked by the read). Symlink
/// loops are reported, not followed. A path
/// that cannot be read is reported and the others are still walked; only when none of them can
/// be read is that an error.
///
/// With `allowed_roots`, every file (and every linked directory) must resolve under one of
/// them; what resolves elsewhere is reported as skipped and never read. The files are returned
/// by their real paths, and the read checks the opened file against the roots again, so a link
/// swapped in after this check cannot redirect it.
pub fn walk(
    engine: &Engine,
    paths: &[PathBuf],
    opts: &IngestOptions,
    allowed_roots: Option<&[PathBuf]>,
) -> Result<Walk> {
    let cfg = &engine.config.ingest;
    let mut patterns = cfg.exclude.clone();
    patterns.extend(opts.exclude.iter().cloned());
    let excluded = build_globset(&patterns)?;
    let recursive = opts.recursive.unwrap_or(true);
    let confinement = Confinement {
        // A root that does not exist cannot contain anything, so it is simply dropped.
        roots: allowed_roots.map(|roots| {
            roots
                .iter()
                .filter_map(|r| std::fs::canonicalize(r).ok())
                .collect()
        }),
    };
    let mut files = vec![];
    let mut problems = vec![];
    let mut unreadable = vec![];
    for root in paths {
        let meta = match std::fs::metadata(root) {
            Ok(m) => m,
            Err(e) => {
                let reason = format!("cannot read {}: {e}", root.display());
                unreadable.push(reason.clone());
                problems.push(skip(root, reason, ProblemKind::Unreadable));
                continue;
            }
        };
        if meta.is_file() {
            match confinement.check(root) {
                Ok(p) => files.push(p),
                Err(report) => problems.push(report),
            }
            continue;
        }
        let mut walker = walkdir::WalkDir::new(root)
            .follow_links(cfg.follow_symlinks)
            .max_depth(if recursive { usize::MAX } else { 1 })
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name()));
        while let Some(entry) = walker.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = e
                        .path()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| root.clone());
                    let (reason, kind) = if e.loop_ancestor().is_some() {
                        (
                            "symbolic link loop; not followed".to_string(),
                            ProblemKind::SymlinkLoop,
                        )
                    } else {
                        (e.to_string(), ProblemKind::Unreadable)
                    };
                    problems.push(skip(&path, reason, kind));
                    continue;
                }
            };
            if entry.file_type().is_dir() {
                // A linked directory leading out of the roots is reported once, not per file.
                if entry.depth() > 0
                    && entry.path_is_symlink()
                    && let Err(report) = confinement.check(entry.path())
                {
                    problems.push(report);
                    walker.skip_current_dir();
                }
                continue;
            }
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            if excluded.is_match(path) {
                continue;
            }
            if engine.parsers.for_path(path).is_none() {
                // Reported, never dropped: a folder of PDFs that "ingested 0 files" with no
                // word of why is the failure this guards against.
                problems.push(skip(
                    path,
                    unsupported_reason(path),
                    ProblemKind::Unsupported,
                ));
                continue;
            }
            match confinement.check(path) {
                Ok(p) => files.push(p),
                Err(report) => problems.push(report),
            }
        }
    }
    if !paths.is_empty() && unreadable.len() == paths.len() {
        return Err(Error::InvalidInput(format!(
            "nothing to ingest: {}",
            unreadable.join("; ")
        )));
    }
    Ok(Walk {
        files,
        problems,
        roots: confinement.roots,
    })
}
