//! What the operator's integration tests share: one InstantDb `search/docs` on the fake API
//! server, a fake engine that answers `/health/detailed`, and one-reconcile helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use instant_db_crds::InstantDb;
use instant_db_operator::controller::instantdb::reconcile;
use instant_db_operator::controller::{Context, OperatorConfig};
use instant_db_operator::engine_client::{DetailedHealth, EngineApi, HealthStatus};
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

pub struct FakeEngine(pub Mutex<Result<DetailedHealth, String>>);

impl EngineApi for FakeEngine {
    fn detailed_health<'a>(
        &'a self,
        _ip: &'a str,
        _token: &'a str,
    ) -> BoxFuture<'a, Result<DetailedHealth>> {
        let r = self.0.lock().unwrap().clone().map_err(Error::Engine);
        Box::pin(async move { r })
    }
}

pub fn setup(spec: Value) -> (FakeApiServer, Arc<Context>) {
    let fake = FakeApiServer::new();
    fake.put(
        DB,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
               "metadata": {"name": "docs", "namespace": "search"}, "spec": spec}),
    );
    let engine = Arc::new(FakeEngine(Mutex::new(Ok(DetailedHealth {
        status: HealthStatus::Healthy,
        document_count: Some(12),
        ..Default::default()
    }))));
    let ctx = Arc::new(Context::new(
        fake.client(),
        OperatorConfig {
            default_image: "ghcr.io/instant-db/instant-db:0.1.0".into(),
            ..Default::default()
        },
        engine,
        Metrics::new().unwrap(),
    ));
    (fake, ctx)
}

pub fn current(fake: &FakeApiServer) -> Arc<InstantDb> {
    Arc::new(serde_json::from_value(fake.get(DB).unwrap()).unwrap())
}

/// One reconcile of the current object, with a fresh request log.
pub async fn run(fake: &FakeApiServer, ctx: &Arc<Context>) -> Result<Action> {
    fake.clear_log();
    reconcile_once(fake, ctx).await
}

/// One reconcile of the current object; the request log keeps what came before.
pub async fn reconcile_once(fake: &FakeApiServer, ctx: &Arc<Context>) -> Result<Action> {
    reconcile(current(fake), ctx.clone()).await
}

/// The StatefulSet rolled out and its pod has an IP, as the kubelet would report.
pub fn mark_ready(fake: &FakeApiServer) {
    let sts = fake.get(STS).unwrap();
    let generation = sts["metadata"]["generation"].clone();
    fake.merge(
        STS,
        &json!({"status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": generation,
                "currentRevision": "r1", "updateRevision": "r1"}}),
    );
    fake.put(POD, json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "docs-0", "namespace": "search"},
                         "status": {"podIP": "10.0.0.7"}}));
}
