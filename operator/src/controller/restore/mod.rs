//! The InstantDbRestore controller: restores an instance from a named InstantDbBackup, or from
//! its latest completed one (an automatic restore: the newest one from before the last passing
//! integrity check), as a job on the engine: `POST /admin/restores` with an id fixed for the
//! object, then `GET /admin/restores/{id}` until the engine reports it `completed`,
//! `rolled_back` or `failed`. The status says only what the engine reported.
//!
//! Surviving restarts: the job id is derived from the object's uid and recorded in
//! `status.restoreId` once the engine accepted it; a restarted operator polls that job, and a
//! start repeated before the id was recorded finds the same job (the engine answers the same id
//! with the same job, never a second restore). The engine keeps the job's record on the data
//! volume, so an engine restart does not lose it either.

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
use super::backup::{NotReady, credentials, engine_access, engine_wait, fence, operation, plan};
use super::instantdb::recovery;
use crate::engine_client::{RestoreJob, RestorePhase};
use crate::error::{Error, Result};

mod pitr;

const CONTROLLER: &str = "instantdbrestore";
/// How often a pending restore looks again for what it waits for.
pub const RETRY_PENDING: Duration = Duration::from_secs(30);
/// How soon a restore queued behind another operation of the instance tries again.
pub use super::backup::RETRY_QUEUED;
/// How often a running restore job is polled.
pub const POLL_RUNNING: Duration = Duration::from_secs(5);

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

/// The engine's id of the restore job: `<name>-<first 8 characters of the uid>`, cut and
/// cleaned to the engine's `[a-z0-9-]{1,63}`. Fixed per object.
pub fn restore_id(restore: &InstantDbRestore) -> String {
    let clean = |s: String| -> String {
        s.chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_alphanumeric() { c } else { '-' }
            })
            .collect()
    };
    let uid: String = clean(restore.uid().unwrap_or_default())
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let name: String = clean(restore.name_any()).chars().take(54).collect();
    format!("{}-{uid}", name.trim_matches('-'))
}

/// The backup to restore and why it was chosen: the one recorded when the restore started,
/// else the named one, else (automatic restore) the newest from before the last passing
/// integrity check, else the latest completed backup of the instance.
fn chosen_backup(
    restore: &InstantDbRestore,
    backups: &[InstantDbBackup],
) -> std::result::Result<(InstantDbBackup, Option<String>), NotReady> {
    let instance = &restore.spec.instance;
    let recorded = restore
        .status
        .as_ref()
        .and_then(|s| s.restored_backup.clone());
    let named = recorded.or(restore.spec.backup.clone());
    if let Some(name) = named {
        let Some(backup) = backups.iter().find(|b| b.name_any() == name) else {
            return Err(NotReady::Pending(format!(
                "InstantDbBackup {name} not found"
            )));
        };
        return match backup.status.as_ref().and_then(|s| s.phase) {
            Some(OperationPhase::Completed) => Ok((backup.clone(), None)),
            Some(OperationPhase::Failed) => Err(NotReady::Failed(format!(
                "InstantDbBackup {name} failed; it cannot be restored"
            ))),
            _ => Err(NotReady::Pending(format!(
                "InstantDbBackup {name} is not completed yet"
            ))),
        };
    }
    if restore
        .labels()
        .get(recovery::AUTO_RESTORE_LABEL)
        .map(String::as_str)
        == Some("true")
    {
        let last_pass = restore
            .annotations()
            .get(recovery::PASS_ANNOTATION)
            .and_then(|t| t.parse::<Timestamp>().ok());
        return recovery::choose_backup(backups, instance, last_pass)
            .map(|(b, why)| (b.clone(), Some(why)))
            .map_err(NotReady::Failed);
    }
    backups
        .iter()
        .filter(|b| {
            b.spec.instance == *instance
                && b.status.as_ref().and_then(|s| s.phase) == Some(OperationPhase::Completed)
        })
        .max_by_key(|b| {
            b.status
                .as_ref()
                .and_then(|s| s.completed_at.clone())
                .map(|t| t.0)
        })
        .map(|b| (b.clone(), None))
        .ok_or_else(|| {
            NotReady::Failed(format!(
                "{instance} has no completed InstantDbBackup to restore; name one in spec.backup"
            ))
        })
}

/// The archive URL of a completed backup: the one recorded when it started; for a backup made
/// before locations were recorded, built from its own (immutable) destination. Never from a
/// policy as it is now.
fn source_of(
    backup: &InstantDbBackup,
    ns: &str,
) -> std::result::Result<(String, Option<(String, plan::Store)>), String> {
    let status = backup.status.clone().unwrap_or_default();
    if let Some(url) = status.archive_url {
        let secret = status
            .destination
            .as_ref()
            .and_then(plan::credentials_ref)
            .map(|(name, store)| (name.to_string(), store));
        return Ok((url, secret));
    }
    let name = backup.name_any();
    let (Some(dest), Some(id)) = (&backup.spec.destination, &status.backup_id) else {
        return Err(format!(
            "InstantDbBackup {name} has no recorded location (it was made by an older operator \
             from its policy's destination); restore it by hand: instant-db restore --from <its \
             archive URL>, location {}",
            status.location.as_deref().unwrap_or("unknown")
        ));
    };
    let dest = plan::resolve_destination(dest, ns, &backup.spec.instance)?;
    let url = plan::archive_url(&plan::destination_url(&dest)?, id)?;
    Ok((
        url,
        plan::credentials_ref(&dest).map(|(name, store)| (name.to_string(), store)),
    ))
}

/// What the start needs.
struct Ready {
    engine: crate::engine_client::EngineTarget,
    token: String,
    source: String,
    /// The backup restored; for a point-in-time restore, the one named (the engine picks the
    /// base), if any.
    backup_name: Option<String>,
    /// Point-in-time restore: the target as the engine takes it.
    target_time: Option<String>,
    why: Option<String>,
}

/// Where the restore reads: a backup's archive, or for `spec.targetTime` a destination folder
/// (see `pitr`).
struct Source {
    url: String,
    secret: Option<(String, plan::Store)>,
    destination: Option<instant_db_crds::backup::BackupDestination>,
    backup_name: Option<String>,
    why: Option<String>,
}

fn backup_destination(b: &InstantDbBackup) -> Option<instant_db_crds::backup::BackupDestination> {
    b.status
        .as_ref()
        .and_then(|s| s.destination.clone())
        .or(b.spec.destination.clone())
}

/// The source of a restore: the chosen backup's archive, or with `target_time` the folder of
/// the named backup or of the policy archiving the instance.
async fn source(
    restore: &InstantDbRestore,
    ctx: &Context,
    ns: &str,
    db: &InstantDb,
    backups: &[InstantDbBackup],
    target_time: Option<&str>,
) -> Result<std::result::Result<Source, NotReady>> {
    if let Some(t) = target_time {
        let folder = match &restore.spec.backup {
            Some(_) => {
                let (backup, _) = match chosen_backup(restore, backups) {
                    Ok(b) => b,
                    Err(not_ready) => return Ok(Err(not_ready)),
                };
                let (url, secret) = match source_of(&backup, ns) {
                    Ok(s) => s,
                    Err(e) => return Ok(Err(NotReady::Failed(e))),
                };
                pitr::of_backup(
                    &backup.name_any(),
                    &url,
                    secret,
                    backup_destination(&backup),
                )
            }
            None => {
                let policies: Api<instant_db_crds::backup::InstantDbBackupPolicy> =
                    Api::namespaced(ctx.client.clone(), ns);
                pitr::of_policy(db, &policies.list(&ListParams::default()).await?.items)
            }
        };
        return Ok(folder.map(|f| Source {
            why: Some(format!("restoring to {t} from {}", f.from)),
            url: f.url,
            secret: f.credentials,
            destination: f.destination,
            backup_name: restore.spec.backup.clone(),
        }));
    }
    let (backup, why) = match chosen_backup(restore, backups) {
        Ok(b) => b,
        Err(not_ready) => return Ok(Err(not_ready)),
    };
    Ok(match source_of(&backup, ns) {
        Ok((url, secret)) => Ok(Source {
            url,
            secret,
            destination: backup_destination(&backup),
            backup_name: Some(backup.name_any()),
            why,
        }),
        Err(e) => Err(NotReady::Failed(e)),
    })
}

/// Everything the engine call needs, or why it cannot be made.
async fn prepare(
    restore: &InstantDbRestore,
    ctx: &Context,
    ns: &str,
) -> Result<std::result::Result<Ready, NotReady>> {
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
    let target_time = match restore.spec.target_time.as_deref() {
        None => None,
        Some(t) => match super::instantdb::bootstrap::check_target_time(t) {
            Ok(t) => Some(t),
            Err(e) => return Ok(Err(NotReady::Failed(format!("spec.targetTime: {e}")))),
        },
    };
    let backups: Api<InstantDbBackup> = Api::namespaced(ctx.client.clone(), ns);
    let backups = backups.list(&ListParams::default()).await?.items;
    let from = match source(restore, ctx, ns, &db, &backups, target_time.as_deref()).await? {
        Ok(s) => s,
        Err(not_ready) => return Ok(Err(not_ready)),
    };
    let (engine, token) = match engine_access(ctx, ns, instance).await? {
        Ok(access) => access,
        Err(reason) => return Ok(Err(NotReady::Pending(reason))),
    };
    if let Some(d) = &from.destination
        && let Some(wait) = super::backup::access::claim_wait(ctx, ns, instance, d).await?
    {
        return Ok(Err(NotReady::Pending(wait)));
    }
    let restores: Api<InstantDbRestore> = Api::namespaced(ctx.client.clone(), ns);
    let restores = restores.list(&ListParams::default()).await?.items;
    let me = restore.name_any();
    if let Some(wait) = fence::blocker(instance, ("InstantDbRestore", &me), &backups, &restores) {
        return Ok(Err(NotReady::Pending(wait)));
    }
    if let Some((secret, store)) = from.secret
        && let Err(not_ready) =
            credentials::ensure(ctx, ns, &db, (&secret, store), &backups).await?
    {
        return Ok(Err(not_ready));
    }
    Ok(Ok(Ready {
        engine,
        token,
        source: from.url,
        backup_name: from.backup_name,
        target_time,
        why: from.why,
    }))
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
    if let Some(id) = current.restore_id.clone() {
        return poll(restore, ctx, &api, &ns, &id).await;
    }
    let ready = match prepare(restore, ctx, &ns).await? {
        Ok(ready) => ready,
        Err(NotReady::Pending(message)) => {
            return wait(restore, ctx, &api, message, RETRY_PENDING).await;
        }
        Err(NotReady::Failed(error)) => {
            return fail(restore, ctx, &api, current, error, None).await;
        }
    };
    let instance = &restore.spec.instance;
    // Record the choice before the engine is asked: a restarted operator restores the same.
    let mut seen = restore.clone();
    if current.restored_backup != ready.backup_name
        || current.source.as_deref() != Some(&ready.source)
    {
        let message = ready.why.clone().unwrap_or_else(|| {
            format!(
                "restoring InstantDbBackup {}",
                ready.backup_name.as_deref().unwrap_or_default()
            )
        });
        let pinned = InstantDbRestoreStatus {
            observed_generation: generation,
            phase: Some(OperationPhase::Pending),
            restored_backup: ready.backup_name.clone(),
            source: Some(ready.source.clone()),
            target_time: ready.target_time.clone(),
            message: Some(message.clone()),
            ..current.clone()
        };
        write_status(&api, restore, &pinned, ctx, None).await?;
        seen.status = Some(pinned);
        if ready.why.is_some() {
            event(ctx, restore, EventType::Normal, "BackupChosen", message).await;
        }
    }
    let id = restore_id(restore);
    let job = match ctx
        .engine
        .start_restore(
            &ready.engine,
            &ready.token,
            &ready.source,
            ready.target_time.as_deref(),
            &id,
        )
        .await
    {
        Ok(job) => job,
        Err(Error::RestoreRefused(why)) => {
            let error = format!("{why}; nothing was changed, the instance keeps its data");
            let current = seen.status.clone().unwrap_or_default();
            return fail(&seen, ctx, &api, current, error, Some("EngineRefused")).await;
        }
        Err(e) => match engine_wait(instance, &e) {
            Some(message) => return wait(&seen, ctx, &api, message, RETRY_QUEUED).await,
            None => return Err(e),
        },
    };
    let running = InstantDbRestoreStatus {
        observed_generation: generation,
        phase: Some(OperationPhase::Running),
        started_at: Some(Time(Timestamp::now())),
        restore_id: Some(id.clone()),
        message: Some(phase_message(&job)),
        ..seen.status.clone().unwrap_or_default()
    };
    write_status(&api, &seen, &running, ctx, None).await?;
    event(
        ctx,
        restore,
        EventType::Normal,
        "RestoreStarted",
        match &ready.target_time {
            Some(t) => format!(
                "restoring {instance} to {t} from {} (engine job {id})",
                ready.source
            ),
            None => format!(
                "restoring {instance} from InstantDbBackup {} (engine job {id})",
                ready.backup_name.as_deref().unwrap_or_default()
            ),
        },
    )
    .await;
    Ok(Action::requeue(POLL_RUNNING))
}

fn phase_message(job: &RestoreJob) -> String {
    let doing = match job.phase {
        RestorePhase::Pending => "waiting to start",
        RestorePhase::Fetching => "downloading the archive",
        RestorePhase::Verifying => "verifying every checksum",
        RestorePhase::Swapping => "putting the restored data in place",
        RestorePhase::Checking => "checking the restored data's integrity",
        RestorePhase::Completed => "done",
        RestorePhase::RolledBack => "rolled back",
        RestorePhase::Failed => "failed",
        RestorePhase::Unknown => "in a phase this operator does not know",
    };
    format!("the engine is {doing} (restore job {})", job.id)
}

/// Follows the engine's job and reports what it says, nothing else.
async fn poll(
    restore: &InstantDbRestore,
    ctx: &Context,
    api: &Api<InstantDbRestore>,
    ns: &str,
    id: &str,
) -> Result<Action> {
    let current = restore.status.clone().unwrap_or_default();
    let instance = &restore.spec.instance;
    let (engine, token) = match engine_access(ctx, ns, instance).await? {
        Ok(access) => access,
        // The job's record is on the data volume: it is read once the pod is back.
        Err(reason) => {
            let status = InstantDbRestoreStatus {
                message: Some(format!(
                    "waiting for the engine to report restore job {id}: {reason}"
                )),
                ..current
            };
            write_status(api, restore, &status, ctx, None).await?;
            return Ok(Action::requeue(RETRY_PENDING));
        }
    };
    let Some(job) = ctx.engine.restore_job(&engine, &token, id).await? else {
        let error = format!(
            "the engine of {instance} has no record of restore job {id} (was its data volume \
             replaced?); check the instance's documents and create a new InstantDbRestore if needed"
        );
        return fail(restore, ctx, api, current, error, None).await;
    };
    let backup = current.restored_backup.clone().unwrap_or_default();
    let engine_error = job
        .error
        .clone()
        .unwrap_or_else(|| "no reason given".into());
    match job.phase {
        RestorePhase::Completed => {
            let what = match (&current.target_time, &job.restored_to) {
                (Some(t), to) => format!(
                    "{instance} restored to {} (target {t}, base backup {})",
                    to.as_deref()
                        .unwrap_or("the base snapshot: no archived change after it"),
                    job.backup_id
                        .as_deref()
                        .unwrap_or("none: the generation began empty")
                ),
                (None, _) => format!("{instance} restored from InstantDbBackup {backup}"),
            };
            let done = InstantDbRestoreStatus {
                phase: Some(OperationPhase::Completed),
                completed_at: Some(Time(Timestamp::now())),
                document_count: job.document_count.and_then(|d| i64::try_from(d).ok()),
                error: None,
                message: Some(what.clone()),
                target_time: job.target_time.clone().or(current.target_time.clone()),
                restored_to: job.restored_to.clone(),
                ..current
            };
            write_status(api, restore, &done, ctx, None).await?;
            event(
                ctx,
                restore,
                EventType::Normal,
                "RestoreCompleted",
                format!(
                    "{what}: {} documents",
                    job.document_count.unwrap_or_default()
                ),
            )
            .await;
            Ok(Action::await_change())
        }
        RestorePhase::RolledBack => {
            let error = format!(
                "the restored data failed its integrity check and the instance kept its previous \
                 data ({engine_error}); restore another backup"
            );
            fail(restore, ctx, api, current, error, Some("RolledBack")).await
        }
        RestorePhase::Failed => {
            let error =
                format!("the engine refused the restore before changing anything: {engine_error}");
            fail(restore, ctx, api, current, error, Some("EngineFailed")).await
        }
        _ => {
            let status = InstantDbRestoreStatus {
                phase: Some(OperationPhase::Running),
                message: Some(phase_message(&job)),
                ..current
            };
            write_status(api, restore, &status, ctx, None).await?;
            Ok(Action::requeue(POLL_RUNNING))
        }
    }
}

/// Keeps the restore Pending with `message` (an Event when the message is new).
async fn wait(
    restore: &InstantDbRestore,
    ctx: &Context,
    api: &Api<InstantDbRestore>,
    message: String,
    again: Duration,
) -> Result<Action> {
    let status = InstantDbRestoreStatus {
        observed_generation: restore.metadata.generation,
        phase: Some(OperationPhase::Pending),
        message: Some(message.clone()),
        ..restore.status.clone().unwrap_or_default()
    };
    if write_status(api, restore, &status, ctx, None).await? {
        event(ctx, restore, EventType::Normal, "Waiting", message).await;
    }
    Ok(Action::requeue(again))
}

async fn fail(
    restore: &InstantDbRestore,
    ctx: &Context,
    api: &Api<InstantDbRestore>,
    current: InstantDbRestoreStatus,
    error: String,
    reason: Option<&str>,
) -> Result<Action> {
    let status = InstantDbRestoreStatus {
        observed_generation: restore.metadata.generation,
        phase: Some(OperationPhase::Failed),
        completed_at: Some(Time(Timestamp::now())),
        error: Some(error.clone()),
        message: None,
        ..current
    };
    write_status(api, restore, &status, ctx, reason).await?;
    event(ctx, restore, EventType::Warning, "RestoreFailed", error).await;
    Ok(Action::await_change())
}

/// Writes the status, with its `Complete`/`Failed` conditions (`reason` overrides the phase's
/// name), when it changed (see `controller::write_status`).
async fn write_status(
    api: &Api<InstantDbRestore>,
    restore: &InstantDbRestore,
    new: &InstantDbRestoreStatus,
    ctx: &Context,
    reason: Option<&str>,
) -> Result<bool> {
    let mut new = new.clone();
    let message = new
        .error
        .clone()
        .or(new.message.clone())
        .unwrap_or_default();
    operation::set_conditions(
        &mut new.conditions,
        new.phase,
        reason,
        &message,
        restore.metadata.generation,
        Timestamp::now(),
    );
    super::write_status(api, restore, restore.status.as_ref(), &new, ctx, CONTROLLER).await
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use instant_db_crds::backup::InstantDbRestoreSpec;

    #[test]
    fn the_restore_id_is_fixed_per_object_and_valid_for_the_engine() {
        let mut r = InstantDbRestore::new(
            "Docs.Undo_1",
            InstantDbRestoreSpec {
                instance: "docs".into(),
                backup: None,
                target_time: None,
            },
        );
        r.metadata.uid = Some("0F3C2A9E-1111-2222-3333-444455556666".into());
        let id = restore_id(&r);
        assert_eq!(id, "docs-undo-1-0f3c2a9e");
        assert_eq!(id, restore_id(&r.clone()));
        r.metadata.name = Some("x".repeat(253));
        let id = restore_id(&r);
        assert!(id.len() <= 63, "{}", id.len());
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
