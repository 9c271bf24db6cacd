//! Which engine image an instance runs. `spec.image` always wins. Without it the operator's
//! engine image is used once and recorded in `status.image`; with `imageUpdatePolicy: Pinned`
//! (the default) an operator upgrade keeps that recorded image, so running engines are not
//! restarted behind the user's back. `FollowOperator` takes the operator's image each time.
//! An instance made by an operator that did not record the image yet is pinned to the image its
//! StatefulSet runs, so the upgrade that brings pinning does not restart it either.

use instant_db_crds::{ImageUpdatePolicy, InstantDb};
use k8s_openapi::api::apps::v1::StatefulSet;

/// The engine image `sts` runs (its `engine` container).
pub fn running(sts: &StatefulSet) -> Option<&str> {
    let containers = &sts.spec.as_ref()?.template.spec.as_ref()?.containers;
    containers
        .iter()
        .find(|c| c.name == "engine")
        .and_then(|c| c.image.as_deref())
}

/// The image to use for `db` when the spec names none (passed to the builders as their
/// default); `operator_image` is the operator's `--engine-image`, `running` the image of the
/// instance's StatefulSet when it exists.
pub fn default_image_for(db: &InstantDb, operator_image: &str, running: Option<&str>) -> String {
    let policy = db.spec.image_update_policy.unwrap_or_default();
    let recorded = db
        .status
        .as_ref()
        .and_then(|s| s.image.as_deref())
        .or(running)
        .filter(|i| !i.trim().is_empty());
    match (policy, recorded) {
        (ImageUpdatePolicy::Pinned, Some(image)) => image.to_string(),
        _ => operator_image.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use instant_db_crds::InstantDbStatus;

    fn db(policy: Option<ImageUpdatePolicy>, recorded: Option<&str>) -> InstantDb {
        let mut db: InstantDb = serde_json::from_value(serde_json::json!({
            "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": "docs", "namespace": "search"},
            "spec": {"storage": {"size": "1Gi"}}
        }))
        .unwrap();
        db.spec.image_update_policy = policy;
        db.status = recorded.map(|i| InstantDbStatus {
            image: Some(i.into()),
            ..Default::default()
        });
        db
    }

    const NEW: &str = "ghcr.io/instant-db/instant-db:0.2.0";
    const OLD: &str = "ghcr.io/instant-db/instant-db:0.1.0";

    #[test]
    fn a_new_instance_takes_the_operator_image() {
        assert_eq!(default_image_for(&db(None, None), NEW, None), NEW);
        assert_eq!(
            default_image_for(
                &db(Some(ImageUpdatePolicy::FollowOperator), None),
                NEW,
                None
            ),
            NEW
        );
    }

    #[test]
    fn pinned_keeps_the_recorded_image_across_an_operator_upgrade() {
        assert_eq!(default_image_for(&db(None, Some(OLD)), NEW, Some(OLD)), OLD);
        assert_eq!(
            default_image_for(&db(Some(ImageUpdatePolicy::Pinned), Some(OLD)), NEW, None),
            OLD
        );
    }

    #[test]
    fn an_instance_without_a_recorded_image_keeps_the_one_its_statefulset_runs() {
        assert_eq!(default_image_for(&db(None, None), NEW, Some(OLD)), OLD);
        let sts: StatefulSet = serde_json::from_value(serde_json::json!({
            "spec": {"selector": {}, "serviceName": "docs-headless", "template": {"spec": {
                "containers": [{"name": "engine", "image": OLD}]}}}
        }))
        .unwrap();
        assert_eq!(running(&sts), Some(OLD));
    }

    #[test]
    fn follow_operator_moves_to_the_operator_image() {
        assert_eq!(
            default_image_for(
                &db(Some(ImageUpdatePolicy::FollowOperator), Some(OLD)),
                NEW,
                Some(OLD)
            ),
            NEW
        );
    }
}
