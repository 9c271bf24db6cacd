//! Client of the engine's health endpoint (`GET /health/detailed`, bearer admin token).
//!
//! The parsing is lenient: unknown fields are ignored, and a few shapes are accepted for each
//! field, so the operator keeps working while the engine's report grows.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::error::{Error, Result};

/// Overall health the engine reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HealthStatus {
    /// Everything works.
    Healthy,
    /// Serving, with a problem (for example keyword search only, model missing).
    Degraded,
    /// Not serving.
    Unhealthy,
    /// Missing or unrecognised.
    #[default]
    Unknown,
}

impl HealthStatus {
    fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "ok" | "healthy" | "up" | "pass" | "ready" => HealthStatus::Healthy,
            "degraded" | "warn" | "warning" => HealthStatus::Degraded,
            "unhealthy" | "down" | "fail" | "failed" | "error" | "critical" => {
                HealthStatus::Unhealthy
            }
            _ => HealthStatus::Unknown,
        }
    }
}

/// Result of the engine's latest integrity check.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IntegrityCheck {
    /// When it ran.
    pub at: Option<Timestamp>,
    /// Whether it passed (unknown when the engine did not say).
    pub ok: Option<bool>,
    /// Details when it failed.
    pub message: Option<String>,
}

/// The parts of `/health/detailed` the operator uses.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DetailedHealth {
    /// Overall status.
    pub status: HealthStatus,
    /// Status of each component (database, vector_index, embedding_model, disk...).
    pub components: BTreeMap<String, HealthStatus>,
    /// Number of documents.
    pub document_count: Option<i64>,
    /// Latest integrity check.
    pub last_integrity_check: Option<IntegrityCheck>,
    /// Engine version.
    pub version: Option<String>,
}

impl DetailedHealth {
    /// Names of the components that are not healthy.
    pub fn unhealthy_components(&self) -> Vec<String> {
        self.components
            .iter()
            .filter(|(_, s)| matches!(s, HealthStatus::Degraded | HealthStatus::Unhealthy))
            .map(|(n, s)| {
                format!(
                    "{n}={}",
                    if *s == HealthStatus::Degraded {
                        "degraded"
                    } else {
                        "unhealthy"
                    }
                )
            })
            .collect()
    }
}

fn status_of(v: &Value) -> HealthStatus {
    match v {
        Value::String(s) => HealthStatus::parse(s),
        Value::Bool(true) => HealthStatus::Healthy,
        Value::Bool(false) => HealthStatus::Unhealthy,
        Value::Object(o) => o
            .get("status")
            .or_else(|| o.get("state"))
            .map(status_of)
            .or_else(|| o.get("healthy").or_else(|| o.get("ok")).map(status_of))
            .unwrap_or_default(),
        _ => HealthStatus::Unknown,
    }
}

fn timestamp(v: &Value) -> Option<Timestamp> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64().and_then(|s| Timestamp::from_second(s).ok()),
        _ => None,
    }
}

fn integrity(v: &Value) -> Option<IntegrityCheck> {
    match v {
        Value::Null => None,
        Value::String(_) | Value::Number(_) => Some(IntegrityCheck {
            at: timestamp(v),
            ..Default::default()
        }),
        Value::Object(o) => {
            let at = ["at", "time", "checked_at", "timestamp", "completed_at"]
                .iter()
                .find_map(|k| o.get(*k).and_then(timestamp));
            let ok = ["ok", "passed", "healthy"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_bool))
                .or_else(|| match o.get("status").map(status_of) {
                    Some(HealthStatus::Healthy) => Some(true),
                    Some(HealthStatus::Unhealthy | HealthStatus::Degraded) => Some(false),
                    _ => None,
                });
            let message = ["message", "error", "details"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_str).map(str::to_string));
            Some(IntegrityCheck { at, ok, message })
        }
        _ => None,
    }
}

/// Parses a `/health/detailed` body.
pub fn parse_detailed_health(body: &Value) -> DetailedHealth {
    let mut components = BTreeMap::new();
    match body.get("components") {
        Some(Value::Object(map)) => {
            for (k, v) in map {
                components.insert(k.clone(), status_of(v));
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                if let Some(name) = item.get("name").and_then(Value::as_str) {
                    components.insert(name.to_string(), status_of(item));
                }
            }
        }
        _ => {}
    }
    let document_count = ["document_count", "documentCount", "documents"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_i64))
        .or_else(|| {
            body.pointer("/stats/document_count")
                .and_then(Value::as_i64)
        });
    let last_integrity_check = ["last_integrity_check", "lastIntegrityCheck", "integrity"]
        .iter()
        .find_map(|k| body.get(*k).and_then(integrity))
        .or_else(|| body.pointer("/components/integrity").and_then(integrity));
    DetailedHealth {
        status: body.get("status").map(status_of).unwrap_or_default(),
        components,
        document_count,
        last_integrity_check,
        version: body
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// What the controller needs from an engine. A trait so tests can use a fake engine.
pub trait EngineApi: Send + Sync {
    /// `GET http://<pod_ip>:<port>/health/detailed` with the admin token.
    fn detailed_health<'a>(
        &'a self,
        pod_ip: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<DetailedHealth>>;
}

/// HTTP implementation of [`EngineApi`].
#[derive(Clone, Debug)]
pub struct HttpEngineClient {
    http: reqwest::Client,
    port: u16,
}

impl HttpEngineClient {
    /// A client with a short timeout (health must answer fast).
    pub fn new(port: u16, timeout: Duration) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Engine(format!("cannot build HTTP client: {e}")))?;
        Ok(Self { http, port })
    }
}

impl EngineApi for HttpEngineClient {
    fn detailed_health<'a>(
        &'a self,
        pod_ip: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<DetailedHealth>> {
        Box::pin(async move {
            let host = if pod_ip.contains(':') {
                format!("[{pod_ip}]")
            } else {
                pod_ip.to_string()
            };
            let url = format!("http://{host}:{}/health/detailed", self.port);
            let resp = self
                .http
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| Error::Engine(format!("GET {url}: {e}")))?;
            let code = resp.status();
            // 503 still carries the JSON report of a degraded engine.
            let body: Value = resp.json().await.map_err(|e| {
                Error::Engine(format!("GET {url}: HTTP {code}, body is not JSON: {e}"))
            })?;
            if code.is_client_error() {
                return Err(Error::Engine(format!("GET {url}: HTTP {code}")));
            }
            Ok(parse_detailed_health(&body))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_map_components_and_object_integrity() {
        let h = parse_detailed_health(&json!({
            "status": "degraded",
            "components": {"database": {"status": "ok"}, "embedding_model": {"status": "degraded", "message": "no model"}},
            "document_count": 42,
            "last_integrity_check": {"at": "2026-01-02T03:04:05Z", "ok": false, "message": "bad page"},
            "unknown": [1, 2]
        }));
        assert_eq!(h.status, HealthStatus::Degraded);
        assert_eq!(h.document_count, Some(42));
        assert_eq!(
            h.unhealthy_components(),
            vec!["embedding_model=degraded".to_string()]
        );
        let i = h.last_integrity_check.unwrap();
        assert_eq!(i.ok, Some(false));
        assert_eq!(i.at.unwrap().to_string(), "2026-01-02T03:04:05Z");
    }

    #[test]
    fn parses_list_components_and_string_integrity() {
        let h = parse_detailed_health(&json!({
            "status": "healthy",
            "components": [{"name": "database", "status": "up"}],
            "documents": 7,
            "last_integrity_check": "2026-01-02T03:04:05Z"
        }));
        assert_eq!(h.status, HealthStatus::Healthy);
        assert_eq!(h.components["database"], HealthStatus::Healthy);
        assert_eq!(h.document_count, Some(7));
        assert_eq!(h.last_integrity_check.unwrap().ok, None);
        assert_eq!(parse_detailed_health(&json!({})), DetailedHealth::default());
    }
}
