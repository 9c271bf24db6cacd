//! Continuous archiving and point-in-time restore (design and trade-offs: `docs/archiving.md`).
//!
//! - Capture: every document write appends a row to the change log in its own transaction
//!   ([`crate::store::changes`]).
//! - Shipping ([`shipper`]): a task beside the writer turns the rows after the shipped position
//!   into compressed, checksummed segments under `<destination>/archive/` within
//!   `archive.max_lag_secs`, records the position in the database and prunes shipped rows.
//! - Restore ([`pitr`]): the newest base snapshot (a backup) before the target time, plus the
//!   archived changes after it up to the target, replayed into the staged copy before the swap.
//! - Retention ([`retention`]): deleting a backup deletes the archived changes no kept base
//!   needs any more.

pub mod pitr;
pub mod retention;
pub mod segment;
pub mod shipper;

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::backup::{Location, ObjectLocation};
use crate::error::{Error, Result};

pub use pitr::{PitrReport, TargetTime, restore_to_time};
pub use shipper::{final_flush, run};

/// `archive:` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Where changes go: the same URL forms as backups, and normally the backup folder itself
    /// (the archive is its `archive/` sub-folder, so one URL restores to any time). Unset: no
    /// archiving.
    pub destination: Option<String>,
    /// Longest time a committed change waits before it is in the archive (while the store
    /// answers).
    pub max_lag_secs: u64,
    /// Changes kept on the volume while the destination fails; beyond it archiving says so in
    /// health, metrics and `GET /admin/archive` (changes are still kept, never dropped).
    pub max_buffer_bytes: u64,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            destination: None,
            max_lag_secs: 5,
            max_buffer_bytes: 1 << 30,
        }
    }
}

impl ArchiveConfig {
    pub fn enabled(&self) -> bool {
        self.destination
            .as_deref()
            .is_some_and(|d| !d.trim().is_empty())
    }

    /// Range checks ([`crate::config::Config::validate`]).
    pub fn validate(&self) -> std::result::Result<(), (&'static str, &'static str)> {
        if !(1..=3600).contains(&self.max_lag_secs) {
            return Err(("archive.max_lag_secs", "must be between 1 and 3600"));
        }
        if self.max_buffer_bytes < 1 << 20 {
            return Err((
                "archive.max_buffer_bytes",
                "must be at least 1048576 (1 MiB)",
            ));
        }
        Ok(())
    }
}

/// The `archive/` folder under a destination folder.
pub fn archive_folder(folder: &Location) -> Location {
    match folder {
        Location::Dir(d) => Location::Dir(d.join(segment::ARCHIVE_DIR)),
        Location::Object(s) => Location::Object(ObjectLocation {
            prefix: if s.prefix.is_empty() {
                segment::ARCHIVE_DIR.to_string()
            } else {
                format!("{}/{}", s.prefix, segment::ARCHIVE_DIR)
            },
            ..s.clone()
        }),
    }
}

/// What archiving is doing, for `GET /admin/archive`, health and metrics.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ArchiveStatus {
    pub enabled: bool,
    /// The destination folder, credentials redacted.
    pub destination: Option<String>,
    /// The archive generation the database belongs to now.
    pub generation: Option<String>,
    /// Every change up to this seq is in the archive.
    pub shipped_seq: i64,
    /// The newest change in the database.
    pub last_seq: i64,
    /// Commit time of the newest archived change (RFC 3339).
    pub last_archived_time: Option<String>,
    /// Seconds the oldest change not yet archived has waited (0 when none waits).
    pub lag_seconds: f64,
    /// Bytes of changes waiting on the volume.
    pub lag_bytes: i64,
    pub pending_changes: i64,
    /// `lag_bytes` passed `archive.max_buffer_bytes`: the destination has failed for long.
    pub buffer_full: bool,
    /// Whether `lag_seconds` is within `archive.max_lag_secs`.
    pub within_max_lag: bool,
    pub segments_shipped: u64,
    /// Destination operations (object-store requests; writes and listings of a directory) made
    /// since the start.
    pub requests: u64,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

/// Archiving's shared state: the shipper writes it, the API and metrics read it.
#[derive(Debug, Default)]
pub struct Archive {
    status: Mutex<ArchiveStatus>,
}

impl Archive {
    pub fn new(config: &ArchiveConfig) -> Archive {
        Archive {
            status: Mutex::new(ArchiveStatus {
                enabled: config.enabled(),
                destination: config.destination.as_deref().map(crate::backup::redact_url),
                within_max_lag: true,
                ..Default::default()
            }),
        }
    }

    pub fn status(&self) -> ArchiveStatus {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut ArchiveStatus)) {
        match self.status.lock() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

/// `GET /admin/archive`: the status plus the recovery window, read from the destination.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArchiveReport {
    #[serde(flatten)]
    pub status: ArchiveStatus,
    /// The earliest time a restore can reach in the current generation: its oldest base
    /// snapshot (or its start when it began on an empty database). `None`: no base yet, take a
    /// backup to the destination.
    pub first_recoverable_time: Option<String>,
    /// The latest time a restore can reach: the newest archived change (or the newest base).
    pub last_recoverable_time: Option<String>,
    /// Why the window is missing or short, and what to do.
    pub note: Option<String>,
}

/// Detaches a staged database (a restore's) from its archive generation (a file from before
/// archiving, schema 1, has nothing to detach) and, when archiving is on, begins a new
/// generation on it before it is swapped in, so that not one write after the swap falls
/// outside the archive.
pub fn detach_staged(db: &std::path::Path, archiving: bool) -> Result<()> {
    let mut c = rusqlite::Connection::open(db)?;
    if crate::store::changes::has_change_log(&c)? {
        crate::store::changes::detach(&c)?;
        if archiving {
            let tx = c.transaction()?;
            crate::store::changes::begin_generation(
                &tx,
                &segment::new_generation(chrono::Utc::now()),
            )?;
            tx.commit()?;
        }
    }
    // nothing may stay in a WAL beside the file: only the file itself is swapped in
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(())
}

/// The `archive` component of `/health/detailed`: degraded (never unready: serving goes on and
/// nothing is lost) while changes wait past `max_lag`, the buffer is full or shipping fails.
pub fn health_component(archive: &Archive) -> crate::health::ComponentHealth {
    let t = std::time::Instant::now();
    let s = archive.status();
    let status = if s.buffer_full || !s.within_max_lag || s.last_error.is_some() {
        crate::health::Status::Degraded
    } else {
        crate::health::Status::Healthy
    };
    let what = if s.buffer_full {
        Some(
            "archive buffer full: the destination has failed for long; changes pile up on the volume (kept, not dropped); fix the destination (last_error) or raise archive.max_buffer_bytes",
        )
    } else if s.last_error.is_some() {
        Some(
            "archiving fails; changes wait on the volume and are shipped once the destination answers",
        )
    } else if !s.within_max_lag {
        Some("changes wait longer than archive.max_lag_secs")
    } else {
        None
    };
    crate::health::ComponentHealth {
        status,
        response_time_ms: t.elapsed().as_secs_f64() * 1000.0,
        details: serde_json::json!({
            "generation": s.generation, "shipped_seq": s.shipped_seq, "lag_seconds": s.lag_seconds,
            "lag_bytes": s.lag_bytes, "buffer_full": s.buffer_full, "last_error": s.last_error,
            "last_archived_time": s.last_archived_time, "problem": what,
        }),
    }
}

/// Runs blocking work (SQLite, compression) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

pub(crate) fn err(e: crate::backup::BackupError) -> Error {
    crate::maintenance::backup_err(e)
}

/// [`ArchiveReport`] for an engine (lists the destination: a few requests, on demand only).
pub async fn report(engine: &Arc<crate::engine::Engine>) -> Result<ArchiveReport> {
    if engine.config.archive.enabled() && engine.store.damaged().is_none() {
        // the position as it is now, not as the shipper's last poll saw it
        let e = engine.clone();
        let state = blocking(move || e.store.change_log_state()).await?;
        shipper::publish(engine, &state);
    }
    let status = engine.archive.status();
    let Some(dest) = engine.config.archive.destination.as_deref() else {
        return Ok(ArchiveReport {
            status,
            first_recoverable_time: None,
            last_recoverable_time: None,
            note: Some("archiving is off: set archive.destination (INSTANT_DB_ARCHIVE__DESTINATION) to the backup folder URL".into()),
        });
    };
    let folder = crate::maintenance::location(engine, dest)?;
    let window = pitr::window(&folder, status.generation.as_deref()).await?;
    let last = match (&status.last_archived_time, &window.newest_base) {
        (Some(a), Some(b)) => Some(a.clone().max(b.clone())),
        (a, b) => a.clone().or_else(|| b.clone()),
    };
    let note = match &window.first {
        None => Some(
            "no base snapshot in the current archive generation yet: take a backup to the archive destination (POST /admin/backups) to open the recovery window".to_string(),
        ),
        Some(_) => None,
    };
    Ok(ArchiveReport {
        status,
        last_recoverable_time: window.first.as_ref().and(last),
        first_recoverable_time: window.first,
        note,
    })
}
