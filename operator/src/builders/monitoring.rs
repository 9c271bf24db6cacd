//! Prometheus Operator ServiceMonitor (as a DynamicObject: its CRD may not exist).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::network::SERVICE_ROLE_LABEL;
use super::{Resolved, meta, names};

/// Name of the CRD whose presence enables the ServiceMonitor.
pub const SERVICE_MONITOR_CRD: &str = "servicemonitors.monitoring.coreos.com";

/// API resource of `monitoring.coreos.com/v1` ServiceMonitor.
pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    )
}

/// ServiceMonitor scraping `/metrics` of the client Service. With `tls` (the TLS Secret's name
/// and the key of the CA to trust in it) it scrapes over HTTPS, verifying the engine's
/// certificate against that CA and the client Service's name (Prometheus connects to the pod
/// IPs, so the name checked must be given).
pub fn service_monitor(
    r: &Resolved,
    owner: &OwnerReference,
    tls: Option<(&str, &str)>,
) -> DynamicObject {
    let ar = service_monitor_resource();
    let mut obj = DynamicObject::new(&names::primary(&r.name), &ar);
    obj.metadata = meta(r, owner, names::primary(&r.name), "engine");
    let mut selector: BTreeMap<String, String> = super::selector_labels(&r.name, "engine");
    selector.insert(SERVICE_ROLE_LABEL.into(), "client".into());
    let mut endpoint = json!({"port": "http", "path": "/metrics", "interval": "30s"});
    if let Some((secret, ca_key)) = tls {
        endpoint["scheme"] = json!("https");
        endpoint["tlsConfig"] = json!({
            "ca": {"secret": {"name": secret, "key": ca_key}},
            "serverName": format!("{}.{}.svc", names::primary(&r.name), r.namespace),
        });
    }
    obj.data = json!({
        "spec": {
            "selector": {"matchLabels": selector},
            "endpoints": [endpoint],
        }
    });
    obj
}
