//! InstantDbRestore flows against the in-memory fake API server and a fake engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{DB, FakeEngine, RestoreStartAnswer, mark_ready, reconcile_once, setup_with_engine};
use instant_db_crds::backup::InstantDbRestore;
use instant_db_operator::controller::Context;
use instant_db_operator::controller::restore::{
    POLL_RUNNING, RETRY_PENDING, RETRY_QUEUED, reconcile,
};
use instant_db_operator::engine_client::{IntegrityCheck, RestorePhase};
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
                          "completedAt": completed,
                          "destination": {"s3": {"endpoint": "http://minio:9000", "bucket": "backups",
                              "prefix": "search/docs", "region": "us-east-1",
                              "credentialsSecret": "s3-creds"}},
                          "archiveUrl": format!("s3://backups/search/docs/{name}-id.tar.gz?endpoint=http%3A%2F%2Fminio%3A9000&allow_http=true&region=us-east-1&credentials=s3-creds")}}),
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

fn sources(engine: &FakeEngine) -> Vec<String> {
    engine
        .restores
        .lock()
        .unwrap()
        .iter()
        .map(|(s, _)| s.clone())
        .collect()
}

fn condition_of(status: &Value, type_: &str) -> (String, String) {
    let c = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"));
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

#[tokio::test]
async fn a_restore_runs_as_an_engine_job_and_reports_what_the_engine_reports() {
    let (fake, ctx, engine) = instance_with_backups().await;
    put_restore(&fake, json!({"instance": "docs"}));
    assert_eq!(
        run_restore(&fake, &ctx).await,
        Action::requeue(POLL_RUNNING)
    );
    let started = engine.restores.lock().unwrap().clone();
    assert_eq!(started.len(), 1);
    let (source, id) = &started[0];
    // the latest completed backup, at its recorded location, credentials by reference
    assert!(
        source.starts_with("s3://backups/search/docs/newer-id.tar.gz?endpoint="),
        "{source}"
    );
    assert!(source.ends_with("&credentials=s3-creds"), "{source}");
    assert!(
        !source.contains("AKID") && !source.contains("s3cr3t"),
        "{source}"
    );
    let uid = fake.get(RESTORE).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(*id, format!("undo-{}", &uid[..8]));
    let s = status(&fake);
    assert_eq!(s["phase"], "Running");
    assert_eq!(s["restoreId"], json!(id));
    assert_eq!(s["restoredBackup"], "newer");
    assert_eq!(
        condition_of(&s, "Complete"),
        ("False".into(), "Running".into())
    );

    // the engine moves on: the status follows, nothing else is sent
    engine.set_restore_phase(RestorePhase::Verifying, None, 0);
    assert_eq!(
        run_restore(&fake, &ctx).await,
        Action::requeue(POLL_RUNNING)
    );
    assert!(
        status(&fake)["message"]
            .as_str()
            .unwrap()
            .contains("verifying"),
        "{}",
        status(&fake)
    );
    engine.set_restore_phase(RestorePhase::Completed, None, 12);
    assert_eq!(run_restore(&fake, &ctx).await, Action::await_change());
    let s = status(&fake);
    assert_eq!(s["phase"], "Completed");
    assert_eq!(s["documentCount"], 12);
    assert!(
        s["startedAt"].is_string() && s["completedAt"].is_string(),
        "{s}"
    );
    assert_eq!(
        condition_of(&s, "Complete"),
        ("True".into(), "Completed".into())
    );
    assert!(!s.to_string().contains("s3cr3t"), "{s}");
    // finished: no request, no second restore
    assert_eq!(run_restore(&fake, &ctx).await, Action::await_change());
    assert_eq!(fake.log().len(), 0);
    assert_eq!(engine.restores.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_restarted_operator_follows_the_same_job_and_never_starts_a_second() {
    let (fake, ctx, engine) = instance_with_backups().await;
    put_restore(&fake, json!({"instance": "docs"}));
    run_restore(&fake, &ctx).await;
    // a new operator process: it reads the recorded id and only polls
    run_restore(&fake, &ctx).await;
    assert_eq!(engine.restores.lock().unwrap().len(), 1);
    // the operator stopped after the engine accepted the job but before it recorded the id:
    // the start is sent again with the same id and the engine answers with the same job
    fake.merge(
        RESTORE,
        &json!({"status": {"restoreId": null, "phase": "Pending"}}),
    );
    run_restore(&fake, &ctx).await;
    let started = engine.restores.lock().unwrap().clone();
    assert_eq!(started.len(), 2);
    assert_eq!(started[0], started[1], "same source, same id");
    assert_eq!(
        engine.restore_jobs.lock().unwrap().len(),
        1,
        "one job on the engine"
    );
    assert_eq!(status(&fake)["phase"], "Running");
}

#[tokio::test]
async fn a_rolled_back_or_failed_job_fails_the_restore_with_the_engines_words() {
    let (fake, ctx, engine) = instance_with_backups().await;
    put_restore(&fake, json!({"instance": "docs"}));
    run_restore(&fake, &ctx).await;
    engine.set_restore_phase(
        RestorePhase::RolledBack,
        Some("integrity check of the restored data failed: fts mismatch"),
        0,
    );
    assert_eq!(run_restore(&fake, &ctx).await, Action::await_change());
    let s = status(&fake);
    assert_eq!(s["phase"], "Failed");
    let error = s["error"].as_str().unwrap();
    assert!(
        error.contains("the instance kept its previous data"),
        "{error}"
    );
    assert!(error.contains("fts mismatch"), "{error}");
    assert_eq!(
        condition_of(&s, "Failed"),
        ("True".into(), "RolledBack".into())
    );

    let (fake, ctx, engine) = instance_with_backups().await;
    put_restore(&fake, json!({"instance": "docs"}));
    run_restore(&fake, &ctx).await;
    engine.set_restore_phase(
        RestorePhase::Failed,
        Some("checksum mismatch for instant-db.sqlite; nothing was changed"),
        0,
    );
    run_restore(&fake, &ctx).await;
    let s = status(&fake);
    assert_eq!(s["phase"], "Failed");
    assert!(
        s["error"].as_str().unwrap().contains("checksum mismatch"),
        "{s}"
    );
}

#[tokio::test]
async fn an_engine_busy_with_another_operation_queues_the_restore_instead_of_failing_it() {
    let (fake, ctx, engine) = instance_with_backups().await;
    *engine.restore_start.lock().unwrap() =
        RestoreStartAnswer::Busy("backup nightly-1 is running".into());
    put_restore(&fake, json!({"instance": "docs"}));
    assert_eq!(
        run_restore(&fake, &ctx).await,
        Action::requeue(RETRY_QUEUED)
    );
    let s = status(&fake);
    assert_eq!(s["phase"], "Pending");
    let message = s["message"].as_str().unwrap();
    assert!(
        message.starts_with("queued:") && message.contains("backup nightly-1"),
        "{s}"
    );
    assert!(s.get("error").is_none());
    *engine.restore_start.lock().unwrap() = RestoreStartAnswer::Accept;
    run_restore(&fake, &ctx).await;
    assert_eq!(status(&fake)["phase"], "Running");
}

#[tokio::test]
async fn a_restore_waits_while_a_backup_of_its_instance_runs() {
    let (fake, ctx, engine) = instance_with_backups().await;
    put_backup(&fake, "nightly", "Running", "2026-12-01T00:00:00Z");
    put_restore(&fake, json!({"instance": "docs", "backup": "older"}));
    assert_eq!(
        run_restore(&fake, &ctx).await,
        Action::requeue(RETRY_PENDING)
    );
    let s = status(&fake);
    assert_eq!(s["phase"], "Pending");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("InstantDbBackup nightly of docs is running"),
        "{s}"
    );
    assert!(engine.restores.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_named_backup_is_restored_and_one_not_completed_waits_or_fails() {
    let (fake, ctx, engine) = instance_with_backups().await;
    put_restore(&fake, json!({"instance": "docs", "backup": "older"}));
    run_restore(&fake, &ctx).await;
    assert!(sources(&engine)[0].contains("/older-id.tar.gz?"));

    put_restore(&fake, json!({"instance": "docs", "backup": "broken"}));
    run_restore(&fake, &ctx).await;
    assert_eq!(status(&fake)["phase"], "Failed");
    assert!(
        status(&fake)["error"]
            .as_str()
            .unwrap()
            .contains("failed; it cannot be restored")
    );

    put_backup(&fake, "running", "Pending", "2026-12-01T00:00:00Z");
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
async fn a_failed_integrity_check_with_auto_restore_restores_the_newest_backup_from_before_the_last_pass_once()
 {
    let (fake, ctx, engine) = instance_with_backups().await;
    fake.merge(DB, &json!({"spec": {"recovery": {"autoRestore": true}}}));
    // the check passed on 15 November, between the backups `older` (1 Nov) and `newer` (30 Nov)
    engine
        .health
        .lock()
        .unwrap()
        .as_mut()
        .unwrap()
        .last_integrity_check = Some(IntegrityCheck {
        at: Some("2026-11-15T00:00:00Z".parse().unwrap()),
        ok: Some(true),
        message: None,
    });
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        fake.get(DB).unwrap()["status"]["lastIntegrityPass"],
        "2026-11-15T00:00:00Z"
    );
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

    assert_eq!(
        restore["metadata"]["annotations"]["instantdb.io/last-integrity-pass"],
        "2026-11-15T00:00:00Z"
    );

    // the restore controller restores the newest backup from before the last passing check
    // (`newer` finished after it and may hold the damage), and says so
    let r: InstantDbRestore = serde_json::from_value(restore).unwrap();
    reconcile(Arc::new(r), ctx.clone()).await.unwrap();
    assert!(
        sources(&engine)[0].contains("/older-id.tar.gz?"),
        "{:?}",
        sources(&engine)
    );
    let s = fake.get(auto).unwrap()["status"].clone();
    assert_eq!(s["restoredBackup"], "older");
    let events = chosen_notes(&fake);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("InstantDbBackup older"), "{}", events[0]);
    assert!(events[0].contains("skipped newer"), "{}", events[0]);
    engine.set_restore_phase(RestorePhase::Completed, None, 12);
    let r: InstantDbRestore = serde_json::from_value(fake.get(auto).unwrap()).unwrap();
    reconcile(Arc::new(r), ctx.clone()).await.unwrap();
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

/// The notes of the `BackupChosen` Events, oldest first.
fn chosen_notes(fake: &FakeApiServer) -> Vec<String> {
    fake.objects_under("/apis/events.k8s.io/v1/namespaces/search/events")
        .iter()
        .filter(|e| e["reason"] == "BackupChosen")
        .map(|e| e["note"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The engine reports an integrity check at `at` that passed (`ok`) or failed.
fn set_integrity_check(engine: &FakeEngine, at: &str, ok: bool) {
    engine
        .health
        .lock()
        .unwrap()
        .as_mut()
        .unwrap()
        .last_integrity_check = Some(IntegrityCheck {
        at: Some(at.parse().unwrap()),
        ok: Some(ok),
        message: None,
    });
}

#[tokio::test]
async fn automatic_recovery_skips_a_backup_that_failed_verification_and_says_so() {
    let (fake, ctx, engine) = instance_with_backups().await;
    fake.merge(DB, &json!({"spec": {"recovery": {"autoRestore": true}}}));
    fake.merge(
        &format!("{BACKUPS}/older"),
        &json!({"status": {"verified": {"result": "Passed", "time": "2026-11-01T00:05:00Z"}}}),
    );
    fake.merge(
        &format!("{BACKUPS}/newer"),
        &json!({"status": {"verified": {"result": "Failed", "time": "2026-11-30T00:05:00Z",
            "message": "backup newer-id failed its integrity check: 5 chunks are missing"}}}),
    );
    // both backups finished before the last passing check: only verification tells them apart
    for (at, ok) in [
        ("2026-12-01T06:00:00Z", true),
        ("2026-12-01T10:00:00Z", false),
    ] {
        set_integrity_check(&engine, at, ok);
        reconcile_once(&fake, &ctx).await.unwrap();
    }
    let auto =
        "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores/docs-auto-20261201100000";
    let r: InstantDbRestore =
        serde_json::from_value(fake.get(auto).expect("an automatic InstantDbRestore")).unwrap();
    reconcile(Arc::new(r), ctx.clone()).await.unwrap();
    assert!(
        sources(&engine)[0].contains("/older-id.tar.gz?"),
        "the newest backup failed verification: {:?}",
        sources(&engine)
    );
    let s = fake.get(auto).unwrap()["status"].clone();
    assert_eq!(s["restoredBackup"], "older");
    let chosen = chosen_notes(&fake);
    assert!(
        chosen[0].contains("InstantDbBackup older")
            && chosen[0].contains("passed verification")
            && chosen[0].contains("skipped newer (failed verification)"),
        "{chosen:?}"
    );
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
    let c = common::db_condition(fake, type_);
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

#[tokio::test]
async fn a_running_restore_whose_pod_is_away_waits_for_it_instead_of_failing() {
    let (fake, ctx, engine) = instance_with_backups().await;
    put_restore(&fake, json!({"instance": "docs"}));
    run_restore(&fake, &ctx).await;
    // the engine pod restarts during the swap: its job record is on the data volume
    fake.remove(common::POD);
    assert_eq!(
        run_restore(&fake, &ctx).await,
        Action::requeue(RETRY_PENDING)
    );
    let s = status(&fake);
    assert_eq!(s["phase"], "Running");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("waiting for the engine to report"),
        "{s}"
    );
    // back, and the engine's startup recovery finished the job
    mark_ready(&fake);
    engine.set_restore_phase(RestorePhase::Completed, None, 12);
    run_restore(&fake, &ctx).await;
    assert_eq!(status(&fake)["phase"], "Completed");
    assert_eq!(
        engine.restores.lock().unwrap().len(),
        1,
        "never a second start"
    );
    // an engine with no record of the job: Failed, saying what to check
    let (fake, ctx, engine) = instance_with_backups().await;
    put_restore(&fake, json!({"instance": "docs"}));
    run_restore(&fake, &ctx).await;
    engine.restore_jobs.lock().unwrap().clear();
    run_restore(&fake, &ctx).await;
    let s = status(&fake);
    assert_eq!(s["phase"], "Failed");
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("no record of restore job"),
        "{s}"
    );
}

#[tokio::test]
async fn a_restore_request_the_engine_refuses_fails_at_once_instead_of_retrying() {
    let (fake, ctx, engine) = instance_with_backups().await;
    *engine.restore_start.lock().unwrap() =
        RestoreStartAnswer::Refused("HTTP 400 Bad Request: invalid archive URL".into());
    put_restore(&fake, json!({"instance": "docs"}));
    assert_eq!(run_restore(&fake, &ctx).await, Action::await_change());
    let s = status(&fake);
    assert_eq!(s["phase"], "Failed");
    assert!(
        s["error"].as_str().unwrap().contains("invalid archive URL"),
        "{s}"
    );
    assert_eq!(
        condition_of(&s, "Failed"),
        ("True".into(), "EngineRefused".into())
    );
}
