//! Volume growth: StatefulSet claim templates are immutable, so a larger `spec.storage.size`
//! is applied to the PVC itself.

use instant_db_crds::InstantDb;
use instant_db_crds::quantity::Quantity;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource};
use serde_json::json;

use super::CONTROLLER;
use crate::builders::{FIELD_MANAGER, names};
use crate::controller::Context;
use crate::error::{Error, Result};

/// What a change of `spec.storage.size` means for the PVC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeChange {
    /// The spec asks for more: patch the PVC.
    Grow,
    /// The spec asks for less: impossible in Kubernetes, ignored with a Warning event.
    Shrink,
    /// Same size, or a size that cannot be compared.
    Keep,
}

/// Compares the PVC's requested size with the spec's.
pub fn volume_change(current: &str, wanted: &str) -> VolumeChange {
    match (Quantity::parse(current), Quantity::parse(wanted)) {
        (Ok(c), Ok(w)) if w > c => VolumeChange::Grow,
        (Ok(c), Ok(w)) if w < c => VolumeChange::Shrink,
        _ => VolumeChange::Keep,
    }
}

/// Grows the PVC when `spec.storage.size` became larger than the PVC's request (StatefulSet
/// claim templates are immutable, so the PVC itself is patched). A smaller size cannot be
/// applied: it is reported with a `VolumeShrinkIgnored` Warning event, once per spec change
/// (when the spec's generation is not yet the one in status), not on every resync.
pub(super) async fn expand_volume(
    db: &InstantDb,
    ctx: &Context,
    ns: &str,
    name: &str,
    pvc: Option<&PersistentVolumeClaim>,
) -> Result<Option<String>> {
    let Some(pvc) = pvc else {
        return Ok(None);
    };
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let Some(current) = pvc
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
    else {
        return Ok(None);
    };
    let wanted = &db.spec.storage.size;
    match volume_change(&current, wanted) {
        VolumeChange::Grow => {
            let patch = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": names::data_pvc(name), "namespace": ns},
                "spec": {"resources": {"requests": {"storage": wanted}}}
            });
            pvcs.patch(
                &names::data_pvc(name),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|source| Error::ApplyFailed {
                kind: "PersistentVolumeClaim".into(),
                name: names::data_pvc(name),
                source,
            })?;
            ctx.metrics
                .writes
                .with_label_values(&[CONTROLLER, "PersistentVolumeClaim", "apply"])
                .inc();
            Ok(Some(format!(
                "PersistentVolumeClaim {} resized to {wanted}",
                names::data_pvc(name)
            )))
        }
        VolumeChange::Shrink => {
            let seen = db.status.as_ref().and_then(|s| s.observed_generation);
            if seen != db.metadata.generation {
                ctx.event(
                    &db.object_ref(&()),
                    EventType::Warning,
                    "VolumeShrinkIgnored",
                    "Apply",
                    format!(
                        "spec.storage.size {wanted} is smaller than the volume ({current}); volumes cannot shrink, so the PVC {} keeps {current}",
                        names::data_pvc(name)
                    ),
                )
                .await;
            }
            Ok(None)
        }
        VolumeChange::Keep => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_larger_size_grows_a_smaller_one_shrinks_and_an_unreadable_one_keeps() {
        assert_eq!(volume_change("1Gi", "2Gi"), VolumeChange::Grow);
        assert_eq!(volume_change("1Gi", "1500Mi"), VolumeChange::Grow);
        assert_eq!(volume_change("2Gi", "1Gi"), VolumeChange::Shrink);
        assert_eq!(volume_change("1Gi", "1024Mi"), VolumeChange::Keep);
        assert_eq!(volume_change("1Gi", "lots"), VolumeChange::Keep);
        assert_eq!(volume_change("", "1Gi"), VolumeChange::Keep);
    }
}
