//! `spec.bootstrap.fromBackup` and volume destinations, against the in-memory fake API server
//! and a fake engine. The fake applies like a replace and runs no kubelet: the tests set the
//! pod's state as a kubelet would report it (a real init container would run
//! `instant-db restore --bootstrap`, which the engine's and the contract tests run for real).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{STS, mark_ready, reconcile_once, setup_with_engine};
use instant_db_crds::backup::InstantDbBackup;
use instant_db_operator::controller::backup::{POLL_RUNNING, RETRY_PENDING, reconcile};
use instant_db_operator::fake_api::FakeApiServer;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

const BACKUP: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups/nightly";
const CREDS: &str = "/api/v1/namespaces/search/secrets/s3-creds";
const STORAGE_CREDS: &str = "/api/v1/namespaces/search/secrets/docs-storage-credentials";
const ARCHIVE: &str =
    "s3://backups/search/prod/nightly-0f3c2a9e.tar.gz?region=us-east-1&credentials=s3-creds";

fn condition(fake: &FakeApiServer, type_: &str) -> (String, String, String) {
    let s = fake.get(common::DB).unwrap()["status"].clone();
    let c = s["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or_else(|| panic!("no {type_} condition in {s}"));
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
        c["message"].as_str().unwrap().into(),
    )
}

fn put_backup(fake: &FakeApiServer, status: Value) {
    fake.put(
        BACKUP,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
               "metadata": {"name": "nightly", "namespace": "search"},
               "spec": {"instance": "prod"}, "status": status}),
    );
}

fn init_args(fake: &FakeApiServer) -> Option<Value> {
    let sts = fake.get(STS)?;
    Some(sts["spec"]["template"]["spec"]["initContainers"][0]["args"].clone())
}

#[tokio::test]
async fn a_bootstrapped_instance_waits_for_a_usable_backup_then_its_pod_restores_it_first() {
    let (fake, ctx, _engine) = setup_with_engine(
        json!({"storage": {"size": "1Gi"}, "bootstrap": {"fromBackup": {"backup": "nightly"}}}),
    );
    // no such backup: stalled with what to do, and no engine that would start empty
    reconcile_once(&fake, &ctx).await.unwrap();
    assert!(
        fake.get(STS).is_none(),
        "no StatefulSet before the backup is usable"
    );
    let (status, reason, message) = condition(&fake, "Bootstrapped");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "BootstrapBackupUnusable")
    );
    assert!(
        message.contains("InstantDbBackup nightly") && message.contains("not found"),
        "{message}"
    );
    assert_eq!(condition(&fake, "Stalled").0, "True");
    assert_eq!(condition(&fake, "Ready").1, "BootstrapBackupUnusable");

    // still running: waiting, not stalled
    put_backup(
        &fake,
        json!({"phase": "Running", "backupId": "nightly-0f3c2a9e"}),
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    assert!(fake.get(STS).is_none());
    assert_eq!(condition(&fake, "Bootstrapped").1, "WaitingForBackup");
    assert_eq!(condition(&fake, "Stalled").0, "False");
    assert_eq!(condition(&fake, "Reconciling").0, "True");

    // completed, but its credentials Secret is missing: stalled, still no engine
    put_backup(
        &fake,
        json!({"phase": "Completed", "backupId": "nightly-0f3c2a9e", "archiveUrl": ARCHIVE,
               "destination": {"s3": {"bucket": "backups", "prefix": "search/prod",
                   "region": "us-east-1", "credentialsSecret": "s3-creds"}}}),
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    assert!(fake.get(STS).is_none());
    let (_, reason, message) = condition(&fake, "Bootstrapped");
    assert_eq!(reason, "BootstrapCredentialsMissing");
    assert!(message.contains("s3-creds"), "{message}");

    // with the credentials: copied for the engine, then the pod restores before serving
    fake.put(
        CREDS,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "s3-creds", "namespace": "search"},
               "data": {"AWS_ACCESS_KEY_ID": "QUtJRA==", "AWS_SECRET_ACCESS_KEY": "czNjcjN0"}}),
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    let copied = fake
        .get(STORAGE_CREDS)
        .expect("storage credentials written");
    assert!(copied["data"]["s3-creds.AWS_ACCESS_KEY_ID"].is_string());
    assert_eq!(
        init_args(&fake).unwrap(),
        json!([
            "restore",
            "--bootstrap",
            "--from",
            ARCHIVE,
            "--data-dir",
            "/data",
            "--report-file",
            "/dev/termination-log"
        ])
    );
    let status = fake.get(common::DB).unwrap()["status"].clone();
    assert_eq!(status["bootstrap"]["archiveUrl"], ARCHIVE);
    assert_eq!(status["bootstrap"]["backup"], "nightly");
    assert_eq!(condition(&fake, "Bootstrapped").1, "RestoringFromBackup");

    // the init container finished and the engine serves: restored, with the document count
    mark_ready(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    let (status, reason, message) = condition(&fake, "Bootstrapped");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Restored"));
    assert_eq!(message, "restored backup nightly: 12 documents");
    assert_eq!(condition(&fake, "Ready").0, "True");

    // retention prunes the backup later: the instance keeps its pinned archive and condition
    fake.remove(BACKUP);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(condition(&fake, "Bootstrapped").0, "True");
    assert_eq!(condition(&fake, "Stalled").0, "False");
    assert_eq!(init_args(&fake).unwrap()[3], ARCHIVE);
}

#[tokio::test]
async fn a_failing_bootstrap_restore_stalls_the_instance_with_the_engines_message() {
    let (fake, ctx, _engine) = setup_with_engine(json!({"storage": {"size": "1Gi"},
        "bootstrap": {"fromBackup": {"source": {"backupId": "gone-1",
            "destination": {"volume": {"claimName": "shared-backups", "path": "prod"}}}}}}));
    fake.put(
        "/api/v1/namespaces/search/persistentvolumeclaims/shared-backups",
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "shared-backups", "namespace": "search"}}),
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        init_args(&fake).unwrap()[3],
        "file:///backups/shared-backups/prod/gone-1.tar.gz"
    );
    let pod_spec = fake.get(STS).unwrap()["spec"]["template"]["spec"].clone();
    assert!(
        pod_spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == "shared-backups"),
        "the source's claim is mounted for the init container: {pod_spec}"
    );
    // as a kubelet reports an init container that keeps failing
    fake.put(
        common::POD,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "docs-0", "namespace": "search",
                   "labels": {"app.kubernetes.io/name": "instant-db", "app.kubernetes.io/instance": "docs", "app.kubernetes.io/component": "engine"}},
               "status": {"phase": "Pending", "initContainerStatuses": [{"name": "bootstrap",
                   "ready": false, "restartCount": 3, "image": "i", "imageID": "",
                   "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                   "lastState": {"terminated": {"exitCode": 2,
                       "message": "backup archive /backups/shared-backups/prod/gone-1.tar.gz not found"}}}]}}),
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    let (status, reason, message) = condition(&fake, "Bootstrapped");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "BootstrapRestoreFailed")
    );
    assert!(
        message.contains("gone-1.tar.gz not found") && message.contains("exit code 2"),
        "{message}"
    );
    assert_eq!(condition(&fake, "Stalled").0, "True");
    assert_eq!(condition(&fake, "Ready").1, "BootstrapRestoreFailed");
}

#[tokio::test]
async fn a_volume_backup_waits_for_the_claim_to_be_mounted_then_writes_to_its_directory() {
    let (fake, ctx, engine) = setup_with_engine(json!({"storage": {"size": "1Gi"}}));
    fake.put(
        BACKUP,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
               "metadata": {"name": "nightly", "namespace": "search"},
               "spec": {"instance": "docs", "destination": {"volume": {"claimName": "nightly-pvc"}}}}),
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    let run_backup = || async {
        let b: InstantDbBackup = serde_json::from_value(fake.get(BACKUP).unwrap()).unwrap();
        reconcile(Arc::new(b), ctx.clone()).await.unwrap()
    };
    // the claim does not exist: not mounted (the pod would not start), the backup waits
    let sts = fake.get(STS).unwrap();
    assert!(
        !sts.to_string().contains("nightly-pvc"),
        "a missing claim is not mounted"
    );
    assert_eq!(run_backup().await, Action::requeue(RETRY_PENDING));
    let message = fake.get(BACKUP).unwrap()["status"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("to mount PersistentVolumeClaim nightly-pvc at /backups/nightly-pvc"),
        "{message}"
    );
    assert!(engine.started.lock().unwrap().is_empty());

    // the claim is created: the StatefulSet mounts it (a new pod template: one restart)
    fake.put(
        "/api/v1/namespaces/search/persistentvolumeclaims/nightly-pvc",
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "nightly-pvc", "namespace": "search"}}),
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    let template = fake.get(STS).unwrap()["spec"]["template"].clone();
    let mount = template["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/backups/nightly-pvc")
        .cloned()
        .expect("mounted at /backups/nightly-pvc");
    // as the kubelet runs the new template's pod
    let mut pod = fake.get(common::POD).unwrap();
    pod["spec"] = template["spec"].clone();
    fake.put(common::POD, pod);
    assert!(mount["readOnly"].is_null() || mount["readOnly"] == false);
    assert_eq!(run_backup().await, Action::requeue(POLL_RUNNING));
    let started = engine.started.lock().unwrap().clone();
    assert_eq!(
        started[0].destination,
        "file:///backups/nightly-pvc/instant-db-backups"
    );
    let status = fake.get(BACKUP).unwrap()["status"].clone();
    assert_eq!(
        status["archiveUrl"],
        format!(
            "file:///backups/nightly-pvc/instant-db-backups/{}.tar.gz",
            started[0].id
        )
    );
    assert_eq!(
        status["destination"]["volume"]["path"],
        "instant-db-backups"
    );
}
