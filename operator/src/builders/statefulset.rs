//! The engine StatefulSet.

use std::collections::BTreeMap;

use instant_db_crds::DeletionPolicy;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecretProjection,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount, VolumeProjection,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    ADMIN_TOKEN_KEY, API_KEYS_DIR, BuildInput, CONFIG_HASH_ANNOTATION, CONFIG_KEY, DATA_VOLUME,
    DEFAULT_CPU_REQUEST, DEFAULT_MEMORY_LIMIT, DEFAULT_MEMORY_REQUEST, ENGINE_PORT, LOG_LEVEL_KEY,
    READ_KEY, Resolved, WRITE_KEY, labels, meta, names, selector_labels,
};

/// UID and GID the engine runs as (non-root; the data volume is group-owned via fsGroup).
pub const ENGINE_UID: i64 = 65532;

/// An HTTP(S) probe; the kubelet does not verify the certificate of an HTTPS probe.
fn probe(path: &str, https: bool, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            scheme: https.then(|| "HTTPS".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(3),
        ..Default::default()
    }
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(DEFAULT_CPU_REQUEST.into())),
            (
                "memory".to_string(),
                Quantity(DEFAULT_MEMORY_REQUEST.into()),
            ),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity(DEFAULT_MEMORY_LIMIT.into()),
        )])),
        ..Default::default()
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn container_env(input: &BuildInput<'_>) -> Vec<EnvVar> {
    let spec = &input.db.spec;
    let mut v = vec![
        env("INSTANT_DB_CONFIG", format!("/etc/instant-db/{CONFIG_KEY}")),
        env(
            "INSTANT_DB_ADMIN_TOKEN_FILE",
            format!("/etc/instant-db/admin/{ADMIN_TOKEN_KEY}"),
        ),
        env("INSTANT_DB_API_KEYS_DIR", API_KEYS_DIR),
        env("INSTANT_DB_DATA_DIR", "/data"),
        env("TMPDIR", "/tmp"),
    ];
    if super::tls::secret_name(input.db).is_some() {
        use super::tls::{CERT_KEY, KEY_KEY, TLS_DIR};
        v.push(env("INSTANT_DB_TLS_CERT", format!("{TLS_DIR}/{CERT_KEY}")));
        v.push(env("INSTANT_DB_TLS_KEY", format!("{TLS_DIR}/{KEY_KEY}")));
    }
    if let Some(otel) = &spec.otel
        && otel.endpoint.is_some()
    {
        v.push(env(
            "OTEL_SERVICE_NAME",
            otel.service_name
                .clone()
                .unwrap_or_else(|| "instant-db".into()),
        ));
        if let Some(ratio) = otel.sampling_ratio {
            v.push(env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"));
            v.push(env("OTEL_TRACES_SAMPLER_ARG", ratio.to_string()));
        }
    }
    if let Some(q) = spec.vector_store.as_ref().and_then(|vs| vs.qdrant.as_ref()) {
        v.push(env("INSTANT_DB_VECTOR_STORE", "qdrant"));
        v.push(env("INSTANT_DB_QDRANT_URL", q.url.clone()));
        let collection = q
            .collection
            .clone()
            .unwrap_or_else(|| input.db.metadata.name.clone().unwrap_or_default());
        v.push(env("INSTANT_DB_QDRANT_COLLECTION", collection));
        if let Some(sel) = &q.api_key_secret {
            v.push(EnvVar {
                name: "INSTANT_DB_QDRANT_API_KEY".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(sel.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    v
}

fn claim_templates(r: &Resolved, input: &BuildInput<'_>) -> Vec<PersistentVolumeClaim> {
    if let Some(existing) = &input.existing_claim_templates
        && !existing.is_empty()
    {
        // volumeClaimTemplates are immutable: keep what exists; size changes go to the PVC.
        return existing
            .iter()
            .map(|pvc| PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: pvc.metadata.name.clone(),
                    labels: pvc.metadata.labels.clone(),
                    ..Default::default()
                },
                spec: pvc.spec.as_ref().map(|s| PersistentVolumeClaimSpec {
                    access_modes: s.access_modes.clone(),
                    storage_class_name: s.storage_class_name.clone(),
                    resources: s.resources.clone(),
                    volume_mode: s.volume_mode.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
    }
    vec![PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.into()),
            labels: Some(selector_labels(&r.name, "engine")),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: input.db.spec.storage.storage_class_name.clone(),
            volume_mode: Some("Filesystem".into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(r.storage_size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }]
}

/// The StatefulSet: one replica (zero when suspended), restricted security context.
pub fn statefulset(
    input: &BuildInput<'_>,
    r: &Resolved,
    owner: &OwnerReference,
    config_hash: &str,
) -> StatefulSet {
    let spec = &input.db.spec;
    let overrides = spec.pod_template.clone().unwrap_or_default();
    let mut mounts = vec![
        VolumeMount {
            name: DATA_VOLUME.into(),
            mount_path: "/data".into(),
            ..Default::default()
        },
        // One projected volume: config.yaml, admin/token and api/{read,write} (nested mounts
        // into a read-only configMap volume would fail).
        VolumeMount {
            name: "config".into(),
            mount_path: "/etc/instant-db".into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        },
    ];
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o440),
                sources: Some(vec![
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: names::config_map(&r.name),
                            items: Some(vec![
                                KeyToPath {
                                    key: CONFIG_KEY.into(),
                                    path: CONFIG_KEY.into(),
                                    mode: None,
                                },
                                // Followed by the running engine: a new level is no restart.
                                KeyToPath {
                                    key: LOG_LEVEL_KEY.into(),
                                    path: LOG_LEVEL_KEY.into(),
                                    mode: None,
                                },
                            ]),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        secret: Some(SecretProjection {
                            name: names::admin_secret(&r.name),
                            items: Some(vec![KeyToPath {
                                key: ADMIN_TOKEN_KEY.into(),
                                path: format!("admin/{ADMIN_TOKEN_KEY}"),
                                mode: None,
                            }]),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        secret: Some(SecretProjection {
                            name: names::api_secret(&r.name),
                            items: Some(
                                [READ_KEY, WRITE_KEY]
                                    .into_iter()
                                    .map(|k| KeyToPath {
                                        key: k.into(),
                                        path: format!("api/{k}"),
                                        mode: None,
                                    })
                                    .collect(),
                            ),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("1Gi".into())),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    // Whole Secret, no `items`: the kubelet updates it in the running pod, so a new backup
    // destination never restarts the engine. Optional: it exists once a backup needs it.
    volumes.push(Volume {
        name: super::storage_credentials::CREDENTIALS_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(names::storage_credentials_secret(&r.name)),
            optional: Some(true),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    });
    mounts.push(VolumeMount {
        name: super::storage_credentials::CREDENTIALS_VOLUME.into(),
        mount_path: super::storage_credentials::CREDENTIALS_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    });
    let tls_secret = super::tls::secret_name(input.db);
    let https = tls_secret.is_some();
    if let Some(secret) = tls_secret {
        // Whole Secret, no `items`: a renewed certificate reaches the running pod (the engine
        // re-reads it). Not optional: without it the engine could not serve what it was asked to.
        volumes.push(Volume {
            name: super::tls::TLS_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.to_string()),
                optional: Some(false),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: super::tls::TLS_VOLUME.into(),
            mount_path: super::tls::TLS_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    if let Some(src) = spec
        .embedding
        .as_ref()
        .and_then(|e| e.model_source.as_ref())
    {
        volumes.push(Volume {
            name: "models".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: src.claim_name.clone(),
                read_only: Some(true),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "models".into(),
            mount_path: "/models".into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    let (claim_volumes, claim_mounts) = super::backup_volumes::claim_volumes(input.backup_claims);
    volumes.extend(claim_volumes);
    mounts.extend(claim_mounts);
    let container = Container {
        name: super::ENGINE_CONTAINER.into(),
        image: Some(r.image.clone()),
        image_pull_policy: Some(
            if r.version == "latest" {
                "Always"
            } else {
                "IfNotPresent"
            }
            .into(),
        ),
        command: Some(vec!["instant-db".into()]),
        args: Some(vec![
            "serve".into(),
            "--listen".into(),
            format!("0.0.0.0:{ENGINE_PORT}"),
            "--data-dir".into(),
            "/data".into(),
        ]),
        env: Some(container_env(input)),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: ENGINE_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        liveness_probe: Some(probe("/health/live", https, 10, 3)),
        readiness_probe: Some(probe("/health/ready", https, 5, 3)),
        startup_probe: Some(probe("/health/live", https, 5, 60)),
        resources: Some(spec.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(ENGINE_UID),
            run_as_group: Some(ENGINE_UID),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    let mut pod_labels = labels(r, "engine");
    pod_labels.remove("app.kubernetes.io/managed-by");
    let pod = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH_ANNOTATION.to_string(),
                config_hash.to_string(),
            )])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            init_containers: input.bootstrap_from.map(|url| {
                vec![super::backup_volumes::bootstrap_container(
                    &container,
                    url,
                    input.bootstrap_to_time,
                )]
            }),
            containers: vec![container],
            volumes: Some(volumes),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(30),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(ENGINE_UID),
                run_as_group: Some(ENGINE_UID),
                fs_group: Some(ENGINE_UID),
                fs_group_change_policy: Some("OnRootMismatch".into()),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            node_selector: overrides.node_selector,
            tolerations: overrides.tolerations,
            affinity: overrides.affinity,
            // The token stays unmounted (the engine never calls the API server); identity
            // webhooks (EKS IRSA, Azure workload identity) project their own token.
            service_account_name: overrides.service_account_name,
            ..Default::default()
        }),
    };
    let when_deleted = match r.deletion_policy {
        DeletionPolicy::Retain => "Retain",
        DeletionPolicy::Delete => "Delete",
    };
    StatefulSet {
        metadata: meta(r, owner, names::primary(&r.name), "engine"),
        spec: Some(StatefulSetSpec {
            replicas: Some(if r.suspend { 0 } else { 1 }),
            service_name: Some(names::headless_service(&r.name)),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&r.name, "engine")),
                ..Default::default()
            },
            template: pod,
            volume_claim_templates: Some(claim_templates(r, input)),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(when_deleted.into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            pod_management_policy: Some("OrderedReady".into()),
            revision_history_limit: Some(5),
            ..Default::default()
        }),
        ..Default::default()
    }
}
