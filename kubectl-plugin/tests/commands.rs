//! The plugin's commands against the operator's fake API server. The fake stands in for the
//! operator too: where the operator would write a backup's status, the test writes it.
//! (`search` and `check` open a port-forward, which the fake cannot serve: their requests are
//! unit-tested in src/engine.rs and sent to a real engine in tests/tests/contracts.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use instant_db_operator::fake_api::FakeApiServer;
use kubectl_instantdb::cli::Cli;
use kubectl_instantdb::{Ctx, Error, run};
use serde_json::{Value, json};

const NS: &str = "search";
const DB: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbs/docs";
const BACKUPS: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups";
const RESTORES: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores";
const POD: &str = "/api/v1/namespaces/search/pods/docs-0";

fn fake_with_instance() -> FakeApiServer {
    let fake = FakeApiServer::new();
    fake.put(
        DB,
        json!({
            "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": "docs", "namespace": NS},
            "spec": {"storage": {"size": "1Gi"}, "recovery": {"autoRestore": true}},
            "status": {
                "observedGeneration": 1, "phase": "Running", "readyReplicas": 1,
                "endpoint": "http://docs.search.svc:8080", "documentCount": 1234,
                "image": "registry.example/instant-db:0.1.0",
                "lastIntegrityCheck": "2026-12-01T09:00:00Z",
                "lastIntegrityPass": "2026-12-01T09:00:00Z",
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "EngineReady",
                     "message": "the engine serves requests", "observedGeneration": 1,
                     "lastTransitionTime": "2026-12-01T08:00:00Z"},
                    {"type": "IntegrityOk", "status": "True", "reason": "IntegrityCheckPassed",
                     "message": "the last integrity check passed", "observedGeneration": 1,
                     "lastTransitionTime": "2026-12-01T08:00:00Z"}
                ]
            }
        }),
    );
    fake
}

/// Parses a command line as kubectl would hand it over and runs it; returns what it printed.
async fn run_cli(fake: &FakeApiServer, args: &[&str]) -> (Result<(), Error>, String) {
    use clap::Parser;
    let mut argv = vec!["kubectl-instantdb"];
    argv.extend(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let mut out: Vec<u8> = vec![];
    let mut ctx = Ctx {
        client: fake.client(),
        namespace: cli.namespace.clone().unwrap_or_else(|| "default".into()),
        out: &mut out,
        poll: Duration::from_millis(5),
    };
    let r = run(cli.command, &mut ctx).await;
    (r, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn a_missing_instance_says_how_to_list_the_instances() {
    let fake = FakeApiServer::new();
    for args in [
        &["status", "docs", "-n", NS][..],
        &["backup", "docs", "-n", NS],
        &["logs", "docs", "-n", NS],
        &["search", "docs", "some words", "-n", NS],
        &["check", "docs", "-n", NS],
    ] {
        let (r, _) = run_cli(&fake, args).await;
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("InstantDb docs not found in namespace search")
                && e.contains("kubectl get instantdb -n search"),
            "{args:?}: {e}"
        );
    }
}

#[tokio::test]
async fn the_namespace_flag_picks_the_namespace_and_the_default_is_the_contexts() {
    let fake = fake_with_instance();
    // Without -n the context's namespace ("default" here) is searched: not found there.
    let (r, _) = run_cli(&fake, &["status", "docs"]).await;
    assert!(r.unwrap_err().to_string().contains("namespace default"));
    let (r, out) = run_cli(&fake, &["--namespace", NS, "status", "docs"]).await;
    r.unwrap();
    assert!(out.starts_with("InstantDb search/docs: Running"), "{out}");
}

#[tokio::test]
async fn status_shows_conditions_pod_volume_documents_backups_recovery_and_events() {
    let fake = fake_with_instance();
    fake.put(
        POD,
        json!({"metadata": {"name": "docs-0", "namespace": NS},
               "spec": {"nodeName": "node-a", "containers": [{"name": "engine", "image": "registry.example/instant-db:0.1.0"}]},
               "status": {"phase": "Running", "containerStatuses": [
                   {"name": "engine", "ready": true, "restartCount": 2, "image": "x", "imageID": "y"}]}}),
    );
    fake.put(
        "/api/v1/namespaces/search/persistentvolumeclaims/data-docs-0",
        json!({"metadata": {"name": "data-docs-0", "namespace": NS},
               "spec": {"storageClassName": "standard"},
               "status": {"phase": "Bound", "capacity": {"storage": "2Gi"}}}),
    );
    for (name, instance, phase, completed) in [
        ("docs-old", "docs", "Completed", "2026-11-30T03:00:00Z"),
        ("docs-new", "docs", "Completed", "2026-12-01T03:00:00Z"),
        ("other-b", "other", "Completed", "2026-12-01T04:00:00Z"),
    ] {
        fake.put(
            &format!("{BACKUPS}/{name}"),
            json!({"metadata": {"name": name, "namespace": NS},
                   "spec": {"instance": instance},
                   "status": {"phase": phase, "completedAt": completed, "sizeBytes": 3_500_000, "documentCount": 1200}}),
        );
    }
    fake.put(
        &format!("{BACKUPS}/docs-failed"),
        json!({"metadata": {"name": "docs-failed", "namespace": NS, "creationTimestamp": "2026-12-01T05:00:00Z"},
               "spec": {"instance": "docs"},
               "status": {"phase": "Failed", "completedAt": "2026-12-01T05:00:00Z", "error": "bucket backups does not exist"}}),
    );
    fake.put(
        &format!("{RESTORES}/docs-undo"),
        json!({"metadata": {"name": "docs-undo", "namespace": NS},
               "spec": {"instance": "docs", "backup": "docs-old"},
               "status": {"phase": "Completed", "completedAt": "2026-12-01T06:00:00Z", "restoredBackup": "docs-old"}}),
    );
    let event = |name: &str, kind: &str, object: &str, reason: &str, note: &str, at: &str| {
        fake.put(
            &format!("/apis/events.k8s.io/v1/namespaces/search/events/{name}"),
            json!({"metadata": {"name": name, "namespace": NS}, "eventTime": at,
                   "regarding": {"kind": kind, "name": object, "namespace": NS},
                   "reason": reason, "note": note, "type": "Normal", "action": reason}),
        );
    };
    event(
        "e1",
        "InstantDb",
        "docs",
        "Applied",
        "applied StatefulSet docs",
        "2026-12-01T07:00:00.000000Z",
    );
    event(
        "e2",
        "Pod",
        "docs-0",
        "Pulled",
        "image pulled",
        "2026-12-01T07:01:00.000000Z",
    );
    event(
        "e3",
        "InstantDb",
        "other",
        "Applied",
        "not this instance",
        "2026-12-01T07:02:00.000000Z",
    );

    let (r, out) = run_cli(&fake, &["status", "docs", "-n", NS]).await;
    r.unwrap();
    for want in [
        "InstantDb search/docs: Running",
        "Endpoint: http://docs.search.svc:8080",
        "Ready        True    EngineReady",
        "Pod docs-0: Running, ready 1/1, restarts 2, node node-a",
        "Data: PVC data-docs-0 Bound, capacity 2Gi (spec.storage.size 1Gi), class standard",
        "Documents: 1234",
        "Recovery: autoRestore on; integrity check passed",
        "latest restore docs-undo: Completed from docs-old",
        "applied StatefulSet docs",
        "Pod/docs-0",
        "bucket backups does not exist",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(
        !out.contains("other-b") && !out.contains("not this instance"),
        "{out}"
    );
    // Newest first: the failed one (05:00), then docs-new, then docs-old.
    let pos = |s: &str| out.find(s).unwrap();
    assert!(
        pos("docs-failed") < pos("docs-new") && pos("docs-new") < pos("docs-old  "),
        "{out}"
    );
}

/// Writes the statuses the operator would, one after another, once the backup exists.
fn operator_writes(fake: &FakeApiServer, list: &'static str, statuses: Vec<Value>) {
    let fake = fake.clone();
    tokio::spawn(async move {
        let path = loop {
            if let Some(obj) = fake.objects_under(list).first() {
                break format!("{list}/{}", obj["metadata"]["name"].as_str().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        for s in statuses {
            fake.merge(&path, &json!({"status": s}));
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    });
}

#[tokio::test]
async fn backup_wait_creates_the_backup_and_follows_it_to_completion() {
    let fake = fake_with_instance();
    operator_writes(
        &fake,
        BACKUPS,
        vec![
            json!({"phase": "Pending", "message": "queued: InstantDbRestore r of docs is running"}),
            json!({"phase": "Running", "message": null}),
            json!({"phase": "Completed", "location": "s3://backups/search/docs/b1.tar.gz",
                   "sizeBytes": 3_500_000, "documentCount": 1234, "sha256": "abc"}),
        ],
    );
    let (r, out) = run_cli(
        &fake,
        &["backup", "docs", "-n", NS, "--backup-name", "b1", "--wait"],
    )
    .await;
    r.unwrap();
    let created = fake.get(&format!("{BACKUPS}/b1")).unwrap();
    assert_eq!(created["spec"], json!({"instance": "docs"}));
    assert_eq!(
        created["metadata"]["labels"]["instantdb.io/instance"],
        "docs"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "instantdbbackup.instantdb.io/b1 created in search"
    );
    assert!(
        out.contains("Pending: queued: InstantDbRestore r of docs is running"),
        "{out}"
    );
    assert!(out.contains("\nRunning\n"), "{out}");
    assert_eq!(
        *lines.last().unwrap(),
        "backup b1 completed: s3://backups/search/docs/b1.tar.gz, 3.3 MiB, 1234 documents, sha256 abc"
    );
    // Each step printed once, however many times it was read.
    assert_eq!(out.matches("Running").count(), 1, "{out}");
}

#[tokio::test]
async fn backup_wait_ends_with_the_backups_error_when_it_fails() {
    let fake = fake_with_instance();
    operator_writes(
        &fake,
        BACKUPS,
        vec![json!({"phase": "Failed", "error": "bucket backups does not exist"})],
    );
    let (r, _) = run_cli(&fake, &["backup", "docs", "-n", NS, "--wait"]).await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("bucket backups does not exist"), "{e}");
    assert!(e.contains("take a new backup"), "{e}");
}

#[tokio::test]
async fn backup_wait_gives_up_at_the_timeout_and_says_how_to_follow_it() {
    let fake = fake_with_instance();
    let (r, out) = run_cli(
        &fake,
        &[
            "backup",
            "docs",
            "-n",
            NS,
            "--backup-name",
            "b2",
            "--wait",
            "--timeout",
            "0",
        ],
    )
    .await;
    let e = r.unwrap_err().to_string();
    assert!(out.contains("waiting for the operator"), "{out}");
    assert!(e.contains("kubectl get idbb b2 -n search -w"), "{e}");
}

#[tokio::test]
async fn backup_without_wait_creates_it_and_says_how_to_follow_it() {
    let fake = fake_with_instance();
    let (r, out) = run_cli(&fake, &["backup", "docs", "-n", NS, "--policy", "daily"]).await;
    r.unwrap();
    let created = fake.objects_under(BACKUPS);
    assert_eq!(created.len(), 1);
    let name = created[0]["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("docs-manual-"), "{name}");
    assert_eq!(created[0]["spec"]["policy"], "daily");
    assert!(
        out.contains(&format!("kubectl get idbb {name} -n search -w")),
        "{out}"
    );
    // The same name again is refused with what to do.
    let (r, _) = run_cli(&fake, &["backup", "docs", "-n", NS, "--backup-name", name]).await;
    assert!(r.unwrap_err().to_string().contains("choose another name"));
}

#[tokio::test]
async fn restore_checks_the_backup_then_follows_the_restore() {
    let fake = fake_with_instance();
    let (r, _) = run_cli(&fake, &["restore", "docs", "-n", NS, "--backup", "nope"]).await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("InstantDbBackup nope not found"), "{e}");
    assert!(
        e.contains("kubectl get idbb -n search -l instantdb.io/instance=docs"),
        "{e}"
    );
    fake.put(
        &format!("{BACKUPS}/theirs"),
        json!({"metadata": {"name": "theirs", "namespace": NS}, "spec": {"instance": "other"}}),
    );
    let (r, _) = run_cli(&fake, &["restore", "docs", "-n", NS, "--backup", "theirs"]).await;
    assert!(r.unwrap_err().to_string().contains("is a backup of other"));
    assert!(fake.objects_under(RESTORES).is_empty(), "nothing created");

    fake.put(
        &format!("{BACKUPS}/b1"),
        json!({"metadata": {"name": "b1", "namespace": NS}, "spec": {"instance": "docs"},
               "status": {"phase": "Completed"}}),
    );
    operator_writes(
        &fake,
        RESTORES,
        vec![
            json!({"phase": "Running", "message": "verifying"}),
            json!({"phase": "Completed", "restoredBackup": "b1", "documentCount": 1234, "message": null}),
        ],
    );
    let (r, out) = run_cli(
        &fake,
        &["restore", "docs", "-n", NS, "--backup", "b1", "--wait"],
    )
    .await;
    r.unwrap();
    let created = fake.objects_under(RESTORES);
    assert_eq!(
        created[0]["spec"],
        json!({"instance": "docs", "backup": "b1"})
    );
    assert!(out.contains("Running: verifying"), "{out}");
    assert!(
        out.ends_with("completed from b1: 1234 documents\n"),
        "{out}"
    );
}

#[tokio::test]
async fn restore_wait_reports_a_rolled_back_restore_as_a_failure() {
    let fake = fake_with_instance();
    operator_writes(
        &fake,
        RESTORES,
        vec![
            json!({"phase": "Failed", "error": "the restored data failed its integrity check and the instance kept its previous data"}),
        ],
    );
    let (r, _) = run_cli(&fake, &["restore", "docs", "-n", NS, "--wait"]).await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("kept its previous data") && e.contains("pick another backup"),
        "{e}"
    );
}

#[tokio::test]
async fn logs_prints_the_engine_containers_log() {
    let fake = fake_with_instance();
    let (r, _) = run_cli(&fake, &["logs", "docs", "-n", NS]).await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("Pod docs-0 not found") && e.contains("kubectl instantdb status docs"),
        "{e}"
    );
    fake.put_text(
        &format!("{POD}/log"),
        "{\"level\":\"INFO\",\"message\":\"listening\"}\nsecond line\n",
    );
    fake.clear_log();
    let (r, out) = run_cli(&fake, &["logs", "docs", "-n", NS, "--tail", "50"]).await;
    r.unwrap();
    assert_eq!(
        out,
        "{\"level\":\"INFO\",\"message\":\"listening\"}\nsecond line\n"
    );
    assert!(fake.log().iter().any(|l| l.path == format!("{POD}/log")));
}

#[tokio::test]
async fn search_and_check_say_which_secret_or_key_is_missing() {
    let fake = fake_with_instance();
    let (r, _) = run_cli(&fake, &["search", "docs", "retention", "-n", NS]).await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("Secret docs-api not found in namespace search"),
        "{e}"
    );
    fake.put(
        "/api/v1/namespaces/search/secrets/docs-admin",
        json!({"metadata": {"name": "docs-admin", "namespace": NS}, "data": {"other": "eA=="}}),
    );
    let (r, _) = run_cli(&fake, &["check", "docs", "-n", NS]).await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("Secret docs-admin has no key \"token\""), "{e}");
    let (r, _) = run_cli(&fake, &["search", "docs", "  ", "-n", NS]).await;
    assert!(r.unwrap_err().to_string().contains("the query is empty"));
}
