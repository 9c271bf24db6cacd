//! The `InstantDb` kind: one engine instance.

// clippy reads the repeated `type_ =` keys of kube's `printcolumn(...)` lists as duplicates.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, SecretKeySelector, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of an instant-db engine instance. Only `storage.size` is required; every other
/// field has a default applied by the operator (never written back into the object, so GitOps
/// tools see no drift).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "instantdb.io",
    version = "v1alpha1",
    kind = "InstantDb",
    plural = "instantdbs",
    singular = "instantdb",
    shortname = "idb",
    category = "instantdb",
    namespaced,
    status = "InstantDbStatus",
    derive = "PartialEq",
    doc = "An instant-db document search engine instance (one StatefulSet pod with its volume).",
    // Refused at admission instead of failing later: the name becomes a Service name (a
    // DNS-1035 label) and the StatefulSet's, whose pods carry `<name>-<revision hash>` in a
    // 63-character label, so at most 52 characters.
    validation = kube::core::Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 52").message("metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter) of at most 52 characters: it names the engine's Service and StatefulSet"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Docs", type_ = "integer", json_path = ".status.documentCount"),
    printcolumn(name = "Last Backup", type_ = "date", json_path = ".status.lastBackup"),
    printcolumn(
        name = "Recoverable From",
        type_ = "date",
        priority = 1,
        json_path = ".status.firstRecoverabilityPoint"
    ),
    printcolumn(
        name = "Last Archived",
        type_ = "date",
        priority = 1,
        json_path = ".status.lastArchivedTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.bootstrap) == has(oldSelf.bootstrap) && (!has(self.bootstrap) || self.bootstrap == oldSelf.bootstrap)").message("spec.bootstrap is immutable: it only says where a new instance got its first data; to start from another backup, create a new InstantDb"))]
pub struct InstantDbSpec {
    /// Engine container image. Default: the operator's engine image
    /// (`ghcr.io/instant-db/instant-db:<operator version>`, or `--engine-image`), pinned in
    /// `status.image` when first used (see `imageUpdatePolicy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,

    /// Without `spec.image`: `Pinned` keeps the engine image recorded in `status.image` across
    /// operator upgrades (no restart of a running engine), `FollowOperator` moves the engine to
    /// the new operator's image (one restart per upgrade). Default: `Pinned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_update_policy: Option<ImageUpdatePolicy>,

    /// Number of engine pods. Must be 1: the engine keeps its data in SQLite, which has a single
    /// writer. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self == 1").message("replicas must be 1: instant-db runs a single writer (SQLite); scale with more InstantDb objects instead"))]
    pub replicas: Option<i32>,

    /// Persistent volume of the engine (SQLite database and vector index).
    pub storage: StorageSpec,

    /// CPU and memory requests and limits of the engine container. Default: requests
    /// `cpu: 100m, memory: 256Mi`, limit `memory: 1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Embedding model settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<EmbeddingSpec>,

    /// Where vectors are stored. Default: `embedded` (inside the engine's volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_store: Option<VectorStoreSpec>,

    /// Integrity checks and automatic recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoverySpec>,

    /// Engine log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingSpec>,

    /// OpenTelemetry trace export. Default: disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otel: Option<OtelSpec>,

    /// Overrides merged into the engine pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplateOverrides>,

    /// Voluntary disruptions (node drains). Default: no PodDisruptionBudget, so a drain evicts
    /// the single engine pod (the instance is unavailable until it runs again elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption: Option<DisruptionSpec>,

    /// When true the StatefulSet is scaled to zero (the volume is kept) and scheduled backups of
    /// this instance are paused. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// The NetworkPolicy that limits who reaches the engine pods. Default: enabled, allowing the
    /// operator's namespace only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,

    /// HTTPS for the engine API. Default: plain HTTP inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Where a new instance gets its first data (like CloudNativePG's `bootstrap.recovery`):
    /// the engine starts from a backup before it serves. Immutable. Default: an empty instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapSpec>,
}

/// The engine serves its API (and probes and metrics, which share the port) over HTTPS with the
/// certificate of a Secret, and the operator verifies that certificate on every call.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A `kubernetes.io/tls` Secret in the instance's namespace with `tls.crt` and `tls.key`,
    /// and `ca.crt` (the CA that signed it; without it `tls.crt` itself is trusted, the
    /// self-signed case). A cert-manager `Certificate` writes exactly such a Secret. The
    /// certificate must name the pod `<name>-0.<name>-headless.<namespace>.svc` (the operator
    /// verifies that name) and, for clients, `<name>.<namespace>.svc`. Renewals are picked up
    /// without a restart.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// How a new instance gets its first data.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapSpec {
    /// Restore this backup into the empty data volume before the engine starts. It runs at
    /// every start of the pod but restores only while the volume holds no database, so the
    /// instance's own data is never replaced.
    pub from_backup: BootstrapFromBackup,
}

/// The backup a new instance starts from: exactly one of `backup` or `source`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.backup) != has(self.source)").message("bootstrap.fromBackup needs exactly one of backup (an InstantDbBackup in this namespace) or source (destination and backupId)"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.source) || has(self.source.backupId) || has(self.targetTime)").message("bootstrap.fromBackup.source needs backupId, unless targetTime is set (the engine then picks the base backup in the destination)"))]
pub struct BootstrapFromBackup {
    /// Name of a completed InstantDbBackup in the same namespace; its recorded archive
    /// (`status.archiveUrl`, `status.destination`) is used as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub backup: Option<String>,
    /// A backup that has no InstantDbBackup here (another namespace or cluster): where it is
    /// stored and its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<BootstrapSource>,
    /// Point-in-time bootstrap: `latest` or an RFC 3339 time (`2026-12-02T05:00:00Z`). The
    /// init container restores the newest base snapshot before it from the destination folder
    /// (of `backup`, or `source.destination`) and replays the archived changes up to it
    /// (the source instance's policy had `continuousArchiving` on). The backup named then only
    /// says which folder; the engine picks the base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(latest|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
    ))]
    pub target_time: Option<String>,
}

/// A stored backup named by its destination and id.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapSource {
    /// Where the backup is stored, written as in an InstantDbBackupPolicy, with every part the
    /// backup was written with (an s3 prefix defaults to `<namespace>/<name>` of this
    /// instance, which is rarely the source's: set it). Credentials by Secret name, in this
    /// namespace.
    pub destination: crate::backup::BackupDestination,
    /// Id of the backup (the archive is `<backupId>.tar.gz` in the destination; an
    /// InstantDbBackup shows it in `status.backupId`). Required unless `targetTime` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"))]
    pub backup_id: Option<String>,
}

/// Who may connect to the engine's port (API, health and metrics share it).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create the NetworkPolicy `<name>` for this instance. Default: true. With false any pod
    /// that can route to the engine reaches it (API keys still apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Pods allowed to reach the engine API besides the operator's namespace, like a
    /// NetworkPolicy `from` entry: a namespace selector, a pod selector (in this namespace), or
    /// both (those pods in those namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_from: Option<Vec<NetworkPolicyPeerSpec>>,
    /// Namespaces whose pods may scrape `/metrics` (e.g. the one Prometheus runs in). The port
    /// is the API's too, so those pods can also reach the API (which still needs a key).
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_namespace_selector: Option<LabelSelector>,
}

/// One allowed source of traffic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.namespaceSelector) || has(self.podSelector)").message("each networkPolicy.allowFrom entry needs namespaceSelector, podSelector or both"))]
pub struct NetworkPolicyPeerSpec {
    /// Namespaces (by label); `{}` means every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Pods (by label), in the instance's namespace unless `namespaceSelector` is set too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
}

/// Which engine image an instance without `spec.image` runs after an operator upgrade.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageUpdatePolicy {
    /// Keep the image recorded in `status.image` (default): an operator upgrade does not
    /// restart running engines.
    #[default]
    Pinned,
    /// Run the operator's engine image; an operator upgrade restarts the engine onto it.
    FollowOperator,
}

/// Voluntary disruption settings.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionSpec {
    /// When true a PodDisruptionBudget with `minAvailable: 1` protects the only engine pod:
    /// node drains (cluster upgrades, autoscaler scale-down) wait until the instance is
    /// suspended or the flag removed. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protect: Option<bool>,
}

/// Persistent volume settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("storage.storageClassName is immutable: create a new InstantDb and restore a backup into it"))]
pub struct StorageSpec {
    /// Size of the data volume (a Kubernetes quantity, for example `1Gi`). Required. It may be
    /// increased later when the storage class allows volume expansion. Written as a string.
    #[x_kube(validation = kube::core::Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("storage.size must be a positive quantity such as 1Gi"))]
    #[schemars(length(min = 1, max = 64))]
    pub size: String,

    /// Storage class of the data volume. Default: the cluster's default storage class.
    /// Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub storage_class_name: Option<String>,

    /// What happens to the data volume when the InstantDb is deleted: `Retain` keeps the
    /// PersistentVolumeClaim, `Delete` removes it. Default: `Retain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// What happens to the data volume when the InstantDb is deleted: `Retain` keeps the
/// PersistentVolumeClaim, `Delete` removes it. Default: `Retain`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the PersistentVolumeClaim (default).
    #[default]
    Retain,
    /// Delete the PersistentVolumeClaim with the instance.
    Delete,
}

/// Embedding model settings.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddingSpec {
    /// Model name reported by the engine. Default: `all-MiniLM-L6-v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub model: Option<String>,

    /// Where the model files (`model.onnx`, `tokenizer.json`) come from. Default: the model
    /// directory shipped in the engine image. When the model cannot be loaded the engine still
    /// serves keyword search and reports itself degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_source: Option<ModelSource>,

    /// Number of chunks embedded per batch. Default: 32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub batch_size: Option<i32>,

    /// Inference threads. Default: the container's CPU limit rounded up (`resources.limits.cpu`,
    /// at most 64) when one is set; without a CPU limit the engine uses one thread per core of
    /// the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub threads: Option<i32>,
}

/// Model files on an existing PersistentVolumeClaim, mounted read-only at `/models`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelSource {
    /// Name of a PersistentVolumeClaim in the same namespace holding the model directory.
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,

    /// Directory inside the volume that holds the model files. Default: the volume root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
}

/// Vector store selection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.type) || self.type != 'qdrant' || has(self.qdrant)").message("vectorStore.type qdrant needs vectorStore.qdrant (at least its url)"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.qdrant) || (has(self.type) && self.type == 'qdrant')").message("vectorStore.qdrant is only allowed with vectorStore.type: qdrant"))]
pub struct VectorStoreSpec {
    /// `embedded` (HNSW index inside the engine volume) or `qdrant` (an external Qdrant).
    /// Default: `embedded`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<VectorStoreType>,

    /// External Qdrant connection; required when `type` is `qdrant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qdrant: Option<QdrantSpec>,
}

/// `embedded` (HNSW index inside the engine volume) or `qdrant` (an external Qdrant).
/// Default: `embedded`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VectorStoreType {
    /// HNSW index kept in the engine's volume (default).
    #[default]
    Embedded,
    /// External Qdrant server.
    Qdrant,
}

/// External Qdrant server.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QdrantSpec {
    /// gRPC URL of Qdrant, for example `http://qdrant:6334`.
    #[schemars(length(min = 1), regex(pattern = r"^https?://"))]
    pub url: String,

    /// Collection name. Default: the InstantDb name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub collection: Option<String>,

    /// Secret key holding the Qdrant API key. Default: no API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret: Option<SecretKeySelector>,
}

/// Integrity checks and automatic recovery.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecoverySpec {
    /// Restore automatically when the integrity check fails, from the newest completed backup
    /// that finished before the last passing check (`status.lastIntegrityPass`).
    /// Default: false (the failure is reported in the `IntegrityOk` condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_restore: Option<bool>,

    /// How often the engine checks its data integrity, as a duration (`30m`, `6h`, `1h30m`).
    /// Default: `6h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub integrity_check_interval: Option<String>,
}

/// Engine log settings.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoggingSpec {
    /// Log level. Default: `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
    /// Log format. Default: `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
}

/// Engine log level. Default: `info`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Most verbose.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (default).
    #[default]
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

/// Engine log format. Default: `json`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (default).
    #[default]
    Json,
    /// Human-readable text.
    Text,
}

/// OpenTelemetry trace export (OTLP over HTTP).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OtelSpec {
    /// OTLP/HTTP endpoint, for example `http://otel-collector:4318`. Tracing is off when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// `service.name` resource attribute. Default: `instant-db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub service_name: Option<String>,
    /// Fraction of traces sampled, from 0 to 1. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sampling_ratio: Option<f64>,
}

/// Scheduling overrides merged into the engine pod.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Node selector of the engine pod. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations of the engine pod. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// ServiceAccount the engine pod runs as (same namespace; the user's, not made by the
    /// operator), e.g. one annotated with an IAM role (EKS IRSA), a GKE or Azure workload
    /// identity, so backups need no static keys. Default: the namespace's `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
    /// Affinity of the engine pod. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

/// Observed state of an InstantDb, written by the operator.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstantDbStatus {
    /// `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Summary for humans (Provisioning, Running, Degraded, Suspended, Failed). Tools
    /// should read the conditions instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Conditions: Ready, Progressing, Degraded, Reconciling, Stalled, IntegrityOk,
    /// BackupHealthy, Recovering, Bootstrapped, ContinuousArchiving (only while a policy
    /// archives the instance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Engine pods that pass their readiness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// In-cluster URL of the engine API (the client Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Completion time of the latest completed backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<Time>,
    /// Time of the engine's integrity check that established the current result of
    /// `IntegrityOk` (later checks with the same result are not written, so a steady instance
    /// makes no status writes; the engine's `/health/detailed` has the latest time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_integrity_check: Option<Time>,
    /// Time of a recent passing integrity check of the engine (moved forward at most every 6
    /// hours, so hourly checks make no status writes). Automatic recovery restores only a backup
    /// that finished before it (a newer one may hold the damage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_integrity_pass: Option<Time>,
    /// Continuous archiving: the earliest time a point-in-time restore can reach (the oldest
    /// base snapshot of the engine's current archive generation), read from the engine's
    /// `GET /admin/archive` at most every 5 minutes. Absent without archiving or before the
    /// first backup of the generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_recoverability_point: Option<Time>,
    /// Continuous archiving: commit time of the newest change in the archive (the latest time
    /// a restore reaches), refreshed at most every 5 minutes (the engine's `GET /admin/archive`
    /// and `instantdb_archive_lag_seconds` have it live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_archived_time: Option<Time>,
    /// Time of the latest automatic recovery (restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_recovery: Option<Time>,
    /// Number of documents reported by the engine, refreshed at most every 5 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_count: Option<i64>,
    /// Engine image the instance runs (`spec.image`, or the operator's image pinned here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Names (never values) of the Secrets holding this instance's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<InstanceSecrets>,
    /// The archive `spec.bootstrap.fromBackup` resolved to, recorded before the engine pod is
    /// created and used from then on (the backup object may be pruned later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapStatus>,
}

/// The archive a bootstrapped instance started from.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapStatus {
    /// The InstantDbBackup (`backup`) or backup id (`source`) restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// URL of the archive as the engine reads it; names the credentials Secret
    /// (`credentials=NAME`), never carries a credential. With `targetTime`, the destination
    /// folder (its backups and their `archive/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_url: Option<String>,
    /// Point-in-time bootstrap: the target (`latest` or RFC 3339) given to
    /// `instant-db restore --to-time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_time: Option<String>,
    /// Where the archive is stored, with every default filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<crate::backup::BackupDestination>,
}

/// Names of the Secrets of an instance: read a key with
/// `kubectl get secret <name> -o jsonpath='{.data.read}' | base64 -d`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSecrets {
    /// Secret with the admin token (key `token`, the engine's `admin` role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// Secret with the API keys (keys `read` and `write`, the engine's roles of those names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
}

/// Summary for humans (Provisioning, Running, Degraded, Suspended, Failed). Tools
/// should read the conditions instead.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Resources created, engine not ready yet.
    Provisioning,
    /// Engine ready and healthy.
    Running,
    /// Engine running but reports a problem.
    Degraded,
    /// Scaled to zero by `spec.suspend`.
    Suspended,
    /// Spec invalid, or resources could not be created (a foreign object of the same name, an
    /// object the API server rejected): see the Ready condition.
    Failed,
}

impl InstantDbSpec {
    /// `recovery.autoRestore` with its default (false).
    pub fn auto_restore(&self) -> bool {
        self.recovery
            .as_ref()
            .and_then(|r| r.auto_restore)
            .unwrap_or(false)
    }
}

impl Phase {
    /// Name as written in the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Provisioning => "Provisioning",
            Phase::Running => "Running",
            Phase::Degraded => "Degraded",
            Phase::Suspended => "Suspended",
            Phase::Failed => "Failed",
        }
    }
}
