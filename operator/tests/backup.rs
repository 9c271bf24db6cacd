//! InstantDbBackup and InstantDbBackupPolicy flows against the in-memory fake API server and a fake engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{FakeEngine, StartAnswer, mark_ready, reconcile_once, setup_with_engine};
use instant_db_crds::backup::{InstantDbBackup, InstantDbBackupPolicy};
use instant_db_operator::controller::backup::{
    POLL_RUNNING, RETRY_PENDING, RETRY_QUEUED, reconcile,
};
use instant_db_operator::controller::{Context, policy};
use instant_db_operator::engine_client::{
    BackupJob, BackupJobStatus, EngineTarget, Verification, VerificationPhase,
};
use instant_db_operator::fake_api::FakeApiServer;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

const BACKUP: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups/nightly";
const CREDS: &str = "/api/v1/namespaces/search/secrets/s3-creds";
const POLICY: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackuppolicies/daily";
const STORAGE_CREDS: &str = "/api/v1/namespaces/search/secrets/docs-storage-credentials";
const BACKUPS: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups";

/// (status, reason) of the condition `type_` in a status.
fn condition(status: &Value, type_: &str) -> (String, String) {
    let c = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"));
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

fn s3_destination() -> Value {
    json!({"s3": {"endpoint": "http://minio.storage:9000", "bucket": "backups",
                  "credentialsSecret": "s3-creds"}})
}

fn put_backup(fake: &FakeApiServer, spec: Value) {
    fake.put(
        BACKUP,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
               "metadata": {"name": "nightly", "namespace": "search"}, "spec": spec}),
    );
}

fn put_credentials(fake: &FakeApiServer, data: Value) {
    fake.put(
        CREDS,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "s3-creds", "namespace": "search"}, "data": data}),
    );
}

/// "AKID" and "s3cr3t", base64.
fn good_credentials() -> Value {
    json!({"AWS_ACCESS_KEY_ID": "QUtJRA==", "AWS_SECRET_ACCESS_KEY": "czNjcjN0"})
}

/// A running instance `docs` (its objects reconciled, the pod with an IP), credentials, and a
/// backup `nightly` of it with `spec`.
async fn running_instance_with_backup(
    spec: Value,
) -> (FakeApiServer, Arc<Context>, Arc<FakeEngine>) {
    let (fake, ctx, engine) = setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    reconcile_once(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    put_credentials(&fake, good_credentials());
    put_backup(&fake, spec);
    (fake, ctx, engine)
}

async fn run_backup(fake: &FakeApiServer, ctx: &Arc<Context>) -> Action {
    fake.clear_log();
    let b: InstantDbBackup = serde_json::from_value(fake.get(BACKUP).unwrap()).unwrap();
    reconcile(Arc::new(b), ctx.clone()).await.unwrap()
}

fn status(fake: &FakeApiServer) -> Value {
    fake.get(BACKUP).unwrap()["status"].clone()
}

fn writes(fake: &FakeApiServer) -> usize {
    fake.log()
        .iter()
        .filter(|l| l.is_write() && !l.path.contains("/events"))
        .count()
}

fn event_reasons(fake: &FakeApiServer) -> Vec<String> {
    fake.objects_under("/apis/events.k8s.io/v1/namespaces/search/events")
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_backup_starts_on_the_engine_then_completes_with_what_the_engine_reports() {
    let (fake, ctx, engine) =
        running_instance_with_backup(json!({"instance": "docs", "destination": s3_destination()}))
            .await;
    assert_eq!(run_backup(&fake, &ctx).await, Action::requeue(POLL_RUNNING));
    let started = engine.started.lock().unwrap().clone();
    assert_eq!(started.len(), 1);
    let uid = fake.get(BACKUP).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(started[0].id, format!("nightly-{}", &uid[..8]));
    assert_eq!(started[0].engine, EngineTarget::http("10.0.0.7"));
    // the credentials travel by reference: the Secret's name, never its keys
    assert_eq!(
        started[0].destination,
        "s3://backups/search/docs?endpoint=http%3A%2F%2Fminio.storage%3A9000&allow_http=true\
         &region=us-east-1&credentials=s3-creds"
    );
    let s = status(&fake);
    assert_eq!(s["phase"], "Running");
    assert_eq!(
        s["archiveUrl"],
        json!(format!(
            "s3://backups/search/docs/{}.tar.gz?endpoint=http%3A%2F%2Fminio.storage%3A9000\
             &allow_http=true&region=us-east-1&credentials=s3-creds",
            started[0].id
        ))
    );
    assert_eq!(
        s["destination"],
        json!({"s3": {"endpoint": "http://minio.storage:9000", "bucket": "backups",
                      "prefix": "search/docs", "region": "us-east-1",
                      "credentialsSecret": "s3-creds"}})
    );
    // the engine reads the keys from the storage-credentials Secret mounted in its pod
    let stored = fake
        .get(STORAGE_CREDS)
        .expect("the storage-credentials Secret");
    assert_eq!(
        stored["data"],
        json!({"s3-creds.AWS_ACCESS_KEY_ID": "QUtJRA==", "s3-creds.AWS_SECRET_ACCESS_KEY": "czNjcjN0"})
    );
    assert_eq!(
        stored["metadata"]["ownerReferences"][0]["kind"],
        "InstantDb"
    );
    assert_eq!(
        condition(&s, "Complete"),
        ("False".into(), "Running".into())
    );
    assert_eq!(s["backupId"], json!(started[0].id));
    assert!(s["startedAt"].is_string());
    assert!(event_reasons(&fake).contains(&"BackupStarted".to_string()));

    // still running: polled, nothing written
    *engine.job.lock().unwrap() = Some(BackupJob {
        id: started[0].id.clone(),
        status: BackupJobStatus::Running,
        ..Default::default()
    });
    assert_eq!(run_backup(&fake, &ctx).await, Action::requeue(POLL_RUNNING));
    assert_eq!(writes(&fake), 0);

    *engine.job.lock().unwrap() = Some(BackupJob {
        id: started[0].id.clone(),
        status: BackupJobStatus::Completed,
        location: Some(format!("s3://backups/search/docs/{}.tar.gz", started[0].id)),
        size_bytes: Some(81920),
        sha256: Some("ab".repeat(32)),
        document_count: Some(12),
        engine_version: Some("0.1.0".into()),
        error: None,
        verification: None,
    });
    assert_eq!(run_backup(&fake, &ctx).await, Action::await_change());
    let s = status(&fake);
    assert_eq!(s["phase"], "Completed");
    assert_eq!(s["sizeBytes"], 81920);
    assert_eq!(s["documentCount"], 12);
    assert_eq!(s["engineVersion"], "0.1.0");
    assert!(s["completedAt"].is_string());
    assert!(
        !s.to_string().contains("s3cr3t"),
        "no credential in status: {s}"
    );
    assert!(event_reasons(&fake).contains(&"BackupCompleted".to_string()));
    assert_eq!(
        condition(&s, "Complete"),
        ("True".into(), "Completed".into())
    );
    assert_eq!(condition(&s, "Failed").0, "False");

    // finished: not a single request, and no second start
    assert_eq!(run_backup(&fake, &ctx).await, Action::await_change());
    assert_eq!(fake.log().len(), 0);
    assert_eq!(engine.started.lock().unwrap().len(), 1);

    // the instance's own status shows it: the Last Backup column and BackupHealthy
    reconcile_once(&fake, &ctx).await.unwrap();
    let db = fake.get(common::DB).unwrap();
    assert_eq!(db["status"]["lastBackup"], s["completedAt"]);
    let healthy = db["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "BackupHealthy")
        .unwrap()
        .clone();
    assert_eq!(healthy["status"], "True");
    assert_eq!(healthy["reason"], "LastBackupCompleted");
}

#[tokio::test]
async fn a_start_the_engine_already_has_is_recorded_not_repeated() {
    let (fake, ctx, engine) =
        running_instance_with_backup(json!({"instance": "docs", "destination": s3_destination()}))
            .await;
    *engine.start.lock().unwrap() = StartAnswer::IdInUse;
    assert_eq!(run_backup(&fake, &ctx).await, Action::requeue(POLL_RUNNING));
    assert_eq!(status(&fake)["phase"], "Running");
}

#[tokio::test]
async fn an_unreachable_engine_is_an_error_retried_with_backoff_and_the_backup_stays_unstarted() {
    let (fake, ctx, engine) =
        running_instance_with_backup(json!({"instance": "docs", "destination": s3_destination()}))
            .await;
    *engine.start.lock().unwrap() = StartAnswer::Fail("connection refused".into());
    let b: InstantDbBackup = serde_json::from_value(fake.get(BACKUP).unwrap()).unwrap();
    let err = reconcile(Arc::new(b), ctx.clone()).await.unwrap_err();
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert!(status(&fake).get("backupId").is_none());
}

#[tokio::test]
async fn a_backup_waits_pending_for_its_instance_its_pod_and_its_secret() {
    let (fake, ctx, _) = setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    put_backup(
        &fake,
        json!({"instance": "other", "destination": s3_destination()}),
    );
    assert_eq!(
        run_backup(&fake, &ctx).await,
        Action::requeue(RETRY_PENDING)
    );
    assert_eq!(status(&fake)["phase"], "Pending");
    assert_eq!(status(&fake)["message"], "InstantDb other not found");
    // the same wait again writes nothing
    run_backup(&fake, &ctx).await;
    assert_eq!(writes(&fake), 0);

    put_backup(
        &fake,
        json!({"instance": "docs", "destination": s3_destination()}),
    );
    run_backup(&fake, &ctx).await;
    assert_eq!(
        status(&fake)["message"],
        "engine pod docs-0 is not running yet"
    );

    reconcile_once(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    run_backup(&fake, &ctx).await;
    assert_eq!(
        status(&fake)["message"],
        "credentials Secret s3-creds not found"
    );
}

#[tokio::test]
async fn a_suspended_instance_keeps_its_backup_pending() {
    let (fake, ctx, engine) =
        running_instance_with_backup(json!({"instance": "docs", "destination": s3_destination()}))
            .await;
    fake.merge(common::DB, &json!({"spec": {"suspend": true}}));
    assert_eq!(
        run_backup(&fake, &ctx).await,
        Action::requeue(RETRY_PENDING)
    );
    assert_eq!(status(&fake)["phase"], "Pending");
    assert!(
        status(&fake)["message"]
            .as_str()
            .unwrap()
            .contains("suspended"),
        "{}",
        status(&fake)
    );
    assert!(engine.started.lock().unwrap().is_empty());
}

#[tokio::test]
async fn destinations_that_cannot_work_fail_at_once_with_the_reason() {
    let (fake, ctx, engine) = running_instance_with_backup(
        json!({"instance": "docs", "destination": {"volume": {"claimName": "backups", "path": "../other"}}}),
    )
    .await;
    assert_eq!(run_backup(&fake, &ctx).await, Action::await_change());
    assert_eq!(status(&fake)["phase"], "Failed");
    assert!(
        status(&fake)["error"]
            .as_str()
            .unwrap()
            .contains("must be a directory inside the volume"),
        "{}",
        status(&fake)
    );
    assert_eq!(
        condition(&status(&fake), "Failed"),
        ("True".into(), "Failed".into())
    );
    assert_eq!(condition(&status(&fake), "Complete").0, "False");
    assert!(event_reasons(&fake).contains(&"BackupFailed".to_string()));

    put_backup(
        &fake,
        json!({"instance": "docs", "destination": s3_destination()}),
    );
    put_credentials(&fake, json!({"AWS_ACCESS_KEY_ID": "QUtJRA=="}));
    fake.merge(BACKUP, &json!({"status": null}));
    run_backup(&fake, &ctx).await;
    assert_eq!(status(&fake)["phase"], "Failed");
    assert!(
        status(&fake)["error"]
            .as_str()
            .unwrap()
            .contains("needs the keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{}",
        status(&fake)
    );
    assert!(engine.started.lock().unwrap().is_empty());
}

fn put_secret(fake: &FakeApiServer, name: &str, data: Value) {
    fake.put(
        &format!("/api/v1/namespaces/search/secrets/{name}"),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name, "namespace": "search"}, "data": data}),
    );
}

/// GCS and Azure destinations reach the engine as `gs://` / `az://` URLs naming the
/// credentials Secret; its one key is projected into the storage-credentials Secret under
/// `S.KEY`, beside the S3 keys another destination needs.
#[tokio::test]
async fn gcs_and_azure_backups_start_with_their_urls_and_project_their_secrets_key() {
    let (fake, ctx, engine) = running_instance_with_backup(json!({"instance": "docs",
        "destination": {"gcs": {"bucket": "idb-backups", "credentialsSecret": "gcs-key"}}}))
    .await;
    // "{}" base64: a service account key file
    put_secret(
        &fake,
        "gcs-key",
        json!({"GOOGLE_SERVICE_ACCOUNT_KEY": "e30="}),
    );
    assert_eq!(run_backup(&fake, &ctx).await, Action::requeue(POLL_RUNNING));
    let started = engine.started.lock().unwrap().clone();
    assert_eq!(
        started[0].destination,
        "gs://idb-backups/search/docs?credentials=gcs-key"
    );
    let s = status(&fake);
    assert_eq!(
        s["destination"],
        json!({"gcs": {"bucket": "idb-backups", "path": "search/docs", "credentialsSecret": "gcs-key"}})
    );
    assert_eq!(
        s["archiveUrl"],
        json!(format!(
            "gs://idb-backups/search/docs/{}.tar.gz?credentials=gcs-key",
            started[0].id
        ))
    );
    assert_eq!(
        fake.get(STORAGE_CREDS).unwrap()["data"],
        json!({"gcs-key.GOOGLE_SERVICE_ACCOUNT_KEY": "e30="})
    );

    // a second backup, to azure: the storage account travels in the URL
    let azure = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups/weekly";
    fake.put(
        azure,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
               "metadata": {"name": "weekly", "namespace": "search"},
               "spec": {"instance": "docs", "destination": {"azure": {
                   "storageAccount": "idbprod", "container": "backups", "path": "prod",
                   "credentialsSecret": "az-key"}}}}),
    );
    put_secret(
        &fake,
        "az-key",
        json!({"AZURE_STORAGE_ACCOUNT_KEY": "a2V5"}),
    );
    // the gcs backup finished: the fence lets the next one start
    *engine.job.lock().unwrap() = Some(completed_job(&started[0].id, None));
    run_backup(&fake, &ctx).await;
    assert_eq!(status(&fake)["phase"], "Completed");
    let b: InstantDbBackup = serde_json::from_value(fake.get(azure).unwrap()).unwrap();
    reconcile(Arc::new(b), ctx.clone()).await.unwrap();
    let started = engine.started.lock().unwrap().clone();
    assert_eq!(
        started.last().unwrap().destination,
        "az://backups/prod?account=idbprod&credentials=az-key"
    );
    assert_eq!(
        fake.get(STORAGE_CREDS).unwrap()["data"],
        json!({"az-key.AZURE_STORAGE_ACCOUNT_KEY": "a2V5",
               "gcs-key.GOOGLE_SERVICE_ACCOUNT_KEY": "e30="})
    );
}

/// A credentials Secret without its store's key fails the backup at once, naming the Secret
/// and the key; nothing reaches the engine and the key is never projected.
#[tokio::test]
async fn a_secret_without_the_azure_key_fails_the_backup_naming_the_secret_and_the_key() {
    let (fake, ctx, engine) = running_instance_with_backup(json!({"instance": "docs",
        "destination": {"azure": {"storageAccount": "idbprod", "container": "backups",
                                  "credentialsSecret": "s3-creds"}}}))
    .await;
    assert_eq!(run_backup(&fake, &ctx).await, Action::await_change());
    let s = status(&fake);
    assert_eq!(s["phase"], "Failed", "{s}");
    assert_eq!(
        s["error"],
        "credentials Secret s3-creds has no AZURE_STORAGE_ACCOUNT_KEY (the azure destination \
         needs the key AZURE_STORAGE_ACCOUNT_KEY): add it to the Secret"
    );
    assert_eq!(condition(&s, "Failed"), ("True".into(), "Failed".into()));
    assert!(engine.started.lock().unwrap().is_empty());
    assert!(fake.get(STORAGE_CREDS).is_none_or(|c| {
        c["data"]
            .as_object()
            .is_none_or(|d| d.keys().all(|k| !k.contains("AZURE")))
    }));
}

#[tokio::test]
async fn an_engine_that_lost_the_job_fails_the_backup_with_what_to_do() {
    let (fake, ctx, engine) =
        running_instance_with_backup(json!({"instance": "docs", "destination": s3_destination()}))
            .await;
    run_backup(&fake, &ctx).await;
    *engine.job.lock().unwrap() = None;
    assert_eq!(run_backup(&fake, &ctx).await, Action::await_change());
    let s = status(&fake);
    assert_eq!(s["phase"], "Failed");
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("create a new InstantDbBackup"),
        "{s}"
    );
}

/// The engine keeps its job records on its data volume: after a restart it reports a backup it
/// was writing as `failed` / interrupted, and a verification it was running as `failed` /
/// not verified. The operator reports both as the engine says and stops polling: the backup
/// never stays Running or its verification Pending.
#[tokio::test]
async fn jobs_the_engine_reports_interrupted_by_its_restart_end_with_its_advice_and_no_more_polling()
 {
    let (fake, ctx, engine) =
        running_instance_with_backup(json!({"instance": "docs", "destination": s3_destination()}))
            .await;
    assert_eq!(run_backup(&fake, &ctx).await, Action::requeue(POLL_RUNNING));
    let id = status(&fake)["backupId"].as_str().unwrap().to_string();
    let cut = "interrupted by an engine restart while backup x was being written: no complete \
               archive was recorded; take a new backup (`instant-db backup`, POST /admin/backups, \
               or a new InstantDbBackup)";
    *engine.job.lock().unwrap() = Some(BackupJob {
        id: id.clone(),
        status: BackupJobStatus::Failed,
        error: Some(cut.into()),
        ..Default::default()
    });
    assert_eq!(run_backup(&fake, &ctx).await, Action::await_change());
    let s = status(&fake);
    assert_eq!(s["phase"], "Failed", "{s}");
    assert_eq!(s["error"], cut);
    assert_eq!(condition(&s, "Failed"), ("True".into(), "Failed".into()));
    assert!(event_reasons(&fake).contains(&"BackupFailed".to_string()));
    reconcile_once(&fake, &ctx).await.unwrap();
    let (st, reason, message) = instance_condition(&fake, "BackupHealthy");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "LastBackupFailed")
    );
    assert!(message.contains("take a new backup"), "{message}");

    // a second backup completes; its verification is cut by a restart
    let (fake, ctx, engine, id) = started_backup().await;
    *engine.job.lock().unwrap() = Some(completed_job(
        &id,
        engine_verification(VerificationPhase::Running, None),
    ));
    assert_eq!(run_backup(&fake, &ctx).await, Action::requeue(POLL_RUNNING));
    let not_verified = "not verified: the engine restarted before the verification of x \
                        finished (this says nothing about the archive, which was stored); verify \
                        it again (POST /admin/verifications with source s3://…) or take a new backup";
    *engine.job.lock().unwrap() = Some(completed_job(
        &id,
        engine_verification(VerificationPhase::Failed, Some(not_verified)),
    ));
    assert_eq!(run_backup(&fake, &ctx).await, Action::await_change());
    let s = status(&fake);
    assert_eq!(s["phase"], "Completed", "{s}");
    assert_eq!(s["verified"]["result"], "Failed", "{s}");
    assert_eq!(s["verified"]["message"], not_verified);
    assert_eq!(
        condition(&s, "Verified"),
        ("False".into(), "VerificationFailed".into())
    );
}

fn completed_job(id: &str, verification: Option<Verification>) -> BackupJob {
    BackupJob {
        id: id.into(),
        status: BackupJobStatus::Completed,
        location: Some(format!("s3://backups/search/docs/{id}.tar.gz")),
        document_count: Some(12),
        verification,
        ..Default::default()
    }
}

fn engine_verification(phase: VerificationPhase, error: Option<&str>) -> Option<Verification> {
    Some(Verification {
        phase,
        verified_at: Some("2026-12-01T10:00:00Z".into()),
        error: error.map(Into::into),
    })
}

fn instance_condition(fake: &FakeApiServer, type_: &str) -> (String, String, String) {
    let db = fake.get(common::DB).unwrap();
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
        c["message"].as_str().unwrap().into(),
    )
}

/// A backup with an s3 destination, started on the engine: (fake API, context, engine, its id).
async fn started_backup() -> (FakeApiServer, Arc<Context>, Arc<FakeEngine>, String) {
    let (fake, ctx, engine) =
        running_instance_with_backup(json!({"instance": "docs", "destination": s3_destination()}))
            .await;
    run_backup(&fake, &ctx).await;
    let id = engine.started.lock().unwrap()[0].id.clone();
    (fake, ctx, engine, id)
}

#[tokio::test]
async fn a_completed_backup_is_followed_until_its_verification_passes() {
    let (fake, ctx, engine, id) = started_backup().await;
    *engine.job.lock().unwrap() = Some(completed_job(
        &id,
        engine_verification(VerificationPhase::Running, None),
    ));
    // completed, and still polled: the verification runs
    assert_eq!(run_backup(&fake, &ctx).await, Action::requeue(POLL_RUNNING));
    let s = status(&fake);
    assert_eq!(s["phase"], "Completed");
    assert_eq!(s["verified"]["result"], "Pending", "{s}");
    assert_eq!(
        condition(&s, "Verified"),
        ("Unknown".into(), "VerificationPending".into())
    );
    let completed_at = s["completedAt"].clone();
    assert!(event_reasons(&fake).contains(&"BackupCompleted".to_string()));

    *engine.job.lock().unwrap() = Some(completed_job(
        &id,
        engine_verification(VerificationPhase::Passed, None),
    ));
    assert_eq!(run_backup(&fake, &ctx).await, Action::await_change());
    let s = status(&fake);
    assert_eq!(s["verified"]["result"], "Passed", "{s}");
    assert_eq!(s["verified"]["time"], "2026-12-01T10:00:00Z");
    assert_eq!(s["completedAt"], completed_at, "the completion time stays");
    assert_eq!(
        condition(&s, "Verified"),
        ("True".into(), "VerificationPassed".into())
    );
    let reasons = event_reasons(&fake);
    assert!(
        reasons.contains(&"BackupVerified".to_string()),
        "{reasons:?}"
    );
    assert_eq!(
        reasons.iter().filter(|r| *r == "BackupCompleted").count(),
        1,
        "not twice: {reasons:?}"
    );
    // done for good: not a single request
    assert_eq!(run_backup(&fake, &ctx).await, Action::await_change());
    assert_eq!(fake.log().len(), 0);
    reconcile_once(&fake, &ctx).await.unwrap();
    let (st, reason, message) = instance_condition(&fake, "BackupHealthy");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("True", "LastBackupCompleted")
    );
    assert!(message.contains("passed verification"), "{message}");
}

#[tokio::test]
async fn a_backup_that_failed_verification_turns_backup_healthy_false_naming_it() {
    let (fake, ctx, engine, id) = started_backup().await;
    let error = format!(
        "backup {id} failed its checksums check: checksum mismatch for {id}.tar.gz. Do not restore"
    );
    *engine.job.lock().unwrap() = Some(completed_job(
        &id,
        engine_verification(VerificationPhase::Failed, Some(&error)),
    ));
    assert_eq!(run_backup(&fake, &ctx).await, Action::await_change());
    let s = status(&fake);
    assert_eq!(s["phase"], "Completed", "the archive is stored: {s}");
    assert_eq!(s["verified"]["result"], "Failed", "{s}");
    assert_eq!(s["verified"]["message"], json!(error));
    assert_eq!(
        condition(&s, "Verified"),
        ("False".into(), "VerificationFailed".into())
    );
    assert!(event_reasons(&fake).contains(&"BackupVerificationFailed".to_string()));
    reconcile_once(&fake, &ctx).await.unwrap();
    let (st, reason, message) = instance_condition(&fake, "BackupHealthy");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "VerificationFailed")
    );
    assert!(
        message.contains("InstantDbBackup nightly completed but failed verification")
            && message.contains("checksum mismatch"),
        "{message}"
    );
}

#[tokio::test]
async fn a_verification_lost_to_an_engine_restart_keeps_the_backup_completed_and_says_so() {
    let (fake, ctx, engine, id) = started_backup().await;
    *engine.job.lock().unwrap() = Some(completed_job(
        &id,
        engine_verification(VerificationPhase::Running, None),
    ));
    run_backup(&fake, &ctx).await;
    // the engine restarted: it no longer knows the job (its records are in memory)
    *engine.job.lock().unwrap() = None;
    assert_eq!(run_backup(&fake, &ctx).await, Action::await_change());
    let s = status(&fake);
    assert_eq!(s["phase"], "Completed", "{s}");
    assert_eq!(s["verified"]["result"], "Failed", "{s}");
    let m = s["verified"]["message"].as_str().unwrap();
    assert!(
        m.contains("not verified: the engine of docs restarted")
            && m.contains("instant-db verify")
            && m.contains("create a new InstantDbBackup"),
        "{m}"
    );
}

#[tokio::test]
async fn a_backup_without_destination_takes_its_policys() {
    let (fake, ctx, engine) =
        running_instance_with_backup(json!({"instance": "docs", "policy": "daily"})).await;
    run_backup(&fake, &ctx).await;
    assert_eq!(
        status(&fake)["message"],
        "InstantDbBackupPolicy daily (spec.policy) not found"
    );
    fake.put(
        POLICY,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackupPolicy",
               "metadata": {"name": "daily", "namespace": "search"},
               "spec": {"instance": "docs", "schedule": "@daily",
                        "destination": {"s3": {"bucket": "nightly", "prefix": "idb",
                                               "credentialsSecret": "s3-creds"}}}}),
    );
    run_backup(&fake, &ctx).await;
    let started = engine.started.lock().unwrap().clone();
    assert_eq!(started.len(), 1);
    assert!(
        started[0]
            .destination
            .starts_with("s3://nightly/idb?region=us-east-1&credentials=s3-creds"),
        "{}",
        started[0].destination
    );
}

fn put_policy(fake: &FakeApiServer, spec: Value) {
    fake.put(
        POLICY,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackupPolicy",
               "metadata": {"name": "daily", "namespace": "search",
                            "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": spec}),
    );
}

async fn run_policy(fake: &FakeApiServer, ctx: &Arc<Context>) -> Action {
    fake.clear_log();
    let p: InstantDbBackupPolicy = serde_json::from_value(fake.get(POLICY).unwrap()).unwrap();
    policy::reconcile(Arc::new(p), ctx.clone()).await.unwrap()
}

fn policy_backups(fake: &FakeApiServer) -> Vec<Value> {
    fake.objects_under("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups")
}

#[tokio::test]
async fn a_due_policy_creates_a_backup_that_the_backup_controller_takes_to_its_destination() {
    let (fake, ctx, engine) = setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    reconcile_once(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    put_credentials(&fake, good_credentials());
    put_policy(
        &fake,
        json!({"instance": "docs", "schedule": "@hourly",
               "destination": {"s3": {"bucket": "nightly", "credentialsSecret": "s3-creds"}}}),
    );
    run_policy(&fake, &ctx).await;
    let made = policy_backups(&fake);
    assert_eq!(made.len(), 1, "{made:?}");
    let b = &made[0];
    assert_eq!(b["spec"], json!({"instance": "docs", "policy": "daily"}));
    assert_eq!(b["metadata"]["labels"]["instantdb.io/policy"], "daily");
    assert_eq!(
        b["metadata"]["ownerReferences"][0]["kind"],
        "InstantDbBackupPolicy"
    );
    let p = fake.get(POLICY).unwrap();
    assert!(p["status"]["lastScheduleTime"].is_string(), "{p}");
    assert!(p["status"]["nextScheduleTime"].is_string(), "{p}");
    assert_eq!(
        condition(&p["status"], "Ready"),
        ("True".into(), "Scheduled".into())
    );
    assert_eq!(
        condition(&p["status"], "BackupHealthy"),
        ("Unknown".into(), "NoBackups".into())
    );
    assert!(event_reasons(&fake).contains(&"BackupScheduled".to_string()));

    // the backup controller takes it, with the policy's destination
    let path = format!(
        "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups/{}",
        b["metadata"]["name"].as_str().unwrap()
    );
    let backup: InstantDbBackup = serde_json::from_value(fake.get(&path).unwrap()).unwrap();
    reconcile(Arc::new(backup), ctx.clone()).await.unwrap();
    let started = engine.started.lock().unwrap().clone();
    assert_eq!(started.len(), 1);
    assert!(
        started[0]
            .destination
            .starts_with("s3://nightly/search/docs?"),
        "{}",
        started[0].destination
    );

    // the run is recorded: another reconcile within the hour creates nothing and writes nothing
    run_policy(&fake, &ctx).await;
    assert_eq!(policy_backups(&fake).len(), 1);
    assert_eq!(writes(&fake), 0);
}

#[tokio::test]
async fn the_retention_deletes_the_oldest_completed_backups_of_the_policy_only() {
    let (fake, ctx, _) = setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    put_policy(
        &fake,
        json!({"instance": "docs", "schedule": "0 0 1 1 *", "retention": {"keepLast": 2},
               "destination": {"s3": {"bucket": "b", "credentialsSecret": "s3-creds"}}}),
    );
    for (name, policy, completed) in [
        ("old", "daily", "2026-11-01T00:00:00Z"),
        ("mid", "daily", "2026-11-15T00:00:00Z"),
        ("new", "daily", "2026-11-30T00:00:00Z"),
        ("other", "weekly", "2026-10-01T00:00:00Z"),
    ] {
        fake.put(
            &format!("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups/{name}"),
            json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
                   "metadata": {"name": name, "namespace": "search",
                                "labels": {"instantdb.io/policy": policy, "instantdb.io/instance": "docs"}},
                   "spec": {"instance": "docs", "policy": policy},
                   "status": {"phase": "Completed", "completedAt": completed}}),
        );
    }
    run_policy(&fake, &ctx).await;
    let mut left: Vec<String> = policy_backups(&fake)
        .iter()
        .map(|b| b["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    left.sort();
    assert_eq!(left, ["mid", "new", "other"]);
    assert_eq!(
        fake.get(POLICY).unwrap()["status"]["lastSuccessfulBackup"],
        "new"
    );
    assert!(event_reasons(&fake).contains(&"BackupPruned".to_string()));
}

#[tokio::test]
async fn a_policy_with_an_unusable_retention_says_so_and_waits_for_a_fix() {
    let (fake, ctx, _) = setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    put_policy(
        &fake,
        json!({"instance": "docs", "schedule": "@daily", "retention": {"maxAge": "99999999999999999999h"},
               "destination": {"s3": {"bucket": "b", "credentialsSecret": "s3-creds"}}}),
    );
    assert_eq!(run_policy(&fake, &ctx).await, Action::await_change());
    let c = &fake.get(POLICY).unwrap()["status"]["conditions"][0];
    assert_eq!(
        (c["type"].as_str(), c["reason"].as_str()),
        (Some("Ready"), Some("InvalidSpec"))
    );
    assert!(
        c["message"].as_str().unwrap().contains("retention.maxAge"),
        "{c}"
    );
    assert!(policy_backups(&fake).is_empty());
}

#[tokio::test]
async fn retention_deletes_the_archive_through_the_engine_before_the_object_goes() {
    let (fake, ctx, engine) = setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    reconcile_once(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    put_credentials(&fake, good_credentials());
    put_policy(
        &fake,
        json!({"instance": "docs", "schedule": "0 0 1 1 *", "retention": {"keepLast": 1},
               "destination": {"s3": {"bucket": "b", "credentialsSecret": "s3-creds"}}}),
    );
    let path = |name: &str| {
        format!("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups/{name}")
    };
    for (name, completed) in [
        ("old", "2026-11-01T00:00:00Z"),
        ("new", "2026-11-30T00:00:00Z"),
    ] {
        fake.put(
            &path(name),
            json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
                   "metadata": {"name": name, "namespace": "search",
                                "finalizers": ["instantdb.io/delete-archive"],
                                "labels": {"instantdb.io/policy": "daily"}},
                   "spec": {"instance": "docs", "policy": "daily"},
                   "status": {"phase": "Completed", "completedAt": completed,
                              "backupId": format!("{name}-id"),
                              "destination": {"s3": {"bucket": "b", "prefix": "search/docs",
                                  "region": "us-east-1", "credentialsSecret": "s3-creds"}},
                              "archiveUrl": format!("s3://b/search/docs/{name}-id.tar.gz?region=us-east-1&credentials=s3-creds")}}),
        );
    }
    run_policy(&fake, &ctx).await;
    // marked deleted, held by the finalizer until the archive is gone, with retention's mark
    let old = fake.get(&path("old")).expect("held by its finalizer");
    assert!(old["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        old["metadata"]["annotations"]["instantdb.io/pruned-by"],
        "InstantDbBackupPolicy daily"
    );
    let b: InstantDbBackup = serde_json::from_value(old).unwrap();
    assert_eq!(
        reconcile(Arc::new(b), ctx.clone()).await.unwrap(),
        Action::await_change()
    );
    let deleted = engine.deleted.lock().unwrap().clone();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].1, "old-id");
    assert!(
        deleted[0]
            .0
            .starts_with("s3://b/search/docs?region=us-east-1&credentials=s3-creds"),
        "{}",
        deleted[0].0
    );
    assert!(
        fake.get(&path("old")).is_none(),
        "released once the archive is deleted"
    );
    assert!(fake.get(&path("new")).is_some());
    assert!(event_reasons(&fake).contains(&"ArchiveDeleted".to_string()));
}

#[tokio::test]
async fn a_deleted_backup_whose_instance_is_gone_goes_and_says_its_archive_stays() {
    let (fake, ctx, engine) = setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    put_credentials(&fake, good_credentials());
    fake.remove(common::DB);
    fake.put(
        BACKUP,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
               "metadata": {"name": "nightly", "namespace": "search",
                            "finalizers": ["instantdb.io/delete-archive"],
                            "deletionTimestamp": "2026-12-01T00:00:00Z"},
               "spec": {"instance": "docs", "destination": s3_destination(),
                        "deletionPolicy": "Delete"},
               "status": {"phase": "Completed", "backupId": "nightly-id"}}),
    );
    run_backup(&fake, &ctx).await;
    assert!(fake.get(BACKUP).is_none());
    assert!(engine.deleted.lock().unwrap().is_empty());
    assert!(event_reasons(&fake).contains(&"ArchiveKept".to_string()));
}

/// Deletes a backup as `kubectl delete`, a namespace teardown, an Argo CD prune or the garbage
/// collector after its policy's deletion would: a plain DELETE (a real API server's namespace
/// controller and garbage collector send exactly this; the fake has neither, so the test sends
/// it itself).
async fn delete_backup_object(ctx: &Arc<Context>, name: &str) {
    let api: kube::Api<InstantDbBackup> = kube::Api::namespaced(ctx.client.clone(), "search");
    api.delete(name, &Default::default()).await.unwrap();
}

fn backup_at(fake: &FakeApiServer, name: &str) -> Option<InstantDbBackup> {
    fake.get(&format!("{BACKUPS}/{name}"))
        .map(|v| serde_json::from_value(v).unwrap())
}

async fn reconcile_backup(fake: &FakeApiServer, ctx: &Arc<Context>, name: &str) -> Action {
    reconcile(Arc::new(backup_at(fake, name).unwrap()), ctx.clone())
        .await
        .unwrap()
}

/// A running instance with credentials `s3-creds`, the policy `daily` (bucket `nightly`), and
/// one backup it made, started by the backup controller and completed by the engine.
async fn a_completed_policy_backup() -> (FakeApiServer, Arc<Context>, Arc<FakeEngine>, String) {
    let (fake, ctx, engine) = setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    reconcile_once(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    put_credentials(&fake, good_credentials());
    put_policy(
        &fake,
        json!({"instance": "docs", "schedule": "@hourly",
               "destination": {"s3": {"bucket": "nightly", "credentialsSecret": "s3-creds"}}}),
    );
    run_policy(&fake, &ctx).await;
    let name = policy_backups(&fake)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    reconcile_backup(&fake, &ctx, &name).await;
    let id = engine.started.lock().unwrap()[0].id.clone();
    *engine.job.lock().unwrap() = Some(BackupJob {
        id: id.clone(),
        status: BackupJobStatus::Completed,
        location: Some(format!("s3://nightly/search/docs/{id}.tar.gz")),
        ..Default::default()
    });
    reconcile_backup(&fake, &ctx, &name).await;
    assert_eq!(
        backup_at(&fake, &name).unwrap().status.unwrap().phase,
        Some(instant_db_crds::backup::OperationPhase::Completed)
    );
    (fake, ctx, engine, name)
}

#[tokio::test]
async fn a_policy_edited_after_a_backup_changes_neither_where_it_is_restored_from_nor_deleted() {
    let (fake, ctx, engine, name) = a_completed_policy_backup().await;
    let id = engine.started.lock().unwrap()[0].id.clone();
    // the policy moves to another bucket, prefix and credentials
    fake.put(
        "/api/v1/namespaces/search/secrets/new-creds",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "new-creds", "namespace": "search"},
               "data": {"AWS_ACCESS_KEY_ID": "TkVX", "AWS_SECRET_ACCESS_KEY": "bmV3"}}),
    );
    fake.merge(
        POLICY,
        &json!({"spec": {"destination": {"s3": {"bucket": "moved", "prefix": "elsewhere",
                                                "credentialsSecret": "new-creds"}}}}),
    );

    // a restore of the backup reads it where it was written, with the credentials it was
    // written with
    fake.put(
        "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores/undo",
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbRestore",
               "metadata": {"name": "undo", "namespace": "search"},
               "spec": {"instance": "docs", "backup": name}}),
    );
    let r: instant_db_crds::backup::InstantDbRestore = serde_json::from_value(
        fake.get("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores/undo")
            .unwrap(),
    )
    .unwrap();
    instant_db_operator::controller::restore::reconcile(Arc::new(r), ctx.clone())
        .await
        .unwrap();
    let restores = engine.restores.lock().unwrap().clone();
    assert_eq!(
        restores[0].0,
        format!("s3://nightly/search/docs/{id}.tar.gz?region=us-east-1&credentials=s3-creds")
    );
    let stored = fake.get(STORAGE_CREDS).unwrap();
    assert!(
        stored["data"]["s3-creds.AWS_SECRET_ACCESS_KEY"].is_string(),
        "{stored}"
    );

    // retention's deletion removes the archive where it is, not under the policy's new place
    fake.merge(
        &format!("{BACKUPS}/{name}"),
        &json!({"metadata": {"annotations": {"instantdb.io/pruned-by": "InstantDbBackupPolicy daily"}}}),
    );
    delete_backup_object(&ctx, &name).await;
    reconcile_backup(&fake, &ctx, &name).await;
    let deleted = engine.deleted.lock().unwrap().clone();
    assert_eq!(
        deleted,
        [(
            "s3://nightly/search/docs?region=us-east-1&credentials=s3-creds".to_string(),
            id
        )]
    );
    assert!(backup_at(&fake, &name).is_none());
}

#[tokio::test]
async fn deleting_a_backup_object_or_its_policy_keeps_the_archive() {
    let (fake, ctx, engine, name) = a_completed_policy_backup().await;
    // kubectl delete (and a namespace teardown or an Argo CD prune: the same DELETE)
    delete_backup_object(&ctx, &name).await;
    assert!(backup_at(&fake, &name).is_some(), "held by its finalizer");
    reconcile_backup(&fake, &ctx, &name).await;
    assert!(backup_at(&fake, &name).is_none(), "the object goes");
    assert!(
        engine.deleted.lock().unwrap().is_empty(),
        "the archive stays"
    );
    assert!(event_reasons(&fake).contains(&"ArchiveKept".to_string()));

    // the policy's deletion: the garbage collector deletes the backups it owns
    let (fake, ctx, engine, name) = a_completed_policy_backup().await;
    let owner = &fake.get(&format!("{BACKUPS}/{name}")).unwrap()["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "InstantDbBackupPolicy");
    fake.remove(POLICY);
    delete_backup_object(&ctx, &name).await;
    reconcile_backup(&fake, &ctx, &name).await;
    assert!(backup_at(&fake, &name).is_none());
    assert!(
        engine.deleted.lock().unwrap().is_empty(),
        "the archive stays"
    );
}

#[tokio::test]
async fn a_backup_with_deletion_policy_delete_takes_its_archive_with_it() {
    let (fake, ctx, engine) = running_instance_with_backup(
        json!({"instance": "docs", "destination": s3_destination(), "deletionPolicy": "Delete"}),
    )
    .await;
    run_backup(&fake, &ctx).await;
    let b = fake.get(BACKUP).unwrap();
    assert_eq!(
        b["metadata"]["finalizers"],
        json!(["instantdb.io/delete-archive"]),
        "added before anything is stored"
    );
    let id = engine.started.lock().unwrap()[0].id.clone();
    *engine.job.lock().unwrap() = Some(BackupJob {
        id: id.clone(),
        status: BackupJobStatus::Completed,
        ..Default::default()
    });
    run_backup(&fake, &ctx).await;
    delete_backup_object(&ctx, "nightly").await;
    run_backup(&fake, &ctx).await;
    let deleted = engine.deleted.lock().unwrap().clone();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].1, id);
    assert!(fake.get(BACKUP).is_none());
    assert!(event_reasons(&fake).contains(&"ArchiveDeleted".to_string()));
}

#[tokio::test]
async fn a_backup_waits_while_a_restore_of_its_instance_runs_and_says_for_what() {
    let (fake, ctx, engine) =
        running_instance_with_backup(json!({"instance": "docs", "destination": s3_destination()}))
            .await;
    let restore = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores/undo";
    fake.put(
        restore,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbRestore",
               "metadata": {"name": "undo", "namespace": "search"},
               "spec": {"instance": "docs"},
               "status": {"phase": "Running", "restoreId": "undo-1"}}),
    );
    assert_eq!(
        run_backup(&fake, &ctx).await,
        Action::requeue(RETRY_PENDING)
    );
    let s = status(&fake);
    assert_eq!(s["phase"], "Pending");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("InstantDbRestore undo of docs is running"),
        "{s}"
    );
    assert!(engine.started.lock().unwrap().is_empty());
    // the restore finished: the backup starts
    fake.merge(restore, &json!({"status": {"phase": "Completed"}}));
    assert_eq!(run_backup(&fake, &ctx).await, Action::requeue(POLL_RUNNING));
    assert_eq!(engine.started.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_engine_busy_or_without_the_credentials_yet_keeps_the_backup_pending() {
    let (fake, ctx, engine) =
        running_instance_with_backup(json!({"instance": "docs", "destination": s3_destination()}))
            .await;
    *engine.start.lock().unwrap() = StartAnswer::Busy("restore r1 runs".into());
    assert_eq!(run_backup(&fake, &ctx).await, Action::requeue(RETRY_QUEUED));
    let s = status(&fake);
    assert_eq!(s["phase"], "Pending");
    assert!(s["message"].as_str().unwrap().starts_with("queued:"), "{s}");
    assert!(s.get("backupId").is_none(), "{s}");
    *engine.start.lock().unwrap() =
        StartAnswer::CredentialsNotReady("credentials s3-creds not found".into());
    run_backup(&fake, &ctx).await;
    let s = status(&fake);
    assert_eq!(s["phase"], "Pending");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("Secret docs-storage-credentials"),
        "{s}"
    );
    *engine.start.lock().unwrap() = StartAnswer::Accept;
    assert_eq!(run_backup(&fake, &ctx).await, Action::requeue(POLL_RUNNING));
    assert_eq!(status(&fake)["phase"], "Running");
}

#[tokio::test]
async fn a_suspended_policy_makes_no_status_write_on_its_ticks() {
    let (fake, ctx, _) = setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    put_policy(
        &fake,
        json!({"instance": "docs", "schedule": "* * * * *", "suspend": true,
               "destination": {"s3": {"bucket": "b", "credentialsSecret": "s3-creds"}}}),
    );
    run_policy(&fake, &ctx).await;
    // a tick long past: the status says so, and that is all it needs to say
    fake.merge(
        POLICY,
        &json!({"status": {"lastScheduleTime": "2026-01-01T00:00:00Z"}}),
    );
    for _ in 0..5 {
        run_policy(&fake, &ctx).await;
        assert_eq!(writes(&fake), 0, "{:?}", fake.log());
    }
    let p = fake.get(POLICY).unwrap();
    assert_eq!(p["status"]["lastScheduleTime"], "2026-01-01T00:00:00Z");
    assert_eq!(
        condition(&p["status"], "Ready"),
        ("False".into(), "Suspended".into())
    );
}

#[tokio::test]
async fn a_backup_of_a_tls_instance_calls_its_engine_over_tls_verified_with_the_instances_secret() {
    let (fake, ctx, engine) =
        setup_with_engine(json!({"storage": {"size": "1Gi"}, "tls": {"secretName": "docs-tls"}}));
    let ca = "-----BEGIN CERTIFICATE-----\nthe CA\n-----END CERTIFICATE-----\n";
    let b64 =
        |s: &str| serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec())).unwrap();
    fake.put(
        "/api/v1/namespaces/search/secrets/docs-tls",
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "docs-tls", "namespace": "search"},
               "data": {"tls.crt": b64(ca), "tls.key": b64("key"), "ca.crt": b64(ca)}}),
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    put_credentials(&fake, good_credentials());
    put_backup(
        &fake,
        json!({"instance": "docs", "destination": s3_destination()}),
    );
    assert_eq!(run_backup(&fake, &ctx).await, Action::requeue(POLL_RUNNING));
    let started = engine.started.lock().unwrap().clone();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].engine.ip, "10.0.0.7");
    let tls = started[0].engine.tls.as_ref().expect("over TLS");
    assert_eq!(tls.server_name, "docs-0.docs-headless.search.svc");
    assert_eq!(tls.ca_pem, ca.as_bytes());
}
