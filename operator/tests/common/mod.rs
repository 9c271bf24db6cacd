//! What the operator's integration tests share: one InstantDb `search/docs` on the fake API
//! server, a fake engine that answers `/health/detailed`, and one-reconcile helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use instant_db_crds::InstantDb;
use instant_db_operator::controller::instantdb::reconcile;
use instant_db_operator::controller::{Context, OperatorConfig};
use instant_db_operator::engine_client::{
    ArchiveReport, BackupJob, BackupJobStatus, DetailedHealth, EngineApi, EngineTarget,
    HealthStatus, RestoreJob, RestorePhase,
};
use instant_db_operator::fake_api::FakeApiServer;
use instant_db_operator::metrics::Metrics;
use instant_db_operator::{Error, Result};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

pub const DB: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbs/docs";
pub const STS: &str = "/apis/apps/v1/namespaces/search/statefulsets/docs";
pub const PDB: &str = "/apis/policy/v1/namespaces/search/poddisruptionbudgets/docs";
pub const SECRET: &str = "/api/v1/namespaces/search/secrets/docs-admin";
pub const POD: &str = "/api/v1/namespaces/search/pods/docs-0";

/// How the fake engine answers `POST /admin/backups`.
#[derive(Clone, Debug, PartialEq)]
pub enum StartAnswer {
    /// 202 with a running job.
    Accept,
    /// 409: the id is known already.
    IdInUse,
    /// The request fails (engine unreachable...).
    Fail(String),
    /// 409 `operation_in_progress`: a restore runs.
    Busy(String),
    /// 400: the credentials files are not in the pod yet.
    CredentialsNotReady(String),
}

/// How the fake engine answers `POST /admin/restores`.
#[derive(Clone, Debug, PartialEq)]
pub enum RestoreStartAnswer {
    /// 202 with the job (the same job again for a known id).
    Accept,
    /// 409 `operation_in_progress`.
    Busy(String),
    /// 400: the credentials files are not in the pod yet.
    CredentialsNotReady(String),
    /// 400: a request the engine will never take (bad archive URL).
    Refused(String),
}

/// One `POST /admin/backups` the fake engine received.
#[derive(Clone, Debug, PartialEq)]
pub struct StartedBackup {
    /// The pod called (its IP, and the CA and name verified with `spec.tls`).
    pub engine: EngineTarget,
    pub token: String,
    pub destination: String,
    pub id: String,
}

/// An engine that answers health as told, records backup starts and reports `job` for every
/// backup id (None: it does not know the id).
pub struct FakeEngine {
    pub health: Mutex<Result<DetailedHealth, String>>,
    /// Every pod asked for its health (IP, and the CA and name verified with `spec.tls`).
    pub health_calls: Mutex<Vec<EngineTarget>>,
    pub start: Mutex<StartAnswer>,
    pub started: Mutex<Vec<StartedBackup>>,
    pub job: Mutex<Option<BackupJob>>,
    /// (destination, id) of every archive deletion asked for.
    pub deleted: Mutex<Vec<(String, String)>>,
    /// (source, id) of every `POST /admin/restores` received.
    pub restores: Mutex<Vec<(String, String)>>,
    /// The answer to `POST /admin/restores`.
    pub restore_start: Mutex<RestoreStartAnswer>,
    /// The restore jobs the engine knows, by id (the test script moves their phases).
    pub restore_jobs: Mutex<std::collections::BTreeMap<String, RestoreJob>>,
    /// How long a health answer takes (zero: at once).
    pub health_delay: Mutex<std::time::Duration>,
    /// Health reads under way now, and the most there were at once.
    pub health_in_flight: std::sync::atomic::AtomicUsize,
    pub health_max_in_flight: std::sync::atomic::AtomicUsize,
    /// The `target_time` of every `POST /admin/restores` received, in order.
    pub restore_targets: Mutex<Vec<Option<String>>>,
    /// The answer to `GET /admin/archive` (Err: the call fails with this message).
    pub archive: Mutex<Result<ArchiveReport, String>>,
    /// Number of `GET /admin/archive` calls received.
    pub archive_calls: Mutex<usize>,
}

impl FakeEngine {
    pub fn new(health: Result<DetailedHealth, String>) -> Self {
        Self {
            health: Mutex::new(health),
            health_calls: Mutex::new(vec![]),
            start: Mutex::new(StartAnswer::Accept),
            started: Mutex::new(vec![]),
            job: Mutex::new(None),
            deleted: Mutex::new(vec![]),
            restores: Mutex::new(vec![]),
            restore_start: Mutex::new(RestoreStartAnswer::Accept),
            restore_jobs: Mutex::new(Default::default()),
            health_delay: Mutex::new(std::time::Duration::ZERO),
            health_in_flight: Default::default(),
            health_max_in_flight: Default::default(),
            restore_targets: Mutex::new(vec![]),
            archive: Mutex::new(Ok(ArchiveReport::default())),
            archive_calls: Mutex::new(0),
        }
    }

    /// Moves every known restore job to `phase`, as the engine would.
    pub fn set_restore_phase(&self, phase: RestorePhase, error: Option<&str>, documents: u64) {
        for job in self.restore_jobs.lock().unwrap().values_mut() {
            job.phase = phase;
            job.error = error.map(Into::into);
            job.document_count = Some(documents);
        }
    }

    pub fn healthy() -> Self {
        Self::new(Ok(DetailedHealth {
            status: HealthStatus::Healthy,
            ready: Some(true),
            document_count: Some(12),
            ..Default::default()
        }))
    }
}

impl EngineApi for FakeEngine {
    fn detailed_health<'a>(
        &'a self,
        engine: &'a EngineTarget,
        _token: &'a str,
    ) -> BoxFuture<'a, Result<DetailedHealth>> {
        use std::sync::atomic::Ordering;
        self.health_calls.lock().unwrap().push(engine.clone());
        let r = self.health.lock().unwrap().clone().map_err(Error::Engine);
        let delay = *self.health_delay.lock().unwrap();
        Box::pin(async move {
            let now = self.health_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.health_max_in_flight.fetch_max(now, Ordering::SeqCst);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.health_in_flight.fetch_sub(1, Ordering::SeqCst);
            r
        })
    }

    fn start_backup<'a>(
        &'a self,
        engine: &'a EngineTarget,
        token: &'a str,
        destination: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<BackupJob>> {
        self.started.lock().unwrap().push(StartedBackup {
            engine: engine.clone(),
            token: token.into(),
            destination: destination.into(),
            id: id.into(),
        });
        let r = match self.start.lock().unwrap().clone() {
            StartAnswer::Accept => Ok(BackupJob {
                id: id.into(),
                status: BackupJobStatus::Running,
                ..Default::default()
            }),
            StartAnswer::IdInUse => Err(Error::BackupIdInUse(id.into())),
            StartAnswer::Fail(m) => Err(Error::Engine(m)),
            StartAnswer::Busy(m) => Err(Error::OperationInProgress(m)),
            StartAnswer::CredentialsNotReady(m) => Err(Error::CredentialsNotReady(m)),
        };
        Box::pin(async move { r })
    }

    fn delete_backup<'a>(
        &'a self,
        _engine: &'a EngineTarget,
        _token: &'a str,
        destination: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        self.deleted
            .lock()
            .unwrap()
            .push((destination.into(), id.into()));
        Box::pin(async { Ok(true) })
    }

    fn start_restore<'a>(
        &'a self,
        _engine: &'a EngineTarget,
        _token: &'a str,
        source: &'a str,
        target_time: Option<&'a str>,
        id: &'a str,
    ) -> BoxFuture<'a, Result<RestoreJob>> {
        self.restores
            .lock()
            .unwrap()
            .push((source.into(), id.into()));
        self.restore_targets
            .lock()
            .unwrap()
            .push(target_time.map(Into::into));
        let r = match self.restore_start.lock().unwrap().clone() {
            RestoreStartAnswer::Accept => Ok(self
                .restore_jobs
                .lock()
                .unwrap()
                .entry(id.to_string())
                .or_insert_with(|| RestoreJob {
                    id: id.into(),
                    phase: RestorePhase::Pending,
                    target_time: target_time.map(Into::into),
                    ..Default::default()
                })
                .clone()),
            RestoreStartAnswer::Busy(m) => Err(Error::OperationInProgress(m)),
            RestoreStartAnswer::CredentialsNotReady(m) => Err(Error::CredentialsNotReady(m)),
            RestoreStartAnswer::Refused(m) => Err(Error::RestoreRefused(m)),
        };
        Box::pin(async move { r })
    }

    fn archive_report<'a>(
        &'a self,
        _engine: &'a EngineTarget,
        _token: &'a str,
    ) -> BoxFuture<'a, Result<ArchiveReport>> {
        *self.archive_calls.lock().unwrap() += 1;
        let r = self.archive.lock().unwrap().clone().map_err(Error::Engine);
        Box::pin(async move { r })
    }

    fn restore_job<'a>(
        &'a self,
        _engine: &'a EngineTarget,
        _token: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RestoreJob>>> {
        let r = self.restore_jobs.lock().unwrap().get(id).cloned();
        Box::pin(async move { Ok(r) })
    }

    fn backup_job<'a>(
        &'a self,
        _engine: &'a EngineTarget,
        _token: &'a str,
        _id: &'a str,
    ) -> BoxFuture<'a, Result<Option<BackupJob>>> {
        let r = self.job.lock().unwrap().clone();
        Box::pin(async move { Ok(r) })
    }
}

pub fn setup(spec: Value) -> (FakeApiServer, Arc<Context>) {
    let (fake, ctx, _) = setup_with_engine(spec);
    (fake, ctx)
}

/// [`setup`], also returning the fake engine to script and inspect.
pub fn setup_with_engine(spec: Value) -> (FakeApiServer, Arc<Context>, Arc<FakeEngine>) {
    let fake = FakeApiServer::new();
    fake.put(
        DB,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
               "metadata": {"name": "docs", "namespace": "search"}, "spec": spec}),
    );
    let engine = Arc::new(FakeEngine::healthy());
    let ctx = Arc::new(Context::new(
        fake.client(),
        OperatorConfig {
            default_image: "ghcr.io/instant-db/instant-db:0.1.0".into(),
            ..Default::default()
        },
        engine.clone(),
        Metrics::new().unwrap(),
    ));
    start_caches(&fake, &ctx);
    (fake, ctx, engine)
}

/// Opens the InstantDb controller's watch caches of namespace `search` against `fake`, as the
/// controller loop does, for reconciles called directly.
pub fn start_caches(fake: &FakeApiServer, ctx: &Context) {
    ctx.caches.spawn(&fake.client(), Some("search"));
}

/// Waits until the watch caches hold exactly what the fake stores for their watches (same
/// objects, same resourceVersions): what the next reconcile reads is then what a controller
/// reading a caught-up cache would read. A real cluster gives no such moment; there, a
/// reconcile that reads a stale cache is followed by the one the watch event triggers.
pub async fn sync_caches(fake: &FakeApiServer, ctx: &Context) {
    let Some(caches) = ctx.caches.get("search") else {
        return;
    };
    let mut want = vec![];
    for _ in 0..1000 {
        want = caches
            .watched()
            .iter()
            .flat_map(|(list, selector)| fake.versions_matching(list, selector.as_deref()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>();
        if caches.versions() == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!(
        "the watch caches did not catch up with the fake API: want {want:?}, have {:?}",
        caches.versions()
    );
}

pub fn current(fake: &FakeApiServer) -> Arc<InstantDb> {
    Arc::new(serde_json::from_value(fake.get(DB).unwrap()).unwrap())
}

/// One reconcile of the current object, with a fresh request log.
pub async fn run(fake: &FakeApiServer, ctx: &Arc<Context>) -> Result<Action> {
    sync_caches(fake, ctx).await;
    fake.clear_log();
    reconcile(current(fake), ctx.clone()).await
}

/// One reconcile of the current object, once the caches caught up; the request log keeps
/// what came before.
pub async fn reconcile_once(fake: &FakeApiServer, ctx: &Arc<Context>) -> Result<Action> {
    sync_caches(fake, ctx).await;
    reconcile(current(fake), ctx.clone()).await
}

/// The StatefulSet rolled out and its pod has an IP, as the kubelet would report; the pod carries
/// the template labels the StatefulSet controller gives it (the operator finds it by them).
pub fn mark_ready(fake: &FakeApiServer) {
    let sts = fake.get(STS).unwrap();
    let generation = sts["metadata"]["generation"].clone();
    fake.merge(
        STS,
        &json!({"status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": generation,
                "currentRevision": "r1", "updateRevision": "r1"}}),
    );
    fake.put(POD, json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "docs-0", "namespace": "search",
                     "labels": {"app.kubernetes.io/name": "instant-db", "app.kubernetes.io/instance": "docs", "app.kubernetes.io/component": "engine"}},
                         "status": {"phase": "Running", "podIP": "10.0.0.7",
                                    "conditions": [{"type": "PodScheduled", "status": "True"},
                                                   {"type": "Ready", "status": "True"}],
                                    "containerStatuses": [{"name": "engine", "ready": true, "started": true,
                                        "restartCount": 0, "image": "i", "imageID": "",
                                        "state": {"running": {}}}]}}));
}

/// The condition `type_` of the InstantDb's status, as stored (status, reason, message...).
pub fn db_condition(fake: &FakeApiServer, type_: &str) -> Value {
    let db = fake.get(DB).unwrap();
    db["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {}", db["status"]))
        .clone()
}
