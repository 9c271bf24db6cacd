//! What a backup, a restore or an archive deletion needs before the engine can be asked: the
//! destination, the engine pod's address and admin token. Missing parts are [`NotReady`]; API
//! errors are errors (retried with backoff).

use instant_db_crds::InstantDb;
use instant_db_crds::backup::{BackupDestination, InstantDbBackup, InstantDbBackupPolicy};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;

use crate::builders::{ADMIN_TOKEN_KEY, names, tls};
use crate::controller::Context;
use crate::engine_client::EngineTarget;
use crate::error::Result;

/// Why a backup (or a restore) cannot start yet (Pending) or at all (Failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NotReady {
    /// Waiting for something that may still come; the text says what.
    Pending(String),
    /// Cannot work as specified; the text says why.
    Failed(String),
}

/// Where a backup that has not started yet goes: `spec.destination`, else the destination of
/// the policy named in `spec.policy` *as it is now*. Once the backup starts, its resolved
/// destination is recorded in `status.destination` and this is never asked again.
pub(crate) async fn destination(
    backup: &InstantDbBackup,
    ctx: &Context,
    ns: &str,
) -> Result<std::result::Result<BackupDestination, NotReady>> {
    if let Some(d) = &backup.spec.destination {
        return Ok(Ok(d.clone()));
    }
    let Some(policy) = &backup.spec.policy else {
        return Ok(Err(NotReady::Failed(
            "spec.destination is not set and spec.policy names no policy to take it from".into(),
        )));
    };
    let policies: Api<InstantDbBackupPolicy> = Api::namespaced(ctx.client.clone(), ns);
    Ok(match policies.get_opt(policy).await? {
        Some(p) => Ok(p.spec.destination),
        None => Err(NotReady::Pending(format!(
            "InstantDbBackupPolicy {policy} (spec.policy) not found"
        ))),
    })
}

/// Whether `pod` mounts `claim` where volume destinations expect it (`/backups/<claim>`).
pub fn mounts_claim(pod: &Pod, claim: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let volume = spec.volumes.iter().flatten().find(|v| {
        v.persistent_volume_claim
            .as_ref()
            .is_some_and(|p| p.claim_name == claim)
    });
    let path = crate::builders::backup_mount_path(claim);
    volume.is_some_and(|v| {
        spec.containers.iter().any(|c| {
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.name == v.name && m.mount_path == path)
        })
    })
}

/// For a volume destination: why the engine cannot write there yet (its pod does not mount
/// the claim), None when it can or the destination is not a volume.
pub(crate) async fn claim_wait(
    ctx: &Context,
    ns: &str,
    instance: &str,
    destination: &BackupDestination,
) -> Result<Option<String>> {
    let Some(claim) = super::plan::claim_name(destination) else {
        return Ok(None);
    };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let pod_name = names::pod(instance);
    let pod = pods.get_opt(&pod_name).await?;
    if pod.as_ref().is_some_and(|p| mounts_claim(p, claim)) {
        return Ok(None);
    }
    Ok(Some(format!(
        "waiting for the engine pod {pod_name} to mount PersistentVolumeClaim {claim} at {}:          the operator adds it to the StatefulSet once the claim exists (the engine restarts          once to mount it); create the claim in this namespace if it does not exist",
        crate::builders::backup_mount_path(claim)
    )))
}

/// The engine pod (its IP, and with `spec.tls` the CA and name to verify) and the admin token,
/// or why they are not there yet. Readiness is not required: an engine whose data is damaged is
/// unready but still serves `/admin/*`.
pub(crate) async fn engine_access(
    ctx: &Context,
    ns: &str,
    instance: &str,
) -> Result<std::result::Result<(EngineTarget, String), String>> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let pod_name = names::pod(instance);
    let Some(ip) = pods
        .get_opt(&pod_name)
        .await?
        .and_then(|p| p.status)
        .and_then(|s| s.pod_ip)
    else {
        return Ok(Err(format!("engine pod {pod_name} is not running yet")));
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let dbs: Api<InstantDb> = Api::namespaced(ctx.client.clone(), ns);
    // Without the InstantDb (deleted under a running backup) there is no spec.tls to follow:
    // the call goes out as plain HTTP, which an HTTPS engine refuses, and the caller reports it.
    let target = match dbs.get_opt(instance).await? {
        Some(db) => {
            let tls_secret = match tls::secret_name(&db) {
                Some(name) => secrets.get_opt(name).await?,
                None => None,
            };
            match tls::engine_target(&db, ip, tls_secret.as_ref()) {
                Ok(t) => t,
                Err(why) => return Ok(Err(why)),
            }
        }
        None => EngineTarget::http(ip),
    };
    let secret_name = names::admin_secret(instance);
    let token = secrets
        .get_opt(&secret_name)
        .await?
        .and_then(|s| s.data)
        .and_then(|d| d.get(ADMIN_TOKEN_KEY).cloned())
        .and_then(|b| String::from_utf8(b.0).ok())
        .filter(|t| !t.is_empty());
    Ok(match token {
        Some(token) => Ok((target, token)),
        None => Err(format!("admin Secret {secret_name} has no token yet")),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_claim_counts_as_mounted_only_at_its_backups_path_in_a_container() {
        let pod = |path: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "docs-0"}, "spec": {
                "volumes": [{"name": "backup-1", "persistentVolumeClaim": {"claimName": "nightly"}}],
                "containers": [{"name": "engine", "volumeMounts": [{"name": "backup-1", "mountPath": path}]}]}}))
            .unwrap()
        };
        assert!(mounts_claim(&pod("/backups/nightly"), "nightly"));
        assert!(!mounts_claim(&pod("/elsewhere"), "nightly"));
        assert!(!mounts_claim(&pod("/backups/nightly"), "other"));
    }
}
