//! The engine pod's parts for backups beyond the object store: the claims of volume
//! destinations, mounted read-write at `/backups/<claimName>` (the engine writes and prunes
//! archives there as in a directory), and the bootstrap init container that restores a
//! backup into a new instance's empty volume before the engine starts.

use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaimVolumeSource, Volume, VolumeMount,
};

use super::{backup_mount_path, hash_str};

/// Name of the init container that restores a bootstrap backup.
pub const BOOTSTRAP_CONTAINER: &str = "bootstrap";

/// Where the kubelet takes a container's termination message from (the default
/// `terminationMessagePath`): the bootstrap writes its report there, so the operator reads
/// from the pod status whether it restored (and how many documents) or kept existing data.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// Volume name of a backup claim: `backup-` and a hash of the claim name (a claim name may be
/// longer than a volume name may be, and may hold dots).
pub fn volume_name(claim: &str) -> String {
    format!("backup-{}", &hash_str(claim)[..16])
}

/// A volume and its mount for each claim.
pub fn claim_volumes(claims: &[String]) -> (Vec<Volume>, Vec<VolumeMount>) {
    claims
        .iter()
        .map(|claim| {
            (
                Volume {
                    name: volume_name(claim),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: claim.clone(),
                        read_only: Some(false),
                    }),
                    ..Default::default()
                },
                VolumeMount {
                    name: volume_name(claim),
                    mount_path: backup_mount_path(claim),
                    ..Default::default()
                },
            )
        })
        .unzip()
}

/// The init container: the engine container's image, environment, mounts, resources and
/// security context, running `instant-db restore --bootstrap --from <archive URL>` (restores
/// only into a volume without a database; see the engine's `bootstrap` module), with
/// `--to-time <target>` for a point-in-time bootstrap (the URL is then the destination
/// folder). The URL names the credentials Secret, never a credential: the engine reads them
/// from the mounted storage-credentials Secret.
pub fn bootstrap_container(
    engine: &Container,
    archive_url: &str,
    to_time: Option<&str>,
) -> Container {
    let mut args: Vec<String> = [
        "restore",
        "--bootstrap",
        "--from",
        archive_url,
        "--data-dir",
        "/data",
        "--report-file",
        TERMINATION_LOG,
    ]
    .map(String::from)
    .to_vec();
    if let Some(t) = to_time {
        args.extend(["--to-time".to_string(), t.to_string()]);
    }
    Container {
        name: BOOTSTRAP_CONTAINER.into(),
        args: Some(args),
        ports: None,
        liveness_probe: None,
        readiness_probe: None,
        startup_probe: None,
        ..engine.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::builders::{ApiKeys, BuildInput, desired};
    use serde_json::json;

    fn pod_of(
        bootstrap_from: Option<&str>,
        claims: &[String],
    ) -> k8s_openapi::api::core::v1::PodSpec {
        pod_to(bootstrap_from, None, claims)
    }

    fn pod_to(
        bootstrap_from: Option<&str>,
        to_time: Option<&str>,
        claims: &[String],
    ) -> k8s_openapi::api::core::v1::PodSpec {
        let db = crate::builders::tests::db(json!({"storage": {"size": "1Gi"}}));
        let keys = ApiKeys {
            read: "test-read-key-0123456789".into(),
            write: "test-write-key-0123456789".into(),
        };
        let d = desired(&BuildInput {
            db: &db,
            default_image: "ghcr.io/instant-db/instant-db:0.1.0",
            admin_token: "test-token",
            api_keys: &keys,
            operator_namespace: "idb-system",
            service_monitor_crd: false,
            existing_claim_templates: None,
            tls_secret: None,
            bootstrap_from,
            backup_claims: claims,
            bootstrap_to_time: to_time,
            archive: None,
        })
        .unwrap();
        d.statefulset.spec.unwrap().template.spec.unwrap()
    }

    const URL: &str = "s3://b/prod/docs/nightly-1.tar.gz?region=us-east-1&credentials=prod-creds";

    #[test]
    fn the_bootstrap_init_container_restores_the_archive_into_the_data_volume_as_the_engine_would_run()
     {
        assert!(pod_of(None, &[]).init_containers.is_none());
        let pod = pod_of(Some(URL), &[]);
        let engine = &pod.containers[0];
        let init = &pod.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.name, "bootstrap");
        assert_eq!(init.command, engine.command);
        assert_eq!(
            init.args.clone().unwrap(),
            [
                "restore",
                "--bootstrap",
                "--from",
                URL,
                "--data-dir",
                "/data",
                "--report-file",
                "/dev/termination-log"
            ]
        );
        // same image, environment (config, credentials directory default), mounts (data,
        // storage credentials), resources and restricted security context as the engine
        assert_eq!(
            (
                &init.image,
                &init.env,
                &init.volume_mounts,
                &init.resources,
                &init.security_context
            ),
            (
                &engine.image,
                &engine.env,
                &engine.volume_mounts,
                &engine.resources,
                &engine.security_context
            )
        );
        let mounts: Vec<_> = init
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert!(mounts.contains(&"/data") && mounts.contains(&"/etc/instant-db-credentials"));
        assert!(
            init.liveness_probe.is_none() && init.startup_probe.is_none() && init.ports.is_none()
        );
        for secret in ["AWS_SECRET_ACCESS_KEY", "secret_access_key"] {
            assert!(!serde_json::to_string(init).unwrap().contains(secret));
        }
    }

    #[test]
    fn a_point_in_time_bootstrap_adds_the_target_time_to_the_restore_command() {
        let folder = "s3://b/prod/docs?region=us-east-1&credentials=prod-creds";
        let pod = pod_to(Some(folder), Some("2026-12-02T05:00:00Z"), &[]);
        let init = &pod.init_containers.as_ref().unwrap()[0];
        let args = init.args.clone().unwrap();
        assert_eq!(&args[..4], ["restore", "--bootstrap", "--from", folder]);
        assert_eq!(
            &args[args.len() - 2..],
            ["--to-time", "2026-12-02T05:00:00Z"]
        );
        // without one, no flag (a snapshot bootstrap as before)
        let pod = pod_to(Some(URL), None, &[]);
        let args = pod.init_containers.unwrap()[0].args.clone().unwrap();
        assert!(!args.iter().any(|a| a == "--to-time"), "{args:?}");
    }

    #[test]
    fn each_backup_claim_is_mounted_read_write_under_backups() {
        let claims = vec!["nightly-pvc".to_string(), "shared.backups".to_string()];
        let pod = pod_of(None, &claims);
        for claim in &claims {
            let v = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|p| &p.claim_name == claim)
                })
                .unwrap();
            assert!(v.name.len() <= 63 && !v.name.contains('.'), "{}", v.name);
            assert_eq!(
                v.persistent_volume_claim.as_ref().unwrap().read_only,
                Some(false)
            );
            let m = pod.containers[0]
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.name == v.name)
                .unwrap();
            assert_eq!(m.mount_path, format!("/backups/{claim}"));
            assert_ne!(m.read_only, Some(true));
        }
        // the bootstrap reads a volume backup through the same mount
        let pod = pod_of(Some("file:///backups/nightly-pvc/x/b.tar.gz"), &claims);
        assert_eq!(
            pod.init_containers.unwrap()[0].volume_mounts,
            pod.containers[0].volume_mounts
        );
    }
}
