//! HTTP server of the operator: `/metrics`, `/healthz`, `/readyz`.
//!
//! `/readyz` answers 200 once the operator can do its job: a leader when its controllers'
//! InstantDb watches have listed everything (before that a reconcile would act on a partial
//! view), a standby at once (it only waits for the Lease; reporting it unready would only make
//! rollouts of two replicas stall). `/healthz` answers 500 when the controller loop has ended
//! although no shutdown was asked for (the process is about to exit non-zero; the 500 covers
//! the time until then).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::error::Result;
use crate::metrics::Metrics;

/// Role of this replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Connecting to the API server, not yet in the election.
    Starting = 0,
    /// Waiting for the Lease.
    Standby = 1,
    /// Holds the Lease (or leader election is off) and runs the controllers.
    Leader = 2,
    /// Shutting down.
    Stopping = 3,
}

impl Role {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Role::Standby,
            2 => Role::Leader,
            3 => Role::Stopping,
            _ => Role::Starting,
        }
    }
}

#[derive(Default)]
struct HealthInner {
    role: AtomicU8,
    synced: AtomicBool,
    failed: AtomicBool,
}

/// What the probes report; shared between the controller, the election loop and the server.
#[derive(Clone, Default)]
pub struct Health(Arc<HealthInner>);

impl Health {
    /// A new state: starting, not synced, not failed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the role.
    pub fn set_role(&self, role: Role) {
        self.0.role.store(role as u8, Ordering::SeqCst);
    }

    /// The role.
    pub fn role(&self) -> Role {
        Role::from_u8(self.0.role.load(Ordering::SeqCst))
    }

    /// Records whether the controllers' watches have synced.
    pub fn set_synced(&self, synced: bool) {
        self.0.synced.store(synced, Ordering::SeqCst);
    }

    /// Whether the controllers' watches have synced.
    pub fn synced(&self) -> bool {
        self.0.synced.load(Ordering::SeqCst)
    }

    /// Records that a loop that should run until shutdown has ended.
    pub fn set_failed(&self) {
        self.0.failed.store(true, Ordering::SeqCst);
    }

    /// `/readyz`: status code and a one-line reason.
    pub fn readiness(&self) -> (StatusCode, &'static str) {
        match self.role() {
            Role::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting"),
            Role::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "stopping"),
            Role::Standby => (StatusCode::OK, "standby: waiting for the leader lease"),
            Role::Leader if self.synced() => (StatusCode::OK, "leader: watches synced"),
            Role::Leader => (
                StatusCode::SERVICE_UNAVAILABLE,
                "leader: waiting for the watches to sync",
            ),
        }
    }

    /// `/healthz`: status code and a one-line reason.
    pub fn liveness(&self) -> (StatusCode, &'static str) {
        if self.0.failed.load(Ordering::SeqCst) {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the controller loop has stopped",
            )
        } else {
            (StatusCode::OK, "ok")
        }
    }
}

/// Shared state of the probe server.
#[derive(Clone)]
pub struct ServerState {
    /// Metrics to render.
    pub metrics: Metrics,
    /// What the probes report.
    pub health: Health,
}

async fn metrics(
    State(s): State<ServerState>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<ServerState>) -> (StatusCode, &'static str) {
    s.health.readiness()
}

async fn healthz(State(s): State<ServerState>) -> (StatusCode, &'static str) {
    s.health.liveness()
}

/// The router.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    state: ServerState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(health: &Health, path: &str) -> (StatusCode, String) {
        let app = router(ServerState {
            metrics: Metrics::new().unwrap(),
            health: health.clone(),
        });
        let resp = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_is_unavailable_until_the_leader_has_synced_its_watches() {
        let h = Health::new();
        assert_eq!(get(&h, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        h.set_role(Role::Leader);
        let (code, body) = get(&h, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("waiting for the watches"), "{body}");
        h.set_synced(true);
        let (code, body) = get(&h, "/readyz").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("leader"), "{body}");
        h.set_role(Role::Stopping);
        assert_eq!(get(&h, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn a_standby_is_ready_and_says_so() {
        let h = Health::new();
        h.set_role(Role::Standby);
        let (code, body) = get(&h, "/readyz").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("standby"), "{body}");
    }

    #[tokio::test]
    async fn healthz_fails_once_a_loop_has_stopped() {
        let h = Health::new();
        h.set_role(Role::Leader);
        assert_eq!(get(&h, "/healthz").await, (StatusCode::OK, "ok".into()));
        h.set_failed();
        assert_eq!(
            get(&h, "/healthz").await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[tokio::test]
    async fn metrics_are_served_as_prometheus_text() {
        let (code, body) = get(&Health::new(), "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("instant_db_operator_leader"), "{body}");
    }
}
