//! The InstantDbBackup controller: one backup, taken online by the instance's engine
//! (`POST /admin/backups`) and followed until it is stored (`GET /admin/backups/{id}`).
//!
//! observe (the backup, its instance, the engine pod, the other operations of the instance,
//! the Secrets) → decide (`plan`, `fence`, pure) → pin the location in status → start or poll
//! the engine job → status. A finished backup (Completed or Failed) is never looked at again:
//! its spec is immutable, so a new attempt is a new object. Missing or not-yet-ready parts
//! (instance absent or suspended, pod without IP, Secret missing, another backup or restore of
//! the instance running) keep it Pending with a `message` and a requeue; a destination that
//! cannot work fails it at once.

pub(crate) mod access;
pub mod archive;
pub(crate) mod credentials;
pub mod destination;
pub mod fence;
pub mod operation;
pub mod plan;
pub mod verification;

use std::sync::Arc;
use std::time::{Duration, Instant};

use instant_db_crds::InstantDb;
use instant_db_crds::backup::{
    BackupDestination, InstantDbBackup, InstantDbBackupStatus, InstantDbRestore, OperationPhase,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::Context;
use crate::engine_client::BackupJobStatus;
use crate::error::{Error, Result};
pub(crate) use access::{NotReady, engine_access};
pub use archive::{ARCHIVE_FINALIZER, PRUNE_ANNOTATION};

const CONTROLLER: &str = "instantdbbackup";
/// How often a running backup is polled.
pub const POLL_RUNNING: Duration = Duration::from_secs(5);
/// How often a pending backup looks again for what it waits for.
pub const RETRY_PENDING: Duration = Duration::from_secs(30);
/// How soon a backup queued behind another operation, or waiting for the kubelet to sync the
/// storage credentials into the pod, tries again.
pub const RETRY_QUEUED: Duration = Duration::from_secs(15);

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
    engine: crate::engine_client::EngineTarget,
    token: String,
    destination: BackupDestination,
    url: String,
}

async fn reconcile_inner(backup: &InstantDbBackup, ctx: &Context) -> Result<Action> {
    if backup.metadata.deletion_timestamp.is_some() {
        return archive::on_delete(backup, ctx).await;
    }
    if plan::is_finished(backup.status.as_ref())
        && !verification::is_pending(backup.status.as_ref())
    {
        return Ok(Action::await_change());
    }
    let ns = backup
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    if archive::needs_finalizer(backup) {
        // Before anything is stored, so the archive can never outlive a deletion it should not.
        archive::add_finalizer(backup, ctx, &ns).await?;
    }
    let api: Api<InstantDbBackup> = Api::namespaced(ctx.client.clone(), &ns);
    let generation = backup.metadata.generation;
    let now = Timestamp::now();

    if let Some(id) = backup.status.as_ref().and_then(|s| s.backup_id.clone()) {
        return poll(backup, ctx, &api, &ns, &id, now).await;
    }
    let ready = match prepare(backup, ctx, &ns).await? {
        Ok(ready) => ready,
        Err(NotReady::Pending(message)) => {
            return wait(backup, ctx, &api, message, RETRY_PENDING).await;
        }
        Err(NotReady::Failed(error)) => return fail(backup, ctx, &api, error, now).await,
    };
    let id = plan::backup_id(backup);
    let archive_url = plan::archive_url(&ready.url, &id).map_err(Error::Engine)?;
    // Record where it goes before the engine writes anything: from here on, restores and the
    // archive's deletion use this and nothing else.
    let mut seen = backup.clone();
    if backup.status.as_ref().and_then(|s| s.archive_url.as_ref()) != Some(&archive_url) {
        let pinned = plan::pinned(
            backup.status.as_ref(),
            generation,
            ready.destination.clone(),
            archive_url,
        );
        write_status(&api, backup, &pinned, ctx).await?;
        seen.status = Some(pinned);
    }
    match ctx
        .engine
        .start_backup(&ready.engine, &ready.token, &ready.url, &id)
        .await
    {
        // Already known: a start sent before the operator could record it.
        Ok(_) | Err(Error::BackupIdInUse(_)) => {}
        Err(e) => match engine_wait(&backup.spec.instance, &e) {
            Some(message) => return wait(&seen, ctx, &api, message, RETRY_QUEUED).await,
            None => return Err(e),
        },
    }
    let status = plan::started(seen.status.as_ref(), generation, id.clone(), now);
    write_status(&api, &seen, &status, ctx).await?;
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

/// The Pending message for an engine answer that means "not now" (another backup or restore
/// runs; the storage credentials are not in the pod yet), None for any other error.
pub(crate) fn engine_wait(instance: &str, err: &Error) -> Option<String> {
    match err {
        Error::OperationInProgress(m) => Some(format!(
            "queued: the engine of {instance} runs another backup or restore ({m}); retried every {} s",
            RETRY_QUEUED.as_secs()
        )),
        Error::CredentialsNotReady(m) => Some(format!(
            "waiting for the kubelet to update Secret {} in the engine pod (up to about a minute): {m}",
            crate::builders::names::storage_credentials_secret(instance)
        )),
        _ => None,
    }
}

/// Keeps the backup Pending with `message` (an Event when the message is new).
async fn wait(
    backup: &InstantDbBackup,
    ctx: &Context,
    api: &Api<InstantDbBackup>,
    message: String,
    again: Duration,
) -> Result<Action> {
    let status = plan::pending(
        backup.status.as_ref(),
        backup.metadata.generation,
        message.clone(),
    );
    if write_status(api, backup, &status, ctx).await? {
        event(ctx, backup, EventType::Normal, "Waiting", message).await;
    }
    Ok(Action::requeue(again))
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
    let (engine, token) = match engine_access(ctx, ns, instance).await? {
        Ok(access) => access,
        // A stored archive stays stored: only its verification went with the pod.
        Err(reason) if current.phase == Some(OperationPhase::Completed) => {
            return verification_lost(backup, ctx, api, &current, id, &reason, now).await;
        }
        // The pod went away mid-backup: the engine's job went with it.
        Err(reason) => {
            let error = format!(
                "the engine stopped during the backup ({reason}); create a new InstantDbBackup"
            );
            return fail(backup, ctx, api, error, now).await;
        }
    };
    let job = ctx.engine.backup_job(&engine, &token, id).await?;
    if job.is_none() && current.phase == Some(OperationPhase::Completed) {
        let reason = format!("the engine of {instance} restarted");
        return verification_lost(backup, ctx, api, &current, id, &reason, now).await;
    }
    let Some(job) = job else {
        let error = format!(
            "the engine of {instance} no longer knows backup {id} (it restarted during the \
             backup); create a new InstantDbBackup"
        );
        return fail(backup, ctx, api, error, now).await;
    };
    let status = plan::from_job(&current, &job, now);
    write_status(api, backup, &status, ctx).await?;
    let was_completed = current.phase == Some(OperationPhase::Completed);
    match job.status {
        BackupJobStatus::Completed if was_completed => {
            verification_event(ctx, backup, &current, &status).await;
            Ok(requeue_while_verifying(&status))
        }
        BackupJobStatus::Completed => {
            let note = format!(
                "backup {id} of {instance} completed: {} documents, {} bytes at {}",
                status.document_count.unwrap_or_default(),
                status.size_bytes.unwrap_or_default(),
                status.location.as_deref().unwrap_or("?")
            );
            event(ctx, backup, EventType::Normal, "BackupCompleted", note).await;
            verification_event(ctx, backup, &current, &status).await;
            Ok(requeue_while_verifying(&status))
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

fn requeue_while_verifying(status: &InstantDbBackupStatus) -> Action {
    if verification::is_pending(Some(status)) {
        Action::requeue(POLL_RUNNING)
    } else {
        Action::await_change()
    }
}

/// `BackupVerified` / `BackupVerificationFailed` when the verification has just ended.
async fn verification_event(
    ctx: &Context,
    backup: &InstantDbBackup,
    before: &InstantDbBackupStatus,
    after: &InstantDbBackupStatus,
) {
    use instant_db_crds::backup::VerificationResult as R;
    let result = |s: &InstantDbBackupStatus| s.verified.as_ref().map(|v| v.result);
    if result(before) == result(after) {
        return;
    }
    let id = after.backup_id.as_deref().unwrap_or_default();
    match after.verified.as_ref() {
        Some(v) if v.result == R::Passed => {
            let note = format!(
                "backup {id} passed verification: checksums, integrity check and test searches"
            );
            event(ctx, backup, EventType::Normal, "BackupVerified", note).await;
        }
        Some(v) if v.result == R::Failed => {
            let note = format!(
                "backup {id} failed verification: {}",
                v.message.as_deref().unwrap_or("no reason given")
            );
            event(
                ctx,
                backup,
                EventType::Warning,
                "BackupVerificationFailed",
                note,
            )
            .await;
        }
        _ => {}
    }
}

/// A completed backup whose engine lost the verification: `verified` Failed, saying so.
async fn verification_lost(
    backup: &InstantDbBackup,
    ctx: &Context,
    api: &Api<InstantDbBackup>,
    current: &InstantDbBackupStatus,
    id: &str,
    reason: &str,
    now: Timestamp,
) -> Result<Action> {
    let url = current
        .archive_url
        .as_deref()
        .or(current.location.as_deref())
        .unwrap_or("?");
    let mut status = current.clone();
    status.verified = Some(verification::lost(id, url, reason, now));
    write_status(api, backup, &status, ctx).await?;
    verification_event(ctx, backup, current, &status).await;
    Ok(Action::await_change())
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

/// Looks up everything the start needs: the destination (recorded, else the backup's or its
/// policy's), the instance (present, not suspended), the engine pod's IP and the admin token,
/// nothing else of the instance running, and the storage credentials in place. API errors are
/// errors (retried with backoff); missing parts are `NotReady`.
async fn prepare(
    backup: &InstantDbBackup,
    ctx: &Context,
    ns: &str,
) -> Result<std::result::Result<Ready, NotReady>> {
    let instance = &backup.spec.instance;
    let recorded = backup.status.as_ref().and_then(|s| s.destination.clone());
    let destination = match recorded {
        Some(d) => d,
        None => match access::destination(backup, ctx, ns).await? {
            Ok(d) => match plan::resolve_destination(&d, ns, instance) {
                Ok(d) => d,
                Err(e) => return Ok(Err(NotReady::Failed(e))),
            },
            Err(not_ready) => return Ok(Err(not_ready)),
        },
    };
    let url = match plan::destination_url(&destination) {
        Ok(url) => url,
        Err(e) => return Ok(Err(NotReady::Failed(e))),
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
    let (engine, token) = match engine_access(ctx, ns, instance).await? {
        Ok(access) => access,
        Err(reason) => return Ok(Err(NotReady::Pending(reason))),
    };
    if let Some(wait) = access::claim_wait(ctx, ns, instance, &destination).await? {
        return Ok(Err(NotReady::Pending(wait)));
    }
    let backups: Api<InstantDbBackup> = Api::namespaced(ctx.client.clone(), ns);
    let backups = backups.list(&ListParams::default()).await?.items;
    let restores: Api<InstantDbRestore> = Api::namespaced(ctx.client.clone(), ns);
    let restores = restores.list(&ListParams::default()).await?.items;
    let me = backup.name_any();
    if let Some(why) = fence::blocker(instance, ("InstantDbBackup", &me), &backups, &restores) {
        return Ok(Err(NotReady::Pending(why)));
    }
    if let Some(needed) = plan::credentials_ref(&destination)
        && let Err(not_ready) = credentials::ensure(ctx, ns, &db, needed, &backups).await?
    {
        return Ok(Err(not_ready));
    }
    Ok(Ok(Ready {
        engine,
        token,
        destination,
        url,
    }))
}

/// Writes the status, with its `Complete`/`Failed` conditions, when it changed (see
/// `controller::write_status`).
async fn write_status(
    api: &Api<InstantDbBackup>,
    backup: &InstantDbBackup,
    new: &InstantDbBackupStatus,
    ctx: &Context,
) -> Result<bool> {
    let mut new = new.clone();
    let message = new
        .error
        .clone()
        .or(new.message.clone())
        .unwrap_or_else(|| match new.phase {
            Some(instant_db_crds::backup::OperationPhase::Completed) => {
                format!("stored at {}", new.location.as_deref().unwrap_or("?"))
            }
            _ => "the engine is writing the backup".into(),
        });
    let now = Timestamp::now();
    operation::set_conditions(
        &mut new.conditions,
        new.phase,
        None,
        &message,
        backup.metadata.generation,
        now,
    );
    verification::set_verified_condition(
        &mut new.conditions,
        new.verified.as_ref(),
        backup.metadata.generation,
        now,
    );
    super::write_status(api, backup, backup.status.as_ref(), &new, ctx, CONTROLLER).await
}

pub(crate) async fn event(
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
