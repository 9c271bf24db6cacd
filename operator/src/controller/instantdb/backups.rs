//! What the instance's backups say in its own status: `lastBackup` (completion time of the
//! newest completed backup, the "Last Backup" column) and the `BackupHealthy` condition.

use instant_db_crds::InstantDbStatus;
use instant_db_crds::backup::{InstantDbBackup, OperationPhase};
use instant_db_crds::conditions::{self as conds, NewCondition, set_condition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

fn finished_at(b: &InstantDbBackup) -> Option<Timestamp> {
    b.status
        .as_ref()
        .and_then(|s| s.completed_at.as_ref())
        .map(|t| t.0)
}

/// Sets `lastBackup` and `BackupHealthy` from the instance's backups: healthy when the newest
/// finished backup completed, not when it failed, unknown when none has finished yet.
pub fn apply_to_status(
    status: &mut InstantDbStatus,
    backups: &[InstantDbBackup],
    generation: Option<i64>,
    now: Timestamp,
) {
    let phase = |b: &InstantDbBackup| b.status.as_ref().and_then(|s| s.phase);
    status.last_backup = backups
        .iter()
        .filter(|b| phase(b) == Some(OperationPhase::Completed))
        .filter_map(finished_at)
        .max()
        .map(Time);
    let (state, reason, message) = crate::controller::backup::plan::backup_health(backups);
    set_condition(
        &mut status.conditions,
        NewCondition {
            type_: conds::BACKUP_HEALTHY,
            status: state,
            reason,
            message,
            observed_generation: generation,
        },
        now,
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use instant_db_crds::backup::{InstantDbBackupSpec, InstantDbBackupStatus};
    use instant_db_crds::conditions::find_condition;

    fn backup(name: &str, phase: OperationPhase, completed: &str) -> InstantDbBackup {
        let mut b = InstantDbBackup::new(
            name,
            InstantDbBackupSpec {
                instance: "docs".into(),
                ..Default::default()
            },
        );
        b.status = Some(InstantDbBackupStatus {
            phase: Some(phase),
            completed_at: Some(Time(completed.parse().unwrap())),
            error: Some("bucket missing".into()),
            ..Default::default()
        });
        b
    }

    fn healthy(s: &InstantDbStatus) -> (String, String) {
        let c = find_condition(&s.conditions, conds::BACKUP_HEALTHY).unwrap();
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn backup_health_follows_the_newest_finished_backup() {
        let now: Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let mut s = InstantDbStatus::default();
        apply_to_status(&mut s, &[], Some(1), now);
        assert_eq!(healthy(&s), ("Unknown".into(), "NoBackups".into()));
        assert_eq!(s.last_backup, None);

        let ok = backup("a", OperationPhase::Completed, "2026-12-01T03:00:00Z");
        let bad = backup("b", OperationPhase::Failed, "2026-12-01T04:00:00Z");
        apply_to_status(&mut s, &[ok.clone(), bad.clone()], Some(1), now);
        assert_eq!(healthy(&s), ("False".into(), "LastBackupFailed".into()));
        let c = find_condition(&s.conditions, conds::BACKUP_HEALTHY).unwrap();
        assert!(c.message.contains("bucket missing"), "{}", c.message);
        assert_eq!(
            s.last_backup,
            Some(Time("2026-12-01T03:00:00Z".parse().unwrap()))
        );

        let newer = backup("c", OperationPhase::Completed, "2026-12-01T05:00:00Z");
        let running = backup("d", OperationPhase::Running, "2026-12-01T06:00:00Z");
        apply_to_status(&mut s, &[ok, bad, newer, running], Some(1), now);
        assert_eq!(healthy(&s), ("True".into(), "LastBackupCompleted".into()));
        assert_eq!(
            s.last_backup,
            Some(Time("2026-12-01T05:00:00Z".parse().unwrap()))
        );
    }

    #[test]
    fn backup_health_is_false_when_the_newest_backup_failed_verification_and_names_it() {
        use instant_db_crds::backup::{BackupVerification, VerificationResult};
        let now: Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let with = |name: &str, at: &str, result: VerificationResult| {
            let mut b = backup(name, OperationPhase::Completed, at);
            b.status.as_mut().unwrap().verified = Some(BackupVerification {
                result,
                time: None,
                message: Some("failed its checksums check: checksum mismatch".into()),
            });
            b
        };
        let good = with("a", "2026-12-01T03:00:00Z", VerificationResult::Passed);
        let bad = with("b", "2026-12-01T04:00:00Z", VerificationResult::Failed);
        let mut s = InstantDbStatus::default();
        apply_to_status(&mut s, &[good.clone(), bad.clone()], Some(1), now);
        assert_eq!(healthy(&s), ("False".into(), "VerificationFailed".into()));
        let c = find_condition(&s.conditions, conds::BACKUP_HEALTHY).unwrap();
        assert!(
            c.message
                .contains("InstantDbBackup b completed but failed verification")
                && c.message.contains("checksum mismatch"),
            "{}",
            c.message
        );
        // a newer backup whose verification still runs does not wait for it: True
        let running = with("c", "2026-12-01T05:00:00Z", VerificationResult::Pending);
        apply_to_status(&mut s, &[good.clone(), bad.clone(), running], Some(1), now);
        assert_eq!(healthy(&s), ("True".into(), "LastBackupCompleted".into()));
        let c = find_condition(&s.conditions, conds::BACKUP_HEALTHY).unwrap();
        assert!(
            c.message.contains("verification is running"),
            "{}",
            c.message
        );
        // a newer one that passed clears it
        let fixed = with("d", "2026-12-01T06:00:00Z", VerificationResult::Passed);
        apply_to_status(&mut s, &[good, bad, fixed], Some(1), now);
        assert_eq!(healthy(&s), ("True".into(), "LastBackupCompleted".into()));
        let c = find_condition(&s.conditions, conds::BACKUP_HEALTHY).unwrap();
        assert!(
            c.message.contains("d completed and passed verification"),
            "{}",
            c.message
        );
    }
}
