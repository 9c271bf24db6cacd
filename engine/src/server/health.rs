//! Health endpoints for probes and people. Probes only read a snapshot that a background task
//! refreshes, so none of them does I/O or takes more than microseconds.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use serde::Serialize;

use super::AppState;
use crate::error::Error;
use crate::health::{HealthReport, Status};
use crate::index::LoadStatus;

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

/// The answer of `/health`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HealthAnswer {
    pub status: Status,
    pub reasons: Vec<String>,
}

/// The answer of `/health/live`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LiveAnswer {
    /// Always `alive`.
    pub status: &'static str,
}

/// The answer of `/health/ready`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReadyAnswer {
    pub ready: bool,
    pub reasons: Vec<String>,
    /// How far the vector index load is; only while it loads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_loading: Option<LoadStatus>,
}

/// 200 when the engine can serve (possibly degraded), 503 when it cannot.
#[utoipa::path(get, path = "/health", responses((status = 200, body = HealthAnswer, description = "healthy or degraded"), (status = 503, body = HealthAnswer, description = "unhealthy")))]
pub async fn health(State(s): State<AppState>) -> (StatusCode, axum::Json<HealthAnswer>) {
    let r = s.health.snapshot();
    (
        code(r.status != Status::Unhealthy),
        axum::Json(HealthAnswer {
            status: r.status,
            reasons: r.reasons.clone(),
        }),
    )
}

/// The process is up and answering.
#[utoipa::path(get, path = "/health/live", responses((status = 200, body = LiveAnswer, description = "alive")))]
pub async fn live() -> axum::Json<LiveAnswer> {
    axum::Json(LiveAnswer { status: "alive" })
}

/// Ready for traffic: database open and migrated, index loaded, integrity not failed, disk not full.
/// While the index loads, `index_loading` says how far it is (read live, not from the snapshot).
#[utoipa::path(get, path = "/health/ready", responses((status = 200, body = ReadyAnswer, description = "ready"), (status = 503, body = ReadyAnswer, description = "not ready, with reasons")))]
pub async fn ready(State(s): State<AppState>) -> (StatusCode, axum::Json<ReadyAnswer>) {
    let r = s.health.snapshot();
    let loading = s.engine.index_loading();
    let ready = r.ready && loading.is_none();
    let reasons = match &loading {
        // the load first, then the other reasons of the snapshot, which still count
        Some(st) => std::iter::once(st.describe())
            .chain(
                r.reasons
                    .iter()
                    .filter(|m| !m.starts_with("the vector index is loading"))
                    .cloned(),
            )
            .collect(),
        None => r.reasons.clone(),
    };
    (
        code(ready),
        axum::Json(ReadyAnswer {
            ready,
            reasons,
            index_loading: loading,
        }),
    )
}

/// While the vector index loads after the start, writes answer `503 index_loading` with
/// `Retry-After` before any of their work (an upload is not even read). The engine refuses
/// them too; this answers early.
pub async fn refuse_writes_while_the_index_loads(
    State(s): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if super::restores::is_write(req.method(), req.uri().path())
        && let Some(st) = s.engine.index_loading()
    {
        return super::ApiError(Error::IndexLoading(format!(
            "{}; writes are refused until it is done (nothing was written), keyword search works \
             meanwhile",
            st.describe()
        )))
        .into_response();
    }
    next.run(req).await
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
