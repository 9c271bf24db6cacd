//! One backup or restore per instance at a time. A backup does not start while a backup or a
//! restore of its instance runs, and a restore does not start while a backup or another
//! restore of it runs: the waiting one stays Pending with a message naming what it waits for.
//! Only *running* operations block (one waiting for a missing Secret never holds up a
//! restore); two that start at the same instant are serialized by the engine itself, which
//! answers the second with 409 `operation_in_progress` (kept Pending, retried).

use instant_db_crds::backup::{InstantDbBackup, InstantDbRestore, OperationPhase};
use kube::ResourceExt;

/// What `(kind, name)` would have to wait for before it can run on `instance`, in words, or
/// None when nothing of the instance runs.
pub fn blocker(
    instance: &str,
    me: (&str, &str),
    backups: &[InstantDbBackup],
    restores: &[InstantDbRestore],
) -> Option<String> {
    let not_me = |kind: &str, name: &str| (kind, name) != me;
    if let Some(b) = backups.iter().find(|b| {
        b.spec.instance == instance
            && b.status.as_ref().and_then(|s| s.phase) == Some(OperationPhase::Running)
            && not_me("InstantDbBackup", &b.name_any())
    }) {
        return Some(format!(
            "queued: InstantDbBackup {} of {instance} is running; one backup or restore per instance at a time",
            b.name_any()
        ));
    }
    restores
        .iter()
        .find(|r| {
            r.spec.instance == instance
                && r.status.as_ref().and_then(|s| s.phase) == Some(OperationPhase::Running)
                && not_me("InstantDbRestore", &r.name_any())
        })
        .map(|r| {
            format!(
                "queued: InstantDbRestore {} of {instance} is running; one backup or restore per instance at a time",
                r.name_any()
            )
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use instant_db_crds::backup::{
        InstantDbBackupSpec, InstantDbBackupStatus, InstantDbRestoreSpec, InstantDbRestoreStatus,
    };

    fn backup(name: &str, instance: &str, phase: OperationPhase) -> InstantDbBackup {
        let mut b = InstantDbBackup::new(
            name,
            InstantDbBackupSpec {
                instance: instance.into(),
                ..Default::default()
            },
        );
        b.status = Some(InstantDbBackupStatus {
            phase: Some(phase),
            ..Default::default()
        });
        b
    }

    fn restore(name: &str, phase: OperationPhase) -> InstantDbRestore {
        let mut r = InstantDbRestore::new(
            name,
            InstantDbRestoreSpec {
                instance: "docs".into(),
                backup: None,
                target_time: None,
            },
        );
        r.status = Some(InstantDbRestoreStatus {
            phase: Some(phase),
            ..Default::default()
        });
        r
    }

    #[test]
    fn a_running_operation_of_the_instance_blocks_every_other_one() {
        let backups = [
            backup("b-other", "other", OperationPhase::Running),
            backup("b-pending", "docs", OperationPhase::Pending),
            backup("b-done", "docs", OperationPhase::Completed),
        ];
        let restores = [restore("r-run", OperationPhase::Running)];
        let why = blocker(
            "docs",
            ("InstantDbBackup", "b-pending"),
            &backups,
            &restores,
        )
        .unwrap();
        assert!(why.contains("InstantDbRestore r-run"), "{why}");
        // the running restore does not wait for itself
        assert_eq!(
            blocker("docs", ("InstantDbRestore", "r-run"), &backups, &restores),
            None
        );
        // a running backup holds up a restore, and a second backup
        let backups = [backup("b-run", "docs", OperationPhase::Running)];
        let why = blocker("docs", ("InstantDbRestore", "r-new"), &backups, &[]).unwrap();
        assert!(why.contains("InstantDbBackup b-run"), "{why}");
        assert!(blocker("docs", ("InstantDbBackup", "b-2"), &backups, &[]).is_some());
        // operations of other instances and finished or waiting ones do not block
        assert_eq!(
            blocker(
                "docs",
                ("InstantDbBackup", "x"),
                &[backup("b", "other", OperationPhase::Running)],
                &[restore("r", OperationPhase::Failed)]
            ),
            None
        );
    }
}
