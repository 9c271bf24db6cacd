//! PodDisruptionBudget.
//!
//! An instance has one engine pod. `minAvailable: 1` on it makes every voluntary eviction
//! fail, so a node drain (cluster upgrade, autoscaler scale-down) blocks until someone acts —
//! cluster admins treat such budgets as broken. By default there is none: a drain evicts the
//! pod, which restarts on another node with its volume (the instance is unavailable meanwhile).
//! `spec.disruption.protect: true` is the explicit choice of the other trade-off: the budget
//! blocks drains until the instance is suspended or the flag removed.

use instant_db_crds::InstantDb;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Resolved, meta, names, selector_labels};

/// The budget the instance wants: `minAvailable: 1` when `spec.disruption.protect` is true and
/// the instance is not suspended, else none (an existing one is deleted).
pub fn pdb(db: &InstantDb, r: &Resolved, owner: &OwnerReference) -> Option<PodDisruptionBudget> {
    let protect = db
        .spec
        .disruption
        .as_ref()
        .and_then(|d| d.protect)
        .unwrap_or(false);
    (protect && !r.suspend).then(|| PodDisruptionBudget {
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
    })
}
