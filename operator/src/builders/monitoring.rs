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

/// ServiceMonitor scraping `/metrics` of the client Service.
pub fn service_monitor(r: &Resolved, owner: &OwnerReference) -> DynamicObject {
    let ar = service_monitor_resource();
    let mut obj = DynamicObject::new(&names::primary(&r.name), &ar);
    obj.metadata = meta(r, owner, names::primary(&r.name), "engine");
    let mut selector: BTreeMap<String, String> = super::selector_labels(&r.name, "engine");
    selector.insert(SERVICE_ROLE_LABEL.into(), "client".into());
    obj.data = json!({
        "spec": {
            "selector": {"matchLabels": selector},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        }
    });
    obj
}
