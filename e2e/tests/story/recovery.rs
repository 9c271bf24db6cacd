//! Scheduled backups with retention, then the failure they exist for: the instance's database
//! file damaged on its volume, detected, and restored automatically (issue 10's scenario).
//! Prints the time from the damage to its detection and to a searchable instance (RTO) and the
//! documents lost (RPO: those written after the backup that was restored).
//!
//! The damage is done the way a failing disk would: 4 KiB of random bytes written into the middle
//! of `instant-db.sqlite` by a pod that mounts the instance's data claim (`data-docs-0`, read-write
//! once, so it works when it lands on the engine's node: kind's single node). The engine image has
//! no shell, so that pod uses `E2E_TOOLS_IMAGE` (default `busybox:1.36`) and runs as root; the
//! engine pod is then deleted, so the damage is found by the check every engine start runs.

use std::time::{Duration, Instant};

use instant_db_crds::conditions::{INTEGRITY_OK, READY, RECOVERING, find_condition, is_true};
use instant_db_crds::{InstantDb, InstantDbBackup, InstantDbBackupPolicy};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::{INSTANCE, Steps, port_forward, secret_value, wait_for};
use instant_db_e2e::{say, timeout};

const POLICY: &str = "story-every-minute";

fn completed(b: &InstantDbBackup) -> bool {
    b.status
        .as_ref()
        .is_some_and(|s| is_true(&s.conditions, "Complete"))
}

/// The policy's completed backups, oldest first.
async fn completed_backups(backups: &Api<InstantDbBackup>) -> Vec<InstantDbBackup> {
    let mut done: Vec<InstantDbBackup> = backups
        .list(&ListParams::default().labels(&format!("instantdb.io/policy={POLICY}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(completed)
        .collect();
    done.sort_by_key(|b| b.metadata.creation_timestamp.clone().map(|t| t.0));
    done
}

/// Names of the instance's documents, through the API with the read key.
async fn document_names(base: &str, read: &str) -> Vec<String> {
    let docs: Value = reqwest::Client::new()
        .get(format!("{base}/api/documents?limit=1000"))
        .bearer_auth(read)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // GET /api/documents answers an array of document records.
    let list = docs.as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> = list
        .iter()
        .filter_map(|d| d["source"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// A policy every minute with keepLast 2 onto the `story-backups` claim; documents written
/// between its runs; then the damage and the automatic restore.
pub async fn scheduled_backups_and_automatic_recovery(
    client: &kube::Client,
    ns: &str,
    pp: &PatchParams,
    steps: &mut Steps,
) {
    let dbs: Api<InstantDb> = Api::namespaced(client.clone(), ns);
    // The same field manager as the instance's first apply: the whole spec again, plus recovery.
    dbs.patch(
        INSTANCE,
        pp,
        &Patch::Apply(json!({
            "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": INSTANCE},
            "spec": {"storage": {"size": "1Gi", "deletionPolicy": "Delete"},
                     "recovery": {"autoRestore": true}}
        })),
    )
    .await
    .unwrap();
    let policies: Api<InstantDbBackupPolicy> = Api::namespaced(client.clone(), ns);
    policies
        .patch(
            POLICY,
            pp,
            &Patch::Apply(json!({
                "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackupPolicy",
                "metadata": {"name": POLICY},
                "spec": {"instance": INSTANCE, "schedule": "* * * * *",
                         "retention": {"keepLast": 2},
                         "destination": {"volume": {"claimName": "story-backups", "path": "scheduled"}}}
            })),
        )
        .await
        .unwrap();

    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    let keys = secrets.get(&format!("{INSTANCE}-api")).await.unwrap();
    let (read, write) = (secret_value(&keys, "read"), secret_value(&keys, "write"));
    let backups: Api<InstantDbBackup> = Api::namespaced(client.clone(), ns);

    // Three scheduled runs, a document written after each: retention must keep the newest two.
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + timeout() * 2;
    while seen.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "policy {POLICY}: fewer than 3 scheduled backups completed within {:?}",
            timeout() * 2
        );
        for backup in completed_backups(&backups).await {
            let Some(name) = backup.metadata.name else {
                continue;
            };
            if !seen.insert(name.clone()) {
                continue;
            }
            let run = seen.len();
            let (base, mut forward) = port_forward(ns);
            let doc = format!("after-run-{run}.md");
            let r = reqwest::Client::new()
                .post(format!("{base}/api/documents"))
                .bearer_auth(&write)
                .json(&json!({"name": doc, "title": doc,
                              "text": format!("# Run {run}\nWritten after scheduled backup {name}."),
                              "format": "md"}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "ingest {doc}");
            let _ = forward.kill();
            say(&format!(
                "e2e story: scheduled backup {run} ({name}) complete; wrote {doc}"
            ));
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let kept = completed_backups(&backups).await;
    assert_eq!(
        kept.len(),
        2,
        "keepLast 2 must leave exactly the newest two: {:?}",
        kept.iter().map(|b| &b.metadata.name).collect::<Vec<_>>()
    );
    steps.done("3 scheduled backups, the newest 2 kept (keepLast 2)");

    // Stop the schedule, so the restore has a fixed newest backup to go back to.
    policies
        .patch(
            POLICY,
            &PatchParams::apply("instant-db-e2e-suspend"),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    let (base, mut forward) = port_forward(ns);
    let before = document_names(&base, &read).await;
    let _ = forward.kill();

    // The damage.
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let image = std::env::var("E2E_TOOLS_IMAGE").unwrap_or_else(|_| "busybox:1.36".into());
    let script = "f=/data/instant-db.sqlite; pages=$(( $(stat -c %s $f) / 4096 )); \
                  dd if=/dev/urandom of=$f bs=4096 seek=$(( pages / 2 )) count=1 conv=notrunc";
    pods.patch(
        "story-damage",
        pp,
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "story-damage"},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "dd", "image": image, "command": ["sh", "-c", script],
                                     "securityContext": {"runAsUser": 0},
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": format!("data-{INSTANCE}-0")}}]}
        })),
    )
    .await
    .unwrap();
    wait_for(&pods, "story-damage", "Succeeded", |p: &Pod| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
    })
    .await;
    let damaged_at = Instant::now();
    pods.delete("story-damage", &DeleteParams::default())
        .await
        .unwrap();
    pods.delete(&format!("{INSTANCE}-0"), &DeleteParams::default())
        .await
        .unwrap();
    steps.done("4 KiB of random bytes written into the database; engine pod deleted");

    wait_for(&dbs, INSTANCE, "IntegrityOk=False", |d: &InstantDb| {
        d.status.as_ref().is_some_and(|s| {
            find_condition(&s.conditions, INTEGRITY_OK).is_some_and(|c| c.status == "False")
                || is_true(&s.conditions, RECOVERING)
        })
    })
    .await;
    let detected = damaged_at.elapsed();
    steps.done("damage detected");
    let db = wait_for(&dbs, INSTANCE, "restored and Ready", |d: &InstantDb| {
        d.status.as_ref().is_some_and(|s| {
            is_true(&s.conditions, READY)
                && find_condition(&s.conditions, RECOVERING)
                    .is_some_and(|c| c.reason == "AutoRestoreCompleted")
        })
    })
    .await;
    let (base, mut forward) = port_forward(ns);
    let hits: Value = reqwest::Client::new()
        .post(format!("{base}/api/search"))
        .bearer_auth(&read)
        .json(&json!({"query": "how do I reach the wiki from home?", "top_k": 3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rto = damaged_at.elapsed();
    let after = document_names(&base, &read).await;
    let _ = forward.kill();
    assert_eq!(hits["hits"][0]["document"]["title"], "vpn.md", "{hits}");
    let lost: Vec<&String> = before.iter().filter(|n| !after.contains(n)).collect();
    assert!(
        after.iter().all(|n| before.contains(n)),
        "the restore brought back documents that never existed: {after:?} vs {before:?}"
    );
    assert!(
        lost.len() <= 1,
        "only the document written after the newest backup may be lost: {lost:?}"
    );
    say(&format!(
        "e2e story: RTO: detected {:.1} s after the damage, searchable again after {:.1} s; RPO: {} of {} documents lost ({lost:?}); {}",
        detected.as_secs_f64(),
        rto.as_secs_f64(),
        lost.len(),
        before.len(),
        find_condition(&db.status.unwrap_or_default().conditions, RECOVERING)
            .map(|c| c.message.clone())
            .unwrap_or_default()
    ));
    steps.done("restored automatically and searchable");
    policies
        .delete(POLICY, &DeleteParams::default())
        .await
        .unwrap();
}
