//! The pure part of following a backup's verification: `status.verified` and the `Verified`
//! condition from what the engine reports, and whether the backup still needs polling for it.
//!
//! The engine verifies every backup after it completes (it downloads the archive again, checks
//! every checksum, unpacks it into scratch space, runs the full integrity check and a keyword
//! and a vector search). A completed backup is polled until the verification ends; the
//! engine's record is on its data volume, so a verification cut by an engine restart is
//! reported `failed` by the engine itself, and one whose engine lost the record (or whose pod
//! went away) ends `Failed` here ([`lost`]); both say the archive was not verified (not that it
//! is bad) and what to do: automatic recovery must never restore a backup nobody verified when
//! one exists that was.

use instant_db_crds::backup::{
    BackupVerification, InstantDbBackupStatus, OperationPhase, VERIFIED, VerificationResult,
};
use instant_db_crds::conditions::{NewCondition, Status, set_condition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::engine_client::{Verification, VerificationPhase};

/// `status.verified` from the engine's record of the verification (None: the engine does not
/// verify, `backup.verify: false`).
pub fn from_engine(v: Option<&Verification>, now: Timestamp) -> Option<BackupVerification> {
    let v = v?;
    let result = match v.phase {
        VerificationPhase::Passed => VerificationResult::Passed,
        VerificationPhase::Failed => VerificationResult::Failed,
        VerificationPhase::Pending | VerificationPhase::Running | VerificationPhase::Unknown => {
            VerificationResult::Pending
        }
    };
    let time = (result != VerificationResult::Pending).then(|| {
        Time(
            v.verified_at
                .as_deref()
                .and_then(|t| t.parse().ok())
                .unwrap_or(now),
        )
    });
    let message = match result {
        VerificationResult::Passed => None,
        VerificationResult::Pending => Some(format!(
            "the engine is verifying the archive ({})",
            match v.phase {
                VerificationPhase::Pending => "queued behind another verification",
                _ => "downloading, unpacking and checking it",
            }
        )),
        VerificationResult::Failed => Some(
            v.error
                .clone()
                .unwrap_or_else(|| "the engine reported the verification failed".into()),
        ),
    };
    Some(BackupVerification {
        result,
        time,
        message,
    })
}

/// The verification of a completed backup whose engine no longer has its record (it restarted,
/// or its pod went away) before the verification ended.
pub fn lost(
    backup_id: &str,
    archive_url: &str,
    reason: &str,
    now: Timestamp,
) -> BackupVerification {
    BackupVerification {
        result: VerificationResult::Failed,
        time: Some(Time(now)),
        message: Some(format!(
            "not verified: {reason} before the verification of backup {backup_id} finished; \
             the archive was stored but nobody checked it, so automatic recovery will not \
             choose it while a verified backup exists. Verify it by hand (`instant-db verify \
             --server <engine URL> --from {archive_url}`) or create a new InstantDbBackup"
        )),
    }
}

/// Whether a backup still needs polling: completed, with its verification not ended.
pub fn is_pending(status: Option<&InstantDbBackupStatus>) -> bool {
    status.is_some_and(|s| {
        s.phase == Some(OperationPhase::Completed)
            && s.verified
                .as_ref()
                .is_some_and(|v| v.result == VerificationResult::Pending)
    })
}

/// The `Verified` condition: True (Passed), False (Failed), Unknown (Pending); absent while the
/// backup has not completed or when the engine does not verify.
pub fn set_verified_condition(
    conditions: &mut Vec<Condition>,
    verified: Option<&BackupVerification>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let Some(v) = verified else { return };
    let (status, reason) = match v.result {
        VerificationResult::Passed => (Status::True, "VerificationPassed"),
        VerificationResult::Failed => (Status::False, "VerificationFailed"),
        VerificationResult::Pending => (Status::Unknown, "VerificationPending"),
    };
    set_condition(
        conditions,
        NewCondition {
            type_: VERIFIED,
            status,
            reason,
            message: v
                .message
                .clone()
                .unwrap_or_else(|| "every check passed: checksums, integrity, searches".into()),
            observed_generation: generation,
        },
        now,
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use instant_db_crds::conditions::find_condition;

    fn now() -> Timestamp {
        "2026-12-01T10:00:00Z".parse().unwrap()
    }

    fn engine(phase: VerificationPhase, error: Option<&str>) -> Verification {
        Verification {
            phase,
            verified_at: Some("2026-12-01T09:59:30Z".into()),
            error: error.map(Into::into),
        }
    }

    #[test]
    fn the_result_is_what_the_engine_reports() {
        assert_eq!(
            from_engine(None, now()),
            None,
            "an engine that does not verify"
        );
        let p = from_engine(Some(&engine(VerificationPhase::Passed, None)), now()).unwrap();
        assert_eq!(p.result, VerificationResult::Passed);
        assert_eq!(p.time.unwrap().0, "2026-12-01T09:59:30Z".parse().unwrap());
        assert_eq!(p.message, None);
        let f = from_engine(
            Some(&engine(
                VerificationPhase::Failed,
                Some("failed its checksums check"),
            )),
            now(),
        )
        .unwrap();
        assert_eq!(f.result, VerificationResult::Failed);
        assert_eq!(f.message.as_deref(), Some("failed its checksums check"));
        for phase in [
            VerificationPhase::Pending,
            VerificationPhase::Running,
            VerificationPhase::Unknown,
        ] {
            let r = from_engine(Some(&engine(phase, None)), now()).unwrap();
            assert_eq!(r.result, VerificationResult::Pending, "{phase:?}");
            assert_eq!(r.time, None);
        }
    }

    #[test]
    fn a_completed_backup_is_polled_until_its_verification_ends() {
        let mut s = InstantDbBackupStatus {
            phase: Some(OperationPhase::Completed),
            verified: from_engine(Some(&engine(VerificationPhase::Running, None)), now()),
            ..Default::default()
        };
        assert!(is_pending(Some(&s)));
        s.verified = from_engine(Some(&engine(VerificationPhase::Passed, None)), now());
        assert!(!is_pending(Some(&s)));
        s.verified = None;
        assert!(
            !is_pending(Some(&s)),
            "no verification: nothing to wait for"
        );
        assert!(!is_pending(None));
    }

    #[test]
    fn a_lost_verification_fails_and_says_the_archive_was_not_checked_and_what_to_do() {
        let v = lost(
            "b-1",
            "s3://b/p/b-1.tar.gz?credentials=c",
            "the engine restarted",
            now(),
        );
        assert_eq!(v.result, VerificationResult::Failed);
        let m = v.message.unwrap();
        assert!(
            m.contains("not verified: the engine restarted")
                && m.contains("instant-db verify --server <engine URL> --from s3://b/p/b-1.tar.gz")
                && m.contains("create a new InstantDbBackup"),
            "{m}"
        );
    }

    #[test]
    fn the_verified_condition_follows_the_result() {
        let mut c = vec![];
        set_verified_condition(&mut c, None, Some(1), now());
        assert!(c.is_empty());
        for (phase, status, reason) in [
            (VerificationPhase::Running, "Unknown", "VerificationPending"),
            (VerificationPhase::Passed, "True", "VerificationPassed"),
            (VerificationPhase::Failed, "False", "VerificationFailed"),
        ] {
            let v = from_engine(Some(&engine(phase, Some("bad"))), now());
            set_verified_condition(&mut c, v.as_ref(), Some(1), now());
            let got = find_condition(&c, VERIFIED).unwrap();
            assert_eq!((got.status.as_str(), got.reason.as_str()), (status, reason));
        }
    }
}
