//! Backup kinds: `InstantDbBackupPolicy`, `InstantDbBackup`, `InstantDbRestore`.

// clippy reads the repeated `type_ =` keys of kube's `printcolumn(...)` lists as duplicates.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where backups are written. Exactly one of `volume`, `s3`, `gcs` or `azure`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("[has(self.volume), has(self.s3), has(self.gcs), has(self.azure)].filter(x, x).size() == 1").message("destination needs exactly one of volume, s3, gcs or azure"))]
pub struct BackupDestination {
    /// A PersistentVolumeClaim (same namespace) mounted by the engine pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeDestination>,
    /// An S3-compatible object store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Destination>,
    /// A Google Cloud Storage bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsDestination>,
    /// An Azure Blob Storage container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureDestination>,
}

/// Backups in a Google Cloud Storage bucket (`gs://bucket/path` for the engine).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.credentialsSecret) || self.credentialsSecret != ''").message("gcs credentialsSecret must not be empty: name a Secret with the key GOOGLE_SERVICE_ACCOUNT_KEY, or leave it out to use the engine pod's own Google identity"))]
pub struct GcsDestination {
    /// Bucket name. Required.
    #[schemars(length(min = 1, max = 222))]
    pub bucket: String,
    /// Object name prefix inside the bucket. Default: `<namespace>/<instance>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Name of a Secret (same namespace) with the key `GOOGLE_SERVICE_ACCOUNT_KEY` holding a
    /// service account key (the JSON file). Without it the engine uses its pod's own Google
    /// identity: Workload Identity for the pod's service account
    /// (`podTemplate.serviceAccountName`) or the node's service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// Backups in an Azure Blob Storage container (`az://container/path?account=…` for the engine).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.credentialsSecret) || self.credentialsSecret != ''").message("azure credentialsSecret must not be empty: name a Secret with the key AZURE_STORAGE_ACCOUNT_KEY, or leave it out to use the engine pod's own Azure identity"))]
pub struct AzureDestination {
    /// Storage account name (3 to 24 lower-case letters and digits). Required.
    #[schemars(regex(pattern = r"^[a-z0-9]{3,24}$"))]
    pub storage_account: String,
    /// Container name. Required.
    #[schemars(length(min = 3, max = 63))]
    pub container: String,
    /// Blob name prefix inside the container. Default: `<namespace>/<instance>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Name of a Secret (same namespace) with the key `AZURE_STORAGE_ACCOUNT_KEY` (an access
    /// key of the storage account). Without it the engine uses its pod's own Azure identity
    /// (Azure Workload Identity for `podTemplate.serviceAccountName`, or a managed identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// Backups on a PersistentVolumeClaim.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeDestination {
    /// Name of the PersistentVolumeClaim.
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
    /// Directory inside the volume. Default: `instant-db-backups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Backups in an S3-compatible object store.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.bucket) && self.bucket != ''").message("s3 destination needs a bucket"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.credentialsSecret) || self.credentialsSecret != ''").message("s3 credentialsSecret must not be empty: name a Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or leave it out to use the engine pod's own AWS identity"))]
pub struct S3Destination {
    /// Endpoint URL for S3-compatible stores (MinIO, Ceph...). Default: AWS S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// Bucket name. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Key prefix inside the bucket. Default: `<namespace>/<instance>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Region. Default: `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Name of a Secret (same namespace) with keys `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`. Without it the engine uses its pod's own AWS identity: an IAM
    /// role for the service account (`podTemplate.serviceAccountName`, EKS IRSA or Pod
    /// Identity) or the node's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// Which backups to keep. Both limits apply when both are set.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Number of completed backups to keep per instance. Default: 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub keep_last: Option<i32>,
    /// Delete completed backups older than this duration (`720h`, `30m`...). Default: no age limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    pub max_age: Option<String>,
}

/// Scheduled backups of one instance or of every instance matching a label selector.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "instantdb.io",
    version = "v1alpha1",
    kind = "InstantDbBackupPolicy",
    plural = "instantdbbackuppolicies",
    singular = "instantdbbackuppolicy",
    shortname = "idbbp",
    category = "instantdb",
    namespaced,
    status = "InstantDbBackupPolicyStatus",
    derive = "PartialEq",
    doc = "Scheduled backups of InstantDb instances, with retention.",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Suspended", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(
        name = "Last Schedule",
        type_ = "date",
        json_path = ".status.lastScheduleTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.instance) != has(self.selector)").message("set exactly one of instance or selector"))]
pub struct InstantDbBackupPolicySpec {
    /// Name of the InstantDb (same namespace) to back up. Exclusive with `selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub instance: Option<String>,
    /// Label selector of the InstantDb objects (same namespace) to back up. Exclusive with
    /// `instance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Cron schedule in UTC: five fields (`0 3 * * *`) or a macro (`@daily`, `@hourly`...).
    #[schemars(regex(
        pattern = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( +\S+){4})$"
    ))]
    pub schedule: String,
    /// Which backups to keep. Default: keep the last 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Where the backups go.
    pub destination: BackupDestination,
    /// Pause the schedule. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Take the first backup as soon as the policy exists, instead of waiting for the first
    /// scheduled run. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immediate: Option<bool>,
    /// Owner of the backups this policy makes: `policy` (deleting the policy deletes the
    /// backup objects), `instance` (they go with the InstantDb), or `none` (they stay until
    /// retention or a user deletes them). Archives are kept in every case (see
    /// `InstantDbBackup.spec.deletionPolicy`). Default: `policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_owner_reference: Option<BackupOwnerReference>,
    /// Continuous archiving of every covered instance into this policy's destination folder
    /// (its `archive/` sub-folder), for point-in-time restores between and after the
    /// scheduled backups. Here and not on the InstantDb because the policy owns the
    /// destination and its credentials, and a restore to a time needs the base snapshots this
    /// policy takes in the same folder: one folder URL restores to any time. Default: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous_archiving: Option<ContinuousArchiving>,
}

/// `InstantDbBackupPolicy.spec.continuousArchiving`: the engine ships every committed change
/// to the destination within `maxLagSeconds` (the engine's `archive.*` configuration).
/// Turning it on or off, or changing a value, restarts the engine pod of each covered
/// instance once (the engine reads its configuration at start).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContinuousArchiving {
    /// Archive the covered instances. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Longest time a committed change waits before it is in the archive while the store
    /// answers (the recovery point objective), in seconds. Default: 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub max_lag_seconds: Option<i64>,
    /// Bytes of changes kept on the data volume while the destination fails before the
    /// archive reports itself full (changes are still kept, never dropped). At least 1 MiB
    /// (1048576). Default: the engine's, 1 GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1048576))]
    pub max_buffer_bytes: Option<i64>,
}

impl ContinuousArchiving {
    /// `enabled` with its default (false).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(false)
    }
}

/// Default `continuousArchiving.maxLagSeconds`.
pub const DEFAULT_ARCHIVE_MAX_LAG_SECONDS: i64 = 5;

/// Owner of the backups a policy makes. Default: `policy`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackupOwnerReference {
    /// No owner: the backup objects outlive the policy and the instance.
    None,
    /// The policy (default): deleting it deletes the backup objects.
    #[default]
    Policy,
    /// The InstantDb backed up: deleting it deletes the backup objects.
    Instance,
}

/// Observed state of a backup policy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstantDbBackupPolicyStatus {
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the last backup run was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the next run is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// Name of the latest completed InstantDbBackup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_backup: Option<String>,
    /// Conditions (Ready, BackupHealthy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// One backup of one instance, made on demand or by a policy. The spec is immutable.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "instantdb.io",
    version = "v1alpha1",
    kind = "InstantDbBackup",
    plural = "instantdbbackups",
    singular = "instantdbbackup",
    shortname = "idbb",
    category = "instantdb",
    namespaced,
    status = "InstantDbBackupStatus",
    derive = "PartialEq",
    doc = "One backup of an InstantDb instance.",
    printcolumn(name = "Instance", type_ = "string", json_path = ".spec.instance"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Size", type_ = "integer", json_path = ".status.sizeBytes"),
    printcolumn(name = "Completed", type_ = "date", json_path = ".status.completedAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("the spec of an InstantDbBackup is immutable: create a new backup instead"))]
pub struct InstantDbBackupSpec {
    /// Name of the InstantDb (same namespace) to back up.
    #[schemars(length(min = 1, max = 253))]
    pub instance: String,
    /// Where to write it. Default: the destination of the policy named by `policy`, or of the
    /// only policy that covers the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<BackupDestination>,
    /// Policy that created this backup (set by the operator for scheduled backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// What deleting this object does to the stored archive: `Retain` keeps it (default),
    /// `Delete` has the engine delete it first. Whatever this says, a policy's retention
    /// deletes the archives of the backups it prunes; nothing else (`kubectl delete`, a
    /// namespace teardown, a GitOps prune, the policy's deletion) ever does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<BackupDeletionPolicy>,
}

/// What deleting an InstantDbBackup does to its stored archive. Default: `Retain`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackupDeletionPolicy {
    /// Keep the archive in storage when the object is deleted (default).
    #[default]
    Retain,
    /// Delete the archive from storage before the object goes.
    Delete,
}

/// Condition type of InstantDbBackup and InstantDbRestore: True once the operation finished
/// successfully (`kubectl wait --for=condition=Complete`).
pub const COMPLETE: &str = "Complete";
/// Condition type of InstantDbBackup and InstantDbRestore: True once the operation finished
/// with an error (`status.error` says which).
pub const FAILED: &str = "Failed";

/// Progress of the operation: Pending, Running, Completed or Failed.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationPhase {
    /// Accepted, not started.
    Pending,
    /// In progress in the engine.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with an error (see `error`).
    Failed,
}

/// Observed state of a backup.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstantDbBackupStatus {
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Running, Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<OperationPhase>,
    /// Identifier of the backup in the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// When the engine started the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// URL of the stored backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Size of the backup in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// SHA-256 of the backup archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Documents in the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_count: Option<i64>,
    /// Version of the engine that wrote the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// Error message when the phase is Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the backup waits for while the phase is Pending (the instance, its engine pod, a
    /// Secret), in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Where the backup was written, recorded when it started with every default filled in
    /// (bucket, prefix, endpoint, region, credentials Secret). Restores and the archive's
    /// deletion use only this, so a later edit of the policy changes nothing for this backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<BackupDestination>,
    /// URL of the archive as the engine reads it (`s3://bucket/prefix/<id>.tar.gz?…`); it names
    /// the credentials Secret (`credentials=NAME`) and never carries a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_url: Option<String>,
    /// The verification of the stored archive, as the engine reports it: after the backup
    /// completes the engine downloads it again, checks every checksum, unpacks it into scratch
    /// space, runs the full integrity check and a keyword and a vector search. Absent when the
    /// engine does not verify (`backup.verify: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<BackupVerification>,
    /// Conditions: `Complete`, `Failed` and `Verified`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Outcome of a backup's verification.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerificationResult {
    /// Not finished yet.
    Pending,
    /// Every check passed: the archive restores.
    Passed,
    /// A check failed, or the verification could not finish (`message` says which and what
    /// to do). Automatic recovery never restores such a backup.
    Failed,
}

/// `status.verified` of an InstantDbBackup.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupVerification {
    /// Pending, Passed or Failed.
    pub result: VerificationResult,
    /// When the verification ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// Which check failed and what to do (empty when it passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Condition type of an InstantDbBackup: its archive was verified (True), failed verification
/// (False) or is being verified (Unknown).
pub const VERIFIED: &str = "Verified";

/// Restore an instance from a named backup or from its latest completed backup. The spec is
/// immutable.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "instantdb.io",
    version = "v1alpha1",
    kind = "InstantDbRestore",
    plural = "instantdbrestores",
    singular = "instantdbrestore",
    shortname = "idbr",
    category = "instantdb",
    namespaced,
    status = "InstantDbRestoreStatus",
    derive = "PartialEq",
    doc = "Restores an InstantDb instance from a backup.",
    printcolumn(name = "Instance", type_ = "string", json_path = ".spec.instance"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Backup",
        type_ = "string",
        json_path = ".status.restoredBackup"
    ),
    printcolumn(
        name = "Restored To",
        type_ = "string",
        json_path = ".status.restoredTo"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("the spec of an InstantDbRestore is immutable: create a new restore instead"))]
pub struct InstantDbRestoreSpec {
    /// Name of the InstantDb (same namespace) to restore into.
    #[schemars(length(min = 1, max = 253))]
    pub instance: String,
    /// Name of the InstantDbBackup to restore. Default: the latest completed backup of the
    /// instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub backup: Option<String>,
    /// Point-in-time restore: `latest` or an RFC 3339 time (`2026-12-02T05:00:00Z`). The
    /// engine restores the newest base snapshot before it and replays the archived changes up
    /// to it, from the destination folder of `backup` when set, else of the
    /// InstantDbBackupPolicy archiving the instance (`continuousArchiving.enabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(latest|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
    ))]
    pub target_time: Option<String>,
}

/// Observed state of a restore.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstantDbRestoreStatus {
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Running, Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<OperationPhase>,
    /// When the restore started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the restore finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Name of the InstantDbBackup that was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_backup: Option<String>,
    /// Documents in the instance after the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_count: Option<i64>,
    /// Error message when the phase is Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the restore waits for while the phase is Pending, or what it is doing while
    /// Running, in words; for an automatic restore, which backup was chosen and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Id of the restore job on the engine (fixed per object, derived from its uid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_id: Option<String>,
    /// Archive URL restored from (the backup's recorded `archiveUrl`; no credential in it);
    /// for a point-in-time restore, the destination folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Point-in-time restore: the target as the engine took it (`latest` or RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_time: Option<String>,
    /// Point-in-time restore: commit time of the newest change restored, as the engine
    /// reports it (at or before `targetTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_to: Option<String>,
    /// Conditions: `Complete` and `Failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
