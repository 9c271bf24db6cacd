//! The `<name>-api` Secret over reconciles, against the in-memory fake API server (which
//! replaces on apply like server-side apply with force would for our own field manager).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DB, STS, run, setup};
use instant_db_operator::fake_api::FakeApiServer;
use serde_json::json;

const API_SECRET: &str = "/api/v1/namespaces/search/secrets/docs-api";

fn keys(fake: &FakeApiServer) -> (serde_json::Value, serde_json::Value) {
    let s = fake.get(API_SECRET).expect("the api Secret exists");
    (s["data"]["read"].clone(), s["data"]["write"].clone())
}

fn pod_hash(fake: &FakeApiServer) -> serde_json::Value {
    fake.get(STS).unwrap()["spec"]["template"]["metadata"]["annotations"]
        ["instantdb.io/config-hash"]
        .clone()
}

#[tokio::test]
async fn the_api_keys_are_generated_once_kept_by_every_reconcile_and_named_in_status() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    let (read, write) = keys(&fake);
    assert!(read.is_string() && write.is_string());
    assert_ne!(read, write, "each role has its own key");
    for _ in 0..2 {
        run(&fake, &ctx).await.unwrap();
        assert_eq!(keys(&fake), (read.clone(), write.clone()), "never rotated");
    }
    let status = &fake.get(DB).unwrap()["status"];
    assert_eq!(
        status["secrets"],
        json!({"admin": "docs-admin", "api": "docs-api"}),
        "{status}"
    );
    // names only: no key value anywhere in the status
    let text = status.to_string();
    for k in [&read, &write] {
        assert!(!text.contains(k.as_str().unwrap()), "{text}");
    }
}

#[tokio::test]
async fn a_deleted_api_secret_is_recreated_with_new_keys_and_the_pod_restarts_onto_them() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    let before = keys(&fake);
    let hash = pod_hash(&fake);
    fake.remove(API_SECRET);
    run(&fake, &ctx).await.unwrap();
    let after = keys(&fake);
    assert_ne!(after.0, before.0);
    assert_ne!(after.1, before.1);
    assert_ne!(pod_hash(&fake), hash, "the engine reads its keys at start");
}
