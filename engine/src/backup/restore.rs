//! Restore, first half: download and verify a backup into a staging directory.

use std::io;
use std::path::{Path, PathBuf};

use tracing::Instrument;

use super::storage::{exists, get_bytes, get_to_file};
use super::{
    ARCHIVE_SUFFIX, BackupError, BackupProgress, Location, Manifest, Phase, ProgressSink,
    SHA256_SUFFIX, archive, io_err, task_err, validate_id,
};

/// A downloaded and fully verified backup in a staging directory.
#[derive(Debug, Clone)]
pub struct VerifiedBackup {
    /// Its manifest.
    pub manifest: Manifest,
    /// The staging directory holding the verified files.
    pub dir: PathBuf,
    /// sha256 of the archive.
    pub archive_sha256: String,
}

/// Removes a directory on drop unless disarmed (set the path to `None`).
pub struct RemoveOnDrop(pub Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take()
            && let Err(e) = std::fs::remove_dir_all(&p)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %p.display(), error = %e, "could not remove staging directory");
        }
    }
}

/// Download the archive at `source` (a URL as returned in
/// [`BackupReport::location`](super::BackupReport::location)), verify its sha256 against the
/// `.sha256` sidecar (a backup without it is refused as incomplete), extract it into
/// `staging_dir` (created; must be empty) and verify every file's size and sha256 against the
/// manifest. On any error `staging_dir` is removed.
pub async fn fetch_and_verify(
    source: &str,
    staging_dir: &Path,
    progress: ProgressSink,
) -> Result<VerifiedBackup, BackupError> {
    let (loc, name) = Location::parse_object(source)?;
    fetch_and_verify_from(loc, name, staging_dir, progress).await
}

/// [`fetch_and_verify`] for an archive `name` in an already parsed folder (e.g. one with a
/// circuit breaker, [`Location::with_resilience`]).
pub async fn fetch_and_verify_from(
    loc: Location,
    name: String,
    staging_dir: &Path,
    progress: ProgressSink,
) -> Result<VerifiedBackup, BackupError> {
    let span = tracing::info_span!("restore_fetch", source = tracing::field::Empty);
    let res = fetch_and_verify_impl(loc, name, staging_dir, progress)
        .instrument(span.clone())
        .await;
    if let Err(e) = &res {
        span.in_scope(|| tracing::error!(error = %e, "restore download/verification failed"));
    }
    res
}

async fn fetch_and_verify_impl(
    loc: Location,
    name: String,
    staging_dir: &Path,
    progress: ProgressSink,
) -> Result<VerifiedBackup, BackupError> {
    let id = name
        .strip_suffix(ARCHIVE_SUFFIX)
        .map(str::to_string)
        .unwrap_or_default();
    validate_id(&id)?;
    tracing::Span::current().record("source", loc.url_for(&name).as_str());

    // The sidecar is written last: without it the backup is incomplete, whatever the archive
    // holds. Checked before the (possibly large) download.
    let expected = match get_bytes(&loc, &format!("{id}{SHA256_SUFFIX}")).await? {
        Some(b) => String::from_utf8_lossy(&b)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase(),
        None if exists(&loc, &name).await? => {
            return Err(BackupError::Incomplete(loc.url_for(&name)));
        }
        None => return Err(BackupError::NotFound(loc.url_for(&name))),
    };

    if staging_dir.exists() {
        let mut rd = std::fs::read_dir(staging_dir).map_err(|e| io_err(staging_dir, e))?;
        if rd.next().is_some() {
            return Err(BackupError::StagingNotEmpty(staging_dir.to_path_buf()));
        }
    }
    std::fs::create_dir_all(staging_dir).map_err(|e| io_err(staging_dir, e))?;
    let mut cleanup = RemoveOnDrop(Some(staging_dir.to_path_buf()));

    // Download next to the staging dir (same file system, not inside it).
    let parent = staging_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let download = tempfile::Builder::new()
        .prefix(".instantdb-download-")
        .suffix(ARCHIVE_SUFFIX)
        .tempfile_in(parent)
        .map_err(|e| io_err(parent, e))?;
    let download_path = download.path().to_path_buf();
    get_to_file(&loc, &name, &download_path, &progress).await?;

    let staging = staging_dir.to_path_buf();
    let p = progress.clone();
    let (manifest, archive_sha) = tokio::task::spawn_blocking(move || -> Result<_, BackupError> {
        let (_, actual) = archive::hash_file(&download_path)?;
        if expected != actual {
            return Err(BackupError::Checksum {
                file: name,
                expected,
                actual,
            });
        }
        let m = archive::extract_and_verify(&download_path, &staging, &*p)?;
        Ok((m, actual))
    })
    .await
    .map_err(task_err)??;
    drop(download);
    if manifest.backup_id != id {
        tracing::warn!(manifest_id = %manifest.backup_id, "archive name and manifest id differ");
    }
    cleanup.0 = None;
    progress(BackupProgress::new(Phase::Done, 0, 0));
    tracing::info!(
        documents = manifest.document_count,
        chunks = manifest.chunk_count,
        files = manifest.files.len(),
        "backup downloaded and verified"
    );
    Ok(VerifiedBackup {
        manifest,
        dir: staging_dir.to_path_buf(),
        archive_sha256: archive_sha,
    })
}
