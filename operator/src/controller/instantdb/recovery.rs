//! Automatic recovery (`spec.recovery.autoRestore`): when the engine reports a failed integrity
//! check, the InstantDb controller creates an `InstantDbRestore` of the instance, which the
//! restore controller carries out; the `Recovering` condition and `lastRecovery` follow that
//! restore.
//!
//! The backup it restores is not simply the latest: a backup taken between the damage and its
//! detection holds the damage. The restore carries the time of the instance's last *passing*
//! integrity check (`status.lastIntegrityPass`, in an annotation), and the restore controller
//! takes the newest completed backup that finished before it and passed verification
//! ([`choose_backup`]; never one that failed it, an unverified one only when no verified one
//! exists), saying which one and why.
//!
//! One restore per failed check: the restore carries the check's time in an annotation, so a
//! check that keeps failing after a restore that did not help does not start a loop; the next
//! failed check (the engine checks again at its interval) may try again.

use std::collections::BTreeMap;

use instant_db_crds::InstantDb;
use instant_db_crds::InstantDbStatus;
use instant_db_crds::backup::{
    InstantDbBackup, InstantDbRestore, InstantDbRestoreSpec, OperationPhase, VerificationResult,
};
use instant_db_crds::conditions::{self as conds, NewCondition, Status, set_condition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{Resource, ResourceExt};

use crate::engine_client::IntegrityCheck;

/// Label on the restores this controller creates.
pub const AUTO_RESTORE_LABEL: &str = "instantdb.io/auto-restore";
/// Label naming the instance a restore is for.
pub const INSTANCE_LABEL: &str = "instantdb.io/instance";
/// Annotation with the time of the failed integrity check a restore answers.
pub const CHECK_ANNOTATION: &str = "instantdb.io/integrity-check-at";
/// Annotation with the time of the instance's last passing integrity check when the automatic
/// restore was made: only a backup that finished before it is restored.
pub const PASS_ANNOTATION: &str = "instantdb.io/last-integrity-pass";

/// How far a newer passing check must be ahead of the recorded one before the record moves. The
/// engine checks every hour (and at start), so recording every pass would write each instance's
/// status once per check in an otherwise steady state. A record up to this much older than the
/// real last pass only makes recovery choose an older backup: the safe direction.
pub const PASS_RECORD_GRAIN: SignedDuration = SignedDuration::from_hours(6);

/// Records the time of a passing integrity check in `status.lastIntegrityPass`, at the grain of
/// [`PASS_RECORD_GRAIN`].
pub fn record_integrity_pass(status: &mut InstantDbStatus, integrity: Option<&IntegrityCheck>) {
    if let Some(at) = integrity.filter(|i| i.ok == Some(true)).and_then(|i| i.at)
        && status
            .last_integrity_pass
            .as_ref()
            .is_none_or(|t| at.duration_since(t.0) >= PASS_RECORD_GRAIN)
    {
        status.last_integrity_pass = Some(Time(at));
    }
}

/// The backup an automatic restore of `instance` restores, with the reason in words (for the
/// restore's message and an Event); an error (for the user) when none qualifies. Only backups
/// that completed before the last passing integrity check `last_pass` count (a later one may
/// hold the damage); of those, the newest that passed verification. A backup that failed
/// verification is never chosen. One not verified (verification still running, or an engine
/// that does not verify) is chosen only when no verified one exists, and the reason says so:
/// restoring an unverified backup is better than keeping a damaged database, and the restore
/// itself still checks every checksum and the integrity of what it swaps in (rolling back if
/// that fails).
pub fn choose_backup<'a>(
    backups: &'a [InstantDbBackup],
    instance: &str,
    last_pass: Option<Timestamp>,
) -> Result<(&'a InstantDbBackup, String), String> {
    let completed_at = |b: &InstantDbBackup| {
        b.status
            .as_ref()
            .filter(|s| s.phase == Some(OperationPhase::Completed))
            .and_then(|s| s.completed_at.as_ref())
            .map(|t| t.0)
    };
    let result = |b: &InstantDbBackup| {
        b.status
            .as_ref()
            .and_then(|s| s.verified.as_ref())
            .map(|v| v.result)
    };
    let Some(pass) = last_pass else {
        return Err(format!(
            "no passing integrity check of {instance} is on record, so no backup is known to be \
             free of the damage; restore one by hand with an InstantDbRestore naming it in spec.backup"
        ));
    };
    let mut completed: Vec<(&InstantDbBackup, Timestamp)> = backups
        .iter()
        .filter(|b| b.spec.instance == instance)
        .filter_map(|b| completed_at(b).map(|t| (b, t)))
        .collect();
    completed.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
    let names = |v: &[&(&InstantDbBackup, Timestamp)]| {
        v.iter()
            .map(|(b, _)| b.name_any())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let newer: Vec<_> = completed.iter().filter(|(_, t)| *t > pass).collect();
    let before: Vec<_> = completed.iter().filter(|(_, t)| *t <= pass).collect();
    let failed: Vec<_> = before
        .iter()
        .copied()
        .filter(|(b, _)| result(b) == Some(VerificationResult::Failed))
        .collect();
    let verified = before
        .iter()
        .find(|(b, _)| result(b) == Some(VerificationResult::Passed));
    let unverified = before
        .iter()
        .find(|(b, _)| result(b) != Some(VerificationResult::Failed));
    let mut skipped = vec![];
    if !newer.is_empty() {
        skipped.push(format!(
            "{} (finished after that check, may hold the damage)",
            names(&newer)
        ));
    }
    if !failed.is_empty() {
        skipped.push(format!("{} (failed verification)", names(&failed)));
    }
    let skipped = if skipped.is_empty() {
        String::new()
    } else {
        format!("; skipped {}", skipped.join("; "))
    };
    let (chosen, at, what) = match (verified, unverified) {
        (Some((b, at)), _) => (*b, *at, "newest backup that passed verification and"),
        (None, Some((b, at))) => (
            *b,
            *at,
            "newest backup not known to be bad (its verification has not passed: none that \
             finished before the check passed verification) that",
        ),
        (None, None) => {
            return Err(format!(
                "no completed backup of {instance} finished before its last passing integrity \
                 check at {pass} without failing verification{skipped}; restore one by hand with an InstantDbRestore naming it in \
                 spec.backup"
            ));
        }
    };
    Ok((
        chosen,
        format!(
            "InstantDbBackup {} (completed {at}) is the {what} finished before the last passing \
             integrity check at {pass}{skipped}",
            chosen.name_any()
        ),
    ))
}

fn phase(r: &InstantDbRestore) -> Option<OperationPhase> {
    r.status.as_ref().and_then(|s| s.phase)
}

fn finished(r: &InstantDbRestore) -> bool {
    matches!(
        phase(r),
        Some(OperationPhase::Completed | OperationPhase::Failed)
    )
}

/// The restore to create for a failed integrity check, if one is due: autoRestore on, the last
/// check failed, no automatic restore running, and none made for this check yet.
pub fn restore_to_create(
    db: &InstantDb,
    integrity: Option<&IntegrityCheck>,
    existing: &[InstantDbRestore],
) -> Option<InstantDbRestore> {
    let auto = db.spec.auto_restore();
    let failed_at = integrity
        .filter(|i| i.ok == Some(false))
        .and_then(|i| i.at)?;
    if !auto || existing.iter().any(|r| !finished(r)) {
        return None;
    }
    let stamp = failed_at.to_string();
    if existing
        .iter()
        .any(|r| r.annotations().get(CHECK_ANNOTATION) == Some(&stamp))
    {
        return None;
    }
    let name = format!(
        "{}-auto-{}",
        db.name_any().chars().take(230).collect::<String>(),
        failed_at.strftime("%Y%m%d%H%M%S")
    );
    let mut annotations = BTreeMap::from([(CHECK_ANNOTATION.to_string(), stamp)]);
    if let Some(pass) = db
        .status
        .as_ref()
        .and_then(|s| s.last_integrity_pass.as_ref())
    {
        annotations.insert(PASS_ANNOTATION.to_string(), pass.0.to_string());
    }
    Some(InstantDbRestore {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: db.namespace(),
            labels: Some(BTreeMap::from([
                (AUTO_RESTORE_LABEL.to_string(), "true".to_string()),
                (INSTANCE_LABEL.to_string(), db.name_any()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "instant-db-operator".to_string(),
                ),
            ])),
            annotations: Some(annotations),
            owner_references: db.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: InstantDbRestoreSpec {
            instance: db.name_any(),
            backup: None,
            target_time: None,
        },
        status: None,
    })
}

/// Sets `Recovering` and `lastRecovery` from the automatic restores of the instance (`created`:
/// one this reconcile has just made).
pub fn apply_to_status(
    status: &mut InstantDbStatus,
    existing: &[InstantDbRestore],
    created: Option<&InstantDbRestore>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let running = created
        .or_else(|| existing.iter().find(|r| !finished(r)))
        .map(ResourceExt::name_any);
    let latest = existing.iter().filter(|r| finished(r)).max_by_key(|r| {
        r.status
            .as_ref()
            .and_then(|s| s.completed_at.clone())
            .map(|t| t.0)
    });
    if let Some(at) = existing
        .iter()
        .filter(|r| phase(r) == Some(OperationPhase::Completed))
        .filter_map(|r| r.status.as_ref().and_then(|s| s.completed_at.clone()))
        .max_by_key(|t| t.0)
    {
        status.last_recovery = Some(Time(at.0));
    }
    let (state, reason, message) = match (&running, latest) {
        (Some(name), _) => (
            Status::True,
            "AutoRestoreRunning",
            format!(
                "the integrity check failed; restoring the newest backup from before the last passing check (InstantDbRestore {name})"
            ),
        ),
        (None, Some(r)) if phase(r) == Some(OperationPhase::Failed) => (
            Status::False,
            "AutoRestoreFailed",
            format!(
                "InstantDbRestore {} failed: {}; restore another backup by hand",
                r.name_any(),
                r.status
                    .as_ref()
                    .and_then(|s| s.error.clone())
                    .unwrap_or_default()
            ),
        ),
        (None, Some(r)) => (
            Status::False,
            "AutoRestoreCompleted",
            format!("restored by InstantDbRestore {}", r.name_any()),
        ),
        (None, None) => (
            Status::False,
            "NotRecovering",
            "no automatic restore has been needed".to_string(),
        ),
    };
    set_condition(
        &mut status.conditions,
        NewCondition {
            type_: conds::RECOVERING,
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
    use instant_db_crds::backup::InstantDbRestoreStatus;
    use instant_db_crds::conditions::find_condition;

    fn db(auto: bool) -> InstantDb {
        let mut db: InstantDb = serde_json::from_value(serde_json::json!({
            "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": "docs", "namespace": "search", "uid": "uid-docs"},
            "spec": {"storage": {"size": "1Gi"}, "recovery": {"autoRestore": auto}}
        }))
        .unwrap();
        db.metadata.generation = Some(3);
        db
    }

    fn failed_check(at: &str) -> IntegrityCheck {
        IntegrityCheck {
            at: Some(at.parse().unwrap()),
            ok: Some(false),
            message: Some("page 7 corrupt".into()),
        }
    }

    fn with_phase(
        mut r: InstantDbRestore,
        phase: OperationPhase,
        completed: &str,
    ) -> InstantDbRestore {
        r.status = Some(InstantDbRestoreStatus {
            phase: Some(phase),
            completed_at: Some(Time(completed.parse().unwrap())),
            error: (phase == OperationPhase::Failed).then(|| "checksum mismatch".into()),
            ..Default::default()
        });
        r
    }

    #[test]
    fn a_failed_check_with_auto_restore_creates_one_owned_restore_of_the_latest_backup() {
        let check = failed_check("2026-12-01T10:00:00Z");
        let r = restore_to_create(&db(true), Some(&check), &[]).unwrap();
        assert_eq!(r.name_any(), "docs-auto-20261201100000");
        assert_eq!(r.spec.instance, "docs");
        assert_eq!(r.spec.backup, None, "chosen by the restore controller");
        assert_eq!(r.labels()[AUTO_RESTORE_LABEL], "true");
        assert_eq!(r.annotations()[CHECK_ANNOTATION], "2026-12-01T10:00:00Z");
        let owner = &r.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("InstantDb", Some(true))
        );
    }

    #[test]
    fn no_restore_without_auto_restore_a_failed_check_or_while_one_runs_or_twice_per_check() {
        let check = failed_check("2026-12-01T10:00:00Z");
        assert!(restore_to_create(&db(false), Some(&check), &[]).is_none());
        let passed = IntegrityCheck {
            ok: Some(true),
            ..check.clone()
        };
        assert!(restore_to_create(&db(true), Some(&passed), &[]).is_none());
        assert!(restore_to_create(&db(true), None, &[]).is_none());
        let first = restore_to_create(&db(true), Some(&check), &[]).unwrap();
        // running: no second one
        assert!(restore_to_create(&db(true), Some(&check), std::slice::from_ref(&first)).is_none());
        // finished but for this same check: no second one
        let done = with_phase(first, OperationPhase::Failed, "2026-12-01T10:05:00Z");
        assert!(restore_to_create(&db(true), Some(&check), std::slice::from_ref(&done)).is_none());
        // a later failed check may try again
        let later = failed_check("2026-12-01T16:00:00Z");
        assert!(restore_to_create(&db(true), Some(&later), &[done]).is_some());
    }

    fn completed(name: &str, at: &str) -> InstantDbBackup {
        let mut b = InstantDbBackup::new(
            name,
            instant_db_crds::backup::InstantDbBackupSpec {
                instance: "docs".into(),
                ..Default::default()
            },
        );
        b.status = Some(instant_db_crds::backup::InstantDbBackupStatus {
            phase: Some(OperationPhase::Completed),
            completed_at: Some(Time(at.parse().unwrap())),
            ..Default::default()
        });
        b
    }

    fn verified(mut b: InstantDbBackup, result: VerificationResult) -> InstantDbBackup {
        b.status.as_mut().unwrap().verified = Some(instant_db_crds::backup::BackupVerification {
            result,
            time: None,
            message: None,
        });
        b
    }

    #[test]
    fn recovery_takes_the_newest_verified_backup_never_a_failed_one_and_an_unverified_one_last() {
        use VerificationResult::{Failed, Passed, Pending};
        let pass = Some("2026-12-01T07:30:00Z".parse().unwrap());
        let backups = [
            verified(completed("b-0300", "2026-12-01T03:00:00Z"), Passed),
            verified(completed("b-0500", "2026-12-01T05:00:00Z"), Pending),
            verified(completed("b-0600", "2026-12-01T06:00:00Z"), Failed),
            verified(completed("b-0800", "2026-12-01T08:00:00Z"), Passed),
        ];
        let (chosen, why) = choose_backup(&backups, "docs", pass).unwrap();
        assert_eq!(chosen.name_any(), "b-0300", "{why}");
        assert!(
            why.contains("newest backup that passed verification")
                && why.contains("b-0600 (failed verification)")
                && why.contains("b-0800 (finished after that check"),
            "{why}"
        );
        // no verified one before the check: the newest not known to be bad, saying so
        let (chosen, why) = choose_backup(&backups[1..], "docs", pass).unwrap();
        assert_eq!(chosen.name_any(), "b-0500", "{why}");
        assert!(why.contains("its verification has not passed"), "{why}");
        // only a failed one: none
        let e = choose_backup(&backups[2..3], "docs", pass).unwrap_err();
        assert!(
            e.contains("b-0600 (failed verification)") && e.contains("spec.backup"),
            "{e}"
        );
    }

    #[test]
    fn recovery_restores_the_newest_backup_from_before_the_last_passing_check() {
        let mut failed = completed("failed-late", "2026-12-01T09:00:00Z");
        failed.status.as_mut().unwrap().phase = Some(OperationPhase::Failed);
        let mut other = completed("other-instance", "2026-12-01T07:00:00Z");
        other.spec.instance = "other".into();
        let backups = [
            completed("b-0300", "2026-12-01T03:00:00Z"),
            completed("b-0600", "2026-12-01T06:00:00Z"),
            // taken after the last passing check, before detection: may hold the damage
            completed("b-0800", "2026-12-01T08:00:00Z"),
            failed,
            other,
        ];
        let pass = Some("2026-12-01T07:30:00Z".parse().unwrap());
        let (chosen, why) = choose_backup(&backups, "docs", pass).unwrap();
        assert_eq!(chosen.name_any(), "b-0600");
        assert!(
            why.contains("before the last passing integrity check at 2026-12-01T07:30:00Z"),
            "{why}"
        );
        assert!(why.contains("skipped b-0800"), "{why}");
        // the latest completed backup would have been b-0800
        let e = choose_backup(
            &backups,
            "docs",
            Some("2026-12-01T02:00:00Z".parse().unwrap()),
        )
        .unwrap_err();
        assert!(
            e.contains("no completed backup of docs finished before"),
            "{e}"
        );
        assert!(e.contains("spec.backup"), "{e}");
        let e = choose_backup(&backups, "docs", None).unwrap_err();
        assert!(e.contains("no passing integrity check"), "{e}");
    }

    #[test]
    fn a_passing_check_is_recorded_and_a_failing_one_is_not() {
        let mut s = InstantDbStatus::default();
        let pass = IntegrityCheck {
            at: Some("2026-12-01T07:30:00Z".parse().unwrap()),
            ok: Some(true),
            message: None,
        };
        record_integrity_pass(&mut s, Some(&pass));
        assert_eq!(s.last_integrity_pass, Some(Time(pass.at.unwrap())));
        record_integrity_pass(&mut s, Some(&failed_check("2026-12-01T10:00:00Z")));
        assert_eq!(s.last_integrity_pass, Some(Time(pass.at.unwrap())));
        // the hourly pass of a steady instance does not move it (no status write per check)...
        let hourly = IntegrityCheck {
            at: Some("2026-12-01T08:30:00Z".parse().unwrap()),
            ..pass.clone()
        };
        record_integrity_pass(&mut s, Some(&hourly));
        assert_eq!(s.last_integrity_pass, Some(Time(pass.at.unwrap())));
        // ...one a grain later does
        let later = IntegrityCheck {
            at: Some("2026-12-01T13:30:00Z".parse().unwrap()),
            ..pass.clone()
        };
        record_integrity_pass(&mut s, Some(&later));
        assert_eq!(s.last_integrity_pass, Some(Time(later.at.unwrap())));
        s.last_integrity_pass = Some(Time(pass.at.unwrap()));
        // the automatic restore carries it
        let mut d = db(true);
        d.status = Some(s);
        let r = restore_to_create(&d, Some(&failed_check("2026-12-01T10:00:00Z")), &[]).unwrap();
        assert_eq!(r.annotations()[PASS_ANNOTATION], "2026-12-01T07:30:00Z");
    }

    #[test]
    fn recovering_follows_the_automatic_restores() {
        let now: Timestamp = "2026-12-01T10:06:00Z".parse().unwrap();
        let mut s = InstantDbStatus::default();
        apply_to_status(&mut s, &[], None, Some(3), now);
        let c = find_condition(&s.conditions, conds::RECOVERING).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "NotRecovering")
        );

        let check = failed_check("2026-12-01T10:00:00Z");
        let r = restore_to_create(&db(true), Some(&check), &[]).unwrap();
        apply_to_status(&mut s, &[], Some(&r), Some(3), now);
        let c = find_condition(&s.conditions, conds::RECOVERING).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "AutoRestoreRunning")
        );

        let done = with_phase(r.clone(), OperationPhase::Completed, "2026-12-01T10:05:00Z");
        apply_to_status(&mut s, &[done], None, Some(3), now);
        let c = find_condition(&s.conditions, conds::RECOVERING).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "AutoRestoreCompleted")
        );
        assert_eq!(
            s.last_recovery,
            Some(Time("2026-12-01T10:05:00Z".parse().unwrap()))
        );

        let failed = with_phase(r, OperationPhase::Failed, "2026-12-01T11:00:00Z");
        let mut s = InstantDbStatus::default();
        apply_to_status(&mut s, &[failed], None, Some(3), now);
        let c = find_condition(&s.conditions, conds::RECOVERING).unwrap();
        assert_eq!(c.reason, "AutoRestoreFailed");
        assert!(c.message.contains("checksum mismatch"), "{}", c.message);
        assert_eq!(s.last_recovery, None);
    }
}
