//! Against a real cluster: runs only when KUBECONFIG is set. Installs the CRDs, applies an
//! InstantDb and waits for its Ready condition. The operator must be running in the cluster
//! (helm install) or locally (`cargo run -p instant-db-operator`) against the same cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use instant_db_crds::InstantDb;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};

#[tokio::test]
async fn instantdb_becomes_ready() {
    if std::env::var_os("KUBECONFIG").is_none() {
        println!("skipped: KUBECONFIG is not set");
        return;
    }
    let client = kube::Client::try_default()
        .await
        .expect("cluster from KUBECONFIG");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply("instant-db-e2e").force();
    for (_, crd) in instant_db_crds::all_crds() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &pp, &Patch::Apply(&crd)).await.unwrap();
        let established = await_condition(crds.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(60), established)
            .await
            .unwrap()
            .unwrap();
    }
    let ns = std::env::var("E2E_NAMESPACE").unwrap_or_else(|_| "default".into());
    let dbs: Api<InstantDb> = Api::namespaced(client.clone(), &ns);
    let obj: InstantDb = serde_json::from_value(serde_json::json!({
        "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
        "metadata": {"name": "e2e-ready"},
        "spec": {"storage": {"size": "1Gi", "deletionPolicy": "Delete"}}
    }))
    .unwrap();
    dbs.patch("e2e-ready", &pp, &Patch::Apply(&obj))
        .await
        .unwrap();
    // GitOps: what we applied is what we read back.
    let back = dbs.get("e2e-ready").await.unwrap();
    assert_eq!(
        serde_json::to_value(&back.spec).unwrap(),
        serde_json::to_value(&obj.spec).unwrap()
    );
    let ready = await_condition(dbs.clone(), "e2e-ready", |o: Option<&InstantDb>| {
        o.and_then(|d| d.status.as_ref())
            .is_some_and(|s| instant_db_crds::conditions::is_true(&s.conditions, "Ready"))
    });
    let timeout = std::env::var("E2E_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let res = tokio::time::timeout(Duration::from_secs(timeout), ready).await;
    let _ = dbs.delete("e2e-ready", &DeleteParams::default()).await;
    res.expect("InstantDb did not become Ready in time")
        .unwrap();
}
