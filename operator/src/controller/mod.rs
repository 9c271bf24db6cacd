//! Controllers and the context they share.

pub mod instantdb;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};

use crate::builders::SERVICE_MONITOR_CRD;
use crate::engine_client::EngineApi;
use crate::metrics::Metrics;

/// Settings of the operator that reconciles use.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Engine image for InstantDb objects without `spec.image`.
    pub default_image: String,
    /// How long a healthy instance waits before its status is refreshed from the engine.
    pub resync_ready: Duration,
    /// How long a starting instance waits before it is looked at again.
    pub resync_progressing: Duration,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            default_image: String::new(),
            resync_ready: Duration::from_secs(60),
            resync_progressing: Duration::from_secs(10),
        }
    }
}

/// Shared state of the controllers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Settings.
    pub config: OperatorConfig,
    /// Engine client.
    pub engine: Arc<dyn EngineApi>,
    /// Metrics.
    pub metrics: Metrics,
    /// Event recorder.
    pub recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
    service_monitor_crd: Mutex<Option<(Instant, bool)>>,
}

impl Context {
    /// A context.
    pub fn new(
        client: Client,
        config: OperatorConfig,
        engine: Arc<dyn EngineApi>,
        metrics: Metrics,
    ) -> Self {
        let reporter = Reporter {
            controller: crate::builders::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            engine,
            metrics,
            failures: Mutex::new(HashMap::new()),
            service_monitor_crd: Mutex::new(None),
        }
    }

    /// Whether the ServiceMonitor CRD exists (cached for five minutes).
    pub async fn service_monitor_crd_exists(&self) -> bool {
        if let Some((at, v)) = *self
            .service_monitor_crd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            && at.elapsed() < Duration::from_secs(300)
        {
            return v;
        }
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let exists = match api.get_opt(SERVICE_MONITOR_CRD).await {
            Ok(v) => v.is_some(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot look up the ServiceMonitor CRD; assuming it is absent");
                false
            }
        };
        *self
            .service_monitor_crd
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), exists));
        exists
    }

    /// Records a failure of `key` and returns how long to wait before retrying (5 s doubling
    /// to 5 min).
    pub fn next_backoff(&self, key: &str) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let secs = 5u64.saturating_mul(1u64 << (*n - 1).min(6));
        Duration::from_secs(secs.min(300))
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset_backoff(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Publishes an Event; failures are logged, never fatal.
    pub async fn event(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, reference).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }
}
