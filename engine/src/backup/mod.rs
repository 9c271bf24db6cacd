//! Backup and restore.
//!
//! - [`create_backup`] (`create`): consistent online snapshot of the SQLite database
//!   (SQLite backup API, writers keep going) plus extra files (e.g. the vector
//!   index), a [`Manifest`] with the sha256 of every file, packed as one
//!   `<id>.tar.gz`, streamed to a directory or to S3-compatible storage, with
//!   the sidecars `<id>.manifest.json` and `<id>.sha256` (written last: its
//!   presence marks a complete backup).
//! - [`fetch_and_verify`] (`restore`): refuse a backup without its `.sha256`, download
//!   the archive, check its sha256 against the sidecar, extract it into a staging directory
//!   and check every file's size and sha256 against the manifest — all before anything is
//!   replaced.
//! - [`swap_in`] (`swap`): swap the verified files into the data directory crash-safely
//!   (previous data kept in `previous-<timestamp>/`, a journal, rename(2) over the live
//!   path) until [`SwapGuard::commit`] or [`SwapGuard::rollback`];
//!   [`recover_interrupted_restore`] finishes an interrupted swap when the engine starts.
//! - [`list_backups`] / [`delete_backup`] (`catalog`): for listings and retention.
//! - [`redact_url`]: the one place credentials are removed from URLs.
//!
//! Object-store operations (`storage`) are retried with jittered exponential backoff on
//! transient errors, inside the location's circuit breaker when it has one
//! ([`Location::with_resilience`], see [`crate::resilience`]).

pub mod archive;
mod catalog;
mod create;
pub mod location;
mod progress;
mod redact;
mod restore;
mod roots;
pub mod snapshot;
pub(crate) mod storage;
mod swap;

use std::io;
use std::path::{Path, PathBuf};

use chrono::Utc;

pub use archive::{FORMAT_VERSION, FileEntry, MANIFEST_NAME, Manifest};
pub use catalog::{BackupEntry, delete_backup, list_backups, read_manifest};
pub use create::{BackupReport, BackupRequest, Counts, create_backup};
pub use location::{ACCEPTED_FORMS, DEFAULT_CREDENTIALS_DIR, Location, ObjectLocation, Service};
pub use progress::{BackupProgress, Phase, ProgressSink, no_progress};
pub use redact::redact_url;
pub use restore::{RemoveOnDrop, VerifiedBackup, fetch_and_verify, fetch_and_verify_from};
pub use roots::confine;
pub use snapshot::{SnapshotSource, snapshot_sqlite};
pub use swap::{
    PREVIOUS_PREFIX, RESTORE_JOURNAL, RESTORE_LOCK, Recovery, RestoreLock, STAGING_PREFIX,
    SwapGuard, SwapPlan, recover_interrupted_restore, swap_in,
};

/// File name suffix of archives.
pub const ARCHIVE_SUFFIX: &str = ".tar.gz";
/// Suffix of the checksum sidecar (`sha256sum` format).
pub const SHA256_SUFFIX: &str = ".sha256";
/// Suffix of the manifest sidecar.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";
/// Chunk size for streaming uploads (S3 multipart part size).
pub const UPLOAD_CHUNK: usize = 8 << 20;

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
    /// The credentials a location names (`credentials=NAME`) have no files (yet).
    #[error(
        "credentials {name} not found: {files} must exist (in Kubernetes the operator mounts them from the Secret {name}; a new Secret reaches the pod within about a minute, so retry); or drop credentials= to use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
    )]
    CredentialsNotFound {
        /// The credentials name.
        name: String,
        /// The files looked for.
        files: String,
    },
    /// A directory location outside `backup.allowed_roots`.
    #[error(
        "backup directory {path} ({resolved}) is outside the allowed backup roots ({roots}): \
         use a directory under one of them, or add its root to backup.allowed_roots \
         (INSTANT_DB_BACKUP_ALLOWED_ROOTS); nothing was written"
    )]
    OutsideRoots {
        /// The directory as given.
        path: String,
        /// The directory resolved (absolute, `..` and symlinks resolved).
        resolved: String,
        /// The roots allowed, resolved.
        roots: String,
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
    /// The backup has no `.sha256` sidecar: it never finished (or was partly deleted).
    #[error(
        "backup {0} is incomplete: its .sha256 sidecar is missing, so the backup did not finish or \
         was partly deleted; restore a complete backup instead (listed with \"complete\": true by \
         GET /admin/backups?destination=URL)"
    )]
    Incomplete(String),
    /// Another restore of the same data directory is running.
    #[error("another restore of this data directory is running; wait for it to finish")]
    RestoreInProgress,
    /// A restore was interrupted in a way that needs a decision (see the message).
    #[error("interrupted restore: {0}")]
    InterruptedRestore(String),
    /// The object store's circuit breaker is open after repeated failures.
    #[error(
        "object storage is failing: the circuit breaker opened after repeated errors; \
         not trying again for {retry_in_secs} s"
    )]
    CircuitOpen {
        /// Seconds until a probe is allowed.
        retry_in_secs: u64,
    },
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
