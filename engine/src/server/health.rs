//! Health endpoints for probes and people. Probes only read a snapshot that a background task
//! refreshes, so none of them does I/O or takes more than microseconds.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::AppState;
use crate::health::{HealthReport, Status};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health/detailed", get(detailed))
}

fn code(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// 200 when the engine can serve (possibly degraded), 503 when it cannot.
#[utoipa::path(get, path = "/health", responses((status = 200, description = "healthy or degraded"), (status = 503, description = "unhealthy")))]
pub async fn health(State(s): State<AppState>) -> (StatusCode, axum::Json<serde_json::Value>) {
    let r = s.health.snapshot();
    (
        code(r.status != Status::Unhealthy),
        axum::Json(serde_json::json!({"status": r.status, "reasons": r.reasons})),
    )
}

/// The process is up and answering.
#[utoipa::path(get, path = "/health/live", responses((status = 200, description = "alive")))]
pub async fn live() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "alive"}))
}

/// Ready for traffic: database open and migrated, index loaded, integrity not failed, disk not full.
#[utoipa::path(get, path = "/health/ready", responses((status = 200, description = "ready"), (status = 503, description = "not ready, with reasons")))]
pub async fn ready(State(s): State<AppState>) -> (StatusCode, axum::Json<serde_json::Value>) {
    let r = s.health.snapshot();
    (
        code(r.ready),
        axum::Json(serde_json::json!({"ready": r.ready, "reasons": r.reasons})),
    )
}

/// Every component with its status, timing and details.
#[utoipa::path(get, path = "/health/detailed", responses((status = 200, body = HealthReport), (status = 503, body = HealthReport)))]
pub async fn detailed(State(s): State<AppState>) -> (StatusCode, axum::Json<HealthReport>) {
    let r = s.health.snapshot();
    (
        code(r.status != Status::Unhealthy),
        axum::Json((*r).clone()),
    )
}
