//! `instant-db bench --suite search-real`: search latency on a real corpus (an even spread of
//! the Rust documentation's HTML pages, embedded with the real model), through the real HTTP
//! server started in this process, measured by HTTP clients on the same machine.
//!
//! Queries are short questions built from item names ("how do I use BTreeMap"), not text cut
//! from chunks, so keyword search meets terms at their real frequencies and vector search
//! real question embeddings. Every row is timed at the client (request sent to body read);
//! beside it the response's own `took_ms` and the same queries through `Engine::search`
//! directly, interleaved with the HTTP ones, so the cost of HTTP is visible.
//!
//! The database is temporary unless `--data-dir` is given: an empty or new directory is filled
//! and kept, marked as this suite's, and later runs with the same `--data-dir` reuse it without
//! ingesting again. A database the suite did not make is refused, because the "during ingest"
//! row adds documents to it (and deletes them afterwards).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use super::{Ticker, percentile, round};
use crate::config::Config;
use crate::engine::{Engine, ModelLoading};
use crate::error::{Error, Result};
use crate::ingest::{IngestOptions, SourceDoc};
use crate::search::{Mode, SearchRequest};

/// Written into a `--data-dir` this suite filled: what it holds, and the licence to reuse it.
const MARKER: &str = "bench-search-real.json";
/// Source prefix of the documents ingested during the "during ingest" row, deleted after it.
const DURING_PREFIX: &str = "bench-during-ingest:";
const TOP_K: usize = 10;
/// Requests per mode before measuring: the model's query session, SQLite's page cache and the
/// HTTP connection are warm for every row alike.
const WARMUP: usize = 10;
const CONCURRENCY: [usize; 2] = [8, 32];
/// The p50 targets at about 8k chunks, release build.
const TARGET_P50_MS: [(Mode, f64); 3] = [
    (Mode::Hybrid, 5.0),
    (Mode::Vector, 4.0),
    (Mode::Keyword, 2.0),
];
/// Questions a user types about an item, `{n}` its name and `{m}` its module.
const QUESTION_FORMS: [&str; 4] = [
    "how do I use {n}",
    "what does {m}::{n} do",
    "example of {n} in {m}",
    "when should I use {n}",
];

pub(super) struct Options {
    /// HTML files to ingest into a new database.
    pub files: usize,
    pub queries: usize,
    /// `--data-dir`, when given: the database to fill once and reuse.
    pub data_dir: Option<PathBuf>,
}

pub(super) fn run(config: &Config, docs: &Path, opts: &Options) -> Result<Value> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("temp dir", e))?;
    let dir = opts
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let cfg = Config {
        data_dir: dir.clone(),
        ..config.clone()
    };
    let marker = dir.join(MARKER);
    let mark: Value = std::fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    // An interrupted first run leaves its mark without `complete`: the next one ingests again,
    // which skips what is already stored.
    let reuse = mark["complete"] == true && cfg.db_path().is_file();
    if mark.is_null() && cfg.db_path().exists() {
        return Err(Error::InvalidInput(format!(
            "{} holds a database that `bench --suite search-real` did not make; the suite adds \
             and deletes documents in it, so it reuses only its own: pass an empty or new \
             --data-dir (or none, for a temporary one)",
            dir.display()
        )));
    }
    let all = super::rust_docs_pages(docs);
    let engine = Engine::open(cfg, ModelLoading::Required)?;
    // As `serve` does: the server here answers queries during an ingest.
    crate::server::prepare_query_session(&engine);
    let mut out = serde_json::Map::new();
    out.insert("build".into(), json!(super::build_profile()));
    let write_mark = |m: Value| {
        std::fs::write(&marker, m.to_string())
            .map_err(|e| Error::io(format!("write {}", marker.display()), e))
    };
    let files = if reuse {
        let files = mark["files"].as_u64().map_or(opts.files, |f| f as usize);
        eprintln!(
            "bench: search-real: reusing the database in {} ({files} files; --rustdocs-files ignored)",
            dir.display()
        );
        out.insert(
            "database".into(),
            json!(format!("reused {}", dir.display())),
        );
        files
    } else {
        let files = super::spread(&all, opts.files, 0);
        eprintln!(
            "bench: search-real: ingesting {} of {} Rust documentation pages …",
            files.len(),
            all.len()
        );
        if opts.data_dir.is_some() {
            write_mark(json!({"files": files.len(), "docs": docs}))?;
        }
        let ticker = Ticker::new("search-real: ingested", files.len());
        let r = crate::ingest::ingest_paths(&engine, &files, &IngestOptions::default(), &ticker)?;
        out.insert("ingest_seconds".into(), json!(round(r.seconds, 1)));
        out.insert(
            "database".into(),
            json!(match &opts.data_dir {
                Some(d) => format!("new, kept in {} for later runs", d.display()),
                None => "temporary".to_string(),
            }),
        );
        if opts.data_dir.is_some() {
            write_mark(json!({"files": files.len(), "docs": docs, "complete": true}))?;
        }
        files.len()
    };
    // What an interrupted run may have left of the row that ingests during the measurement.
    let during_files = during_ingest_files(&all, files);
    let during_sources: Vec<String> = during_files
        .iter()
        .map(|p| format!("{DURING_PREFIX}{}", p.display()))
        .collect();
    delete_sources(&engine, &during_sources)?;

    let stats = engine.store.stats()?;
    out.insert("documents".into(), json!(stats.documents));
    out.insert("chunks".into(), json!(stats.chunks));
    let queries = questions(&super::quality::item_pages(docs), opts.queries.max(1));
    out.insert("queries".into(), json!(queries.len()));
    out.insert(
        "query_examples".into(),
        json!(queries.iter().take(4).collect::<Vec<_>>()),
    );
    let sources: Vec<String> = engine.store.read(|c| {
        Ok(c.prepare("SELECT source FROM documents ORDER BY source")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    })?;
    let filters: Vec<(&str, Value)> = [("selective", 0.01), ("broad", 0.5)]
        .into_iter()
        .filter_map(|(name, want)| {
            closest_prefix(&sources, want).map(|(prefix, n)| {
                let row = json!({
                    "filter": {"field": "source", "op": "starts_with", "value": prefix},
                    "documents_matching": n,
                    "fraction_of_documents": round(n as f64 / sources.len().max(1) as f64, 3),
                });
                (name, row)
            })
        })
        .collect();

    let rt = super::archive::runtime()?;
    let during = DuringIngest {
        files: during_files,
        sources: during_sources,
    };
    let http = rt.block_on(over_http(engine, &queries, &filters, during))?;
    drop(rt);
    out.insert(
        "targets".into(),
        json!("p50 at ~8k chunks, release build: hybrid ≤ 5 ms, vector ≤ 4 ms, keyword ≤ 2 ms"),
    );
    if let Value::Object(rows) = http {
        out.extend(rows);
    }
    Ok(Value::Object(out))
}

/// One query through `Engine::search` on a blocking thread, as the server runs it: the HTTP
/// rows' peer, in ms.
async fn direct(engine: &Arc<Engine>, query: &str, mode: Mode) -> Result<f64> {
    let req = SearchRequest {
        query: query.to_string(),
        mode,
        top_k: Some(TOP_K),
        ..Default::default()
    };
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        engine.search(&req)?;
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

/// A tenth of the corpus' size, from between the ingested files (the same pages would only
/// be re-read as unchanged documents), ingested under [`DURING_PREFIX`] so they are new
/// documents in a reused database too.
fn during_ingest_files(all: &[PathBuf], files: usize) -> Vec<PathBuf> {
    let step = (all.len() / files.max(1)).max(1);
    let between = super::spread(all, files, step / 2);
    super::spread(&between, (files / 10).max(1), 0)
}

fn delete_sources(engine: &Engine, sources: &[String]) -> Result<()> {
    for s in sources {
        match engine.delete_document(&crate::ingest::document_id(s)) {
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `n` questions about items spread over the standard library's item pages.
fn questions(items: &[super::quality::ItemPage], n: usize) -> Vec<String> {
    super::quality::windows(items.len(), n)
        .into_iter()
        .zip(QUESTION_FORMS.iter().cycle())
        .map(|(w, form)| {
            let (name, module) = items[w.start].name_and_module();
            form.replace("{n}", &name).replace("{m}", &module)
        })
        .collect()
}

/// The directory prefix of `sources` whose share of them is closest to `fraction`, with how
/// many it holds: a filter on a real field that keeps about that share of the documents.
fn closest_prefix(sources: &[String], fraction: f64) -> Option<(String, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in sources {
        for (i, _) in s.match_indices('/').filter(|(i, _)| *i > 0) {
            *counts.entry(&s[..=i]).or_default() += 1;
        }
    }
    let total = sources.len().max(1) as f64;
    counts
        .into_iter()
        .min_by(|a, b| {
            let off = |n: usize| (n as f64 / total - fraction).abs();
            off(a.1).total_cmp(&off(b.1))
        })
        .map(|(p, n)| (p.to_string(), n))
}

/// p50/p95/p99 of `ms` and requests per second over `wall_s`.
fn latency(mut ms: Vec<f64>, wall_s: f64) -> Value {
    ms.sort_by(f64::total_cmp);
    json!({
        "p50_ms": round(percentile(&ms, 0.5), 3),
        "p95_ms": round(percentile(&ms, 0.95), 3),
        "p99_ms": round(percentile(&ms, 0.99), 3),
        "qps": round(if wall_s > 0.0 { ms.len() as f64 / wall_s } else { 0.0 }, 1),
    })
}

/// What one client saw: its latencies, the server's `took_ms`, and 429s.
#[derive(Default)]
struct Seen {
    ms: Vec<f64>,
    took_ms: Vec<f64>,
    refused: usize,
}

impl Seen {
    fn merge(&mut self, other: Seen) {
        self.ms.extend(other.ms);
        self.took_ms.extend(other.took_ms);
        self.refused += other.refused;
    }

    fn row(self, wall_s: f64) -> Value {
        let mut took = self.took_ms;
        took.sort_by(f64::total_cmp);
        let mut row = latency(self.ms, wall_s);
        row["server_took_ms_p50"] = json!(round(percentile(&took, 0.5), 3));
        row["http_429"] = json!(self.refused);
        row
    }
}

/// A client of the bench's server.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    url: String,
    key: Arc<str>,
}

impl Client {
    /// One search, timed from sending the request to having read the whole body.
    async fn search(&self, query: &str, mode: Mode, filter: &Value, seen: &mut Seen) -> Result<()> {
        let mut body = json!({"query": query, "mode": mode, "top_k": TOP_K});
        if !filter.is_null() {
            body["filter"] = json!([filter]);
        }
        let t = Instant::now();
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("bench search request: {e}")))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Unavailable(format!("bench search reply: {e}")))?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            seen.refused += 1;
            return Ok(());
        }
        if !status.is_success() {
            return Err(Error::Internal(format!(
                "search answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("bad search reply: {e}")))?;
        seen.ms.push(ms);
        seen.took_ms.push(v["took_ms"].as_f64().unwrap_or(0.0));
        Ok(())
    }

    /// `queries` one after the other; the wall time with what was seen.
    async fn run(&self, queries: &[String], mode: Mode, filter: &Value) -> Result<(Seen, f64)> {
        let mut seen = Seen::default();
        let t = Instant::now();
        for q in queries {
            self.search(q, mode, filter, &mut seen).await?;
        }
        Ok((seen, t.elapsed().as_secs_f64()))
    }
}

struct DuringIngest {
    files: Vec<PathBuf>,
    sources: Vec<String>,
}

/// Starts the server on the engine, runs every HTTP row (with the direct peers), stops it.
async fn over_http(
    engine: Engine,
    queries: &[String],
    filters: &[(&str, Value)],
    during: DuringIngest,
) -> Result<Value> {
    // Local and short-lived, but still not open to other users of the machine.
    let (listener, addr, key, state) = crate::server::local_read_only(engine).await?;
    let engine = state.engine.clone();
    let max_concurrent = engine.config.limits.effective_max_concurrent_searches();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::run_on(listener, state, async move {
        let _ = stop_rx.await;
    }));
    let client = Client {
        http: reqwest::Client::new(),
        url: format!("http://{addr}/api/search"),
        key: key.into(),
    };
    let rows = rows(&client, &engine, queries, filters, during, max_concurrent).await;
    let _ = stop_tx.send(());
    server.await.map_err(|e| Error::Internal(e.to_string()))??;
    rows
}

async fn rows(
    client: &Client,
    engine: &Arc<Engine>,
    queries: &[String],
    filters: &[(&str, Value)],
    during: DuringIngest,
    max_concurrent: usize,
) -> Result<Value> {
    let none = Value::Null;
    for mode in [Mode::Hybrid, Mode::Vector, Mode::Keyword] {
        client
            .run(&queries[..WARMUP.min(queries.len())], mode, &none)
            .await?;
    }
    let mut one = serde_json::Map::new();
    for (mode, target) in TARGET_P50_MS {
        eprintln!(
            "bench: search-real: HTTP, 1 client, and the engine directly, {} …",
            mode.as_str()
        );
        // Query by query, alternating which goes first: the machine's load of the moment (and
        // SQLite's cache, warmed by whichever ran the query first) weighs on both alike, so
        // the difference is the HTTP path.
        let mut seen = Seen::default();
        let mut direct_ms = Vec::with_capacity(queries.len());
        for (i, q) in queries.iter().enumerate() {
            if i % 2 == 0 {
                client.search(q, mode, &none, &mut seen).await?;
                direct_ms.push(direct(engine, q, mode).await?);
            } else {
                direct_ms.push(direct(engine, q, mode).await?);
                client.search(q, mode, &none, &mut seen).await?;
            }
        }
        // One client waits for each answer: its rate is the inverse of the mean latency.
        let busy_s = |ms: &[f64]| ms.iter().sum::<f64>() / 1000.0;
        let http_s = busy_s(&seen.ms);
        let mut row = seen.row(http_s);
        let direct_s = busy_s(&direct_ms);
        row["engine_direct"] = latency(direct_ms, direct_s);
        row["target_p50_ms"] = json!(target);
        one.insert(mode.as_str().into(), row);
    }

    let mut concurrent = serde_json::Map::new();
    concurrent.insert(
        "limits_max_concurrent_searches".into(),
        json!(max_concurrent),
    );
    for clients in CONCURRENCY {
        eprintln!("bench: search-real: HTTP, {clients} clients, hybrid …");
        // Each client its own connection pool, as separate callers would have; together
        // they send the query set once, at least 10 queries each.
        let total = queries.len().max(clients * 10);
        let t = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let mine: Vec<String> = (c..total)
                    .step_by(clients)
                    .map(|i| queries[i % queries.len()].clone())
                    .collect();
                let client = Client {
                    http: reqwest::Client::new(),
                    ..client.clone()
                };
                tokio::spawn(async move { client.run(&mine, Mode::Hybrid, &Value::Null).await })
            })
            .collect();
        let mut seen = Seen::default();
        for task in tasks {
            let (s, _) = task.await.map_err(|e| Error::Internal(e.to_string()))??;
            seen.merge(s);
        }
        concurrent.insert(
            format!("{clients}_clients"),
            seen.row(t.elapsed().as_secs_f64()),
        );
    }

    let mut filtered = serde_json::Map::new();
    for (name, info) in filters {
        eprintln!("bench: search-real: HTTP, 1 client, hybrid, {name} filter …");
        let (seen, wall) = client.run(queries, Mode::Hybrid, &info["filter"]).await?;
        let mut row = seen.row(wall);
        for k in ["filter", "documents_matching", "fraction_of_documents"] {
            row[k] = info[k].clone();
        }
        filtered.insert((*name).into(), row);
    }

    let during_row = during_ingest(client, engine, queries, during).await?;
    Ok(json!({
        "http_one_client": one,
        "http_hybrid_concurrent": concurrent,
        "http_hybrid_filtered": filtered,
        "http_hybrid_during_ingest": during_row,
    }))
}

/// Hybrid searches by one client for as long as another thread ingests `during.files`.
async fn during_ingest(
    client: &Client,
    engine: &Arc<Engine>,
    queries: &[String],
    during: DuringIngest,
) -> Result<Value> {
    let mut docs = Vec::with_capacity(during.files.len());
    let sources = during.sources.clone();
    for (path, source) in during.files.iter().zip(during.sources) {
        docs.push(SourceDoc {
            bytes: std::fs::read(path)
                .map_err(|e| Error::io(format!("read {}", path.display()), e))?,
            name: path.display().to_string(),
            source,
            modified_at: None,
            metadata: None,
        });
    }
    eprintln!(
        "bench: search-real: HTTP, 1 client, hybrid while {} files are ingested …",
        docs.len()
    );
    let done = Arc::new(AtomicBool::new(false));
    let ingest = {
        let (engine, done) = (engine.clone(), done.clone());
        tokio::task::spawn_blocking(move || {
            let r = crate::ingest::ingest_sources(&engine, docs, &crate::ingest::NoProgress);
            done.store(true, Ordering::Release);
            r
        })
    };
    let mut seen = Seen::default();
    let t = Instant::now();
    for q in queries.iter().cycle() {
        if done.load(Ordering::Acquire) {
            break;
        }
        client
            .search(q, Mode::Hybrid, &Value::Null, &mut seen)
            .await?;
    }
    let wall = t.elapsed().as_secs_f64();
    let report = ingest.await.map_err(|e| Error::Internal(e.to_string()))??;
    // Deleted while the server runs: its shutdown closes the store to writes, and a reused
    // database must hold the same documents at the next run.
    let e = engine.clone();
    tokio::task::spawn_blocking(move || delete_sources(&e, &sources))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    let mut row = seen.row(wall);
    row["files_ingested"] = json!(report.added + report.updated);
    row["chunks_ingested"] = json!(report.chunks);
    row["ingest_seconds"] = json!(round(report.seconds, 1));
    Ok(row)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_closest_to_the_wanted_share_of_sources() {
        let mut sources: Vec<String> = (0..50).map(|i| format!("/d/core/arch/{i}.html")).collect();
        sources.extend((0..49).map(|i| format!("/d/std/{i}.html")));
        sources.push("/d/std/io/read.html".into());
        // `/d/` holds all; `/d/core/` and `/d/core/arch/` half (the first in order wins)
        assert_eq!(
            closest_prefix(&sources, 0.5),
            Some(("/d/core/".to_string(), 50))
        );
        assert_eq!(
            closest_prefix(&sources, 0.01),
            Some(("/d/std/io/".to_string(), 1))
        );
        assert_eq!(closest_prefix(&[], 0.5), None);
    }

    #[test]
    fn latency_percentiles_and_rate() {
        let ms: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let row = latency(ms, 2.0);
        // nearest rank on 0-based positions (99 × p, rounded), as the other suites count
        assert_eq!(row["p50_ms"], 51.0);
        assert_eq!(row["p95_ms"], 95.0);
        assert_eq!(row["p99_ms"], 99.0);
        assert_eq!(row["qps"], 50.0);
        assert_eq!(latency(vec![], 0.0)["p50_ms"], 0.0);
    }

    #[test]
    fn questions_name_items_and_their_modules() {
        let items: Vec<_> = ["std/vec/struct.Vec.html", "core/macro.assert_eq!.html"]
            .iter()
            .map(|r| super::super::quality::ItemPage {
                rel: r.to_string(),
                path: PathBuf::new(),
            })
            .collect();
        assert_eq!(
            questions(&items, 4),
            vec!["how do I use Vec", "what does core::assert_eq do"]
        );
    }
}
