//! The instance's NetworkPolicy: who may open connections to the engine pod.
//!
//! Ingress only, on the engine port (API, health and metrics share it): from the operator's
//! namespace (health, backups, restores), from the peers of `spec.networkPolicy.allowFrom`, and
//! from the namespaces of `spec.networkPolicy.metricsNamespaceSelector` (scrapers). Egress is not
//! restricted: the engine reaches object stores, OTLP collectors and Qdrant wherever they are.
//! Kubelet probes come from the node and are not subject to NetworkPolicies in the usual CNIs.

use std::collections::BTreeMap;

use instant_db_crds::InstantDb;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{ENGINE_PORT, Resolved, meta, names, selector_labels};

/// Label every namespace carries with its own name (set by the API server since 1.22).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Whether the instance gets a NetworkPolicy (`spec.networkPolicy.enabled`, default true).
pub fn enabled(db: &InstantDb) -> bool {
    db.spec
        .network_policy
        .as_ref()
        .and_then(|n| n.enabled)
        .unwrap_or(true)
}

fn engine_port() -> Vec<NetworkPolicyPort> {
    vec![NetworkPolicyPort {
        port: Some(IntOrString::Int(ENGINE_PORT)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }]
}

fn namespace_named(namespace: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            NAMESPACE_NAME_LABEL.to_string(),
            namespace.to_string(),
        )])),
        ..Default::default()
    }
}

/// The NetworkPolicy `<name>`, or `None` when `spec.networkPolicy.enabled` is false.
pub fn network_policy(
    db: &InstantDb,
    r: &Resolved,
    owner: &OwnerReference,
    operator_namespace: &str,
) -> Option<NetworkPolicy> {
    if !enabled(db) {
        return None;
    }
    let spec = db.spec.network_policy.clone().unwrap_or_default();
    let mut api_from = vec![NetworkPolicyPeer {
        namespace_selector: Some(namespace_named(operator_namespace)),
        ..Default::default()
    }];
    api_from.extend(
        spec.allow_from
            .unwrap_or_default()
            .into_iter()
            .map(|p| NetworkPolicyPeer {
                namespace_selector: p.namespace_selector,
                pod_selector: p.pod_selector,
                ..Default::default()
            }),
    );
    let mut ingress = vec![NetworkPolicyIngressRule {
        from: Some(api_from),
        ports: Some(engine_port()),
    }];
    // A rule of its own, so the policy reads as what it is for; the port is the same one.
    if let Some(sel) = spec.metrics_namespace_selector {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(sel),
                ..Default::default()
            }]),
            ports: Some(engine_port()),
        });
    }
    Some(NetworkPolicy {
        metadata: meta(r, owner, names::primary(&r.name), "engine"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&r.name, "engine")),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            ..Default::default()
        }),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::tests::db;
    use super::*;
    use serde_json::json;

    fn build(spec: serde_json::Value) -> Option<serde_json::Value> {
        let db = db(spec);
        let r = super::super::resolve(&db, "img:1").unwrap();
        let owner = super::super::owner_reference(&db).unwrap();
        network_policy(&db, &r, &owner, "idb-system").map(|p| serde_json::to_value(p).unwrap())
    }

    #[test]
    fn by_default_only_the_operator_namespace_reaches_the_engine_port() {
        let p = build(json!({"storage": {"size": "1Gi"}})).expect("on by default");
        assert_eq!(p["metadata"]["name"], "docs");
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["uid"],
            "11111111-2222-3333-4444-555555555555"
        );
        assert_eq!(
            p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"],
            "docs"
        );
        assert_eq!(p["spec"]["policyTypes"], json!(["Ingress"]));
        assert_eq!(
            p["spec"]["ingress"],
            json!([{
                "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "idb-system"}}}],
                "ports": [{"port": 8080, "protocol": "TCP"}]
            }])
        );
    }

    #[test]
    fn allowed_peers_and_the_monitoring_namespaces_are_added() {
        let p = build(json!({
            "storage": {"size": "1Gi"},
            "networkPolicy": {
                "allowFrom": [
                    {"podSelector": {"matchLabels": {"app": "web"}}},
                    {"namespaceSelector": {"matchLabels": {"team": "search"}},
                     "podSelector": {"matchLabels": {"app": "indexer"}}}
                ],
                "metricsNamespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
            }
        }))
        .unwrap();
        let ingress = p["spec"]["ingress"].as_array().unwrap();
        assert_eq!(ingress.len(), 2);
        let api = ingress[0]["from"].as_array().unwrap();
        assert_eq!(api.len(), 3);
        assert_eq!(
            api[1],
            json!({"podSelector": {"matchLabels": {"app": "web"}}})
        );
        assert_eq!(
            api[2],
            json!({"namespaceSelector": {"matchLabels": {"team": "search"}},
                   "podSelector": {"matchLabels": {"app": "indexer"}}})
        );
        assert_eq!(
            ingress[1]["from"],
            json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}])
        );
        assert_eq!(
            ingress[1]["ports"],
            json!([{"port": 8080, "protocol": "TCP"}])
        );
    }

    #[test]
    fn disabled_means_no_policy() {
        assert!(
            build(json!({"storage": {"size": "1Gi"}, "networkPolicy": {"enabled": false}}))
                .is_none()
        );
    }
}
