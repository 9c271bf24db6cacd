//! The HTTP server: API under `/api`, health under `/health`, metrics at `/metrics`, admin under
//! `/admin`. One port for all of them; API keys and roles in [`auth`].

mod accept;
mod admin;
mod api;
mod archive;
pub mod auth;
mod export;
mod extract;
mod health;
mod limits;
mod openapi;
mod ops;
mod restores;
mod sync;
pub mod tls;
mod verifications;
mod work;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::engine::{Engine, ModelLoading};
use crate::error::{Error, Result};

pub use extract::{ApiError, ErrorBody};

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub ingest_permits: Arc<Semaphore>,
    /// Searches running at once (`limits.max_concurrent_searches`); past it, 429.
    pub search_permits: Arc<Semaphore>,
    /// Exports streaming at once (`POST /api/export`): one; past it, 429.
    pub export_permits: Arc<Semaphore>,
    /// Work of requests on blocking threads, stopped with its request or at shutdown.
    pub work: Arc<work::WorkRegistry>,
    pub auth: Arc<auth::Auth>,
    pub health: Arc<crate::health::HealthMonitor>,
    /// Backup jobs and their verifications, each recorded in `<data>/jobs`.
    pub backups: Arc<admin::BackupJobs>,
    /// One backup or restore at a time.
    pub operations: Arc<crate::restore_job::Operations>,
    /// Restore jobs, each recorded in `<data>/jobs`.
    pub restores: Arc<crate::restore_job::RestoreJobs>,
    /// Backup verifications asked for over HTTP, each recorded in `<data>/jobs`, one
    /// running at a time.
    pub verifications: Arc<verifications::Verifications>,
    /// Taken by scheduled maintenance (integrity check, optimize): one at a time.
    pub maintenance: Arc<tokio::sync::Mutex<()>>,
}

impl AppState {
    /// The state with the keys of the engine's configuration.
    pub fn new(engine: Engine) -> Result<AppState> {
        let auth = load_auth(&engine.config)?;
        Self::with_auth(engine, auth)
    }

    pub fn with_auth(engine: Engine, auth: auth::Auth) -> Result<AppState> {
        let health = Arc::new(crate::health::HealthMonitor::new());
        let cfg = &engine.config.health;
        match crate::sysres::ResourceMonitor::start(
            engine.config.data_dir.clone(),
            cfg.thresholds,
            Duration::from_secs(cfg.check_interval_secs.max(1)),
        ) {
            Ok(monitor) => {
                let metrics = engine.metrics.clone();
                health.add_source(Box::new(move || {
                    let snap = monitor.snapshot();
                    metrics.observe_data_volume(snap.disk.free_bytes, snap.disk.total_bytes);
                    ("system".to_string(), system_component(&snap))
                }))
            }
            Err(e) => tracing::warn!(error = %e, "system resource monitoring unavailable"),
        }
        let breakers = engine.breakers.clone();
        health.add_source(Box::new(move || {
            ("circuit_breakers".to_string(), breaker_component(&breakers))
        }));
        if engine.config.archive.enabled() {
            let archive = engine.archive.clone();
            health.add_source(Box::new(move || {
                (
                    "archive".to_string(),
                    crate::archive::health_component(&archive),
                )
            }));
        }
        let restore_jobs = Arc::new(crate::restore_job::open_restore_jobs(
            &engine.config.data_dir,
            &engine.recovery,
        )?);
        let jobs = restore_jobs.clone();
        health.add_source(Box::new(move || {
            ("restore".to_string(), restores::restore_component(&jobs))
        }));
        let backups = Arc::new(admin::open_backup_jobs(&engine.config.data_dir)?);
        let verifications = Arc::new(verifications::Verifications::open(&engine.config.data_dir)?);
        let engine = Arc::new(engine);
        let tracked = engine.clone();
        health.add_source(Box::new(move || {
            ("errors".to_string(), tracked.errors.component())
        }));
        let watched = engine.clone();
        health.add_source(Box::new(move || {
            (
                "embeddings".to_string(),
                embeddings_component(&watched.store),
            )
        }));
        Ok(AppState {
            ingest_permits: Arc::new(Semaphore::new(engine.config.ingest.max_concurrent)),
            search_permits: Arc::new(Semaphore::new(
                engine.config.limits.effective_max_concurrent_searches(),
            )),
            export_permits: Arc::new(Semaphore::new(1)),
            work: Arc::new(work::WorkRegistry::default()),
            engine,
            auth: Arc::new(auth),
            health,
            backups,
            operations: Arc::new(crate::restore_job::Operations::default()),
            restores: restore_jobs,
            verifications,
            maintenance: Arc::default(),
        })
    }
}

pub use auth::{ADMIN_TOKEN_ENV, admin_token};

/// The API keys and the admin token of a configuration.
pub fn load_auth(config: &Config) -> Result<auth::Auth> {
    let token = admin_token(
        config.admin_token_file.as_deref(),
        std::env::var(ADMIN_TOKEN_ENV).ok(),
    )?;
    auth::Auth::load(config, token)
}

/// How the host's resources bear on serving. Only a critically full disk makes the engine
/// unhealthy (and unready), because writes and WAL checkpoints then fail. A saturated CPU or
/// high memory use is what a busy engine looks like during a large ingest: taking it out of
/// its Service for that would turn load into an outage, so they only degrade it.
fn system_status(snap: &crate::sysres::ResourceSnapshot) -> crate::health::Status {
    use crate::health::Status;
    use crate::sysres::ResourceStatus;
    if snap.disk.status == ResourceStatus::Critical {
        Status::Unhealthy
    } else if snap.status >= ResourceStatus::Warning {
        Status::Degraded
    } else {
        Status::Healthy
    }
}

fn system_component(snap: &crate::sysres::ResourceSnapshot) -> crate::health::ComponentHealth {
    crate::health::ComponentHealth {
        status: system_status(snap),
        response_time_ms: snap.sample_ms,
        details: serde_json::to_value(snap).unwrap_or_default(),
    }
}

/// Chunks stored without a vector (ingested while the model was down or failing): they are
/// found by keyword search only until `instant-db repair` embeds them, so the engine says it.
fn embeddings_component(store: &crate::store::Store) -> crate::health::ComponentHealth {
    let t = std::time::Instant::now();
    let (status, details) = match store.stats() {
        Ok(st) => {
            let missing = (st.chunks - st.embeddings).max(0);
            let details = if missing > 0 {
                serde_json::json!({
                    "chunks": st.chunks,
                    "chunks_without_vectors": missing,
                    "action": "these chunks are found by keyword search only: run `instant-db repair` once the model works",
                })
            } else {
                serde_json::json!({"chunks": st.chunks, "chunks_without_vectors": 0})
            };
            let status = if missing > 0 {
                crate::health::Status::Degraded
            } else {
                crate::health::Status::Healthy
            };
            (status, details)
        }
        // The database component reports an unreadable store; this one has nothing to add.
        Err(e) => (
            crate::health::Status::Healthy,
            serde_json::json!({"unknown": e.to_string()}),
        ),
    };
    crate::health::ComponentHealth {
        status,
        response_time_ms: t.elapsed().as_secs_f64() * 1000.0,
        details,
    }
}

fn breaker_component(breakers: &crate::resilience::Breakers) -> crate::health::ComponentHealth {
    use crate::resilience::BreakerState;
    let t = std::time::Instant::now();
    let statuses = breakers.statuses();
    let mut details = serde_json::Map::new();
    for st in &statuses {
        // `{name: state}` as before, plus the full status under `breakers`
        details.insert(st.dependency.clone(), st.state.as_str().into());
    }
    details.insert(
        "breakers".into(),
        serde_json::to_value(&statuses).unwrap_or_default(),
    );
    crate::health::ComponentHealth {
        status: if statuses.iter().all(|s| s.state == BreakerState::Closed) {
            crate::health::Status::Healthy
        } else {
            crate::health::Status::Degraded
        },
        response_time_ms: t.elapsed().as_secs_f64() * 1000.0,
        details: serde_json::Value::Object(details),
    }
}

pub fn router(state: AppState) -> Router {
    let cfg = &state.engine.config.limits;
    let timeout = Duration::from_secs(cfg.request_timeout_secs);
    let metrics = state.engine.metrics.clone();
    Router::new()
        .merge(api::routes(cfg.max_upload_bytes))
        .merge(export::routes())
        .merge(health::routes())
        .merge(openapi::routes())
        .merge(admin::routes())
        .route("/metrics", axum::routing::get(render_metrics))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            restores::refuse_writes_during_restore,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            health::refuse_writes_while_the_index_loads,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::track_errors,
        ))
        .fallback(|| async {
            ApiError(Error::NotFound(
                "no such endpoint; see /api/openapi.json".into(),
            ))
        })
        // On the whole router (fallback included), inside the JSON and metrics layers so that
        // refusals are counted and logged like any answer.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_role,
        ))
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            let message =
                format!("{method} is not allowed on this endpoint; see /api/openapi.json");
            ErrorBody::new("method_not_allowed", message)
                .with_status(StatusCode::METHOD_NOT_ALLOWED)
        })
        .layer(DefaultBodyLimit::max(cfg.max_request_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        // Before auth and routing: an oversized head is refused before anything reads it.
        .layer(axum::middleware::from_fn_with_state(
            limits::HeadLimits {
                max_uri_bytes: cfg.max_uri_bytes,
                max_header_bytes: cfg.max_header_bytes,
            },
            limits::refuse_oversized_heads,
        ))
        // Outside the timeout and the extractors, so their plain-text answers become JSON too.
        .layer(axum::middleware::map_response_with_state(
            cfg.request_timeout_secs,
            json_errors,
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track_http,
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(record_response)
                // Server errors are logged once, by `ApiError`, with their cause.
                .on_failure(()),
        )
        .with_state(state)
}

/// One span per request. Its fields are the route template (bounded, unlike the raw path),
/// the method, and, once answered, the status and latency; closing it logs its timing.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or(crate::metrics::UNMATCHED_ROUTE, |m| m.as_str());
    // Probes and scrapes come every few seconds; at INFO they would drown the log.
    if route.starts_with("/health") || route == "/metrics" {
        tracing::debug_span!(
            "http_request",
            method = %req.method(),
            route = %route,
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        )
    } else {
        tracing::info_span!(
            "http_request",
            method = %req.method(),
            route = %route,
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        )
    }
}

fn record_response(resp: &Response, latency: Duration, span: &tracing::Span) {
    span.record("status", resp.status().as_u16());
    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
}

/// Turns every error answer that is not JSON yet (axum's rejections of query strings, content
/// types and bodies, the 503 of the timeout layer) into the API's `{"error": {code, message}}`,
/// keeping its status.
async fn json_errors(
    axum::extract::State(timeout_secs): axum::extract::State<u64>,
    resp: Response,
) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    // Rejection texts are short; anything longer is cut rather than buffered.
    let text = match axum::body::to_bytes(resp.into_body(), 16 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let (code, message) = match status {
        StatusCode::SERVICE_UNAVAILABLE if text.is_empty() => (
            "timeout",
            format!("the request took longer than {timeout_secs} s (limits.request_timeout_secs)"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", text),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", text),
        StatusCode::NOT_FOUND => ("not_found", text),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", text),
        StatusCode::TOO_MANY_REQUESTS => ("too_many_requests", text),
        StatusCode::URI_TOO_LONG => ("uri_too_long", text),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ("headers_too_large", text),
        s if s.is_client_error() => ("invalid_input", text),
        _ => ("internal_error", text),
    };
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        message
    };
    ErrorBody::new(code, message).with_status(status)
}

/// `Retry-After` of a 503 `index_loading` (a rebuild takes about 20 s per 100k vectors).
const INDEX_LOADING_RETRY_AFTER_SECS: &str = "5";

/// `Retry-After` of a 429 (ingest or search slots all busy).
const TOO_MANY_RETRY_AFTER_SECS: &str = "1";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.http_status();
        if status.is_server_error() {
            tracing::error!(code = self.0.code(), error = %self.0, "request failed");
        }
        let mut resp = ErrorBody::new(self.0.code(), self.0.to_string()).with_status(status);
        if status.is_server_error() {
            // for `track_errors`, which knows the route
            resp.extensions_mut().insert(ops::TrackedError {
                kind: self.0.code(),
                message: self.0.to_string(),
            });
        }
        restores::retry_after(&mut resp, self.0.code());
        if self.0.code() == "index_loading" {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(INDEX_LOADING_RETRY_AFTER_SECS),
            );
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            // Ingest and search slots free in seconds; a client should come back, not give up.
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(TOO_MANY_RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

/// A server of this process alone (the demo, benchmarks): a listener on a free local port and
/// its state with one random read key, which the caller's own client sends. Keys configured for
/// `serve` neither block nor open it.
pub async fn local_read_only(
    engine: Engine,
) -> Result<(
    tokio::net::TcpListener,
    std::net::SocketAddr,
    String,
    AppState,
)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::io("bind a local port", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("local address", e))?;
    let key = {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    let auth = auth::Auth::from_keys(&[(auth::Role::Read, key.as_str())], false);
    let state = AppState::with_auth(engine, auth)?;
    Ok((listener, addr, key, state))
}

/// Serves until `shutdown` resolves, then gives in-flight requests `shutdown.grace_period_secs`
/// to finish. Past that they are abandoned: writes are refused from then on (a document is one
/// transaction, so none is stored by half), the WAL is checkpointed and this returns `Ok`.
/// `listener` is a `TcpListener` for HTTP or a [`tls::TlsListener`] for HTTPS.
/// Connections are served by [`accept::serve`], which answers the request heads the HTTP
/// library refuses with the API's JSON error too.
pub async fn run_on<L>(
    listener: L,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let engine = state.engine.clone();
    if engine.index_loading().is_some() {
        ops::start_index_load(state.clone())?;
    }
    {
        // The quick check runs before the first health sample, so damage found at start makes
        // the engine unready from its first answer rather than an integrity interval later.
        let st = state.clone();
        tokio::task::spawn_blocking(move || {
            let _ = run_integrity_check_at(&st, crate::store::CheckLevel::Quick);
            st.health.refresh(&st.engine);
            st.engine.persist_index_if_rebuilt();
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    }
    let refresher = tokio::spawn(health_refresh(state.clone()));
    let archiver = tokio::spawn(crate::archive::run(engine.clone()));
    let health_cfg = &engine.config.health;
    let integrity = tokio::spawn(ops::run_periodically(
        state.clone(),
        health_cfg.integrity_interval_secs,
        |s| {
            let _ = run_integrity_check(s);
        },
    ));
    let optimizer = tokio::spawn(ops::run_periodically(
        state.clone(),
        health_cfg.optimize_interval_secs,
        ops::optimize,
    ));
    let grace = Duration::from_secs(engine.config.shutdown.grace_period_secs);
    let (signalled_tx, mut signalled_rx) = tokio::sync::watch::channel(false);
    let head = &engine.config.limits;
    let budget = accept::HeadBudget::new(limits::HeadLimits {
        max_uri_bytes: head.max_uri_bytes,
        max_header_bytes: head.max_header_bytes,
    });
    let server = accept::serve(listener, router(state.clone()), budget, async move {
        shutdown.await;
        let _ = signalled_tx.send(true);
    });
    let deadline = async move {
        if signalled_rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = server => {}
        () = deadline => {
            tracing::warn!(
                grace_period_secs = grace.as_secs(),
                "grace period over: abandoning the requests still in flight"
            );
            // Their blocking work stops at its next document or batch instead of running on
            // (the runtime waits for blocking threads before the process can exit).
            state.work.cancel_all();
        }
    }
    refresher.abort();
    integrity.abort();
    optimizer.abort();
    archiver.abort();
    if engine.config.archive.enabled() {
        // What the last requests wrote goes out now rather than at the next start (bounded:
        // a failing destination keeps it on the volume, shipped at the next start).
        match tokio::time::timeout(
            Duration::from_secs(10),
            crate::archive::final_flush(engine.clone()),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "final archive flush failed; the changes are shipped at the next start")
            }
            Err(_) => tracing::warn!(
                "final archive flush timed out; the changes are shipped at the next start"
            ),
        }
    }
    let max_ingests = engine.config.ingest.max_concurrent;
    tokio::task::spawn_blocking(move || -> Result<()> {
        // Abandoned work may still be running on blocking threads; from here on it cannot
        // commit anything, so the checkpoint below leaves an empty WAL behind.
        engine.store.close_writes()?;
        let ingesting = max_ingests.saturating_sub(state.ingest_permits.available_permits());
        engine.store.checkpoint()?;
        if ingesting == 0 {
            // Persisted for a fast next start.
            engine.persist_index()
        } else {
            // An abandoned ingest may not have added its last document to the index yet; the
            // next start rebuilds the index from the database instead of trusting a dump.
            tracing::warn!(
                ingesting,
                "ingests abandoned; the vector index is rebuilt at the next start"
            );
            Ok(())
        }
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    Ok(())
}

/// Refreshes the health snapshot every `health.check_interval_secs`. It runs apart from the
/// integrity check, so a long check does not leave the snapshot stale.
async fn health_refresh(state: AppState) {
    let cfg = state.engine.config.health.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.check_interval_secs.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            s.health.refresh(&s.engine);
            update_gauges(&s);
        })
        .await;
    }
}

/// Runs the full integrity check and records it in health (blocking).
pub fn run_integrity_check(s: &AppState) -> Result<crate::store::IntegrityReport> {
    run_integrity_check_at(s, crate::store::CheckLevel::Full)
}

/// Runs the integrity check at `level` and records it in health and metrics (blocking). A file
/// SQLite reports damaged is closed: data requests then answer 503 with what to do until a
/// restore, instead of failing one by one wherever they touch a bad page.
#[tracing::instrument(skip_all, fields(ok = tracing::field::Empty, level = ?level))]
pub fn run_integrity_check_at(
    s: &AppState,
    level: crate::store::CheckLevel,
) -> Result<crate::store::IntegrityReport> {
    let started = std::time::Instant::now();
    let report = crate::maintenance::check_at(&s.engine, level);
    // During a restore the file may be the one being swapped in: the restore's own check
    // decides about it, and closing the store under it would roll a good restore back.
    let restoring = s
        .operations
        .current()
        .is_some_and(|r| r.kind == crate::restore_job::OperationKind::Restore);
    if let Ok(r) = &report
        && !restoring
        && s.engine.store.damaged().is_none()
        && let Some(first) = r.problems.iter().find(|p| p.starts_with("sqlite:"))
        && let Err(e) = s
            .engine
            .store
            .mark_damaged(first.trim_start_matches("sqlite: "))
    {
        tracing::error!(error = %e, "could not close the damaged database");
    }
    let status = match &report {
        Ok(r) => crate::health::IntegrityStatus {
            ok: r.ok,
            checked_at: crate::health::now(),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            problems: r.problems.clone(),
        },
        Err(e) => crate::health::IntegrityStatus {
            ok: false,
            checked_at: crate::health::now(),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            problems: vec![e.to_string()],
        },
    };
    tracing::Span::current().record("ok", status.ok);
    s.engine.metrics.observe_integrity(
        report.as_ref().ok().map(|r| r.ok),
        status.duration_ms / 1000.0,
    );
    if status.ok {
        tracing::info!(ms = status.duration_ms, "integrity check passed");
    } else {
        s.engine
            .track_error("integrity", "integrity_failed", &status.problems.join("; "));
        tracing::error!(problems = ?status.problems, "integrity check FAILED");
    }
    s.health.record_integrity(status);
    s.health.refresh(&s.engine);
    report
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not when the
/// future is first polled: the socket accepts connections from `bind` on, and a SIGTERM from
/// then until the server loop starts must shut down cleanly rather than kill the process.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let ctrl_c = tokio::spawn(tokio::signal::ctrl_c());
    async move {
        #[cfg(unix)]
        let term = async move {
            match term {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        tracing::info!("shutdown requested: finishing in-flight requests");
    }
}

/// `instant-db serve`.
pub async fn serve(config: Config) -> Result<()> {
    let shutdown = shutdown_signal();
    let listen = config.listen.clone();
    // Before the engine opens: a refusal should not wait for the model to load.
    let auth = load_auth(&config)?;
    auth::check_exposure(&listen, auth.is_open(), config.auth.insecure_no_auth)?;
    if !auth.has_role(auth::Role::Admin) {
        tracing::warn!("no admin token configured: /admin/* answers 401 to everyone");
    }
    if auth.is_open() {
        tracing::warn!(address = %listen, "no API keys configured: /api/* is open to anyone who can reach this address");
    }
    if let Some(file) = config.logging.level_file.clone() {
        tokio::spawn(crate::log_level::follow_level_file(
            file,
            config.logging.effective_level(),
        ));
    }
    // Also before the engine opens: a wrong certificate or key is a startup error (exit 2).
    let tls = config.tls.files().map(tls::acceptor).transpose()?;
    // The vector index loads behind the listener (see `start_index_load`).
    let engine = tokio::task::spawn_blocking(move || {
        Engine::open_deferred(config, ModelLoading::BestEffort)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    let state = AppState::with_auth(engine, auth)?;
    // Behind the listener, like the index: the health endpoints need no query session.
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || prepare_query_session(&engine));
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| Error::io(format!("cannot listen on {listen}"), e))?;
    match tls {
        Some(acceptor) => {
            tracing::info!(address = %listen, scheme = "https", "instant-db serving");
            run_on(tls::TlsListener::new(listener, acceptor), state, shutdown).await?;
        }
        None => {
            tracing::info!(address = %listen, scheme = "http", "instant-db serving");
            run_on(listener, state, shutdown).await?;
        }
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Builds the query session before the first query: a query arriving during an ingest would
/// otherwise wait for it to be built. On failure the server carries on (a query retries the
/// build and answers its error).
pub fn prepare_query_session(engine: &Engine) {
    if let Some(Err(e)) = engine.embedder().map(|e| e.prepare_query_session()) {
        tracing::warn!(error = %e, "cannot build the query session yet; queries will retry");
    }
}

async fn render_metrics(
    axum::extract::State(s): axum::extract::State<AppState>,
) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::Metrics::CONTENT_TYPE,
        )],
        s.engine.metrics.render(),
    )
}

/// Publishes the database sizes as gauges (called with each health refresh).
pub(super) fn update_gauges(s: &AppState) {
    let r = s.health.snapshot();
    let m = &s.engine.metrics;
    m.documents.set(r.document_count);
    m.chunks.set(r.chunk_count);
    m.index_vectors.set(s.engine.index().len() as i64);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod system_status_tests {
    use super::system_status;
    use crate::health::Status;
    use crate::sysres::{CpuSample, DiskSample, MemorySample, ResourceSnapshot, ResourceStatus};

    fn snapshot(
        cpu: ResourceStatus,
        memory: ResourceStatus,
        disk: ResourceStatus,
    ) -> ResourceSnapshot {
        ResourceSnapshot {
            sampled_at: chrono::Utc::now(),
            sample_ms: 0.1,
            cpu: CpuSample {
                percent: 0.0,
                cpus: 2,
                status: cpu,
            },
            memory: MemorySample {
                used_bytes: 0,
                total_bytes: 1,
                percent: 0.0,
                process_rss_bytes: 0,
                status: memory,
            },
            disk: DiskSample {
                path: "/data".into(),
                mount_point: "/".into(),
                free_bytes: 0,
                total_bytes: 1,
                free_percent: 0.0,
                status: disk,
            },
            status: cpu.max(memory).max(disk),
        }
    }

    #[test]
    fn a_saturated_cpu_or_full_memory_degrades_but_never_makes_the_engine_unhealthy() {
        use ResourceStatus::{Critical, Ok};
        assert_eq!(system_status(&snapshot(Critical, Ok, Ok)), Status::Degraded);
        assert_eq!(system_status(&snapshot(Ok, Critical, Ok)), Status::Degraded);
        assert_eq!(
            system_status(&snapshot(Critical, Critical, Ok)),
            Status::Degraded
        );
    }

    #[test]
    fn only_a_critically_full_disk_makes_the_engine_unhealthy() {
        use ResourceStatus::{Critical, Ok, Unknown, Warning};
        assert_eq!(
            system_status(&snapshot(Ok, Ok, Critical)),
            Status::Unhealthy
        );
        assert_eq!(system_status(&snapshot(Ok, Ok, Warning)), Status::Degraded);
        assert_eq!(system_status(&snapshot(Ok, Ok, Ok)), Status::Healthy);
        assert_eq!(
            system_status(&snapshot(Unknown, Unknown, Unknown)),
            Status::Healthy
        );
    }
}
