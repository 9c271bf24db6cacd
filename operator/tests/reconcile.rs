//! Reconcile flows of the InstantDb controller against the in-memory fake API server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use instant_db_crds::InstantDb;
use instant_db_operator::controller::instantdb::{error_policy, reconcile};
use instant_db_operator::controller::{Context, OperatorConfig};
use instant_db_operator::engine_client::{DetailedHealth, EngineApi, HealthStatus};
use instant_db_operator::fake_api::FakeApiServer;
use instant_db_operator::metrics::Metrics;
use instant_db_operator::{Error, Result};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

const DB: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbs/docs";
const STS: &str = "/apis/apps/v1/namespaces/search/statefulsets/docs";
const PDB: &str = "/apis/policy/v1/namespaces/search/poddisruptionbudgets/docs";
const SECRET: &str = "/api/v1/namespaces/search/secrets/docs-admin";
const POD: &str = "/api/v1/namespaces/search/pods/docs-0";

struct FakeEngine(Mutex<Result<DetailedHealth, String>>);

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

fn setup(spec: Value) -> (FakeApiServer, Arc<Context>) {
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

fn current(fake: &FakeApiServer) -> Arc<InstantDb> {
    Arc::new(serde_json::from_value(fake.get(DB).unwrap()).unwrap())
}

async fn run(fake: &FakeApiServer, ctx: &Arc<Context>) -> Result<Action> {
    fake.clear_log();
    reconcile(current(fake), ctx.clone()).await
}

fn writes(fake: &FakeApiServer) -> Vec<String> {
    fake.log()
        .into_iter()
        .filter(|l| l.is_write())
        .map(|l| format!("{} {}", l.method, l.path))
        .collect()
}

fn mark_ready(fake: &FakeApiServer) {
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

fn condition(fake: &FakeApiServer, type_: &str) -> (String, String) {
    let db = fake.get(DB).unwrap();
    let c = db["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
        .clone();
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

#[tokio::test]
async fn create_then_ready_then_no_op() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    let w = writes(&fake);
    for path in [
        "configmaps/docs-config",
        "secrets/docs-admin",
        "services/docs-headless",
        "services/docs",
        "statefulsets/docs",
        "poddisruptionbudgets/docs",
        "instantdbs/docs/status",
    ] {
        assert!(
            w.iter()
                .any(|x| x.starts_with("PATCH") && x.ends_with(path)),
            "{path} not applied: {w:?}"
        );
    }
    assert!(
        w.iter()
            .any(|x| x.starts_with("POST") && x.contains("/events")),
        "no event: {w:?}"
    );
    assert_eq!(fake.get(DB).unwrap()["status"]["phase"], "Provisioning");
    assert_eq!(
        condition(&fake, "Ready"),
        ("False".into(), "EngineStarting".into())
    );
    let token = fake.get(SECRET).unwrap()["data"]["token"].clone();

    // unchanged and not ready yet: zero writes
    run(&fake, &ctx).await.unwrap();
    assert_eq!(writes(&fake), Vec::<String>::new());

    mark_ready(&fake);
    run(&fake, &ctx).await.unwrap();
    let w = writes(&fake);
    assert!(
        w.iter().any(|x| x.ends_with("instantdbs/docs/status")),
        "{w:?}"
    );
    assert_eq!(
        condition(&fake, "Ready"),
        ("True".into(), "EngineReady".into())
    );
    let db = fake.get(DB).unwrap();
    assert_eq!(db["status"]["phase"], "Running");
    assert_eq!(db["status"]["documentCount"], 12);
    assert_eq!(db["status"]["endpoint"], "http://docs.search.svc:8080");

    // steady state: zero writes, and the token was kept
    let action = run(&fake, &ctx).await.unwrap();
    assert_eq!(writes(&fake), Vec::<String>::new());
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(60)));
    assert_eq!(fake.get(SECRET).unwrap()["data"]["token"], token);
}

#[tokio::test]
async fn update_applies_only_what_changed() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    run(&fake, &ctx).await.unwrap();
    let mut db = fake.get(DB).unwrap();
    db["spec"]["logging"] = json!({"level": "debug"});
    fake.put(DB, db);
    run(&fake, &ctx).await.unwrap();
    let patched: Vec<_> = writes(&fake)
        .into_iter()
        .filter(|w| w.starts_with("PATCH"))
        .collect();
    assert!(
        patched
            .iter()
            .any(|w| w.ends_with("configmaps/docs-config")),
        "{patched:?}"
    );
    assert!(
        patched.iter().any(|w| w.ends_with("statefulsets/docs")),
        "{patched:?}"
    );
    assert!(
        !patched
            .iter()
            .any(|w| w.contains("services") || w.contains("secrets")),
        "{patched:?}"
    );
    assert_eq!(fake.get(DB).unwrap()["status"]["observedGeneration"], 2);
}

#[tokio::test]
async fn suspend_scales_to_zero_and_removes_pdb() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    assert!(fake.get(PDB).is_some());
    let mut db = fake.get(DB).unwrap();
    db["spec"]["suspend"] = json!(true);
    fake.put(DB, db);
    run(&fake, &ctx).await.unwrap();
    assert_eq!(fake.get(STS).unwrap()["spec"]["replicas"], 0);
    assert!(fake.get(PDB).is_none());
    assert!(
        writes(&fake)
            .iter()
            .any(|w| w.starts_with("DELETE") && w.ends_with("poddisruptionbudgets/docs"))
    );
    assert_eq!(fake.get(DB).unwrap()["status"]["phase"], "Suspended");
    assert_eq!(
        condition(&fake, "Ready"),
        ("False".into(), "Suspended".into())
    );
    run(&fake, &ctx).await.unwrap();
    assert_eq!(writes(&fake), Vec::<String>::new());
}

#[tokio::test]
async fn deletion_makes_no_writes_and_pvc_policy_follows_spec() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi", "deletionPolicy": "Delete"}}));
    run(&fake, &ctx).await.unwrap();
    assert_eq!(
        fake.get(STS).unwrap()["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"],
        "Delete"
    );
    assert!(
        fake.get(DB).unwrap()["metadata"]
            .get("finalizers")
            .is_none()
    );
    fake.merge(
        DB,
        &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
    );
    let action = run(&fake, &ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(writes(&fake), Vec::<String>::new());
}

#[tokio::test]
async fn api_error_is_typed_and_backs_off() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    fake.fail_next("PATCH", "statefulsets", 500);
    let db = current(&fake);
    let err = reconcile(db.clone(), ctx.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Kube(_)), "{err:?}");
    assert_eq!(
        error_policy(db.clone(), &err, ctx.clone()),
        Action::requeue(std::time::Duration::from_secs(5))
    );
    assert_eq!(
        error_policy(db.clone(), &err, ctx.clone()),
        Action::requeue(std::time::Duration::from_secs(10))
    );
    assert!(ctx.metrics.render().contains(
        "instant_db_operator_reconcile_errors_total{controller=\"instantdb\",kind=\"kube\""
    ));
    // the next attempt succeeds and resets the backoff
    reconcile(db.clone(), ctx.clone()).await.unwrap();
    assert_eq!(
        error_policy(db, &err, ctx),
        Action::requeue(std::time::Duration::from_secs(5))
    );
}

#[tokio::test]
async fn invalid_spec_goes_to_status_without_hot_loop() {
    // replicas: 2 would be rejected by the CRD's CEL rule; the operator checks again.
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}, "replicas": 2}));
    let action = run(&fake, &ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(fake.get(DB).unwrap()["status"]["phase"], "Failed");
    assert_eq!(
        condition(&fake, "Degraded"),
        ("True".into(), "InvalidSpec".into())
    );
    assert!(fake.get(STS).is_none());
    run(&fake, &ctx).await.unwrap();
    assert_eq!(writes(&fake), Vec::<String>::new());
}

#[tokio::test]
async fn engine_health_failure_marks_degraded() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    let engine = Arc::new(FakeEngine(Mutex::new(Err("connection refused".into()))));
    let ctx2 = Arc::new(Context::new(
        fake.client(),
        ctx.config.clone(),
        engine,
        Metrics::new().unwrap(),
    ));
    run(&fake, &ctx2).await.unwrap();
    assert_eq!(
        condition(&fake, "Degraded"),
        ("True".into(), "HealthCheckFailed".into())
    );
    assert_eq!(fake.get(DB).unwrap()["status"]["phase"], "Degraded");
}

#[tokio::test]
async fn service_monitor_only_when_crd_exists_and_foreign_objects_are_not_taken_over() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    fake.put(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/servicemonitors.monitoring.coreos.com",
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "servicemonitors.monitoring.coreos.com"}, "spec": {}}),
    );
    fake.put(
        "/api/v1/namespaces/search/configmaps/docs-config",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "docs-config", "namespace": "search"}}),
    );
    let err = run(&fake, &ctx).await.unwrap_err();
    assert!(err.to_string().contains("not owned"), "{err}");
    fake.remove("/api/v1/namespaces/search/configmaps/docs-config");
    run(&fake, &ctx).await.unwrap();
    assert!(
        fake.get("/apis/monitoring.coreos.com/v1/namespaces/search/servicemonitors/docs")
            .is_some()
    );
}
