//! The HTTP server: API under `/api`, health under `/health`, metrics at `/metrics`, admin under
//! `/admin` (bearer token). One port for all of them.

mod admin;
mod api;
mod extract;
mod health;
mod openapi;

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

pub use extract::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub ingest_permits: Arc<Semaphore>,
    pub admin_token: Option<Arc<str>>,
    pub health: Arc<crate::health::HealthMonitor>,
    pub backups: Arc<admin::BackupJobs>,
}

impl AppState {
    pub fn new(engine: Engine) -> Result<AppState> {
        let admin_token = match &engine.config.admin_token_file {
            Some(path) => {
                let token = std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!(
                        "cannot read admin token file {}: {e}",
                        path.display()
                    ))
                })?;
                let token = token.trim().to_string();
                if token.len() < 16 {
                    return Err(Error::Config(format!(
                        "the admin token in {} is shorter than 16 characters",
                        path.display()
                    )));
                }
                Some(Arc::from(token))
            }
            None => None,
        };
        let health = Arc::new(crate::health::HealthMonitor::new());
        let cfg = &engine.config.health;
        match crate::sysres::ResourceMonitor::start(
            engine.config.data_dir.clone(),
            cfg.thresholds,
            Duration::from_secs(cfg.check_interval_secs.max(1)),
        ) {
            Ok(monitor) => health.add_source(Box::new(move || {
                ("system".to_string(), system_component(&monitor))
            })),
            Err(e) => tracing::warn!(error = %e, "system resource monitoring unavailable"),
        }
        let breakers = engine.breakers.clone();
        health.add_source(Box::new(move || {
            ("circuit_breakers".to_string(), breaker_component(&breakers))
        }));
        Ok(AppState {
            ingest_permits: Arc::new(Semaphore::new(engine.config.ingest.max_concurrent)),
            engine: Arc::new(engine),
            admin_token,
            health,
            backups: Arc::new(admin::BackupJobs::default()),
        })
    }
}

fn system_component(monitor: &crate::sysres::ResourceMonitor) -> crate::health::ComponentHealth {
    use crate::health::Status;
    use crate::sysres::ResourceStatus;
    let snap = monitor.snapshot();
    crate::health::ComponentHealth {
        status: match snap.status {
            ResourceStatus::Ok | ResourceStatus::Unknown => Status::Healthy,
            ResourceStatus::Warning => Status::Degraded,
            ResourceStatus::Critical => Status::Unhealthy,
        },
        response_time_ms: snap.sample_ms,
        details: serde_json::to_value(&snap).unwrap_or_default(),
    }
}

fn breaker_component(breakers: &crate::resilience::Breakers) -> crate::health::ComponentHealth {
    use crate::resilience::BreakerState;
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
        response_time_ms: 0.0,
        details: serde_json::Value::Object(details),
    }
}

pub fn router(state: AppState) -> Router {
    let cfg = &state.engine.config.limits;
    let timeout = Duration::from_secs(cfg.request_timeout_secs);
    let metrics = state.engine.metrics.clone();
    Router::new()
        .merge(api::routes(cfg.max_upload_bytes))
        .merge(health::routes())
        .merge(openapi::routes())
        .merge(admin::routes(state.clone()))
        .route("/metrics", axum::routing::get(render_metrics))
        .fallback(|| async {
            ApiError(Error::NotFound(
                "no such endpoint; see /api/openapi.json".into(),
            ))
        })
        .layer(DefaultBodyLimit::max(cfg.max_request_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track_http,
        ))
        .with_state(state)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.http_status();
        if status.is_server_error() {
            tracing::error!(code = self.0.code(), error = %self.0, "request failed");
        }
        let body =
            serde_json::json!({"error": {"code": self.0.code(), "message": self.0.to_string()}});
        (status, axum::Json(body)).into_response()
    }
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn run_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let engine = state.engine.clone();
    {
        let (health, engine) = (state.health.clone(), engine.clone());
        tokio::task::spawn_blocking(move || health.refresh(&engine))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
    }
    let background = tokio::spawn(background_checks(state.clone()));
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::io("HTTP server failed", e))?;
    background.abort();
    // Leave the data directory tidy: WAL folded in, index persisted for a fast next start.
    tokio::task::spawn_blocking(move || -> Result<()> {
        engine.store.checkpoint()?;
        engine.persist_index()
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    Ok(())
}

/// Refreshes the health snapshot every `health.check_interval_secs` and runs the integrity check
/// every `health.integrity_interval_secs` (0: never on a timer).
async fn background_checks(state: AppState) {
    let cfg = state.engine.config.health.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.check_interval_secs.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_integrity = std::time::Instant::now();
    loop {
        tick.tick().await;
        let due = cfg.integrity_interval_secs > 0
            && last_integrity.elapsed() >= Duration::from_secs(cfg.integrity_interval_secs);
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if due {
                // The outcome is recorded in health by the call itself.
                let _ = run_integrity_check(&s);
            }
            s.health.refresh(&s.engine);
            update_gauges(&s);
        })
        .await;
        if due {
            last_integrity = std::time::Instant::now();
        }
    }
}

/// Runs the integrity check and records it in health (blocking).
pub fn run_integrity_check(s: &AppState) -> Result<crate::store::IntegrityReport> {
    let started = std::time::Instant::now();
    let report = crate::maintenance::check(&s.engine);
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
    s.engine.metrics.observe_integrity(
        report.as_ref().ok().map(|r| r.ok),
        status.duration_ms / 1000.0,
    );
    if status.ok {
        tracing::info!(ms = status.duration_ms, "integrity check passed");
    } else {
        tracing::error!(problems = ?status.problems, "integrity check FAILED");
    }
    s.health.record_integrity(status);
    s.health.refresh(&s.engine);
    report
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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

/// `instant-db serve`.
pub async fn serve(config: Config) -> Result<()> {
    let listen = config.listen.clone();
    let engine =
        tokio::task::spawn_blocking(move || Engine::open(config, ModelLoading::BestEffort))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
    let state = AppState::new(engine)?;
    if state.admin_token.is_none() {
        tracing::warn!("no admin token configured: /admin/* answers 401 to everyone");
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| Error::io(format!("cannot listen on {listen}"), e))?;
    tracing::info!(address = %listen, "instant-db serving");
    run_on(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped cleanly");
    Ok(())
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
fn update_gauges(s: &AppState) {
    let r = s.health.snapshot();
    let m = &s.engine.metrics;
    m.documents.set(r.document_count);
    m.chunks.set(r.chunk_count);
    m.index_vectors.set(s.engine.index().len() as i64);
}
