//! The InstantDbBackupPolicy controller: on its cron schedule it creates one InstantDbBackup per
//! covered instance (the backup controller takes them), and it prunes the backups it made under
//! the retention.
//!
//! observe (the policy, its instances, its backups) → `plan` (pure) → create / delete →
//! status. The backups carry the policy's name in a label, so each change of one of them (a
//! backup completing) brings the policy back for retention and `lastSuccessfulBackup`.

pub mod plan;

use std::sync::Arc;
use std::time::Instant;

use instant_db_crds::InstantDb;
use instant_db_crds::backup::{
    InstantDbBackup, InstantDbBackupPolicy, InstantDbBackupPolicyStatus,
};
use instant_db_crds::conditions::{self, NewCondition, Status, set_condition};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Selector;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

use super::Context;
use crate::error::{Error, Result};

const CONTROLLER: &str = "instantdbbackuppolicy";

/// Reconciles one InstantDbBackupPolicy.
pub async fn reconcile(policy: Arc<InstantDbBackupPolicy>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let res = reconcile_inner(&policy, &ctx).await;
    ctx.record_reconcile(
        CONTROLLER,
        &super::backoff_key(policy.as_ref()),
        start,
        &res,
    );
    res
}

async fn reconcile_inner(policy: &InstantDbBackupPolicy, ctx: &Context) -> Result<Action> {
    let ns = policy
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let name = policy.name_any();
    let api: Api<InstantDbBackupPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let backups_api: Api<InstantDbBackup> = Api::namespaced(ctx.client.clone(), &ns);
    let now = Timestamp::now();

    let instances = match covered_instances(policy, ctx, &ns).await? {
        Ok(instances) => instances,
        Err(problem) => return invalid(policy, ctx, &api, problem, now).await,
    };
    let mine = ListParams::default().labels(&format!("{}={name}", plan::POLICY_LABEL));
    let backups = backups_api.list(&mine).await?.items;
    let plan = match plan::plan(policy, &instances, &backups, now) {
        Ok(plan) => plan,
        Err(problem) => return invalid(policy, ctx, &api, problem, now).await,
    };
    for backup in &plan.create {
        let backup_name = backup.name_any();
        match backups_api.create(&PostParams::default(), backup).await {
            Ok(_) => {
                count_write(ctx, "create");
                event(
                    ctx,
                    policy,
                    EventType::Normal,
                    "BackupScheduled",
                    format!(
                        "created InstantDbBackup {backup_name} of {}",
                        backup.spec.instance
                    ),
                )
                .await;
            }
            // Made by an earlier reconcile whose status write did not land.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for backup_name in &plan.delete {
        // The mark the backup's finalizer reads: retention, and only retention (or the
        // backup's own deletionPolicy), deletes the archive with the object.
        let mark = serde_json::json!({"metadata": {"annotations": {
            crate::controller::backup::PRUNE_ANNOTATION: format!("InstantDbBackupPolicy {name}")
        }}});
        match backups_api
            .patch(backup_name, &PatchParams::default(), &Patch::Merge(&mark))
            .await
        {
            Ok(_) => count_write(ctx, "annotate"),
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e.into()),
        }
        match backups_api
            .delete(backup_name, &DeleteParams::default())
            .await
        {
            Ok(_) => {
                count_write(ctx, "delete");
                event(
                    ctx,
                    policy,
                    EventType::Normal,
                    "BackupPruned",
                    format!("deleted InstantDbBackup {backup_name} (retention)"),
                )
                .await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    write_status(&api, policy, &plan.status, ctx).await?;
    Ok(Action::requeue(plan.requeue_after))
}

/// The InstantDb objects the policy covers: the named one (if it exists) or those its selector
/// matches. An unusable selector is the user's problem (`Err` inside).
async fn covered_instances(
    policy: &InstantDbBackupPolicy,
    ctx: &Context,
    ns: &str,
) -> Result<std::result::Result<Vec<InstantDb>, String>> {
    let dbs: Api<InstantDb> = Api::namespaced(ctx.client.clone(), ns);
    if let Some(name) = &policy.spec.instance {
        return Ok(Ok(dbs.get_opt(name).await?.into_iter().collect()));
    }
    let Some(selector) = policy.spec.selector.clone() else {
        return Ok(Err(
            "set exactly one of spec.instance or spec.selector".into()
        ));
    };
    let selector = match Selector::try_from(selector) {
        Ok(s) => s,
        Err(e) => return Ok(Err(format!("spec.selector is not usable: {e}"))),
    };
    let list = dbs
        .list(&ListParams::default().labels_from(&selector))
        .await?;
    Ok(Ok(list.items))
}

/// Reports a spec problem in the `Ready` condition and waits for a spec change.
async fn invalid(
    policy: &InstantDbBackupPolicy,
    ctx: &Context,
    api: &Api<InstantDbBackupPolicy>,
    problem: String,
    now: Timestamp,
) -> Result<Action> {
    let mut status = policy.status.clone().unwrap_or_default();
    status.observed_generation = policy.metadata.generation;
    status.next_schedule_time = None;
    set_condition(
        &mut status.conditions,
        NewCondition {
            type_: conditions::READY,
            status: Status::False,
            reason: "InvalidSpec",
            message: problem.clone(),
            observed_generation: policy.metadata.generation,
        },
        now,
    );
    if write_status(api, policy, &status, ctx).await? {
        event(ctx, policy, EventType::Warning, "InvalidSpec", problem).await;
    }
    Ok(Action::await_change())
}

fn count_write(ctx: &Context, verb: &str) {
    ctx.metrics
        .writes
        .with_label_values(&[CONTROLLER, "InstantDbBackup", verb])
        .inc();
}

/// Writes the status when it changed (see `controller::write_status`).
async fn write_status(
    api: &Api<InstantDbBackupPolicy>,
    policy: &InstantDbBackupPolicy,
    new: &InstantDbBackupPolicyStatus,
    ctx: &Context,
) -> Result<bool> {
    super::write_status(api, policy, policy.status.as_ref(), new, ctx, CONTROLLER).await
}

async fn event(
    ctx: &Context,
    policy: &InstantDbBackupPolicy,
    type_: EventType,
    reason: &str,
    note: String,
) {
    ctx.event(&policy.object_ref(&()), type_, reason, "Schedule", note)
        .await;
}

/// Runs the InstantDbBackupPolicy controller until `stop` turns true. `namespaces` empty means
/// all. The backups a policy made (labelled with its name) are watched too.
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
                super::scoped_api::<InstantDbBackupPolicy>(client, scope),
                super::primary_watch(),
            )
            // By label, not owner reference: the backups may be owned by the instance or by
            // nothing (spec.backupOwnerReference).
            .watches(
                super::scoped_api::<InstantDbBackup>(client, scope),
                watcher::Config::default().labels(plan::POLICY_LABEL),
                |b: InstantDbBackup| {
                    let ns = b.namespace();
                    b.labels().get(plan::POLICY_LABEL).map(|p| {
                        let r = ObjectRef::<InstantDbBackupPolicy>::new(p);
                        match ns {
                            Some(ns) => r.within(&ns),
                            None => r,
                        }
                    })
                },
            )
        },
        reconcile,
        super::error_policy,
        None,
    )
    .await;
}
