//! Headless and client Services.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{ENGINE_PORT, Resolved, meta, names, selector_labels};

/// Label marking the client Service (selected by the ServiceMonitor).
pub const SERVICE_ROLE_LABEL: &str = "instantdb.io/service";

/// The engine port. Named `http` either way (probes, NetworkPolicy and ServiceMonitor refer to
/// it by name); `appProtocol` says `https` with `spec.tls` so meshes and gateways know.
fn port(https: bool) -> ServicePort {
    ServicePort {
        name: Some("http".into()),
        port: ENGINE_PORT,
        target_port: Some(IntOrString::String("http".into())),
        protocol: Some("TCP".into()),
        app_protocol: https.then(|| "https".into()),
        ..Default::default()
    }
}

/// Headless Service giving the pod a stable DNS name (also for not-ready pods).
pub fn headless_service(r: &Resolved, owner: &OwnerReference, https: bool) -> Service {
    let mut metadata = meta(r, owner, names::headless_service(&r.name), "engine");
    metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(SERVICE_ROLE_LABEL.into(), "headless".into());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&r.name, "engine")),
            ports: Some(vec![port(https)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// ClusterIP Service clients use (`status.endpoint`).
pub fn client_service(r: &Resolved, owner: &OwnerReference, https: bool) -> Service {
    let mut metadata = meta(r, owner, names::primary(&r.name), "engine");
    metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(SERVICE_ROLE_LABEL.into(), "client".into());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(&r.name, "engine")),
            ports: Some(vec![port(https)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
