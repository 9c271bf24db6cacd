//! Reconcile flows of the InstantDb controller against the in-memory fake API server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{DB, FakeEngine, PDB, SECRET, STS, current, mark_ready, run, setup};
use instant_db_operator::Error;
use instant_db_operator::controller::Context;
use instant_db_operator::controller::error_policy;
use instant_db_operator::controller::instantdb::reconcile;
use instant_db_operator::fake_api::FakeApiServer;
use instant_db_operator::metrics::Metrics;
use kube::runtime::controller::Action;
use serde_json::json;

fn writes(fake: &FakeApiServer) -> Vec<String> {
    fake.log()
        .into_iter()
        .filter(|l| l.is_write())
        .map(|l| format!("{} {}", l.method, l.path))
        .collect()
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
    let engine = Arc::new(FakeEngine::new(Err("connection refused".into())));
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

fn message(fake: &FakeApiServer, type_: &str) -> String {
    let db = fake.get(DB).unwrap();
    db["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string()
}

fn event_reasons(fake: &FakeApiServer) -> Vec<String> {
    fake.objects_under("/apis/events.k8s.io/v1/namespaces/search/events")
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn service_monitor_only_when_crd_exists() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    assert!(
        fake.get("/apis/monitoring.coreos.com/v1/namespaces/search/servicemonitors/docs")
            .is_none()
    );
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    fake.put(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/servicemonitors.monitoring.coreos.com",
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "servicemonitors.monitoring.coreos.com"}, "spec": {}}),
    );
    run(&fake, &ctx).await.unwrap();
    assert!(
        fake.get("/apis/monitoring.coreos.com/v1/namespaces/search/servicemonitors/docs")
            .is_some()
    );
}

#[tokio::test]
async fn foreign_object_of_the_same_name_is_a_name_conflict_in_status_without_hot_loop() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    let cm = "/api/v1/namespaces/search/configmaps/docs-config";
    fake.put(
        cm,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "docs-config", "namespace": "search"}}),
    );
    let action = run(&fake, &ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    assert_eq!(
        condition(&fake, "Ready"),
        ("False".into(), "NameConflict".into())
    );
    assert_eq!(
        condition(&fake, "Degraded"),
        ("True".into(), "NameConflict".into())
    );
    assert!(
        message(&fake, "Ready").contains("ConfigMap docs-config already exists"),
        "{}",
        message(&fake, "Ready")
    );
    assert_eq!(fake.get(DB).unwrap()["status"]["phase"], "Failed");
    assert!(
        fake.get(cm).unwrap()["metadata"]
            .get("ownerReferences")
            .is_none(),
        "not taken over"
    );
    assert!(event_reasons(&fake).contains(&"NameConflict".to_string()));
    assert!(ctx.metrics.render().contains("reason=\"NameConflict\""));
    // the next look makes no write at all: no status churn, no repeated event
    run(&fake, &ctx).await.unwrap();
    assert_eq!(writes(&fake), Vec::<String>::new());
    // once the foreign object is gone the instance is built
    fake.remove(cm);
    run(&fake, &ctx).await.unwrap();
    assert!(fake.get(STS).is_some());
    assert_eq!(
        condition(&fake, "Ready"),
        ("False".into(), "EngineStarting".into())
    );
}

#[tokio::test]
async fn object_rejected_by_the_api_server_is_apply_rejected_in_status_without_hot_loop() {
    // requests above limits pass the CRD schema but the API server refuses the StatefulSet
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"},
        "resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}));
    let msg = "StatefulSet.apps \"docs\" is invalid: spec.template.spec.containers[0].resources.requests: Invalid value: \"2Gi\": must be less than or equal to memory limit of 1Gi";
    fake.fail_next_with("PATCH", "statefulsets/docs", 422, "Invalid", msg);
    let action = run(&fake, &ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    assert_eq!(
        condition(&fake, "Ready"),
        ("False".into(), "ApplyRejected".into())
    );
    assert!(message(&fake, "Degraded").contains("must be less than or equal to memory limit"));
    assert!(message(&fake, "Degraded").contains("StatefulSet docs"));
    assert!(event_reasons(&fake).contains(&"ApplyRejected".to_string()));
    // retried slowly: the same rejection writes nothing but the one apply attempt
    fake.fail_next_with("PATCH", "statefulsets/docs", 422, "Invalid", msg);
    run(&fake, &ctx).await.unwrap();
    assert_eq!(
        writes(&fake),
        vec!["PATCH /apis/apps/v1/namespaces/search/statefulsets/docs".to_string()]
    );
}

#[tokio::test]
async fn deleted_admin_secret_is_recreated_with_a_new_token() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    let token = fake.get(SECRET).unwrap()["data"]["token"].clone();
    let pod_hash = |f: &FakeApiServer| {
        f.get(STS).unwrap()["spec"]["template"]["metadata"]["annotations"]["instantdb.io/config-hash"]
            .clone()
    };
    let before = pod_hash(&fake);
    fake.remove(SECRET);
    run(&fake, &ctx).await.unwrap();
    let new = fake.get(SECRET).unwrap()["data"]["token"].clone();
    assert!(new.is_string());
    assert_ne!(new, token, "the old token is gone with the Secret");
    assert_ne!(
        pod_hash(&fake),
        before,
        "the engine pod restarts to read the new token"
    );
}

#[tokio::test]
async fn shrinking_the_volume_is_ignored_with_one_warning_event() {
    let (fake, ctx) = setup(json!({"storage": {"size": "2Gi"}}));
    run(&fake, &ctx).await.unwrap();
    let pvc = "/api/v1/namespaces/search/persistentvolumeclaims/data-docs-0";
    fake.put(
        pvc,
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-docs-0", "namespace": "search"},
        "spec": {"resources": {"requests": {"storage": "2Gi"}}}}),
    );
    let mut db = fake.get(DB).unwrap();
    db["spec"]["storage"]["size"] = json!("1Gi");
    fake.put(DB, db);
    run(&fake, &ctx).await.unwrap();
    assert_eq!(
        fake.get(pvc).unwrap()["spec"]["resources"]["requests"]["storage"],
        "2Gi"
    );
    let shrink = |f: &FakeApiServer| {
        event_reasons(f)
            .iter()
            .filter(|r| *r == "VolumeShrinkIgnored")
            .count()
    };
    assert_eq!(shrink(&fake), 1);
    // later resyncs do not repeat it
    run(&fake, &ctx).await.unwrap();
    assert_eq!(shrink(&fake), 1);
    // growing patches the PVC
    let mut db = fake.get(DB).unwrap();
    db["spec"]["storage"]["size"] = json!("3Gi");
    fake.put(DB, db);
    run(&fake, &ctx).await.unwrap();
    assert_eq!(
        fake.get(pvc).unwrap()["spec"]["resources"]["requests"]["storage"],
        "3Gi"
    );
}

#[tokio::test]
async fn deleting_an_object_forgets_its_backoff() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    let db = current(&fake);
    let err = Error::Engine("x".into());
    error_policy(db, &err, ctx.clone());
    assert_eq!(ctx.backoff_entries(), 1);
    fake.merge(
        DB,
        &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
    );
    run(&fake, &ctx).await.unwrap();
    assert_eq!(ctx.backoff_entries(), 0);
}

// The fake answers the initial LIST of each watch (so the caches sync and the controller
// reconciles what it listed) but not the WATCH itself, which the watchers retry. The clock is
// paused so those retries cost no real time.
#[tokio::test(start_paused = true)]
async fn controller_reports_synced_watches_and_reconciles_what_it_listed() {
    use instant_db_operator::server::Health;
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    let health = Health::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let controller = tokio::spawn(instant_db_operator::controller::instantdb::run(
        ctx,
        vec!["search".into()],
        stop_rx,
        health.clone(),
    ));
    let mut reconciled = false;
    for _ in 0..600 {
        reconciled = fake.get(DB).unwrap().get("status").is_some();
        if reconciled && health.synced() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lists = fake
        .log()
        .iter()
        .filter(|l| l.path == "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbs")
        .count();
    assert!(
        health.synced(),
        "watches never reported synced ({lists} list/watch requests, {} total)",
        fake.log().len()
    );
    assert!(reconciled, "the listed InstantDb was not reconciled");
    assert!(fake.get(STS).is_some());
    stop_tx.send(true).unwrap();
    controller.await.unwrap();
}
