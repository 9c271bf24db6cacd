//! Search at scale: a database of `n` chunks (text recombined from the demo corpus' sentences,
//! so BM25 sees real words at realistic frequencies; vectors from `index::synthetic_vectors`,
//! since embedding 100k chunks takes tens of minutes on 2 cores), then latency per mode end to
//! end (query embedding included, through `Engine::search`) and for the retrieval alone.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::{RssSampler, fresh_engine, latency_stats, reopened, round, rss_bytes};
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::search::{self, Mode, SearchRequest};
use crate::store::{DocumentRecord, NewChunk};

const CHUNKS_PER_DOCUMENT: usize = 10;
const SENTENCES_PER_CHUNK: std::ops::Range<usize> = 3..7;

pub(super) fn run(config: &Config, demo: &Engine, n: usize, queries: usize) -> Result<Value> {
    let sentences = demo_sentences(demo)?;
    if sentences.is_empty() {
        return Err(Error::InvalidInput(
            "the demo corpus gave no sentences to build the search benchmark from".into(),
        ));
    }
    let tmp = tempfile::tempdir().map_err(|e| Error::io("temp dir", e))?;
    let engine = fresh_engine(config, tmp.path())?;
    let dims = engine.index().dimensions();
    eprintln!("bench: writing {n} chunks with synthetic {dims}-d vectors …");
    let t = Instant::now();
    fill(&engine, &sentences, n, dims)?;
    let write_s = t.elapsed().as_secs_f64();
    let rss_empty = rss_bytes().unwrap_or(0);
    let t = Instant::now();
    let build_peak = peak_rss_during(|| engine.reload_index())?;
    let index_s = t.elapsed().as_secs_f64();
    let rss_built = rss_bytes().unwrap_or(0);
    // Again with the graph in memory, as after a restore or a repair: the old graph must go
    // before the new one is built, or the peak holds two.
    eprintln!("bench: rebuilding the index once more (a reload with the graph in memory) …");
    let reload_peak = peak_rss_during(|| engine.reload_index())?;
    let rss_reloaded = rss_bytes().unwrap_or(0);
    let per_chunk = |bytes: u64| json!((bytes as f64 / n.max(1) as f64).round());
    let mut out = serde_json::Map::new();
    out.insert("chunks".into(), json!(n));
    out.insert("write_seconds".into(), json!(round(write_s, 1)));
    out.insert("index_build_seconds".into(), json!(round(index_s, 1)));
    out.insert(
        "memory_bytes_per_chunk".into(),
        json!({
            "index": per_chunk(engine.index().stats().memory_bytes as u64),
            "rss_growth_after_build": per_chunk(rss_built.saturating_sub(rss_empty)),
            "build_peak_over_steady": per_chunk(build_peak.saturating_sub(rss_built)),
            "reload_peak_over_steady": per_chunk(reload_peak.saturating_sub(rss_built)),
            "rss_growth_after_reload": per_chunk(rss_reloaded.saturating_sub(rss_empty)),
        }),
    );
    out.insert(
        "end_to_end".into(),
        end_to_end(&engine, queries, super::QUERY_VARIANTS)?,
    );
    out.insert("retrieval_only".into(), retrieval_only(&engine, queries)?);
    // The peer, in the same run on the same database: every keyword query in one piece and
    // hybrid embedding its query before its keyword half, as on a collection below twice
    // `search.keyword_chunks_per_thread` (and as every search ran before 2026-12-03's change).
    eprintln!("bench: the same searches with keyword queries unsplit …");
    let mut unsplit = config.clone();
    unsplit.search.keyword_chunks_per_thread = usize::MAX;
    let engine = reopened(engine, &unsplit, tmp.path())?;
    out.insert(
        "end_to_end_keyword_unsplit".into(),
        end_to_end(&engine, queries, super::QUERY_VARIANTS)?,
    );
    Ok(Value::Object(out))
}

/// The highest resident memory of this process while `f` runs (sampled every 20 ms).
fn peak_rss_during(f: impl FnOnce() -> Result<()>) -> Result<u64> {
    let sampler = RssSampler::start();
    f()?;
    Ok(sampler.peak_bytes())
}

/// Sentences of the demo corpus' chunks, the vocabulary of the synthetic chunks.
fn demo_sentences(demo: &Engine) -> Result<Vec<String>> {
    let texts: Vec<String> = demo.store.read(|c| {
        Ok(c.prepare("SELECT text FROM chunks ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    })?;
    Ok(texts
        .iter()
        .flat_map(|t| t.split_inclusive(['.', '?', '!', '\n']))
        .map(str::trim)
        .filter(|s| s.split_whitespace().count() >= 3)
        .map(str::to_string)
        .collect())
}

fn fill(engine: &Engine, sentences: &[String], n: usize, dims: usize) -> Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let vectors = crate::index::synthetic_vectors(n, dims, 11);
    let now = chrono::Utc::now().to_rfc3339();
    let model = engine.model_name().to_string();
    for (d, part) in vectors.chunks(CHUNKS_PER_DOCUMENT).enumerate() {
        let chunks: Vec<NewChunk> = part
            .iter()
            .map(|v| {
                let count = rng.random_range(SENTENCES_PER_CHUNK);
                let text = (0..count)
                    .map(|_| sentences[rng.random_range(0..sentences.len())].as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                NewChunk {
                    section_path: vec![format!("Section {}", d % 17)],
                    token_count: text.split_whitespace().count(),
                    content_start: 0,
                    doc_start: 0,
                    doc_end: text.len(),
                    text,
                    embedding: Some(v.clone()),
                }
            })
            .collect();
        let chars: usize = chunks.iter().map(|c| c.text.len()).sum();
        let doc = DocumentRecord {
            id: format!("synthetic-{d}"),
            source: format!("synthetic/{d}.txt"),
            title: Some(format!("Synthetic document {d}")),
            extension: Some("txt".into()),
            mime: Some("text/plain".into()),
            doc_type: ["documentation", "meeting_notes", "report", "faq"][d % 4].into(),
            size_bytes: chars as i64,
            modified_at: Some(now.clone()),
            content_hash: format!("synthetic-{d}"),
            char_count: chars as i64,
            word_count: chunks.iter().map(|c| c.token_count as i64).sum(),
            line_count: chunks.len() as i64,
            chunk_count: chunks.len() as i64,
            metadata: json!({}),
            format_metadata: json!({}),
            ingested_at: now.clone(),
            updated_at: now.clone(),
        };
        engine.store.put_document(&doc, &chunks, &model)?;
        if d % 2000 == 0 && d > 0 {
            eprintln!("bench: {} of {n} chunks written", d * CHUNKS_PER_DOCUMENT);
        }
    }
    Ok(())
}

/// `Engine::search` per mode: the whole request path, query embedding included.
pub(super) fn end_to_end(engine: &Engine, queries: usize, variants: &[&str]) -> Result<Value> {
    // Searches as `serve` answers them: its query session is built before the first query.
    crate::server::prepare_query_session(engine);
    let mut per_mode = serde_json::Map::new();
    for mode in [Mode::Hybrid, Mode::Vector, Mode::Keyword] {
        let mut ms = Vec::with_capacity(queries);
        for q in query_texts(queries, variants) {
            let req = SearchRequest {
                query: q,
                mode,
                top_k: Some(10),
                ..Default::default()
            };
            let t = Instant::now();
            engine.search(&req)?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        per_mode.insert(mode.as_str().into(), latency_stats(ms));
    }
    Ok(Value::Object(per_mode))
}

/// Retrieval alone: the HNSW index for vector, FTS5 for keyword, both plus fusion for hybrid,
/// with the query vectors embedded beforehand.
fn retrieval_only(engine: &Engine, queries: usize) -> Result<Value> {
    let texts = query_texts(queries, super::QUERY_VARIANTS);
    let vectors = texts
        .iter()
        .map(|q| engine.embed_query(q))
        .collect::<Result<Vec<_>>>()?;
    let index = engine.index();
    let stored = engine.stored_vectors();
    let rrf_k = engine.config.search.rrf_k;
    let cores = crate::sysres::cores();
    let span = engine.chunk_span()?;
    let keyword = |q: &str, depth: usize| {
        engine.keyword_hits(&search::query_terms(q), &[], depth, span, cores)
    };
    let mut per_mode = serde_json::Map::new();
    for mode in [Mode::Hybrid, Mode::Vector, Mode::Keyword] {
        let mut ms = Vec::with_capacity(texts.len());
        for (q, v) in texts.iter().zip(&vectors) {
            let t = Instant::now();
            match mode {
                Mode::Vector => {
                    index.search(v, 10, None, &stored)?;
                }
                Mode::Keyword => {
                    keyword(q, 10)?;
                }
                // The engine fetches 50 deep from each list before fusing a page of 10.
                Mode::Hybrid => {
                    let (vh, kh) = (index.search(v, 50, None, &stored)?, keyword(q, 50)?);
                    search::rrf(&[&vh, &kh], rrf_k);
                }
            }
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        per_mode.insert(mode.as_str().into(), latency_stats(ms));
    }
    // The peer of the keyword row: the same query unsplit, as one FTS5 query on one thread.
    let mut ms = Vec::with_capacity(texts.len());
    for q in &texts {
        let terms = search::query_terms(q);
        let t = Instant::now();
        engine
            .store
            .read(|c| search::keyword_candidates(c, &terms, &[], 10))?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    per_mode.insert("keyword_one_thread".into(), latency_stats(ms));
    Ok(Value::Object(per_mode))
}

/// The demo questions, each with a varying suffix so no two consecutive queries are equal.
pub(super) fn query_texts(n: usize, variants: &[&str]) -> Vec<String> {
    let questions = crate::demo::DEFAULT_QUESTIONS;
    (0..n)
        .map(|i| {
            let q = questions[i % questions.len()];
            let v = variants[(i / questions.len()) % variants.len()];
            format!("{q} {v}").trim().to_string()
        })
        .collect()
}
