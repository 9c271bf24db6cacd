//! `instant-db bench --suite archive`: what continuous archiving costs and what it keeps.
//!
//! - RPO: a real `instant-db serve` (this binary) archives into a directory under a steady
//!   ingest over HTTP; it is killed with SIGKILL at a random moment, `latest` is restored from
//!   the archive into a new data directory, and the acknowledged documents missing from it are
//!   counted (all of them, and those acknowledged more than `archive.max_lag_secs` before the
//!   kill) with the age of the newest change restored.
//! - Overhead: document writes per second with archiving off and on (the archiver task
//!   shipping beside the writer), on the store path ingest uses (the model's time left out, so
//!   the ratio is the worst case; with embedding in the loop it is closer to 1).
//! - Idle: destination operations per minute while nothing changes.
//! - Restore time for the demo corpus plus an hour of changes ([`super::archive_restore`]).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::config::Config;
use crate::engine::{Engine, ModelLoading};
use crate::error::{Error, Result};
use crate::store::{DocumentRecord, NewChunk};

const TOKEN: &str = "bench-admin-token-0123456789";

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the async runtime", e))
}

pub fn run(base: &Config, corpus: &Path) -> Result<Value> {
    let rt = runtime()?;
    // Every destination and restore source of this suite is a temporary directory: outside the
    // default root (`backups/` beside the data directory), archiving and restores refuse them.
    let mut base = base.clone();
    base.backup.allowed_roots.push(std::env::temp_dir());
    let base = &base;
    let rpo = rt.block_on(rpo_after_sigkill(base))?;
    let overhead = rt.block_on(overhead(base))?;
    let ingest = rt.block_on(ingest_overhead(base, corpus))?;
    let idle = rt.block_on(idle_requests(base))?;
    let restore = rt.block_on(super::archive_restore::restore_after_an_hour(base, corpus))?;
    Ok(json!({"rpo_after_sigkill": rpo, "write_overhead": overhead,
        "ingest_overhead": ingest, "idle": idle, "restore_after_an_hour_of_changes": restore}))
}

/// The demo corpus through the whole ingest pipeline (parse, chunk, embed with the real model,
/// write), archiving off and on, best of two each.
async fn ingest_overhead(base: &Config, corpus: &Path) -> Result<Value> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("temp dir", e))?;
    let (mut off, mut on) = (vec![], vec![]);
    for round in 0..2 {
        for archiving in [false, true] {
            let mut cfg = base.clone();
            cfg.data_dir = tmp.path().join(format!("ingest-{archiving}-{round}"));
            cfg.archive = Default::default();
            if archiving {
                cfg.archive.destination = Some(
                    tmp.path()
                        .join(format!("dest-{round}"))
                        .to_string_lossy()
                        .into_owned(),
                );
            }
            let engine = match Engine::open(cfg, ModelLoading::Required) {
                Ok(e) => Arc::new(e),
                Err(e) => {
                    return Ok(
                        json!({"skipped": format!("model not available ({e}); run `instant-db setup`")}),
                    );
                }
            };
            let task = tokio::spawn(crate::archive::run(engine.clone()));
            let (e, c) = (engine.clone(), corpus.to_path_buf());
            let report = tokio::task::spawn_blocking(move || {
                crate::ingest::ingest_paths(
                    &e,
                    &[c],
                    &crate::ingest::IngestOptions::default(),
                    &crate::ingest::NoProgress,
                )
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
            task.abort();
            if archiving { &mut on } else { &mut off }.push(report.chunks_per_second);
        }
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    Ok(json!({
        "chunks_per_second_archiving_off": super::round(best(&off), 1),
        "chunks_per_second_archiving_on": super::round(best(&on), 1),
        "ratio_on_over_off": super::round(best(&on) / best(&off), 3),
    }))
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::io("find a free port", e))
}

/// A pseudo-random duration in `[lo, hi)` ms (the kill moment), from the clock.
fn random_ms(lo: u64, hi: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    lo + (nanos.wrapping_mul(6364136223846793005) >> 11) % (hi - lo)
}

async fn rpo_after_sigkill(base: &Config) -> Result<Value> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("temp dir", e))?;
    let data = tmp.path().join("served");
    let dest = tmp.path().join("dest");
    std::fs::create_dir_all(&data).map_err(|e| Error::io("create data dir", e))?;
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, TOKEN).map_err(|e| Error::io("write token", e))?;
    let port = free_port()?;
    let exe = std::env::current_exe().map_err(|e| Error::io("find this binary", e))?;
    let max_lag = base.archive.max_lag_secs;
    let mut child = std::process::Command::new(exe)
        .arg("serve")
        .env("INSTANT_DB_DATA_DIR", &data)
        .env("INSTANT_DB_LISTEN", format!("127.0.0.1:{port}"))
        .env("INSTANT_DB_ADMIN_TOKEN_FILE", &token_file)
        .env("INSTANT_DB_ARCHIVE__DESTINATION", &dest)
        .env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", tmp.path())
        .env("INSTANT_DB_ARCHIVE__MAX_LAG_SECS", max_lag.to_string())
        .env("INSTANT_DB_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error::io("start instant-db serve", e))?;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while client
        .get(format!("{url}/health/live"))
        .send()
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(Error::Unavailable(
                "the server did not start within 120 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let run_for = Duration::from_millis(random_ms(8_000, 16_000));
    let started = Instant::now();
    let mut acked: Vec<(String, Instant)> = vec![];
    let mut i = 0u64;
    while started.elapsed() < run_for {
        let name = format!("doc-{i}.txt");
        i += 1;
        let r = client
            .post(format!("{url}/api/documents"))
            .bearer_auth(TOKEN)
            .json(&json!({"name": name, "title": name,
                "text": format!("Document {name}: a steady stream of writes, each acknowledged.")}))
            .send()
            .await;
        if matches!(&r, Ok(r) if r.status().is_success()) {
            acked.push((name, Instant::now()));
        }
    }
    // SIGKILL: no shutdown, no final flush
    let _ = child.kill();
    let killed = Instant::now();
    let killed_at = chrono::Utc::now();
    let _ = child.wait();

    let mut cfg = base.clone();
    cfg.data_dir = tmp.path().join("restored");
    cfg.archive = Default::default();
    let engine = Arc::new(Engine::open(cfg, ModelLoading::Skip)?);
    let report = crate::archive::restore_to_time(
        engine.clone(),
        &dest.to_string_lossy(),
        crate::archive::TargetTime::Latest,
        crate::backup::no_progress(),
        Arc::new(|_| {}),
    )
    .await?;
    // documents sent over HTTP are stored as `api:<name>`
    let restored: BTreeSet<String> = engine
        .store
        .list_documents(0, usize::MAX >> 1)?
        .into_iter()
        .map(|d| {
            d.source
                .strip_prefix("api:")
                .unwrap_or(&d.source)
                .to_string()
        })
        .collect();
    let missing: Vec<&(String, Instant)> = acked
        .iter()
        .filter(|(n, _)| !restored.contains(n))
        .collect();
    let old_missing = missing
        .iter()
        .filter(|(_, at)| killed.duration_since(*at) > Duration::from_secs(max_lag))
        .count();
    let newest_age = report
        .restored_to
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (killed_at - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0);
    Ok(json!({
        "ingest_seconds_before_kill": run_for.as_secs_f64(),
        "acknowledged_documents": acked.len(),
        "restored_documents": restored.len(),
        "acknowledged_missing": missing.len(),
        "acknowledged_missing_older_than_max_lag": old_missing,
        "max_lag_secs": max_lag,
        "newest_restored_change_age_seconds": newest_age,
        "replayed_changes": report.replayed_changes,
    }))
}

fn synthetic(i: usize) -> (DocumentRecord, Vec<NewChunk>) {
    super::archive_restore::document(&format!("d{i}"), 0)
}

async fn writes_per_second(
    base: &Config,
    dir: &Path,
    archive_to: Option<&Path>,
    ship: bool,
) -> Result<f64> {
    let mut cfg = base.clone();
    cfg.data_dir = dir.to_path_buf();
    cfg.archive = Default::default();
    cfg.archive.destination = archive_to.map(|p| p.to_string_lossy().into_owned());
    let engine = Arc::new(Engine::open(cfg, ModelLoading::Skip)?);
    let task = ship.then(|| tokio::spawn(crate::archive::run(engine.clone())));
    let e = engine.clone();
    const N: usize = 1500;
    let secs = tokio::task::spawn_blocking(move || -> Result<f64> {
        let t = Instant::now();
        for i in 0..N {
            let (doc, chunks) = synthetic(i);
            e.store.put_document(&doc, &chunks, "bench")?;
        }
        Ok(t.elapsed().as_secs_f64())
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    if let Some(t) = task {
        t.abort();
    }
    Ok(N as f64 / secs)
}

async fn overhead(base: &Config) -> Result<Value> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("temp dir", e))?;
    let (mut off, mut capture, mut on) = (vec![], vec![], vec![]);
    // interleaved, best of three each, so a noisy neighbour does not decide the ratio
    for round in 0..3 {
        let p = |n: &str| tmp.path().join(format!("{n}-{round}"));
        off.push(writes_per_second(base, &p("off"), None, false).await?);
        capture.push(writes_per_second(base, &p("capture"), Some(&p("unused")), false).await?);
        on.push(writes_per_second(base, &p("on"), Some(&p("dest")), true).await?);
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let archive_bytes: u64 = (0..3)
        .filter_map(|r| std::fs::read_dir(tmp.path().join(format!("dest-{r}/archive"))).ok())
        .take(1)
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(json!({
        "documents": 1500,
        "chunks_per_document": 4,
        "writes_per_second_archiving_off": super::round(best(&off), 1),
        "writes_per_second_capture_only": super::round(best(&capture), 1),
        "writes_per_second_archiving_on": super::round(best(&on), 1),
        "ratio_on_over_off": super::round(best(&on) / best(&off), 3),
        "archive_bytes_for_1500_documents_with_embeddings": archive_bytes,
    }))
}

async fn idle_requests(base: &Config) -> Result<Value> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("temp dir", e))?;
    let mut cfg = base.clone();
    cfg.data_dir = tmp.path().join("idle");
    cfg.archive = Default::default();
    cfg.archive.destination = Some(tmp.path().join("dest").to_string_lossy().into_owned());
    let engine = Arc::new(Engine::open(cfg, ModelLoading::Skip)?);
    let task = tokio::spawn(crate::archive::run(engine.clone()));
    let (doc, chunks) = synthetic(0);
    engine.store.put_document(&doc, &chunks, "bench")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.archive.status().shipped_seq < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = engine.archive.status().requests;
    let window = Duration::from_secs(60);
    tokio::time::sleep(window).await;
    let after = engine.archive.status().requests;
    task.abort();
    Ok(json!({
        "seconds_observed": window.as_secs(),
        "destination_operations_per_minute": (after - before) as f64 * 60.0 / window.as_secs_f64(),
    }))
}
