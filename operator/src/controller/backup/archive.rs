//! What deleting an InstantDbBackup does to its stored archive.
//!
//! Only two things delete an archive: a policy's retention, which marks the backup with
//! [`PRUNE_ANNOTATION`] right before it deletes the object, and `spec.deletionPolicy: Delete`
//! that the user set on the backup. Any other deletion — `kubectl delete`, a namespace
//! teardown, an Argo CD prune, the policy's deletion cascading to its backups — keeps the
//! archive (the CloudNativePG semantics: deleting the Kubernetes object is not deleting the
//! data). The finalizer [`ARCHIVE_FINALIZER`] is on every backup whose archive might have to be
//! deleted (policy-made ones, and those with `deletionPolicy: Delete`); it decides from the
//! mark or the policy, never from how the object came to be deleted.

use instant_db_crds::InstantDb;
use instant_db_crds::backup::{BackupDeletionPolicy, InstantDbBackup};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::access::{NotReady, engine_access};
use super::{CONTROLLER, RETRY_PENDING, credentials, event, plan};
use crate::controller::Context;
use crate::error::{Error, Result};

/// Finalizer of the backups whose archive may have to be deleted with them.
pub const ARCHIVE_FINALIZER: &str = "instantdb.io/delete-archive";
/// Annotation retention sets on a backup right before deleting it: its archive goes too.
pub const PRUNE_ANNOTATION: &str = "instantdb.io/pruned-by";

/// What happens to the archive of a deleted backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveFate {
    /// Delete it; the text says who asked.
    Delete(String),
    /// Keep it; the text says why.
    Keep(String),
}

/// The fate of the archive of `backup` once it is deleted: from the retention mark or
/// `spec.deletionPolicy`, never from who deleted the object.
pub fn archive_fate(backup: &InstantDbBackup) -> ArchiveFate {
    if let Some(policy) = backup.annotations().get(PRUNE_ANNOTATION) {
        return ArchiveFate::Delete(format!("pruned by the retention of {policy}"));
    }
    if backup.spec.deletion_policy == Some(BackupDeletionPolicy::Delete) {
        return ArchiveFate::Delete("spec.deletionPolicy is Delete".into());
    }
    ArchiveFate::Keep(
        "deleting an InstantDbBackup keeps its archive unless its spec.deletionPolicy is Delete \
         or a policy's retention pruned it"
            .into(),
    )
}

/// Whether the backup needs [`ARCHIVE_FINALIZER`] and lacks it (a user's backup with
/// `deletionPolicy: Delete`; policy-made ones get it when created).
pub fn needs_finalizer(backup: &InstantDbBackup) -> bool {
    backup.spec.deletion_policy == Some(BackupDeletionPolicy::Delete)
        && !backup.finalizers().iter().any(|f| f == ARCHIVE_FINALIZER)
        && backup.metadata.deletion_timestamp.is_none()
}

/// Adds [`ARCHIVE_FINALIZER`] (merge patch of the whole list, kept as it was otherwise).
pub(crate) async fn add_finalizer(backup: &InstantDbBackup, ctx: &Context, ns: &str) -> Result<()> {
    let mut finalizers = backup.finalizers().to_vec();
    finalizers.push(ARCHIVE_FINALIZER.to_string());
    patch_finalizers(backup, ctx, ns, finalizers).await
}

async fn patch_finalizers(
    backup: &InstantDbBackup,
    ctx: &Context,
    ns: &str,
    finalizers: Vec<String>,
) -> Result<()> {
    let api: Api<InstantDbBackup> = Api::namespaced(ctx.client.clone(), ns);
    api.patch(
        &backup.name_any(),
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": finalizers}})),
    )
    .await?;
    ctx.metrics
        .writes
        .with_label_values(&[CONTROLLER, "InstantDbBackup", "finalizer"])
        .inc();
    Ok(())
}

/// A deleted backup with [`ARCHIVE_FINALIZER`]: the archive is deleted when its fate says so,
/// at the location recorded when the backup started; then the finalizer is removed. When the
/// archive cannot be reached any more (the instance or the credentials are gone) the object is
/// let go with a Warning that the archive stays; while the instance exists but its engine is
/// not running, it waits.
pub(crate) async fn on_delete(backup: &InstantDbBackup, ctx: &Context) -> Result<Action> {
    if !backup.finalizers().iter().any(|f| f == ARCHIVE_FINALIZER) {
        return Ok(Action::await_change());
    }
    let ns = backup
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let status = backup.status.clone().unwrap_or_default();
    let where_ = status
        .archive_url
        .clone()
        .or(status.location.clone())
        .unwrap_or_else(|| "its destination".into());
    let note = match (archive_fate(backup), status.backup_id.clone()) {
        (_, None) => None,
        (ArchiveFate::Keep(why), Some(id)) => Some((
            EventType::Normal,
            "ArchiveKept",
            format!("the archive of backup {id} stays at {where_}: {why}"),
        )),
        (ArchiveFate::Delete(who), Some(id)) => match delete(backup, ctx, &ns, &id).await? {
            Deletion::Done(deleted) => Some((
                EventType::Normal,
                "ArchiveDeleted",
                format!(
                    "the archive of backup {id} {} ({who})",
                    if deleted {
                        "was deleted"
                    } else {
                        "was already gone"
                    }
                ),
            )),
            Deletion::Wait(why) => {
                event(ctx, backup, EventType::Normal, "Waiting", why).await;
                return Ok(Action::requeue(RETRY_PENDING));
            }
            Deletion::Impossible(why) => Some((
                EventType::Warning,
                "ArchiveKept",
                format!("the archive of backup {id} stays at {where_} ({who}, but {why})"),
            )),
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
    patch_finalizers(backup, ctx, &ns, remaining).await?;
    Ok(Action::await_change())
}

enum Deletion {
    /// The engine deleted it (true) or found none (false).
    Done(bool),
    /// Not now: the text says what it waits for.
    Wait(String),
    /// Never: the text says why.
    Impossible(String),
}

async fn delete(backup: &InstantDbBackup, ctx: &Context, ns: &str, id: &str) -> Result<Deletion> {
    let instance = &backup.spec.instance;
    let status = backup.status.clone().unwrap_or_default();
    // The recorded location only; a backup from before locations were recorded falls back to
    // its own (immutable) destination, never to a policy as it is now.
    let recorded = match (&status.archive_url, &status.destination) {
        (Some(url), Some(dest)) => Some((url.clone(), dest.clone())),
        _ => backup.spec.destination.as_ref().and_then(|d| {
            let dest = plan::resolve_destination(d, ns, instance).ok()?;
            let url = plan::archive_url(&plan::destination_url(&dest).ok()?, id).ok()?;
            Some((url, dest))
        }),
    };
    let Some((archive, dest)) = recorded else {
        return Ok(Deletion::Impossible(
            "its location was not recorded (made by an older operator); delete it from the store by hand"
                .into(),
        ));
    };
    let folder = plan::folder_of(&archive).map_err(Error::Engine)?;
    let dbs: Api<InstantDb> = Api::namespaced(ctx.client.clone(), ns);
    let Some(db) = dbs.get_opt(instance).await? else {
        return Ok(Deletion::Impossible(format!(
            "InstantDb {instance} is gone"
        )));
    };
    let (engine, token) = match engine_access(ctx, ns, instance).await? {
        Ok(access) => access,
        Err(reason) => {
            return Ok(Deletion::Wait(format!(
                "the archive is deleted once the engine runs again: {reason}"
            )));
        }
    };
    if let Some(needed) = plan::credentials_ref(&dest) {
        let backups: Api<InstantDbBackup> = Api::namespaced(ctx.client.clone(), ns);
        let all = backups.list(&ListParams::default()).await?.items;
        match credentials::ensure(ctx, ns, &db, needed, &all).await? {
            Ok(_) => {}
            Err(NotReady::Pending(why) | NotReady::Failed(why)) => {
                return Ok(Deletion::Impossible(why));
            }
        }
    }
    match ctx.engine.delete_backup(&engine, &token, &folder, id).await {
        Ok(deleted) => Ok(Deletion::Done(deleted)),
        Err(Error::CredentialsNotReady(m) | Error::OperationInProgress(m)) => Ok(Deletion::Wait(
            format!("the engine cannot delete the archive yet ({m}); retried in 30 s"),
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use instant_db_crds::backup::InstantDbBackupSpec;
    use std::collections::BTreeMap;

    fn backup(policy: Option<BackupDeletionPolicy>) -> InstantDbBackup {
        InstantDbBackup::new(
            "b",
            InstantDbBackupSpec {
                instance: "docs".into(),
                deletion_policy: policy,
                ..Default::default()
            },
        )
    }

    #[test]
    fn only_retention_or_deletion_policy_delete_an_archive() {
        // kubectl delete, namespace teardown, a prune, the policy's cascade: no mark, Retain
        assert!(matches!(archive_fate(&backup(None)), ArchiveFate::Keep(_)));
        assert!(matches!(
            archive_fate(&backup(Some(BackupDeletionPolicy::Retain))),
            ArchiveFate::Keep(_)
        ));
        assert!(matches!(
            archive_fate(&backup(Some(BackupDeletionPolicy::Delete))),
            ArchiveFate::Delete(_)
        ));
        let mut pruned = backup(Some(BackupDeletionPolicy::Retain));
        pruned.metadata.annotations = Some(BTreeMap::from([(
            PRUNE_ANNOTATION.to_string(),
            "InstantDbBackupPolicy daily".to_string(),
        )]));
        assert_eq!(
            archive_fate(&pruned),
            ArchiveFate::Delete("pruned by the retention of InstantDbBackupPolicy daily".into())
        );
    }

    #[test]
    fn a_backup_with_deletion_policy_delete_gets_the_finalizer_once() {
        assert!(needs_finalizer(&backup(Some(BackupDeletionPolicy::Delete))));
        assert!(!needs_finalizer(&backup(None)));
        let mut has = backup(Some(BackupDeletionPolicy::Delete));
        has.metadata.finalizers = Some(vec![ARCHIVE_FINALIZER.into()]);
        assert!(!needs_finalizer(&has));
    }
}
