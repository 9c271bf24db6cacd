//! Consistent online snapshot of a SQLite database with the SQLite online
//! backup API (`rusqlite::backup::Backup`).
//!
//! Pages are copied in steps of [`PAGES_PER_STEP`] with a short pause between
//! steps, so writers keep going. When another connection writes to the source
//! between steps, SQLite restarts the copy; after [`MAX_RESTARTS`] restarts we
//! finish with a single step (`step(-1)`) that copies everything inside one
//! read transaction — in WAL mode that does not block writers either, and it
//! always terminates. The result is a single self-contained database file.

use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{BackupError, BackupProgress, Phase, io_err};

/// Pages copied per step.
pub const PAGES_PER_STEP: i32 = 256;
/// Pause between two steps.
pub const STEP_PAUSE: Duration = Duration::from_millis(5);
/// Restarts (caused by concurrent writers) tolerated before copying in one step.
pub const MAX_RESTARTS: u32 = 3;

/// What to snapshot: a database file path, or an open connection.
pub enum SnapshotSource<'a> {
    /// Open this database file (read-only) for the snapshot.
    Path(&'a Path),
    /// Use this connection (its `main` database).
    Connection(&'a Connection),
}

impl<'a> From<&'a Path> for SnapshotSource<'a> {
    fn from(p: &'a Path) -> Self {
        SnapshotSource::Path(p)
    }
}

impl<'a> From<&'a std::path::PathBuf> for SnapshotSource<'a> {
    fn from(p: &'a std::path::PathBuf) -> Self {
        SnapshotSource::Path(p.as_path())
    }
}

impl<'a> From<&'a Connection> for SnapshotSource<'a> {
    fn from(c: &'a Connection) -> Self {
        SnapshotSource::Connection(c)
    }
}

/// Copy the source database into a new file `dst` (which must not exist).
/// `progress` receives [`Phase::Snapshot`] updates in bytes (pages × page size).
/// Returns the size of the snapshot in bytes.
pub fn snapshot_sqlite<'a>(
    src: impl Into<SnapshotSource<'a>>,
    dst: &Path,
    progress: impl Fn(BackupProgress),
) -> Result<u64, BackupError> {
    let owned;
    let conn: &Connection = match src.into() {
        SnapshotSource::Connection(c) => c,
        SnapshotSource::Path(p) => {
            if !p.is_file() {
                return Err(io_err(
                    p,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "database file not found"),
                ));
            }
            owned = Connection::open_with_flags(
                p,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )?;
            owned.busy_timeout(Duration::from_secs(10))?;
            &owned
        }
    };
    if dst.exists() {
        return Err(io_err(
            dst,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "snapshot target exists"),
        ));
    }
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let page_size = u64::try_from(page_size).unwrap_or(4096);
    {
        let mut out = Connection::open(dst)?;
        {
            let backup = Backup::new(conn, &mut out)?;
            let mut restarts = 0u32;
            let mut last_remaining = i32::MAX;
            loop {
                let step = if restarts >= MAX_RESTARTS {
                    -1
                } else {
                    PAGES_PER_STEP
                };
                let r = backup.step(step)?;
                let p = backup.progress();
                let total = u64::try_from(p.pagecount).unwrap_or(0);
                let remaining = u64::try_from(p.remaining).unwrap_or(0);
                progress(BackupProgress::new(
                    Phase::Snapshot,
                    total.saturating_sub(remaining) * page_size,
                    total * page_size,
                ));
                match r {
                    StepResult::Done => break,
                    StepResult::More => {
                        if p.remaining > last_remaining {
                            restarts += 1;
                            tracing::debug!(restarts, "snapshot restarted by a concurrent writer");
                        }
                        last_remaining = p.remaining;
                        std::thread::sleep(STEP_PAUSE);
                    }
                    StepResult::Busy | StepResult::Locked => std::thread::sleep(STEP_PAUSE * 4),
                    _ => std::thread::sleep(STEP_PAUSE),
                }
            }
        }
        // A self-contained file: no WAL beside it, rollback journal mode.
        let _mode: String = out.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))?;
        out.close().map_err(|(_, e)| e)?;
    }
    let size = std::fs::metadata(dst).map_err(|e| io_err(dst, e))?.len();
    Ok(size)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_a_database_by_path_and_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1),(2),(3);",
        )
        .unwrap();
        let out1 = dir.path().join("s1.sqlite");
        let last = std::cell::Cell::new((0, 0));
        snapshot_sqlite(&db, &out1, |p| last.set((p.bytes_done, p.bytes_total))).unwrap();
        assert!(last.get().1 > 0 && last.get().0 == last.get().1);
        let out2 = dir.path().join("s2.sqlite");
        snapshot_sqlite(&c, &out2, |_| {}).unwrap();
        for out in [&out1, &out2] {
            let s = Connection::open(out).unwrap();
            let n: i64 = s
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 3);
            assert!(!out.with_extension("sqlite-wal").exists());
        }
        assert!(
            snapshot_sqlite(&db, &out1, |_| {}).is_err(),
            "existing target is refused"
        );
    }
}
