//! Reading one file for ingest.
//!
//! A confined read (a server ingest, limited to `ingest.allowed_roots`) opens the file first and
//! then asks the kernel where the opened file really is (`/proc/self/fd`), and reads only from
//! that handle. The walk already checked each path, but a directory on the path could be swapped
//! for a symbolic link between that check and the read; checking the open handle closes that
//! window. The open does not follow a final symbolic link and does not block (a FIFO swapped in
//! is refused as not a regular file instead of hanging the ingest).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{ProblemKind, SourceDoc};

type ReadError = (ProblemKind, String);

fn failed(e: std::io::Error) -> ReadError {
    (ProblemKind::Unreadable, format!("cannot read: {e}"))
}

/// Reads `path` whole, refusing files over `max_bytes`; with `roots`, only a file that really is
/// under one of them (canonical paths) is read.
pub(super) fn read_source(
    path: &Path,
    max_bytes: u64,
    metadata: Option<serde_json::Value>,
    roots: Option<&[PathBuf]>,
) -> std::result::Result<SourceDoc, ReadError> {
    let (file, real) = match roots {
        None => {
            let file = File::open(path).map_err(failed)?;
            let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            (file, real)
        }
        Some(roots) => open_confined(path, roots)?,
    };
    let meta = file.metadata().map_err(failed)?;
    if !meta.is_file() {
        return Err((
            ProblemKind::Unreadable,
            "not a regular file; not read".to_string(),
        ));
    }
    let over_limit = |len: u64| {
        (
            ProblemKind::TooLarge,
            format!("{len} bytes is over the {max_bytes}-byte limit (ingest.max_file_bytes)"),
        )
    };
    if meta.len() > max_bytes {
        return Err(over_limit(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // A file that grows while it is read still stops at the limit.
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() as u64 > max_bytes {
        return Err(over_limit(bytes.len() as u64));
    }
    let modified_at = meta.modified().ok().map(|t| {
        chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });
    Ok(SourceDoc {
        source: real.display().to_string(),
        name: path.display().to_string(),
        bytes,
        modified_at,
        metadata,
    })
}

#[cfg(target_os = "linux")]
fn open_confined(
    path: &Path,
    roots: &[PathBuf],
) -> std::result::Result<(File, PathBuf), ReadError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;

    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                (
                    ProblemKind::OutsideRoots,
                    "is a symbolic link (it was not when the walk checked it); not read"
                        .to_string(),
                )
            } else {
                failed(e)
            }
        })?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).map_err(|e| {
        (
            ProblemKind::Unreadable,
            format!("cannot tell where the opened file is (/proc/self/fd): {e}; not read"),
        )
    })?;
    if roots.iter().any(|r| real.starts_with(r)) {
        Ok((file, real))
    } else {
        Err((
            ProblemKind::OutsideRoots,
            format!(
                "resolves to {}, outside ingest.allowed_roots; not read",
                real.display()
            ),
        ))
    }
}

/// Without `/proc/self/fd` the real path is resolved before the open: the walk's guarantee,
/// with the window between check and read that Linux closes.
#[cfg(not(target_os = "linux"))]
fn open_confined(
    path: &Path,
    roots: &[PathBuf],
) -> std::result::Result<(File, PathBuf), ReadError> {
    let real = std::fs::canonicalize(path).map_err(failed)?;
    if !roots.iter().any(|r| real.starts_with(r)) {
        return Err((
            ProblemKind::OutsideRoots,
            format!(
                "resolves to {}, outside ingest.allowed_roots; not read",
                real.display()
            ),
        ));
    }
    Ok((File::open(&real).map_err(failed)?, real))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A canonical root with `inside.txt`, and a canonical directory outside it with `secret.txt`.
    fn layout() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(tmp.path()).unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("inside.txt"), "inside the root").unwrap();
        std::fs::write(outside.join("secret.txt"), "outside the root").unwrap();
        (tmp, root, outside)
    }

    #[test]
    fn a_confined_read_of_a_file_under_the_roots_returns_its_bytes_and_real_path() {
        let (_tmp, root, _) = layout();
        let path = root.join("inside.txt");
        let doc = read_source(&path, 1024, None, Some(std::slice::from_ref(&root))).unwrap();
        assert_eq!(doc.bytes, b"inside the root");
        assert_eq!(doc.source, path.display().to_string());
    }

    #[test]
    fn a_directory_swapped_for_a_link_out_of_the_roots_is_not_read() {
        let (_tmp, root, outside) = layout();
        // the walk saw root/sub/secret.txt as a real file; then sub became a link
        std::os::unix::fs::symlink(&outside, root.join("sub")).unwrap();
        let (outcome, reason) = read_source(
            &root.join("sub/secret.txt"),
            1024,
            None,
            Some(std::slice::from_ref(&root)),
        )
        .unwrap_err();
        assert_eq!(outcome.outcome(), super::super::FileOutcome::Skipped);
        assert!(reason.contains("outside ingest.allowed_roots"), "{reason}");
        // unconfined (the CLI on its own files) the same path is read
        let doc = read_source(&root.join("sub/secret.txt"), 1024, None, None).unwrap();
        assert_eq!(doc.bytes, b"outside the root");
    }

    #[test]
    fn a_file_swapped_for_a_link_is_not_followed_even_into_the_roots() {
        let (_tmp, root, _) = layout();
        std::os::unix::fs::symlink(root.join("inside.txt"), root.join("link.txt")).unwrap();
        let (outcome, reason) = read_source(
            &root.join("link.txt"),
            1024,
            None,
            Some(std::slice::from_ref(&root)),
        )
        .unwrap_err();
        assert_eq!(outcome.outcome(), super::super::FileOutcome::Skipped);
        assert!(reason.contains("symbolic link"), "{reason}");
    }

    #[test]
    fn what_is_not_a_regular_file_or_is_over_the_limit_is_not_read() {
        let (_tmp, root, _) = layout();
        let roots = [root.clone()];
        let (outcome, reason) = read_source(&root, 1024, None, Some(&roots)).unwrap_err();
        assert_eq!(outcome.outcome(), super::super::FileOutcome::Failed);
        assert!(reason.contains("not a regular file"), "{reason}");
        let (outcome, reason) =
            read_source(&root.join("inside.txt"), 5, None, Some(&roots)).unwrap_err();
        assert_eq!(outcome.outcome(), super::super::FileOutcome::Skipped);
        assert!(reason.contains("over the 5-byte limit"), "{reason}");
    }
}
