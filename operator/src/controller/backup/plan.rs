//! The pure part of the backup controller: the id the engine files a backup under, its
//! health, and the status that follows from what the engine reports. Destinations and their
//! URLs are in `destination` (re-exported here, where the controllers look for them).

use instant_db_crds::backup::{
    BackupDestination, InstantDbBackup, InstantDbBackupStatus, OperationPhase, VerificationResult,
};
use instant_db_crds::conditions::Status;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

pub use super::destination::{
    DEFAULT_VOLUME_PATH, Store, archive_url, claim_name, credentials_ref, credentials_secret,
    destination_url, folder_of, is_credentials_name, resolve_destination,
};
use crate::engine_client::{BackupJob, BackupJobStatus};

/// The id the engine files the backup under: `<name>-<first 8 characters of the uid>`. Fixed
/// for the object, so a start sent again (the operator restarted before it wrote the status)
/// finds the same job instead of taking a second backup.
pub fn backup_id(backup: &InstantDbBackup) -> String {
    let name: String = backup.name_any().chars().take(100).collect();
    let uid: String = backup
        .uid()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("{name}-{uid}")
}

/// `BackupHealthy` from a set of backups (an instance's, or a policy's): True when the newest
/// finished one completed (and did not fail verification), False when it failed (with its
/// error: `LastBackupFailed`) or failed verification (`VerificationFailed`, naming it), Unknown
/// when none finished. A verification still running does not hold the verdict back.
pub fn backup_health(backups: &[InstantDbBackup]) -> (Status, &'static str, String) {
    let finished_at = |b: &InstantDbBackup| {
        b.status
            .as_ref()
            .and_then(|s| s.completed_at.as_ref())
            .map(|t| t.0)
    };
    let newest = backups
        .iter()
        .filter(|b| is_finished(b.status.as_ref()))
        .max_by_key(|b| finished_at(b));
    match newest {
        None => (
            Status::Unknown,
            "NoBackups",
            "no backup has finished yet; create an InstantDbBackup or an InstantDbBackupPolicy"
                .to_string(),
        ),
        Some(b) if b.status.as_ref().and_then(|s| s.phase) == Some(OperationPhase::Completed) => {
            let verified = b.status.as_ref().and_then(|s| s.verified.as_ref());
            match verified {
                Some(v) if v.result == VerificationResult::Failed => (
                    Status::False,
                    "VerificationFailed",
                    format!(
                        "InstantDbBackup {} completed but failed verification: {}",
                        b.name_any(),
                        v.message.as_deref().unwrap_or("no reason given")
                    ),
                ),
                Some(v) if v.result == VerificationResult::Passed => (
                    Status::True,
                    "LastBackupCompleted",
                    format!(
                        "InstantDbBackup {} completed and passed verification",
                        b.name_any()
                    ),
                ),
                Some(_) => (
                    Status::True,
                    "LastBackupCompleted",
                    format!(
                        "InstantDbBackup {} completed; its verification is running",
                        b.name_any()
                    ),
                ),
                None => (
                    Status::True,
                    "LastBackupCompleted",
                    format!("InstantDbBackup {} completed", b.name_any()),
                ),
            }
        }
        Some(b) => (
            Status::False,
            "LastBackupFailed",
            format!(
                "InstantDbBackup {} failed: {}",
                b.name_any(),
                b.status
                    .as_ref()
                    .and_then(|s| s.error.clone())
                    .unwrap_or_default()
            ),
        ),
    }
}

/// Whether the backup is done for good (Completed or Failed): nothing more to do.
pub fn is_finished(status: Option<&InstantDbBackupStatus>) -> bool {
    matches!(
        status.and_then(|s| s.phase),
        Some(OperationPhase::Completed | OperationPhase::Failed)
    )
}

/// Status while waiting for something outside the backup (`message` says what).
pub fn pending(
    current: Option<&InstantDbBackupStatus>,
    generation: Option<i64>,
    message: String,
) -> InstantDbBackupStatus {
    InstantDbBackupStatus {
        observed_generation: generation,
        phase: Some(OperationPhase::Pending),
        message: Some(message),
        ..current.cloned().unwrap_or_default()
    }
}

/// Status of a backup that cannot succeed as specified.
pub fn failed(
    current: Option<&InstantDbBackupStatus>,
    generation: Option<i64>,
    error: String,
    now: Timestamp,
) -> InstantDbBackupStatus {
    InstantDbBackupStatus {
        observed_generation: generation,
        phase: Some(OperationPhase::Failed),
        completed_at: Some(Time(now)),
        error: Some(error),
        message: None,
        ..current.cloned().unwrap_or_default()
    }
}

/// Status that records where the backup goes before the engine is asked to write it: a
/// restarted operator (or a later policy edit) then never sends it somewhere else.
pub fn pinned(
    current: Option<&InstantDbBackupStatus>,
    generation: Option<i64>,
    destination: BackupDestination,
    archive_url: String,
) -> InstantDbBackupStatus {
    InstantDbBackupStatus {
        observed_generation: generation,
        phase: Some(OperationPhase::Pending),
        destination: Some(destination),
        archive_url: Some(archive_url),
        message: Some("starting the backup on the engine".into()),
        ..current.cloned().unwrap_or_default()
    }
}

/// Status after the engine accepted the backup `id`.
pub fn started(
    current: Option<&InstantDbBackupStatus>,
    generation: Option<i64>,
    id: String,
    now: Timestamp,
) -> InstantDbBackupStatus {
    InstantDbBackupStatus {
        observed_generation: generation,
        phase: Some(OperationPhase::Running),
        backup_id: Some(id),
        started_at: Some(Time(now)),
        message: None,
        ..current.cloned().unwrap_or_default()
    }
}

/// Status that follows from the engine's report of the job.
pub fn from_job(
    current: &InstantDbBackupStatus,
    job: &BackupJob,
    now: Timestamp,
) -> InstantDbBackupStatus {
    let mut s = current.clone();
    match job.status {
        BackupJobStatus::Running | BackupJobStatus::Unknown => {
            s.phase = Some(OperationPhase::Running);
        }
        BackupJobStatus::Completed => {
            // polled on while the verification runs: the completion time stays the first seen
            if s.phase != Some(OperationPhase::Completed) || s.completed_at.is_none() {
                s.completed_at = Some(Time(now));
            }
            s.phase = Some(OperationPhase::Completed);
            s.verified = super::verification::from_engine(job.verification.as_ref(), now);
            s.location = job.location.clone();
            s.size_bytes = job.size_bytes.and_then(|b| i64::try_from(b).ok());
            s.sha256 = job.sha256.clone();
            s.document_count = job.document_count.and_then(|d| i64::try_from(d).ok());
            s.engine_version = job.engine_version.clone();
            s.error = None;
        }
        BackupJobStatus::Failed => {
            s.phase = Some(OperationPhase::Failed);
            s.completed_at = Some(Time(now));
            s.error = Some(
                job.error
                    .clone()
                    .unwrap_or_else(|| "the engine reported the backup failed".into()),
            );
        }
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use instant_db_crds::backup::InstantDbBackupSpec;

    #[test]
    fn the_backup_id_is_fixed_per_object_and_valid_for_the_engine() {
        let mut b = InstantDbBackup::new(
            "nightly-1",
            InstantDbBackupSpec {
                instance: "docs".into(),
                ..Default::default()
            },
        );
        b.metadata.uid = Some("0f3c2a9e-1111-2222-3333-444455556666".into());
        assert_eq!(backup_id(&b), "nightly-1-0f3c2a9e");
        assert_eq!(backup_id(&b), backup_id(&b.clone()));
        b.metadata.name = Some("x".repeat(253));
        assert!(backup_id(&b).len() <= 128);
    }

    #[test]
    fn the_status_follows_the_engines_job() {
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let running = started(None, Some(1), "b-1".into(), now);
        assert_eq!(running.phase, Some(OperationPhase::Running));
        let job = BackupJob {
            id: "b-1".into(),
            status: BackupJobStatus::Running,
            ..Default::default()
        };
        assert_eq!(
            from_job(&running, &job, now),
            running,
            "no change while it runs"
        );
        let done = from_job(
            &running,
            &BackupJob {
                status: BackupJobStatus::Completed,
                location: Some("s3://backups/ns/db/b-1.tar.gz".into()),
                size_bytes: Some(4096),
                sha256: Some("ab".repeat(32)),
                document_count: Some(12),
                engine_version: Some("0.1.0".into()),
                ..job.clone()
            },
            now,
        );
        assert_eq!(done.phase, Some(OperationPhase::Completed));
        assert_eq!(done.size_bytes, Some(4096));
        assert_eq!(done.document_count, Some(12));
        assert_eq!(done.backup_id.as_deref(), Some("b-1"));
        assert!(is_finished(Some(&done)));
        let broken = from_job(
            &running,
            &BackupJob {
                status: BackupJobStatus::Failed,
                error: Some("bucket not found".into()),
                ..job
            },
            now,
        );
        assert_eq!(broken.phase, Some(OperationPhase::Failed));
        assert_eq!(broken.error.as_deref(), Some("bucket not found"));
        assert!(is_finished(Some(&broken)));
        assert!(!is_finished(Some(&running)));
        assert!(!is_finished(None));
    }
}
