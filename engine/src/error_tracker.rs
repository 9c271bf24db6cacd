//! Errors grouped by component and kind, with counts and first/last seen, for
//! `/health/detailed` (`errors`) and `instantdb_errors_total{component,kind}`.
//!
//! - A component is where the error surfaced: an API route template (`/api/search`), or a
//!   subsystem (`embedding`, `integrity`, `maintenance`, `vector_index`). A kind is the error's
//!   stable code (`database_error`, `inference_failed`, ...). Both are bounded sets, so the
//!   groups and the metric's label values are too; past [`MAX_GROUPS`] new groups are folded
//!   into one `other` group rather than grow without end.
//! - Only failures of the engine are tracked: answers that are the caller's doing (4xx) are
//!   not errors of the engine and would drown the ones that are.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// Groups kept; more are counted under component and kind `other`.
pub const MAX_GROUPS: usize = 200;
/// Groups shown in `/health/detailed` (the most recently seen).
const SHOWN: usize = 20;

/// One group of errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ErrorGroup {
    pub component: String,
    pub kind: String,
    pub count: u64,
    /// RFC 3339, seconds.
    pub first_seen: String,
    pub last_seen: String,
    /// The message of the last one (errors name no credentials: see `Error`'s messages).
    pub last_message: String,
}

/// The tracker of one engine. Cheap to share by reference; recording takes a short lock.
#[derive(Debug, Default)]
pub struct ErrorTracker {
    groups: Mutex<BTreeMap<(String, String), ErrorGroup>>,
}

impl ErrorTracker {
    /// Counts one error of `kind` in `component`; returns the labels it was counted under
    /// (`other`/`other` once [`MAX_GROUPS`] groups exist).
    pub fn record(&self, component: &str, kind: &str, message: &str) -> (String, String) {
        let now = crate::health::now();
        let mut g = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (component.to_string(), kind.to_string());
        if !g.contains_key(&key) && g.len() >= MAX_GROUPS {
            key = ("other".to_string(), "other".to_string());
        }
        let entry = g.entry(key.clone()).or_insert_with(|| ErrorGroup {
            component: key.0.clone(),
            kind: key.1.clone(),
            count: 0,
            first_seen: now.clone(),
            last_seen: now.clone(),
            last_message: String::new(),
        });
        entry.count += 1;
        entry.last_seen = now;
        // Bounded: a message is a line, not a dump.
        entry.last_message = message.chars().take(500).collect();
        key
    }

    /// Every group, most recently seen first.
    pub fn groups(&self) -> Vec<ErrorGroup> {
        let g = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<ErrorGroup> = g.values().cloned().collect();
        out.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then_with(|| b.count.cmp(&a.count))
        });
        out
    }

    /// The `errors` component of `/health/detailed`: informational (always healthy: a failure
    /// that matters makes its own component degraded or unhealthy), the total, and the most
    /// recent groups.
    pub fn component(&self) -> crate::health::ComponentHealth {
        let t = std::time::Instant::now();
        let groups = self.groups();
        let total: u64 = groups.iter().map(|g| g.count).sum();
        let shown: Vec<&ErrorGroup> = groups.iter().take(SHOWN).collect();
        crate::health::ComponentHealth {
            status: crate::health::Status::Healthy,
            response_time_ms: t.elapsed().as_secs_f64() * 1000.0,
            details: serde_json::json!({
                "total": total,
                "groups": groups.len(),
                "recent": shown,
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_grouped_by_component_and_kind_with_counts_and_last_message() {
        let t = ErrorTracker::default();
        t.record("/api/search", "database_error", "disk I/O error");
        t.record("/api/search", "database_error", "database is locked");
        t.record("embedding", "inference_failed", "allocation failed");
        let groups = t.groups();
        assert_eq!(groups.len(), 2);
        let db = groups
            .iter()
            .find(|g| g.component == "/api/search")
            .unwrap();
        assert_eq!(db.kind, "database_error");
        assert_eq!(db.count, 2);
        assert_eq!(db.last_message, "database is locked");
        assert!(db.first_seen <= db.last_seen);
        let c = t.component();
        assert_eq!(c.details["total"], 3);
        assert_eq!(c.details["groups"], 2);
        assert_eq!(c.details["recent"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn engine_failures_show_in_health_detailed_and_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let engine = crate::engine::Engine::open(
            crate::config::Config {
                data_dir: dir.path().to_path_buf(),
                ..Default::default()
            },
            crate::engine::ModelLoading::Skip,
        )
        .unwrap();
        // No model: an ingest's embedding call fails, and is tracked.
        assert!(engine.embed_texts(&["walrus"]).is_err());
        let state = crate::server::AppState::new(engine).unwrap();
        let r = state.health.refresh(&state.engine);
        let c = &r.components["errors"];
        assert_eq!(c.status, crate::health::Status::Healthy);
        assert_eq!(c.details["total"], 1, "{}", c.details);
        assert_eq!(c.details["recent"][0]["component"], "embedding");
        assert_eq!(c.details["recent"][0]["kind"], "model_unavailable");
        let text = state.engine.metrics.render();
        assert!(
            text.contains(
                r#"instantdb_errors_total{component="embedding",kind="model_unavailable"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn groups_are_bounded() {
        let t = ErrorTracker::default();
        for i in 0..MAX_GROUPS + 10 {
            t.record(&format!("c{i}"), "k", "m");
        }
        let groups = t.groups();
        assert_eq!(groups.len(), MAX_GROUPS + 1);
        let other = groups.iter().find(|g| g.component == "other").unwrap();
        assert_eq!(other.count, 10);
        // an existing group still counts under its own name
        assert_eq!(
            t.record("c0", "k", "m"),
            ("c0".to_string(), "k".to_string())
        );
    }
}
