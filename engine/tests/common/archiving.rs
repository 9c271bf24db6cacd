//! Helpers of the continuous-archiving tests: a writer engine (real SQLite, no model: the
//! archive does not involve it, the vectors are made up but stored and compared), its document
//! set, and point-in-time restores into fresh data directories.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use instant_db::archive::TargetTime;
use instant_db::config::Config;
use instant_db::engine::{Engine, ModelLoading};
use instant_db::store::{DocumentRecord, NewChunk};

/// What a document is, as compared between the writer and a restore: its content hash, its
/// chunk texts and the bytes of their vectors.
pub type DocSet = BTreeMap<String, (String, Vec<String>, Vec<Vec<u8>>)>;

pub fn archiving_config(data: &Path, destination: &str, creds: Option<&Path>) -> Config {
    let mut cfg = super::config(data);
    cfg.archive.destination = Some(destination.to_string());
    cfg.archive.max_lag_secs = 1;
    if let Some(c) = creds {
        cfg.backup.credentials_dir = c.to_path_buf();
    }
    cfg
}

pub fn open(cfg: Config) -> Arc<Engine> {
    Arc::new(Engine::open(cfg, ModelLoading::Skip).unwrap())
}

/// A 384-dimension vector made from a text (the default model's dimensions, so the vector
/// index takes it).
fn vector(text: &str) -> Vec<f32> {
    let mut h: u64 = 1469598103934665603;
    (0..384)
        .map(|i| {
            for b in text.bytes().chain([i as u8]) {
                h = (h ^ b as u64).wrapping_mul(1099511628211);
            }
            (h % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Writes (or rewrites) document `id` with `version` in its text, as ingest would: one
/// transaction with its chunks and vectors.
pub fn put(engine: &Engine, id: &str, version: u32) {
    let texts = [
        format!("{id} version {version} first part"),
        format!("{id} version {version} second part"),
    ];
    let chunks: Vec<NewChunk> = texts
        .iter()
        .map(|t| NewChunk {
            section_path: vec!["Body".into()],
            text: t.clone(),
            content_start: 0,
            doc_start: 0,
            doc_end: t.len(),
            token_count: 5,
            embedding: Some(vector(t)),
        })
        .collect();
    let now = chrono::Utc::now().to_rfc3339();
    let doc = DocumentRecord {
        id: id.into(),
        source: format!("api:{id}.txt"),
        title: Some(id.into()),
        extension: Some("txt".into()),
        mime: Some("text/plain".into()),
        doc_type: "other".into(),
        size_bytes: 40,
        modified_at: None,
        content_hash: format!("{id}-v{version}"),
        char_count: 40,
        word_count: 8,
        line_count: 2,
        chunk_count: 2,
        metadata: serde_json::json!({"version": version}),
        format_metadata: serde_json::json!({}),
        ingested_at: now.clone(),
        updated_at: now,
    };
    let model = engine.model_name().to_string();
    engine.store.put_document(&doc, &chunks, &model).unwrap();
}

pub fn delete(engine: &Engine, id: &str) {
    engine.store.delete_document(id).unwrap();
}

pub fn doc_set(engine: &Engine) -> DocSet {
    let mut out = DocSet::new();
    for d in engine.store.list_documents(0, 1_000_000).unwrap() {
        let texts = engine
            .store
            .chunks_of(&d.id)
            .unwrap()
            .into_iter()
            .map(|c| c.text)
            .collect();
        let vectors = engine
            .store
            .read(|c| {
                let mut stmt = c.prepare(
                    "SELECT e.vector FROM embeddings e JOIN chunks c ON c.id = e.chunk_id
                     WHERE c.document_id = ?1 ORDER BY c.chunk_index",
                )?;
                let rows = stmt
                    .query_map([&d.id], |r| r.get::<_, Vec<u8>>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .unwrap();
        out.insert(d.id.clone(), (d.content_hash.clone(), texts, vectors));
    }
    out
}

/// Restores `destination` to `target` into a fresh data directory under `root` and returns the
/// restored engine and the report.
pub async fn restore_fresh(
    root: &Path,
    name: &str,
    destination: &str,
    target: TargetTime,
    creds: Option<&Path>,
) -> instant_db::Result<(Arc<Engine>, instant_db::archive::PitrReport)> {
    let mut cfg = super::config(&root.join(name));
    if let Some(c) = creds {
        cfg.backup.credentials_dir = c.to_path_buf();
    }
    let engine = open(cfg);
    let report = instant_db::archive::restore_to_time(
        engine.clone(),
        destination,
        target,
        instant_db::backup::no_progress(),
        Arc::new(|_| {}),
    )
    .await?;
    Ok((engine, report))
}

/// The segments in a destination directory's archive, as (first, last) seqs, in order.
pub fn segment_ranges(archive_dir: &Path) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = std::fs::read_dir(archive_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    instant_db::archive::segment::SegmentName::parse(
                        &e.file_name().to_string_lossy(),
                    )
                })
                .map(|s| (s.first, s.last))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A tiny deterministic generator (xorshift), so a failing seed can be run again.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
