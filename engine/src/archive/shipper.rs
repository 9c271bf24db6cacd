//! The archiver task: ships the change log to the destination beside the writer.
//!
//! Each poll reads the log's state from a pooled reader (a local query, no request). It ships
//! when changes wait and the oldest has waited half of `archive.max_lag_secs` (the other half is
//! for the upload), or a segment's worth has piled up; nothing waiting means no request at all.
//! After an upload the position is recorded in the database and the shipped rows are pruned,
//! in one transaction. A crash between the upload and that transaction is found at the next
//! start from the listing (the segment is there): the position moves up to it, so nothing is
//! shipped twice and nothing is skipped. Uploads go through the object-storage breaker and its
//! retries; while they fail, the rows stay on the volume.

use std::sync::Arc;
use std::time::Duration;

use super::segment::{
    self, GenerationInfo, SegmentName, archived_through, generation_object, new_generation,
};
use super::{Archive, archive_folder, blocking, err};
use crate::backup::Location;
use crate::backup::storage::{list_objects, put_bytes};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::store::changes::ChangeLogState;

/// Largest segment, in bytes of change payloads (before compression).
pub const SEGMENT_BYTES: i64 = 8 << 20;
/// How often the log is looked at (locally).
const POLL: Duration = Duration::from_millis(200);
/// Longest pause after failures before the next attempt.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

struct Shipper {
    engine: Arc<Engine>,
    folder: Location,
    /// The generation and position this process last saw, to notice a file replaced under it.
    seen: Option<(String, i64)>,
    /// Whether the destination was listed for this generation since the start (resume).
    resumed_for: Option<String>,
}

/// Runs until aborted. Returns at once when archiving is off.
pub async fn run(engine: Arc<Engine>) {
    let Some(mut shipper) = Shipper::new(engine.clone()) else {
        return;
    };
    let mut backoff = Duration::ZERO;
    loop {
        tokio::time::sleep(POLL.max(backoff)).await;
        match shipper.tick(false).await {
            Ok(()) => backoff = Duration::ZERO,
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
                let msg = crate::backup::redact_url(&e.to_string());
                tracing::warn!(error = %msg, retry_in_secs = backoff.as_secs(), "archiving failed; changes stay on the volume until it works");
                engine.archive.update(|s| {
                    s.last_error = Some(msg);
                    s.last_error_at = Some(crate::health::now());
                });
            }
        }
    }
}

/// Ships everything waiting now (at shutdown, so a clean stop leaves nothing behind).
pub async fn final_flush(engine: Arc<Engine>) -> Result<()> {
    match Shipper::new(engine) {
        Some(mut s) => s.tick(true).await,
        None => Ok(()),
    }
}

impl Shipper {
    fn new(engine: Arc<Engine>) -> Option<Shipper> {
        let dest = engine.config.archive.destination.clone()?;
        match crate::maintenance::location(&engine, &dest) {
            Ok(folder) => Some(Shipper {
                folder: archive_folder(&folder),
                engine,
                seen: None,
                resumed_for: None,
            }),
            Err(e) => {
                tracing::error!(error = %e, "archive.destination cannot be used; archiving is off");
                engine
                    .archive
                    .update(|s| s.last_error = Some(e.to_string()));
                None
            }
        }
    }

    fn archive(&self) -> &Archive {
        &self.engine.archive
    }

    async fn state(&self) -> Result<ChangeLogState> {
        let e = self.engine.clone();
        blocking(move || e.store.change_log_state()).await
    }

    async fn tick(&mut self, force: bool) -> Result<()> {
        if self.engine.store.damaged().is_some() {
            return Ok(());
        }
        let mut state = self.state().await?;
        publish(&self.engine, &state);
        if force && state.pending == 0 && state.generation.is_some() {
            // a shutdown with nothing waiting makes no request
            return Ok(());
        }
        let replaced = matches!((&self.seen, &state.generation),
            (Some((g, seq)), Some(now)) if g == now && state.shipped_seq < *seq);
        if state.generation.is_none() || replaced {
            if replaced {
                tracing::warn!(
                    "the database was replaced under the archiver; starting a new archive generation"
                );
            }
            self.start_generation().await?;
            state = self.state().await?;
        }
        let Some(generation) = state.generation.clone() else {
            return Ok(());
        };
        if self.resumed_for.as_deref() != Some(generation.as_str()) {
            if self.resume(&generation, &state).await? {
                // the archive holds changes this file does not: it is an older copy
                tracing::warn!(
                    generation,
                    "the archive is ahead of this database (a copy restored without a restore?); starting a new archive generation"
                );
                self.start_generation().await?;
            }
            state = self.state().await?;
        }
        let max_lag = Duration::from_secs(self.engine.config.archive.max_lag_secs);
        loop {
            if state.pending == 0 {
                break;
            }
            let waited = age_secs(state.oldest_pending_at.as_deref());
            if !(force
                || waited >= max_lag.as_secs_f64() / 2.0
                || state.pending_bytes >= SEGMENT_BYTES)
            {
                break;
            }
            let Some(generation) = state.generation.clone() else {
                break;
            };
            self.ship(&generation, state.shipped_seq).await?;
            state = self.state().await?;
            publish(&self.engine, &state);
        }
        self.seen = state.generation.clone().map(|g| (g, state.shipped_seq));
        Ok(())
    }

    async fn start_generation(&mut self) -> Result<()> {
        let generation = new_generation(chrono::Utc::now());
        let e = self.engine.clone();
        let g = generation.clone();
        let base_seq = blocking(move || e.store.start_generation(&g)).await?;
        tracing::info!(generation, base_seq, "archive generation started");
        // `resume` lists the destination for it and writes its marker
        self.seen = None;
        Ok(())
    }

    /// The marker of the file's generation, from what the file recorded at its start.
    async fn marker_info(&self) -> Result<Option<GenerationInfo>> {
        let e = self.engine.clone();
        let start = blocking(move || e.store.read(crate::store::changes::generation_start)).await?;
        Ok(start.map(|s| GenerationInfo {
            generation: s.generation,
            started_at: s.started_at,
            base_seq: s.base_seq,
            started_empty: s.started_empty,
        }))
    }

    async fn put_marker(&self, info: &GenerationInfo) -> Result<()> {
        self.ensure_dir().await?;
        let bytes = serde_json::to_vec_pretty(info).map_err(|e| Error::Internal(e.to_string()))?;
        self.count_request();
        put_bytes(&self.folder, &generation_object(&info.generation), bytes)
            .await
            .map_err(err)
    }

    /// Lists the destination once per generation per process: moves the position up to what
    /// the archive already holds (an upload a crash cut off before its position was recorded)
    /// and writes a missing generation marker. `Ok(true)` when the archive holds changes past
    /// the file's newest one.
    async fn resume(&mut self, generation: &str, state: &ChangeLogState) -> Result<bool> {
        self.count_request();
        let listed = list_objects(&self.folder).await.map_err(err)?;
        let segments: Vec<SegmentName> = listed
            .iter()
            .filter_map(|(n, _, _)| SegmentName::parse(n))
            .collect();
        let marker = generation_object(generation);
        let through = archived_through(&segments, generation).cloned();
        if let Some(s) = &through {
            if s.last > state.last_seq {
                return Ok(true);
            }
            if s.last > state.shipped_seq {
                tracing::info!(
                    generation,
                    from = state.shipped_seq,
                    to = s.last,
                    "archive already holds changes past the recorded position (upload before a crash); resuming after them"
                );
                let (e, g, last) = (self.engine.clone(), generation.to_string(), s.last);
                blocking(move || e.store.mark_shipped(&g, last)).await?;
            }
            self.archive()
                .update(|st| st.last_archived_time = Some(micros_to_rfc3339(s.last_micros)));
        }
        if !listed.iter().any(|(n, _, _)| *n == marker)
            && let Some(info) = self.marker_info().await?
            && info.generation == generation
        {
            self.put_marker(&info).await?;
            tracing::info!(
                generation,
                base_seq = info.base_seq,
                started_empty = info.started_empty,
                "archive generation marker written"
            );
        }
        self.resumed_for = Some(generation.to_string());
        Ok(false)
    }

    async fn ship(&mut self, generation: &str, after: i64) -> Result<()> {
        let e = self.engine.clone();
        let g = generation.to_string();
        let (name, bytes) = blocking(move || {
            let rows = e.store.changes_after(after, SEGMENT_BYTES)?;
            segment::encode(&g, &rows)
        })
        .await?;
        self.ensure_dir().await?;
        self.count_request();
        put_bytes(&self.folder, &name.to_name(), bytes)
            .await
            .map_err(err)?;
        let (e, g, last) = (self.engine.clone(), generation.to_string(), name.last);
        let recorded = blocking(move || e.store.mark_shipped(&g, last)).await?;
        if !recorded {
            tracing::warn!(
                generation,
                "the database changed generation during an upload; the segment stays in the old generation"
            );
        }
        tracing::debug!(
            generation,
            first = name.first,
            last = name.last,
            "archive segment shipped"
        );
        self.archive().update(|s| {
            s.segments_shipped += 1;
            s.last_archived_time = Some(micros_to_rfc3339(name.last_micros));
            s.last_success_at = Some(crate::health::now());
            s.last_error = None;
            s.last_error_at = None;
        });
        Ok(())
    }

    async fn ensure_dir(&self) -> Result<()> {
        if let Location::Dir(d) = &self.folder {
            tokio::fs::create_dir_all(d)
                .await
                .map_err(|e| Error::io(format!("create {}", d.display()), e))?;
        }
        Ok(())
    }

    /// Counts one destination operation (an object-store request; a file write or listing for
    /// a directory).
    fn count_request(&self) {
        self.engine.metrics.archive_requests.inc();
        self.archive().update(|s| s.requests += 1);
    }
}

/// Puts a local state of the change log (no request) into the archive's status and metrics.
/// The shipper calls it at each poll, and `GET /admin/archive` before it answers, so a reader
/// never sees the figures of a poll that came before its own write.
pub(crate) fn publish(engine: &Engine, state: &ChangeLogState) {
    let max_lag = engine.config.archive.max_lag_secs as f64;
    let max_buffer = engine.config.archive.max_buffer_bytes as i64;
    let lag = if state.pending > 0 {
        age_secs(state.oldest_pending_at.as_deref())
    } else {
        0.0
    };
    let full = state.pending_bytes > max_buffer;
    let was_full = engine.archive.status().buffer_full;
    if full && !was_full {
        tracing::error!(
            lag_bytes = state.pending_bytes,
            max_buffer_bytes = max_buffer,
            "archive buffer full: the destination has failed for long and changes pile up on the volume (they are kept, not dropped); fix the destination (see last_error in GET /admin/archive) or raise archive.max_buffer_bytes"
        );
    }
    engine.metrics.archive_lag_seconds.set(lag);
    engine.metrics.archive_lag_bytes.set(state.pending_bytes);
    engine.archive.update(|s| {
        s.generation = state.generation.clone();
        s.shipped_seq = state.shipped_seq;
        s.last_seq = state.last_seq;
        s.pending_changes = state.pending;
        s.lag_bytes = state.pending_bytes;
        s.lag_seconds = lag;
        s.buffer_full = full;
        s.within_max_lag = lag <= max_lag;
    });
}

/// Seconds since an RFC 3339 time (0 when absent or unreadable).
fn age_secs(t: Option<&str>) -> f64 {
    t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            let ms = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds();
            (ms.max(0) as f64) / 1000.0
        })
        .unwrap_or(0.0)
}

pub(crate) fn micros_to_rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(crate::store::changes::format_time)
        .unwrap_or_default()
}
