//! The instance's NetworkPolicy over reconciles, against the in-memory fake API server. The
//! fake enforces no policy (no CNI); what is checked is the object the operator keeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DB, run, setup};
use serde_json::json;

const NP: &str = "/apis/networking.k8s.io/v1/namespaces/search/networkpolicies/docs";

#[tokio::test]
async fn the_network_policy_is_on_by_default_and_deleted_when_switched_off() {
    let (fake, ctx) = setup(json!({"storage": {"size": "1Gi"}}));
    run(&fake, &ctx).await.unwrap();
    let np = fake.get(NP).expect("created by default");
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        ctx.config.operator_namespace.as_str()
    );
    // steady state: not applied again
    run(&fake, &ctx).await.unwrap();
    assert!(
        fake.log()
            .iter()
            .filter(|l| l.is_write())
            .all(|l| !l.path.contains("networkpolicies")),
        "an unchanged policy is not re-applied"
    );

    let mut db = fake.get(DB).unwrap();
    db["spec"]["networkPolicy"] = json!({"enabled": false});
    fake.put(DB, db);
    run(&fake, &ctx).await.unwrap();
    assert!(fake.get(NP).is_none(), "switched off: deleted");
}
