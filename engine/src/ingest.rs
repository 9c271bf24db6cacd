//! Ingest: walk files, parse, chunk, embed, store.
//!
//! Three stages run at once on bounded channels, so parsing and writing overlap with embedding
//! (which dominates): a preparer thread reads, hashes, parses and chunks; an embedder thread
//! batches chunks across documents; the calling thread writes each document in one transaction
//! and updates the vector index. Memory stays flat: at most a few documents are in flight.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chunk::{ChunkConfig, chunk_document};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::store::{DocumentRecord, NewChunk};

mod problems;
mod read;
mod sync;
mod walk;
pub mod watch;

pub use problems::{ProblemKind, nothing_ingested};
pub use sync::{SyncOptions, SyncReport, sync_paths};
pub use walk::{Walk, build_globset, walk};

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct IngestOptions {
    /// Descend into subdirectories (default true).
    pub recursive: Option<bool>,
    /// Extra glob patterns to skip, on top of `ingest.exclude`.
    pub exclude: Vec<String>,
    /// User metadata attached to every ingested document.
    #[schema(value_type = Object)]
    pub metadata: Option<serde_json::Value>,
}

/// One input document, already in memory (API text documents and uploads).
#[derive(Debug, Clone)]
pub struct SourceDoc {
    /// Stable identity: a path, or `api:<name>` for text sent over HTTP.
    pub source: String,
    /// Name whose extension picks the parser.
    pub name: String,
    pub bytes: Vec<u8>,
    pub modified_at: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileOutcome {
    Added,
    Updated,
    Unchanged,
    Skipped,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileReport {
    pub source: String,
    pub outcome: FileOutcome,
    pub document_id: Option<String>,
    pub chunks: usize,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// The class of `reason` (unsupported, encrypted, corrupt, ...), for skipped or failed files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ProblemKind>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestReport {
    pub files_seen: usize,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub failed: usize,
    pub chunks: usize,
    pub embedded_chunks: usize,
    pub seconds: f64,
    pub documents_per_second: f64,
    pub chunks_per_second: f64,
    /// Set when chunks were stored without vectors because the model is unavailable or
    /// embedding failed (after its retries, or with the embedding breaker open).
    pub degraded: Option<String>,
    /// Sources of the documents stored without vectors: found by keyword search only until
    /// `instant-db repair` embeds them.
    #[serde(default)]
    pub degraded_documents: Vec<String>,
    /// Set when the ingest stopped early because the database refused a write (disk full,
    /// read-only...): says what to do. Documents reported as added or updated are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Set when files were found but none was ingested: what was skipped, by reason, and what
    /// to do (`0 files ingested, 3 skipped or failed: 3 unsupported (.png); ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nothing_ingested: Option<String>,
    /// Attachments removed because the mail they came with was replaced by a version without
    /// them (`<file>#<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_attachments: Vec<String>,
    /// Per-file outcomes other than `unchanged` and `added`/`updated` (problems only).
    pub problems: Vec<FileReport>,
    /// Every file's outcome, when the caller asked for details.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileReport>,
}

/// Progress notifications for a bar or a log, and the caller's way to stop the ingest.
pub trait Progress: Sync {
    fn start(&self, _total: usize) {}
    fn file_done(&self, _report: &FileReport) {}
    fn finish(&self) {}
    /// Asked before each document, embedding batch and write: `true` stops the ingest there
    /// (what is stored stays; the report says it was stopped).
    fn cancelled(&self) -> bool {
        false
    }
}

/// A switch that stops work from another thread (see [`Progress::cancelled`]).
#[derive(Debug, Clone, Default)]
pub struct Cancel(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// What the report says when the caller stopped the ingest.
const CANCELLED: &str = "stopped because its request ended (limits.request_timeout_secs, the client went away, or the server is shutting down); documents reported as added or updated are stored: run the same ingest again for the rest, with a longer timeout or fewer files";

pub struct NoProgress;
impl Progress for NoProgress {}

fn skip(path: &Path, reason: String, kind: ProblemKind) -> FileReport {
    FileReport {
        source: path.display().to_string(),
        outcome: kind.outcome(),
        document_id: None,
        chunks: 0,
        reason: Some(reason),
        kind: Some(kind),
    }
}

/// A document parsed and chunked, waiting for vectors.
struct Prepared {
    record: DocumentRecord,
    chunks: Vec<NewChunk>,
    existed: bool,
    /// Files inside this one, ingested after it (not kept with the record).
    attachments: Vec<crate::parse::Attachment>,
    /// Why its chunks are stored without vectors, when embedding failed.
    degraded: Option<String>,
}

enum Work {
    Doc(Box<Prepared>),
    Done(FileReport),
}

pub fn document_id(source: &str) -> String {
    hex::encode(&Sha256::digest(source.as_bytes())[..8])
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The SHA-256 of a document's bytes, as stored in `documents.content_hash`.
fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// How a source compares with what is stored under its name.
enum Stored {
    /// Nothing stored yet.
    None,
    /// Stored with the same content (and, when the source brings user metadata, the same).
    Same,
    /// Stored, with other content or metadata: the id to replace.
    Other(String),
}

/// Compares `src` (whose bytes hash to `hash`) with its stored version; ingest and a dry-run
/// sync decide "unchanged" by this one rule.
fn stored_version(engine: &Engine, src: &SourceDoc, hash: &str) -> Result<Stored> {
    let Some((id, old_hash)) = engine.store.hash_of_source(&src.source)? else {
        return Ok(Stored::None);
    };
    if old_hash != hash {
        return Ok(Stored::Other(id));
    }
    // Same content: only user metadata may have changed.
    match &src.metadata {
        Some(m) if engine.store.get_document(&id)?.metadata != *m => Ok(Stored::Other(id)),
        _ => Ok(Stored::Same),
    }
}

/// Reads, hashes, parses and chunks one document; `None` means unchanged since last time.
// Debug level: one span per file is too many for INFO logs, but shows in traces on demand.
#[tracing::instrument(name = "prepare_document", level = "debug", skip_all, fields(source = %src.source, bytes = src.bytes.len()))]
fn prepare(engine: &Engine, src: &SourceDoc, chunk_cfg: &ChunkConfig) -> Result<Option<Prepared>> {
    let hash = content_hash(&src.bytes);
    let previous = match stored_version(engine, src, &hash)? {
        Stored::Same => return Ok(None),
        Stored::None => None,
        Stored::Other(id) => Some(id),
    };
    let metadata = src
        .metadata
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    let path = Path::new(&src.name);
    let mut parsed = engine
        .parsers
        .parse_path(path, &src.bytes)
        .map_err(|source| Error::Parse {
            path: PathBuf::from(&src.source),
            source,
        })?;
    let attachments = std::mem::take(&mut parsed.attachments);
    let text = parsed.full_text();
    let doc_type = crate::doctype::classify(path, parsed.title.as_deref(), &text);
    let chunks: Vec<NewChunk> = chunk_document(&parsed, chunk_cfg, engine.token_counter())
        .into_iter()
        .map(|c| NewChunk {
            section_path: c.section_path,
            content_start: c.content_start,
            doc_start: c.doc_start,
            doc_end: c.doc_end,
            token_count: c.token_count,
            text: c.text,
            embedding: None,
        })
        .collect();
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
    let mime = engine.parsers.for_path(path).map(|p| p.mime().to_string());
    let title = parsed.title.clone().or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().replace(['-', '_'], " "))
    });
    let ts = now();
    let record = DocumentRecord {
        id: previous.clone().unwrap_or_else(|| document_id(&src.source)),
        source: src.source.clone(),
        title,
        extension: ext,
        mime,
        doc_type: doc_type.as_str().to_string(),
        size_bytes: src.bytes.len() as i64,
        modified_at: src.modified_at.clone(),
        content_hash: hash,
        char_count: text.chars().count() as i64,
        word_count: text.split_whitespace().count() as i64,
        line_count: text.lines().count() as i64,
        chunk_count: chunks.len() as i64,
        metadata,
        format_metadata: serde_json::Value::Object(parsed.metadata),
        ingested_at: ts.clone(),
        updated_at: ts,
    };
    Ok(Some(Prepared {
        record,
        chunks,
        existed: previous.is_some(),
        attachments,
        degraded: None,
    }))
}

/// Ingests files and directories.
pub fn ingest_paths(
    engine: &Engine,
    paths: &[PathBuf],
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport> {
    ingest_walked(engine, walk(engine, paths, opts, None)?, opts, progress)
}

/// Ingests files and directories for a caller who may only read under `allowed_roots` (the
/// server): files that resolve elsewhere, through symbolic links too, are skipped and reported.
pub fn ingest_paths_within(
    engine: &Engine,
    paths: &[PathBuf],
    allowed_roots: &[PathBuf],
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport> {
    let walked = walk(engine, paths, opts, Some(allowed_roots))?;
    ingest_walked(engine, walked, opts, progress)
}

fn ingest_walked(
    engine: &Engine,
    walked: Walk,
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport> {
    let max = engine.config.ingest.max_file_bytes;
    let meta = opts.metadata.clone();
    let (files, roots) = (walked.files, walked.roots);
    let sources = files.iter().map(move |p| {
        read::read_source(p, max, meta.clone(), roots.as_deref()).map_err(|(o, r)| skip(p, r, o))
    });
    let mut report = run(engine, files.len(), sources, progress)?;
    report.files_seen += walked.problems.len();
    for p in walked.problems {
        if p.outcome == FileOutcome::Failed {
            report.failed += 1;
        } else {
            report.skipped += 1;
        }
        count_problem(engine, &p);
        report.problems.push(p);
    }
    report.nothing_ingested = nothing_ingested(&report);
    Ok(report)
}

/// Counts a skipped or failed file in `instantdb_ingest_problems_total{reason}`.
fn count_problem(engine: &Engine, file: &FileReport) {
    if let Some(k) = file.kind {
        engine
            .metrics
            .ingest_problems
            .with_label_values(&[k.as_str()])
            .inc();
    }
}

/// Ingests in-memory documents (HTTP text documents and uploads).
pub fn ingest_sources(
    engine: &Engine,
    docs: Vec<SourceDoc>,
    progress: &dyn Progress,
) -> Result<IngestReport> {
    let n = docs.len();
    run(engine, n, docs.into_iter().map(Ok), progress)
}

fn run(
    engine: &Engine,
    total: usize,
    sources: impl Iterator<Item = std::result::Result<SourceDoc, FileReport>> + Send,
    progress: &dyn Progress,
) -> Result<IngestReport> {
    let started = Instant::now();
    let chunk_cfg = ChunkConfig::new(
        engine.config.chunking.max_tokens,
        engine.config.chunking.overlap_tokens,
    )
    .map_err(|e| Error::Config(e.to_string()))?;
    progress.start(total);
    let mut report = IngestReport {
        files_seen: total,
        ..Default::default()
    };
    let batch_size = engine.embedder().map_or(32, |e| e.batch_size());
    if engine.embedder().is_none() {
        report.degraded = Some(format!(
            "embedding model unavailable ({}); documents stored for keyword search only, run `instant-db repair` once the model works",
            engine.model_error().unwrap_or("not loaded")
        ));
    }
    let (prep_tx, prep_rx) = sync_channel::<Work>(8);
    let (emb_tx, emb_rx) = sync_channel::<Work>(8);
    std::thread::scope(|scope| -> Result<()> {
        scope.spawn(move || prepare_stage(engine, sources, &chunk_cfg, prep_tx, progress));
        scope.spawn(move || embed_stage(engine, batch_size, prep_rx, emb_tx, progress));
        write_stage(engine, emb_rx, &mut report, progress)
    })?;
    if progress.cancelled() && report.stopped.is_none() && report.files.len() < total {
        report.stopped = Some(CANCELLED.to_string());
    }
    if !report.degraded_documents.is_empty() && report.degraded.is_none() {
        report.degraded = Some(format!(
            "{} documents were stored without vectors because embedding failed (see the log and instantdb_embedding_failures_total); they are found by keyword search only: run `instant-db repair` once the model works",
            report.degraded_documents.len()
        ));
    }
    if let Some(msg) = &mut report.stopped {
        let left = total.saturating_sub(report.files.len());
        if left > 0 {
            msg.push_str(&format!(" ({left} of {total} inputs were not reached)"));
        }
    }
    if let Err(e) = engine.persist_index_if_due() {
        // After a failed write the disk is likely full too; the index is derived data, rebuilt
        // from the database at the next start, so the report of what was stored still goes out.
        match &mut report.stopped {
            Some(msg) => {
                tracing::warn!(error = %e, "the vector index could not be saved");
                msg.push_str(&format!(
                    "; the vector index could not be saved either ({e}) and is rebuilt at the next start"
                ));
            }
            None => return Err(e),
        }
    }
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    report.seconds = secs;
    let docs = (report.added + report.updated) as f64;
    report.documents_per_second = if secs > 0.0 { docs / secs } else { 0.0 };
    report.chunks_per_second = if secs > 0.0 {
        report.chunks as f64 / secs
    } else {
        0.0
    };
    Ok(report)
}

/// The work item for one source: a prepared document, or its outcome when there is nothing
/// to store (unchanged, or not parsable).
fn prepare_work(engine: &Engine, src: SourceDoc, cfg: &ChunkConfig) -> Work {
    match prepare(engine, &src, cfg) {
        Ok(Some(p)) => Work::Doc(Box::new(p)),
        Ok(None) => Work::Done(FileReport {
            source: src.source,
            outcome: FileOutcome::Unchanged,
            document_id: None,
            chunks: 0,
            reason: None,
            kind: None,
        }),
        Err(e) => {
            let kind = match &e {
                Error::Parse { source, .. } => ProblemKind::of_parse(source),
                // prepare reads only the database besides parsing
                _ => ProblemKind::NotStored,
            };
            Work::Done(skip(Path::new(&src.source), e.to_string(), kind))
        }
    }
}

fn prepare_stage(
    engine: &Engine,
    sources: impl Iterator<Item = std::result::Result<SourceDoc, FileReport>>,
    cfg: &ChunkConfig,
    tx: SyncSender<Work>,
    progress: &dyn Progress,
) {
    for src in sources {
        if progress.cancelled() {
            return;
        }
        let work = match src {
            Err(report) => Work::Done(report),
            Ok(src) => prepare_work(engine, src, cfg),
        };
        // Attachments (of a mail) follow their container as documents of their own.
        let attached = match &work {
            Work::Doc(p) => attachment_sources(engine, &p.record.source, &p.attachments),
            Work::Done(_) => Vec::new(),
        };
        if tx.send(work).is_err() {
            return; // the writer stopped (an error); nothing more to do
        }
        for a in attached {
            let work = match a {
                Err(report) => Work::Done(report),
                Ok(a) => prepare_work(engine, a, cfg),
            };
            if tx.send(work).is_err() {
                return;
            }
        }
    }
}

/// The attachments of document `source` as sources of their own (`<source>#<name>`), so each
/// is found, replaced and deleted like any document. An attachment of a type no parser reads
/// is reported as skipped (one level deep: attachments of attachments are only listed).
fn attachment_sources(
    engine: &Engine,
    source: &str,
    attachments: &[crate::parse::Attachment],
) -> Vec<std::result::Result<SourceDoc, FileReport>> {
    attachments
        .iter()
        .map(|a| {
            let id = format!("{source}#{}", a.name);
            if engine.parsers.for_path(Path::new(&a.name)).is_none() {
                return Err(skip(
                    Path::new(&id),
                    format!(
                        "attachment not ingested: no parser for its type (it is listed in {source})"
                    ),
                    ProblemKind::Unsupported,
                ));
            }
            Ok(SourceDoc {
                source: id,
                name: a.name.clone(),
                bytes: a.bytes.clone(),
                modified_at: None,
                metadata: Some(serde_json::json!({ "attached_to": source })),
            })
        })
        .collect()
}

/// Gathers chunks across documents, several batches' worth, before embedding them: the
/// embedder sorts them by length, so larger groups pad less, and many small files still fill
/// each inference call. A short pause in the input flushes what is pending.
fn embed_stage(
    engine: &Engine,
    batch_size: usize,
    rx: Receiver<Work>,
    tx: SyncSender<Work>,
    progress: &dyn Progress,
) {
    let mut pending: Vec<Box<Prepared>> = vec![];
    let mut pending_chunks = 0;
    let flush = |pending: &mut Vec<Box<Prepared>>, tx: &SyncSender<Work>| -> bool {
        if engine.embedder().is_some() {
            match embed_pending(engine, pending, batch_size, progress) {
                Ok(true) => {}
                // Cancelled: nothing more goes to the writer.
                Ok(false) => return false,
                Err(e) => {
                    // Store without vectors rather than lose the documents; `repair` backfills.
                    // (The failure is counted in `instantdb_embedding_failures_total`.)
                    tracing::error!(error = %e, "embedding failed; storing chunks without vectors");
                    for p in pending.iter_mut() {
                        for c in &mut p.chunks {
                            c.embedding = None;
                        }
                        if !p.chunks.is_empty() {
                            p.degraded = Some(e.to_string());
                        }
                    }
                }
            }
        } else {
            let why = engine.model_error().unwrap_or("model not loaded");
            for p in pending.iter_mut().filter(|p| !p.chunks.is_empty()) {
                p.degraded = Some(format!("embedding model unavailable ({why})"));
            }
        }
        for p in pending.drain(..) {
            if tx.send(Work::Doc(p)).is_err() {
                return false;
            }
        }
        true
    };
    loop {
        let next = if pending.is_empty() {
            rx.recv().ok()
        } else {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(w) => Some(w),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if !flush(&mut pending, &tx) {
                        return;
                    }
                    pending_chunks = 0;
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
            }
        };
        match next {
            Some(Work::Doc(p)) => {
                pending_chunks += p.chunks.len();
                pending.push(p);
                if pending_chunks >= batch_size * 4 {
                    if !flush(&mut pending, &tx) {
                        return;
                    }
                    pending_chunks = 0;
                }
            }
            Some(done @ Work::Done(_)) => {
                if tx.send(done).is_err() {
                    return;
                }
            }
            None => {
                flush(&mut pending, &tx);
                return;
            }
        }
    }
}

/// Embeds the pending documents' chunks through the engine's embedding path (the circuit
/// breaker and retries searches use, with its metrics), `batch_size` texts per call so that a
/// cancellation is seen between calls even inside one large document. `Ok(false)`: cancelled.
fn embed_pending(
    engine: &Engine,
    pending: &mut [Box<Prepared>],
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<bool> {
    let recipe = engine.config.embedding.text;
    let inputs: Vec<std::borrow::Cow<'_, str>> = pending
        .iter()
        .flat_map(|p| {
            p.chunks
                .iter()
                .map(|c| recipe.input(p.record.title.as_deref(), &c.section_path, &c.text))
        })
        .collect();
    // Texts of like length share a call (and so its batches, padded to their longest), as if
    // all were embedded at once; calls of `batch_size` texts keep cancellation prompt.
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| inputs[i].len());
    let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); inputs.len()];
    for group in order.chunks(batch_size.max(1)) {
        if progress.cancelled() {
            return Ok(false);
        }
        let texts: Vec<&str> = group.iter().map(|&i| inputs[i].as_ref()).collect();
        let embedded = engine.embed_texts(&texts)?;
        if embedded.len() != group.len() {
            return Err(Error::Internal(format!(
                "the model returned {} vectors for {} texts",
                embedded.len(),
                group.len()
            )));
        }
        for (&i, v) in group.iter().zip(embedded) {
            vectors[i] = v;
        }
    }
    let mut it = vectors.into_iter();
    for p in pending.iter_mut() {
        for c in &mut p.chunks {
            c.embedding = it.next();
        }
    }
    Ok(true)
}

/// What to tell the user when the database refuses a write.
fn write_failure_advice(e: &Error) -> String {
    use rusqlite::ErrorCode;
    let what = match e {
        Error::Database(rusqlite::Error::SqliteFailure(f, _)) => match f.code {
            ErrorCode::DiskFull => "the disk holding the data directory is full: free space",
            ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen => {
                "the database cannot be written: check the permissions and mount of the data directory"
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                "another process holds the database: stop it"
            }
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                "the database is damaged: run `instant-db check` and restore a backup"
            }
            _ => "check the disk and the data directory (`instant-db check`)",
        },
        _ => "check the disk and the data directory (`instant-db check`)",
    };
    format!(
        "stopped after a database write failed ({e}); {what}, then run the same ingest again: documents reported as added or updated are stored, unchanged ones are skipped quickly"
    )
}

fn write_stage(
    engine: &Engine,
    rx: Receiver<Work>,
    report: &mut IngestReport,
    progress: &dyn Progress,
) -> Result<()> {
    for work in rx {
        let file = match work {
            Work::Done(r) => r,
            Work::Doc(p) => {
                if progress.cancelled() {
                    report.stopped = Some(CANCELLED.to_string());
                    return Ok(());
                }
                let outcome = match engine.write_document(&p.record, &p.chunks) {
                    Ok(o) => o,
                    Err(e) => {
                        // The failed transaction rolled back: this document keeps its
                        // previous version and everything written before it stays. Going
                        // on would most likely fail the same way for every document, so
                        // the ingest stops here and says why.
                        let file = skip(
                            Path::new(&p.record.source),
                            format!("not stored: {e}"),
                            ProblemKind::NotStored,
                        );
                        tracing::error!(source = %file.source, error = %e, "database write failed; stopping the ingest");
                        engine
                            .metrics
                            .ingest_documents
                            .with_label_values(&["failed"])
                            .inc();
                        report.failed += 1;
                        count_problem(engine, &file);
                        report.stopped = Some(write_failure_advice(&e));
                        report.problems.push(file.clone());
                        progress.file_done(&file);
                        report.files.push(file);
                        return Ok(());
                    }
                };
                if p.existed {
                    // A replaced mail's attachments are its content too: those it no longer
                    // has go with its old version. (A failure here is a database refusing
                    // writes, which the next write reports and stops on.)
                    match sync::remove_dropped_attachments(engine, &p.record.source, &p.attachments)
                    {
                        Ok(gone) => report.removed_attachments.extend(gone),
                        Err(e) => {
                            tracing::warn!(source = %p.record.source, error = %e, "old attachments not removed")
                        }
                    }
                }
                report.chunks += p.chunks.len();
                report.embedded_chunks += outcome.added.len();
                if let Some(why) = &p.degraded {
                    tracing::warn!(source = %p.record.source, reason = %why, "document stored without vectors");
                    engine.metrics.ingest_degraded_documents.inc();
                    report.degraded_documents.push(p.record.source.clone());
                }
                FileReport {
                    source: p.record.source.clone(),
                    outcome: if p.existed {
                        FileOutcome::Updated
                    } else {
                        FileOutcome::Added
                    },
                    document_id: Some(p.record.id.clone()),
                    chunks: p.chunks.len(),
                    reason: None,
                    kind: None,
                }
            }
        };
        let result = match file.outcome {
            FileOutcome::Added | FileOutcome::Updated => "ok",
            FileOutcome::Unchanged => "unchanged",
            FileOutcome::Skipped => "skipped",
            FileOutcome::Failed => "failed",
        };
        engine
            .metrics
            .ingest_documents
            .with_label_values(&[result])
            .inc();
        engine.metrics.ingest_chunks.inc_by(file.chunks as u64);
        match file.outcome {
            FileOutcome::Added => report.added += 1,
            FileOutcome::Updated => report.updated += 1,
            FileOutcome::Unchanged => report.unchanged += 1,
            FileOutcome::Skipped => report.skipped += 1,
            FileOutcome::Failed => report.failed += 1,
        }
        match file.outcome {
            FileOutcome::Skipped | FileOutcome::Failed => {
                count_problem(engine, &file);
                tracing::warn!(source = %file.source, reason = file.reason.as_deref().unwrap_or(""), "file not ingested");
                report.problems.push(file.clone());
            }
            _ => tracing::debug!(source = %file.source, outcome = ?file.outcome, "file ingested"),
        }
        progress.file_done(&file);
        report.files.push(file);
    }
    Ok(())
}
