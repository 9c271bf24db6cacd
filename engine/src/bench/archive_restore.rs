//! `bench --suite archive`, restore time: the demo corpus plus one hour of changes.
//!
//! The demo corpus is ingested (with the real model when it is installed) and a base backup
//! taken; then an hour of a busy team's changes is written: [`CHANGES_PER_MINUTE`] document
//! writes a minute (half rewrites of existing documents, a third new ones, the rest deletes;
//! each written document has 4 chunks of ~300 characters with 384-d vectors, like a demo
//! document). They are generated fast, but each change's commit time is set to its moment in
//! the simulated hour, and they are shipped in the segments the archiver would have made at
//! `archive.max_lag_secs` (a segment when the oldest waiting change has waited half of it), so
//! the archive holds what an hour of that traffic leaves. Then, each into a new data directory:
//! `restore --to-time latest`, a restore to the middle of the hour, and, as the peer, a plain
//! restore of a snapshot taken at the end of the hour (the same documents as `latest`).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::archive::TargetTime;
use crate::config::Config;
use crate::engine::{Engine, ModelLoading};
use crate::error::{Error, Result};
use crate::store::{DocumentRecord, NewChunk};

/// A busy team: one document written, rewritten or deleted every 2 s, for an hour.
pub const CHANGES_PER_MINUTE: u64 = 30;
const MINUTES: u64 = 60;

/// xorshift: the same hour of changes every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Groups changes spaced `step_micros` apart into the segments the archiver ships: a segment
/// leaves when its oldest change has waited half of `max_lag_secs`, holding every change
/// committed by then. Returns each group's size.
fn shipper_groups(changes: u64, step_micros: i64, max_lag_secs: u64) -> Vec<u64> {
    let wait = (max_lag_secs as i64) * 1_000_000 / 2;
    let mut out = vec![];
    let mut i = 0;
    while i < changes {
        let start = i as i64 * step_micros;
        let mut n = 0;
        while i + n < changes && (i + n) as i64 * step_micros <= start + wait {
            n += 1;
        }
        out.push(n);
        i += n;
    }
    out
}

/// A document of four chunks with 384-d vectors, without the model: `version` changes its text,
/// vectors and hash (the archive benchmarks' store writes).
pub(super) fn document(id: &str, version: u64) -> (DocumentRecord, Vec<NewChunk>) {
    let now = crate::health::now();
    let chunks: Vec<NewChunk> = (0..4u64)
        .map(|c| {
            let text = format!(
                "{id} version {version} part {c}: notes a team edits during the day, {}",
                "about the facilities, the schedule and the budget ".repeat(5)
            );
            NewChunk {
                section_path: vec!["Body".into()],
                doc_end: text.len(),
                text,
                content_start: 0,
                doc_start: 0,
                token_count: 60,
                embedding: Some(
                    (0..384u64)
                        .map(|k| ((version * 131 + c * 17 + k) % 97) as f32 / 97.0 - 0.5)
                        .collect(),
                ),
            }
        })
        .collect();
    let doc = DocumentRecord {
        id: id.to_string(),
        source: format!("api:{id}.md"),
        title: Some(id.to_string()),
        extension: Some("md".into()),
        mime: Some("text/markdown".into()),
        doc_type: "other".into(),
        size_bytes: 1400,
        modified_at: None,
        content_hash: format!("{id}-v{version}"),
        char_count: 1400,
        word_count: 220,
        line_count: 8,
        chunk_count: 4,
        metadata: json!({"version": version}),
        format_metadata: json!({}),
        ingested_at: now.clone(),
        updated_at: now,
    };
    (doc, chunks)
}

/// (segments holding changes after `base_seq`, bytes of all the objects) of an archive
/// directory.
fn archive_size(dir: &Path, base_seq: i64) -> (u64, u64) {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let e = e.ok()?;
                let segment =
                    crate::archive::segment::SegmentName::parse(&e.file_name().to_string_lossy())
                        .is_some_and(|s| s.last > base_seq);
                Some((segment, e.metadata().ok()?.len()))
            })
            .fold((0, 0), |(n, b), (seg, len)| (n + u64::from(seg), b + len))
        })
        .unwrap_or((0, 0))
}

fn fresh(base: &Config, dir: &Path) -> Result<Arc<Engine>> {
    let mut cfg = base.clone();
    cfg.data_dir = dir.to_path_buf();
    cfg.archive = Default::default();
    Ok(Arc::new(Engine::open(cfg, ModelLoading::Skip)?))
}

async fn point_in_time(
    base: &Config,
    dir: &Path,
    dest: &str,
    target: TargetTime,
) -> Result<(f64, crate::archive::PitrReport, Vec<String>)> {
    let engine = fresh(base, dir)?;
    let t = Instant::now();
    let report = crate::archive::restore_to_time(
        engine.clone(),
        dest,
        target,
        crate::backup::no_progress(),
        Arc::new(|_| {}),
    )
    .await?;
    let secs = t.elapsed().as_secs_f64();
    Ok((secs, report, ids(&engine)?))
}

fn ids(engine: &Engine) -> Result<Vec<String>> {
    let mut v: Vec<String> = engine
        .store
        .list_documents(0, usize::MAX >> 1)?
        .into_iter()
        .map(|d| d.id)
        .collect();
    v.sort();
    Ok(v)
}

enum Change {
    Put(String),
    Delete(String),
}

pub async fn restore_after_an_hour(base: &Config, corpus: &Path) -> Result<Value> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("temp dir", e))?;
    let mut base = base.clone();
    base.backup.allowed_roots = vec![tmp.path().to_path_buf()];
    let base = &base;
    let dest = tmp.path().join("dest");
    let dest_url = dest.to_string_lossy().into_owned();
    let mut cfg = base.clone();
    cfg.data_dir = tmp.path().join("writer");
    cfg.archive = Default::default();
    cfg.archive.destination = Some(dest_url.clone());
    let max_lag = cfg.archive.max_lag_secs;
    let (engine, model) = match Engine::open(cfg.clone(), ModelLoading::Required) {
        Ok(e) => (Arc::new(e), true),
        Err(_) => (Arc::new(Engine::open(cfg, ModelLoading::Skip)?), false),
    };
    let (e, c) = (engine.clone(), corpus.to_path_buf());
    let ingest = tokio::task::spawn_blocking(move || {
        crate::ingest::ingest_paths(
            &e,
            &[c],
            &crate::ingest::IngestOptions::default(),
            &crate::ingest::NoProgress,
        )
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    // the generation begins on the corpus, and the base snapshot holds it
    crate::archive::final_flush(engine.clone()).await?;
    let based = crate::maintenance::backup(
        engine.clone(),
        &dest_url,
        None,
        crate::backup::no_progress(),
    )
    .await?;

    let changes = CHANGES_PER_MINUTE * MINUTES;
    let step = 60_000_000 / CHANGES_PER_MINUTE as i64;
    let start = chrono::Utc::now().timestamp_micros() + 1_000_000;
    let mut live: Vec<String> = ids(&engine)?;
    let mut version = 0u64;
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let (mut puts, mut rewrites, mut deletes) = (0u64, 0u64, 0u64);
    let mut seq_of_change = 0u64;
    let generated = Instant::now();
    for group in shipper_groups(changes, step, max_lag) {
        let e = engine.clone();
        let mut work = vec![];
        for _ in 0..group {
            version += 1;
            let roll = rng.below(100);
            let op = if roll < 15 && !live.is_empty() {
                deletes += 1;
                Change::Delete(live.swap_remove(rng.below(live.len() as u64) as usize))
            } else if roll < 65 && !live.is_empty() {
                rewrites += 1;
                Change::Put(live[rng.below(live.len() as u64) as usize].clone())
            } else {
                puts += 1;
                let id = format!("team-{version}");
                live.push(id.clone());
                Change::Put(id)
            };
            let at = start + seq_of_change as i64 * step;
            seq_of_change += 1;
            work.push((op, version, at));
        }
        tokio::task::spawn_blocking(move || -> Result<()> {
            let from = e.store.change_log_state()?.last_seq;
            for (op, version, _) in &work {
                match op {
                    Change::Put(id) => {
                        let (doc, chunks) = document(id, *version);
                        e.store.put_document(&doc, &chunks, e.model_name())?;
                    }
                    Change::Delete(id) => {
                        e.store.delete_document(id)?;
                    }
                }
            }
            // the commit time each change has in the simulated hour
            e.store.write(|tx| {
                for (i, (_, _, at)) in work.iter().enumerate() {
                    let t = crate::archive::shipper::micros_to_rfc3339(*at);
                    tx.execute(
                        "UPDATE changes SET committed_at = ?1 WHERE seq = ?2",
                        rusqlite::params![t, from + 1 + i as i64],
                    )?;
                }
                Ok(())
            })
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        crate::archive::final_flush(engine.clone()).await?;
    }
    let generate_secs = generated.elapsed().as_secs_f64();
    let base_seq = based.manifest.extra["archive"]["seq"].as_i64().unwrap_or(0);
    let (segments, archive_bytes) = archive_size(&dest.join("archive"), base_seq);
    let expected = ids(&engine)?;
    let peer_dir = tmp.path().join("peer");
    let peer = crate::maintenance::backup(
        engine.clone(),
        &peer_dir.to_string_lossy(),
        None,
        crate::backup::no_progress(),
    )
    .await?;
    drop(engine);

    let (latest_secs, latest, latest_ids) = point_in_time(
        base,
        &tmp.path().join("latest"),
        &dest_url,
        TargetTime::Latest,
    )
    .await?;
    let middle_at = chrono::DateTime::from_timestamp_micros(start + (changes as i64 / 2) * step)
        .ok_or_else(|| Error::Internal("time out of range".into()))?;
    let (middle_secs, middle, _) = point_in_time(
        base,
        &tmp.path().join("middle"),
        &dest_url,
        TargetTime::At(middle_at),
    )
    .await?;
    let snap = fresh(base, &tmp.path().join("snapshot"))?;
    let t = Instant::now();
    crate::maintenance::restore(snap.clone(), &peer.location, crate::backup::no_progress()).await?;
    let snapshot_secs = t.elapsed().as_secs_f64();
    let per_sec = |n: u64, s: f64| super::round(n as f64 / s.max(1e-9), 1);
    Ok(json!({
        "model": model,
        "corpus_documents": ingest.added,
        "corpus_chunks": ingest.chunks,
        "base_backup_bytes": based.size_bytes,
        "simulated_minutes": MINUTES,
        "changes_per_minute": CHANGES_PER_MINUTE,
        "changes": changes,
        "new_documents": puts, "rewrites": rewrites, "deletes": deletes,
        "seconds_to_generate_the_hour": super::round(generate_secs, 1),
        "segments_after_the_base": segments,
        "archive_bytes": archive_bytes,
        "documents_after_the_hour": expected.len(),
        "restore_latest": {
            "seconds": super::round(latest_secs, 2),
            "replayed_changes": latest.replayed_changes,
            "changes_replayed_per_second": per_sec(latest.replayed_changes, latest_secs),
            "documents_match_the_writer": latest_ids == expected,
        },
        "restore_middle_of_the_hour": {
            "target": crate::store::changes::format_time(middle_at),
            "seconds": super::round(middle_secs, 2),
            "replayed_changes": middle.replayed_changes,
            "changes_replayed_per_second": per_sec(middle.replayed_changes, middle_secs),
        },
        "plain_snapshot_restore_of_the_same_end_state": {
            "seconds": super::round(snapshot_secs, 2),
            "snapshot_bytes": peer.size_bytes,
            "documents_match_the_writer": ids(&snap)? == expected,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_grouped_as_the_archiver_ships_them() {
        // one every 2 s, shipped 2.5 s after the oldest: two a segment
        assert_eq!(shipper_groups(5, 2_000_000, 5), [2, 2, 1]);
        // faster than the wait: everything committed within 2.5 s of the oldest
        assert_eq!(shipper_groups(7, 1_000_000, 5), [3, 3, 1]);
        assert!(shipper_groups(0, 1, 5).is_empty());
        assert_eq!(shipper_groups(1800, 2_000_000, 5).len(), 900);
    }
}
