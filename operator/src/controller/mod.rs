//! Controllers and the context they share.

pub mod backup;
mod events;
pub mod instantdb;
pub mod policy;
pub mod restore;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use instant_db_crds::InstantDb;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use crate::builders::SERVICE_MONITOR_CRD;
use crate::engine_client::EngineApi;
use crate::metrics::Metrics;

/// Engine image of this operator's version (the tag is the workspace version, as the chart's
/// `appVersion`): what `--engine-image` defaults to.
pub const DEFAULT_ENGINE_IMAGE: &str =
    concat!("ghcr.io/instant-db/instant-db:", env!("CARGO_PKG_VERSION"));

/// Settings of the operator that reconciles use.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Engine image for InstantDb objects without `spec.image`.
    pub default_image: String,
    /// How long a healthy instance waits before its status is refreshed from the engine.
    pub resync_ready: Duration,
    /// How long a starting instance waits before it is looked at again.
    pub resync_progressing: Duration,
    /// How often engine-derived numbers (`status.documentCount`) are taken into status: they
    /// move with every ingest, and writing them on every reconcile would make status writes
    /// (and the watch events they cause) follow the ingest rate.
    pub engine_numbers_refresh: Duration,
    /// Namespace the operator runs in (`POD_NAMESPACE`); instances' NetworkPolicies admit it.
    pub operator_namespace: String,
    /// Reconciles one controller runs at once (`MAX_CONCURRENT_RECONCILES`). Unbounded, the
    /// start-up pass over 1,000 instances holds 1,000 reconcile futures (tens of KiB each,
    /// with the children they build) at once; the rest wait in the queue, which costs nothing.
    pub max_concurrent_reconciles: u16,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            default_image: String::new(),
            resync_ready: Duration::from_secs(60),
            resync_progressing: Duration::from_secs(10),
            engine_numbers_refresh: Duration::from_secs(300),
            operator_namespace: "default".into(),
            max_concurrent_reconciles: DEFAULT_MAX_CONCURRENT_RECONCILES,
        }
    }
}

/// Default of [`OperatorConfig::max_concurrent_reconciles`] (CloudNativePG's default is 10).
pub const DEFAULT_MAX_CONCURRENT_RECONCILES: u16 = 16;

/// Consecutive failures of one object and when the last one happened.
#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

/// A failure entry older than this is dropped: the object was deleted (or has not failed since
/// the longest backoff), so keeping it would only grow the map.
const FORGET_FAILURES_AFTER: Duration = Duration::from_secs(15 * 60);

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
    recorder: events::Recorder,
    failures: Mutex<HashMap<String, Failures>>,
    /// When engine-derived numbers were last taken into each object's status.
    numbers_taken: Mutex<HashMap<String, Instant>>,
    service_monitor_crd: Mutex<Option<(Instant, bool)>>,
    /// Watch caches of the InstantDb controller's children, backups and restores, per scope.
    pub caches: instantdb::cache::Registry,
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
            recorder: events::Recorder::new(client.clone(), reporter),
            client,
            config,
            engine,
            metrics,
            failures: Mutex::new(HashMap::new()),
            numbers_taken: Mutex::new(HashMap::new()),
            service_monitor_crd: Mutex::new(None),
            caches: Default::default(),
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

    /// Records one reconcile of `key` by `controller` in the metrics (duration, result, error
    /// kind and reason) and, when it succeeded, forgets the object's failures.
    pub fn record_reconcile<T>(
        &self,
        controller: &str,
        key: &str,
        started: Instant,
        res: &crate::Result<T>,
    ) {
        self.metrics
            .duration
            .with_label_values(&[controller])
            .observe(started.elapsed().as_secs_f64());
        let result = if res.is_ok() { "success" } else { "error" };
        self.metrics
            .reconciles
            .with_label_values(&[controller, result])
            .inc();
        match res {
            Ok(_) => self.reset_backoff(key),
            Err(e) => self
                .metrics
                .errors
                .with_label_values(&[controller, e.kind(), &e.reason()])
                .inc(),
        }
    }

    /// Records a failure of `key` and returns how long to wait before retrying (5 s doubling
    /// to 5 min).
    pub fn next_backoff(&self, key: &str) -> Duration {
        self.next_backoff_at(key, Instant::now())
    }

    fn next_backoff_at(&self, key: &str, now: Instant) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        f.retain(|_, v| now.saturating_duration_since(v.last) < FORGET_FAILURES_AFTER);
        let entry = f.entry(key.to_string()).or_insert(Failures {
            count: 0,
            last: now,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        let secs = 5u64.saturating_mul(1u64 << (entry.count - 1).min(6));
        Duration::from_secs(secs.min(300))
    }

    /// Forgets the failures of `key`: after a successful reconcile, or once the object is gone.
    pub fn reset_backoff(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Whether `key`'s engine-derived numbers may be refreshed in its status now: never taken
    /// by this process, or taken at least `engine_numbers_refresh` ago.
    pub fn engine_numbers_due(&self, key: &str) -> bool {
        let mut taken = self
            .numbers_taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let every = self.config.engine_numbers_refresh;
        // Entries of deleted objects go once they are stale; the map stays one entry per
        // live instance.
        taken.retain(|_, at| at.elapsed() < every.max(FORGET_FAILURES_AFTER));
        taken.get(key).is_none_or(|at| at.elapsed() >= every)
    }

    /// Records that `key`'s status now holds fresh engine numbers.
    pub fn engine_numbers_taken(&self, key: &str) {
        self.numbers_taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_string(), Instant::now());
    }

    /// Number of objects with recorded failures.
    pub fn backoff_entries(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Publishes an Event; failures are logged, never fatal. Each distinct message is its own
    /// Event; the same message again within an hour is counted in that Event's series.
    pub async fn event(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.event_related(reference, None, type_, reason, action, note)
            .await;
    }

    /// [`Self::event`] with a second object it concerns (the Event's `related`, for example the
    /// pruned backup of a policy's `BackupPruned`).
    pub async fn event_related(
        &self,
        reference: &ObjectReference,
        related: Option<&ObjectReference>,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = events::Event {
            type_,
            reason,
            action,
            note: note.chars().take(1000).collect(),
            related,
        };
        if let Err(e) = self.recorder.publish(&ev, reference).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }
}

/// `Api` of `K` in one namespace, or in all (`None`).
pub(crate) fn scoped_api<K>(client: &Client, scope: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Key of an object in the per-object backoff: `<kind>:<namespace>/<name>`.
pub(crate) fn backoff_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    object_ref_key::<K>(obj.namespace().as_deref(), &obj.name_any())
}

fn object_ref_key<K: Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> String {
    format!(
        "{}:{}/{}",
        K::kind(&()),
        namespace.unwrap_or_default(),
        name
    )
}

/// The error policy of every controller: requeue after the object's next backoff (5 s doubling
/// to 5 min), log why and publish a `ReconcileFailed` Warning event on the object.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    err: &crate::Error,
    ctx: Arc<Context>,
) -> Action {
    let key = backoff_key(obj.as_ref());
    let delay = ctx.next_backoff(&key);
    tracing::warn!(object = %key, error = %err, retry_in = ?delay, "reconcile failed");
    let reference = obj.object_ref(&());
    let note = format!("{err}; retrying in {}s", delay.as_secs());
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            ctx.event(
                &reference,
                EventType::Warning,
                "ReconcileFailed",
                "Reconcile",
                note,
            )
            .await;
        });
    }
    Action::requeue(delay)
}

/// Waits until a controller's store has listed every object; false when the controller ended
/// first. The wait is re-armed every half second because kube-runtime 5.0's readiness signal
/// (a oneshot channel) keeps only the last waiter's waker, and the Controller itself also waits
/// on it: a second waiter that is not polled again may never be woken.
pub(crate) async fn store_ready<K>(store: &kube::runtime::reflector::Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
            Ok(ready) => return ready.is_ok(),
            Err(_) => continue,
        }
    }
}

/// Runs one Controller of `K` per watched scope (each namespace of `namespaces`, or all
/// namespaces when it is empty) until `stop` turns true; running reconciles finish first.
/// Dropping the future aborts the controllers at once (loss of leadership). `build` makes the
/// Controller of a scope (its watches); `what` names it in the logs. With `synced`, that health
/// is marked synced once the primary watch of every scope has listed its objects. A requeued
/// object found deleted has its failures forgotten.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_scoped<K, B, R, F>(
    ctx: Arc<Context>,
    namespaces: Vec<String>,
    stop: tokio::sync::watch::Receiver<bool>,
    what: &'static str,
    build: B,
    reconcile: R,
    error_policy: fn(Arc<K>, &crate::Error, Arc<Context>) -> Action,
    synced: Option<crate::server::Health>,
) where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    B: Fn(&Client, Option<&str>) -> Controller<K>,
    R: FnMut(Arc<K>, Arc<Context>) -> F + Clone + Send + 'static,
    F: std::future::Future<Output = crate::Result<Action>> + Send + 'static,
{
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    if let Some(health) = &synced {
        health.set_synced(false);
    }
    // A JoinSet aborts its tasks when dropped (loss of leadership).
    let mut tasks = tokio::task::JoinSet::new();
    let mut stores = Vec::new();
    for scope in scopes {
        let controller = build(&ctx.client, scope.as_deref()).with_config(
            kube::runtime::controller::Config::default()
                .concurrency(ctx.config.max_concurrent_reconciles),
        );
        stores.push(controller.store());
        let ctx_for_results = ctx.clone();
        let stream = controller
            .graceful_shutdown_on({
                let mut stop = stop.clone();
                async move {
                    let _ = stop.wait_for(|v| *v).await;
                }
            })
            .run(reconcile.clone(), error_policy, ctx.clone())
            .for_each(move |res| {
                let ctx = ctx_for_results.clone();
                async move {
                    match res {
                        Ok((obj, _)) => {
                            tracing::debug!(object = %obj, controller = what, "reconciled");
                        }
                        // A requeued object that has been deleted meanwhile: its failures (if
                        // any) are no longer needed.
                        Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                            ctx.reset_backoff(&object_ref_key::<K>(
                                obj.namespace.as_deref(),
                                &obj.name,
                            ));
                            if K::kind(&()) == InstantDb::kind(&()) {
                                ctx.metrics.forget_instance(
                                    obj.namespace.as_deref().unwrap_or_default(),
                                    &obj.name,
                                );
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, controller = what, "controller event")
                        }
                    }
                }
            });
        tasks.spawn(stream);
    }
    if let Some(health) = synced {
        tasks.spawn(async move {
            for store in stores {
                if !store_ready(&store).await {
                    return;
                }
            }
            tracing::info!(controller = what, "watches synced");
            health.set_synced(true);
        });
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, controller = what, "controller task failed");
        }
    }
}

/// Writes `new` as the status of `obj` (server-side apply on the status subresource, the
/// operator's field manager) when it differs from the current one; counts the write for
/// `controller`. Returns whether a write happened.
pub(crate) async fn write_status<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    new: &S,
    ctx: &Context,
    controller: &str,
) -> crate::Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq,
{
    if current == Some(new) {
        return Ok(false);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": new,
    });
    api.patch_status(
        &kube::ResourceExt::name_any(obj),
        &kube::api::PatchParams::apply(crate::builders::FIELD_MANAGER).force(),
        &kube::api::Patch::Apply(&patch),
    )
    .await?;
    ctx.metrics
        .writes
        .with_label_values(&[controller, &K::kind(&()), "status"])
        .inc();
    Ok(true)
}

/// The watch of the kind a controller reconciles.
pub(crate) fn primary_watch() -> watcher::Config {
    watcher::Config::default().any_semantic()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::fake_api::FakeApiServer;
    use futures::future::BoxFuture;

    struct NoEngine;
    impl EngineApi for NoEngine {
        fn detailed_health<'a>(
            &'a self,
            _: &'a crate::engine_client::EngineTarget,
            _: &'a str,
        ) -> BoxFuture<'a, crate::Result<crate::engine_client::DetailedHealth>> {
            Box::pin(async { Err(crate::Error::Engine("none".into())) })
        }
    }

    fn ctx() -> Context {
        Context::new(
            FakeApiServer::new().client(),
            OperatorConfig::default(),
            Arc::new(NoEngine),
            Metrics::new().unwrap(),
        )
    }

    #[tokio::test]
    async fn backoff_doubles_from_5s_to_5min() {
        let c = ctx();
        let got: Vec<u64> = (0..9).map(|_| c.next_backoff("ns/a").as_secs()).collect();
        assert_eq!(got, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        c.reset_backoff("ns/a");
        assert_eq!(c.next_backoff("ns/a").as_secs(), 5);
    }

    #[tokio::test]
    async fn failures_of_objects_not_seen_for_15_minutes_are_forgotten() {
        let c = ctx();
        let t0 = Instant::now();
        c.next_backoff_at("ns/deleted", t0);
        c.next_backoff_at("ns/live", t0 + Duration::from_secs(14 * 60));
        assert_eq!(c.backoff_entries(), 2);
        c.next_backoff_at("ns/live", t0 + Duration::from_secs(16 * 60));
        assert_eq!(
            c.backoff_entries(),
            1,
            "the deleted object's entry was dropped"
        );
        assert_eq!(
            c.next_backoff_at("ns/live", t0 + Duration::from_secs(17 * 60))
                .as_secs(),
            20,
            "a live object keeps its count"
        );
    }
}
