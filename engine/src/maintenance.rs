//! Integrity checks and repair of derived data.

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::Result;
use crate::store::{CheckLevel, IntegrityReport};

/// The database's own check plus the vector index's agreement with the embeddings table.
#[tracing::instrument(name = "integrity_check", skip_all)]
pub fn check(engine: &Engine) -> Result<IntegrityReport> {
    check_at(engine, CheckLevel::Full)
}

/// [`check`] at a level: [`CheckLevel::Quick`] runs at every start, before the engine is ready.
pub fn check_at(engine: &Engine, level: CheckLevel) -> Result<IntegrityReport> {
    let mut report = engine.store.integrity_check_at(level)?;
    report.notes.extend(engine.embedding_text_note());
    // A loading index is empty on purpose (health says it loads); its ids are checked once it
    // is there, by the next check.
    let sqlite_damaged = report.problems.iter().any(|p| p.starts_with("sqlite:"));
    if let Some(q) = engine.qdrant() {
        if !sqlite_damaged {
            let expected = engine.store.embedding_ids(
                engine.model_name(),
                engine
                    .embedder()
                    .map_or(crate::engine::DEFAULT_DIMENSIONS, |e| e.dimensions()),
            )?;
            // Unreachable Qdrant is an outage (health and the breaker say so), not damage: a
            // failed check here would make the operator restore a healthy database.
            if let Some((points, missing, dead)) = engine.qdrant_id_diff(&expected)
                && (missing > 0 || dead > 0)
            {
                report.add_derived_problem(
                    format!(
                        "the Qdrant collection `{}` holds {points} points for {} stored \
                         embeddings: {missing} missing, {dead} dead; `instant-db repair` (or POST \
                         /admin/repair) uploads them again",
                        q.collection(),
                        expected.len()
                    ),
                    Some(engine.config.data_dir.as_path()),
                );
            }
        }
        return Ok(report);
    }
    if engine.index_loading().is_none() && !sqlite_damaged {
        let index = engine.index();
        let expected = engine
            .store
            .embedding_ids(engine.model_name(), index.dimensions())?;
        let data_dir = Some(engine.config.data_dir.as_path());
        // The ids themselves, not their count: a replaced document's dead chunks and its new
        // ones can be equally many.
        let diff = index.compare_ids(&expected)?;
        if !diff.is_empty() {
            report.add_derived_problem(
                format!(
                    "vector index holds {} vectors for {} stored embeddings: {} stored ones \
                     missing (e.g. chunk ids {:?}), {} dead ones present (e.g. {:?})",
                    index.len(),
                    expected.len(),
                    diff.missing_count,
                    diff.missing,
                    diff.extra_count,
                    diff.extra
                ),
                data_dir,
            );
        }
        if let Some(problem) = saved_index_problem(engine, expected.len()) {
            report.add_derived_problem(problem, data_dir);
        }
    }
    Ok(report)
}

/// Scheduled database maintenance (FTS5 `optimize` and `ANALYZE`, see
/// [`crate::store::Store::optimize`]), counted in `instantdb_maintenance_runs_total` and timed
/// in `instantdb_maintenance_duration_seconds{task="optimize"}`. A run refused because a restore
/// runs or the server stops is `skipped`, not an error.
#[tracing::instrument(name = "optimize", skip_all)]
pub fn optimize(engine: &Engine) -> Result<crate::store::OptimizeReport> {
    const TASK: &str = "optimize";
    let started = std::time::Instant::now();
    let result = engine.store.optimize();
    let outcome = match &result {
        Ok(r) => {
            tracing::info!(
                fts_segments_before = r.fts_segments_before,
                fts_segments_after = r.fts_segments_after,
                fts_optimize_ms = r.fts_optimize_ms,
                analyze_ms = r.analyze_ms,
                "database maintenance done"
            );
            "ok"
        }
        Err(e) if matches!(e.code(), "restore_in_progress" | "unavailable") => {
            tracing::info!(reason = %e, "database maintenance skipped");
            "skipped"
        }
        Err(e) => {
            tracing::warn!(error = %e, "database maintenance failed; it runs again at the next interval");
            engine.track_error("maintenance", e.code(), &e.to_string());
            "error"
        }
    };
    engine
        .metrics
        .maintenance_runs
        .with_label_values(&[TASK, outcome])
        .inc();
    engine
        .metrics
        .maintenance_duration
        .with_label_values(&[TASK])
        .observe(started.elapsed().as_secs_f64());
    result
}

/// What is wrong with the saved index on disk, if anything: a missing or unusable one makes
/// the next start rebuild the graph from the database (about 20 s per 100k vectors).
fn saved_index_problem(engine: &Engine, stored: usize) -> Option<String> {
    let dir = engine.config.index_dir();
    if stored == 0 {
        return None;
    }
    let missing: Vec<&str> = ["meta.json", "graph.usearch"]
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "the saved vector index {} lacks {}: the next start rebuilds the graph of {stored} \
         vectors from the database before it is ready; `instant-db repair` (or POST \
         /admin/repair) saves it now",
        dir.display(),
        missing.join(" and ")
    ))
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepairReport {
    pub fts_rows: usize,
    pub embeddings_added: usize,
    pub vectors: usize,
    pub integrity_ok: bool,
    pub problems: Vec<String>,
    /// Source data is damaged: repair could not fix it; restore from a backup.
    #[serde(default)]
    pub source_damaged: bool,
}

/// Rebuilds derived data only: the full-text index, embeddings of chunks stored without vectors
/// (when the model is available) and the vector index, from the source tables. Damage to the
/// source tables (lost chunks, orphan embeddings or chunks) is left as it is and reported, with a
/// restore recommended: rewriting the records to agree would hide lost content. A file SQLite
/// reports damaged is not written to at all.
#[tracing::instrument(name = "repair", skip_all)]
pub fn repair(engine: &Engine) -> Result<RepairReport> {
    if let Some(why) = engine.store.damaged() {
        return Err(crate::error::Error::DatabaseDamaged(why));
    }
    let before = check_at(engine, CheckLevel::Quick)?;
    if before.problems.iter().any(|p| p.starts_with("sqlite:")) {
        return Err(crate::error::Error::DatabaseDamaged(crate::error::Damage {
            detail: before
                .problems
                .iter()
                .filter_map(|p| p.strip_prefix("sqlite: "))
                .take(3)
                .collect::<Vec<_>>()
                .join("; "),
            data_dir: Some(engine.config.data_dir.clone()),
        }));
    }
    let fts_rows = engine.store.rebuild_fts()?;
    let embeddings_added = if engine.embedder().is_some() {
        engine.backfill_embeddings()?
    } else {
        0
    };
    if engine.qdrant().is_some() {
        // Every stored vector again, and an outage fails the repair (it did not repair).
        engine.resync_vectors(crate::qdrant::sync::Resync::Everything)?;
    } else {
        let _ = std::fs::remove_dir_all(engine.config.index_dir());
        engine.reload_index()?;
        engine.persist_index()?;
    }
    let after = check(engine)?;
    Ok(RepairReport {
        fts_rows,
        embeddings_added,
        vectors: match engine.qdrant() {
            Some(q) => q.count().map_or(0, |n| n as usize),
            None => engine.index().len(),
        },
        integrity_ok: after.ok,
        problems: after.problems,
        source_damaged: after.source_damaged,
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
    if let Some(why) = engine.store.damaged() {
        // a backup of a damaged database would hold the damage
        return Err(crate::error::Error::DatabaseDamaged(why));
    }
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
                .chain(upload_files(&e.config.uploads_dir())?)
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
    // With Qdrant the archive holds every vector in the database, not a graph: a restore
    // uploads them to the collection the restoring engine is configured with.
    if let Some(q) = engine.qdrant() {
        req.extra["vector_store"] =
            serde_json::json!({"kind": "qdrant", "collection": q.collection()});
    }
    // The archive generation and a lower bound of the change seq the snapshot holds (read
    // before it is taken), for the recovery window (`GET /admin/archive`).
    if let Ok(log) = engine.store.change_log_state()
        && let Some(generation) = log.generation
    {
        req.extra["archive"] = serde_json::json!({"generation": generation, "seq": log.last_seq});
    }
    let work_dir = engine.config.data_dir.join(".backup-work");
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| crate::error::Error::io("create backup work directory", e))?;
    req.work_dir = Some(work_dir);
    crate::backup::create_backup(req, progress)
        .await
        .map_err(backup_err)
}

/// Every regular file under `<data>/uploads` (the originals of uploaded documents), named
/// `uploads/<path>` as in the data directory, so that a restore onto a fresh volume brings them
/// back. Links and special files are left out (an archive holds regular files only).
fn upload_files(root: &std::path::Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    let mut out = vec![];
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(crate::error::Error::io(
                    format!("read {}", dir.display()),
                    e,
                ));
            }
        };
        for ent in entries {
            let ent =
                ent.map_err(|e| crate::error::Error::io(format!("read {}", dir.display()), e))?;
            let path = ent.path();
            let kind = ent
                .file_type()
                .map_err(|e| crate::error::Error::io(format!("stat {}", path.display()), e))?;
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file()
                && let Ok(rel) = path.strip_prefix(root)
            {
                let rel: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push((format!("{UPLOADS_DIR}/{}", rel.join("/")), path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Name of the object-storage circuit breaker (`dependency` label of the breaker gauge).
pub use crate::resilience::settings::OBJECT_STORAGE;

fn object_storage_retry(engine: &Engine) -> crate::resilience::settings::RetrySpec {
    engine.config.resilience.retry(OBJECT_STORAGE)
}

/// A backup folder URL parsed for this engine: S3 operations go through its `object_storage`
/// circuit breaker.
pub fn location(engine: &Engine, url: &str) -> Result<crate::backup::Location> {
    let parsed = crate::backup::Location::parse_with(url, &engine.config.backup.credentials_dir)
        .map_err(backup_err)?;
    Ok(
        crate::backup::confine(parsed, &engine.config.backup_roots())
            .map_err(backup_err)?
            .with_resilience(
                engine.breakers.get(OBJECT_STORAGE),
                object_storage_retry(engine),
            ),
    )
}

/// A backup archive URL (`.../<id>.tar.gz`) parsed for this engine, as [`location`] parses
/// folders: its folder (with the breaker) and the archive's file name.
pub fn archive_location(engine: &Engine, url: &str) -> Result<(crate::backup::Location, String)> {
    let (folder, name) =
        crate::backup::Location::parse_object_with(url, &engine.config.backup.credentials_dir)
            .map_err(backup_err)?;
    let folder =
        crate::backup::confine(folder, &engine.config.backup_roots()).map_err(backup_err)?;
    Ok((
        folder.with_resilience(
            engine.breakers.get(OBJECT_STORAGE),
            object_storage_retry(engine),
        ),
        name,
    ))
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

pub(crate) const DB_FILE: &str = "instant-db.sqlite";
/// The vector index directory, relative to the data directory (as in the archive).
const INDEX_DIR: &str = "index";
/// The uploaded originals, relative to the data directory (as in the archive).
const UPLOADS_DIR: &str = "uploads";

/// Receives the phase a restore enters (for restore jobs).
pub type PhaseSink = std::sync::Arc<dyn Fn(crate::restore_job::RestorePhase) + Send + Sync>;

/// Restores from a backup archive URL: download, verify every checksum before touching
/// anything, swap the database in, and keep the previous data until the restored database
/// passes the integrity check (otherwise it is put back).
pub async fn restore(
    engine: std::sync::Arc<Engine>,
    source: &str,
    progress: crate::backup::ProgressSink,
) -> Result<RestoreReport> {
    restore_observed(engine, source, progress, std::sync::Arc::new(|_| {})).await
}

/// [`restore`], reporting each phase it enters to `phase`: fetching, verifying (checksums,
/// then the manifest's model and schema version), swapping, checking. An error before
/// swapping changed nothing; an error from swapping on has put the previous data back.
/// A live database that is damaged is never opened: it is set aside in `previous-*` as files.
#[tracing::instrument(name = "restore", skip_all)]
pub async fn restore_observed(
    engine: std::sync::Arc<Engine>,
    source: &str,
    progress: crate::backup::ProgressSink,
    phase: PhaseSink,
) -> Result<RestoreReport> {
    use crate::restore_job::RestorePhase;
    let started = std::time::Instant::now();
    // held until the swap is committed or rolled back, so no other process takes this restore
    // for an interrupted one, and two restores never interleave
    let lock = crate::backup::RestoreLock::acquire(&engine.config.data_dir).map_err(backup_err)?;
    let staging = engine.config.data_dir.join(format!(
        "{}{}",
        crate::backup::STAGING_PREFIX,
        uuid::Uuid::new_v4().simple()
    ));
    let (folder, name) = archive_location(&engine, source)?;
    phase(RestorePhase::Fetching);
    let verifying = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observed: crate::backup::ProgressSink = {
        let (phase, verifying) = (phase.clone(), verifying.clone());
        std::sync::Arc::new(move |p: crate::backup::BackupProgress| {
            if p.phase == crate::backup::Phase::Verify
                && !verifying.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                phase(RestorePhase::Verifying);
            }
            progress(p);
        })
    };
    let verified = crate::backup::fetch_and_verify_from(folder, name, &staging, observed)
        .await
        .map_err(backup_err)?;
    if !verifying.swap(true, std::sync::atomic::Ordering::SeqCst) {
        phase(RestorePhase::Verifying);
    }
    let source = crate::backup::redact_url(source);
    let e = engine.clone();
    let report = tokio::task::spawn_blocking(move || -> Result<RestoreReport> {
        let staged_schema = rusqlite::Connection::open_with_flags(
            verified.dir.join(DB_FILE),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)))
        .ok();
        let out = compatible(
            &verified.manifest,
            staged_schema,
            e.model_name(),
            crate::store::schema::latest_version(),
        )
        .map_err(crate::error::Error::InvalidInput)
        .and_then(|()| swap_and_verify(&e, &verified, &source, started, &*phase));
        let _ = std::fs::remove_dir_all(&verified.dir);
        drop(lock);
        out
    })
    .await
    .map_err(|e| crate::error::Error::Internal(e.to_string()))??;
    Ok(report)
}

/// Whether a verified backup fits this engine: made with the same embedding model (its vectors
/// mean nothing to another) and a schema this engine knows (newer ones are refused, older ones
/// are migrated when opened). Backups that do not record them pass on what they hold.
pub fn compatible(
    manifest: &crate::backup::Manifest,
    staged_schema: Option<i64>,
    model: &str,
    latest_schema: i64,
) -> std::result::Result<(), String> {
    let id = &manifest.backup_id;
    if let Some(theirs) = manifest.extra.get("model").and_then(|m| m.as_str())
        && theirs != model
    {
        return Err(format!(
            "backup {id} was made with the embedding model {theirs}, this engine uses {model}: \
             its vectors would not match the queries. Nothing was changed. Restore it on an \
             engine configured with embedding.model: {theirs}, or choose a backup made with {model}"
        ));
    }
    let recorded = manifest
        .extra
        .get("schema_version")
        .and_then(serde_json::Value::as_i64);
    if let Some(v) = recorded.into_iter().chain(staged_schema).max()
        && v > latest_schema
    {
        return Err(format!(
            "backup {id} has database schema version {v}, newer than this engine's \
             {latest_schema}. Nothing was changed. Upgrade instant-db to restore it"
        ));
    }
    Ok(())
}

pub(crate) fn swap_and_verify(
    engine: &Engine,
    verified: &crate::backup::VerifiedBackup,
    source: &str,
    started: std::time::Instant,
    phase: &(dyn Fn(crate::restore_job::RestorePhase) + Send + Sync),
) -> Result<RestoreReport> {
    use crate::restore_job::RestorePhase;
    let data_dir = engine.config.data_dir.clone();
    // The index swaps with the database, so a crash never pairs one with the other's index.
    let mut names = vec![DB_FILE];
    for dir in [INDEX_DIR, UPLOADS_DIR] {
        if verified.dir.join(dir).is_dir() {
            names.push(dir);
        }
    }
    // The restored file no longer continues the archive it came from: archiving starts a new
    // generation for it rather than shipping a history that forks the old one.
    crate::archive::detach_staged(&verified.dir.join(DB_FILE), engine.config.archive.enabled())?;
    phase(RestorePhase::Swapping);
    let guard = engine.store.with_file_replaced(|| {
        crate::backup::swap_in(&data_dir, verified, &names).map_err(backup_err)
    })?;
    phase(RestorePhase::Checking);
    let check = engine.store.integrity_check()?;
    if !check.ok {
        tracing::error!(problems = ?check.problems, "restored database failed its integrity check; putting the previous data back");
        engine
            .store
            .with_file_replaced(|| guard.rollback().map_err(backup_err))?;
        engine.reload_index()?;
        return Err(crate::error::Error::Integrity(format!(
            "the restored database failed its integrity check ({}); the previous data was put back",
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
        B::InvalidLocation { .. }
        | B::OutsideRoots { .. }
        | B::InvalidId(_)
        | B::InvalidRequest(_)
        | B::Incomplete(_) => crate::error::Error::InvalidInput(e.to_string()),
        B::NotFound(_) => crate::error::Error::NotFound(e.to_string()),
        B::CredentialsNotFound { .. } => crate::error::Error::CredentialsNotFound(e.to_string()),
        B::RestoreInProgress => crate::error::Error::OperationInProgress(e.to_string()),
        B::Checksum { .. }
        | B::UnsafeEntry { .. }
        | B::InvalidArchive(_)
        | B::InterruptedRestore(_) => crate::error::Error::Integrity(e.to_string()),
        other => crate::error::Error::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod compatible_tests {
    use super::compatible;

    fn manifest(extra: serde_json::Value) -> crate::backup::Manifest {
        crate::backup::Manifest {
            format_version: crate::backup::FORMAT_VERSION,
            backup_id: "b-1".into(),
            created_at: chrono::Utc::now(),
            engine_version: "0".into(),
            document_count: 0,
            chunk_count: 0,
            database: "instant-db.sqlite".into(),
            files: vec![],
            extra,
        }
    }

    #[test]
    fn a_backup_of_another_model_or_a_newer_schema_does_not_fit_and_the_error_says_what_to_do() {
        let m = manifest(serde_json::json!({"model": "other/model", "schema_version": 1}));
        let e = compatible(&m, Some(1), "mine", 1).unwrap_err();
        assert!(
            e.contains("other/model") && e.contains("embedding.model"),
            "{e}"
        );
        let m = manifest(serde_json::json!({"model": "mine", "schema_version": 2}));
        let e = compatible(&m, Some(1), "mine", 1).unwrap_err();
        assert!(
            e.contains("schema version 2") && e.contains("Upgrade"),
            "{e}"
        );
        // the database's own version counts even when the manifest does not say
        let e = compatible(&manifest(serde_json::Value::Null), Some(3), "mine", 1).unwrap_err();
        assert!(e.contains("schema version 3"), "{e}");
    }

    #[test]
    fn a_backup_of_the_same_model_and_an_older_or_equal_schema_fits() {
        let m = manifest(serde_json::json!({"model": "mine", "schema_version": 1}));
        assert!(compatible(&m, Some(1), "mine", 2).is_ok());
        // backups that record neither pass on what they hold
        assert!(compatible(&manifest(serde_json::Value::Null), None, "mine", 1).is_ok());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod optimize_tests {
    use crate::engine::{Engine, ModelLoading};

    #[test]
    fn scheduled_optimize_is_counted_by_result_and_timed() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(
            crate::config::Config {
                data_dir: dir.path().to_path_buf(),
                ..Default::default()
            },
            ModelLoading::Skip,
        )
        .unwrap();
        super::optimize(&engine).unwrap();
        engine.store.close_writes().unwrap();
        assert!(super::optimize(&engine).is_err());
        let text = engine.metrics.render();
        assert!(
            text.contains(r#"instantdb_maintenance_runs_total{result="ok",task="optimize"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"instantdb_maintenance_runs_total{result="skipped",task="optimize"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"instantdb_maintenance_duration_seconds_count{task="optimize"} 2"#),
            "{text}"
        );
    }
}
