//! The user's whole path on a real cluster, as the README tells it: `helm install` the chart
//! (CRDs, RBAC, operator), every example accepted by the API server (server-side dry run, so
//! admission and the CRDs' CEL rules run for real), an InstantDb Ready, ingest and search through
//! the engine API with the keys the operator generated (and 401 without one), a backup to an
//! S3-compatible store and a restore of it, a backup onto a real PersistentVolumeClaim and a new
//! instance bootstrapped from it (`spec.bootstrap.fromBackup`) with the same document count,
//! a policy backing up every minute with keepLast 2, then the database file damaged on its volume
//! and restored automatically (RTO and RPO printed; see `story/recovery.rs`), deletion,
//! `helm uninstall` keeping the CRDs. Each step prints its time. The cluster needs a
//! default StorageClass (kind has one).
//!
//! Runs when `KUBECONFIG` is set (otherwise it says it was skipped and passes), with the images
//! loaded into the cluster (`kind load image-archive target/images/...`), and `helm` and `kubectl`
//! on PATH (or `HELM` / `KUBECTL`). The backup and restore steps run when `E2E_S3_ENDPOINT` (an
//! S3-compatible endpoint reachable from the cluster's pods, e.g. `http://minio.storage:9000`),
//! `E2E_S3_BUCKET` (existing) and `E2E_S3_ACCESS_KEY_ID` / `E2E_S3_SECRET_ACCESS_KEY` are set;
//! otherwise they are reported skipped. `E2E_TIMEOUT_SECS` (default 300) bounds each wait.
//! No other instant-db operator may run in the cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use instant_db_crds::conditions::is_true;
use instant_db_crds::{InstantDb, InstantDbBackup, InstantDbRestore};
use instant_db_e2e::{apply_namespace, say, timeout};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::Discovery;
use kube::runtime::wait::await_condition;
use serde::Deserialize;
use serde_json::{Value, json};

#[path = "story/recovery.rs"]
mod recovery;

const RELEASE: &str = "instant-db-e2e";
const INSTANCE: &str = "docs";

/// Prints each step with the time it took and since the start.
struct Steps {
    started: Instant,
    step: Instant,
}

impl Steps {
    fn new() -> Self {
        Steps {
            started: Instant::now(),
            step: Instant::now(),
        }
    }
    fn done(&mut self, what: &str) {
        say(&format!(
            "e2e story: {what}: {:.1} s (total {:.1} s)",
            self.step.elapsed().as_secs_f64(),
            self.started.elapsed().as_secs_f64()
        ));
        self.step = Instant::now();
    }
}

fn tool(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn wait_for<K, F>(api: &Api<K>, name: &str, what: &str, cond: F) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    F: Fn(&K) -> bool + Send + 'static,
{
    let waiting = await_condition(api.clone(), name, move |o: Option<&K>| o.is_some_and(&cond));
    tokio::time::timeout(timeout(), waiting)
        .await
        .unwrap_or_else(|_| panic!("{name}: not {what} within {:?}", timeout()))
        .unwrap()
        .unwrap_or_else(|| panic!("{name} vanished"))
}

/// `kubectl port-forward` to the instance's Service; the local URL and the child to kill.
fn port_forward(ns: &str) -> (String, Child) {
    let mut child = Command::new(tool("KUBECTL", "kubectl"))
        .args([
            "port-forward",
            "-n",
            ns,
            &format!("svc/{INSTANCE}"),
            ":8080",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("kubectl port-forward");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "Forwarding from 127.0.0.1:41234 -> 8080"
    let port = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected port-forward output: {line}"));
    (format!("http://127.0.0.1:{port}"), child)
}

fn secret_value(secret: &Secret, key: &str) -> String {
    let ByteString(bytes) = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("Secret {:?} has no key {key}", secret.metadata.name));
    String::from_utf8(bytes.clone()).unwrap()
}

/// Every object of every example, dry-run on the server (admission, schema, CEL), in `ns`.
async fn dry_run_examples(client: &kube::Client, ns: &str) {
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap();
            if v.is_null() {
                continue;
            }
            let obj: DynamicObject = serde_json::from_value(v).unwrap();
            let tm = obj.types.clone().unwrap();
            let (group, version) = tm
                .api_version
                .split_once('/')
                .unwrap_or(("", &tm.api_version));
            let Some((ar, _)) =
                discovery.resolve_gvk(&kube::api::GroupVersionKind::gvk(group, version, &tm.kind))
            else {
                // examples/tls-cert-manager.yaml needs cert-manager, which a bare cluster lacks.
                if group == "cert-manager.io" {
                    say(&format!(
                        "{}: {} not checked: cert-manager is not installed",
                        file.display(),
                        tm.kind
                    ));
                    continue;
                }
                panic!("{}: kind {} unknown to the server", file.display(), tm.kind);
            };
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            api.create(&pp, &obj).await.unwrap_or_else(|e| {
                panic!(
                    "{}: the API server refused {}: {e}",
                    file.display(),
                    tm.kind
                )
            });
        }
    }
}

#[tokio::test]
async fn the_readme_kubernetes_path_works_end_to_end() {
    if std::env::var_os("KUBECONFIG").is_none() {
        say(
            "SKIPPED the_readme_kubernetes_path_works_end_to_end: KUBECONFIG is not set (no cluster to test against)",
        );
        return;
    }
    let mut steps = Steps::new();
    let client = kube::Client::try_default().await.unwrap();
    let system_ns = format!("{RELEASE}-system");
    let ns = format!("instant-db-story-{}", std::process::id());

    // 1. helm install: CRDs, RBAC, the operator; --wait until it is available.
    run(Command::new(tool("HELM", "helm"))
        .args(["upgrade", "--install", RELEASE])
        .arg(repo().join("charts/instant-db-operator"))
        .args([
            "-n",
            &system_ns,
            "--create-namespace",
            "--wait",
            "--timeout",
            "5m",
        ])
        .args(["--set", "replicaCount=1"]));
    steps.done("helm install");

    let pp = PatchParams::apply("instant-db-e2e").force();
    apply_namespace(&client, &ns, &pp).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());

    // 2. every example passes the real admission
    dry_run_examples(&client, &ns).await;
    steps.done("examples accepted by server-side dry run");

    // 3. an instance, Ready
    let dbs: Api<InstantDb> = Api::namespaced(client.clone(), &ns);
    dbs.patch(
        INSTANCE,
        &pp,
        &Patch::Apply(json!({
            "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": INSTANCE},
            "spec": {"storage": {"size": "1Gi", "deletionPolicy": "Delete"}}
        })),
    )
    .await
    .unwrap();
    let db = wait_for(&dbs, INSTANCE, "Ready", |d: &InstantDb| {
        d.status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, "Ready"))
    })
    .await;
    steps.done("InstantDb Ready");
    say(&format!(
        "e2e story: status {}",
        serde_json::to_string(&db.status).unwrap()
    ));

    // 4. the API with the generated keys
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let keys = secrets.get(&format!("{INSTANCE}-api")).await.unwrap();
    let (read, write) = (secret_value(&keys, "read"), secret_value(&keys, "write"));
    let (base, mut forward) = port_forward(&ns);
    let http = reqwest::Client::new();
    let search = |key: Option<&str>, query: &str| {
        let mut req = http
            .post(format!("{base}/api/search"))
            .json(&json!({"query": query, "top_k": 3}));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    let anonymous = search(None, "vpn").await.unwrap();
    assert_eq!(
        anonymous.status(),
        401,
        "unauthenticated search must be refused"
    );
    let ingest = |text: &str, name: &str| {
        http.post(format!("{base}/api/documents"))
            .bearer_auth(&write)
            .json(&json!({"name": name, "title": name, "text": text, "format": "md"}))
            .send()
    };
    let r = ingest(
        "# VPN\nConnect with the corporate VPN client before you open the wiki from home.",
        "vpn.md",
    )
    .await
    .unwrap();
    assert!(
        r.status().is_success(),
        "ingest: {}",
        r.text().await.unwrap()
    );
    let hits: Value = search(Some(&read), "how do I reach the wiki from home?")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hits["hits"][0]["document"]["title"], "vpn.md", "{hits}");
    let denied = http
        .post(format!("{base}/api/documents"))
        .bearer_auth(&read)
        .json(&json!({"name": "x.md", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403, "the read key must not write");
    steps.done("ingest and search with the generated keys (401 without, 403 read-only write)");

    // 5. backup and restore, when an S3-compatible store is given
    let s3 = [
        "E2E_S3_ENDPOINT",
        "E2E_S3_BUCKET",
        "E2E_S3_ACCESS_KEY_ID",
        "E2E_S3_SECRET_ACCESS_KEY",
    ]
    .map(|v| std::env::var(v).ok());
    if let [Some(endpoint), Some(bucket), Some(key_id), Some(secret)] = s3 {
        secrets
            .patch(
                "e2e-s3",
                &pp,
                &Patch::Apply(json!({
                    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "e2e-s3"},
                    "stringData": {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
                })),
            )
            .await
            .unwrap();
        let backups: Api<InstantDbBackup> = Api::namespaced(client.clone(), &ns);
        backups
            .patch(
                "story",
                &pp,
                &Patch::Apply(json!({
                    "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
                    "metadata": {"name": "story"},
                    "spec": {"instance": INSTANCE, "destination": {"s3": {
                        "endpoint": endpoint, "bucket": bucket, "prefix": ns,
                        "credentialsSecret": "e2e-s3"}}}
                })),
            )
            .await
            .unwrap();
        wait_for(&backups, "story", "Complete", |b: &InstantDbBackup| {
            b.status
                .as_ref()
                .is_some_and(|s| is_true(&s.conditions, "Complete"))
        })
        .await;
        steps.done("backup Complete");

        let r = ingest(
            "# Later\nThis page was written after the backup.",
            "later.md",
        )
        .await
        .unwrap();
        assert!(r.status().is_success());
        let restores: Api<InstantDbRestore> = Api::namespaced(client.clone(), &ns);
        restores
            .patch(
                "story",
                &pp,
                &Patch::Apply(json!({
                    "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbRestore",
                    "metadata": {"name": "story"},
                    "spec": {"instance": INSTANCE, "backup": "story"}
                })),
            )
            .await
            .unwrap();
        wait_for(&restores, "story", "Complete", |r: &InstantDbRestore| {
            r.status
                .as_ref()
                .is_some_and(|s| is_true(&s.conditions, "Complete"))
        })
        .await;
        let docs: Value = http
            .get(format!("{base}/api/documents"))
            .bearer_auth(&read)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let text = docs.to_string();
        assert!(
            text.contains("vpn.md") && !text.contains("later.md"),
            "{text}"
        );
        steps.done("restore Complete: the document written after the backup is gone");
    } else {
        say(
            "e2e story: SKIPPED backup and restore: set E2E_S3_ENDPOINT, E2E_S3_BUCKET, E2E_S3_ACCESS_KEY_ID, E2E_S3_SECRET_ACCESS_KEY",
        );
    }
    let _ = forward.kill();

    // 5b. a backup onto a real PVC, and a new instance bootstrapped from it
    volume_backup_and_bootstrap(&client, &ns, &pp, &mut steps).await;

    // 5c. scheduled backups with keepLast 2, then a damaged database restored automatically
    recovery::scheduled_backups_and_automatic_recovery(&client, &ns, &pp, &mut steps).await;

    // 6. deletion and uninstall: the CRDs stay
    dbs.delete(INSTANCE, &DeleteParams::default())
        .await
        .unwrap();
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    run(Command::new(tool("HELM", "helm")).args([
        "uninstall",
        RELEASE,
        "-n",
        &system_ns,
        "--wait",
    ]));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in instant_db_crds::all_crds() {
        let name = crd.metadata.name.unwrap();
        assert!(
            crds.get_opt(&name).await.unwrap().is_some(),
            "helm uninstall deleted CRD {name} (helm.sh/resource-policy: keep is missing)"
        );
    }
    let _ = namespaces
        .delete(&system_ns, &DeleteParams::default())
        .await;
    steps.done("instance deleted, chart uninstalled, CRDs kept");
}

/// A backup to a PersistentVolumeClaim (the engine pod mounts it: one restart), then a new
/// InstantDb whose `spec.bootstrap.fromBackup` names it: it must come up `Bootstrapped` with the
/// backup's document count. Both engine pods mount the one ReadWriteOnce claim, which works
/// when they land on one node (kind's single node); on a multi-node cluster give the cluster's
/// default class RWX or expect the clone's pod to wait for the volume.
async fn volume_backup_and_bootstrap(
    client: &kube::Client,
    ns: &str,
    pp: &PatchParams,
    steps: &mut Steps,
) {
    let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client.clone(), ns);
    pvcs.patch(
        "story-backups",
        pp,
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "story-backups"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
        })),
    )
    .await
    .unwrap();
    let backups: Api<InstantDbBackup> = Api::namespaced(client.clone(), ns);
    backups
        .patch(
            "story-volume",
            pp,
            &Patch::Apply(json!({
                "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
                "metadata": {"name": "story-volume"},
                "spec": {"instance": INSTANCE, "destination": {"volume": {"claimName": "story-backups"}}}
            })),
        )
        .await
        .unwrap();
    let backup = wait_for(
        &backups,
        "story-volume",
        "Complete",
        |b: &InstantDbBackup| {
            b.status
                .as_ref()
                .is_some_and(|s| is_true(&s.conditions, "Complete"))
        },
    )
    .await;
    let status = backup.status.unwrap_or_default();
    let documents = status.document_count.unwrap_or_default();
    assert!(documents > 0, "{status:?}");
    assert!(
        status
            .archive_url
            .as_deref()
            .is_some_and(|u| u.starts_with("file:///backups/story-backups/")),
        "{status:?}"
    );
    steps.done("volume backup Complete (engine pod restarted once to mount the claim)");

    let dbs: Api<InstantDb> = Api::namespaced(client.clone(), ns);
    dbs.patch(
        "docs-clone",
        pp,
        &Patch::Apply(json!({
            "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": "docs-clone"},
            "spec": {"storage": {"size": "1Gi", "deletionPolicy": "Delete"},
                     "bootstrap": {"fromBackup": {"backup": "story-volume"}}}
        })),
    )
    .await
    .unwrap();
    let clone = wait_for(
        &dbs,
        "docs-clone",
        "Bootstrapped and Ready",
        |d: &InstantDb| {
            d.status.as_ref().is_some_and(|s| {
                is_true(&s.conditions, "Bootstrapped") && is_true(&s.conditions, "Ready")
            })
        },
    )
    .await;
    let message = clone
        .status
        .as_ref()
        .and_then(|s| {
            instant_db_crds::conditions::find_condition(&s.conditions, "Bootstrapped")
                .map(|c| c.message.clone())
        })
        .unwrap_or_default();
    assert_eq!(
        message,
        format!("restored backup story-volume: {documents} documents")
    );
    steps.done("new instance bootstrapped from the volume backup with the same documents");
}
