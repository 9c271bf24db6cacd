//! Prometheus metrics of the engine.
//!
//! One [`Metrics`] value owns one prometheus [`Registry`] holding every
//! `instantdb_*` metric plus (on Linux) the standard `process_*` collector.
//! It is cheap to clone (an `Arc`) and meant to be shared through the app
//! state. [`Metrics::render`] produces the text exposition format for
//! `GET /metrics`; [`track_http`] is an axum middleware counting requests.
//!
//! Names follow Prometheus conventions: base units (`_seconds`, `_bytes`),
//! counters end in `_total`. Label values are bounded: the HTTP `route` label
//! is the matched route template (e.g. `/api/documents/{id}`), never the raw
//! path; unmatched requests are labelled `route="unmatched"`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::resilience::{BreakerState, StateHook};

/// Error building the registry (only on programming errors such as a duplicate name).
#[derive(Debug, thiserror::Error)]
#[error("metrics registry: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Buckets for HTTP request latency (seconds).
pub const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for search latency (seconds).
pub const SEARCH_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Buckets for embedding batch latency (seconds).
pub const EMBED_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets for long operations: backups, integrity checks (seconds).
pub const LONG_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Every metric of the engine. Fields are public so callers record directly
/// (`metrics.ingest_documents.with_label_values(&["ok"]).inc()`).
pub struct MetricsInner {
    registry: Registry,
    /// `instantdb_http_requests_total{method,route,status}`
    pub http_requests: IntCounterVec,
    /// `instantdb_http_request_duration_seconds{method,route,status}`
    pub http_duration: HistogramVec,
    /// `instantdb_ingest_documents_total{result}` — result: `ok`, `skipped`, `failed`.
    pub ingest_documents: IntCounterVec,
    /// `instantdb_ingest_problems_total{reason}` — files skipped or failed, by reason
    /// (`unsupported`, `encrypted`, `corrupt`, `invalid`, `too_large`, ...: `ingest::ProblemKind`).
    pub ingest_problems: IntCounterVec,
    /// `instantdb_ingest_chunks_total`
    pub ingest_chunks: IntCounter,
    /// `instantdb_embedding_duration_seconds` (one observation per batch)
    pub embedding_duration: Histogram,
    /// `instantdb_embedded_texts_total`
    pub embedded_texts: IntCounter,
    /// `instantdb_documents`
    pub documents: IntGauge,
    /// `instantdb_chunks`
    pub chunks: IntGauge,
    /// `instantdb_index_vectors`
    pub index_vectors: IntGauge,
    /// `instantdb_search_duration_seconds{mode}` — mode: `vector`, `keyword`, `hybrid`.
    pub search_duration: HistogramVec,
    /// `instantdb_backup_total{result}` — result: `success`, `failure`.
    pub backup_total: IntCounterVec,
    /// `instantdb_backup_duration_seconds`
    pub backup_duration: Histogram,
    /// `instantdb_backup_last_success_timestamp_seconds` — Unix time of the last successful backup.
    pub backup_last_success: IntGauge,
    /// `instantdb_restore_total{result}` — result: `success`, `failure`.
    pub restore_total: IntCounterVec,
    /// `instantdb_restore_duration_seconds`
    pub restore_duration: Histogram,
    /// `instantdb_integrity_check_total{result}` — result: `ok`, `failed`, `error`.
    pub integrity_check_total: IntCounterVec,
    /// `instantdb_integrity_check_duration_seconds`
    pub integrity_check_duration: Histogram,
    /// `instantdb_integrity_ok` — 1 when the last integrity check passed, 0 when it found
    /// problems; no sample until a check has completed, so no alert reads an unknown as good.
    /// (A vector with no labels: its one child exists only once it is set.)
    pub integrity_ok: IntGaugeVec,
    /// `instantdb_integrity_last_check_timestamp_seconds` — Unix time of the last completed
    /// check (0 when none).
    pub integrity_last_check: IntGauge,
    /// `instantdb_circuit_breaker_state{dependency}` — 0 closed, 1 half-open, 2 open.
    pub circuit_breaker_state: IntGaugeVec,
    /// `instantdb_data_volume_used_bytes` / `instantdb_data_volume_capacity_bytes` — the file
    /// system holding the data directory, from the health sampler (alerts divide the two).
    pub data_volume_used: IntGauge,
    pub data_volume_capacity: IntGauge,
    /// `instantdb_archive_lag_seconds` — how long the oldest change not yet archived has
    /// waited (0 when none waits).
    pub archive_lag_seconds: prometheus::Gauge,
    /// `instantdb_archive_lag_bytes` — bytes of changes waiting on the volume for the archive.
    pub archive_lag_bytes: IntGauge,
    /// `instantdb_archive_requests_total` — destination operations made by archiving.
    pub archive_requests: IntCounter,
    /// `instantdb_archive_pruned_objects_total` — archive objects deleted (or markers
    /// rewritten) by retention, when a backup is deleted.
    pub archive_pruned_objects: IntCounter,
    /// `instantdb_archive_prune_failures_total` — backup deletions whose archive pruning failed
    /// (the backup was deleted; the next deletion prunes again).
    pub archive_prune_failures: IntCounter,
    /// `instantdb_uploads_in_memory` — upload bodies being read into memory now; at most
    /// `ingest.max_concurrent`, since an upload takes its ingest slot first.
    pub uploads_in_memory: IntGauge,
    /// `instantdb_embedding_failures_total{path}` — embedding calls that failed after their
    /// retries (or were refused by the open breaker), by path: `ingest`, `query`.
    pub embedding_failures: IntCounterVec,
    /// `instantdb_ingest_degraded_documents_total` — documents stored without vectors because
    /// embedding failed (keyword search only until `instant-db repair`).
    pub ingest_degraded_documents: IntCounter,
    /// `instantdb_searches_refused_total` — searches answered 429 (`limits.max_concurrent_searches`).
    pub searches_refused: IntCounter,
    /// `instantdb_errors_total{component,kind}` — failures of the engine (5xx answers by route
    /// template, embedding, integrity, maintenance, index load) by error code
    /// (`crate::error_tracker`).
    pub errors_total: IntCounterVec,
    /// `instantdb_maintenance_runs_total{task,result}` — scheduled database maintenance
    /// (`task`: `optimize`, the FTS5 merge and `ANALYZE`), by result: `ok`, `error`, `skipped`.
    pub maintenance_runs: IntCounterVec,
    /// `instantdb_maintenance_duration_seconds{task}`
    pub maintenance_duration: HistogramVec,
}

/// Shared handle to the engine's metrics. Clone freely.
#[derive(Clone)]
pub struct Metrics(Arc<MetricsInner>);

impl std::ops::Deref for Metrics {
    type Target = MetricsInner;
    fn deref(&self) -> &MetricsInner {
        &self.0
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn reg<C: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    c: C,
) -> Result<C, MetricsError> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn hist(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(buckets.to_vec())
}

impl Metrics {
    /// A fresh registry with every metric registered (and the process
    /// collector on Linux).
    pub fn new() -> Result<Self, MetricsError> {
        let r = Registry::new();
        let inner = MetricsInner {
            http_requests: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "instantdb_http_requests_total",
                        "HTTP requests handled, by method, route template and status code.",
                    ),
                    &["method", "route", "status"],
                )?,
            )?,
            http_duration: reg(
                &r,
                HistogramVec::new(
                    hist(
                        "instantdb_http_request_duration_seconds",
                        "HTTP request latency in seconds, by method, route template and status code.",
                        HTTP_BUCKETS,
                    ),
                    &["method", "route", "status"],
                )?,
            )?,
            ingest_documents: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "instantdb_ingest_documents_total",
                        "Documents processed by ingest, by result (ok, skipped, failed).",
                    ),
                    &["result"],
                )?,
            )?,
            ingest_problems: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "instantdb_ingest_problems_total",
                        "Files skipped or failed by ingest, by reason (unsupported, encrypted, corrupt, invalid, too_large, ...).",
                    ),
                    &["reason"],
                )?,
            )?,
            ingest_chunks: reg(
                &r,
                IntCounter::new("instantdb_ingest_chunks_total", "Chunks written by ingest.")?,
            )?,
            embedding_duration: reg(
                &r,
                Histogram::with_opts(hist(
                    "instantdb_embedding_duration_seconds",
                    "Time to embed one batch of texts, in seconds.",
                    EMBED_BUCKETS,
                ))?,
            )?,
            embedded_texts: reg(
                &r,
                IntCounter::new(
                    "instantdb_embedded_texts_total",
                    "Texts embedded by the model.",
                )?,
            )?,
            documents: reg(
                &r,
                IntGauge::new("instantdb_documents", "Documents currently stored.")?,
            )?,
            chunks: reg(
                &r,
                IntGauge::new("instantdb_chunks", "Chunks currently stored.")?,
            )?,
            index_vectors: reg(
                &r,
                IntGauge::new(
                    "instantdb_index_vectors",
                    "Vectors currently in the vector index.",
                )?,
            )?,
            search_duration: reg(
                &r,
                HistogramVec::new(
                    hist(
                        "instantdb_search_duration_seconds",
                        "Search latency in seconds, by mode (vector, keyword, hybrid).",
                        SEARCH_BUCKETS,
                    ),
                    &["mode"],
                )?,
            )?,
            backup_total: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "instantdb_backup_total",
                        "Backups attempted, by result (success, failure).",
                    ),
                    &["result"],
                )?,
            )?,
            backup_duration: reg(
                &r,
                Histogram::with_opts(hist(
                    "instantdb_backup_duration_seconds",
                    "Duration of backups in seconds.",
                    LONG_BUCKETS,
                ))?,
            )?,
            backup_last_success: reg(
                &r,
                IntGauge::new(
                    "instantdb_backup_last_success_timestamp_seconds",
                    "Unix time of the last successful backup (0 when none).",
                )?,
            )?,
            restore_total: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "instantdb_restore_total",
                        "Restores attempted, by result (success, failure).",
                    ),
                    &["result"],
                )?,
            )?,
            restore_duration: reg(
                &r,
                Histogram::with_opts(hist(
                    "instantdb_restore_duration_seconds",
                    "Duration of restores in seconds, verification included.",
                    LONG_BUCKETS,
                ))?,
            )?,
            errors_total: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "instantdb_errors_total",
                        "Failures of the engine, by component (route template or subsystem) and kind (error code).",
                    ),
                    &["component", "kind"],
                )?,
            )?,
            maintenance_runs: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "instantdb_maintenance_runs_total",
                        "Scheduled database maintenance runs, by task (optimize) and result (ok, error, skipped).",
                    ),
                    &["task", "result"],
                )?,
            )?,
            maintenance_duration: reg(
                &r,
                HistogramVec::new(
                    hist(
                        "instantdb_maintenance_duration_seconds",
                        "Duration of scheduled database maintenance in seconds, by task.",
                        LONG_BUCKETS,
                    ),
                    &["task"],
                )?,
            )?,
            integrity_check_total: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "instantdb_integrity_check_total",
                        "Integrity checks run, by result (ok, failed, error).",
                    ),
                    &["result"],
                )?,
            )?,
            integrity_check_duration: reg(
                &r,
                Histogram::with_opts(hist(
                    "instantdb_integrity_check_duration_seconds",
                    "Duration of integrity checks in seconds.",
                    LONG_BUCKETS,
                ))?,
            )?,
            integrity_ok: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "instantdb_integrity_ok",
                        "1 when the last integrity check passed, 0 when it found problems; absent until a check completed.",
                    ),
                    &[],
                )?,
            )?,
            integrity_last_check: reg(
                &r,
                IntGauge::new(
                    "instantdb_integrity_last_check_timestamp_seconds",
                    "Unix time of the last completed integrity check (0 when none).",
                )?,
            )?,
            circuit_breaker_state: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "instantdb_circuit_breaker_state",
                        "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.",
                    ),
                    &["dependency"],
                )?,
            )?,
            data_volume_used: reg(
                &r,
                IntGauge::new(
                    "instantdb_data_volume_used_bytes",
                    "Bytes used on the file system of the data directory.",
                )?,
            )?,
            data_volume_capacity: reg(
                &r,
                IntGauge::new(
                    "instantdb_data_volume_capacity_bytes",
                    "Size in bytes of the file system of the data directory.",
                )?,
            )?,
            archive_lag_seconds: reg(
                &r,
                prometheus::Gauge::new(
                    "instantdb_archive_lag_seconds",
                    "Seconds the oldest change not yet in the archive has waited (0 when none waits).",
                )?,
            )?,
            archive_lag_bytes: reg(
                &r,
                IntGauge::new(
                    "instantdb_archive_lag_bytes",
                    "Bytes of changes waiting on the volume to be archived.",
                )?,
            )?,
            archive_requests: reg(
                &r,
                IntCounter::new(
                    "instantdb_archive_requests_total",
                    "Destination operations (object-store requests, directory writes and listings) made by continuous archiving.",
                )?,
            )?,
            archive_pruned_objects: reg(
                &r,
                IntCounter::new(
                    "instantdb_archive_pruned_objects_total",
                    "Archive objects deleted (or generation markers rewritten) by retention when a backup was deleted.",
                )?,
            )?,
            archive_prune_failures: reg(
                &r,
                IntCounter::new(
                    "instantdb_archive_prune_failures_total",
                    "Backup deletions whose archive pruning failed (the backup was deleted; the next deletion prunes again).",
                )?,
            )?,
            uploads_in_memory: reg(
                &r,
                IntGauge::new(
                    "instantdb_uploads_in_memory",
                    "Upload bodies being read into memory now (at most ingest.max_concurrent).",
                )?,
            )?,
            embedding_failures: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "instantdb_embedding_failures_total",
                        "Embedding calls that failed after their retries or were refused by the open breaker, by path (ingest, query).",
                    ),
                    &["path"],
                )?,
            )?,
            ingest_degraded_documents: reg(
                &r,
                IntCounter::new(
                    "instantdb_ingest_degraded_documents_total",
                    "Documents stored without vectors because embedding failed.",
                )?,
            )?,
            searches_refused: reg(
                &r,
                IntCounter::new(
                    "instantdb_searches_refused_total",
                    "Searches refused with 429 because limits.max_concurrent_searches were running.",
                )?,
            )?,
            registry: r,
        };
        #[cfg(target_os = "linux")]
        inner.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self(Arc::new(inner)))
    }

    /// The underlying registry (to register extra collectors).
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// Text exposition format (`text/plain; version=0.0.4`), for `GET /metrics`.
    pub fn render(&self) -> String {
        let families = self.0.registry.gather();
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Content type of [`render`](Self::render)'s output.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// A [`StateHook`] for `CircuitBreaker::with_hook` that keeps
    /// `instantdb_circuit_breaker_state{dependency}` up to date.
    pub fn breaker_hook(&self) -> StateHook {
        let gauge = self.0.circuit_breaker_state.clone();
        Arc::new(move |name: &str, state: BreakerState| {
            gauge.with_label_values(&[name]).set(state.as_gauge());
        })
    }

    /// Record one HTTP request.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.0
            .http_requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.0
            .http_duration
            .with_label_values(&[method, route, status.as_str()])
            .observe(seconds);
    }

    /// Record a backup outcome and its duration.
    pub fn observe_backup(&self, ok: bool, seconds: f64) {
        self.0
            .backup_total
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
        self.0.backup_duration.observe(seconds);
        if ok {
            self.0
                .backup_last_success
                .set(chrono::Utc::now().timestamp());
        }
    }

    /// Record a restore outcome and its duration.
    pub fn observe_restore(&self, ok: bool, seconds: f64) {
        self.0
            .restore_total
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
        self.0.restore_duration.observe(seconds);
    }

    /// Record an integrity check: `Some(true)` passed, `Some(false)` found
    /// problems, `None` could not run.
    /// Record the data volume's size and free space (one health sample).
    pub fn observe_data_volume(&self, free_bytes: u64, total_bytes: u64) {
        let used = total_bytes.saturating_sub(free_bytes);
        self.0
            .data_volume_used
            .set(i64::try_from(used).unwrap_or(i64::MAX));
        self.0
            .data_volume_capacity
            .set(i64::try_from(total_bytes).unwrap_or(i64::MAX));
    }

    pub fn observe_integrity(&self, outcome: Option<bool>, seconds: f64) {
        let result = match outcome {
            Some(true) => "ok",
            Some(false) => "failed",
            None => "error",
        };
        self.0
            .integrity_check_total
            .with_label_values(&[result])
            .inc();
        self.0.integrity_check_duration.observe(seconds);
        if let Some(ok) = outcome {
            self.0
                .integrity_ok
                .with_label_values(&[] as &[&str])
                .set(i64::from(ok));
            self.0
                .integrity_last_check
                .set(chrono::Utc::now().timestamp());
        }
    }
}

/// Route label used for requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// axum middleware counting requests and their latency. Install with
/// `axum::middleware::from_fn_with_state(metrics.clone(), track_http)`.
/// The `route` label is the matched route template; requests matching no
/// route are labelled [`UNMATCHED_ROUTE`], so cardinality stays bounded.
pub async fn track_http(
    State(metrics): State<Metrics>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = matched
        .as_ref()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let resp = next.run(req).await;
    metrics.observe_http(
        &method,
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::resilience::{BreakerConfig, CircuitBreaker};
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[test]
    fn render_contains_every_metric_with_help() {
        let m = Metrics::new().unwrap();
        // vectors appear only once a label set exists
        m.ingest_documents.with_label_values(&["ok"]).inc();
        m.search_duration
            .with_label_values(&["hybrid"])
            .observe(0.01);
        m.observe_backup(true, 1.5);
        m.observe_restore(false, 3.0);
        m.observe_integrity(Some(true), 0.2);
        m.observe_http("GET", "/health", 200, 0.001);
        m.observe_data_volume(300, 1000);
        let b =
            CircuitBreaker::new("embedding", BreakerConfig::default()).with_hook(m.breaker_hook());
        for _ in 0..5 {
            b.record_failure();
        }
        let text = m.render();
        for name in [
            "instantdb_http_requests_total",
            "instantdb_http_request_duration_seconds_bucket",
            "instantdb_ingest_documents_total",
            "instantdb_ingest_chunks_total",
            "instantdb_embedding_duration_seconds",
            "instantdb_embedded_texts_total",
            "instantdb_documents",
            "instantdb_chunks",
            "instantdb_index_vectors",
            "instantdb_search_duration_seconds_bucket{mode=\"hybrid\"",
            "instantdb_backup_total{result=\"success\"} 1",
            "instantdb_backup_duration_seconds",
            "instantdb_backup_last_success_timestamp_seconds",
            "instantdb_restore_total{result=\"failure\"} 1",
            "instantdb_restore_duration_seconds_count 1",
            "instantdb_integrity_check_total{result=\"ok\"} 1",
            "instantdb_integrity_check_duration_seconds",
            "instantdb_integrity_ok 1",
            "instantdb_integrity_last_check_timestamp_seconds",
            "instantdb_circuit_breaker_state{dependency=\"embedding\"} 2",
            "instantdb_data_volume_used_bytes 700",
            "instantdb_data_volume_capacity_bytes 1000",
            "# HELP instantdb_http_requests_total HTTP requests handled",
            "# TYPE instantdb_http_request_duration_seconds histogram",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }

    #[test]
    fn integrity_gauge_has_no_sample_until_a_check_completed() {
        let m = Metrics::new().unwrap();
        let before = m.render();
        assert!(!before.contains("instantdb_integrity_ok "), "{before}");
        assert!(before.contains("instantdb_integrity_last_check_timestamp_seconds 0"));
        m.observe_integrity(None, 0.1);
        assert!(!m.render().contains("instantdb_integrity_ok "));
        m.observe_integrity(Some(false), 0.1);
        let after = m.render();
        assert!(after.contains("instantdb_integrity_ok 0"), "{after}");
        assert!(!after.contains("instantdb_integrity_last_check_timestamp_seconds 0"));
    }

    #[tokio::test]
    async fn middleware_counts_requests_by_route_template() {
        let m = Metrics::new().unwrap();
        let app = Router::new()
            .route("/items/{id}", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(m.clone(), track_http));
        for id in ["1", "2", "3"] {
            let resp = app
                .clone()
                .oneshot(
                    axum::http::Request::get(format!("/items/{id}"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
        let resp = app
            .clone()
            .oneshot(
                axum::http::Request::get("/nope/secret-path")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let text = m.render();
        assert!(
            text.contains("instantdb_http_requests_total{method=\"GET\",route=\"/items/{id}\",status=\"200\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("instantdb_http_request_duration_seconds_count{method=\"GET\",route=\"/items/{id}\",status=\"200\"} 3"),
            "{text}"
        );
        assert!(
            !text.contains("secret-path"),
            "raw paths must never become labels"
        );
        assert!(!text.contains("route=\"/items/1\""));
    }
}
