//! The InstantDb controller reads from its watch caches and puts back children that another
//! writer changed, against the in-memory fake API server (which streams watches).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{STS, mark_ready, run, setup};
use instant_db_operator::fake_api::FakeApiServer;
use serde_json::{Value, json};

const SVC: &str = "/api/v1/namespaces/search/services/docs";
const CM: &str = "/api/v1/namespaces/search/configmaps/docs-config";

/// Requests of the last reconcile, as `METHOD path`, watches left out (they are the caches'
/// own long-running requests, not the reconcile's).
fn requests(fake: &FakeApiServer) -> Vec<String> {
    fake.log()
        .into_iter()
        .filter(|l| !l.watch)
        .map(|l| format!("{} {}", l.method, l.path))
        .collect()
}

fn notes(fake: &FakeApiServer, reason: &str) -> Vec<String> {
    fake.objects_under("/apis/events.k8s.io/v1/namespaces/search/events")
        .iter()
        .filter(|e| e["reason"] == reason)
        .filter_map(|e| e["note"].as_str().map(str::to_string))
        .collect()
}

/// Created, rolled out and reconciled once more: the steady state.
async fn steady(
    spec: Value,
) -> (
    FakeApiServer,
    std::sync::Arc<instant_db_operator::controller::Context>,
) {
    let (fake, ctx) = setup(spec);
    run(&fake, &ctx).await.unwrap();
    mark_ready(&fake);
    run(&fake, &ctx).await.unwrap();
    run(&fake, &ctx).await.unwrap();
    (fake, ctx)
}

// Before the caches, a steady pass made 10 GETs (two Secrets, StatefulSet, ConfigMap, two
// Services, PDB, pod, PVC, NetworkPolicy) and a namespace-wide LIST of backups.
#[tokio::test]
async fn a_steady_reconcile_makes_no_get_no_list_and_no_write() {
    let (fake, ctx) = steady(
        json!({"storage": {"size": "1Gi"}, "disruption": {"protect": true},
                                    "networkPolicy": {"enabled": true}}),
    )
    .await;
    run(&fake, &ctx).await.unwrap();
    assert_eq!(requests(&fake), Vec::<String>::new());
    // What the caches hold came from LISTs and WATCHes, one of each per kind (and none per
    // reconcile); a real server also ends each watch after its timeout and the watcher resumes.
    let watched: Vec<String> = fake
        .log()
        .iter()
        .filter(|l| l.watch)
        .map(|l| l.path.clone())
        .collect();
    assert!(watched.is_empty(), "no watch restarted: {watched:?}");
}

#[tokio::test]
async fn an_edited_replica_count_is_put_back_with_a_drift_event_and_nothing_else_is_written() {
    let (fake, ctx) = steady(json!({"storage": {"size": "1Gi"}})).await;
    // Someone scales the StatefulSet by hand (`kubectl scale`). On a real server this is a
    // change by another field manager; the operator's forced apply takes the field back.
    fake.merge(STS, &json!({"spec": {"replicas": 3}}));
    run(&fake, &ctx).await.unwrap();
    // The status is written too: the edit made a new generation, so the rollout is pending.
    let writes: Vec<String> = requests(&fake)
        .into_iter()
        .filter(|r| !r.starts_with("GET") && !r.contains("/events") && !r.ends_with("/status"))
        .collect();
    assert_eq!(
        writes,
        ["PATCH /apis/apps/v1/namespaces/search/statefulsets/docs"],
        "only the drifted child is written"
    );
    assert_eq!(fake.get(STS).unwrap()["spec"]["replicas"], 1);
    let drift = notes(&fake, "DriftCorrected");
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(
        drift[0].contains("StatefulSet docs: spec.replicas"),
        "the event names the object and the field: {}",
        drift[0]
    );
    // Put back: the next pass writes nothing.
    run(&fake, &ctx).await.unwrap();
    assert_eq!(requests(&fake), Vec::<String>::new());
}

#[tokio::test]
async fn an_edited_image_service_port_and_removed_label_are_put_back() {
    let (fake, ctx) = steady(json!({"storage": {"size": "1Gi"}})).await;
    let image =
        fake.get(STS).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"].clone();
    let mut sts = fake.get(STS).unwrap();
    sts["spec"]["template"]["spec"]["containers"][0]["image"] = json!("example.com/other:1");
    fake.put(STS, sts);
    let mut svc = fake.get(SVC).unwrap();
    let port = svc["spec"]["ports"][0]["port"].clone();
    svc["spec"]["ports"][0]["port"] = json!(9999);
    // What a real server adds and the operator does not own: not drift.
    svc["spec"]["clusterIP"] = json!("10.96.0.12");
    fake.put(SVC, svc);
    let mut cm = fake.get(CM).unwrap();
    cm["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("app.kubernetes.io/part-of");
    fake.put(CM, cm);
    run(&fake, &ctx).await.unwrap();
    assert_eq!(
        fake.get(STS).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"],
        image
    );
    assert_eq!(fake.get(SVC).unwrap()["spec"]["ports"][0]["port"], port);
    assert!(fake.get(CM).unwrap()["metadata"]["labels"]["app.kubernetes.io/part-of"].is_string());
    let mut drift = notes(&fake, "DriftCorrected");
    drift.sort();
    assert_eq!(drift.len(), 3, "{drift:?}");
    assert!(
        drift[0].contains("ConfigMap docs-config: metadata.labels[\"app.kubernetes.io/part-of\"]"),
        "{drift:?}"
    );
    assert!(
        drift[1].contains("Service docs: spec.ports[name=http].port"),
        "{drift:?}"
    );
    assert!(
        drift[2].contains("StatefulSet docs: spec.template.spec.containers[name=engine].image"),
        "{drift:?}"
    );
    run(&fake, &ctx).await.unwrap();
    assert_eq!(requests(&fake), Vec::<String>::new());
}

#[tokio::test]
async fn status_and_defaulted_fields_written_by_others_are_not_drift() {
    let (fake, ctx) = steady(json!({"storage": {"size": "1Gi"}})).await;
    // The StatefulSet controller's status and API-server defaults on fields the operator
    // leaves unset.
    fake.merge(
        STS,
        &json!({"status": {"availableReplicas": 1},
                "spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                         "template": {"spec": {"dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler"}}}}),
    );
    fake.merge(
        SVC,
        &json!({"spec": {"clusterIP": "10.96.0.12", "sessionAffinity": "None"}}),
    );
    run(&fake, &ctx).await.unwrap();
    let writes: Vec<String> = requests(&fake)
        .into_iter()
        .filter(|r| !r.starts_with("GET") && !r.contains("instantdbs/docs/status"))
        .collect();
    assert_eq!(
        writes,
        Vec::<String>::new(),
        "{:?}",
        notes(&fake, "DriftCorrected")
    );
    assert!(notes(&fake, "DriftCorrected").is_empty());
}
