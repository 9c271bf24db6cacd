//! PodDisruptionBudget.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Resolved, meta, names, selector_labels};

/// `minAvailable: 1`: a voluntary eviction (node drain) waits until the instance is suspended,
/// because the single engine pod is the only copy serving the data. Not created while suspended.
pub fn pdb(r: &Resolved, owner: &OwnerReference) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(r, owner, names::primary(&r.name), "engine"),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&r.name, "engine")),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
