//! Against a real cluster: runs only when KUBECONFIG is set (otherwise it prints that it was
//! skipped and passes). Installs the CRDs, starts the InstantDb controller in-process from the
//! operator library against that cluster (leader election off: the test is the only
//! operator), applies an InstantDb in a fresh namespace, waits for Ready, checks the status and
//! the printer columns (`kubectl get idb`), deletes everything and stops the controller.
//!
//! Settings: `E2E_ENGINE_IMAGE` (engine image; default the operator's), `E2E_TIMEOUT_SECS`
//! (default 300). No operator may be running in the cluster already: two would fight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use instant_db_crds::InstantDb;
use instant_db_crds::conditions::is_true;
use instant_db_e2e::{apply_namespace, say, timeout};
use instant_db_operator::controller::{Context, OperatorConfig};
use instant_db_operator::engine_client::HttpEngineClient;
use instant_db_operator::metrics::Metrics;
use instant_db_operator::server::Health;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};

const NAME: &str = "e2e-ready";

#[tokio::test]
async fn operator_in_process_makes_an_instantdb_ready() {
    if std::env::var_os("KUBECONFIG").is_none() {
        say(
            "SKIPPED operator_in_process_makes_an_instantdb_ready: KUBECONFIG is not set (no cluster to test against)",
        );
        return;
    }
    let client = kube::Client::try_default()
        .await
        .expect("cluster from KUBECONFIG");
    let timeout = timeout();
    let pp = PatchParams::apply("instant-db-e2e").force();

    // CRDs
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in instant_db_crds::all_crds() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &pp, &Patch::Apply(&crd)).await.unwrap();
        let established = await_condition(crds.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(60), established)
            .await
            .expect("CRD established in time")
            .unwrap();
    }

    // a namespace of our own, so nothing else is touched
    let ns = format!("instant-db-e2e-{}", std::process::id());
    apply_namespace(&client, &ns, &pp).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());

    // the operator, in-process
    let image = std::env::var("E2E_ENGINE_IMAGE")
        .unwrap_or_else(|_| instant_db_operator::controller::DEFAULT_ENGINE_IMAGE.into());
    let ctx = Arc::new(Context::new(
        client.clone(),
        OperatorConfig {
            default_image: image.clone(),
            ..Default::default()
        },
        Arc::new(HttpEngineClient::new(8080, Duration::from_secs(3)).unwrap()),
        Metrics::new().unwrap(),
    ));
    let health = Health::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let controller = tokio::spawn(instant_db_operator::controller::instantdb::run(
        ctx,
        vec![ns.clone()],
        stop_rx,
        health.clone(),
    ));
    say(&format!(
        "e2e: controller started for namespace {ns}, engine image {image}"
    ));

    let result = check_instance(&client, &ns, &pp, &health, timeout).await;

    // clean up whatever happened
    let dbs: Api<InstantDb> = Api::namespaced(client.clone(), &ns);
    let mut deleted = false;
    if let Ok(Some(obj)) = dbs.get_opt(NAME).await {
        let uid = obj.metadata.uid.clone().unwrap_or_default();
        let _ = dbs.delete(NAME, &DeleteParams::default()).await;
        // Waits for this very object (its uid) to be gone, with the controller still running.
        let gone = await_condition(dbs.clone(), NAME, conditions::is_deleted(&uid));
        deleted = matches!(
            tokio::time::timeout(Duration::from_secs(60), gone).await,
            Ok(Ok(_))
        );
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), controller).await;
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(deleted, "InstantDb {ns}/{NAME} was not deleted within 60 s");
    say("e2e: InstantDb became Ready and was deleted");
}

async fn check_instance(
    client: &kube::Client,
    ns: &str,
    pp: &PatchParams,
    health: &Health,
    timeout: Duration,
) -> Result<(), String> {
    let dbs: Api<InstantDb> = Api::namespaced(client.clone(), ns);
    let obj: InstantDb = serde_json::from_value(json!({
        "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
        "metadata": {"name": NAME},
        "spec": {"storage": {"size": "1Gi", "deletionPolicy": "Delete"}}
    }))
    .map_err(|e| e.to_string())?;
    dbs.patch(NAME, pp, &Patch::Apply(&obj))
        .await
        .map_err(|e| format!("apply InstantDb: {e}"))?;
    // GitOps: what we applied is what we read back (no defaults written).
    let back = dbs.get(NAME).await.map_err(|e| e.to_string())?;
    if serde_json::to_value(&back.spec).ok() != serde_json::to_value(&obj.spec).ok() {
        return Err(format!("spec changed on the server: {:?}", back.spec));
    }
    let ready = await_condition(dbs.clone(), NAME, |o: Option<&InstantDb>| {
        o.and_then(|d| d.status.as_ref())
            .is_some_and(|s| is_true(&s.conditions, "Ready"))
    });
    let db = tokio::time::timeout(timeout, ready)
        .await
        .map_err(|_| format!("InstantDb {ns}/{NAME} did not become Ready within {timeout:?}"))?
        .map_err(|e| e.to_string())?
        .ok_or("InstantDb vanished")?;
    if !health.synced() {
        return Err("the controller reconciled before reporting its watches synced".into());
    }
    let status = db.status.clone().unwrap_or_default();
    let phase = status.phase.map(|p| p.as_str().to_string());
    if status.observed_generation != db.metadata.generation {
        return Err(format!(
            "observedGeneration {:?} != generation {:?}",
            status.observed_generation, db.metadata.generation
        ));
    }
    if status.endpoint.as_deref() != Some(&format!("http://{NAME}.{ns}.svc:8080")) {
        return Err(format!("endpoint {:?}", status.endpoint));
    }
    // Running, or Degraded when this machine cannot reach pod IPs for /health/detailed.
    if !matches!(phase.as_deref(), Some("Running" | "Degraded")) {
        return Err(format!("phase {phase:?}"));
    }

    // `kubectl get idb`: the server renders the printer columns as a Table.
    let req = http::Request::get(format!(
        "/apis/instantdb.io/v1alpha1/namespaces/{ns}/instantdbs/{NAME}"
    ))
    .header(
        "Accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .body(Vec::new())
    .map_err(|e| e.to_string())?;
    let table: Value = client.request(req).await.map_err(|e| e.to_string())?;
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .ok_or("no columnDefinitions: the server did not answer with a Table")?
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    if columns != ["Name", "Ready", "Phase", "Docs", "Last Backup", "Age"] {
        return Err(format!("printer columns {columns:?}"));
    }
    let cells = &table["rows"][0]["cells"];
    if cells[0] != NAME || cells[1] != "True" || cells[2].as_str() != phase.as_deref() {
        return Err(format!("printed row {cells}"));
    }
    say(&format!("e2e: kubectl get idb row: {cells}"));
    Ok(())
}
