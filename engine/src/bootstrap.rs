//! `restore --bootstrap`: the first start of a new instance from a backup (the operator's
//! `spec.bootstrap.fromBackup` runs it in an init container before the engine serves).
//!
//! It runs at every start of the pod, so it must never replace data: it restores only while the
//! data directory holds no database, and it is safe to cut at any moment. A marker file is
//! written before anything else and removed only once the restore is complete; while it is
//! there the database (the empty one the restore opens, or the one an interrupted swap put
//! back) is the bootstrap's own and is restored over again. Without the marker, an existing
//! database file means the instance already has its data, and nothing is touched. Only the
//! database file counts, not an empty directory: a fresh volume may hold `lost+found`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;
use crate::engine::{Engine, ModelLoading};
use crate::error::{Error, Result};
use crate::maintenance::RestoreReport;

/// Name of the marker in the data directory while a bootstrap restore has not completed.
pub const MARKER: &str = ".bootstrap-pending";

/// What a bootstrap does with a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No database yet, or the bootstrap's own unfinished one: restore into it.
    Restore,
    /// A database is there that the bootstrap did not start: keep it (the reason says so).
    Keep(String),
}

/// Decides from what is on disk (see the module comment).
pub fn decide(data_dir: &Path, db_path: &Path) -> Decision {
    if data_dir.join(MARKER).exists() || !db_path.exists() {
        return Decision::Restore;
    }
    Decision::Keep(format!(
        "{} already holds a database; the bootstrap restores only into a new instance and left it as it is",
        db_path.display()
    ))
}

/// Outcome of `restore --bootstrap`.
#[derive(Debug, Clone, Serialize)]
pub struct BootstrapReport {
    /// True when the backup was restored, false when the existing database was kept.
    pub restored: bool,
    /// Why nothing was restored (when `restored` is false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The restore's own report (when `restored` is true).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreReport>,
}

fn marker(config: &Config) -> PathBuf {
    config.data_dir.join(MARKER)
}

/// Restores `source` into the data directory of `config` unless it holds a database already.
pub async fn bootstrap(
    config: Config,
    source: &str,
    target: Option<crate::archive::TargetTime>,
    progress: crate::backup::ProgressSink,
) -> Result<BootstrapReport> {
    if let Decision::Keep(why) = decide(&config.data_dir, &config.db_path()) {
        tracing::info!(reason = %why, "bootstrap skipped");
        return Ok(BootstrapReport {
            restored: false,
            skipped: Some(why),
            restore: None,
        });
    }
    let marker = marker(&config);
    std::fs::create_dir_all(&config.data_dir)
        .and_then(|()| std::fs::write(&marker, source_note(source)))
        .map_err(|e| Error::io(format!("cannot write {}", marker.display()), e))?;
    let engine = std::sync::Arc::new(Engine::open(config, ModelLoading::Skip)?);
    let report = match target {
        None => crate::maintenance::restore(engine, source, progress).await?,
        // a point-in-time bootstrap: `source` is the destination folder
        Some(t) => {
            crate::archive::restore_to_time(
                engine,
                source,
                t,
                progress,
                std::sync::Arc::new(|_| {}),
            )
            .await?
            .restore
        }
    };
    std::fs::remove_file(&marker)
        .map_err(|e| Error::io(format!("cannot remove {}", marker.display()), e))?;
    Ok(BootstrapReport {
        restored: true,
        skipped: None,
        restore: Some(report),
    })
}

/// What the marker holds: the archive (credentials redacted), for whoever looks at the volume.
fn source_note(source: &str) -> String {
    format!(
        "bootstrap from {} not completed yet; the next start restores it again\n",
        crate::backup::redact_url(source)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_directory_without_a_database_or_with_the_bootstraps_marker_is_restored_into() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("instant-db.sqlite");
        std::fs::create_dir(dir.path().join("lost+found")).unwrap();
        assert_eq!(decide(dir.path(), &db), Decision::Restore);
        std::fs::write(&db, b"x").unwrap();
        assert!(
            matches!(decide(dir.path(), &db), Decision::Keep(why) if why.contains("already holds a database"))
        );
        std::fs::write(dir.path().join(MARKER), b"").unwrap();
        assert_eq!(decide(dir.path(), &db), Decision::Restore);
    }
}
