//! Health: a background task samples every component at an interval and publishes one immutable
//! snapshot; probes read the snapshot (an `Arc` clone), so they never wait on I/O.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::engine::Engine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComponentHealth {
    pub status: Status,
    /// How long the check took.
    pub response_time_ms: f64,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntegrityStatus {
    pub ok: bool,
    pub checked_at: String,
    pub duration_ms: f64,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HealthReport {
    pub status: Status,
    pub ready: bool,
    /// Why the engine is not healthy or not ready; empty when it is both.
    pub reasons: Vec<String>,
    pub version: String,
    pub checked_at: String,
    pub uptime_seconds: f64,
    pub document_count: i64,
    pub chunk_count: i64,
    pub last_integrity_check: Option<IntegrityStatus>,
    pub components: BTreeMap<String, ComponentHealth>,
}

/// Extra components supplied by other subsystems (system resources, circuit breakers).
pub type ComponentSource = Box<dyn Fn() -> (String, ComponentHealth) + Send + Sync>;

pub struct HealthMonitor {
    snapshot: RwLock<Arc<HealthReport>>,
    integrity: RwLock<Option<IntegrityStatus>>,
    started: Instant,
    sources: RwLock<Vec<ComponentSource>>,
    /// Consecutive samples in which the index and the stored embeddings differed in count.
    index_mismatches: AtomicU32,
}

impl Default for HealthMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthMonitor {
    pub fn new() -> HealthMonitor {
        HealthMonitor {
            snapshot: RwLock::new(Arc::new(HealthReport {
                status: Status::Unhealthy,
                ready: false,
                reasons: vec!["starting: no health sample yet".into()],
                version: env!("CARGO_PKG_VERSION").into(),
                checked_at: now(),
                uptime_seconds: 0.0,
                document_count: 0,
                chunk_count: 0,
                last_integrity_check: None,
                components: BTreeMap::new(),
            })),
            integrity: RwLock::new(None),
            started: Instant::now(),
            sources: RwLock::new(vec![]),
            index_mismatches: AtomicU32::new(0),
        }
    }

    pub fn add_source(&self, source: ComponentSource) {
        if let Ok(mut s) = self.sources.write() {
            s.push(source);
        }
    }

    pub fn snapshot(&self) -> Arc<HealthReport> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn record_integrity(&self, status: IntegrityStatus) {
        if let Ok(mut i) = self.integrity.write() {
            *i = Some(status);
        }
    }

    pub fn last_integrity(&self) -> Option<IntegrityStatus> {
        self.integrity.read().ok().and_then(|i| i.clone())
    }

    /// Samples every component and publishes a new snapshot (blocking: run it off async threads).
    pub fn refresh(&self, engine: &Engine) -> Arc<HealthReport> {
        let mut components = BTreeMap::new();
        let mut reasons = vec![];
        let mut ready = true;

        let t = Instant::now();
        let mut stored_embeddings = None;
        let (db_status, docs, chunks, db_details) = match engine.store.stats() {
            Ok(s) => (
                Status::Healthy,
                s.documents,
                {
                    stored_embeddings = Some(s.embeddings);
                    s.chunks
                },
                serde_json::json!({
                    "path": engine.store.path(), "schema_version": s.schema_version, "bytes": s.database_bytes,
                }),
            ),
            Err(e) => {
                ready = false;
                reasons.push(format!("database: {e}"));
                (
                    Status::Unhealthy,
                    0,
                    0,
                    serde_json::json!({"error": e.to_string()}),
                )
            }
        };
        components.insert(
            "database".into(),
            ComponentHealth {
                status: db_status,
                response_time_ms: ms(t),
                details: db_details,
            },
        );

        if let Some(q) = engine.qdrant() {
            components.insert(
                "vector_index".into(),
                qdrant_health(q, engine.qdrant_behind(), &mut reasons),
            );
        } else {
            let t = Instant::now();
            let loading = engine.index_loading();
            let idx = engine.index().stats();
            let model_dims = engine.embedder().map(|e| e.dimensions());
            let mut index_problems = vec![];
            if let Some(d) = model_dims
                && d != idx.dimensions
            {
                index_problems.push(format!(
                    "the index has {} dimensions but the model makes {d}",
                    idx.dimensions
                ));
            }
            // Ingest commits a document before adding its vectors, so one sample can catch the
            // index a document behind; only a difference seen twice in a row is reported.
            // While it loads, the index is empty on purpose: that is reported below, not as a lag.
            let differs =
                loading.is_none() && stored_embeddings.is_some_and(|n| n != idx.vectors as i64);
            let streak = if differs {
                self.index_mismatches.fetch_add(1, Ordering::Relaxed) + 1
            } else {
                self.index_mismatches.store(0, Ordering::Relaxed);
                0
            };
            if streak >= 2
                && let Some(n) = stored_embeddings
            {
                index_problems.push(format!(
                    "the index holds {} vectors but the database {n} embeddings; `instant-db repair` rebuilds it",
                    idx.vectors
                ));
            }
            let mut index_details = serde_json::to_value(&idx).unwrap_or_default();
            if let Some(map) = index_details.as_object_mut() {
                map.insert("loaded".into(), loading.is_none().into());
                map.insert(
                    "loading".into(),
                    serde_json::to_value(&loading).unwrap_or_default(),
                );
                map.insert("stored_embeddings".into(), stored_embeddings.into());
                map.insert("model_dimensions".into(), model_dims.into());
                map.insert("problems".into(), index_problems.clone().into());
            }
            if let Some(st) = &loading {
                // Not ready: vector search and writes answer 503 until the graph is there. Still
                // alive: `/health/live` answers, so probes do not restart a pod that is recovering.
                ready = false;
                reasons.push(format!(
                    "{}; writes and vector search answer 503 index_loading until it is done",
                    st.describe()
                ));
            }
            if !index_problems.is_empty() {
                reasons.push(format!(
                    "vector index: {}; vector search may miss results",
                    index_problems.join("; ")
                ));
            }
            components.insert(
                "vector_index".into(),
                ComponentHealth {
                    status: if index_problems.is_empty() && loading.is_none() {
                        Status::Healthy
                    } else {
                        Status::Degraded
                    },
                    response_time_ms: ms(t),
                    details: index_details,
                },
            );
        }

        let t = Instant::now();
        let model = match engine.embedder() {
            Some(e) => ComponentHealth {
                status: Status::Healthy,
                response_time_ms: ms(t),
                details: serde_json::json!({"model": e.model_name(), "dimensions": e.dimensions()}),
            },
            None => {
                let why = engine.model_error().unwrap_or("not loaded").to_string();
                reasons.push(format!(
                    "embedding model unavailable, keyword search only: {why}"
                ));
                ComponentHealth {
                    status: Status::Degraded,
                    response_time_ms: ms(t),
                    details: serde_json::json!({"error": why}),
                }
            }
        };
        components.insert("embedding_model".into(), model);

        let t = Instant::now();
        let integrity = self.last_integrity();
        if let Some(i) = &integrity
            && !i.ok
        {
            ready = false;
            reasons.push(format!(
                "integrity check failed at {}: {}",
                i.checked_at,
                i.problems.join("; ")
            ));
        }
        components.insert(
            "integrity".into(),
            ComponentHealth {
                status: match &integrity {
                    Some(i) if !i.ok => Status::Unhealthy,
                    _ => Status::Healthy,
                },
                // The check itself runs apart (it can take minutes); its own duration is the
                // telling number, the time to read its outcome only when none ran yet.
                response_time_ms: integrity.as_ref().map_or_else(|| ms(t), |i| i.duration_ms),
                details: serde_json::to_value(&integrity).unwrap_or_default(),
            },
        );

        if let Ok(sources) = self.sources.read() {
            for source in sources.iter() {
                let (name, c) = source();
                match c.status {
                    Status::Unhealthy => {
                        ready = false;
                        reasons.push(format!("{name}: unhealthy ({})", c.details));
                    }
                    Status::Degraded => reasons.push(format!("{name}: degraded ({})", c.details)),
                    Status::Healthy => {}
                }
                components.insert(name, c);
            }
        }

        let status = if !ready {
            Status::Unhealthy
        } else if components.values().any(|c| c.status != Status::Healthy) {
            Status::Degraded
        } else {
            Status::Healthy
        };
        let report = Arc::new(HealthReport {
            status,
            ready,
            reasons,
            version: env!("CARGO_PKG_VERSION").into(),
            checked_at: now(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            document_count: docs,
            chunk_count: chunks,
            last_integrity_check: integrity,
            components,
        });
        if let Ok(mut s) = self.snapshot.write() {
            *s = report.clone();
        }
        report
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The vector store's component when it is Qdrant: no call is made (probes come often); the
/// breaker and a missed write say what the last calls found.
fn qdrant_health(
    q: &crate::qdrant::QdrantVectors,
    behind: bool,
    reasons: &mut Vec<String>,
) -> ComponentHealth {
    let breaker = q.breaker().status();
    let open = q.breaker().state() == crate::resilience::BreakerState::Open;
    if open {
        reasons.push(format!(
            "Qdrant collection `{}` unreachable (circuit breaker open); hybrid search is \
             keyword-only, vector search answers 503",
            q.collection()
        ));
    }
    if behind {
        reasons.push(format!(
            "Qdrant collection `{}` missed writes; they are uploaded at the next write, start or \
             `instant-db repair`",
            q.collection()
        ));
    }
    ComponentHealth {
        status: if open || behind {
            Status::Degraded
        } else {
            Status::Healthy
        },
        response_time_ms: 0.0,
        details: serde_json::json!({
            "store": "qdrant",
            "collection": q.collection(),
            "behind": behind,
            "breaker": breaker,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::engine::ModelLoading;

    #[test]
    fn vector_index_is_degraded_when_it_lags_the_stored_embeddings_and_healthy_after_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let engine = Engine::open(config, ModelLoading::Skip).unwrap();
        let docs = vec![crate::ingest::SourceDoc {
            source: "api:a".into(),
            name: "a.txt".into(),
            bytes: b"Walruses hold meetings on ice floes.".to_vec(),
            modified_at: None,
            metadata: None,
        }];
        crate::ingest::ingest_sources(&engine, docs, &crate::ingest::NoProgress).unwrap();
        let monitor = HealthMonitor::new();
        let r = monitor.refresh(&engine);
        assert_eq!(r.components["vector_index"].status, Status::Healthy);
        assert!(r.components["vector_index"].details["loaded"] == true);

        // Vectors written behind the index's back, as a crash between commit and index update
        // (or a stale dump) would leave them.
        let doc = engine.store.list_documents(0, 10).unwrap().remove(0);
        let vectors: Vec<(i64, Vec<f32>)> = engine
            .store
            .chunks_of(&doc.id)
            .unwrap()
            .iter()
            .map(|c| (c.id, vec![0.05; engine.index().dimensions()]))
            .collect();
        engine
            .store
            .put_embeddings(engine.model_name(), &vectors)
            .unwrap();
        // One sample may catch an ingest in the middle; the second one tells.
        let r = monitor.refresh(&engine);
        assert_eq!(r.components["vector_index"].status, Status::Healthy);
        let r = monitor.refresh(&engine);
        let c = &r.components["vector_index"];
        assert_eq!(c.status, Status::Degraded, "{:?}", c.details);
        assert_eq!(r.status, Status::Degraded);
        assert!(r.ready, "keyword search still works");
        assert!(
            r.reasons.iter().any(|m| m.contains("vector index")),
            "{:?}",
            r.reasons
        );

        engine.reload_index().unwrap();
        let r = monitor.refresh(&engine);
        assert_eq!(r.components["vector_index"].status, Status::Healthy);
    }
}
