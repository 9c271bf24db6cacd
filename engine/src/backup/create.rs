//! Taking a backup: snapshot, manifest, archive, upload, sidecars.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::storage::{put_bytes, put_file};
use super::{
    ARCHIVE_SUFFIX, BackupError, BackupProgress, FORMAT_VERSION, FileEntry, Location,
    MANIFEST_NAME, MANIFEST_SUFFIX, Manifest, Phase, ProgressSink, SHA256_SUFFIX, archive, io_err,
    new_backup_id, snapshot_sqlite, task_err, validate_id,
};

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
