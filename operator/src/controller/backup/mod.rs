//! The InstantDbBackup controller: one backup, taken online by the instance's engine
//! (`POST /admin/backups`) and followed until it is stored (`GET /admin/backups/{id}`).
//!
//! observe (the backup, its instance, the engine pod, the Secrets) → decide (`plan`, pure) →
//! start or poll the engine job → status. A finished backup (Completed or Failed) is never looked
//! at again: its spec is immutable, so a new attempt is a new object. Missing or not-yet-ready
//! parts (instance absent or suspended, pod without IP, Secret missing) keep it Pending with a
//! `message` and a slow requeue; a destination that cannot work fails it at once.

pub mod plan;

use std::sync::Arc;
use std::time::{Duration, Instant};

use instant_db_crds::InstantDb;
use instant_db_crds::backup::{
    BackupDestination, InstantDbBackup, InstantDbBackupPolicy, InstantDbBackupStatus,
};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::Context;
use crate::builders::{ADMIN_TOKEN_KEY, names};
use crate::engine_client::BackupJobStatus;
use crate::error::{Error, Result};
use plan::S3Credentials;

const CONTROLLER: &str = "instantdbbackup";
/// Finalizer of the backups a policy makes: deleting the object (retention) deletes its
/// archive too.
pub const ARCHIVE_FINALIZER: &str = "instantdb.io/delete-archive";
/// How often a running backup is polled.
pub const POLL_RUNNING: Duration = Duration::from_secs(5);
/// How often a pending backup looks again for what it waits for.
pub const RETRY_PENDING: Duration = Duration::from_secs(30);

/// Reconciles one InstantDbBackup.
pub async fn reconcile(backup: Arc<InstantDbBackup>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let res = reconcile_inner(&backup, &ctx).await;
    ctx.record_reconcile(
        CONTROLLER,
        &super::backoff_key(backup.as_ref()),
        start,
        &res,
    );
    res
}

/// What the engine call needs, once everything the backup depends on is there.
struct Ready {
    pod_ip: String,
    token: String,
    url: String,
}

/// Why a backup (or a restore) cannot start yet (Pending) or at all (Failed).
pub(crate) enum NotReady {
    /// Waiting for something that may still come; the text says what.
    Pending(String),
    /// Cannot work as specified; the text says why.
    Failed(String),
}

async fn reconcile_inner(backup: &InstantDbBackup, ctx: &Context) -> Result<Action> {
    if backup.metadata.deletion_timestamp.is_some() {
        return delete_archive(backup, ctx).await;
    }
    if plan::is_finished(backup.status.as_ref()) {
        return Ok(Action::await_change());
    }
    let ns = backup
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<InstantDbBackup> = Api::namespaced(ctx.client.clone(), &ns);
    let generation = backup.metadata.generation;
    let current = backup.status.as_ref();
    let now = Timestamp::now();

    if let Some(id) = current.and_then(|s| s.backup_id.clone()) {
        return poll(backup, ctx, &api, &ns, &id, now).await;
    }
    let ready = match prepare(backup, ctx, &ns).await? {
        Ok(ready) => ready,
        Err(NotReady::Pending(message)) => {
            let status = plan::pending(current, generation, message.clone());
            if write_status(&api, backup, &status, ctx).await? {
                event(ctx, backup, EventType::Normal, "Waiting", message).await;
            }
            return Ok(Action::requeue(RETRY_PENDING));
        }
        Err(NotReady::Failed(error)) => {
            let status = plan::failed(current, generation, error.clone(), now);
            write_status(&api, backup, &status, ctx).await?;
            event(ctx, backup, EventType::Warning, "BackupFailed", error).await;
            return Ok(Action::await_change());
        }
    };
    let id = plan::backup_id(backup);
    match ctx
        .engine
        .start_backup(&ready.pod_ip, &ready.token, &ready.url, &id)
        .await
    {
        // Already known: a start sent before the operator could record it.
        Ok(_) | Err(Error::BackupIdInUse(_)) => {}
        Err(e) => return Err(e),
    }
    let status = plan::started(current, generation, id.clone(), now);
    write_status(&api, backup, &status, ctx).await?;
    event(
        ctx,
        backup,
        EventType::Normal,
        "BackupStarted",
        format!("the engine of {} started backup {id}", backup.spec.instance),
    )
    .await;
    Ok(Action::requeue(POLL_RUNNING))
}

/// Follows a started backup until the engine reports it finished.
async fn poll(
    backup: &InstantDbBackup,
    ctx: &Context,
    api: &Api<InstantDbBackup>,
    ns: &str,
    id: &str,
    now: Timestamp,
) -> Result<Action> {
    let current = backup.status.clone().unwrap_or_default();
    let instance = &backup.spec.instance;
    let (pod_ip, token) = match engine_access(ctx, ns, instance).await? {
        Ok(access) => access,
        // The pod went away mid-backup: the engine's job went with it.
        Err(reason) => {
            let error = format!(
                "the engine stopped during the backup ({reason}); create a new InstantDbBackup"
            );
            return fail(backup, ctx, api, error, now).await;
        }
    };
    let Some(job) = ctx.engine.backup_job(&pod_ip, &token, id).await? else {
        let error = format!(
            "the engine of {instance} no longer knows backup {id} (it restarted during the \
             backup); create a new InstantDbBackup"
        );
        return fail(backup, ctx, api, error, now).await;
    };
    let status = plan::from_job(&current, &job, now);
    write_status(api, backup, &status, ctx).await?;
    match job.status {
        BackupJobStatus::Completed => {
            let note = format!(
                "backup {id} of {instance} completed: {} documents, {} bytes at {}",
                status.document_count.unwrap_or_default(),
                status.size_bytes.unwrap_or_default(),
                status.location.as_deref().unwrap_or("?")
            );
            event(ctx, backup, EventType::Normal, "BackupCompleted", note).await;
            Ok(Action::await_change())
        }
        BackupJobStatus::Failed => {
            let note = format!(
                "backup {id} of {instance} failed: {}",
                status.error.as_deref().unwrap_or("no reason given")
            );
            event(ctx, backup, EventType::Warning, "BackupFailed", note).await;
            Ok(Action::await_change())
        }
        BackupJobStatus::Running | BackupJobStatus::Unknown => Ok(Action::requeue(POLL_RUNNING)),
    }
}

/// A deleted backup with [`ARCHIVE_FINALIZER`]: the engine deletes its archive, then the
/// finalizer is removed. When the archive cannot be reached any more (the instance, its policy or
/// the credentials are gone) the object is let go with a Warning that the archive stays; while
/// the instance exists but its engine is not running, it waits.
async fn delete_archive(backup: &InstantDbBackup, ctx: &Context) -> Result<Action> {
    if !backup.finalizers().iter().any(|f| f == ARCHIVE_FINALIZER) {
        return Ok(Action::await_change());
    }
    let ns = backup
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let instance = &backup.spec.instance;
    let note = match backup.status.as_ref().and_then(|s| s.backup_id.clone()) {
        None => None,
        Some(id) => match archive_folder(backup, ctx, &ns).await? {
            Err(why) => Some((
                EventType::Warning,
                "ArchiveKept",
                format!("the archive of backup {id} stays in storage: {why}"),
            )),
            Ok(folder) => match engine_access(ctx, &ns, instance).await? {
                Ok((ip, token)) => {
                    let deleted = ctx.engine.delete_backup(&ip, &token, &folder, &id).await?;
                    let what = if deleted {
                        "deleted"
                    } else {
                        "was already gone"
                    };
                    Some((
                        EventType::Normal,
                        "ArchiveDeleted",
                        format!("the archive of backup {id} {what}"),
                    ))
                }
                Err(reason) => {
                    let dbs: Api<InstantDb> = Api::namespaced(ctx.client.clone(), &ns);
                    if dbs.get_opt(instance).await?.is_some() {
                        event(
                            ctx,
                            backup,
                            EventType::Normal,
                            "Waiting",
                            format!("the archive is deleted once the engine runs again: {reason}"),
                        )
                        .await;
                        return Ok(Action::requeue(RETRY_PENDING));
                    }
                    Some((
                        EventType::Warning,
                        "ArchiveKept",
                        format!(
                            "the archive of backup {id} stays in storage: InstantDb {instance} is gone"
                        ),
                    ))
                }
            },
        },
    };
    if let Some((type_, reason, message)) = note {
        event(ctx, backup, type_, reason, message).await;
    }
    let remaining: Vec<String> = backup
        .finalizers()
        .iter()
        .filter(|f| *f != ARCHIVE_FINALIZER)
        .cloned()
        .collect();
    let api: Api<InstantDbBackup> = Api::namespaced(ctx.client.clone(), &ns);
    api.patch(
        &backup.name_any(),
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": remaining}})),
    )
    .await?;
    ctx.metrics
        .writes
        .with_label_values(&[CONTROLLER, "InstantDbBackup", "finalizer"])
        .inc();
    Ok(Action::await_change())
}

/// The engine's URL of the folder holding the backup's archive, or why it cannot be known.
async fn archive_folder(
    backup: &InstantDbBackup,
    ctx: &Context,
    ns: &str,
) -> Result<std::result::Result<String, String>> {
    let dest = match destination(backup, ctx, ns).await? {
        Ok(d) => d,
        Err(NotReady::Pending(why) | NotReady::Failed(why)) => return Ok(Err(why)),
    };
    let credentials = match s3_credentials(ctx, ns, &dest).await? {
        Ok(c) => c,
        Err(NotReady::Pending(why) | NotReady::Failed(why)) => return Ok(Err(why)),
    };
    Ok(plan::destination_url(
        &dest,
        ns,
        &backup.spec.instance,
        &credentials,
    ))
}

async fn fail(
    backup: &InstantDbBackup,
    ctx: &Context,
    api: &Api<InstantDbBackup>,
    error: String,
    now: Timestamp,
) -> Result<Action> {
    let status = plan::failed(
        backup.status.as_ref(),
        backup.metadata.generation,
        error.clone(),
        now,
    );
    write_status(api, backup, &status, ctx).await?;
    event(ctx, backup, EventType::Warning, "BackupFailed", error).await;
    Ok(Action::await_change())
}

/// Looks up everything the start needs: the destination (the backup's or its policy's), the
/// instance (present, not suspended), the engine pod's IP, the admin token and the S3
/// credentials. API errors are errors (retried with backoff); missing parts are `NotReady`.
async fn prepare(
    backup: &InstantDbBackup,
    ctx: &Context,
    ns: &str,
) -> Result<std::result::Result<Ready, NotReady>> {
    let instance = &backup.spec.instance;
    let destination = match destination(backup, ctx, ns).await? {
        Ok(d) => d,
        Err(not_ready) => return Ok(Err(not_ready)),
    };
    let dbs: Api<InstantDb> = Api::namespaced(ctx.client.clone(), ns);
    let Some(db) = dbs.get_opt(instance).await? else {
        return Ok(Err(NotReady::Pending(format!(
            "InstantDb {instance} not found"
        ))));
    };
    if db.spec.suspend.unwrap_or(false) {
        return Ok(Err(NotReady::Pending(format!(
            "InstantDb {instance} is suspended; backups resume when spec.suspend is false"
        ))));
    }
    let (pod_ip, token) = match engine_access(ctx, ns, instance).await? {
        Ok(access) => access,
        Err(reason) => return Ok(Err(NotReady::Pending(reason))),
    };
    let credentials = match s3_credentials(ctx, ns, &destination).await? {
        Ok(c) => c,
        Err(not_ready) => return Ok(Err(not_ready)),
    };
    Ok(
        match plan::destination_url(&destination, ns, instance, &credentials) {
            Ok(url) => Ok(Ready { pod_ip, token, url }),
            Err(e) => Err(NotReady::Failed(e)),
        },
    )
}

/// `spec.destination`, else the destination of the policy named in `spec.policy`.
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

/// The engine pod's IP and the admin token, or why they are not there yet.
pub(crate) async fn engine_access(
    ctx: &Context,
    ns: &str,
    instance: &str,
) -> Result<std::result::Result<(String, String), String>> {
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
    let secret_name = names::admin_secret(instance);
    let token = secrets
        .get_opt(&secret_name)
        .await?
        .and_then(|s| s.data)
        .and_then(|d| d.get(ADMIN_TOKEN_KEY).cloned())
        .and_then(|b| String::from_utf8(b.0).ok())
        .filter(|t| !t.is_empty());
    Ok(match token {
        Some(token) => Ok((ip, token)),
        None => Err(format!("admin Secret {secret_name} has no token yet")),
    })
}

/// The S3 credentials from `s3.credentialsSecret`.
pub(crate) async fn s3_credentials(
    ctx: &Context,
    ns: &str,
    destination: &BackupDestination,
) -> Result<std::result::Result<S3Credentials, NotReady>> {
    let Some(secret_name) = destination
        .s3
        .as_ref()
        .and_then(|s| s.credentials_secret.clone())
    else {
        // A volume destination, which `destination_url` refuses with the reason.
        return Ok(Ok(S3Credentials {
            access_key_id: String::new(),
            secret_access_key: String::new(),
            session_token: None,
        }));
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Some(secret) = secrets.get_opt(&secret_name).await? else {
        return Ok(Err(NotReady::Pending(format!(
            "credentials Secret {secret_name} not found"
        ))));
    };
    let data = secret.data.unwrap_or_default();
    let value = |key: &str| {
        data.get(key)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .filter(|v| !v.is_empty())
    };
    Ok(
        match (
            value(plan::ACCESS_KEY_ID_KEY),
            value(plan::SECRET_ACCESS_KEY_KEY),
        ) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(S3Credentials {
                access_key_id,
                secret_access_key,
                session_token: value(plan::SESSION_TOKEN_KEY),
            }),
            _ => Err(NotReady::Failed(format!(
                "credentials Secret {secret_name} needs the keys {} and {}",
                plan::ACCESS_KEY_ID_KEY,
                plan::SECRET_ACCESS_KEY_KEY
            ))),
        },
    )
}

/// Writes the status when it changed (see `controller::write_status`).
async fn write_status(
    api: &Api<InstantDbBackup>,
    backup: &InstantDbBackup,
    new: &InstantDbBackupStatus,
    ctx: &Context,
) -> Result<bool> {
    super::write_status(api, backup, backup.status.as_ref(), new, ctx, CONTROLLER).await
}

async fn event(
    ctx: &Context,
    backup: &InstantDbBackup,
    type_: EventType,
    reason: &str,
    note: String,
) {
    ctx.event(&backup.object_ref(&()), type_, reason, "Backup", note)
        .await;
}

/// Runs the InstantDbBackup controller until `stop` turns true. `namespaces` empty means all.
pub async fn run(
    ctx: Arc<Context>,
    namespaces: Vec<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    super::run_scoped(
        ctx,
        namespaces,
        stop,
        CONTROLLER,
        |client, scope| {
            Controller::new(
                super::scoped_api::<InstantDbBackup>(client, scope),
                super::primary_watch(),
            )
        },
        reconcile,
        super::error_policy,
        None,
    )
    .await;
}
