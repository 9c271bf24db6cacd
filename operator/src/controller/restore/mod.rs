//! The InstantDbRestore controller: restores an instance from a named InstantDbBackup, or from
//! its latest completed one, through the engine (`POST /admin/restore`). The engine verifies
//! every checksum before it touches anything, swaps the data atomically and keeps the previous
//! data until the restored database passes its integrity check; it answers when all of that is
//! done, so one reconcile carries the whole restore.
//!
//! A restore found Running (the operator stopped during the call) is sent again: the swap is
//! atomic and restoring the same archive twice gives the same data.

use std::sync::Arc;
use std::time::{Duration, Instant};

use instant_db_crds::InstantDb;
use instant_db_crds::backup::{
    InstantDbBackup, InstantDbRestore, InstantDbRestoreStatus, OperationPhase,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::Context;
use super::backup::{NotReady, destination, engine_access, plan, s3_credentials};
use crate::error::{Error, Result};

const CONTROLLER: &str = "instantdbrestore";
/// How often a pending restore looks again for what it waits for.
pub const RETRY_PENDING: Duration = Duration::from_secs(30);

/// Reconciles one InstantDbRestore.
pub async fn reconcile(restore: Arc<InstantDbRestore>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let res = reconcile_inner(&restore, &ctx).await;
    ctx.record_reconcile(
        CONTROLLER,
        &super::backoff_key(restore.as_ref()),
        start,
        &res,
    );
    res
}

fn finished(r: &InstantDbRestore) -> bool {
    matches!(
        r.status.as_ref().and_then(|s| s.phase),
        Some(OperationPhase::Completed | OperationPhase::Failed)
    )
}

/// The backup to restore: the named one, else the latest completed backup of the instance.
async fn chosen_backup(
    restore: &InstantDbRestore,
    ctx: &Context,
    ns: &str,
) -> Result<std::result::Result<InstantDbBackup, NotReady>> {
    let api: Api<InstantDbBackup> = Api::namespaced(ctx.client.clone(), ns);
    let instance = &restore.spec.instance;
    let Some(name) = &restore.spec.backup else {
        let latest = api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|b| {
                b.spec.instance == *instance
                    && b.status.as_ref().and_then(|s| s.phase) == Some(OperationPhase::Completed)
            })
            .max_by_key(|b| {
                b.status
                    .as_ref()
                    .and_then(|s| s.completed_at.clone())
                    .map(|t| t.0)
            });
        return Ok(latest.ok_or_else(|| {
            NotReady::Failed(format!(
                "{instance} has no completed InstantDbBackup to restore; name one in spec.backup"
            ))
        }));
    };
    let Some(backup) = api.get_opt(name).await? else {
        return Ok(Err(NotReady::Pending(format!(
            "InstantDbBackup {name} not found"
        ))));
    };
    Ok(match backup.status.as_ref().and_then(|s| s.phase) {
        Some(OperationPhase::Completed) => Ok(backup),
        Some(OperationPhase::Failed) => Err(NotReady::Failed(format!(
            "InstantDbBackup {name} failed; it cannot be restored"
        ))),
        _ => Err(NotReady::Pending(format!(
            "InstantDbBackup {name} is not completed yet"
        ))),
    })
}

/// Everything the engine call needs, or why it cannot be made.
async fn prepare(
    restore: &InstantDbRestore,
    ctx: &Context,
    ns: &str,
) -> Result<std::result::Result<(String, String, String, String), NotReady>> {
    let instance = &restore.spec.instance;
    let dbs: Api<InstantDb> = Api::namespaced(ctx.client.clone(), ns);
    let Some(db) = dbs.get_opt(instance).await? else {
        return Ok(Err(NotReady::Pending(format!(
            "InstantDb {instance} not found"
        ))));
    };
    if db.spec.suspend.unwrap_or(false) {
        return Ok(Err(NotReady::Pending(format!(
            "InstantDb {instance} is suspended; the restore runs when spec.suspend is false"
        ))));
    }
    let backup = match chosen_backup(restore, ctx, ns).await? {
        Ok(b) => b,
        Err(not_ready) => return Ok(Err(not_ready)),
    };
    let Some(backup_id) = backup.status.as_ref().and_then(|s| s.backup_id.clone()) else {
        return Ok(Err(NotReady::Failed(format!(
            "InstantDbBackup {} has no backupId",
            backup.name_any()
        ))));
    };
    let dest = match destination(&backup, ctx, ns).await? {
        Ok(d) => d,
        Err(not_ready) => return Ok(Err(not_ready)),
    };
    let credentials = match s3_credentials(ctx, ns, &dest).await? {
        Ok(c) => c,
        Err(not_ready) => return Ok(Err(not_ready)),
    };
    let (pod_ip, token) = match engine_access(ctx, ns, instance).await? {
        Ok(access) => access,
        Err(reason) => return Ok(Err(NotReady::Pending(reason))),
    };
    // The archive lives under the prefix of the instance that was backed up.
    let source = plan::destination_url(&dest, ns, &backup.spec.instance, &credentials)
        .and_then(|folder| plan::archive_url(&folder, &backup_id));
    Ok(match source {
        Ok(source) => Ok((pod_ip, token, source, backup.name_any())),
        Err(e) => Err(NotReady::Failed(e)),
    })
}

async fn reconcile_inner(restore: &InstantDbRestore, ctx: &Context) -> Result<Action> {
    if finished(restore) {
        return Ok(Action::await_change());
    }
    let ns = restore
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<InstantDbRestore> = Api::namespaced(ctx.client.clone(), &ns);
    let current = restore.status.clone().unwrap_or_default();
    let generation = restore.metadata.generation;
    let (pod_ip, token, source, backup_name) = match prepare(restore, ctx, &ns).await? {
        Ok(ready) => ready,
        Err(NotReady::Pending(message)) => {
            let status = InstantDbRestoreStatus {
                observed_generation: generation,
                phase: Some(OperationPhase::Pending),
                message: Some(message.clone()),
                ..current
            };
            if write_status(&api, restore, &status, ctx).await? {
                event(ctx, restore, EventType::Normal, "Waiting", message).await;
            }
            return Ok(Action::requeue(RETRY_PENDING));
        }
        Err(NotReady::Failed(error)) => {
            return fail(restore, ctx, &api, current, error).await;
        }
    };
    let running = InstantDbRestoreStatus {
        observed_generation: generation,
        phase: Some(OperationPhase::Running),
        started_at: Some(Time(Timestamp::now())),
        restored_backup: Some(backup_name.clone()),
        message: None,
        ..current
    };
    write_status(&api, restore, &running, ctx).await?;
    let instance = &restore.spec.instance;
    event(
        ctx,
        restore,
        EventType::Normal,
        "RestoreStarted",
        format!("restoring {instance} from InstantDbBackup {backup_name}"),
    )
    .await;
    let fresh = InstantDbRestore {
        status: Some(running.clone()),
        ..restore.clone()
    };
    match ctx.engine.restore(&pod_ip, &token, &source).await {
        Ok(report) => {
            let done = InstantDbRestoreStatus {
                phase: Some(OperationPhase::Completed),
                completed_at: Some(Time(Timestamp::now())),
                document_count: Some(report.documents),
                error: None,
                ..running
            };
            write_status(&api, &fresh, &done, ctx).await?;
            event(
                ctx,
                restore,
                EventType::Normal,
                "RestoreCompleted",
                format!(
                    "{instance} restored from InstantDbBackup {backup_name}: {} documents",
                    report.documents
                ),
            )
            .await;
            Ok(Action::await_change())
        }
        // The engine checked the archive or the restored data and kept what it had.
        Err(Error::RestoreRefused(why)) => {
            let error = format!("{why}; the instance keeps its previous data");
            fail(&fresh, ctx, &api, running, error).await
        }
        Err(e) => Err(e),
    }
}

async fn fail(
    restore: &InstantDbRestore,
    ctx: &Context,
    api: &Api<InstantDbRestore>,
    current: InstantDbRestoreStatus,
    error: String,
) -> Result<Action> {
    let status = InstantDbRestoreStatus {
        observed_generation: restore.metadata.generation,
        phase: Some(OperationPhase::Failed),
        completed_at: Some(Time(Timestamp::now())),
        error: Some(error.clone()),
        message: None,
        ..current
    };
    write_status(api, restore, &status, ctx).await?;
    event(ctx, restore, EventType::Warning, "RestoreFailed", error).await;
    Ok(Action::await_change())
}

/// Writes the status when it changed (see `controller::write_status`).
async fn write_status(
    api: &Api<InstantDbRestore>,
    restore: &InstantDbRestore,
    new: &InstantDbRestoreStatus,
    ctx: &Context,
) -> Result<bool> {
    super::write_status(api, restore, restore.status.as_ref(), new, ctx, CONTROLLER).await
}

async fn event(
    ctx: &Context,
    restore: &InstantDbRestore,
    type_: EventType,
    reason: &str,
    note: String,
) {
    ctx.event(&restore.object_ref(&()), type_, reason, "Restore", note)
        .await;
}

/// Runs the InstantDbRestore controller until `stop` turns true. `namespaces` empty means all.
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
                super::scoped_api::<InstantDbRestore>(client, scope),
                super::primary_watch(),
            )
        },
        reconcile,
        super::error_policy,
        None,
    )
    .await;
}
