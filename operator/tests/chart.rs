//! The Helm chart against the operator it installs. The chart is rendered by the real `helm`
//! binary (`HELM`, else `helm` on PATH; scripts/install-helm.sh installs one). Its RBAC must grant
//! every request the operator makes to the fake API server while it runs its controller, its
//! reconcile flows and its leader election, and its Deployment may only set environment variables
//! that the binary reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{DB, SECRET, STS, mark_ready, reconcile_once, setup_with_engine};
use instant_db_crds::backup::{InstantDbBackup, InstantDbRestore};
use instant_db_operator::controller::{backup, restore};
use instant_db_operator::fake_api::{FakeApiServer, Permission};
use instant_db_operator::leader::{LeaderElector, LeaseConfig};
use instant_db_operator::metrics::Metrics;
use instant_db_operator::server::{Health, ServerState};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

const BACKUP: &str = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups/nightly";

/// Namespace the chart is installed into (where the leader-election Lease lives).
const RELEASE_NAMESPACE: &str = "operators";

fn helm() -> PathBuf {
    if let Some(h) = std::env::var_os("HELM").filter(|h| !h.is_empty()) {
        return h.into();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("helm"))
        .find(|p| p.is_file())
        .expect(
            "helm not found: run scripts/install-helm.sh and set HELM to the path it prints \
             (scripts/test.sh does both), or put helm on PATH",
        )
}

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/instant-db-operator")
}

/// `helm template` with `--set` values, as parsed objects.
fn render(set: &[&str]) -> Vec<Value> {
    let mut cmd = Command::new(helm());
    cmd.arg("template")
        .arg("idb")
        .arg(chart_dir())
        .args(["--namespace", RELEASE_NAMESPACE]);
    for value in set {
        cmd.args(["--set", value]);
    }
    let out = cmd.output().expect("run helm template");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<T: serde::de::DeserializeOwned>(objects: &[Value], kind: &str) -> Vec<T> {
    objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| serde_json::from_value(o.clone()).unwrap_or_else(|e| panic!("{kind}: {e}")))
        .collect()
}

/// The pod template of the chart's one Deployment, the operator's.
fn operator_pod(objects: &[Value]) -> PodSpec {
    let deployments = of_kind::<Deployment>(objects, "Deployment");
    assert_eq!(deployments.len(), 1, "the chart renders one Deployment");
    let spec = deployments[0].spec.clone().unwrap();
    spec.template.spec.unwrap()
}

/// A rule and where it applies: None for cluster-wide (ClusterRoleBinding), else one namespace.
struct Grant {
    namespace: Option<String>,
    rule: PolicyRule,
}

/// The rules bound to the Deployment's ServiceAccount, by ClusterRoleBindings and RoleBindings.
fn grants_of_the_operator(objects: &[Value]) -> Vec<Grant> {
    let sa = operator_pod(objects).service_account_name.unwrap();
    let binds_sa = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == sa
                && s.namespace.as_deref() == Some(RELEASE_NAMESPACE)
        })
    };
    let cluster_roles = of_kind::<ClusterRole>(objects, "ClusterRole");
    let roles = of_kind::<Role>(objects, "Role");
    let cluster_rules = |name: &str| -> Vec<PolicyRule> {
        cluster_roles
            .iter()
            .filter(|r| r.metadata.name.as_deref() == Some(name))
            .flat_map(|r| r.rules.clone().unwrap_or_default())
            .collect()
    };
    let mut grants = Vec::new();
    for b in of_kind::<ClusterRoleBinding>(objects, "ClusterRoleBinding") {
        if binds_sa(&b.subjects) && b.role_ref.kind == "ClusterRole" {
            for rule in cluster_rules(&b.role_ref.name) {
                grants.push(Grant {
                    namespace: None,
                    rule,
                });
            }
        }
    }
    for b in of_kind::<RoleBinding>(objects, "RoleBinding") {
        if !binds_sa(&b.subjects) {
            continue;
        }
        let ns = b.metadata.namespace.clone();
        let rules = match b.role_ref.kind.as_str() {
            "ClusterRole" => cluster_rules(&b.role_ref.name),
            _ => roles
                .iter()
                .filter(|r| {
                    r.metadata.name.as_deref() == Some(b.role_ref.name.as_str())
                        && r.metadata.namespace == ns
                })
                .flat_map(|r| r.rules.clone().unwrap_or_default())
                .collect(),
        };
        for rule in rules {
            grants.push(Grant {
                namespace: ns.clone(),
                rule,
            });
        }
    }
    grants
}

fn lists(values: &[String], wanted: &str) -> bool {
    values.iter().any(|v| v == wanted || v == "*")
}

fn allows(grants: &[Grant], p: &Permission) -> bool {
    grants.iter().any(|g| {
        let in_scope = g.namespace.is_none() || g.namespace == p.namespace;
        let r = &g.rule;
        let named = match (&r.resource_names, &p.name) {
            (Some(names), Some(name)) if !names.is_empty() => names.contains(name),
            (Some(names), None) if !names.is_empty() => false,
            _ => true,
        };
        in_scope
            && lists(r.api_groups.as_deref().unwrap_or_default(), &p.group)
            && lists(r.resources.as_deref().unwrap_or_default(), &p.resource)
            && lists(&r.verbs, &p.verb)
            && named
    })
}

fn denied(grants: &[Grant], needed: &BTreeSet<Permission>) -> Vec<String> {
    needed
        .iter()
        .filter(|p| !allows(grants, p))
        .map(|p| {
            format!(
                "{} {}/{} in {} (name {})",
                p.verb,
                p.group,
                p.resource,
                p.namespace.as_deref().unwrap_or("<cluster>"),
                p.name.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

/// Runs what the operator does in a cluster against the fake and returns every permission its
/// requests needed: the controller's lists and watches (all namespaces when `watched` is empty)
/// and first reconcile, with a ServiceMonitor, and those of the backup and policy controllers
/// (a due run and a pruned backup) and the restore controller's; then readiness, an automatic
/// restore after a failed integrity check, a restore,
/// backup started and failed, one waiting for its policy, an image update, a volume expansion, a
/// recreated admin Secret, the NetworkPolicy switched off, suspend and deletion; then leader
/// election in the release namespace.
async fn permissions_the_operator_needs(watched: Vec<String>) -> BTreeSet<Permission> {
    let (fake, ctx, engine) =
        setup_with_engine(json!({"storage": {"size": "1Gi"}, "disruption": {"protect": true}}));
    // Prometheus Operator installed: the operator reads its CRD and applies a ServiceMonitor.
    fake.put(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/servicemonitors.monitoring.coreos.com",
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "servicemonitors.monitoring.coreos.com"}, "spec": {}}),
    );
    let health = Health::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // A backup of the instance, which the backup controller finds waiting for its pod.
    fake.put(
        BACKUP,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
               "metadata": {"name": "nightly", "namespace": "search"},
               "spec": {"instance": "docs", "destination": {"s3": {
                   "bucket": "backups", "credentialsSecret": "s3-creds"}}}}),
    );
    // One to a volume: the instance looks its claim up (the user's PVC, not cached).
    fake.put(
        "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups/to-volume",
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
               "metadata": {"name": "to-volume", "namespace": "search"},
               "spec": {"instance": "docs", "destination": {"volume": {"claimName": "shared-backups"}}}}),
    );
    fake.put(
        "/api/v1/namespaces/search/secrets/s3-creds",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "s3-creds", "namespace": "search"},
               "data": {"AWS_ACCESS_KEY_ID": "QUtJRA==", "AWS_SECRET_ACCESS_KEY": "czNjcjN0"}}),
    );
    // A policy over the instances labelled tier=gold, already due, with one backup to prune.
    fake.put(
        "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackuppolicies/daily",
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackupPolicy",
               "metadata": {"name": "daily", "namespace": "search",
                            "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"selector": {"matchLabels": {"tier": "gold"}}, "schedule": "@daily",
                        "retention": {"keepLast": 1},
                        "destination": {"s3": {"bucket": "backups", "credentialsSecret": "s3-creds"}}}}),
    );
    fake.merge(DB, &json!({"metadata": {"labels": {"tier": "gold"}}}));
    for (name, completed) in [
        ("old", "2026-01-02T00:00:00Z"),
        ("new", "2026-01-03T00:00:00Z"),
    ] {
        fake.put(
            &format!("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups/{name}"),
            json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
                   "metadata": {"name": name, "namespace": "search",
                                "finalizers": ["instantdb.io/delete-archive"],
                                "labels": {"instantdb.io/policy": "daily"}},
                   "spec": {"instance": "docs", "policy": "daily"},
                   "status": {"phase": "Completed", "completedAt": completed,
                              "backupId": format!("{name}-1"),
                              "destination": {"s3": {"bucket": "backups", "prefix": "search/docs",
                                  "region": "us-east-1", "credentialsSecret": "s3-creds"}},
                              "archiveUrl": format!("s3://backups/search/docs/{name}-1.tar.gz?region=us-east-1&credentials=s3-creds")}}),
        );
    }
    let restores = tokio::spawn(instant_db_operator::controller::restore::run(
        ctx.clone(),
        watched.clone(),
        stop_rx.clone(),
    ));
    let policies = tokio::spawn(instant_db_operator::controller::policy::run(
        ctx.clone(),
        watched.clone(),
        stop_rx.clone(),
    ));
    let controller = tokio::spawn(instant_db_operator::controller::instantdb::run(
        ctx.clone(),
        watched.clone(),
        stop_rx.clone(),
        health.clone(),
    ));
    let backups = tokio::spawn(instant_db_operator::controller::backup::run(
        ctx.clone(),
        watched,
        stop_rx,
    ));
    // Each watcher lists, then watches; the fake answers no watch, so watchers retry it, and
    // the run goes on until every watched resource was watched at least once. (Reconciles also
    // make plain lists, which no watch follows.)
    let watched_resources = [
        "instantdbs",
        "statefulsets",
        "services",
        "configmaps",
        "secrets",
        "poddisruptionbudgets",
        "instantdbbackups",
        "instantdbbackuppolicies",
        "instantdbrestores",
    ];
    let lists_all_watched = || {
        let seen = needed(&fake);
        watched_resources
            .iter()
            .all(|r| seen.iter().any(|p| p.verb == "watch" && p.resource == *r))
    };
    // kube-runtime backs off all of a controller's watches together when any of them fails
    // (`Controller::trigger_backoff`), and against the fake every watch fails: with seven
    // watches the last one comes after minutes. The clock is paused, so waiting costs nothing.
    for _ in 0..6000 {
        if health.synced()
            && fake.get(DB).unwrap().get("status").is_some()
            && fake.get(BACKUP).unwrap().get("status").is_some()
            && fake
                .get("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackuppolicies/daily")
                .unwrap()
                .get("status")
                .is_some()
            && lists_all_watched()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(health.synced(), "the controller never synced its watches");
    assert!(lists_all_watched(), "{:?}", needed(&fake));
    stop_tx.send(true).unwrap();
    controller.await.unwrap();
    backups.await.unwrap();
    policies.await.unwrap();
    restores.await.unwrap();

    mark_ready(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    // a failed integrity check with autoRestore: the InstantDb controller creates a restore
    fake.merge(DB, &json!({"spec": {"recovery": {"autoRestore": true}}}));
    engine
        .health
        .lock()
        .unwrap()
        .as_mut()
        .unwrap()
        .last_integrity_check = Some(instant_db_operator::engine_client::IntegrityCheck {
        at: Some("2026-12-01T10:00:00Z".parse().unwrap()),
        ok: Some(false),
        message: Some("page 7 corrupt".into()),
    });
    reconcile_once(&fake, &ctx).await.unwrap();
    fake.merge(DB, &json!({"spec": {"recovery": null}}));
    // the backup starts on the engine, then fails (the fake engine knows no job)
    for _ in 0..2 {
        let backup: InstantDbBackup = serde_json::from_value(fake.get(BACKUP).unwrap()).unwrap();
        backup::reconcile(Arc::new(backup), ctx.clone())
            .await
            .unwrap();
    }
    assert_eq!(fake.get(BACKUP).unwrap()["status"]["phase"], "Failed");
    // the pruned backup's archive is deleted through the engine, then its finalizer removed
    let pruned = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbbackups/old";
    let b: InstantDbBackup = serde_json::from_value(fake.get(pruned).unwrap()).unwrap();
    backup::reconcile(Arc::new(b), ctx.clone()).await.unwrap();
    assert!(fake.get(pruned).is_none());
    // a restore of the latest completed backup (the policy's), through its policy's destination
    fake.put(
        "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores/undo",
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbRestore",
               "metadata": {"name": "undo", "namespace": "search"},
               "spec": {"instance": "docs"}}),
    );
    let r: InstantDbRestore = serde_json::from_value(
        fake.get("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores/undo")
            .unwrap(),
    )
    .unwrap();
    restore::reconcile(Arc::new(r), ctx.clone()).await.unwrap();
    // a job on the engine, followed until the engine reports it completed
    engine.set_restore_phase(
        instant_db_operator::engine_client::RestorePhase::Completed,
        None,
        1,
    );
    let r: InstantDbRestore = serde_json::from_value(
        fake.get("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores/undo")
            .unwrap(),
    )
    .unwrap();
    restore::reconcile(Arc::new(r), ctx.clone()).await.unwrap();
    assert_eq!(
        fake.get("/apis/instantdb.io/v1alpha1/namespaces/search/instantdbrestores/undo")
            .unwrap()["status"]["phase"],
        "Completed"
    );
    // a backup that takes its destination from a policy
    fake.put(
        BACKUP,
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
               "metadata": {"name": "nightly", "namespace": "search"},
               "spec": {"instance": "docs", "policy": "daily"}}),
    );
    let backup: InstantDbBackup = serde_json::from_value(fake.get(BACKUP).unwrap()).unwrap();
    backup::reconcile(Arc::new(backup), ctx.clone())
        .await
        .unwrap();
    let mut db = fake.get(DB).unwrap();
    db["spec"]["image"] = json!("ghcr.io/instant-db/instant-db:0.2.0");
    db["spec"]["storage"]["size"] = json!("2Gi");
    fake.put(DB, db);
    fake.put(
        "/api/v1/namespaces/search/persistentvolumeclaims/data-docs-0",
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "data-docs-0", "namespace": "search",
                     "labels": {"app.kubernetes.io/name": "instant-db", "app.kubernetes.io/instance": "docs", "app.kubernetes.io/component": "engine"}},
               "spec": {"resources": {"requests": {"storage": "1Gi"}}}}),
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    fake.remove(SECRET);
    reconcile_once(&fake, &ctx).await.unwrap();
    // the NetworkPolicy switched off: the operator deletes it
    fake.merge(DB, &json!({"spec": {"networkPolicy": {"enabled": false}}}));
    reconcile_once(&fake, &ctx).await.unwrap();
    fake.merge(DB, &json!({"spec": {"suspend": true}}));
    reconcile_once(&fake, &ctx).await.unwrap();
    fake.merge(
        DB,
        &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    assert!(fake.get(STS).is_some());

    let lease = LeaseConfig::new(
        RELEASE_NAMESPACE.into(),
        "instant-db-operator".into(),
        "idb-0".into(),
    );
    let elector = LeaderElector::new(fake.client(), lease);
    elector.acquire().await.unwrap();
    elector.try_acquire_or_renew().await.unwrap();
    elector.release().await.unwrap();

    needed(&fake)
}

fn needed(fake: &FakeApiServer) -> BTreeSet<Permission> {
    fake.log().iter().filter_map(|l| l.permission()).collect()
}

#[test]
fn the_chart_passes_helm_lint_strict() {
    let out = Command::new(helm())
        .args(["lint", "--strict"])
        .arg(chart_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm lint --strict failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_cluster_role_grants_every_request_the_operator_makes() {
    let needed = permissions_the_operator_needs(vec![]).await;
    // what the flows must have covered, so a flow that stops early cannot pass unseen
    for (verb, resource) in [
        ("watch", "instantdbs"),
        ("patch", "instantdbs/status"),
        ("patch", "statefulsets"),
        ("patch", "persistentvolumeclaims"),
        ("delete", "poddisruptionbudgets"),
        ("delete", "networkpolicies"),
        ("patch", "servicemonitors"),
        ("create", "events"),
        ("update", "leases"),
        ("watch", "instantdbbackups"),
        ("patch", "instantdbbackups/status"),
        ("get", "instantdbbackuppolicies"),
        ("watch", "instantdbbackuppolicies"),
        ("patch", "instantdbbackuppolicies/status"),
        ("create", "instantdbbackups"),
        ("delete", "instantdbbackups"),
        ("watch", "instantdbrestores"),
        ("patch", "instantdbrestores/status"),
        ("list", "instantdbbackups"),
        ("create", "instantdbrestores"),
        ("patch", "instantdbbackups"),
    ] {
        assert!(
            needed
                .iter()
                .any(|p| p.verb == verb && p.resource == resource),
            "the flows made no {verb} on {resource}: {needed:?}"
        );
    }
    let grants = grants_of_the_operator(&render(&[]));
    assert_eq!(denied(&grants, &needed), Vec::<String>::new());
}

/// Kinds the operator creates with server-side apply. A real API server authorizes an apply that
/// creates its object as `create` as well as `patch` (Kubernetes API concepts, "Patch and
/// apply"); the fake logs only the PATCH, so for these `create` counts as used with `patch`.
const APPLIED: &[&str] = &[
    "configmaps",
    "secrets",
    "services",
    "statefulsets",
    "poddisruptionbudgets",
    "networkpolicies",
    "servicemonitors",
];

/// Every (group, resource, verb) the rules bound to the operator grant that no flow used.
fn unused_grants(grants: &[Grant], needed: &BTreeSet<Permission>) -> Vec<String> {
    let used = |group: &str, resource: &str, verb: &str| {
        needed
            .iter()
            .any(|p| p.group == group && p.resource == resource && p.verb == verb)
    };
    let mut unused = BTreeSet::new();
    for g in grants {
        let r = &g.rule;
        for group in r.api_groups.iter().flatten() {
            for resource in r.resources.iter().flatten() {
                for verb in &r.verbs {
                    let applied_create = verb == "create"
                        && APPLIED.contains(&resource.as_str())
                        && used(group, resource, "patch");
                    if !used(group, resource, verb) && !applied_create {
                        unused.insert(format!("{verb} {group}/{resource}"));
                    }
                }
            }
        }
    }
    unused.into_iter().collect()
}

#[tokio::test(start_paused = true)]
async fn the_default_cluster_role_grants_nothing_the_operator_does_not_use() {
    // Least privilege: no `update` where the code only applies or patches, no write verb on
    // kinds it only reads. The flows are those of the test above, which checks their coverage.
    let needed = permissions_the_operator_needs(vec![]).await;
    let grants = grants_of_the_operator(&render(&[]));
    assert_eq!(unused_grants(&grants, &needed), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn watch_namespaces_roles_grant_every_request_in_those_namespaces_and_none_elsewhere() {
    let needed = permissions_the_operator_needs(vec!["search".into()]).await;
    let grants = grants_of_the_operator(&render(&["watchNamespaces={search,other}"]));
    assert_eq!(denied(&grants, &needed), Vec::<String>::new());
    assert!(
        grants.iter().filter(|g| g.namespace.is_none()).all(
            |g| g.rule.api_groups.as_deref() == Some(&["apiextensions.k8s.io".to_string()][..])
        ),
        "with watchNamespaces only the CRD lookup is cluster-wide"
    );
    // the same requests are refused when the chart watches other namespaces
    let elsewhere = grants_of_the_operator(&render(&["watchNamespaces={other}"]));
    let refused = denied(&elsewhere, &needed);
    assert!(
        refused
            .iter()
            .any(|d| d.starts_with("watch instantdb.io/instantdbs in search")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_deployment_sets_only_variables_the_operator_reads_and_probes_paths_it_serves() {
    let objects = render(&["watchNamespaces={a,b}", "metrics.port=9090"]);
    let pod = operator_pod(&objects);
    let container = &pod.containers[0];
    let help = Command::new(env!("CARGO_BIN_EXE_instant-db-operator"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let env = container.env.clone().unwrap_or_default();
    assert!(!env.is_empty());
    for var in &env {
        assert!(
            help.contains(&format!("[env: {}=", var.name)),
            "the chart sets {} but `instant-db-operator --help` lists no such variable",
            var.name
        );
    }
    let value = |name: &str| {
        env.iter()
            .find(|v| v.name == name)
            .and_then(|v| v.value.clone())
            .unwrap_or_default()
    };
    assert_eq!(value("WATCH_NAMESPACE"), "a,b");
    assert_eq!(value("METRICS_ADDR"), "0.0.0.0:9090");
    let port = &container.ports.clone().unwrap_or_default()[0];
    assert_eq!(port.container_port, 9090);

    // every probe names the metrics port, and the operator's own router serves its path
    let router = instant_db_operator::server::router(ServerState {
        metrics: Metrics::new().unwrap(),
        health: Health::new(),
    });
    for probe in [&container.liveness_probe, &container.readiness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.port, IntOrString::String(port.name.clone().unwrap()));
        let path = get.path.clone().unwrap();
        let request = http::Request::get(path.as_str())
            .body(axum::body::Body::empty())
            .unwrap();
        let status = router.clone().oneshot(request).await.unwrap().status();
        assert_ne!(status, http::StatusCode::NOT_FOUND, "probe path {path}");
    }
}
