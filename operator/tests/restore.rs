//! InstantDbRestore flows against the in-memory fake API server and a fake engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{DB, FakeEngine, mark_ready, reconcile_once, setup_with_engine};
use instant_db_crds::backup::InstantDbRestore;
use instant_db_operator::controller::Context;
use instant_db_operator::controller::restore::{RETRY_PENDING, reconcile};
use instant_db_operator::engine_client::IntegrityCheck;
use instant_db_operator::fake_api::FakeApiServer;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

const RESTORE: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores/undo";
const BACKUPS: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups";

fn put_backup(fake: &FakeApiServer, name: &str, phase: &str, completed: &str) {
    fake.put(
        &format!("{BACKUPS}/{name}"),
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
               "metadata": {"name": name, "namespace": "search"},
               "spec": {"instance": "docs", "destination": {"s3": {
                   "endpoint": "http://minio:9000", "bucket": "backups",
                   "credentialsSecret": "s3-creds"}}},
               "status": {"phase": phase, "backupId": format!("{name}-id"),
                          "completedAt": completed}}),
    );
}

fn put_restore(fake: &FakeApiServer, spec: Value) {
    fake.put(
        RESTORE,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbRestore",
               "metadata": {"name": "undo", "namespace": "search"}, "spec": spec}),
    );
}

/// A running instance with credentials and two completed backups (`older`, `newer`).
async fn instance_with_backups() -> (FakeApiServer, Arc<Context>, Arc<FakeEngine>) {
    let (fake, ctx, engine) = setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    reconcile_once(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    fake.put(
        "/api/v1/namespaces/search/secrets/s3-creds",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "s3-creds", "namespace": "search"},
               "data": {"AWS_ACCESS_KEY_ID": "QUtJRA==", "AWS_SECRET_ACCESS_KEY": "czNjcjN0"}}),
    );
    put_backup(&fake, "older", "Completed", "2026-11-01T00:00:00Z");
    put_backup(&fake, "newer", "Completed", "2026-11-30T00:00:00Z");
    put_backup(&fake, "broken", "Failed", "2026-12-01T00:00:00Z");
    (fake, ctx, engine)
}

async fn run_restore(fake: &FakeApiServer, ctx: &Arc<Context>) -> Action {
    fake.clear_log();
    let r: InstantDbRestore = serde_json::from_value(fake.get(RESTORE).unwrap()).unwrap();
    reconcile(Arc::new(r), ctx.clone()).await.unwrap()
}

fn status(fake: &FakeApiServer) -> Value {
    fake.get(RESTORE).unwrap()["status"].clone()
}

#[tokio::test]
async fn without_a_named_backup_the_latest_completed_one_is_restored() {
    let (fake, ctx, engine) = instance_with_backups().await;
    put_restore(&fake, json!({"instance": "docs"}));
    assert_eq!(run_restore(&fake, &ctx).await, Action::await_change());
    let sources = engine.restores.lock().unwrap().clone();
    assert_eq!(sources.len(), 1);
    assert!(
        sources[0].starts_with("s3://backups/search/docs/newer-id.tar.gz?endpoint="),
        "{}",
        sources[0]
    );
    assert!(sources[0].contains("access_key_id=AKID"), "{}", sources[0]);
    let s = status(&fake);
    assert_eq!(s["phase"], "Completed");
    assert_eq!(s["restoredBackup"], "newer");
    assert_eq!(s["documentCount"], 12);
    assert!(
        s["startedAt"].is_string() && s["completedAt"].is_string(),
        "{s}"
    );
    assert!(!s.to_string().contains("s3cr3t"), "{s}");
    // finished: no request, no second restore
    assert_eq!(run_restore(&fake, &ctx).await, Action::await_change());
    assert_eq!(fake.log().len(), 0);
    assert_eq!(engine.restores.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_named_backup_is_restored_and_one_not_completed_waits_or_fails() {
    let (fake, ctx, engine) = instance_with_backups().await;
    put_restore(&fake, json!({"instance": "docs", "backup": "older"}));
    run_restore(&fake, &ctx).await;
    assert!(engine.restores.lock().unwrap()[0].contains("/older-id.tar.gz?"));

    put_restore(&fake, json!({"instance": "docs", "backup": "broken"}));
    run_restore(&fake, &ctx).await;
    assert_eq!(status(&fake)["phase"], "Failed");
    assert!(
        status(&fake)["error"]
            .as_str()
            .unwrap()
            .contains("failed; it cannot be restored")
    );

    put_backup(&fake, "running", "Running", "2026-12-01T00:00:00Z");
    put_restore(&fake, json!({"instance": "docs", "backup": "running"}));
    assert_eq!(
        run_restore(&fake, &ctx).await,
        Action::requeue(RETRY_PENDING)
    );
    assert_eq!(status(&fake)["phase"], "Pending");
    assert_eq!(
        status(&fake)["message"],
        "InstantDbBackup running is not completed yet"
    );
    assert_eq!(engine.restores.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_refused_restore_fails_and_says_the_instance_kept_its_data() {
    let (fake, ctx, engine) = instance_with_backups().await;
    *engine.restore_answer.lock().unwrap() =
        Err("HTTP 503: checksum mismatch for instant-db.sqlite".into());
    put_restore(&fake, json!({"instance": "docs"}));
    assert_eq!(run_restore(&fake, &ctx).await, Action::await_change());
    let s = status(&fake);
    assert_eq!(s["phase"], "Failed");
    let error = s["error"].as_str().unwrap();
    assert!(error.contains("checksum mismatch"), "{error}");
    assert!(error.contains("keeps its previous data"), "{error}");
}

#[tokio::test]
async fn a_restore_waits_for_a_missing_or_suspended_instance_and_fails_without_any_backup() {
    let (fake, ctx, engine) = setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    put_restore(&fake, json!({"instance": "ghost"}));
    assert_eq!(
        run_restore(&fake, &ctx).await,
        Action::requeue(RETRY_PENDING)
    );
    assert_eq!(status(&fake)["message"], "InstantDb ghost not found");

    fake.merge(DB, &json!({"spec": {"suspend": true}}));
    put_restore(&fake, json!({"instance": "docs"}));
    run_restore(&fake, &ctx).await;
    assert!(
        status(&fake)["message"]
            .as_str()
            .unwrap()
            .contains("suspended")
    );

    fake.merge(DB, &json!({"spec": {"suspend": false}}));
    run_restore(&fake, &ctx).await;
    assert_eq!(status(&fake)["phase"], "Failed");
    assert!(
        status(&fake)["error"]
            .as_str()
            .unwrap()
            .contains("no completed InstantDbBackup"),
        "{}",
        status(&fake)
    );
    assert!(engine.restores.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_integrity_check_with_auto_restore_restores_the_latest_backup_once() {
    let (fake, ctx, engine) = instance_with_backups().await;
    fake.merge(DB, &json!({"spec": {"recovery": {"autoRestore": true}}}));
    engine
        .health
        .lock()
        .unwrap()
        .as_mut()
        .unwrap()
        .last_integrity_check = Some(IntegrityCheck {
        at: Some("2026-12-01T10:00:00Z".parse().unwrap()),
        ok: Some(false),
        message: Some("page 7 corrupt".into()),
    });
    reconcile_once(&fake, &ctx).await.unwrap();
    let auto =
        "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores/docs-auto-20261201100000";
    let restore = fake.get(auto).expect("an automatic InstantDbRestore");
    assert_eq!(restore["spec"], json!({"instance": "docs"}));
    assert_eq!(
        restore["metadata"]["ownerReferences"][0]["kind"],
        "InstantDb"
    );
    let recovering = condition(&fake, "Recovering");
    assert_eq!(recovering, ("True".into(), "AutoRestoreRunning".into()));
    let reasons: Vec<String> = fake
        .objects_under("/apis/events.k8s.io/v1/namespaces/search/events")
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        reasons.contains(&"AutoRestoreStarted".to_string()),
        "{reasons:?}"
    );

    // the restore controller restores the latest completed backup
    let r: InstantDbRestore = serde_json::from_value(restore).unwrap();
    reconcile(Arc::new(r), ctx.clone()).await.unwrap();
    assert!(engine.restores.lock().unwrap()[0].contains("/newer-id.tar.gz?"));
    assert_eq!(fake.get(auto).unwrap()["status"]["phase"], "Completed");

    // the same failed check does not start a second restore; the status records the recovery
    reconcile_once(&fake, &ctx).await.unwrap();
    let made =
        fake.objects_under("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores");
    assert_eq!(made.len(), 1);
    assert_eq!(
        condition(&fake, "Recovering"),
        ("False".into(), "AutoRestoreCompleted".into())
    );
    assert!(fake.get(DB).unwrap()["status"]["lastRecovery"].is_string());
}

#[tokio::test]
async fn without_auto_restore_a_failed_check_only_reports() {
    let (fake, ctx, engine) = instance_with_backups().await;
    engine
        .health
        .lock()
        .unwrap()
        .as_mut()
        .unwrap()
        .last_integrity_check = Some(IntegrityCheck {
        at: Some("2026-12-01T10:00:00Z".parse().unwrap()),
        ok: Some(false),
        message: Some("page 7 corrupt".into()),
    });
    reconcile_once(&fake, &ctx).await.unwrap();
    assert!(
        fake.objects_under("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores")
            .is_empty()
    );
    assert_eq!(condition(&fake, "IntegrityOk").0, "False");
}

fn condition(fake: &FakeApiServer, type_: &str) -> (String, String) {
    let db = fake.get(DB).unwrap();
    let c = db["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {}", db["status"]))
        .clone();
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}
