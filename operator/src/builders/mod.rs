//! Pure functions from an `InstantDb` to the Kubernetes objects that run it.
//!
//! Nothing here talks to the API server: the controller gathers what it observed (the existing
//! admin token, whether the ServiceMonitor CRD exists...) into [`BuildInput`] and applies
//! whatever [`desired`] returns.

mod api_keys;
mod backup_volumes;
mod config;
mod monitoring;
mod network;
mod network_policy;
mod pdb;
mod statefulset;
pub mod storage_credentials;
pub mod tls;

use std::collections::BTreeMap;

use instant_db_crds::{DeletionPolicy, InstantDb, LogFormat, LogLevel};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

pub use api_keys::{API_KEYS_DIR, ApiKeys, READ_KEY, WRITE_KEY, api_keys};
pub use backup_volumes::BOOTSTRAP_CONTAINER;
pub use config::{
    ADMIN_TOKEN_KEY, ArchiveSettings, CONFIG_KEY, LOG_LEVEL_KEY, archive_config, engine_config,
    generate_token,
};
pub use instant_db_crds::quantity::is_positive_quantity;
pub use monitoring::{SERVICE_MONITOR_CRD, service_monitor_resource};
pub use statefulset::ENGINE_UID;

use crate::error::{Error, Result};

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "instant-db-operator";
/// Annotation holding the hash of what the operator applied (used to skip unchanged objects).
pub const HASH_ANNOTATION: &str = "instantdb.io/applied-hash";
/// Pod template annotation: hash of the engine config, the admin token and the API keys, so a
/// change of any restarts the pod.
pub const CONFIG_HASH_ANNOTATION: &str = "instantdb.io/config-hash";
/// Port of the engine (API, health and metrics).
pub const ENGINE_PORT: i32 = 8080;
/// Name of the engine container in the pod (status diagnosis and `kubectl instantdb logs` pick it).
pub const ENGINE_CONTAINER: &str = "engine";
/// Name of the PVC template; the PVC of pod 0 is `data-<name>-0`.
pub const DATA_VOLUME: &str = "data";
/// Default engine memory limit when `spec.resources` is unset.
pub const DEFAULT_MEMORY_LIMIT: &str = "1Gi";
/// Default engine memory request when `spec.resources` is unset.
pub const DEFAULT_MEMORY_REQUEST: &str = "256Mi";
/// Default engine CPU request when `spec.resources` is unset.
pub const DEFAULT_CPU_REQUEST: &str = "100m";
/// Default integrity check interval.
pub const DEFAULT_INTEGRITY_INTERVAL_SECS: u64 = 6 * 3600;
/// Default embedding model name.
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";
/// Default embedding batch size.
pub const DEFAULT_BATCH_SIZE: i32 = 32;
/// Most inference threads (the CRD's maximum for `embedding.threads`).
pub const MAX_THREADS: i32 = 64;

/// Inference threads for the engine: `embedding.threads` when set, else the container's CPU
/// limit rounded up (a pod limited to 1.5 CPUs gets 2 threads, 500m gets 1), capped at
/// [`MAX_THREADS`]. None without either: the engine then uses one thread per core of the node,
/// which on a large node with a small CPU limit would only cause throttling — hence the limit.
pub fn embedding_threads(
    threads: Option<i32>,
    resources: Option<&k8s_openapi::api::core::v1::ResourceRequirements>,
) -> Option<i32> {
    if let Some(t) = threads {
        return Some(t);
    }
    let limit = resources?.limits.as_ref()?.get("cpu")?;
    let millis = instant_db_crds::quantity::Quantity::parse(&limit.0)
        .ok()?
        .to_milli_ceil()?;
    if millis <= 0 {
        return None;
    }
    let cores = (millis.saturating_add(999) / 1000).min(i128::from(MAX_THREADS));
    i32::try_from(cores).ok()
}

/// What the builders need besides the InstantDb itself.
#[derive(Clone, Debug)]
pub struct BuildInput<'a> {
    /// The object to build for.
    pub db: &'a InstantDb,
    /// Engine image used when `spec.image` is unset.
    pub default_image: &'a str,
    /// Admin token: the one already stored in the Secret, or a newly generated one.
    pub admin_token: &'a str,
    /// API keys: those already stored in the `<name>-api` Secret, or newly generated ones.
    pub api_keys: &'a ApiKeys,
    /// Namespace the operator runs in (`POD_NAMESPACE`): the NetworkPolicy lets it in.
    pub operator_namespace: &'a str,
    /// Whether the `servicemonitors.monitoring.coreos.com` CRD exists.
    pub service_monitor_crd: bool,
    /// Claim templates of the existing StatefulSet (immutable in Kubernetes, so they are kept).
    pub existing_claim_templates: Option<Vec<PersistentVolumeClaim>>,
    /// The Secret of `spec.tls.secretName` as observed (None: TLS off, or not there yet). Only
    /// which keys it has is used (the ServiceMonitor's CA key), never its values.
    pub tls_secret: Option<&'a Secret>,
    /// Archive the bootstrap init container restores (`status.bootstrap.archiveUrl`); None
    /// without `spec.bootstrap`.
    pub bootstrap_from: Option<&'a str>,
    /// Existing claims of the instance's volume backup destinations, sorted: each is mounted
    /// at `/backups/<claimName>`.
    pub backup_claims: &'a [String],
    /// Point-in-time bootstrap: the target time (`status.bootstrap.targetTime`);
    /// `bootstrap_from` is then the destination folder.
    pub bootstrap_to_time: Option<&'a str>,
    /// The engine's `archive.*` when a policy archives the instance continuously.
    pub archive: Option<&'a ArchiveSettings>,
}

/// Effective settings after defaults, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// Engine image.
    pub image: String,
    /// Image tag (for the `app.kubernetes.io/version` label).
    pub version: String,
    /// Suspended?
    pub suspend: bool,
    /// PVC fate on deletion.
    pub deletion_policy: DeletionPolicy,
    /// Integrity interval in seconds.
    pub integrity_interval_secs: u64,
    /// Log level.
    pub log_level: LogLevel,
    /// Log format.
    pub log_format: LogFormat,
    /// Requested volume size.
    pub storage_size: String,
}

/// Every object the operator wants for one InstantDb.
#[derive(Clone, Debug)]
pub struct Desired {
    /// Engine configuration.
    pub config_map: ConfigMap,
    /// Admin token.
    pub secret: Secret,
    /// API keys (`read`, `write`).
    pub api_secret: Secret,
    /// Headless Service (stable pod DNS).
    pub headless_service: Service,
    /// Client Service.
    pub service: Service,
    /// The engine StatefulSet.
    pub statefulset: StatefulSet,
    /// Disruption budget (absent while suspended).
    pub pdb: Option<PodDisruptionBudget>,
    /// Who may reach the engine (absent with `spec.networkPolicy.enabled: false`).
    pub network_policy: Option<NetworkPolicy>,
    /// Prometheus Operator ServiceMonitor (only when its CRD exists).
    pub service_monitor: Option<DynamicObject>,
}

/// Checks the spec beyond what the CRD schema can check and resolves the defaults.
/// Returns every problem found, as messages that say what to fix.
pub fn resolve(db: &InstantDb, default_image: &str) -> Result<Resolved, Vec<String>> {
    let mut problems = Vec::new();
    let name = db.metadata.name.clone().unwrap_or_default();
    let namespace = db.metadata.namespace.clone().unwrap_or_default();
    if name.is_empty() || namespace.is_empty() {
        problems.push("metadata.name and metadata.namespace are required".to_string());
    }
    if name.len() > 52 {
        problems.push(format!(
            "metadata.name is {} characters; at most 52 are allowed (StatefulSet pod names get a suffix)",
            name.len()
        ));
    }
    let spec = &db.spec;
    let image = spec
        .image
        .clone()
        .unwrap_or_else(|| default_image.to_string());
    if image.trim().is_empty() {
        problems.push(
            "spec.image is unset and the operator has no default engine image (--engine-image)"
                .into(),
        );
    }
    if let Some(r) = spec.replicas
        && r != 1
    {
        problems.push(format!("spec.replicas is {r}; it must be 1"));
    }
    if !is_positive_quantity(&spec.storage.size) {
        problems.push(format!(
            "spec.storage.size {:?} is not a positive quantity such as 1Gi",
            spec.storage.size
        ));
    }
    let integrity_interval_secs = match spec
        .recovery
        .as_ref()
        .and_then(|r| r.integrity_check_interval.as_deref())
    {
        None => DEFAULT_INTEGRITY_INTERVAL_SECS,
        Some(s) => match parse_duration_secs(s) {
            Some(v) if v > 0 => v,
            _ => {
                problems.push(format!(
                    "spec.recovery.integrityCheckInterval {s:?} is not a duration such as 30m or 6h"
                ));
                0
            }
        },
    };
    if let Some(cpu) = spec
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("cpu"))
        && !is_positive_quantity(&cpu.0)
    {
        problems.push(format!(
            "spec.resources.limits.cpu {:?} is not a positive quantity such as 500m or 2",
            cpu.0
        ));
    }
    if let Some(vs) = &spec.vector_store
        && vs.type_ == Some(instant_db_crds::VectorStoreType::Qdrant)
        && vs.qdrant.is_none()
    {
        problems
            .push("spec.vectorStore.type is qdrant but spec.vectorStore.qdrant is missing".into());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let version = image_tag(&image);
    Ok(Resolved {
        name,
        namespace,
        image,
        version,
        suspend: spec.suspend.unwrap_or(false),
        deletion_policy: spec.storage.deletion_policy.unwrap_or_default(),
        integrity_interval_secs,
        log_level: spec
            .logging
            .as_ref()
            .and_then(|l| l.level)
            .unwrap_or_default(),
        log_format: spec
            .logging
            .as_ref()
            .and_then(|l| l.format)
            .unwrap_or_default(),
        storage_size: spec.storage.size.clone(),
    })
}

/// Builds every desired object. Fails only when the spec is invalid.
pub fn desired(input: &BuildInput<'_>) -> Result<Desired> {
    let r = resolve(input.db, input.default_image).map_err(|p| Error::InvalidSpec(p.join("; ")))?;
    let owner = owner_reference(input.db)?;
    let config_map = config::config_map(input.db, &r, &owner, input.archive)?;
    // The engine reads its config, its admin token and its API keys once at startup, so all go
    // into the pod template's hash: a new token or key (a Secret was deleted and recreated)
    // restarts the pod instead of leaving the engine on the old one. Only hashes are written.
    let config_hash = hash_str(&format!(
        "{}\n{}\n{}",
        config_map
            .data
            .as_ref()
            .and_then(|d| d.get(CONFIG_KEY))
            .map_or("", |s| s),
        hash_str(input.admin_token),
        hash_str(&format!(
            "{}\n{}",
            input.api_keys.read, input.api_keys.write
        ))
    ));
    let secret = config::admin_secret(&r, &owner, input.admin_token);
    let api_secret = api_keys::api_secret(&r, &owner, input.api_keys);
    let https = tls::secret_name(input.db).is_some();
    let headless_service = network::headless_service(&r, &owner, https);
    let service = network::client_service(&r, &owner, https);
    let statefulset = statefulset::statefulset(input, &r, &owner, &config_hash);
    let pdb = pdb::pdb(input.db, &r, &owner);
    let network_policy =
        network_policy::network_policy(input.db, &r, &owner, input.operator_namespace);
    let service_monitor = input.service_monitor_crd.then(|| {
        monitoring::service_monitor(
            &r,
            &owner,
            tls::secret_name(input.db).map(|s| (s, tls::ca_key(input.tls_secret))),
        )
    });
    Ok(Desired {
        config_map,
        secret,
        api_secret,
        headless_service,
        service,
        statefulset,
        pdb,
        network_policy,
        service_monitor,
    })
}

/// Controller owner reference to the InstantDb.
pub fn owner_reference(db: &InstantDb) -> Result<OwnerReference> {
    db.controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("metadata.uid"))
}

/// Labels every object of an instance carries.
pub fn labels(r: &Resolved, component: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(&r.name, component);
    l.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    l.insert("app.kubernetes.io/part-of".into(), "instant-db".into());
    l.insert("app.kubernetes.io/version".into(), r.version.clone());
    l
}

/// The subset of labels used in selectors (never changes for a given instance).
pub fn selector_labels(name: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "instant-db".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), name.to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
    ])
}

/// Metadata of an owned object.
pub(crate) fn meta(
    r: &Resolved,
    owner: &OwnerReference,
    name: String,
    component: &str,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(r.namespace.clone()),
        labels: Some(labels(r, component)),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

/// Names of the owned objects.
pub mod names {
    /// ConfigMap with the engine config.
    pub fn config_map(name: &str) -> String {
        format!("{name}-config")
    }
    /// Secret with the admin token.
    pub fn admin_secret(name: &str) -> String {
        format!("{name}-admin")
    }
    /// Secret with the object-store credentials the engine reads by reference.
    pub fn storage_credentials_secret(name: &str) -> String {
        format!("{name}-storage-credentials")
    }
    /// Secret with the API keys (`read`, `write`).
    pub fn api_secret(name: &str) -> String {
        format!("{name}-api")
    }
    /// Headless Service.
    pub fn headless_service(name: &str) -> String {
        format!("{name}-headless")
    }
    /// Client Service, StatefulSet, PDB and ServiceMonitor share the instance name.
    pub fn primary(name: &str) -> String {
        name.to_string()
    }
    /// PVC of the engine pod.
    pub fn data_pvc(name: &str) -> String {
        format!("{}-{name}-0", super::DATA_VOLUME)
    }
    /// The engine pod.
    pub fn pod(name: &str) -> String {
        format!("{name}-0")
    }
    /// DNS name of the engine pod through the headless Service: the name the operator checks
    /// on the engine's certificate (it connects to the pod IP).
    pub fn pod_dns(name: &str, namespace: &str) -> String {
        format!("{}.{}.{namespace}.svc", pod(name), headless_service(name))
    }
}

/// Where the engine pod mounts the claims of volume backup destinations.
pub const BACKUP_MOUNT_ROOT: &str = "/backups";

/// Mount path of a volume destination's claim in the engine pod: `/backups/<claimName>`.
pub fn backup_mount_path(claim: &str) -> String {
    format!("{BACKUP_MOUNT_ROOT}/{claim}")
}

/// In-cluster URL of the client Service (`https://` with `spec.tls`).
pub fn endpoint(name: &str, namespace: &str, https: bool) -> String {
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{name}.{namespace}.svc:{}", ENGINE_PORT)
}

/// Hex SHA-256 (first 16 bytes) of a string.
pub fn hash_str(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    hex::encode(&digest[..16])
}

/// Hash of an object as serialized to JSON (keys in a fixed order).
pub fn hash_object<T: serde::Serialize>(obj: &T) -> Result<String> {
    let v = serde_json::to_value(obj)?;
    Ok(hash_str(&v.to_string()))
}

/// Stores the applied-hash annotation in `meta`.
pub fn set_hash(meta: &mut ObjectMeta, hash: String) {
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_ANNOTATION.into(), hash);
}

/// Reads the applied-hash annotation of any object.
pub fn applied_hash<K: ResourceExt>(obj: &K) -> Option<&str> {
    obj.annotations().get(HASH_ANNOTATION).map(String::as_str)
}

/// Tag of an image reference (`latest` when there is none; the digest when pinned by digest).
pub fn image_tag(image: &str) -> String {
    if let Some((_, digest)) = image.split_once('@') {
        return digest
            .chars()
            .take(63)
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-' || *c == '_')
            .collect();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag.chars().take(63).collect(),
        _ => "latest".into(),
    }
}

/// Parses durations such as `90s`, `30m`, `6h`, `1h30m`, `500ms` (rounded down to seconds).
pub fn parse_duration_secs(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('d') {
            (86_400_000, 1)
        } else {
            return None;
        };
        total_ms = total_ms.checked_add(n.checked_mul(unit_ms)?)?;
        rest = &rest[len..];
    }
    Some(total_ms / 1000)
}

#[cfg(test)]
mod tests;
