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
/// only into a volume without a database; see the engine's `bootstrap` module). The URL
/// names the credentials Secret, never a credential: the engine reads them from the mounted
/// storage-credentials Secret.
pub fn bootstrap_container(engine: &Container, archive_url: &str) -> Container {
    Container {
        name: BOOTSTRAP_CONTAINER.into(),
        args: Some(
            [
                "restore",
                "--bootstrap",
                "--from",
                archive_url,
                "--data-dir",
                "/data",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ports: None,
        liveness_probe: None,
        readiness_probe: None,
        startup_probe: None,
        ..engine.clone()
    }
}
