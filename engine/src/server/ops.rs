//! Work the server runs beside its requests: the deferred load of the vector index, scheduled
//! database maintenance, and the error tracking of handler failures.

use std::time::Duration;

use axum::response::Response;

use super::{AppState, update_gauges};
use crate::error::{Error, Result};

/// Loads the vector index of an engine opened deferred, behind the listener. On its own thread
/// rather than a blocking task: the runtime waits for blocking tasks before it exits, and a
/// SIGTERM during a rebuild must not wait for the rebuild.
pub(super) fn start_index_load(state: AppState) -> Result<()> {
    std::thread::Builder::new()
        .name("index-load".into())
        .spawn(move || {
            if let Err(e) = state.engine.load_deferred_index() {
                state
                    .engine
                    .track_error("vector_index", e.code(), &e.to_string());
                tracing::error!(error = %e, "the vector index could not be loaded; vector search may miss results until `instant-db repair`");
            }
            // Ready from now on, not a health interval later.
            state.health.refresh(&state.engine);
            update_gauges(&state);
            state.engine.persist_index_if_rebuilt();
        })
        .map(drop)
        .map_err(|e| Error::io("cannot start the vector index load", e))
}

/// Runs `job` on a blocking thread every `secs` seconds (0: never), the first run an interval
/// after the start, each holding the maintenance lock, so no two maintenance jobs (the
/// integrity check, the optimize) ever run at once: the check reads what the merge rewrites.
/// The outcome is logged, counted or recorded in health by the job itself.
pub(super) async fn run_periodically(state: AppState, secs: u64, job: fn(&AppState)) {
    if secs == 0 {
        return;
    }
    let every = Duration::from_secs(secs);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let _turn = state.maintenance.lock().await;
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || job(&s)).await;
    }
}

/// Database maintenance (`health.optimize_interval_secs`).
pub(super) fn optimize(state: &AppState) {
    let _ = crate::maintenance::optimize(&state.engine);
}

/// An engine failure answered by a handler, picked up by [`track_errors`].
#[derive(Clone)]
pub(super) struct TrackedError {
    pub(super) kind: &'static str,
    pub(super) message: String,
}

/// Counts the 5xx answers of handlers in the error tracker, by route template and error code.
/// Refusals that say "come back later" on purpose (a restore, the index loading) are states,
/// not failures, and are left out.
pub(super) async fn track_errors(
    axum::extract::State(s): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or(crate::metrics::UNMATCHED_ROUTE, |m| m.as_str())
        .to_string();
    let resp = next.run(req).await;
    if let Some(e) = resp.extensions().get::<TrackedError>()
        && !matches!(e.kind, "restore_in_progress" | "index_loading")
    {
        s.engine.track_error(&route, e.kind, &e.message);
    }
    resp
}
