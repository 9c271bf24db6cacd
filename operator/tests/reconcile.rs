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
    let c = common::db_condition(fake, type_);
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
    // The engine follows its level file: the pod template (and so the pod) stays as it was.
    assert!(
        !patched
            .iter()
            .any(|w| w.contains("statefulsets") || w.contains("services") || w.contains("secrets")),
        "{patched:?}"
    );
    assert_eq!(fake.get(DB).unwrap()["status"]["observedGeneration"], 2);
    // A change the engine reads only at start goes into the pod template.
    fake.clear_log();
    let mut db = fake.get(DB).unwrap();
    db["spec"]["embedding"] = json!({"batchSize": 8});
    fake.put(DB, db);
    run(&fake, &ctx).await.unwrap();
    let patched = writes(&fake);
    assert!(
        patched
            .iter()
            .any(|w| w == "PATCH /apis/apps/v1/namespaces/search/statefulsets/docs"),
        "{patched:?}"
    );
}

#[tokio::test]
async fn suspend_scales_to_zero_and_removes_pdb() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}, "disruption": {"protect": true}}));
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
    assert!(
        matches!(&err, Error::ApplyFailed { kind, .. } if kind == "StatefulSet"),
        "{err:?}"
    );
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
async fn a_ready_pod_whose_engine_health_cannot_be_read_is_not_ready_and_degraded() {
    let (fake, ctx, engine) = common::setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    *engine.health.lock().unwrap() = Err("connection refused".into());
    run(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "Degraded"),
        ("True".into(), "HealthCheckFailed".into())
    );
    assert_eq!(
        condition(&fake, "Ready"),
        ("False".into(), "HealthCheckFailed".into())
    );
    assert_eq!(fake.get(DB).unwrap()["status"]["phase"], "Degraded");
}

fn message(fake: &FakeApiServer, type_: &str) -> String {
    common::db_condition(fake, type_)["message"]
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
        "metadata": {"name": "data-docs-0", "namespace": "search",
                     "labels": {"app.kubernetes.io/name": "instant-db", "app.kubernetes.io/instance": "docs", "app.kubernetes.io/component": "engine"}},
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

// Six instances whose pods run, an engine whose health answer takes a second, and a limit of
// two: the controller's start-up pass reads every engine, never more than two at once. (With
// kube-runtime's default, unbounded, all six reconciles and what they hold run together.)
#[tokio::test(start_paused = true)]
async fn the_controller_runs_at_most_max_concurrent_reconciles_at_once() {
    use instant_db_operator::server::Health;
    use std::sync::atomic::Ordering;
    let fake = FakeApiServer::new();
    for i in 0..6 {
        let name = format!("db-{i}");
        fake.put(
            &format!("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbs/{name}"),
            json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
                   "metadata": {"name": name, "namespace": "search"},
                   "spec": {"storage": {"size": "1Gi"}}}),
        );
        fake.put(
            &format!("/api/v1/namespaces/search/pods/{name}-0"),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": format!("{name}-0"), "namespace": "search",
                       "labels": {"app.kubernetes.io/name": "instant-db", "app.kubernetes.io/instance": name,
                                  "app.kubernetes.io/component": "engine"}},
                   "status": {"phase": "Running", "podIP": "10.0.0.7",
                              "conditions": [{"type": "Ready", "status": "True"}]}}),
        );
    }
    let engine = Arc::new(FakeEngine::healthy());
    *engine.health_delay.lock().unwrap() = Duration::from_secs(1);
    let ctx = Arc::new(Context::new(
        fake.client(),
        instant_db_operator::controller::OperatorConfig {
            default_image: "ghcr.io/instant-db/instant-db:0.1.0".into(),
            max_concurrent_reconciles: 2,
            ..Default::default()
        },
        engine.clone(),
        Metrics::new().unwrap(),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let controller = tokio::spawn(instant_db_operator::controller::instantdb::run(
        ctx,
        vec!["search".into()],
        stop_rx,
        Health::new(),
    ));
    let read = || engine.health_calls.lock().unwrap().len();
    for _ in 0..600 {
        if read() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(read() >= 6, "only {} health reads", read());
    assert_eq!(engine.health_max_in_flight.load(Ordering::SeqCst), 2);
    stop_tx.send(true).unwrap();
    controller.await.unwrap();
}

/// The engine pod as the kubelet reports it: `status` is the pod's whole status.
fn put_pod(fake: &FakeApiServer, status: serde_json::Value) {
    fake.put(
        common::POD,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "docs-0", "namespace": "search",
                     "labels": {"app.kubernetes.io/name": "instant-db", "app.kubernetes.io/instance": "docs", "app.kubernetes.io/component": "engine"}}, "status": status}),
    );
}

/// A running pod whose readiness probe fails (the engine turned itself unready).
fn unready_running_pod() -> serde_json::Value {
    json!({"phase": "Running", "podIP": "10.0.0.7",
           "conditions": [{"type": "PodScheduled", "status": "True"},
                          {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                           "message": "containers with unready status: [engine]"}],
           "containerStatuses": [{"name": "engine", "ready": false, "started": true,
                                  "restartCount": 0, "image": "i", "imageID": "",
                                  "state": {"running": {"startedAt": "2026-12-01T09:00:00Z"}}}]})
}

fn failed_integrity_health() -> instant_db_operator::engine_client::DetailedHealth {
    use instant_db_operator::engine_client::{DetailedHealth, HealthStatus, IntegrityCheck};
    DetailedHealth {
        status: HealthStatus::Unhealthy,
        ready: Some(false),
        document_count: Some(12),
        last_integrity_check: Some(IntegrityCheck {
            at: Some("2026-12-01T10:00:00Z".parse().unwrap()),
            ok: Some(false),
            message: Some("fts: 20 rows missing".into()),
        }),
        ..Default::default()
    }
}

// On a real cluster the engine marks itself unready when its integrity check fails, so the
// StatefulSet has 0 ready replicas when the operator first sees the failure. The health
// endpoints still answer by pod IP; the operator must read them and recover.
#[tokio::test]
async fn an_unready_engine_with_a_failed_integrity_check_is_reported_and_restored_automatically() {
    let (fake, ctx, engine) = common::setup_with_engine(
        json!({"storage": {"size": "1Gi"}, "recovery": {"autoRestore": true}}),
    );
    run(&fake, &ctx).await.unwrap();
    put_pod(&fake, unready_running_pod());
    *engine.health.lock().unwrap() = Ok(failed_integrity_health());
    run(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "IntegrityOk"),
        ("False".into(), "IntegrityCheckFailed".into())
    );
    assert_eq!(
        condition(&fake, "Ready"),
        ("False".into(), "IntegrityFailed".into())
    );
    assert_eq!(
        condition(&fake, "Degraded"),
        ("True".into(), "IntegrityFailed".into())
    );
    assert!(message(&fake, "Degraded").contains("fts: 20 rows missing"));
    assert!(
        fake.get("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores/docs-auto-20261201100000")
            .is_some(),
        "no automatic restore was created"
    );
    assert_eq!(
        condition(&fake, "Recovering"),
        ("True".into(), "AutoRestoreRunning".into())
    );
}

#[tokio::test]
async fn a_crash_looping_engine_is_not_ready_and_degraded_with_the_kubelet_message() {
    let (fake, ctx, engine) = common::setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    put_pod(
        &fake,
        json!({"phase": "Running", "podIP": "10.0.0.7",
               "conditions": [{"type": "PodScheduled", "status": "True"},
                              {"type": "Ready", "status": "False"}],
               "containerStatuses": [{"name": "engine", "ready": false, "started": false,
                   "restartCount": 5, "image": "i", "imageID": "",
                   "state": {"waiting": {"reason": "CrashLoopBackOff",
                       "message": "back-off 2m40s restarting failed container=engine"}},
                   "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}),
    );
    // the engine does not answer while its process is down
    *engine.health.lock().unwrap() = Err("connection refused".into());
    run(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "Ready"),
        ("False".into(), "CrashLoopBackOff".into())
    );
    assert_eq!(
        condition(&fake, "Degraded"),
        ("True".into(), "CrashLoopBackOff".into())
    );
    let m = message(&fake, "Degraded");
    assert!(m.contains("back-off 2m40s"), "{m}");
    assert!(m.contains("exit code 2"), "{m}");
    assert_eq!(fake.get(DB).unwrap()["status"]["phase"], "Degraded");
}

// kstatus (Flux, kpt, cli-utils) reads observedGeneration, Reconciling and Stalled.
#[tokio::test]
async fn reconciling_and_stalled_follow_kstatus_and_every_condition_has_the_current_generation() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "Reconciling"),
        ("True".into(), "EngineStarting".into())
    );
    assert_eq!(condition(&fake, "Stalled").0, "False");
    mark_ready(&fake);
    run(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "Reconciling"),
        ("False".into(), "Reconciled".into())
    );
    assert_eq!(condition(&fake, "Stalled").0, "False");
    // a spec change that cannot be built: stalled until the user fixes it
    let mut db = fake.get(DB).unwrap();
    db["spec"]["replicas"] = json!(3);
    fake.put(DB, db);
    run(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "Stalled"),
        ("True".into(), "InvalidSpec".into())
    );
    assert_eq!(condition(&fake, "Reconciling").0, "False");
    let db = fake.get(DB).unwrap();
    let generation = db["metadata"]["generation"].clone();
    assert_eq!(db["status"]["observedGeneration"], generation);
    for c in db["status"]["conditions"].as_array().unwrap() {
        assert_eq!(c["observedGeneration"], generation, "stale condition {c}");
    }
}

#[tokio::test]
async fn resyncs_of_a_healthy_instance_with_a_moving_engine_check_time_make_no_writes() {
    use instant_db_operator::engine_client::IntegrityCheck;
    let (fake, ctx, engine) = common::setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    let check_at = |minute: i64| IntegrityCheck {
        at: Some(k8s_openapi::jiff::Timestamp::from_second(1_796_000_000 + minute * 60).unwrap()),
        ok: Some(true),
        message: None,
    };
    engine
        .health
        .lock()
        .unwrap()
        .as_mut()
        .unwrap()
        .last_integrity_check = Some(check_at(0));
    run(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    run(&fake, &ctx).await.unwrap();
    assert_eq!(condition(&fake, "IntegrityOk").0, "True");
    for n in 1..=5 {
        {
            let mut h = engine.health.lock().unwrap();
            let h = h.as_mut().unwrap();
            // the engine checked again and ingest goes on
            h.last_integrity_check = Some(check_at(n));
            h.document_count = Some(12 + n);
        }
        run(&fake, &ctx).await.unwrap();
        assert_eq!(writes(&fake), Vec::<String>::new(), "resync {n} wrote");
    }
    // a change of result is written at once
    engine
        .health
        .lock()
        .unwrap()
        .as_mut()
        .unwrap()
        .last_integrity_check = Some(IntegrityCheck {
        ok: Some(false),
        message: Some("page 3 corrupt".into()),
        ..check_at(6)
    });
    run(&fake, &ctx).await.unwrap();
    assert_eq!(condition(&fake, "IntegrityOk").0, "False");
}

// kube-runtime's Recorder keys its series by reason (not message): a second message of one
// reason would only bump the first event's count. `kubectl describe` must show all three.
#[tokio::test]
async fn three_messages_of_one_reason_are_three_events_and_a_repeat_is_counted() {
    use kube::Resource;
    use kube::runtime::events::EventType;
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    let reference = current(&fake).object_ref(&());
    for backup in ["daily-1", "daily-2", "daily-3", "daily-3"] {
        ctx.event(
            &reference,
            EventType::Normal,
            "BackupPruned",
            "Prune",
            format!("pruned InstantDbBackup {backup}"),
        )
        .await;
    }
    let events = fake.objects_under("/apis/events.k8s.io/v1/namespaces/search/events");
    let mut notes: Vec<(String, i64)> = events
        .iter()
        .map(|e| {
            (
                e["note"].as_str().unwrap().to_string(),
                e["series"]["count"].as_i64().unwrap_or(1),
            )
        })
        .collect();
    notes.sort();
    assert_eq!(
        notes,
        vec![
            ("pruned InstantDbBackup daily-1".to_string(), 1),
            ("pruned InstantDbBackup daily-2".to_string(), 1),
            ("pruned InstantDbBackup daily-3".to_string(), 2),
        ]
    );
}

#[tokio::test]
async fn a_single_replica_instance_has_no_pdb_unless_disruption_protect_is_set() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    assert!(
        fake.get(PDB).is_none(),
        "a PDB would block every node drain"
    );
    let mut db = fake.get(DB).unwrap();
    db["spec"]["disruption"] = json!({"protect": true});
    fake.put(DB, db);
    run(&fake, &ctx).await.unwrap();
    assert_eq!(fake.get(PDB).unwrap()["spec"]["minAvailable"], 1);
    // switched off again: the PDB goes
    let mut db = fake.get(DB).unwrap();
    db["spec"]["disruption"] = json!({"protect": false});
    fake.put(DB, db);
    run(&fake, &ctx).await.unwrap();
    assert!(fake.get(PDB).is_none());
}

fn engine_image(fake: &FakeApiServer) -> String {
    fake.get(STS).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

fn with_default_image(fake: &FakeApiServer, ctx: &Arc<Context>, image: &str) -> Arc<Context> {
    let mut config = ctx.config.clone();
    config.default_image = image.into();
    let ctx = Arc::new(Context::new(
        fake.client(),
        config,
        Arc::new(FakeEngine::healthy()),
        Metrics::new().unwrap(),
    ));
    common::start_caches(fake, &ctx);
    ctx
}

#[tokio::test]
async fn an_operator_upgrade_keeps_the_recorded_engine_image_unless_following_the_operator() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    let old = "ghcr.io/instant-db/instant-db:0.1.0";
    assert_eq!(fake.get(DB).unwrap()["status"]["image"], old);
    assert_eq!(engine_image(&fake), old);
    // the operator was upgraded: running engines keep their image
    let upgraded = with_default_image(&fake, &ctx, "ghcr.io/instant-db/instant-db:0.2.0");
    run(&fake, &upgraded).await.unwrap();
    assert_eq!(engine_image(&fake), old);
    assert_eq!(fake.get(DB).unwrap()["status"]["image"], old);
    // an instance made before images were recorded keeps the image its StatefulSet runs
    let mut db = fake.get(DB).unwrap();
    db["status"].as_object_mut().unwrap().remove("image");
    fake.put(DB, db);
    run(&fake, &upgraded).await.unwrap();
    assert_eq!(engine_image(&fake), old);
    assert_eq!(fake.get(DB).unwrap()["status"]["image"], old);
    // the user opts in to follow the operator
    let mut db = fake.get(DB).unwrap();
    db["spec"]["imageUpdatePolicy"] = json!("FollowOperator");
    fake.put(DB, db);
    run(&fake, &upgraded).await.unwrap();
    assert_eq!(engine_image(&fake), "ghcr.io/instant-db/instant-db:0.2.0");
    assert_eq!(
        fake.get(DB).unwrap()["status"]["image"],
        "ghcr.io/instant-db/instant-db:0.2.0"
    );
    // an explicit spec.image always wins
    let mut db = fake.get(DB).unwrap();
    db["spec"]["image"] = json!("registry.local/instant-db:custom");
    fake.put(DB, db);
    run(&fake, &upgraded).await.unwrap();
    assert_eq!(engine_image(&fake), "registry.local/instant-db:custom");
}

// A failure the user need not act on (here the API server answers 500 to the PDB delete) is
// retried with backoff, but status still describes this generation and names the object.
#[tokio::test]
async fn a_failed_child_apply_still_writes_status_naming_the_object_and_the_api_message() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}, "disruption": {"protect": true}}));
    run(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    run(&fake, &ctx).await.unwrap();
    let mut db = fake.get(DB).unwrap();
    db["spec"]["disruption"]["protect"] = json!(false);
    fake.put(DB, db);
    fake.fail_next_with(
        "DELETE",
        "poddisruptionbudgets/docs",
        500,
        "InternalError",
        "etcdserver: request timed out",
    );
    let err = run(&fake, &ctx).await.unwrap_err();
    assert!(
        err.to_string().contains("PodDisruptionBudget docs"),
        "{err}"
    );
    let db = fake.get(DB).unwrap();
    assert_eq!(
        db["status"]["observedGeneration"],
        db["metadata"]["generation"]
    );
    assert_eq!(
        condition(&fake, "Reconciling"),
        ("True".into(), "ApplyFailed".into())
    );
    let m = message(&fake, "Reconciling");
    assert!(
        m.contains("PodDisruptionBudget docs") && m.contains("etcdserver: request timed out"),
        "{m}"
    );
    // the engine's own state is still reported
    assert_eq!(condition(&fake, "Ready").0, "True");
    // the retry succeeds and clears it
    run(&fake, &ctx).await.unwrap();
    assert!(fake.get(PDB).is_none());
    assert_eq!(
        condition(&fake, "Reconciling"),
        ("False".into(), "Reconciled".into())
    );
}
