//! `instant-db bench`: measures what the README reports, on this machine, and prints it.
//!
//! - embedding: raw ONNX Runtime throughput on the demo corpus' chunks, next to the whole ingest
//!   pipeline's (parse + chunk + embed + write) on the same corpus;
//! - ingest: documents/s, chunks/s and peak RSS for the demo corpus and for a slice of the Rust
//!   toolchain's HTML documentation (RSS sampled as it goes, to show it stays flat);
//! - search: end-to-end latency per mode on the demo corpus (query embedding included), and per
//!   mode end to end and for the retrieval alone on a 100k-chunk database (`scale`);
//! - index: HNSW on synthetic clustered 384-d unit vectors: build time, single-thread query
//!   latency at several `ef`, recall@10 against exact search, and exact search latency.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use crate::cli::Format;
use crate::config::Config;
use crate::engine::{Engine, ModelLoading};
use crate::error::{Error, Result};
use crate::index::{StoredVectors, VectorIndex};
use crate::ingest::{FileReport, IngestOptions, NoProgress, Progress};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to run: all, embed, ingest, search, index, rustdocs; or `recall`, which measures the
    /// graph's recall@10 on the embeddings of the database in `--data-dir`, or `archive`
    /// (continuous archiving: RPO after SIGKILL, write overhead, idle requests, restore time after
    /// an hour of changes; `archive-restore` runs only the last), `quality` (recall@1/@10 and
    /// MRR@10 per mode: std item summaries asked against their pages with the summary removed)
    /// or `search-real` (HTTP search latency on ingested Rust docs; with `--data-dir` the
    /// database is kept there and reused by later runs); none of these is part of `all`.
    #[arg(long, default_value = "all", value_parser = ["all", "embed", "ingest", "search", "index", "rustdocs", "recall", "archive", "archive-restore", "quality", "search-real"])]
    pub suite: String,
    /// Vectors in the index benchmark.
    #[arg(long, default_value_t = 100_000)]
    pub vectors: usize,
    /// Queries per latency measurement.
    #[arg(long, default_value_t = 500)]
    pub queries: usize,
    /// HTML files of the Rust documentation to ingest: default 1500 for `rustdocs` (0: skip;
    /// the whole set takes hours on 2 cores), 600 for `search-real` (about 6,000 chunks).
    #[arg(long)]
    pub rustdocs_files: Option<usize>,
    /// Chunks in the search-at-scale database (0: skip).
    #[arg(long, default_value_t = 100_000)]
    pub search_chunks: usize,
    /// std/core/alloc item pages in the `quality` suite (each gives at most one query).
    #[arg(long, default_value_t = 300)]
    pub quality_pages: usize,
    /// Demo corpus directory (default: the repository's demo-corpus/).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Whether `--data-dir` (or INSTANT_DB_DATA_DIR) was given: `search-real` keeps its
    /// database only in a directory the user named, never in the default data directory.
    #[arg(skip)]
    pub data_dir_given: bool,
}

mod archive;
mod archive_restore;
mod precision;
mod quality;
mod scale;
mod search_real;

/// Words appended to the demo questions so repeated queries differ (no cache can answer them).
const QUERY_VARIANTS: &[&str] = &["", "please", "exactly", "today", "again", "quickly"];

/// Samples this process's resident memory in the background and keeps the peak.
struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl RssSampler {
    fn start() -> RssSampler {
        let peak = Arc::new(AtomicU64::new(rss_bytes().unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(r) = rss_bytes() {
                    p.fetch_max(r, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler {
            peak,
            stop,
            handle: Some(handle),
        }
    }

    fn peak_mb(&self) -> f64 {
        self.peak_bytes() as f64 / 1_048_576.0
    }

    fn peak_bytes(&self) -> u64 {
        if let Some(r) = rss_bytes() {
            self.peak.fetch_max(r, Ordering::Relaxed);
        }
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn latency_stats(mut ms: Vec<f64>) -> Value {
    ms.sort_by(f64::total_cmp);
    let total: f64 = ms.iter().sum();
    json!({
        "p50_ms": round(percentile(&ms, 0.5), 4),
        "p99_ms": round(percentile(&ms, 0.99), 4),
        "qps": round(if total > 0.0 { ms.len() as f64 / (total / 1000.0) } else { 0.0 }, 1),
    })
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The profile this binary was built with: latencies of a debug build are not the README's.
fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Ingest progress on stderr, about every tenth of `total` documents.
struct Ticker {
    what: String,
    total: usize,
    done: AtomicUsize,
}

impl Ticker {
    fn new(what: impl Into<String>, total: usize) -> Ticker {
        Ticker {
            what: what.into(),
            total,
            done: AtomicUsize::new(0),
        }
    }
}

impl Progress for Ticker {
    fn file_done(&self, _report: &FileReport) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of((self.total / 10).max(1)) || n == self.total {
            eprintln!("bench: {} {n}/{}", self.what, self.total);
        }
    }
}

fn corpus_dir(args: &BenchArgs) -> Result<PathBuf> {
    args.corpus
        .clone()
        .or_else(|| {
            [
                PathBuf::from("demo-corpus"),
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../demo-corpus"),
            ]
            .into_iter()
            .find(|p| p.is_dir())
        })
        .ok_or_else(|| Error::InvalidInput("demo corpus not found; pass --corpus DIR".into()))
}

fn fresh_engine(base: &Config, dir: &Path) -> Result<Engine> {
    let config = Config {
        data_dir: dir.to_path_buf(),
        ..base.clone()
    };
    Engine::open(config, ModelLoading::Required)
}

/// The database of `engine` (in `dir`) opened again with `config`, for a peer run on the same
/// data; the index is saved first, so the new engine loads it instead of rebuilding it.
fn reopened(engine: Engine, config: &Config, dir: &Path) -> Result<Engine> {
    engine.persist_index()?;
    drop(engine);
    fresh_engine(config, dir)
}

pub fn run(config: Config, args: BenchArgs, fmt: Format) -> Result<i32> {
    let want = |s: &str| args.suite == "all" || args.suite == s;
    let mut results = serde_json::Map::new();
    results.insert("machine".into(), json!({
        "cpus": crate::sysres::cores(),
        "embedding_threads": if config.embedding.threads == 0 { "all cores".to_string() } else { config.embedding.threads.to_string() },
        "batch_size": config.embedding.batch_size,
    }));
    let corpus = corpus_dir(&args)?;
    if want("ingest") || want("embed") || want("search") {
        let tmp = tempfile::tempdir().map_err(|e| Error::io("temp dir", e))?;
        let sampler = RssSampler::start();
        let engine = fresh_engine(&config, tmp.path())?;
        let opts = IngestOptions {
            exclude: vec![],
            ..Default::default()
        };
        let report = crate::ingest::ingest_paths(
            &engine,
            std::slice::from_ref(&corpus),
            &opts,
            &NoProgress,
        )?;
        results.insert(
            "ingest_demo".into(),
            json!({
                "documents": report.added + report.updated,
                "chunks": report.chunks,
                "seconds": round(report.seconds, 3),
                "documents_per_second": round(report.documents_per_second, 1),
                "chunks_per_second": round(report.chunks_per_second, 1),
                "peak_rss_mb": round(sampler.peak_mb(), 1),
            }),
        );
        drop(sampler);
        if want("embed") || want("ingest") {
            // ONNX Runtime alone on exactly the texts the pipeline embedded (the chunks as
            // `embedding.text` composes them): same session, batches and threads, tokenisation
            // and pooling left out of the timing.
            let recipe = config.embedding.text;
            let texts: Vec<String> = engine
                .store
                .chunks_to_embed(engine.model_name(), 0, 1_000_000, false)?
                .iter()
                .map(|c| {
                    recipe
                        .input(c.title.as_deref(), &c.section_path, &c.text)
                        .into_owned()
                })
                .collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let embedder = engine
                .embedder()
                .ok_or_else(|| Error::ModelUnavailable("model not loaded".into()))?;
            let raw = refs.len() as f64 / embedder.inference_only_seconds(&refs)?;
            let t = Instant::now();
            embedder.embed(&refs)?;
            let embedder_rate = refs.len() as f64 / t.elapsed().as_secs_f64();
            results.insert(
                "embedding".into(),
                json!({
                    "raw_onnx_chunks_per_second": round(raw, 1),
                    "embedder_chunks_per_second": round(embedder_rate, 1),
                    "pipeline_chunks_per_second": round(report.chunks_per_second, 1),
                    "pipeline_over_raw": round(report.chunks_per_second / raw, 3),
                }),
            );
            let questions = scale::query_texts(args.queries.min(200), QUERY_VARIANTS);
            let questions: Vec<&str> = questions.iter().map(String::as_str).collect();
            results.insert(
                "int8_against_fp32".into(),
                precision::compare(&config, &refs, &questions)?.unwrap_or_else(|| {
                    json!("skipped: the int8 model is not installed (instant-db setup --int8)")
                }),
            );
        }
        if want("search") {
            results.insert(
                "search_demo_end_to_end".into(),
                scale::end_to_end(&engine, args.queries.min(200), QUERY_VARIANTS)?,
            );
            if args.search_chunks > 0 {
                results.insert(
                    "search_at_scale".into(),
                    scale::run(&config, &engine, args.search_chunks, args.queries.min(300))?,
                );
            }
        }
    }
    if want("index") {
        results.insert(
            "index".into(),
            bench_index(&config, args.vectors, args.queries)?,
        );
    }
    let rustdocs_files = args.rustdocs_files.unwrap_or(1500);
    if (want("rustdocs") || args.suite == "all") && rustdocs_files > 0 {
        match rust_docs_dir() {
            Some(dir) => results.insert(
                "ingest_rust_docs".into(),
                bench_rust_docs(&config, &dir, rustdocs_files)?,
            ),
            None => results.insert(
                "ingest_rust_docs".into(),
                json!("skipped: no Rust HTML documentation found (rustup component add rust-docs)"),
            ),
        };
    }
    if args.suite == "archive" {
        eprintln!("bench: continuous archiving (several minutes) …");
        results.insert("archive".into(), archive::run(&config, &corpus)?);
    }
    if args.suite == "archive-restore" {
        eprintln!("bench: restore time after an hour of changes …");
        results.insert(
            "restore_after_an_hour_of_changes".into(),
            archive::runtime()?
                .block_on(archive_restore::restore_after_an_hour(&config, &corpus))?,
        );
    }
    if args.suite == "quality" {
        let dir = rust_docs_dir().ok_or_else(no_rust_docs)?;
        results.insert(
            "retrieval_quality".into(),
            quality::run(&config, &dir, args.quality_pages)?,
        );
    }
    if args.suite == "search-real" {
        let dir = rust_docs_dir().ok_or_else(no_rust_docs)?;
        let opts = search_real::Options {
            files: args.rustdocs_files.unwrap_or(600).max(1),
            queries: args.queries,
            data_dir: args.data_dir_given.then(|| config.data_dir.clone()),
        };
        results.insert(
            "search_real".into(),
            search_real::run(&config, &dir, &opts)?,
        );
    }
    if args.suite == "recall" {
        eprintln!(
            "bench: graph recall on the database in {} …",
            config.data_dir.display()
        );
        let engine = Engine::open(config.clone(), ModelLoading::Skip)?;
        results.insert(
            "recall_on_stored_embeddings".into(),
            real_vector_recall(&engine, args.queries)?,
        );
    }
    let out = Value::Object(results);
    match fmt {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| Error::Internal(e.to_string()))?
        ),
        Format::Text => print!(
            "{}",
            serde_norway::to_string(&out).map_err(|e| Error::Internal(e.to_string()))?
        ),
    }
    Ok(0)
}

fn bench_index(config: &Config, n: usize, queries: usize) -> Result<Value> {
    let dims = 384;
    eprintln!("bench: building HNSW over {n} vectors of {dims} dimensions …");
    let vectors = crate::index::synthetic_vectors(n + queries, dims, 42);
    let (data, qs) = vectors.split_at(n);
    let items: Vec<(i64, Vec<f32>)> = data
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, v)| (i as i64, v))
        .collect();
    let index = VectorIndex::new(dims, "bench", &config.index, 0)?;
    let exact = crate::index::MemoryVectors::new(&items);
    let t = Instant::now();
    for batch in items.chunks(10_000) {
        index.add(batch)?;
    }
    let build_s = t.elapsed().as_secs_f64();
    let k = 10;
    // Ground truth in full f32 precision, independent of the index and its quantization.
    let truth: Vec<Vec<i64>> = qs.iter().map(|q| brute_force_top_k(data, q, k)).collect();
    let mut exact_ms = vec![];
    for q in qs.iter().take(50) {
        let t = Instant::now();
        index.search_exact(q, k, &exact)?;
        exact_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut by_ef = serde_json::Map::new();
    for ef in [16, 24, 32, 40, 48, 56, 64, 128] {
        let mut ms = Vec::with_capacity(qs.len());
        let mut found = 0usize;
        for (q, want) in qs.iter().zip(&truth) {
            let t = Instant::now();
            let hits = index.search_graph(q, k, ef, &exact)?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            found += hits.iter().filter(|(id, _)| want.contains(id)).count();
        }
        let mut stats = latency_stats(ms);
        stats["recall_at_10"] = json!(round(found as f64 / (qs.len() * k) as f64, 4));
        by_ef.insert(format!("ef_{ef}"), stats);
    }
    Ok(json!({
        "vectors": n,
        "dimensions": dims,
        "data": "synthetic, seeded: 24-d latent topic clusters mapped to 384-d plus noise, normalised (see index::synthetic_vectors)",
        "m": config.index.m,
        "simd": index.hardware_acceleration(),
        "ef_construction": config.index.ef_construction,
        "build_seconds": round(build_s, 1),
        "memory_bytes": index.stats().memory_bytes,
        "single_thread_query": by_ef,
        "exact_search": latency_stats(exact_ms),
    }))
}

/// ef_search values at which recall on real embeddings is measured.
const RECALL_EF: [usize; 4] = [32, 64, 128, 256];

/// Recall@10 of the graph on real embeddings, per ef of [`RECALL_EF`]: `queries` stored chunk
/// vectors, spread evenly, each searched for its ten nearest other chunks and scored against
/// an f32 brute force. Synthetic vectors drive the index suite; this checks they do not flatter
/// it.
fn real_vector_recall(engine: &Engine, queries: usize) -> Result<Value> {
    let k = 10;
    let mut ids = vec![];
    let mut data = vec![];
    // The vectors the index holds, read as a rebuild reads them.
    engine.stored_vectors().for_each_slice(4096, &mut |part| {
        for (id, v) in part {
            ids.push(*id);
            data.push(v.clone());
        }
        Ok(())
    })?;
    if data.len() <= k * 2 {
        return Ok(Value::Null);
    }
    let step = (data.len() / queries.max(1)).max(1);
    let picked: Vec<usize> = (0..data.len()).step_by(step).take(queries).collect();
    // Documentation repeats itself: many chunks share a vector, so a hit counts when its exact
    // score reaches the tenth true score, whichever of the tied chunks it is.
    let tenth: Vec<f32> = picked
        .iter()
        .map(|&i| {
            brute_force_ranking(&data, &data[i])
                .into_iter()
                .filter(|(j, _)| *j != i)
                .nth(k - 1)
                .map_or(f32::NEG_INFINITY, |(_, score)| score)
        })
        .collect();
    let stored = engine.stored_vectors();
    let mut by_ef = serde_json::Map::new();
    for ef in RECALL_EF {
        let mut found = 0usize;
        for (&i, &bar) in picked.iter().zip(&tenth) {
            let got = engine.index().search_graph(&data[i], k + 1, ef, &stored)?;
            found += got
                .iter()
                .filter(|(id, _)| *id != ids[i])
                .take(k)
                .filter(|(_, score)| *score >= bar - 1e-5)
                .count();
        }
        by_ef.insert(
            format!("ef_{ef}"),
            json!(round(found as f64 / (picked.len() * k) as f64, 4)),
        );
    }
    Ok(json!({"chunks": data.len(), "queries": picked.len(), "recall_at_10": by_ef}))
}

/// Every vector of `data` by descending inner product with `q`, as (position, score): the
/// ground truth of both recall measurements, in full f32 precision and outside the index.
fn brute_force_ranking(data: &[Vec<f32>], q: &[f32]) -> Vec<(usize, f32)> {
    let mut scored: Vec<(usize, f32)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i, v.iter().zip(q).map(|(a, b)| a * b).sum()))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored
}

fn brute_force_top_k(data: &[Vec<f32>], q: &[f32], k: usize) -> Vec<i64> {
    brute_force_ranking(data, q)
        .into_iter()
        .take(k)
        .map(|(i, _)| i as i64)
        .collect()
}

fn rust_docs_dir() -> Option<PathBuf> {
    let out = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = String::from_utf8(out.stdout).ok()?;
    let dir = PathBuf::from(sysroot.trim()).join("share/doc/rust/html");
    dir.is_dir().then_some(dir)
}

fn no_rust_docs() -> Error {
    Error::InvalidInput("no Rust HTML documentation found (rustup component add rust-docs)".into())
}

/// Every HTML page of the Rust documentation under `dir`, sorted by path.
fn rust_docs_pages(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "html"))
        .map(|e| e.into_path())
        .collect()
}

/// `limit` of `files` at an even stride, `offset` files into each stride: an even spread over
/// the tree rather than the first N files of one crate.
fn spread(files: &[PathBuf], limit: usize, offset: usize) -> Vec<PathBuf> {
    let step = (files.len() / limit.max(1)).max(1);
    files
        .iter()
        .skip(offset.min(step - 1))
        .step_by(step)
        .take(limit)
        .cloned()
        .collect()
}

fn bench_rust_docs(config: &Config, dir: &Path, limit: usize) -> Result<Value> {
    let all = rust_docs_pages(dir);
    let total_available = all.len();
    let files = spread(&all, limit, 0);
    eprintln!(
        "bench: ingesting {} of {total_available} Rust documentation pages …",
        files.len()
    );
    let tmp = tempfile::tempdir().map_err(|e| Error::io("temp dir", e))?;
    let engine = fresh_engine(config, tmp.path())?;
    let sampler = RssSampler::start();
    let mut rss_by_quarter = vec![];
    let mut index_by_quarter = vec![];
    let t = Instant::now();
    let (mut docs, mut chunks) = (0usize, 0usize);
    for part in files.chunks(files.len().div_ceil(4).max(1)) {
        let r = crate::ingest::ingest_paths(&engine, part, &IngestOptions::default(), &NoProgress)?;
        docs += r.added + r.updated;
        chunks += r.chunks;
        rss_by_quarter.push(round(rss_bytes().unwrap_or(0) as f64 / 1_048_576.0, 1));
        // The index holds every vector in memory by design; apart from it, memory must not grow.
        index_by_quarter.push(round(
            engine.index().stats().memory_bytes as f64 / 1_048_576.0,
            1,
        ));
    }
    let secs = t.elapsed().as_secs_f64();
    let recall = real_vector_recall(&engine, 200)?;
    Ok(json!({
        "graph_recall_at_10_on_these_chunks": recall,
        "files_available": total_available,
        "files_ingested": docs,
        "chunks": chunks,
        "seconds": round(secs, 1),
        "documents_per_second": round(docs as f64 / secs, 1),
        "chunks_per_second": round(chunks as f64 / secs, 1),
        "peak_rss_mb": round(sampler.peak_mb(), 1),
        "rss_mb_after_each_quarter": rss_by_quarter,
        "vector_index_mb_after_each_quarter": index_by_quarter,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_the_nearest_rank_of_a_sorted_list() {
        let sorted: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        // position 9 × 0.5 = 4.5, rounded away from zero
        assert_eq!(percentile(&sorted, 0.5), 6.0);
        assert_eq!(percentile(&sorted, 0.95), 10.0);
        assert_eq!(percentile(&sorted, 1.0), 10.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn spread_takes_an_even_stride_from_an_offset() {
        let files: Vec<PathBuf> = (0..10).map(|i| PathBuf::from(i.to_string())).collect();
        let names = |v: Vec<PathBuf>| {
            v.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(spread(&files, 3, 0)), ["0", "3", "6"]);
        assert_eq!(names(spread(&files, 3, 1)), ["1", "4", "7"]);
        // the offset stays inside the first stride
        assert_eq!(names(spread(&files, 5, 7)), ["1", "3", "5", "7", "9"]);
        assert_eq!(spread(&files, 20, 0).len(), 10);
    }
}
