//! Where a load of the vector index stands, for a server that answers while it loads.
//!
//! After an unclean stop (or with `index/` deleted) the graph is rebuilt from SQLite, about 20 s
//! per 100k vectors. `serve` binds its listener first and loads the index behind it: meanwhile
//! `/health/live` is up, `/health/ready` and `/health/detailed` report this progress, keyword
//! search works and what needs the index answers 503 `index_loading` with `Retry-After`.
//! Counters are atomics so probes read them without waiting on the load.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

/// The step a load is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadPhase {
    /// Reading the stored embeddings from SQLite.
    ReadingEmbeddings,
    /// Opening the saved graph and replaying its journal.
    LoadingSavedGraph,
    /// Building the graph again from the stored embeddings.
    Rebuilding,
}

impl LoadPhase {
    fn from_u8(v: u8) -> LoadPhase {
        match v {
            1 => LoadPhase::LoadingSavedGraph,
            2 => LoadPhase::Rebuilding,
            _ => LoadPhase::ReadingEmbeddings,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            LoadPhase::ReadingEmbeddings => 0,
            LoadPhase::LoadingSavedGraph => 1,
            LoadPhase::Rebuilding => 2,
        }
    }
}

/// What a probe shows of a running load.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LoadStatus {
    pub phase: LoadPhase,
    /// Vectors read (reading) or put in the graph (rebuilding) so far.
    pub done: usize,
    /// Vectors to read or index (the stored embeddings).
    pub total: usize,
    pub elapsed_secs: f64,
    /// Why the saved graph is not used (rebuilding only).
    pub rebuild_reason: Option<String>,
}

impl LoadStatus {
    /// One line for `reasons` and error messages.
    pub fn describe(&self) -> String {
        let what = match self.phase {
            LoadPhase::ReadingEmbeddings => "reading the stored embeddings",
            LoadPhase::LoadingSavedGraph => "loading the saved graph",
            LoadPhase::Rebuilding => "being rebuilt from the database",
        };
        let why = self
            .rebuild_reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        format!(
            "the vector index is loading: {what}{why}, {} of {} vectors after {:.0} s",
            self.done, self.total, self.elapsed_secs
        )
    }
}

/// Shared by the loader (which updates it) and the server (which reads it).
#[derive(Debug, Default)]
pub struct LoadProgress {
    loading: AtomicBool,
    phase: AtomicU8,
    done: AtomicUsize,
    total: AtomicUsize,
    started: Mutex<Option<Instant>>,
    reason: Mutex<Option<String>>,
}

impl LoadProgress {
    /// A progress that says a load is pending (the engine was opened without its index).
    pub fn pending(total: usize) -> LoadProgress {
        let p = LoadProgress::default();
        p.loading.store(true, Ordering::SeqCst);
        p.total.store(total, Ordering::Relaxed);
        if let Ok(mut s) = p.started.lock() {
            *s = Some(Instant::now());
        }
        p
    }

    /// Marks a load of `total` vectors begun (a reload of a loaded index).
    pub fn begin(&self, total: usize) {
        if let Ok(mut s) = self.started.lock() {
            *s = Some(Instant::now());
        }
        if let Ok(mut r) = self.reason.lock() {
            *r = None;
        }
        self.set_phase(LoadPhase::ReadingEmbeddings, total);
        self.loading.store(true, Ordering::SeqCst);
    }

    /// Whether the index is still loading.
    pub fn is_loading(&self) -> bool {
        self.loading.load(Ordering::SeqCst)
    }

    pub fn set_phase(&self, phase: LoadPhase, total: usize) {
        self.phase.store(phase.as_u8(), Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }

    pub fn set_rebuild_reason(&self, reason: &str) {
        if let Ok(mut r) = self.reason.lock() {
            *r = Some(reason.to_string());
        }
    }

    pub fn advance(&self, n: usize) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// The load ended (loaded or failed): what needs the index may go ahead.
    pub fn finish(&self) {
        self.loading.store(false, Ordering::SeqCst);
    }

    /// `None` once loaded.
    pub fn status(&self) -> Option<LoadStatus> {
        if !self.is_loading() {
            return None;
        }
        let elapsed_secs = self
            .started
            .lock()
            .ok()
            .and_then(|s| *s)
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        Some(LoadStatus {
            phase: LoadPhase::from_u8(self.phase.load(Ordering::Relaxed)),
            done: self.done.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            elapsed_secs,
            rebuild_reason: self.reason.lock().ok().and_then(|r| r.clone()),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_load_reports_its_phase_and_counts_until_finished() {
        let p = LoadProgress::pending(10);
        let s = p.status().unwrap();
        assert_eq!(s.phase, LoadPhase::ReadingEmbeddings);
        assert_eq!((s.done, s.total), (0, 10));
        p.advance(10);
        p.set_phase(LoadPhase::Rebuilding, 10);
        p.set_rebuild_reason("no saved index");
        p.advance(4);
        let s = p.status().unwrap();
        assert_eq!(s.phase, LoadPhase::Rebuilding);
        assert_eq!((s.done, s.total), (4, 10));
        let line = s.describe();
        assert!(
            line.contains("rebuilt") && line.contains("no saved index"),
            "{line}"
        );
        assert!(line.contains("4 of 10"), "{line}");
        p.finish();
        assert!(p.status().is_none());
        assert!(!LoadProgress::default().is_loading());
    }
}
