//! Verification of a stored backup: proof that an archive would restore, taken without touching
//! the live data.
//!
//! The archive is fetched exactly as a restore fetches it ([`crate::backup::fetch_and_verify_from`]:
//! the `.sha256` sidecar, the archive's sha256, every file's size and sha256 against the
//! manifest), unpacked into scratch space on the data volume (`<data>/tmp/verify-<uuid>`), and
//! then the unpacked database is opened read-only for the full integrity check, a keyword search
//! for a word of a stored chunk, a vector search for that chunk's text (when the model is
//! loaded), and a comparison of its document and chunk counts with the manifest. The scratch
//! directory is removed afterwards; one left by a crash is removed when the engine opens
//! ([`clean_stale_scratch`]).
//!
//! A verification never holds the one-operation fence ([`crate::restore_job::Operations`]): a
//! restore (automatic recovery above all) must not wait for one. It is refused while a restore
//! runs (the caller checks).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::backup::{ProgressSink, RemoveOnDrop};
use crate::engine::Engine;

/// Scratch space for verifications, relative to the data directory.
pub const SCRATCH_DIR: &str = "tmp";
/// Prefix of one verification's scratch directory inside [`SCRATCH_DIR`].
pub const SCRATCH_PREFIX: &str = "verify-";
/// How many nearest neighbours the vector check looks at for the chunk it searched for.
const VECTOR_TOP_K: usize = 5;

/// Where a verification is. `passed` and `failed` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationPhase {
    /// Accepted, waiting for the verification before it to finish (one runs at a time).
    Pending,
    Running,
    Passed,
    Failed,
}

impl VerificationPhase {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Passed | Self::Failed)
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Check {
    pub passed: bool,
    /// What was checked and found, one sentence.
    pub detail: String,
}

impl Check {
    fn pass(detail: impl Into<String>) -> Check {
        Check {
            passed: true,
            detail: detail.into(),
        }
    }

    fn fail(detail: impl Into<String>) -> Check {
        Check {
            passed: false,
            detail: detail.into(),
        }
    }
}

/// Every check a verification runs, in order; a check that did not run is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerificationChecks {
    /// The archive's sha256 against its `.sha256` sidecar and every file against the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksums: Option<Check>,
    /// The backup fits this engine (embedding model, schema version), as a restore requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<Check>,
    /// The full integrity check of the unpacked database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Check>,
    /// Document and chunk counts of the database against the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Check>,
    /// A keyword search for a word of a stored chunk finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword_search: Option<Check>,
    /// A vector search for a stored chunk's text finds that chunk (only with the model loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_search: Option<Check>,
}

impl VerificationChecks {
    /// The name of the first check that failed.
    pub fn first_failed(&self) -> Option<&'static str> {
        [
            ("checksums", &self.checksums),
            ("compatibility", &self.compatibility),
            ("integrity", &self.integrity),
            ("counts", &self.counts),
            ("keyword_search", &self.keyword_search),
            ("vector_search", &self.vector_search),
        ]
        .into_iter()
        .find(|(_, c)| c.as_ref().is_some_and(|c| !c.passed))
        .map(|(n, _)| n)
    }
}

/// One verification of one archive, as the backup job record and `GET /admin/verifications/{id}`
/// show it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Verification {
    pub id: String,
    /// The archive URL, credentials redacted.
    pub source: String,
    pub phase: VerificationPhase,
    /// The backup id the manifest records, once read.
    pub backup_id: Option<String>,
    pub started_at: Option<String>,
    /// When the verification ended (passed or failed).
    pub verified_at: Option<String>,
    /// Why it failed: which check, what it found and what to do.
    pub error: Option<String>,
    pub checks: VerificationChecks,
    /// Bytes of the current download or unpacking (while running).
    #[serde(default, skip_deserializing)]
    #[schema(value_type = Option<Object>)]
    pub progress: Option<crate::backup::BackupProgress>,
}

impl Verification {
    /// A verification accepted and not started yet.
    pub fn pending(id: String, source: &str) -> Verification {
        Verification {
            id,
            source: crate::backup::redact_url(source),
            phase: VerificationPhase::Pending,
            backup_id: None,
            started_at: None,
            verified_at: None,
            error: None,
            checks: VerificationChecks::default(),
            progress: None,
        }
    }

    /// Ends the verification: passed when every check that ran passed, else failed with a
    /// message naming the first failed check and what to do.
    fn conclude(&mut self, problem: Option<String>) {
        self.verified_at = Some(crate::health::now());
        self.progress = None;
        let failed = self.checks.first_failed();
        match (failed, problem) {
            (None, None) => {
                self.phase = VerificationPhase::Passed;
                self.error = None;
            }
            (check, problem) => {
                self.phase = VerificationPhase::Failed;
                let detail = problem
                    .or_else(|| check.and_then(|c| self.check(c)).map(|c| c.detail.clone()))
                    .unwrap_or_default();
                let what = check.map_or_else(
                    || "could not run".to_string(),
                    |c| format!("failed its {c} check"),
                );
                self.error = Some(format!(
                    "backup {} {what}: {detail}. Do not restore from this archive: take a new \
                     backup (`instant-db backup`, POST /admin/backups or a new InstantDbBackup) \
                     and let it verify; \
                     to restore now, choose an older backup whose verification passed",
                    self.backup_id.as_deref().unwrap_or(&self.source)
                ));
            }
        }
    }

    /// Ends a verification cut by an engine restart: `failed`, saying that this is no verdict
    /// on the archive and how to verify it again.
    pub fn interrupted(&mut self) {
        self.phase = VerificationPhase::Failed;
        self.verified_at = Some(crate::health::now());
        self.progress = None;
        self.error = Some(format!(
            "not verified: the engine restarted before the verification of {} finished (this \
             says nothing about the archive, which was stored); verify it again \
             (POST /admin/verifications with source {}, or `instant-db verify --from <its \
             location>`) or take a new backup",
            self.backup_id.as_deref().unwrap_or("the archive"),
            self.source
        ));
    }

    fn check(&self, name: &str) -> Option<&Check> {
        let c = &self.checks;
        match name {
            "checksums" => c.checksums.as_ref(),
            "compatibility" => c.compatibility.as_ref(),
            "integrity" => c.integrity.as_ref(),
            "counts" => c.counts.as_ref(),
            "keyword_search" => c.keyword_search.as_ref(),
            "vector_search" => c.vector_search.as_ref(),
            _ => None,
        }
    }
}

impl crate::job_records::JobRecord for Verification {
    const KIND: &'static str = "verification";

    fn id(&self) -> &str {
        &self.id
    }

    fn is_final(&self) -> bool {
        self.phase.is_final()
    }

    fn started_at(&self) -> &str {
        self.started_at.as_deref().unwrap_or_default()
    }

    fn milestone(&self) -> String {
        format!(
            "{:?} {:?} {:?} {}",
            self.phase,
            self.backup_id,
            self.error,
            serde_json::to_string(&self.checks).unwrap_or_default()
        )
    }
}

/// Receives the record of a verification each time it changes.
pub type VerificationSink = Arc<dyn Fn(&Verification) + Send + Sync>;

/// Verifies the archive at `source` (a URL as a completed backup's `location`), reporting the
/// record to `report` as it changes, and returns the final record (`passed` or `failed`; never
/// an error: a verification that could not run is `failed`, saying why).
pub async fn verify(
    engine: Arc<Engine>,
    mut record: Verification,
    source: &str,
    report: VerificationSink,
) -> Verification {
    record.phase = VerificationPhase::Running;
    record.started_at = Some(crate::health::now());
    report(&record);
    let problem = run(&engine, &mut record, source, &report).await.err();
    record.conclude(problem);
    match record.phase {
        VerificationPhase::Passed => {
            tracing::info!(id = %record.id, source = %record.source, "backup verification passed")
        }
        _ => {
            tracing::error!(id = %record.id, source = %record.source, error = record.error.as_deref().unwrap_or_default(), "backup verification failed")
        }
    }
    report(&record);
    record
}

/// The checks; `Err` is a problem that stopped them before any verdict (e.g. no scratch space).
async fn run(
    engine: &Arc<Engine>,
    record: &mut Verification,
    source: &str,
    report: &VerificationSink,
) -> Result<(), String> {
    let (folder, name) = crate::maintenance::archive_location(engine, source)
        .map_err(|e| crate::backup::redact_url(&e.to_string()))?;
    let scratch = scratch_root(&engine.config.data_dir)
        .join(format!("{SCRATCH_PREFIX}{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&scratch)
        .map_err(|e| format!("cannot create scratch space {}: {e}", scratch.display()))?;
    // Everything (the download and the unpacked files) lives under `scratch`: one removal, here
    // or after a crash, takes it all.
    let _cleanup = RemoveOnDrop(Some(scratch.clone()));
    let progress: ProgressSink = {
        let (report, base) = (report.clone(), record.clone());
        Arc::new(move |p| {
            let mut r = base.clone();
            r.progress = Some(p);
            report(&r);
        })
    };
    let unpacked = scratch.join("data");
    let verified =
        match crate::backup::fetch_and_verify_from(folder, name, &unpacked, progress).await {
            Ok(v) => v,
            Err(e) => {
                use crate::backup::BackupError as B;
                let msg = crate::backup::redact_url(&e.to_string());
                return match e {
                    // a verdict on the archive itself
                    B::Checksum { .. }
                    | B::UnsafeEntry { .. }
                    | B::InvalidArchive(_)
                    | B::UnsupportedVersion(_)
                    | B::Incomplete(_)
                    | B::NotFound(_) => {
                        record.checks.checksums = Some(Check::fail(msg));
                        Ok(())
                    }
                    // the store, the credentials or the disk failed, not the archive
                    _ => Err(format!(
                        "{msg} (the archive could not be fetched, which says nothing about it: \
                     verify it again when this is fixed)"
                    )),
                };
            }
        };
    let m = &verified.manifest;
    record.backup_id = Some(m.backup_id.clone());
    record.checks.checksums = Some(Check::pass(format!(
        "archive sha256 {} matches its .sha256 sidecar; {} files match the manifest",
        verified.archive_sha256,
        m.files.len()
    )));
    report(record);

    let e = engine.clone();
    let checks = record.checks.clone();
    let checks = tokio::task::spawn_blocking(move || database_checks(&e, &verified, checks))
        .await
        .map_err(|e| format!("verification task failed: {e}"))?;
    record.checks = checks;
    Ok(())
}

/// The checks of the unpacked database, each run only when the ones before it passed.
fn database_checks(
    engine: &Engine,
    verified: &crate::backup::VerifiedBackup,
    mut checks: VerificationChecks,
) -> VerificationChecks {
    let m = &verified.manifest;
    let db = verified.dir.join(&m.database);
    let schema =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)))
            .ok();
    let fits = crate::maintenance::compatible(
        m,
        schema,
        engine.model_name(),
        crate::store::schema::latest_version(),
    );
    checks.compatibility = Some(match fits {
        Ok(()) => Check::pass(format!(
            "made with the model {} and a schema this engine reads",
            engine.model_name()
        )),
        Err(why) => Check::fail(why),
    });
    if checks.first_failed().is_some() {
        return checks;
    }

    let report = match crate::store::check_file(&db, crate::store::CheckLevel::Full) {
        Ok(r) => r,
        Err(e) => {
            checks.integrity = Some(Check::fail(format!("the check could not run: {e}")));
            return checks;
        }
    };
    checks.integrity = Some(if report.ok {
        Check::pass("full integrity check passed (SQLite pages, source tables, full-text index)")
    } else {
        let problems: Vec<&str> = report
            .problems
            .iter()
            .filter(|p| Some(*p) != report.advice.as_ref())
            .map(String::as_str)
            .take(5)
            .collect();
        Check::fail(problems.join("; "))
    });
    if !report.ok {
        return checks;
    }

    checks.counts = Some(counts_check(
        (report.documents, report.chunks),
        (m.document_count, m.chunk_count),
    ));
    if checks.first_failed().is_some() {
        return checks;
    }

    match test_queries(engine, &db) {
        Ok((keyword, vector)) => {
            checks.keyword_search = Some(keyword);
            checks.vector_search = vector;
        }
        Err(e) => checks.keyword_search = Some(Check::fail(format!("the query failed: {e}"))),
    }
    checks
}

/// The database's counts against the manifest's (taken from the same snapshot, so equal).
pub fn counts_check(database: (i64, i64), manifest: (u64, u64)) -> Check {
    let (docs, chunks) = database;
    let (m_docs, m_chunks) = manifest;
    if u64::try_from(docs).ok() == Some(m_docs) && u64::try_from(chunks).ok() == Some(m_chunks) {
        Check::pass(format!(
            "{docs} documents and {chunks} chunks, as the manifest records"
        ))
    } else {
        Check::fail(format!(
            "the database holds {docs} documents and {chunks} chunks, the manifest records \
             {m_docs} and {m_chunks}"
        ))
    }
}

/// A word of the first stored chunk, the one a keyword search must find it by: its longest
/// content word (the rarest, most likely).
pub fn probe_term(text: &str) -> Option<String> {
    crate::search::query_terms(text)
        .into_iter()
        .max_by_key(|t| t.chars().count())
}

/// The keyword search, and the vector search when the model is loaded.
fn test_queries(engine: &Engine, db: &Path) -> crate::error::Result<(Check, Option<Check>)> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let first: Option<(i64, String)> = conn
        .query_row("SELECT id, text FROM chunks ORDER BY id LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    let Some((chunk_id, text)) = first else {
        return Ok((
            Check::pass("the backup holds no chunks: nothing to search"),
            None,
        ));
    };
    let keyword = match probe_term(&text) {
        None => Check::pass(format!("chunk {chunk_id} holds no searchable word")),
        Some(term) => {
            let hits =
                crate::search::keyword_candidates(&conn, std::slice::from_ref(&term), &[], 10)?;
            if hits.is_empty() {
                Check::fail(format!(
                    "a keyword search for {term:?}, a word of chunk {chunk_id}, found nothing"
                ))
            } else {
                Check::pass(format!(
                    "a keyword search for {term:?} (a word of chunk {chunk_id}) found {} chunks",
                    hits.len()
                ))
            }
        }
    };
    if engine.embedder().is_none() {
        return Ok((keyword, None));
    }
    let vector = vector_check(engine, &conn, chunk_id, &text)?;
    Ok((keyword, Some(vector)))
}

/// Embeds the chunk's text with this engine's model and searches the backup's stored
/// embeddings (an exact scan, one row at a time): the chunk must be among the nearest.
fn vector_check(
    engine: &Engine,
    conn: &rusqlite::Connection,
    chunk_id: i64,
    text: &str,
) -> crate::error::Result<Check> {
    let query = engine.embed_query(text)?;
    let mut stmt = conn.prepare("SELECT chunk_id, vector FROM embeddings WHERE model = ?1")?;
    let mut rows = stmt.query([engine.model_name()])?;
    let mut scored: Vec<(i64, f32)> = Vec::new();
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let blob: Vec<u8> = row.get(1)?;
        let v = crate::store::blob_to_vector(&blob);
        if v.len() == query.len() {
            scored.push((id, cosine(&query, &v)));
        }
    }
    if scored.is_empty() {
        return Ok(Check::pass(format!(
            "the backup holds no embeddings of {} (stored for keyword search only)",
            engine.model_name()
        )));
    }
    Ok(nearest_check(chunk_id, scored))
}

/// Whether `chunk_id` is among the [`VECTOR_TOP_K`] best of `scored`.
pub fn nearest_check(chunk_id: i64, mut scored: Vec<(i64, f32)>) -> Check {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    let n = scored.len();
    scored.truncate(VECTOR_TOP_K);
    match scored.iter().position(|(id, _)| *id == chunk_id) {
        Some(rank) => Check::pass(format!(
            "a vector search for the text of chunk {chunk_id} found it at rank {} of {n} \
             (similarity {:.3})",
            rank + 1,
            scored[rank].1
        )),
        None => Check::fail(format!(
            "a vector search for the text of chunk {chunk_id} did not find it among the {} \
             nearest of {n} stored embeddings: the stored vectors do not match their text",
            scored.len()
        )),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// A fresh id (`verify-<time>-<8 hex>`).
pub fn new_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "verify-{}-{}",
        chrono::Utc::now().format("%Y%m%dt%H%M%Sz"),
        &u[..8]
    )
}

/// `<data>/tmp`.
pub fn scratch_root(data_dir: &Path) -> PathBuf {
    data_dir.join(SCRATCH_DIR)
}

/// Removes the scratch directories of verifications a crash or kill cut short (run when the
/// engine opens, before any verification can start). Returns what was removed.
pub fn clean_stale_scratch(data_dir: &Path) -> Vec<PathBuf> {
    let root = scratch_root(data_dir);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return vec![];
    };
    let mut removed = vec![];
    for ent in entries.filter_map(|e| e.ok()) {
        if !ent
            .file_name()
            .to_string_lossy()
            .starts_with(SCRATCH_PREFIX)
        {
            continue;
        }
        let path = ent.path();
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push(path),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove stale verification scratch space")
            }
        }
    }
    if !removed.is_empty() {
        tracing::info!(
            count = removed.len(),
            "removed scratch space of interrupted verifications"
        );
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verification_passes_only_when_every_check_that_ran_passed() {
        let mut v = Verification::pending("v".into(), "/b/x.tar.gz");
        v.checks.checksums = Some(Check::pass("ok"));
        v.checks.integrity = Some(Check::pass("ok"));
        v.conclude(None);
        assert_eq!(v.phase, VerificationPhase::Passed);
        assert!(v.verified_at.is_some() && v.error.is_none());

        let mut v = Verification::pending("v".into(), "/b/x.tar.gz");
        v.backup_id = Some("b-1".into());
        v.checks.checksums = Some(Check::pass("ok"));
        v.checks.integrity = Some(Check::fail("sqlite: page 3 is never used"));
        v.conclude(None);
        assert_eq!(v.phase, VerificationPhase::Failed);
        let e = v.error.unwrap();
        assert!(
            e.contains("b-1 failed its integrity check: sqlite: page 3")
                && e.contains("Do not restore")
                && e.contains("take a new backup"),
            "{e}"
        );
    }

    #[test]
    fn a_verification_that_could_not_run_is_failed_and_says_why() {
        let mut v = Verification::pending("v".into(), "/b/x.tar.gz");
        v.conclude(Some("cannot create scratch space /d/tmp: disk full".into()));
        assert_eq!(v.phase, VerificationPhase::Failed);
        let e = v.error.unwrap();
        assert!(
            e.contains("could not run: cannot create scratch space"),
            "{e}"
        );
    }

    #[test]
    fn counts_must_equal_the_manifest() {
        assert!(counts_check((3, 10), (3, 10)).passed);
        let c = counts_check((3, 9), (3, 10));
        assert!(
            !c.passed && c.detail.contains("9 chunks") && c.detail.contains("10"),
            "{c:?}"
        );
    }

    #[test]
    fn the_vector_check_needs_the_chunk_among_the_nearest() {
        let scored: Vec<(i64, f32)> = (1..=10).map(|i| (i, i as f32 / 10.0)).collect();
        assert!(nearest_check(10, scored.clone()).passed);
        assert!(nearest_check(6, scored.clone()).passed);
        assert!(!nearest_check(5, scored).passed);
    }

    #[test]
    fn the_probe_term_is_the_longest_content_word() {
        assert_eq!(
            probe_term("The quick brown fox and the lighthouse").as_deref(),
            Some("lighthouse")
        );
        assert_eq!(probe_term("  ,, "), None);
    }

    #[test]
    fn stale_scratch_space_is_removed_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let root = scratch_root(d.path());
        std::fs::create_dir_all(root.join("verify-abc/data")).unwrap();
        std::fs::write(root.join("verify-abc/data/x"), b"x").unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        let removed = clean_stale_scratch(d.path());
        assert_eq!(removed, vec![root.join("verify-abc")]);
        assert!(root.join("other").exists());
    }
}
