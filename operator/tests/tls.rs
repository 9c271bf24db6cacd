//! `spec.tls` against the in-memory fake API server: the engine is asked for its health only
//! over TLS verified with the instance's Secret, and a missing or incomplete Secret stalls the
//! instance naming it. (The fake engine records what the operator would verify; the real
//! verification against a real engine is in `tests/tests/contracts.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DB, STS, mark_ready, run, setup_with_engine};
use instant_db_operator::fake_api::FakeApiServer;
use serde_json::{Value, json};

const TLS_SECRET: &str = "/api/v1/namespaces/search/secrets/docs-tls";

/// `s` as a Secret's `data` value (base64, as the API server stores it).
fn b64(s: &str) -> Value {
    serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec())).unwrap()
}

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nthe CA\n-----END CERTIFICATE-----\n";

/// The Secret cert-manager would write for a Certificate with `secretName: docs-tls`.
fn put_tls_secret(fake: &FakeApiServer, keys: &[&str]) {
    let data: serde_json::Map<String, Value> = keys
        .iter()
        .map(|k| {
            let value = if *k == "ca.crt" {
                CA_PEM.to_string()
            } else {
                format!("-----BEGIN CERTIFICATE-----\n{k}\n-----END CERTIFICATE-----\n")
            };
            (k.to_string(), b64(&value))
        })
        .collect();
    fake.put(
        TLS_SECRET,
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "docs-tls", "namespace": "search"}, "data": data}),
    );
}

fn condition(fake: &FakeApiServer, type_: &str) -> (String, String, String) {
    let c = common::db_condition(fake, type_);
    let text = |k: &str| c[k].as_str().unwrap().to_string();
    (text("status"), text("reason"), text("message"))
}

#[tokio::test]
async fn a_tls_instance_is_stalled_naming_its_missing_secret_then_read_over_verified_tls() {
    let (fake, ctx, engine) =
        setup_with_engine(json!({"storage": {"size": "1Gi"}, "tls": {"secretName": "docs-tls"}}));
    run(&fake, &ctx).await.unwrap();
    // The StatefulSet is applied anyway: on a real cluster its pod waits for the Secret volume
    // (ContainerCreating, FailedMount) and starts once cert-manager has written the Secret.
    let sts = fake.get(STS).unwrap();
    let volumes = sts["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == "docs-tls"),
        "{volumes:?}"
    );
    mark_ready(&fake);
    run(&fake, &ctx).await.unwrap();
    let (status, reason, message) = condition(&fake, "Stalled");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "SecretMissing")
    );
    assert!(
        message.contains("docs-tls") && message.contains("not found"),
        "{message}"
    );
    assert_eq!(condition(&fake, "Ready").0, "False");
    assert!(
        engine.health_calls.lock().unwrap().is_empty(),
        "an engine that cannot be verified is not asked"
    );

    // A Secret without its key: still stalled, saying which key.
    put_tls_secret(&fake, &["tls.crt", "ca.crt"]);
    run(&fake, &ctx).await.unwrap();
    let (status, _, message) = condition(&fake, "Stalled");
    assert_eq!(status, "True");
    assert!(
        message.contains("docs-tls") && message.contains("tls.key"),
        "{message}"
    );

    // The complete Secret: the engine is asked over TLS trusting ca.crt, checking the pod name.
    put_tls_secret(&fake, &["tls.crt", "tls.key", "ca.crt"]);
    run(&fake, &ctx).await.unwrap();
    let calls = engine.health_calls.lock().unwrap().clone();
    let last = calls.last().expect("health read");
    assert_eq!(last.ip, "10.0.0.7");
    let tls = last.tls.as_ref().expect("over TLS");
    assert_eq!(tls.server_name, "docs-0.docs-headless.search.svc");
    assert_eq!(tls.ca_pem, CA_PEM.as_bytes());
    assert_eq!(condition(&fake, "Stalled").0, "False");
    assert_eq!(condition(&fake, "Ready").0, "True");
    let db = fake.get(DB).unwrap();
    assert_eq!(db["status"]["endpoint"], "https://docs.search.svc:8080");
}
