//! Point-in-time restore: the newest base snapshot before the target, plus the archived
//! changes after it up to the target, replayed into the staged copy; then the restore's usual
//! swap, integrity check and rollback ([`crate::maintenance`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::segment::{
    self, ChangeLine, GenerationInfo, SegmentName, parse_generation_object, plan_replay,
};
use super::{archive_folder, blocking, err};
use crate::backup::storage::{get_bytes, list_objects};
use crate::backup::{
    ARCHIVE_SUFFIX, FORMAT_VERSION, Location, Manifest, ProgressSink, RemoveOnDrop, VerifiedBackup,
    list_backups, read_manifest,
};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::maintenance::{PhaseSink, RestoreReport};
use crate::restore_job::RestorePhase;
use crate::store::Store;
use crate::store::changes::{self, Op, PutPayload};

/// Where a point-in-time restore goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetTime {
    /// Everything archived.
    Latest,
    /// Changes committed at or before this time, none after.
    At(chrono::DateTime<chrono::Utc>),
}

impl TargetTime {
    /// `latest` or an RFC 3339 time (`2026-12-02T05:00:00Z`).
    pub fn parse(s: &str) -> Result<TargetTime> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("latest") {
            return Ok(TargetTime::Latest);
        }
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| TargetTime::At(t.with_timezone(&chrono::Utc)))
            .map_err(|e| {
                Error::InvalidInput(format!(
                    "invalid target time {s:?} ({e}): give an RFC 3339 time such as \
                     2026-12-02T05:00:00Z, or `latest`"
                ))
            })
    }

    fn micros(self) -> i64 {
        match self {
            TargetTime::Latest => i64::MAX,
            TargetTime::At(t) => t.timestamp_micros(),
        }
    }

    pub fn describe(self) -> String {
        match self {
            TargetTime::Latest => "latest".into(),
            TargetTime::At(t) => changes::format_time(t),
        }
    }
}

/// What a point-in-time restore did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PitrReport {
    #[serde(flatten)]
    pub restore: RestoreReport,
    /// `latest` or the RFC 3339 target.
    pub target_time: String,
    /// The base snapshot (backup id); `None` when the generation began on an empty database.
    pub base_backup: Option<String>,
    pub generation: String,
    /// Archived changes replayed on top of the base.
    pub replayed_changes: u64,
    /// Commit time of the newest change in the restored data (base or replayed).
    pub restored_to: Option<String>,
}

/// The one file of the index folder an empty base swaps in (the index is rebuilt).
const EMPTY_INDEX_NOTE: &str = "rebuilt-after-point-in-time-restore";

struct Base {
    verified: VerifiedBackup,
    generation: String,
    seq: i64,
    time: Option<String>,
    backup_id: Option<String>,
}

/// Restores the data directory of `engine` to `target` from the destination folder
/// `folder_url` (the backup folder; the archive is its `archive/`).
#[tracing::instrument(name = "restore_to_time", skip_all, fields(target = %target.describe()))]
pub async fn restore_to_time(
    engine: Arc<Engine>,
    folder_url: &str,
    target: TargetTime,
    progress: ProgressSink,
    phase: PhaseSink,
) -> Result<PitrReport> {
    let started = Instant::now();
    let lock = crate::backup::RestoreLock::acquire(&engine.config.data_dir).map_err(err)?;
    let folder = crate::maintenance::location(&engine, folder_url)?;
    let archive = archive_folder(&folder);
    let staging = engine.config.data_dir.join(format!(
        "{}{}",
        crate::backup::STAGING_PREFIX,
        uuid::Uuid::new_v4().simple()
    ));
    let cleanup = RemoveOnDrop(Some(staging.clone()));
    phase(RestorePhase::Fetching);
    let listed = list_objects(&archive).await.map_err(err)?;
    let segments: Vec<SegmentName> = listed
        .iter()
        .filter_map(|(n, _, _)| SegmentName::parse(n))
        .collect();
    let base = match newest_snapshot_before(&folder, target, &staging, &progress).await? {
        Some(b) => b,
        None => empty_base(&folder, &listed, target, &staging).await?,
    };
    let plan = plan_replay(&segments, &base.generation, base.seq, target.micros())?;
    phase(RestorePhase::Verifying);
    let db = staging.join(crate::maintenance::DB_FILE);
    let store = {
        let db = db.clone();
        Arc::new(blocking(move || Store::open(&db)).await?)
    };
    let mut replayed = 0u64;
    let mut restored_to = base.time.clone();
    let mut next = base.seq + 1;
    'segments: for seg in &plan {
        let bytes = get_bytes(&archive, &seg.to_name())
            .await
            .map_err(err)?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "archive segment {} was listed but is gone; retry the restore",
                    archive.url_for(&seg.to_name())
                ))
            })?;
        let seg = seg.clone();
        let lines = blocking(move || segment::decode(&seg, &bytes)).await?;
        for line in lines {
            if line.seq < next {
                continue; // an overlapping segment (a retried upload)
            }
            if segment::micros_of(&line.at)? > target.micros() {
                break 'segments;
            }
            let (s, at) = (store.clone(), line.at.clone());
            blocking(move || apply(&s, line)).await?;
            next += 1;
            replayed += 1;
            restored_to = Some(at);
        }
    }
    {
        let s = store.clone();
        blocking(move || s.checkpoint()).await?;
    }
    drop(store);
    tracing::info!(generation = %base.generation, base = ?base.backup_id, replayed, restored_to = ?restored_to, "archive replayed onto the base");
    let verified = base.verified.clone();
    let source = crate::backup::redact_url(folder_url);
    let e = engine.clone();
    let restore = blocking(move || {
        let staged_schema =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)))
                .ok();
        crate::maintenance::compatible(
            &verified.manifest,
            staged_schema,
            e.model_name(),
            crate::store::schema::latest_version(),
        )
        .map_err(Error::InvalidInput)?;
        crate::maintenance::swap_and_verify(&e, &verified, &source, started, &*phase)
    })
    .await;
    drop(cleanup);
    drop(lock);
    Ok(PitrReport {
        restore: restore?,
        target_time: target.describe(),
        base_backup: base.backup_id,
        generation: base.generation,
        replayed_changes: replayed,
        restored_to,
    })
}

/// Applies one archived change to a store (capture off: the restored file starts a new
/// generation anyway).
pub fn apply(store: &Store, line: ChangeLine) -> Result<()> {
    match line.op {
        Op::Put => {
            let payload = line.payload.ok_or_else(|| {
                Error::Integrity(format!(
                    "archived change {} is a put without content",
                    line.seq
                ))
            })?;
            let p: PutPayload = serde_json::from_value(payload)
                .map_err(|e| Error::Integrity(format!("archived change {}: {e}", line.seq)))?;
            let chunks: Vec<crate::store::NewChunk> =
                p.chunks.into_iter().map(Into::into).collect();
            store.put_document(&p.document, &chunks, &p.model)?;
            Ok(())
        }
        Op::Delete => match store.delete_document(&line.id) {
            Ok(_) | Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        },
    }
}

/// What a staged snapshot's change log says: (generation, newest seq, its commit time).
fn inspect(db: &Path) -> Result<Option<(String, i64, Option<String>)>> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    if !changes::has_change_log(&c)? {
        return Ok(None);
    }
    let state = changes::state_of(&c)?;
    let Some(generation) = state.generation else {
        return Ok(None);
    };
    let newest = changes::newest_change(&c)?;
    Ok(Some((
        generation,
        newest.as_ref().map_or(0, |n| n.0),
        newest.map(|n| n.1),
    )))
}

/// The newest complete backup whose content is not after `target` and that belongs to an
/// archive generation, downloaded and verified into `staging`.
async fn newest_snapshot_before(
    folder: &Location,
    target: TargetTime,
    staging: &Path,
    progress: &ProgressSink,
) -> Result<Option<Base>> {
    let backups = list_backups(folder).await.map_err(err)?;
    for b in backups.iter().rev().filter(|b| b.complete) {
        let manifest = match read_manifest(folder, &b.id).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(id = %b.id, error = %e, "backup manifest unreadable; skipped");
                continue;
            }
        };
        // Its content is at least as new as the moment it began.
        if manifest.created_at.timestamp_micros() > target.micros() {
            continue;
        }
        let verified = crate::backup::fetch_and_verify_from(
            folder.clone(),
            format!("{}{ARCHIVE_SUFFIX}", b.id),
            staging,
            progress.clone(),
        )
        .await
        .map_err(err)?;
        let db = verified.dir.join(crate::maintenance::DB_FILE);
        let found = blocking(move || inspect(&db)).await?;
        let usable = match &found {
            Some((_, _, Some(t))) => segment::micros_of(t)? <= target.micros(),
            Some((_, _, None)) => true,
            None => false,
        };
        if let (true, Some((generation, seq, time))) = (usable, found) {
            return Ok(Some(Base {
                verified,
                generation,
                seq,
                time,
                backup_id: Some(b.id.clone()),
            }));
        }
        tracing::info!(id = %b.id, "backup not usable as a base for this target (newer, or taken without archiving); trying an older one");
        let _ = std::fs::remove_dir_all(staging);
    }
    Ok(None)
}

/// A generation that began on an empty database needs no snapshot: its base is a new empty
/// database.
async fn empty_base(
    folder: &Location,
    listed: &[(String, u64, Option<chrono::DateTime<chrono::Utc>>)],
    target: TargetTime,
    staging: &Path,
) -> Result<Base> {
    let archive = &archive_folder(folder);
    let mut best: Option<GenerationInfo> = None;
    for (name, _, _) in listed {
        if parse_generation_object(name).is_none() {
            continue;
        }
        let Some(bytes) = get_bytes(archive, name).await.map_err(err)? else {
            continue;
        };
        let Ok(info) = serde_json::from_slice::<GenerationInfo>(&bytes) else {
            continue;
        };
        let starts = segment::micros_of(&info.started_at)?;
        if info.started_empty
            && starts <= target.micros()
            && best.as_ref().is_none_or(|b| b.started_at < info.started_at)
        {
            best = Some(info);
        }
    }
    let Some(info) = best else {
        // what retention kept: say how far back this destination reaches
        let earliest = match super::retention::earliest_recoverable(folder).await {
            Ok(Some(t)) => format!("the earliest time this destination can restore to is {t}"),
            Ok(None) => "this destination holds no base at all yet".to_string(),
            Err(e) => format!("its earliest recoverable time could not be read ({e})"),
        };
        return Err(Error::NotFound(format!(
            "no base for a restore to {}: no complete backup in the destination was taken with \
             archiving on before that time, and no archive generation that began on an empty \
             database before it is kept; {earliest}. Choose a later time, or take a backup \
             (POST /admin/backups) so later times can be restored",
            target.describe()
        )));
    };
    // An index folder swaps in with the database, so the previous data's vector index never
    // stays beside it (the engine rebuilds the index from the replayed embeddings).
    let placeholder = staging.join("index").join(EMPTY_INDEX_NOTE);
    std::fs::create_dir_all(staging.join("index"))
        .and_then(|()| std::fs::write(&placeholder, b""))
        .map_err(|e| Error::io(format!("create {}", staging.display()), e))?;
    let db = staging.join(crate::maintenance::DB_FILE);
    let files = blocking(move || {
        let s = Store::open(&db)?;
        s.checkpoint()?;
        drop(s);
        let mut files = vec![];
        for (name, path) in [
            (crate::maintenance::DB_FILE.to_string(), db.clone()),
            (format!("index/{EMPTY_INDEX_NOTE}"), placeholder),
        ] {
            let (size, sha256) = crate::backup::archive::hash_file(&path).map_err(err)?;
            files.push(crate::backup::FileEntry { name, size, sha256 });
        }
        Ok(files)
    })
    .await?;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        backup_id: format!("{}-empty", info.generation),
        created_at: chrono::Utc::now(),
        engine_version: env!("CARGO_PKG_VERSION").to_string(),
        document_count: 0,
        chunk_count: 0,
        database: crate::maintenance::DB_FILE.to_string(),
        files,
        extra: serde_json::Value::Null,
    };
    Ok(Base {
        verified: VerifiedBackup {
            manifest,
            dir: staging.to_path_buf(),
            archive_sha256: String::new(),
        },
        generation: info.generation,
        seq: info.base_seq,
        time: None,
        backup_id: None,
    })
}

/// The recovery window of `generation` in a destination folder.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub first: Option<String>,
    pub newest_base: Option<String>,
}

/// Reads the backups' manifests (`extra.archive.generation`) and the generation's marker.
pub async fn window(folder: &Location, generation: Option<&str>) -> Result<Window> {
    let Some(generation) = generation else {
        return Ok(Window::default());
    };
    let mut times: Vec<String> = Vec::new();
    for b in list_backups(folder)
        .await
        .map_err(err)?
        .iter()
        .filter(|b| b.complete)
    {
        let Ok(m) = read_manifest(folder, &b.id).await else {
            continue;
        };
        if m.extra
            .pointer("/archive/generation")
            .and_then(|g| g.as_str())
            == Some(generation)
        {
            times.push(changes::format_time(m.created_at));
        }
    }
    let newest_base = times.iter().max().cloned();
    let archive = archive_folder(folder);
    if let Some(bytes) = get_bytes(&archive, &segment::generation_object(generation))
        .await
        .map_err(err)?
        && let Ok(info) = serde_json::from_slice::<GenerationInfo>(&bytes)
        && info.started_empty
    {
        times.push(info.started_at);
    }
    Ok(Window {
        first: times.iter().min().cloned(),
        newest_base,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::TargetTime;

    #[test]
    fn a_target_is_latest_or_an_rfc3339_time_and_anything_else_says_how_to_write_it() {
        assert_eq!(TargetTime::parse("latest").unwrap(), TargetTime::Latest);
        assert!(matches!(
            TargetTime::parse("2026-12-02T05:00:00+01:00").unwrap(),
            TargetTime::At(t) if t.to_rfc3339() == "2026-12-02T04:00:00+00:00"
        ));
        let e = TargetTime::parse("yesterday").unwrap_err().to_string();
        assert!(e.contains("RFC 3339") && e.contains("latest"), "{e}");
    }
}
