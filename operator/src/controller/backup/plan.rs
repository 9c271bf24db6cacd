//! The pure part of the backup controller: the engine's destination URL for a backup, the id the
//! engine files it under, and the status that follows from what the engine reports.

use instant_db_crds::backup::{
    BackupDestination, InstantDbBackup, InstantDbBackupStatus, OperationPhase,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use reqwest::Url;

use crate::engine_client::{BackupJob, BackupJobStatus};

/// Keys of the S3 credentials Secret (`spec.destination.s3.credentialsSecret`).
pub const ACCESS_KEY_ID_KEY: &str = "AWS_ACCESS_KEY_ID";
/// Secret key of the S3 credentials.
pub const SECRET_ACCESS_KEY_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Optional session token key.
pub const SESSION_TOKEN_KEY: &str = "AWS_SESSION_TOKEN";

/// S3 credentials read from the destination's Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The engine's location URL for an S3 destination: `s3://bucket/prefix?endpoint=…&region=…`
/// with the credentials as query parameters (the engine removes them from everything it logs,
/// stores or returns). The prefix defaults to `<namespace>/<instance>`. Errors are for the user.
pub fn destination_url(
    destination: &BackupDestination,
    namespace: &str,
    instance: &str,
    credentials: &S3Credentials,
) -> Result<String, String> {
    let s3 = match (&destination.s3, &destination.volume) {
        (Some(s3), _) => s3,
        (None, Some(_)) => {
            return Err(
                "volume destinations are not supported by this operator yet: use an s3 destination"
                    .into(),
            );
        }
        (None, None) => return Err("the destination names neither s3 nor volume".into()),
    };
    let bucket = s3
        .bucket
        .as_deref()
        .filter(|b| !b.is_empty())
        .ok_or("the s3 destination has no bucket")?;
    let mut url = Url::parse(&format!("s3://{bucket}"))
        .map_err(|e| format!("bucket {bucket:?} is not a valid bucket name: {e}"))?;
    let prefix = s3
        .prefix
        .clone()
        .unwrap_or_else(|| format!("{namespace}/{instance}"));
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|s| s == "." || s == "..") {
        return Err(format!(
            "prefix {prefix:?} must not contain . or .. segments"
        ));
    }
    url.set_path(prefix);
    {
        let mut q = url.query_pairs_mut();
        if let Some(endpoint) = s3.endpoint.as_deref().filter(|e| !e.is_empty()) {
            q.append_pair("endpoint", endpoint);
            if endpoint.starts_with("http://") {
                q.append_pair("allow_http", "true");
            }
        }
        q.append_pair("region", s3.region.as_deref().unwrap_or("us-east-1"));
        q.append_pair("access_key_id", &credentials.access_key_id);
        q.append_pair("secret_access_key", &credentials.secret_access_key);
        if let Some(token) = &credentials.session_token {
            q.append_pair("session_token", token);
        }
    }
    Ok(url.to_string())
}

/// The URL of one archive, `<id>.tar.gz`, in the folder `destination_url` names (same query:
/// endpoint, region, credentials).
pub fn archive_url(folder_url: &str, backup_id: &str) -> Result<String, String> {
    let mut url = Url::parse(folder_url).map_err(|e| format!("bad destination URL: {e}"))?;
    let path = format!("{}/{backup_id}.tar.gz", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url.to_string())
}

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
            s.phase = Some(OperationPhase::Completed);
            s.completed_at = Some(Time(now));
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
    use instant_db_crds::backup::{InstantDbBackupSpec, S3Destination, VolumeDestination};

    fn creds() -> S3Credentials {
        S3Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "s3cr3t/+=".into(),
            session_token: None,
        }
    }

    fn s3(endpoint: Option<&str>, prefix: Option<&str>) -> BackupDestination {
        BackupDestination {
            volume: None,
            s3: Some(S3Destination {
                endpoint: endpoint.map(Into::into),
                bucket: Some("backups".into()),
                prefix: prefix.map(Into::into),
                region: None,
                credentials_secret: Some("s3-creds".into()),
            }),
        }
    }

    #[test]
    fn an_s3_destination_becomes_the_engines_url_with_credentials_encoded() {
        let url = destination_url(
            &s3(Some("http://minio:9000"), None),
            "search",
            "docs",
            &creds(),
        )
        .unwrap();
        assert_eq!(
            url,
            "s3://backups/search/docs?endpoint=http%3A%2F%2Fminio%3A9000&allow_http=true\
             &region=us-east-1&access_key_id=AKID&secret_access_key=s3cr3t%2F%2B%3D"
        );
        let url = destination_url(
            &s3(Some("https://s3.example"), Some("/nightly/")),
            "ns",
            "db",
            &creds(),
        )
        .unwrap();
        assert!(url.starts_with("s3://backups/nightly?endpoint=https%3A%2F%2Fs3.example&region="));
        assert!(!url.contains("allow_http"));
    }

    #[test]
    fn an_archive_url_is_the_folder_url_with_the_archive_name_in_the_path() {
        let folder = destination_url(
            &s3(Some("http://minio:9000"), None),
            "search",
            "docs",
            &creds(),
        )
        .unwrap();
        let url = archive_url(&folder, "nightly-0f3c2a9e").unwrap();
        assert!(
            url.starts_with("s3://backups/search/docs/nightly-0f3c2a9e.tar.gz?endpoint="),
            "{url}"
        );
        assert!(url.ends_with("&secret_access_key=s3cr3t%2F%2B%3D"), "{url}");
    }

    #[test]
    fn unusable_destinations_are_errors_that_say_what_to_change() {
        let volume = BackupDestination {
            volume: Some(VolumeDestination {
                claim_name: "pvc".into(),
                path: None,
            }),
            s3: None,
        };
        let e = destination_url(&volume, "ns", "db", &creds()).unwrap_err();
        assert!(e.contains("use an s3 destination"), "{e}");
        let mut no_bucket = s3(None, None);
        no_bucket.s3.as_mut().unwrap().bucket = None;
        assert!(
            destination_url(&no_bucket, "ns", "db", &creds())
                .unwrap_err()
                .contains("bucket")
        );
        let e = destination_url(&s3(None, Some("a/../b")), "ns", "db", &creds()).unwrap_err();
        assert!(e.contains(".."), "{e}");
    }

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
