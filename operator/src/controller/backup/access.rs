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
