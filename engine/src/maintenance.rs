//! Integrity checks and repair of derived data.

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::Result;
use crate::store::IntegrityReport;

/// The database's own check plus the vector index's agreement with the embeddings table.
#[tracing::instrument(name = "integrity_check", skip_all)]
pub fn check(engine: &Engine) -> Result<IntegrityReport> {
    let mut report = engine.store.integrity_check()?;
    if report.ok || !report.problems.iter().any(|p| p.starts_with("sqlite:")) {
        let vectors = engine.index().len() as i64;
        let dims = engine.index().dimensions();
        let mut expected = 0i64;
        engine
            .store
            .for_each_embedding(engine.model_name(), |_, v| {
                if v.len() == dims {
                    expected += 1;
                }
            })?;
        if vectors != expected {
            report.ok = false;
            report.problems.push(format!(
                "vector index holds {vectors} vectors for {expected} stored embeddings"
            ));
        }
    }
    Ok(report)
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepairReport {
    pub fts_rows: usize,
    pub embeddings_added: usize,
    pub vectors: usize,
    pub integrity_ok: bool,
    pub problems: Vec<String>,
}

/// Rebuilds the full-text index, embeds chunks stored without vectors (when the model is
/// available) and rebuilds the vector index from SQLite.
#[tracing::instrument(name = "repair", skip_all)]
pub fn repair(engine: &Engine) -> Result<RepairReport> {
    let fts_rows = engine.store.rebuild_fts()?;
    let embeddings_added = if engine.embedder().is_some() {
        engine.backfill_embeddings()?
    } else {
        0
    };
    let _ = std::fs::remove_dir_all(engine.config.index_dir());
    engine.reload_index()?;
    engine.persist_index()?;
    let after = check(engine)?;
    Ok(RepairReport {
        fts_rows,
        embeddings_added,
        vectors: engine.index().len(),
        integrity_ok: after.ok,
        problems: after.problems,
    })
}

/// Takes a consistent online backup of the database (SQLite backup API, writes continue) plus
/// the persisted vector index, to a directory or S3-compatible location.
pub async fn backup(
    engine: std::sync::Arc<Engine>,
    destination: &str,
    backup_id: Option<String>,
    progress: crate::backup::ProgressSink,
) -> Result<crate::backup::BackupReport> {
    let location = location(&engine, destination)?;
    if let Some(id) = &backup_id {
        crate::backup::validate_id(id).map_err(backup_err)?;
    }
    // Persist the index first so the archive carries a graph matching (or close to) the snapshot;
    // a graph older than the snapshot is detected by its generation and rebuilt at restore.
    let e = engine.clone();
    let index_files =
        tokio::task::spawn_blocking(move || -> Result<Vec<(String, std::path::PathBuf)>> {
            e.persist_index()?;
            Ok(crate::index::VectorIndex::files(&e.config.index_dir())
                .into_iter()
                .filter_map(|p| {
                    p.file_name()
                        .map(|n| (format!("index/{}", n.to_string_lossy()), p.clone()))
                })
                .collect())
        })
        .await
        .map_err(|e| crate::error::Error::Internal(e.to_string()))??;
    let mut req = crate::backup::BackupRequest::new(engine.store.path(), location);
    req.extra_files = index_files;
    req.backup_id = backup_id;
    req.counts = crate::backup::Counts::Sql {
        documents: "SELECT count(*) FROM documents".into(),
        chunks: "SELECT count(*) FROM chunks".into(),
    };
    req.extra = serde_json::json!({"model": engine.model_name(), "schema_version": crate::store::schema::latest_version()});
    let work_dir = engine.config.data_dir.join(".backup-work");
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| crate::error::Error::io("create backup work directory", e))?;
    req.work_dir = Some(work_dir);
    crate::backup::create_backup(req, progress)
        .await
        .map_err(backup_err)
}

/// Name of the object-storage circuit breaker (`dependency` label of the breaker gauge).
pub const OBJECT_STORAGE: &str = "object_storage";

/// A backup folder URL parsed for this engine: S3 operations go through its `object_storage`
/// circuit breaker.
pub fn location(engine: &Engine, url: &str) -> Result<crate::backup::Location> {
    Ok(
        crate::backup::Location::parse_with(url, &engine.config.backup.credentials_dir)
            .map_err(backup_err)?
            .with_breaker(engine.breakers.get(OBJECT_STORAGE)),
    )
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RestoreReport {
    pub backup_id: String,
    /// The archive URL, credentials redacted.
    pub source: String,
    pub documents: i64,
    pub chunks: i64,
    pub vectors: usize,
    pub seconds: f64,
}

const DB_FILE: &str = "instant-db.sqlite";
/// The vector index directory, relative to the data directory (as in the archive).
const INDEX_DIR: &str = "index";

/// Restores from a backup archive URL: download, verify every checksum before touching
/// anything, swap the database in, and keep the previous data until the restored database
/// passes the integrity check (otherwise it is put back).
#[tracing::instrument(name = "restore", skip_all)]
pub async fn restore(
    engine: std::sync::Arc<Engine>,
    source: &str,
    progress: crate::backup::ProgressSink,
) -> Result<RestoreReport> {
    let started = std::time::Instant::now();
    // held until the swap is committed or rolled back, so no other process takes this restore
    // for an interrupted one, and two restores never interleave
    let lock = crate::backup::RestoreLock::acquire(&engine.config.data_dir).map_err(backup_err)?;
    let staging = engine.config.data_dir.join(format!(
        "{}{}",
        crate::backup::STAGING_PREFIX,
        uuid::Uuid::new_v4().simple()
    ));
    let (folder, name) =
        crate::backup::Location::parse_object_with(source, &engine.config.backup.credentials_dir)
            .map_err(backup_err)?;
    let folder = folder.with_breaker(engine.breakers.get(OBJECT_STORAGE));
    let verified = crate::backup::fetch_and_verify_from(folder, name, &staging, progress)
        .await
        .map_err(backup_err)?;
    let source = crate::backup::redact_url(source);
    let e = engine.clone();
    let report = tokio::task::spawn_blocking(move || -> Result<RestoreReport> {
        let out = swap_and_verify(&e, &verified, &source, started);
        let _ = std::fs::remove_dir_all(&verified.dir);
        drop(lock);
        out
    })
    .await
    .map_err(|e| crate::error::Error::Internal(e.to_string()))??;
    Ok(report)
}

fn swap_and_verify(
    engine: &Engine,
    verified: &crate::backup::VerifiedBackup,
    source: &str,
    started: std::time::Instant,
) -> Result<RestoreReport> {
    let data_dir = engine.config.data_dir.clone();
    // The index swaps with the database, so a crash never pairs one with the other's index.
    let mut names = vec![DB_FILE];
    if verified.dir.join(INDEX_DIR).is_dir() {
        names.push(INDEX_DIR);
    }
    let guard = engine.store.with_file_replaced(|| {
        crate::backup::swap_in(&data_dir, verified, &names).map_err(backup_err)
    })?;
    let check = engine.store.integrity_check()?;
    if !check.ok {
        tracing::error!(problems = ?check.problems, "restored database failed its integrity check; putting the previous data back");
        engine
            .store
            .with_file_replaced(|| guard.rollback().map_err(backup_err))?;
        engine.reload_index()?;
        return Err(crate::error::Error::Integrity(format!(
            "the restored database failed its integrity check ({}); the previous data was kept",
            check.problems.join("; ")
        )));
    }
    guard.commit().map_err(backup_err)?;
    // The index from the archive is used when it matches the restored database's generation;
    // otherwise `reload_index` rebuilds it from the restored embeddings.
    engine.reload_index()?;
    let stats = engine.store.stats()?;
    Ok(RestoreReport {
        backup_id: verified.manifest.backup_id.clone(),
        source: source.to_string(),
        documents: stats.documents,
        chunks: stats.chunks,
        vectors: engine.index().len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

pub(crate) fn backup_err(e: crate::backup::BackupError) -> crate::error::Error {
    use crate::backup::BackupError as B;
    match e {
        B::InvalidLocation { .. } | B::InvalidId(_) | B::InvalidRequest(_) | B::Incomplete(_) => {
            crate::error::Error::InvalidInput(e.to_string())
        }
        B::NotFound(_) => crate::error::Error::NotFound(e.to_string()),
        B::RestoreInProgress => crate::error::Error::Conflict(e.to_string()),
        B::Checksum { .. }
        | B::UnsafeEntry { .. }
        | B::InvalidArchive(_)
        | B::InterruptedRestore(_) => crate::error::Error::Integrity(e.to_string()),
        other => crate::error::Error::Unavailable(other.to_string()),
    }
}
