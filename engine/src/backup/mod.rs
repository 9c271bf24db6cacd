//! Backup and restore.
//!
//! - [`create_backup`]: consistent online snapshot of the SQLite database
//!   (SQLite backup API, writers keep going) plus extra files (e.g. the vector
//!   index), a [`Manifest`] with the sha256 of every file, packed as one
//!   `<id>.tar.gz`, streamed to a directory or to S3-compatible storage, with
//!   the sidecars `<id>.manifest.json` and `<id>.sha256` (written last: its
//!   presence marks a complete backup).
//! - [`fetch_and_verify`]: download an archive, check its sha256 against the
//!   sidecar, extract it into a staging directory and check every file's size
//!   and sha256 against the manifest — all before anything is replaced.
//! - [`swap_in`]: move the verified files into the data directory, keeping the
//!   previous ones in `previous-<timestamp>/` until [`SwapGuard::commit`]
//!   (or bring them back with [`SwapGuard::rollback`]).
//! - [`list_backups`] / [`delete_backup`]: for listings and retention.
//!
//! Object-store operations are retried with jittered exponential backoff on
//! transient errors (see [`crate::resilience`]).

pub mod archive;
pub mod location;
pub mod snapshot;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::Instrument;

pub use archive::{FORMAT_VERSION, FileEntry, MANIFEST_NAME, Manifest};
pub use location::{ACCEPTED_FORMS, Location, S3Location};
pub use snapshot::{SnapshotSource, snapshot_sqlite};

use crate::resilience::{retry_policy, retry_transient};

/// File name suffix of archives.
pub const ARCHIVE_SUFFIX: &str = ".tar.gz";
/// Suffix of the checksum sidecar (`sha256sum` format).
pub const SHA256_SUFFIX: &str = ".sha256";
/// Suffix of the manifest sidecar.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";
/// Chunk size for streaming uploads (S3 multipart part size).
pub const UPLOAD_CHUNK: usize = 8 << 20;

/// Errors of backup and restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination URL could not be understood.
    #[error(
        "invalid backup location {url:?}: {reason}; {}",
        location::ACCEPTED_FORMS
    )]
    InvalidLocation {
        /// The URL (credentials redacted).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A backup id is not a safe file name.
    #[error(
        "invalid backup id {0:?}: use letters, digits, '.', '_' and '-' (not starting with '.')"
    )]
    InvalidId(String),
    /// A bad request (e.g. a file name that is not in the manifest).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No such backup.
    #[error("backup not found: {0}")]
    NotFound(String),
    /// A checksum (or size) did not match.
    #[error("checksum mismatch for {file}: expected {expected}, got {actual}")]
    Checksum {
        /// The file (archive name or file inside the archive).
        file: String,
        /// Expected value.
        expected: String,
        /// Actual value.
        actual: String,
    },
    /// An archive entry is unsafe (absolute path, `..`, link) or not in the manifest.
    #[error("rejected archive entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// Entry name.
        entry: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The archive is malformed.
    #[error("invalid backup archive: {0}")]
    InvalidArchive(String),
    /// The archive was written by an unknown format version.
    #[error("unsupported backup format version {0} (this engine reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u32),
    /// The staging directory exists and is not empty.
    #[error("staging directory {0} exists and is not empty")]
    StagingNotEmpty(PathBuf),
    /// SQLite error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Object store error.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// File-system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// JSON error.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A background task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

pub(crate) fn io_err(path: &Path, source: io::Error) -> BackupError {
    BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl BackupError {
    /// Whether retrying may help (network/server-side object-store failures).
    pub fn is_transient(&self) -> bool {
        match self {
            BackupError::ObjectStore(e) => is_transient_store_error(e),
            _ => false,
        }
    }
}

fn is_transient_store_error(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    matches!(e, E::Generic { .. } | E::JoinError { .. })
}

/// Phase of a backup or restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Copying the database with the SQLite backup API.
    Snapshot,
    /// Packing the archive.
    Archive,
    /// Uploading the archive.
    Upload,
    /// Downloading the archive.
    Download,
    /// Extracting and verifying checksums.
    Verify,
    /// Finished.
    Done,
}

/// A progress update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupProgress {
    /// Current phase.
    pub phase: Phase,
    /// Bytes done in this phase.
    pub bytes_done: u64,
    /// Bytes in this phase (0 when unknown).
    pub bytes_total: u64,
}

impl BackupProgress {
    /// Build a progress value.
    pub fn new(phase: Phase, bytes_done: u64, bytes_total: u64) -> Self {
        Self {
            phase,
            bytes_done,
            bytes_total,
        }
    }
}

/// Receives progress updates (must be cheap: called from blocking threads).
pub type ProgressSink = Arc<dyn Fn(BackupProgress) + Send + Sync>;

/// A sink that ignores updates.
pub fn no_progress() -> ProgressSink {
    Arc::new(|_| {})
}

/// Where document and chunk counts for the manifest come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counts {
    /// Values given by the caller.
    Fixed {
        /// Documents.
        documents: u64,
        /// Chunks.
        chunks: u64,
    },
    /// Two `SELECT count(*) ...` queries run against the snapshot itself, so
    /// the counts match the snapshot exactly (recommended).
    Sql {
        /// Query returning the document count.
        documents: String,
        /// Query returning the chunk count.
        chunks: String,
    },
}

impl Default for Counts {
    fn default() -> Self {
        Counts::Fixed {
            documents: 0,
            chunks: 0,
        }
    }
}

/// What to back up and where.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// The SQLite database (snapshotted online with the backup API). It is
    /// stored under its file name (e.g. `instant-db.sqlite`).
    pub db_path: PathBuf,
    /// Extra files as (name in the archive/data dir, path), e.g. the vector
    /// index files; copied as they are (the caller keeps them stable).
    pub extra_files: Vec<(String, PathBuf)>,
    /// Counts for the manifest.
    pub counts: Counts,
    /// Destination folder.
    pub destination: Location,
    /// Backup id; `None` → `YYYYMMDDTHHMMSSZ-<8 hex>`.
    pub backup_id: Option<String>,
    /// Free-form data stored in the manifest.
    pub extra: serde_json::Value,
    /// Directory for temporary files (default: the system temp dir).
    pub work_dir: Option<PathBuf>,
}

impl BackupRequest {
    /// A request with defaults for everything but the database and the destination.
    pub fn new(db_path: impl Into<PathBuf>, destination: Location) -> Self {
        Self {
            db_path: db_path.into(),
            extra_files: Vec::new(),
            counts: Counts::default(),
            destination,
            backup_id: None,
            extra: serde_json::Value::Null,
            work_dir: None,
        }
    }
}

/// Result of [`create_backup`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupReport {
    /// Backup id.
    pub id: String,
    /// Full URL of the archive (no credentials).
    pub location: String,
    /// Archive size in bytes.
    pub size_bytes: u64,
    /// Archive sha256 (hex).
    pub sha256: String,
    /// The manifest.
    pub manifest: Manifest,
    /// Time taken.
    pub duration: Duration,
}

/// One backup in a listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupEntry {
    /// Backup id.
    pub id: String,
    /// Full URL of the archive.
    pub url: String,
    /// Archive size.
    pub size_bytes: u64,
    /// Last modification time of the archive.
    pub last_modified: Option<DateTime<Utc>>,
    /// Whether the `.sha256` sidecar exists (the backup completed).
    pub complete: bool,
}

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

/// Validate a backup id (safe as a file name and an object key).
pub fn validate_id(id: &str) -> Result<(), BackupError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(BackupError::InvalidId(id.to_string()))
    }
}

/// A fresh id: `YYYYMMDDTHHMMSSZ-<8 hex>` (sorts by time).
pub fn new_backup_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", Utc::now().format("%Y%m%dT%H%M%SZ"), &u[..8])
}

fn task_err(e: tokio::task::JoinError) -> BackupError {
    BackupError::Task(e.to_string())
}

fn store_policy() -> backon::ExponentialBuilder {
    retry_policy(5, Duration::from_secs(60))
}

// ---------------------------------------------------------------- storage ops

async fn put_file(
    loc: &Location,
    name: &str,
    src: &Path,
    progress: &ProgressSink,
) -> Result<(), BackupError> {
    let total = tokio::fs::metadata(src)
        .await
        .map_err(|e| io_err(src, e))?
        .len();
    match loc {
        Location::Dir(dir) => {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| io_err(dir, e))?;
            let dst = dir.join(name);
            let partial = dir.join(format!("{name}.partial"));
            let mut r = tokio::fs::File::open(src)
                .await
                .map_err(|e| io_err(src, e))?;
            let mut w = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| io_err(&partial, e))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut done = 0u64;
            loop {
                let n = r.read(&mut buf).await.map_err(|e| io_err(src, e))?;
                if n == 0 {
                    break;
                }
                w.write_all(&buf[..n])
                    .await
                    .map_err(|e| io_err(&partial, e))?;
                done += n as u64;
                progress(BackupProgress::new(Phase::Upload, done, total));
            }
            w.sync_all().await.map_err(|e| io_err(&partial, e))?;
            drop(w);
            tokio::fs::rename(&partial, &dst)
                .await
                .map_err(|e| io_err(&dst, e))?;
            Ok(())
        }
        Location::S3(s) => {
            let key = Location::s3_key(s, name);
            retry_transient(
                "backup upload",
                store_policy(),
                || upload_s3(s.store.as_ref(), &key, src, total, progress),
                BackupError::is_transient,
            )
            .await
        }
    }
}

async fn upload_s3(
    store: &dyn ObjectStore,
    key: &object_store::path::Path,
    src: &Path,
    total: u64,
    progress: &ProgressSink,
) -> Result<(), BackupError> {
    let upload = store.put_multipart(key).await?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK);
    let res: Result<(), BackupError> = async {
        let mut r = tokio::fs::File::open(src)
            .await
            .map_err(|e| io_err(src, e))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut done = 0u64;
        loop {
            let n = r.read(&mut buf).await.map_err(|e| io_err(src, e))?;
            if n == 0 {
                break;
            }
            w.wait_for_capacity(4).await?;
            w.write(&buf[..n]);
            done += n as u64;
            progress(BackupProgress::new(Phase::Upload, done, total));
        }
        Ok(())
    }
    .await;
    match res {
        Ok(()) => {
            w.finish().await?;
            Ok(())
        }
        Err(e) => {
            if let Err(abort) = w.abort().await {
                tracing::warn!(error = %abort, "aborting multipart upload failed");
            }
            Err(e)
        }
    }
}

async fn put_bytes(loc: &Location, name: &str, data: Vec<u8>) -> Result<(), BackupError> {
    match loc {
        Location::Dir(dir) => {
            let dst = dir.join(name);
            let partial = dir.join(format!("{name}.partial"));
            tokio::fs::write(&partial, &data)
                .await
                .map_err(|e| io_err(&partial, e))?;
            tokio::fs::rename(&partial, &dst)
                .await
                .map_err(|e| io_err(&dst, e))
        }
        Location::S3(s) => {
            let key = Location::s3_key(s, name);
            let payload = bytes::Bytes::from(data);
            retry_transient(
                "backup put",
                store_policy(),
                || async {
                    s.store.put(&key, PutPayload::from(payload.clone())).await?;
                    Ok(())
                },
                BackupError::is_transient,
            )
            .await
        }
    }
}

/// Read a small object; `Ok(None)` when it does not exist.
async fn get_bytes(loc: &Location, name: &str) -> Result<Option<Vec<u8>>, BackupError> {
    match loc {
        Location::Dir(dir) => {
            let p = dir.join(name);
            match tokio::fs::read(&p).await {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err(&p, e)),
            }
        }
        Location::S3(s) => {
            let key = Location::s3_key(s, name);
            retry_transient(
                "backup get",
                store_policy(),
                || async {
                    match s.store.get(&key).await {
                        Ok(r) => Ok(Some(r.bytes().await?.to_vec())),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(BackupError::from(e)),
                    }
                },
                BackupError::is_transient,
            )
            .await
        }
    }
}

async fn get_to_file(
    loc: &Location,
    name: &str,
    dst: &Path,
    progress: &ProgressSink,
) -> Result<(), BackupError> {
    match loc {
        Location::Dir(dir) => {
            let src = dir.join(name);
            let mut r = match tokio::fs::File::open(&src).await {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(BackupError::NotFound(loc.url_for(name)));
                }
                Err(e) => return Err(io_err(&src, e)),
            };
            let total = r.metadata().await.map_err(|e| io_err(&src, e))?.len();
            let mut w = tokio::fs::File::create(dst)
                .await
                .map_err(|e| io_err(dst, e))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut done = 0u64;
            loop {
                let n = r.read(&mut buf).await.map_err(|e| io_err(&src, e))?;
                if n == 0 {
                    break;
                }
                w.write_all(&buf[..n]).await.map_err(|e| io_err(dst, e))?;
                done += n as u64;
                progress(BackupProgress::new(Phase::Download, done, total));
            }
            w.sync_all().await.map_err(|e| io_err(dst, e))?;
            Ok(())
        }
        Location::S3(s) => {
            let key = Location::s3_key(s, name);
            retry_transient(
                "backup download",
                store_policy(),
                || async {
                    let r = match s.store.get(&key).await {
                        Ok(r) => r,
                        Err(object_store::Error::NotFound { .. }) => {
                            return Err(BackupError::NotFound(loc.url_for(name)));
                        }
                        Err(e) => return Err(e.into()),
                    };
                    let total = r.meta.size;
                    let mut stream = r.into_stream();
                    let mut w = tokio::fs::File::create(dst)
                        .await
                        .map_err(|e| io_err(dst, e))?;
                    let mut done = 0u64;
                    while let Some(chunk) = stream.try_next().await? {
                        w.write_all(&chunk).await.map_err(|e| io_err(dst, e))?;
                        done += chunk.len() as u64;
                        progress(BackupProgress::new(Phase::Download, done, total));
                    }
                    w.sync_all().await.map_err(|e| io_err(dst, e))?;
                    Ok(())
                },
                BackupError::is_transient,
            )
            .await
        }
    }
}

async fn delete_object(loc: &Location, name: &str) -> Result<bool, BackupError> {
    match loc {
        Location::Dir(dir) => {
            let p = dir.join(name);
            match tokio::fs::remove_file(&p).await {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io_err(&p, e)),
            }
        }
        Location::S3(s) => {
            let key = Location::s3_key(s, name);
            retry_transient(
                "backup delete",
                store_policy(),
                || async {
                    // S3 DELETE is idempotent; check existence first to report it.
                    match s.store.head(&key).await {
                        Ok(_) => {}
                        Err(object_store::Error::NotFound { .. }) => return Ok(false),
                        Err(e) => return Err(BackupError::from(e)),
                    }
                    s.store.delete(&key).await?;
                    Ok(true)
                },
                BackupError::is_transient,
            )
            .await
        }
    }
}

/// (name, size, last_modified) of the objects directly in the folder.
async fn list_objects(
    loc: &Location,
) -> Result<Vec<(String, u64, Option<DateTime<Utc>>)>, BackupError> {
    match loc {
        Location::Dir(dir) => {
            let mut out = Vec::new();
            let mut rd = match tokio::fs::read_dir(dir).await {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(io_err(dir, e)),
            };
            while let Some(ent) = rd.next_entry().await.map_err(|e| io_err(dir, e))? {
                let md = ent.metadata().await.map_err(|e| io_err(&ent.path(), e))?;
                if !md.is_file() {
                    continue;
                }
                let modified = md.modified().ok().map(DateTime::<Utc>::from);
                out.push((
                    ent.file_name().to_string_lossy().into_owned(),
                    md.len(),
                    modified,
                ));
            }
            Ok(out)
        }
        Location::S3(s) => {
            let prefix =
                (!s.prefix.is_empty()).then(|| object_store::path::Path::from(s.prefix.as_str()));
            let res = retry_transient(
                "backup list",
                store_policy(),
                || async {
                    Ok::<_, BackupError>(s.store.list_with_delimiter(prefix.as_ref()).await?)
                },
                BackupError::is_transient,
            )
            .await?;
            Ok(res
                .objects
                .into_iter()
                .filter_map(|m| {
                    let name = m.location.filename()?.to_string();
                    Some((name, m.size, Some(m.last_modified)))
                })
                .collect())
        }
    }
}

// ---------------------------------------------------------------- backup

/// Take a backup: snapshot, manifest, archive, upload, sidecars. Runs in a
/// `backup` span; failures are logged.
pub async fn create_backup(
    req: BackupRequest,
    progress: ProgressSink,
) -> Result<BackupReport, BackupError> {
    let span = tracing::info_span!(
        "backup",
        destination = %req.destination,
        id = tracing::field::Empty
    );
    let res = create_backup_impl(req, progress)
        .instrument(span.clone())
        .await;
    if let Err(e) = &res {
        span.in_scope(|| tracing::error!(error = %e, "backup failed"));
    }
    res
}

async fn create_backup_impl(
    req: BackupRequest,
    progress: ProgressSink,
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    let id = match &req.backup_id {
        Some(id) => id.clone(),
        None => new_backup_id(),
    };
    validate_id(&id)?;
    let db_name = req
        .db_path
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            BackupError::InvalidRequest(format!("bad database path {}", req.db_path.display()))
        })?;
    let mut names = vec![db_name.clone()];
    for (name, _) in &req.extra_files {
        archive::validate_entry_name(name)?;
        if name == MANIFEST_NAME || names.contains(name) {
            return Err(BackupError::InvalidRequest(format!(
                "duplicate or reserved file name {name:?}"
            )));
        }
        names.push(name.clone());
    }
    tracing::Span::current().record("id", id.as_str());
    tracing::info!("backup started");

    let work = match &req.work_dir {
        Some(d) => tempfile::Builder::new()
            .prefix(".instantdb-backup-")
            .tempdir_in(d),
        None => tempfile::Builder::new()
            .prefix("instantdb-backup-")
            .tempdir(),
    }
    .map_err(|e| io_err(req.work_dir.as_deref().unwrap_or(Path::new("<temp>")), e))?;
    let work_path = work.path().to_path_buf();
    let archive_name = format!("{id}{ARCHIVE_SUFFIX}");

    // Blocking part: snapshot, copy, hash, archive.
    let (manifest, archive_path, size, sha) = {
        let req = req.clone();
        let id = id.clone();
        let progress = progress.clone();
        let archive_name = archive_name.clone();
        tokio::task::spawn_blocking(move || -> Result<_, BackupError> {
            let files_dir = work_path.join("files");
            std::fs::create_dir_all(&files_dir).map_err(|e| io_err(&files_dir, e))?;
            let created_at = Utc::now();
            let db_dst = files_dir.join(&db_name);
            let p = progress.clone();
            snapshot_sqlite(&req.db_path, &db_dst, move |x| p(x))?;
            let (documents, chunks) = match &req.counts {
                Counts::Fixed { documents, chunks } => (*documents, *chunks),
                Counts::Sql { documents, chunks } => {
                    let c = rusqlite::Connection::open_with_flags(
                        &db_dst,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                    )?;
                    let d: i64 = c.query_row(documents, [], |r| r.get(0))?;
                    let k: i64 = c.query_row(chunks, [], |r| r.get(0))?;
                    (u64::try_from(d).unwrap_or(0), u64::try_from(k).unwrap_or(0))
                }
            };
            for (name, src) in &req.extra_files {
                let dst = files_dir.join(name);
                if let Some(parent) = dst.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
                }
                std::fs::copy(src, &dst).map_err(|e| io_err(src, e))?;
            }
            let mut files = Vec::new();
            let mut all = vec![db_name.clone()];
            all.extend(req.extra_files.iter().map(|(n, _)| n.clone()));
            for name in all {
                let (size, sha256) = archive::hash_file(&files_dir.join(&name))?;
                files.push(FileEntry { name, size, sha256 });
            }
            let manifest = Manifest {
                format_version: FORMAT_VERSION,
                backup_id: id,
                created_at,
                engine_version: env!("CARGO_PKG_VERSION").to_string(),
                document_count: documents,
                chunk_count: chunks,
                database: db_name,
                files,
                extra: req.extra.clone(),
            };
            let archive_path = work_path.join(&archive_name);
            let (size, sha) =
                archive::write_archive(&files_dir, &manifest, &archive_path, &*progress)?;
            // the copies are in the archive now
            std::fs::remove_dir_all(&files_dir).map_err(|e| io_err(&files_dir, e))?;
            Ok((manifest, archive_path, size, sha))
        })
        .await
        .map_err(task_err)??
    };

    put_file(&req.destination, &archive_name, &archive_path, &progress).await?;
    put_bytes(
        &req.destination,
        &format!("{id}{MANIFEST_SUFFIX}"),
        serde_json::to_vec_pretty(&manifest)?,
    )
    .await?;
    put_bytes(
        &req.destination,
        &format!("{id}{SHA256_SUFFIX}"),
        format!("{sha}  {archive_name}\n").into_bytes(),
    )
    .await?;
    drop(work);
    progress(BackupProgress::new(Phase::Done, size, size));
    let report = BackupReport {
        id,
        location: req.destination.url_for(&archive_name),
        size_bytes: size,
        sha256: sha,
        manifest,
        duration: started.elapsed(),
    };
    tracing::info!(
        location = %report.location,
        size_bytes = report.size_bytes,
        sha256 = %report.sha256,
        documents = report.manifest.document_count,
        chunks = report.manifest.chunk_count,
        duration_ms = report.duration.as_millis() as u64,
        "backup completed"
    );
    Ok(report)
}

/// Backups in a folder, oldest first (ids sort by time when generated by
/// [`new_backup_id`]; otherwise by last modification).
pub async fn list_backups(location: &Location) -> Result<Vec<BackupEntry>, BackupError> {
    let objects = list_objects(location).await?;
    let mut out: Vec<BackupEntry> = objects
        .iter()
        .filter_map(|(name, size, modified)| {
            let id = name.strip_suffix(ARCHIVE_SUFFIX)?;
            validate_id(id).ok()?;
            let sidecar = format!("{id}{SHA256_SUFFIX}");
            Some(BackupEntry {
                id: id.to_string(),
                url: location.url_for(name),
                size_bytes: *size,
                last_modified: *modified,
                complete: objects.iter().any(|(n, _, _)| *n == sidecar),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        a.last_modified
            .cmp(&b.last_modified)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(out)
}

/// Read the manifest sidecar of a backup (without downloading the archive).
pub async fn read_manifest(location: &Location, id: &str) -> Result<Manifest, BackupError> {
    validate_id(id)?;
    let name = format!("{id}{MANIFEST_SUFFIX}");
    match get_bytes(location, &name).await? {
        Some(b) => Ok(serde_json::from_slice(&b)?),
        None => Err(BackupError::NotFound(location.url_for(&name))),
    }
}

/// Delete a backup (archive and sidecars). `NotFound` when the archive does not exist.
pub async fn delete_backup(location: &Location, id: &str) -> Result<(), BackupError> {
    validate_id(id)?;
    // the completion marker first, so a half-deleted backup is never listed complete
    delete_object(location, &format!("{id}{SHA256_SUFFIX}")).await?;
    delete_object(location, &format!("{id}{MANIFEST_SUFFIX}")).await?;
    let archive = format!("{id}{ARCHIVE_SUFFIX}");
    if !delete_object(location, &archive).await? {
        return Err(BackupError::NotFound(location.url_for(&archive)));
    }
    tracing::info!(id, location = %location, "backup deleted");
    Ok(())
}

// ---------------------------------------------------------------- restore

/// Removes a directory on drop unless disarmed.
struct RemoveOnDrop(Option<PathBuf>);

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
/// [`BackupReport::location`]), verify its sha256 against the `.sha256`
/// sidecar when present, extract it into `staging_dir` (created; must be
/// empty) and verify every file's size and sha256 against the manifest.
/// On any error `staging_dir` is removed.
pub async fn fetch_and_verify(
    source: &str,
    staging_dir: &Path,
    progress: ProgressSink,
) -> Result<VerifiedBackup, BackupError> {
    let span = tracing::info_span!("restore_fetch", source = tracing::field::Empty);
    let res = fetch_and_verify_impl(source, staging_dir, progress)
        .instrument(span.clone())
        .await;
    if let Err(e) = &res {
        span.in_scope(|| tracing::error!(error = %e, "restore download/verification failed"));
    }
    res
}

async fn fetch_and_verify_impl(
    source: &str,
    staging_dir: &Path,
    progress: ProgressSink,
) -> Result<VerifiedBackup, BackupError> {
    let (loc, name) = Location::parse_object(source)?;
    let id = name
        .strip_suffix(ARCHIVE_SUFFIX)
        .map(str::to_string)
        .unwrap_or_default();
    validate_id(&id)?;
    tracing::Span::current().record("source", loc.url_for(&name).as_str());

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

    let expected = match get_bytes(&loc, &format!("{id}{SHA256_SUFFIX}")).await? {
        Some(b) => {
            let text = String::from_utf8_lossy(&b);
            let hexsum = text
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            Some(hexsum)
        }
        None => {
            tracing::warn!("no .sha256 sidecar; relying on the per-file checksums of the manifest");
            None
        }
    };

    let staging = staging_dir.to_path_buf();
    let p = progress.clone();
    let (manifest, archive_sha) = tokio::task::spawn_blocking(move || -> Result<_, BackupError> {
        let (_, actual) = archive::hash_file(&download_path)?;
        if let Some(expected) = expected
            && expected != actual
        {
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

/// SQLite companion files moved together with a database file.
const SQLITE_COMPANIONS: &[&str] = &["-wal", "-shm", "-journal"];

fn companions(name: &str) -> Vec<String> {
    SQLITE_COMPANIONS
        .iter()
        .map(|s| format!("{name}{s}"))
        .collect()
}

/// Move a file; falls back to copy + rename when crossing file systems.
fn move_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let tmp = to.with_file_name(format!(
                "{}.partial",
                to.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            std::fs::copy(from, &tmp).map_err(|e| io_err(from, e))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_err(&tmp, e))?;
            std::fs::rename(&tmp, to).map_err(|e| io_err(to, e))?;
            std::fs::remove_file(from).map_err(|e| io_err(from, e))
        }
        Err(e) => Err(io_err(from, e)),
    }
}

/// Swapped-in restore; keeps the previous data until [`commit`](Self::commit)
/// or brings it back with [`rollback`](Self::rollback). Dropping it without
/// either keeps both (the previous data stays in `previous_dir`).
#[derive(Debug)]
#[must_use = "call commit() after the restored data passed its integrity check, or rollback()"]
pub struct SwapGuard {
    data_dir: PathBuf,
    previous_dir: PathBuf,
    /// names moved from data_dir to previous_dir
    saved: Vec<String>,
    /// names moved from staging into data_dir
    restored: Vec<String>,
    done: bool,
}

impl SwapGuard {
    /// Where the previous data is kept until commit.
    pub fn previous_dir(&self) -> &Path {
        &self.previous_dir
    }

    /// Files that were restored.
    pub fn restored_files(&self) -> &[String] {
        &self.restored
    }

    /// Keep the restored data and delete the previous one.
    pub fn commit(mut self) -> Result<(), BackupError> {
        self.done = true;
        match std::fs::remove_dir_all(&self.previous_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&self.previous_dir, e)),
        }
        tracing::info!(data_dir = %self.data_dir.display(), "restore committed; previous data removed");
        Ok(())
    }

    /// Remove the restored files and put the previous ones back.
    pub fn rollback(mut self) -> Result<(), BackupError> {
        self.done = true;
        self.undo()
    }

    fn undo(&mut self) -> Result<(), BackupError> {
        for name in self.restored.drain(..) {
            let mut all = vec![name.clone()];
            all.extend(companions(&name));
            for n in all {
                let p = self.data_dir.join(&n);
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&p, e)),
                }
            }
        }
        for name in self.saved.drain(..) {
            move_file(&self.previous_dir.join(&name), &self.data_dir.join(&name))?;
        }
        match std::fs::remove_dir_all(&self.previous_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&self.previous_dir, e)),
        }
        tracing::warn!(data_dir = %self.data_dir.display(), "restore rolled back; previous data is back");
        Ok(())
    }
}

impl Drop for SwapGuard {
    fn drop(&mut self) {
        if !self.done {
            tracing::warn!(
                previous = %self.previous_dir.display(),
                "restore neither committed nor rolled back; previous data kept"
            );
        }
    }
}

/// Move `files` (names from the manifest) from the verified staging dir into
/// `data_dir`. Existing files of those names, and their SQLite companions
/// (`-wal`, `-shm`, `-journal`), are first moved into
/// `<data_dir>/previous-<timestamp>/`. Use the same file system for staging
/// and data (renames); otherwise files are copied. The database must be
/// closed by the caller. On error, everything done so far is undone.
pub fn swap_in(
    data_dir: &Path,
    verified: &VerifiedBackup,
    files: &[&str],
) -> Result<SwapGuard, BackupError> {
    for f in files {
        archive::validate_entry_name(f)?;
        if verified.manifest.file(f).is_none() {
            return Err(BackupError::InvalidRequest(format!(
                "{f:?} is not in the backup manifest"
            )));
        }
        let staged = verified.dir.join(f);
        if !staged.is_file() {
            return Err(BackupError::InvalidRequest(format!(
                "{} is missing from the staging directory",
                staged.display()
            )));
        }
    }
    std::fs::create_dir_all(data_dir).map_err(|e| io_err(data_dir, e))?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let mut previous_dir = data_dir.join(format!("previous-{stamp}"));
    let mut n = 1;
    while previous_dir.exists() {
        previous_dir = data_dir.join(format!("previous-{stamp}-{n}"));
        n += 1;
    }
    std::fs::create_dir_all(&previous_dir).map_err(|e| io_err(&previous_dir, e))?;
    let mut guard = SwapGuard {
        data_dir: data_dir.to_path_buf(),
        previous_dir,
        saved: Vec::new(),
        restored: Vec::new(),
        done: false,
    };
    let res = (|| -> Result<(), BackupError> {
        for f in files {
            let mut all = vec![f.to_string()];
            all.extend(companions(f));
            for name in all {
                let cur = data_dir.join(&name);
                if cur.exists() {
                    move_file(&cur, &guard.previous_dir.join(&name))?;
                    guard.saved.push(name);
                }
            }
        }
        for f in files {
            move_file(&verified.dir.join(f), &data_dir.join(f))?;
            guard.restored.push(f.to_string());
        }
        Ok(())
    })();
    match res {
        Ok(()) => {
            tracing::info!(
                data_dir = %data_dir.display(),
                previous = %guard.previous_dir.display(),
                files = ?files,
                "restored files swapped in"
            );
            Ok(guard)
        }
        Err(e) => {
            guard.done = true;
            // put back what the staging dir gave us so a retry can work
            for f in guard.restored.clone() {
                let _ = move_file(&data_dir.join(&f), &verified.dir.join(&f));
            }
            guard.restored.clear();
            if let Err(undo) = guard.undo() {
                tracing::error!(error = %undo, "undoing a failed swap failed");
            }
            Err(e)
        }
    }
}
