//! `instant-db bench --suite quality`: retrieval quality on questions nobody tuned the engine
//! to. The Rust standard library's item pages (structs, traits, enums, functions, macros of
//! std, core and alloc) each open with a one-line summary written by the library's authors.
//! That paragraph is cut out of its page, the pages are ingested, and each summary is asked in
//! every mode: the right answer is the page it came from, which no longer contains it, so
//! neither mode can win by matching the query verbatim.
//!
//! Scores are per document (a page split into many chunks counts once, at its best chunk):
//! recall@1, recall@10 and MRR@10 over the queries.

mod pages;
mod paired;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

pub(super) use pages::{ItemPage, item_pages, windows};
use pages::{Selectors, Stripped, strip_summary};

use super::{Ticker, fresh_engine, latency_stats, reopened, round};
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ingest::SourceDoc;
use crate::search::{Mode, SearchRequest};

/// Shorter summaries ("A draining iterator.") name the item rather than describe it.
const MIN_SUMMARY_WORDS: usize = 4;
const TOP_K: usize = 10;

/// Rank (1-based) of document `want` in `hit_docs`, the documents of a ranked list of chunk
/// hits, each document counted once at its first (best) hit; `None` when it is not among the
/// first `k` documents.
pub(super) fn document_rank<'a>(
    hit_docs: impl IntoIterator<Item = &'a str>,
    want: &str,
    k: usize,
) -> Option<usize> {
    let mut seen = HashSet::new();
    hit_docs
        .into_iter()
        .filter(|d| seen.insert(*d))
        .take(k)
        .position(|d| d == want)
        .map(|i| i + 1)
}

/// recall@1, recall@10 and MRR@10 of a query set, from each query's rank of its document.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Scores {
    pub recall_at_1: f64,
    pub recall_at_10: f64,
    pub mrr_at_10: f64,
}

pub(super) fn scores(ranks: &[Option<usize>]) -> Scores {
    if ranks.is_empty() {
        return Scores::default();
    }
    let n = ranks.len() as f64;
    let within = |k: usize| ranks.iter().filter(|r| r.is_some_and(|r| r <= k)).count() as f64;
    Scores {
        recall_at_1: within(1) / n,
        recall_at_10: within(10) / n,
        mrr_at_10: ranks.iter().map(|&r| reciprocal_rank(r)).sum::<f64>() / n,
    }
}

/// A query's share of MRR@10: 1/rank, 0 when its document is not in the first ten.
pub(super) fn reciprocal_rank(rank: Option<usize>) -> f64 {
    rank.filter(|&r| r <= TOP_K).map_or(0.0, |r| 1.0 / r as f64)
}

/// Why examined pages were not used.
#[derive(Debug, Default)]
struct Skipped {
    no_summary: usize,
    short_summary: usize,
    empty_remaining: usize,
}

/// The pages to ingest, summaries cut out, and the questions asked of them.
struct QuestionSet {
    candidates: usize,
    requested: usize,
    pages: Vec<(ItemPage, Stripped)>,
    /// (summary, the page it was cut from).
    queries: Vec<(String, String)>,
    skipped: Skipped,
    duplicate_summaries: usize,
}

fn question_set(docs: &Path, requested: usize) -> Result<QuestionSet> {
    let candidates = item_pages(docs);
    if candidates.is_empty() {
        return Err(Error::InvalidInput(format!(
            "no std/core/alloc item pages under {}",
            docs.display()
        )));
    }
    eprintln!(
        "bench: quality: choosing {requested} of {} std/core/alloc item pages …",
        candidates.len()
    );
    let sel = Selectors::new()?;
    let mut skipped = Skipped::default();
    let mut chosen: Vec<(ItemPage, Stripped)> = vec![];
    for window in windows(candidates.len(), requested) {
        for page in &candidates[window] {
            let html = std::fs::read_to_string(&page.path)
                .map_err(|e| Error::io(format!("read {}", page.path.display()), e))?;
            match strip_summary(&html, &sel) {
                None => skipped.no_summary += 1,
                Some(s) if s.summary.split_whitespace().count() < MIN_SUMMARY_WORDS => {
                    skipped.short_summary += 1
                }
                Some(s) if s.remaining_words == 0 => skipped.empty_remaining += 1,
                Some(s) => {
                    chosen.push((page.clone(), s));
                    break;
                }
            }
        }
    }
    // A summary shared by two pages ("An iterator over the entries of a map.") has no single
    // right answer: both pages stay in the corpus, neither is asked.
    let mut uses: HashMap<String, usize> = HashMap::new();
    for (_, s) in &chosen {
        *uses.entry(s.summary.to_lowercase()).or_default() += 1;
    }
    let queries: Vec<(String, String)> = chosen
        .iter()
        .filter(|(_, s)| uses.get(&s.summary.to_lowercase()) == Some(&1))
        .map(|(p, s)| (s.summary.clone(), p.rel.clone()))
        .collect();
    Ok(QuestionSet {
        candidates: candidates.len(),
        requested,
        duplicate_summaries: chosen.len() - queries.len(),
        pages: chosen,
        queries,
        skipped,
    })
}

/// One model's answers to the question set, per search.
struct Evaluation {
    ingest: crate::ingest::IngestReport,
    answers: Vec<Answered>,
}

/// A search mode, with vector search by the graph (as configured) or by an exact scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Search {
    mode: Mode,
    exact: bool,
}

/// Ingests the set's pages into a fresh database with `config`'s model and asks every query:
/// keyword, vector and hybrid as configured, then vector and hybrid again with every vector
/// search an exact scan, on the same database. The graph's own misses vary from one build to
/// the next (it is built in parallel), which moves the graph rows by about 0.01 between runs;
/// the exact rows compare models and recipes without them.
fn evaluate(config: &Config, set: &QuestionSet, label: &str) -> Result<Evaluation> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("temp dir", e))?;
    let engine = fresh_engine(config, tmp.path())?;
    let sources: Vec<SourceDoc> = set
        .pages
        .iter()
        .map(|(p, s)| SourceDoc {
            name: p.rel.clone(),
            source: p.rel.clone(),
            bytes: s.html.clone().into_bytes(),
            modified_at: None,
            metadata: None,
        })
        .collect();
    eprintln!(
        "bench: quality: {label}: ingesting {} pages without their summaries …",
        sources.len()
    );
    let ticker = Ticker::new(format!("quality: {label}: ingested"), sources.len());
    let ingest = crate::ingest::ingest_sources(&engine, sources, &ticker)?;
    if ingest.failed + ingest.skipped > 0 {
        eprintln!(
            "bench: quality: {} pages failed or were skipped: {:?}",
            ingest.failed + ingest.skipped,
            ingest
                .problems
                .iter()
                .map(|p| &p.source)
                .collect::<Vec<_>>()
        );
    }
    let searches = |exact, modes: &[Mode]| {
        modes
            .iter()
            .map(|&mode| Search { mode, exact })
            .collect::<Vec<_>>()
    };
    let graph = [Mode::Keyword, Mode::Vector, Mode::Hybrid];
    let mut answers = ask(&engine, &set.queries, &searches(false, &graph), label)?;
    eprintln!("bench: quality: {label}: the same queries with exact vector search …");
    let mut exact = config.clone();
    exact.search.exact_search_below = usize::MAX;
    let engine = reopened(engine, &exact, tmp.path())?;
    let exact_modes = [Mode::Vector, Mode::Hybrid];
    answers.extend(ask(
        &engine,
        &set.queries,
        &searches(true, &exact_modes),
        label,
    )?);
    Ok(Evaluation { ingest, answers })
}

impl Evaluation {
    /// A row per mode, the exact-scan rows under `exact_vector_search`.
    fn rows(&self) -> serde_json::Map<String, Value> {
        let mut rows = serde_json::Map::new();
        let mut exact_rows = serde_json::Map::new();
        for a in &self.answers {
            let into = if a.search.exact {
                &mut exact_rows
            } else {
                &mut rows
            };
            into.insert(a.search.mode.as_str().into(), a.row.clone());
        }
        rows.insert("exact_vector_search".into(), Value::Object(exact_rows));
        rows
    }
}

pub(super) fn run(config: &Config, docs: &Path, pages: usize) -> Result<Value> {
    let set = question_set(docs, pages)?;
    let skipped = &set.skipped;
    eprintln!(
        "bench: quality: {} queries ({} pages skipped: {} without a summary paragraph, {} with \
         a summary under {MIN_SUMMARY_WORDS} words, {} empty without it; {} summaries shared by \
         two pages not asked)",
        set.queries.len(),
        skipped.no_summary + skipped.short_summary + skipped.empty_remaining,
        skipped.no_summary,
        skipped.short_summary,
        skipped.empty_remaining,
        set.duplicate_summaries,
    );
    let examples: Vec<Value> = set
        .queries
        .iter()
        .step_by((set.queries.len() / 3).max(1))
        .take(3)
        .map(|(q, d)| json!({"query": q, "document": d}))
        .collect();
    let configured = evaluate(config, &set, &config.embedding.model)?;

    let mut out = serde_json::Map::new();
    out.insert("build".into(), json!(super::build_profile()));
    out.insert("model".into(), json!(config.embedding.model));
    out.insert("item_pages_available".into(), json!(set.candidates));
    out.insert("pages_requested".into(), json!(set.requested));
    out.insert(
        "pages_ingested".into(),
        json!(configured.ingest.added + configured.ingest.updated),
    );
    out.insert("chunks".into(), json!(configured.ingest.chunks));
    out.insert(
        "ingest_seconds".into(),
        json!(round(configured.ingest.seconds, 1)),
    );
    out.insert("queries".into(), json!(set.queries.len()));
    out.insert(
        "pages_skipped".into(),
        json!({
            "no_summary_paragraph": skipped.no_summary,
            "summary_under_4_words": skipped.short_summary,
            "empty_without_summary": skipped.empty_remaining,
        }),
    );
    out.insert(
        "summaries_shared_by_pages_not_asked".into(),
        json!(set.duplicate_summaries),
    );
    out.insert("query_examples".into(), Value::Array(examples));
    let peer = int8_against_fp32(config, &set, &configured)?;
    out.extend(configured.rows());
    out.insert("int8_against_fp32".into(), peer);
    Ok(Value::Object(out))
}

/// With the default fp32 model configured and the int8 model installed: the same questions
/// over the same pages embedded by the int8 model, and per search the gap in MRR@10 with its
/// 95 % interval over the queries (paired: each query asked of both models).
fn int8_against_fp32(config: &Config, set: &QuestionSet, fp32: &Evaluation) -> Result<Value> {
    let default_model = config.embedding.model == crate::assets::DEFAULT_MODEL
        && config.embedding.model_dir.is_none();
    if !default_model {
        return Ok(json!(format!(
            "skipped: the configured model is {}; the comparison runs with the default model",
            config.embedding.model
        )));
    }
    let Some([_, int8_embedding]) = super::precision::installed_pair(config) else {
        return Ok(json!(
            "skipped: the int8 model is not installed (instant-db setup --int8)"
        ));
    };
    let int8_config = Config {
        embedding: int8_embedding,
        ..config.clone()
    };
    let int8 = evaluate(&int8_config, set, crate::assets::INT8_MODEL)?;
    let mut out = serde_json::Map::new();
    out.insert(
        "ingest_seconds".into(),
        json!({"fp32": round(fp32.ingest.seconds, 1), "int8": round(int8.ingest.seconds, 1)}),
    );
    for fp32_answer in &fp32.answers {
        let search = fp32_answer.search;
        if search.mode == Mode::Keyword {
            continue; // no embedding involved: the same ranks
        }
        let Some(int8_answer) = int8.answers.iter().find(|a| a.search == search) else {
            continue;
        };
        let (fp32_ranks, int8_ranks) = (&fp32_answer.ranks, &int8_answer.ranks);
        let gap = paired::Gap::of(fp32_ranks, int8_ranks);
        let name = format!(
            "{}_{}",
            search.mode.as_str(),
            if search.exact { "exact" } else { "graph" }
        );
        out.insert(
            name,
            json!({
                "fp32_mrr_at_10": round(scores(fp32_ranks).mrr_at_10, 3),
                "int8_mrr_at_10": round(scores(int8_ranks).mrr_at_10, 3),
                "gap": round(gap.mean, 3),
                "gap_95_interval": [round(gap.low, 3), round(gap.high, 3)],
                "queries_ranked_differently": gap.differing,
            }),
        );
    }
    Ok(Value::Object(out))
}

/// One search's answers to every query.
struct Answered {
    search: Search,
    /// recall@1, recall@10, MRR@10 and latency.
    row: Value,
    /// Each query's rank of its document.
    ranks: Vec<Option<usize>>,
}

/// Asks every query in each of `searches`: a row of recall@1, recall@10, MRR@10 and latency,
/// and each query's rank of its document.
fn ask(
    engine: &Engine,
    queries: &[(String, String)],
    searches: &[Search],
    label: &str,
) -> Result<Vec<Answered>> {
    let mut rows = vec![];
    for &search in searches {
        let mode = search.mode;
        let mut ranks = Vec::with_capacity(queries.len());
        let mut ms = Vec::with_capacity(queries.len());
        for (i, (query, want)) in queries.iter().enumerate() {
            let req = SearchRequest {
                query: query.clone(),
                mode,
                top_k: Some(TOP_K),
                ..Default::default()
            };
            let t = Instant::now();
            let resp = engine.search(&req)?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            let docs = resp.hits.iter().map(|h| h.document.source.as_str());
            ranks.push(document_rank(docs, want, TOP_K));
            if (i + 1) % 50 == 0 || i + 1 == queries.len() {
                eprintln!(
                    "bench: quality: {label}: {} {}/{}",
                    mode.as_str(),
                    i + 1,
                    queries.len()
                );
            }
        }
        let s = scores(&ranks);
        let mut row = json!({
            "recall_at_1": round(s.recall_at_1, 3),
            "recall_at_10": round(s.recall_at_10, 3),
            "mrr_at_10": round(s.mrr_at_10, 3),
        });
        row["latency"] = latency_stats(ms);
        rows.push(Answered { search, row, ranks });
    }
    Ok(rows)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ranks_count_each_document_once_at_its_best_chunk() {
        let hits = ["a", "a", "b", "a", "c", "d"];
        assert_eq!(document_rank(hits, "a", 10), Some(1));
        assert_eq!(document_rank(hits, "b", 10), Some(2));
        assert_eq!(document_rank(hits, "c", 10), Some(3));
        assert_eq!(document_rank(hits, "d", 3), None, "fourth document, past k");
        assert_eq!(document_rank(hits, "z", 10), None);
    }

    #[test]
    fn recall_and_mrr_from_ranks() {
        let s = scores(&[Some(1), Some(2), None, Some(10), Some(11)]);
        assert_eq!(s.recall_at_1, 0.2);
        assert_eq!(s.recall_at_10, 0.6);
        assert!((s.mrr_at_10 - (1.0 + 0.5 + 0.1) / 5.0).abs() < 1e-12);
        assert_eq!(scores(&[]), Scores::default());
    }
}
