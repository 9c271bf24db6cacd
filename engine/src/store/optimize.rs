//! Routine database maintenance: the FTS5 `optimize` merge and `ANALYZE`.
//!
//! - Each ingest adds FTS5 segments; FTS5 merges some on its own, but a collection written in
//!   many small ingests keeps many, and every keyword query reads them all. `optimize` merges
//!   them into one.
//! - `ANALYZE` refreshes the statistics the query planner chooses indexes by (filters on
//!   metadata, the chunk joins); `PRAGMA optimize` at shutdown only runs it when SQLite thinks
//!   it is overdue.
//! - Both write, so both run on the writer connection under its lock: an ingest waits for them
//!   (for as long as they take) instead of failing with `SQLITE_BUSY` as it would against a
//!   second connection. Neither counts as a change: the generation is not bumped.

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;

use super::Store;
use crate::error::{Error, Result};

/// What one maintenance run did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OptimizeReport {
    /// FTS5 segments before and after the merge.
    pub fts_segments_before: i64,
    pub fts_segments_after: i64,
    pub fts_optimize_ms: f64,
    pub analyze_ms: f64,
}

const FTS_SEGMENTS: &str = "SELECT count(DISTINCT segid) FROM chunks_fts_idx";

impl Store {
    /// Merges the full-text index's segments and refreshes the planner's statistics, on the
    /// writer connection (see the module doc). Refused like a write while a restore runs or
    /// after shutdown began.
    pub fn optimize(&self) -> Result<OptimizeReport> {
        self.with_writer(|c| {
            if self.writes_closed.load(Ordering::SeqCst) {
                return Err(Error::Unavailable("the server is shutting down".into()));
            }
            if self.writes_fenced.load(Ordering::SeqCst) {
                return Err(Error::RestoreInProgress(
                    "a restore is running: maintenance waits for the next run".into(),
                ));
            }
            let before: i64 = c.query_row(FTS_SEGMENTS, [], |r| r.get(0))?;
            let t = Instant::now();
            c.execute_batch("INSERT INTO chunks_fts(chunks_fts) VALUES('optimize')")?;
            let fts_optimize_ms = t.elapsed().as_secs_f64() * 1000.0;
            let after: i64 = c.query_row(FTS_SEGMENTS, [], |r| r.get(0))?;
            let t = Instant::now();
            c.execute_batch("ANALYZE")?;
            Ok(OptimizeReport {
                fts_segments_before: before,
                fts_segments_after: after,
                fts_optimize_ms,
                analyze_ms: t.elapsed().as_secs_f64() * 1000.0,
            })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::tests::doc;
    use super::*;
    use crate::store::NewChunk;

    fn chunk(text: &str) -> NewChunk {
        NewChunk {
            section_path: vec![],
            text: text.into(),
            content_start: 0,
            doc_start: 0,
            doc_end: text.len(),
            token_count: 2,
            embedding: None,
        }
    }

    #[test]
    fn optimize_merges_fts_segments_and_writes_planner_statistics_without_a_generation_bump() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        // One transaction per document, as ingests do: one FTS segment each.
        for i in 0..12 {
            store
                .put_document(
                    &doc(&format!("d{i}"), &format!("/{i}.txt")),
                    &[chunk(&format!("walrus number {i}"))],
                    "m",
                )
                .unwrap();
        }
        let generation = store.generation().unwrap();
        let r = store.optimize().unwrap();
        assert!(r.fts_segments_before > 1, "{r:?}");
        assert_eq!(r.fts_segments_after, 1, "{r:?}");
        let stats: i64 = store
            .read(|c| Ok(c.query_row("SELECT count(*) FROM sqlite_stat1", [], |r| r.get(0))?))
            .unwrap();
        assert!(stats > 0, "ANALYZE wrote no statistics");
        assert_eq!(store.generation().unwrap(), generation);
        // Keyword search still finds everything.
        let hits: i64 = store
            .read(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'walrus'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(hits, 12);
        assert!(store.integrity_check().unwrap().ok);
    }

    #[test]
    fn optimize_and_concurrent_writes_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(&dir.path().join("db.sqlite")).unwrap());
        for i in 0..50 {
            store
                .put_document(
                    &doc(&format!("seed{i}"), &format!("/seed{i}.txt")),
                    &[chunk(&"text ".repeat(200))],
                    "m",
                )
                .unwrap();
        }
        let writer = {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    store
                        .put_document(
                            &doc(&format!("w{i}"), &format!("/w{i}.txt")),
                            &[chunk("concurrent write")],
                            "m",
                        )
                        .expect("a write during maintenance must not fail");
                }
            })
        };
        for _ in 0..10 {
            store.optimize().unwrap();
        }
        writer.join().unwrap();
        assert_eq!(store.stats().unwrap().documents, 150);
    }

    #[test]
    fn optimize_is_refused_during_a_restore_and_after_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        store.writes_fenced.store(true, Ordering::SeqCst);
        assert_eq!(store.optimize().unwrap_err().code(), "restore_in_progress");
        store.writes_fenced.store(false, Ordering::SeqCst);
        store.close_writes().unwrap();
        assert_eq!(store.optimize().unwrap_err().code(), "unavailable");
    }
}
