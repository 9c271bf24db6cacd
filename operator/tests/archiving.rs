//! Continuous archiving and point-in-time recovery through the CRDs, against the in-memory fake
//! API server and a fake engine: the policy's `continuousArchiving` rendered into the engine's
//! configuration, the recovery window and `ContinuousArchiving` in status, restores and
//! bootstraps to a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{DB, FakeEngine, STS, mark_ready, reconcile_once, run};
use instant_db_crds::backup::InstantDbRestore;
use instant_db_operator::controller::{Context, OperatorConfig};
use instant_db_operator::engine_client::{ArchiveReport, RestorePhase};
use instant_db_operator::fake_api::FakeApiServer;
use instant_db_operator::metrics::Metrics;
use serde_json::{Value, json};

const CM: &str = "/api/v1/namespaces/search/configmaps/docs-config";
const CREDS: &str = "/api/v1/namespaces/search/secrets/s3-creds";
const STORAGE_CREDS: &str = "/api/v1/namespaces/search/secrets/docs-storage-credentials";
const POLICY: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackuppolicies/daily";
const RESTORE: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores/undo";
const FOLDER: &str = "s3://backups/search/docs?region=us-east-1&credentials=s3-creds";

/// The fake API and engine with `engine_numbers_refresh` as given (zero: the archive report
/// is due at every reconcile).
fn setup(refresh: Duration) -> (FakeApiServer, Arc<Context>, Arc<FakeEngine>) {
    let fake = FakeApiServer::new();
    fake.put(
        DB,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
               "metadata": {"name": "docs", "namespace": "search"},
               "spec": {"storage": {"size": "1Gi"}}}),
    );
    let engine = Arc::new(FakeEngine::healthy());
    let ctx = Arc::new(Context::new(
        fake.client(),
        OperatorConfig {
            default_image: "ghcr.io/instant-db/instant-db:0.1.0".into(),
            engine_numbers_refresh: refresh,
            ..Default::default()
        },
        engine.clone(),
        Metrics::new().unwrap(),
    ));
    common::start_caches(&fake, &ctx);
    (fake, ctx, engine)
}

fn put_policy(fake: &FakeApiServer, archiving: Value) {
    fake.put(
        POLICY,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackupPolicy",
               "metadata": {"name": "daily", "namespace": "search",
                            "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"instance": "docs", "schedule": "@daily",
                        "destination": {"s3": {"bucket": "backups", "credentialsSecret": "s3-creds"}},
                        "continuousArchiving": archiving}}),
    );
}

fn put_credentials(fake: &FakeApiServer) {
    fake.put(
        CREDS,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "s3-creds", "namespace": "search"},
               "data": {"AWS_ACCESS_KEY_ID": "QUtJRA==", "AWS_SECRET_ACCESS_KEY": "czNjcjN0"}}),
    );
}

fn engine_config(fake: &FakeApiServer) -> Value {
    let cm = fake.get(CM).unwrap();
    serde_norway::from_str(cm["data"]["config.yaml"].as_str().unwrap()).unwrap()
}

fn config_hash(fake: &FakeApiServer) -> Value {
    fake.get(STS).unwrap()["spec"]["template"]["metadata"]["annotations"]
        ["instantdb.io/config-hash"]
        .clone()
}

fn condition(fake: &FakeApiServer, type_: &str) -> Option<(String, String, String)> {
    let s = fake.get(DB).unwrap()["status"].clone();
    let c = s["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())?;
    Some((
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
        c["message"].as_str().unwrap().into(),
    ))
}

fn writes(fake: &FakeApiServer) -> Vec<String> {
    fake.log()
        .into_iter()
        .filter(|l| l.is_write())
        .map(|l| format!("{} {}", l.method, l.path))
        .collect()
}

fn report() -> ArchiveReport {
    ArchiveReport {
        enabled: true,
        destination: Some("s3://backups/search/docs?region=us-east-1".into()),
        last_archived_time: Some("2026-12-02T05:59:58.123456Z".into()),
        within_max_lag: true,
        first_recoverable_time: Some("2026-12-02T00:00:03.5Z".into()),
        last_recoverable_time: Some("2026-12-02T05:59:58.123456Z".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_policy_with_continuous_archiving_configures_the_engine_once_its_credentials_are_in() {
    let (fake, ctx, _engine) = setup(Duration::from_secs(300));
    run(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    run(&fake, &ctx).await.unwrap();
    assert!(engine_config(&fake).get("archive").is_none());
    assert!(condition(&fake, "ContinuousArchiving").is_none());
    let before = config_hash(&fake);

    // the policy archives, its Secret is missing: not configured, and the status says why
    put_policy(&fake, json!({"enabled": true, "maxLagSeconds": 10}));
    run(&fake, &ctx).await.unwrap();
    assert!(engine_config(&fake).get("archive").is_none());
    let (status, reason, message) = condition(&fake, "ContinuousArchiving").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ArchiveCredentialsMissing")
    );
    assert!(
        message.contains("s3-creds") && message.contains("AWS_SECRET_ACCESS_KEY"),
        "{message}"
    );
    assert_eq!(config_hash(&fake), before, "no restart for nothing");

    // the Secret is there: copied first, then the engine is configured (one restart)
    put_credentials(&fake);
    run(&fake, &ctx).await.unwrap();
    let stored = fake.get(STORAGE_CREDS).unwrap();
    assert!(
        stored["data"]["s3-creds.AWS_ACCESS_KEY_ID"].is_string(),
        "{stored}"
    );
    assert_eq!(
        engine_config(&fake)["archive"],
        json!({"destination": FOLDER, "max_lag_secs": 10})
    );
    assert_ne!(config_hash(&fake), before, "the engine restarts onto it");
    let cm = fake.get(CM).unwrap().to_string();
    assert!(!cm.contains("czNjcjN0") && !cm.contains("s3cr3t"), "{cm}");

    // a new bound is a new configuration: another restart
    let hash = config_hash(&fake);
    put_policy(
        &fake,
        json!({"enabled": true, "maxLagSeconds": 10, "maxBufferBytes": 2097152}),
    );
    run(&fake, &ctx).await.unwrap();
    assert_eq!(engine_config(&fake)["archive"]["max_buffer_bytes"], 2097152);
    assert_ne!(config_hash(&fake), hash);

    // switched off: the configuration and the condition go
    put_policy(&fake, json!({"enabled": false}));
    run(&fake, &ctx).await.unwrap();
    assert!(engine_config(&fake).get("archive").is_none());
    assert!(condition(&fake, "ContinuousArchiving").is_none());
    assert_eq!(config_hash(&fake), before);
}

#[tokio::test]
async fn the_recovery_window_and_the_condition_come_from_the_engine_and_a_steady_archive_writes_nothing()
 {
    let (fake, ctx, engine) = setup(Duration::ZERO);
    put_credentials(&fake);
    put_policy(&fake, json!({"enabled": true}));
    run(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    *engine.archive.lock().unwrap() = Ok(report());
    run(&fake, &ctx).await.unwrap();
    let db = fake.get(DB).unwrap();
    assert_eq!(
        db["status"]["firstRecoverabilityPoint"],
        "2026-12-02T00:00:03Z"
    );
    assert_eq!(db["status"]["lastArchivedTime"], "2026-12-02T05:59:58Z");
    let (status, reason, _) = condition(&fake, "ContinuousArchiving").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Archiving"));
    assert!(*engine.archive_calls.lock().unwrap() >= 1);

    // the engine is asked at every reconcile here (refresh 0) and says the same: no write
    for n in 0..3 {
        run(&fake, &ctx).await.unwrap();
        assert_eq!(writes(&fake), Vec::<String>::new(), "resync {n} wrote");
    }

    // the destination fails: False with the engine's error
    *engine.archive.lock().unwrap() = Ok(ArchiveReport {
        last_error: Some("s3 PUT: HTTP 503 Slow Down".into()),
        within_max_lag: false,
        ..report()
    });
    run(&fake, &ctx).await.unwrap();
    let (status, reason, message) = condition(&fake, "ContinuousArchiving").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ArchiveFailing")
    );
    assert!(message.contains("HTTP 503 Slow Down"), "{message}");

    // an engine that cannot be asked keeps what status says
    *engine.archive.lock().unwrap() = Err("connection refused".into());
    run(&fake, &ctx).await.unwrap();
    assert_eq!(writes(&fake), Vec::<String>::new());
}

#[tokio::test]
async fn the_archive_report_is_read_on_the_engine_numbers_timer_not_at_every_reconcile() {
    let (fake, ctx, engine) = setup(Duration::from_secs(300));
    put_credentials(&fake);
    put_policy(&fake, json!({"enabled": true}));
    run(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    *engine.archive.lock().unwrap() = Ok(report());
    run(&fake, &ctx).await.unwrap();
    assert_eq!(*engine.archive_calls.lock().unwrap(), 1);
    assert_eq!(
        condition(&fake, "ContinuousArchiving").unwrap().1,
        "Archiving"
    );
    // ingest moves the archive on; five resyncs: no request for it and no write
    *engine.archive.lock().unwrap() = Ok(ArchiveReport {
        last_archived_time: Some("2026-12-02T06:03:00Z".into()),
        ..report()
    });
    for n in 0..5 {
        run(&fake, &ctx).await.unwrap();
        assert_eq!(writes(&fake), Vec::<String>::new(), "resync {n} wrote");
    }
    assert_eq!(*engine.archive_calls.lock().unwrap(), 1);
}

fn put_backup(fake: &FakeApiServer, name: &str) {
    fake.put(
        &format!("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups/{name}"),
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
               "metadata": {"name": name, "namespace": "search"},
               "spec": {"instance": "docs", "policy": "daily"},
               "status": {"phase": "Completed", "backupId": format!("{name}-id"),
                          "completedAt": "2026-12-02T00:00:00Z",
                          "destination": {"s3": {"bucket": "backups", "prefix": "search/docs",
                              "region": "us-east-1", "credentialsSecret": "s3-creds"}},
                          "archiveUrl": format!("s3://backups/search/docs/{name}-id.tar.gz?region=us-east-1&credentials=s3-creds")}}),
    );
}

async fn run_restore(fake: &FakeApiServer, ctx: &Arc<Context>) {
    fake.clear_log();
    let r: InstantDbRestore = serde_json::from_value(fake.get(RESTORE).unwrap()).unwrap();
    instant_db_operator::controller::restore::reconcile(Arc::new(r), ctx.clone())
        .await
        .unwrap();
}

fn put_restore(fake: &FakeApiServer, spec: Value) {
    fake.put(
        RESTORE,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbRestore",
               "metadata": {"name": "undo", "namespace": "search"}, "spec": spec}),
    );
}

#[tokio::test]
async fn a_restore_to_a_time_sends_the_policy_folder_and_the_target_and_reports_where_it_got() {
    let (fake, ctx, engine) = setup(Duration::from_secs(300));
    put_credentials(&fake);
    put_policy(&fake, json!({"enabled": true}));
    reconcile_once(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    put_backup(&fake, "nightly");
    put_restore(
        &fake,
        json!({"instance": "docs", "targetTime": "2026-12-02T07:30:00+02:00"}),
    );
    run_restore(&fake, &ctx).await;
    let started = engine.restores.lock().unwrap().clone();
    assert_eq!(started.len(), 1);
    // the policy's folder (not an archive), the time in UTC
    assert_eq!(started[0].0, FOLDER);
    assert_eq!(
        engine.restore_targets.lock().unwrap().clone(),
        [Some("2026-12-02T05:30:00Z".to_string())]
    );
    let s = fake.get(RESTORE).unwrap()["status"].clone();
    assert_eq!(s["phase"], "Running");
    assert_eq!(s["targetTime"], "2026-12-02T05:30:00Z");
    assert_eq!(s["source"], FOLDER);

    // the engine restores the base and replays up to the target
    {
        let mut jobs = engine.restore_jobs.lock().unwrap();
        let job = jobs.values_mut().next().unwrap();
        job.phase = RestorePhase::Completed;
        job.document_count = Some(41);
        job.backup_id = Some("nightly-id".into());
        job.restored_to = Some("2026-12-02T05:29:58.250000Z".into());
    }
    run_restore(&fake, &ctx).await;
    let s = fake.get(RESTORE).unwrap()["status"].clone();
    assert_eq!(s["phase"], "Completed");
    assert_eq!(s["restoredTo"], "2026-12-02T05:29:58.250000Z");
    let message = s["message"].as_str().unwrap();
    assert!(
        message.contains("restored to 2026-12-02T05:29:58.250000Z")
            && message.contains("nightly-id"),
        "{message}"
    );

    // a restore to a time that is none fails at once, naming the field
    fake.remove(RESTORE);
    put_restore(
        &fake,
        json!({"instance": "docs", "targetTime": "2026-02-30T05:00:00Z"}),
    );
    run_restore(&fake, &ctx).await;
    let s = fake.get(RESTORE).unwrap()["status"].clone();
    assert_eq!(s["phase"], "Failed");
    assert!(
        s["error"].as_str().unwrap().contains("spec.targetTime"),
        "{s}"
    );
    assert_eq!(engine.restores.lock().unwrap().len(), 1, "nothing sent");
}

#[tokio::test]
async fn a_restore_to_a_time_without_an_archiving_policy_fails_with_what_to_do_or_uses_the_named_backups_folder()
 {
    let (fake, ctx, engine) = setup(Duration::from_secs(300));
    put_credentials(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    put_restore(&fake, json!({"instance": "docs", "targetTime": "latest"}));
    run_restore(&fake, &ctx).await;
    let s = fake.get(RESTORE).unwrap()["status"].clone();
    assert_eq!(s["phase"], "Failed");
    assert!(
        s["error"].as_str().unwrap().contains("continuousArchiving"),
        "{s}"
    );
    fake.remove(RESTORE);
    put_backup(&fake, "nightly");
    put_restore(
        &fake,
        json!({"instance": "docs", "backup": "nightly", "targetTime": "latest"}),
    );
    run_restore(&fake, &ctx).await;
    let started = engine.restores.lock().unwrap().clone();
    assert_eq!(started.last().unwrap().0, FOLDER);
    assert_eq!(
        engine
            .restore_targets
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .as_deref(),
        Some("latest")
    );
}

#[tokio::test]
async fn a_bootstrap_to_a_time_runs_the_restore_with_the_folder_and_to_time() {
    let fake = FakeApiServer::new();
    fake.put(
        DB,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
               "metadata": {"name": "docs", "namespace": "search"},
               "spec": {"storage": {"size": "1Gi"}, "bootstrap": {"fromBackup": {
                   "targetTime": "2026-12-02T05:00:00Z",
                   "source": {"destination": {"s3": {"bucket": "backups", "prefix": "prod/docs",
                       "credentialsSecret": "s3-creds"}}}}}}}),
    );
    put_credentials(&fake);
    let engine = Arc::new(FakeEngine::healthy());
    let ctx = Arc::new(Context::new(
        fake.client(),
        OperatorConfig {
            default_image: "ghcr.io/instant-db/instant-db:0.1.0".into(),
            ..Default::default()
        },
        engine,
        Metrics::new().unwrap(),
    ));
    common::start_caches(&fake, &ctx);
    reconcile_once(&fake, &ctx).await.unwrap();
    let sts = fake
        .get(STS)
        .expect("the StatefulSet, once the folder is known");
    let args = sts["spec"]["template"]["spec"]["initContainers"][0]["args"].clone();
    assert_eq!(
        args,
        json!([
            "restore",
            "--bootstrap",
            "--from",
            "s3://backups/prod/docs?region=us-east-1&credentials=s3-creds",
            "--data-dir",
            "/data",
            "--report-file",
            "/dev/termination-log",
            "--to-time",
            "2026-12-02T05:00:00Z"
        ])
    );
    let db = fake.get(DB).unwrap();
    assert_eq!(
        db["status"]["bootstrap"]["targetTime"],
        "2026-12-02T05:00:00Z"
    );
}
