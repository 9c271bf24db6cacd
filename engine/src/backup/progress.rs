//! Progress reporting of backups and restores.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

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
