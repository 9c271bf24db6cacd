//! Which engine image an instance runs. `spec.image` always wins. Without it the operator's
//! engine image is used once and recorded in `status.image`; with `imageUpdatePolicy: Pinned`
//! (the default) an operator upgrade keeps that recorded image, so running engines are not
//! restarted behind the user's back. `FollowOperator` takes the operator's image each time.

use instant_db_crds::{ImageUpdatePolicy, InstantDb};

/// The image to use for `db` when the spec names none (passed to the builders as their
/// default); `operator_image` is the operator's `--engine-image`.
pub fn default_image_for(db: &InstantDb, operator_image: &str) -> String {
    let policy = db.spec.image_update_policy.unwrap_or_default();
    let recorded = db
        .status
        .as_ref()
        .and_then(|s| s.image.as_deref())
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
        assert_eq!(default_image_for(&db(None, None), NEW), NEW);
        assert_eq!(
            default_image_for(&db(Some(ImageUpdatePolicy::FollowOperator), None), NEW),
            NEW
        );
    }

    #[test]
    fn pinned_keeps_the_recorded_image_across_an_operator_upgrade() {
        assert_eq!(default_image_for(&db(None, Some(OLD)), NEW), OLD);
        assert_eq!(
            default_image_for(&db(Some(ImageUpdatePolicy::Pinned), Some(OLD)), NEW),
            OLD
        );
    }

    #[test]
    fn follow_operator_moves_to_the_operator_image() {
        assert_eq!(
            default_image_for(&db(Some(ImageUpdatePolicy::FollowOperator), Some(OLD)), NEW),
            NEW
        );
    }
}
