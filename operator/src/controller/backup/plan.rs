//! The pure part of the backup controller: the engine's destination URL for a backup, the id the
//! engine files it under, and the status that follows from what the engine reports.

use instant_db_crds::backup::{
    BackupDestination, InstantDbBackup, InstantDbBackupStatus, OperationPhase, S3Destination,
    VerificationResult, VolumeDestination,
};
use instant_db_crds::conditions::Status;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use reqwest::Url;

use crate::engine_client::{BackupJob, BackupJobStatus};

/// Whether `name` is a name the engine takes in `credentials=NAME` (a Kubernetes Secret name:
/// `[a-z0-9]([-a-z0-9.]*[a-z0-9])?`, at most 253 characters).
pub fn is_credentials_name(name: &str) -> bool {
    let b = name.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 253
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || *c == b'-' || *c == b'.')
}

/// The directory inside a volume destination when `path` is unset.
pub const DEFAULT_VOLUME_PATH: &str = "instant-db-backups";

/// The destination with every default filled in, as recorded in `status.destination` when the
/// backup starts: for s3 prefix `<namespace>/<instance>` (slashes trimmed), region
/// `us-east-1`; for a volume the path `instant-db-backups`. Errors are for the user (what to
/// change).
pub fn resolve_destination(
    destination: &BackupDestination,
    namespace: &str,
    instance: &str,
) -> Result<BackupDestination, String> {
    let s3 = match (&destination.s3, &destination.volume) {
        (Some(s3), _) => s3,
        (None, Some(volume)) => {
            return resolve_volume(volume).map(|v| BackupDestination {
                volume: Some(v),
                s3: None,
            });
        }
        (None, None) => return Err("the destination names neither s3 nor volume".into()),
    };
    let bucket = s3
        .bucket
        .as_deref()
        .filter(|b| !b.is_empty())
        .ok_or("the s3 destination has no bucket")?;
    let prefix = s3
        .prefix
        .clone()
        .unwrap_or_else(|| format!("{namespace}/{instance}"));
    let prefix = prefix.trim_matches('/').to_string();
    if prefix.split('/').any(|s| s == "." || s == "..") {
        return Err(format!(
            "prefix {prefix:?} must not contain . or .. segments"
        ));
    }
    // Without a credentials Secret the engine uses its pod's own AWS identity (IRSA, Pod
    // Identity, the node's role): nothing to copy, no `credentials=` in the URL.
    let credentials = s3.credentials_secret.as_deref().filter(|c| !c.is_empty());
    if let Some(credentials) = credentials
        && !is_credentials_name(credentials)
    {
        return Err(format!(
            "credentialsSecret {credentials:?} is not a Secret name (lower-case letters, digits, - and .)"
        ));
    }
    Ok(BackupDestination {
        volume: None,
        s3: Some(S3Destination {
            endpoint: s3.endpoint.clone().filter(|e| !e.is_empty()),
            bucket: Some(bucket.to_string()),
            prefix: Some(prefix),
            region: Some(s3.region.clone().unwrap_or_else(|| "us-east-1".into())),
            credentials_secret: credentials.map(str::to_string),
        }),
    })
}

/// A volume destination with its path defaulted and checked: a relative directory of plain
/// segments (letters, digits, `.`, `_`, `-`), since it becomes part of a path in the pod.
fn resolve_volume(volume: &VolumeDestination) -> Result<VolumeDestination, String> {
    let claim = volume.claim_name.as_str();
    if !is_credentials_name(claim) {
        return Err(format!(
            "volume.claimName {claim:?} is not a PersistentVolumeClaim name (lower-case letters, digits, - and .)"
        ));
    }
    let path = volume
        .path
        .as_deref()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_VOLUME_PATH);
    let plain = |seg: &str| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if !path.split('/').all(plain) {
        return Err(format!(
            "volume.path {path:?} must be a directory inside the volume: segments of letters, digits, '.', '_' and '-', no '.' or '..'"
        ));
    }
    Ok(VolumeDestination {
        claim_name: claim.to_string(),
        path: Some(path.to_string()),
    })
}

/// The claim a destination writes to, if it is a volume.
pub fn claim_name(destination: &BackupDestination) -> Option<&str> {
    destination.volume.as_ref().map(|v| v.claim_name.as_str())
}

/// The name of the credentials Secret a destination uses, if any.
pub fn credentials_secret(destination: &BackupDestination) -> Option<&str> {
    destination
        .s3
        .as_ref()
        .and_then(|s| s.credentials_secret.as_deref())
        .filter(|c| !c.is_empty())
}

/// The engine's URL of the folder of a resolved destination (see [`resolve_destination`]):
/// `s3://bucket/prefix?endpoint=…&region=…&credentials=<Secret name>`. The credentials travel
/// by reference: the engine reads them from the files of the `<instance>-storage-credentials`
/// Secret mounted in its pod, so no credential is in any URL, request body or log.
///
/// A volume destination is the directory `/backups/<claimName>/<path>` where the engine pod
/// mounts the claim: `file:///backups/<claimName>/<path>`.
pub fn destination_url(resolved: &BackupDestination) -> Result<String, String> {
    let s3 = match (&resolved.s3, &resolved.volume) {
        (Some(s3), _) => s3,
        (None, Some(v)) => {
            let dir = format!(
                "{}/{}",
                crate::builders::backup_mount_path(&v.claim_name),
                v.path.as_deref().unwrap_or(DEFAULT_VOLUME_PATH)
            );
            let mut url = Url::parse("file:///").map_err(|e| format!("bad directory URL: {e}"))?;
            url.set_path(&dir);
            return Ok(url.to_string());
        }
        (None, None) => return Err("the destination names neither s3 nor volume".into()),
    };
    let bucket = s3.bucket.as_deref().unwrap_or_default();
    let mut url = Url::parse(&format!("s3://{bucket}"))
        .map_err(|e| format!("bucket {bucket:?} is not a valid bucket name: {e}"))?;
    url.set_path(s3.prefix.as_deref().unwrap_or_default());
    {
        let mut q = url.query_pairs_mut();
        if let Some(endpoint) = s3.endpoint.as_deref().filter(|e| !e.is_empty()) {
            q.append_pair("endpoint", endpoint);
            if endpoint.starts_with("http://") {
                q.append_pair("allow_http", "true");
            }
        }
        q.append_pair("region", s3.region.as_deref().unwrap_or("us-east-1"));
        if let Some(name) = s3.credentials_secret.as_deref() {
            q.append_pair("credentials", name);
        }
    }
    Ok(url.to_string())
}

/// The URL of one archive, `<id>.tar.gz`, in the folder `destination_url` names (same query).
pub fn archive_url(folder_url: &str, backup_id: &str) -> Result<String, String> {
    let mut url = Url::parse(folder_url).map_err(|e| format!("bad destination URL: {e}"))?;
    let path = format!("{}/{backup_id}.tar.gz", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url.to_string())
}

/// The folder URL of an archive URL (the archive's name taken off the path), for deletions.
pub fn folder_of(archive_url: &str) -> Result<String, String> {
    let mut url = Url::parse(archive_url).map_err(|e| format!("bad archive URL: {e}"))?;
    let path = url.path().to_string();
    let folder = path.rsplit_once('/').map_or("", |(f, _)| f).to_string();
    url.set_path(&folder);
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
    use instant_db_crds::backup::{InstantDbBackupSpec, S3Destination};

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

    fn url_of(d: &BackupDestination, ns: &str, db: &str) -> String {
        destination_url(&resolve_destination(d, ns, db).unwrap()).unwrap()
    }

    #[test]
    fn an_s3_destination_becomes_the_engines_url_naming_the_credentials_secret() {
        let url = url_of(&s3(Some("http://minio:9000"), None), "search", "docs");
        assert_eq!(
            url,
            "s3://backups/search/docs?endpoint=http%3A%2F%2Fminio%3A9000&allow_http=true\
             &region=us-east-1&credentials=s3-creds"
        );
        let url = url_of(
            &s3(Some("https://s3.example"), Some("/nightly/")),
            "ns",
            "db",
        );
        assert!(url.starts_with("s3://backups/nightly?endpoint=https%3A%2F%2Fs3.example&region="));
        assert!(!url.contains("allow_http"));
        for secret in ["access_key_id", "secret_access_key", "session_token"] {
            assert!(!url.contains(secret), "{url}");
        }
    }

    /// No credentials Secret: the engine uses its pod's own AWS identity (an IAM role of its
    /// service account), so the URL names no credentials and nothing is copied.
    #[test]
    fn an_s3_destination_without_a_credentials_secret_leaves_the_identity_to_the_engine_pod() {
        let mut d = s3(None, None);
        d.s3.as_mut().unwrap().credentials_secret = None;
        let resolved = resolve_destination(&d, "search", "docs").unwrap();
        assert_eq!(credentials_secret(&resolved), None);
        assert_eq!(
            destination_url(&resolved).unwrap(),
            "s3://backups/search/docs?region=us-east-1"
        );
    }

    #[test]
    fn the_resolved_destination_has_every_default_filled_in() {
        let r = resolve_destination(&s3(None, None), "search", "docs").unwrap();
        let s = r.s3.unwrap();
        assert_eq!(s.prefix.as_deref(), Some("search/docs"));
        assert_eq!(s.region.as_deref(), Some("us-east-1"));
        assert_eq!(s.bucket.as_deref(), Some("backups"));
        assert_eq!(s.credentials_secret.as_deref(), Some("s3-creds"));
        // resolving a resolved destination changes nothing (another instance, same place)
        let again = resolve_destination(
            &resolve_destination(&s3(None, None), "search", "docs").unwrap(),
            "x",
            "y",
        )
        .unwrap();
        assert_eq!(
            again,
            resolve_destination(&s3(None, None), "search", "docs").unwrap()
        );
    }

    fn volume(claim: &str, path: Option<&str>) -> BackupDestination {
        BackupDestination {
            volume: Some(VolumeDestination {
                claim_name: claim.into(),
                path: path.map(Into::into),
            }),
            s3: None,
        }
    }

    #[test]
    fn a_volume_destination_is_a_directory_under_the_claims_mount_in_the_engine_pod() {
        let r = resolve_destination(&volume("nightly-pvc", None), "ns", "db").unwrap();
        assert_eq!(r, volume("nightly-pvc", Some("instant-db-backups")));
        assert_eq!(claim_name(&r), Some("nightly-pvc"));
        assert_eq!(credentials_secret(&r), None);
        let folder = destination_url(&r).unwrap();
        assert_eq!(folder, "file:///backups/nightly-pvc/instant-db-backups");
        let r = resolve_destination(&volume("b", Some("/team/docs/")), "ns", "db").unwrap();
        assert_eq!(r, volume("b", Some("team/docs")));
        assert_eq!(
            resolve_destination(&r, "x", "y").unwrap(),
            r,
            "resolving again changes nothing"
        );
        let archive = archive_url(&destination_url(&r).unwrap(), "nightly-0f3c2a9e").unwrap();
        assert_eq!(
            archive,
            "file:///backups/b/team/docs/nightly-0f3c2a9e.tar.gz"
        );
        assert_eq!(folder_of(&archive).unwrap(), "file:///backups/b/team/docs");
    }

    #[test]
    fn an_archive_url_is_the_folder_url_with_the_archive_name_in_the_path_and_back() {
        let folder = url_of(&s3(Some("http://minio:9000"), None), "search", "docs");
        let url = archive_url(&folder, "nightly-0f3c2a9e").unwrap();
        assert!(
            url.starts_with("s3://backups/search/docs/nightly-0f3c2a9e.tar.gz?endpoint="),
            "{url}"
        );
        assert!(url.ends_with("&credentials=s3-creds"), "{url}");
        assert_eq!(folder_of(&url).unwrap(), folder);
    }

    #[test]
    fn unusable_destinations_are_errors_that_say_what_to_change() {
        for (claim, path, what) in [
            ("Backups", None, "not a PersistentVolumeClaim name"),
            ("backups", Some("a/../b"), "no '.' or '..'"),
            ("backups", Some("x y"), "segments of letters"),
            ("backups", Some("a//b"), "segments of letters"),
        ] {
            let e = resolve_destination(&volume(claim, path), "ns", "db").unwrap_err();
            assert!(e.contains(what), "{claim} {path:?}: {e}");
        }
        let mut no_bucket = s3(None, None);
        no_bucket.s3.as_mut().unwrap().bucket = None;
        assert!(
            resolve_destination(&no_bucket, "ns", "db")
                .unwrap_err()
                .contains("bucket")
        );
        let e = resolve_destination(&s3(None, Some("a/../b")), "ns", "db").unwrap_err();
        assert!(e.contains(".."), "{e}");
        let mut bad_name = s3(None, None);
        bad_name.s3.as_mut().unwrap().credentials_secret = Some("S3_Creds".into());
        let e = resolve_destination(&bad_name, "ns", "db").unwrap_err();
        assert!(e.contains("not a Secret name"), "{e}");
        assert!(is_credentials_name("s3-creds.v2"));
        assert!(
            !is_credentials_name("-x") && !is_credentials_name("x-") && !is_credentials_name("")
        );
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
