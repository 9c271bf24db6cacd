//! Keeps `<instance>-storage-credentials` holding the credentials of every credentials Secret
//! the instance's backups and policies name (restores use their backup's), right before the
//! engine is asked to reach a store. Nothing is written when nothing changed.

use std::collections::{BTreeMap, BTreeSet};

use instant_db_crds::InstantDb;
use instant_db_crds::backup::{BackupDestination, InstantDbBackup, InstantDbBackupPolicy};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::{Api, ResourceExt};

use super::access::NotReady;
use super::plan::{self, Store};
use crate::builders::storage_credentials::{credential_entries, storage_credentials_secret};
use crate::builders::{FIELD_MANAGER, names};
use crate::controller::Context;
use crate::error::Result;

/// Every destination `db` reaches: its backups' (the recorded destination, else their own),
/// the policies covering it, and its bootstrap's (recorded, else `spec`'s source).
pub fn destinations<'a>(
    db: &'a InstantDb,
    backups: &'a [InstantDbBackup],
    policies: &'a [InstantDbBackupPolicy],
) -> Vec<&'a BackupDestination> {
    let name = db.name_any();
    let mut out: Vec<&BackupDestination> = backups
        .iter()
        .filter(|b| b.spec.instance == name)
        .filter_map(|b| {
            b.status
                .as_ref()
                .and_then(|s| s.destination.as_ref())
                .or(b.spec.destination.as_ref())
        })
        .collect();
    out.extend(
        policies
            .iter()
            .filter(|p| covers(p, db))
            .map(|p| &p.spec.destination),
    );
    let bootstrap = db
        .status
        .as_ref()
        .and_then(|s| s.bootstrap.as_ref())
        .and_then(|b| b.destination.as_ref())
        .or_else(|| {
            db.spec
                .bootstrap
                .as_ref()
                .and_then(|b| b.from_backup.source.as_ref())
                .map(|s| &s.destination)
        });
    out.extend(bootstrap);
    out
}

/// The credentials Secrets that `db`'s destinations (see [`destinations`]) name, each with
/// the stores it is named for (one Secret may serve an s3 and a gcs destination: it then
/// contributes the keys of both).
pub fn referenced(
    db: &InstantDb,
    backups: &[InstantDbBackup],
    policies: &[InstantDbBackupPolicy],
) -> BTreeMap<String, BTreeSet<Store>> {
    let mut out: BTreeMap<String, BTreeSet<Store>> = BTreeMap::new();
    for (name, store) in destinations(db, backups, policies)
        .into_iter()
        .filter_map(plan::credentials_ref)
    {
        out.entry(name.to_string()).or_default().insert(store);
    }
    out
}

/// The PersistentVolumeClaims that `db`'s volume destinations (see [`destinations`]) name:
/// the engine pod mounts each at `/backups/<claimName>`.
pub fn claims(
    db: &InstantDb,
    backups: &[InstantDbBackup],
    policies: &[InstantDbBackupPolicy],
) -> BTreeSet<String> {
    destinations(db, backups, policies)
        .into_iter()
        .filter_map(plan::claim_name)
        .map(str::to_string)
        .collect()
}

/// Whether `policy` covers `db` (names it, or selects it by label).
pub fn covers(policy: &InstantDbBackupPolicy, db: &InstantDb) -> bool {
    if let Some(instance) = &policy.spec.instance {
        return *instance == db.name_any();
    }
    policy
        .spec
        .selector
        .clone()
        .and_then(|s| Selector::try_from(s).ok())
        .is_some_and(|s| s.matches(db.labels()))
}

/// Makes sure the storage-credentials Secret of `db` holds `needed` (a Secret name and the
/// store it is for) and every other referenced Secret that exists and is complete. `needed`
/// missing is Pending; `needed` without its store's keys is Failed, naming the Secret and the
/// key. Returns whether the Secret was written: a new entry reaches
/// the pod only once the kubelet syncs it (up to about a minute).
pub(crate) async fn ensure(
    ctx: &Context,
    ns: &str,
    db: &InstantDb,
    (needed, needed_store): (&str, Store),
    backups: &[InstantDbBackup],
) -> Result<std::result::Result<bool, NotReady>> {
    let policies: Api<InstantDbBackupPolicy> = Api::namespaced(ctx.client.clone(), ns);
    let policies = policies.list(&ListParams::default()).await?.items;
    let mut wanted = referenced(db, backups, &policies);
    wanted
        .entry(needed.to_string())
        .or_default()
        .insert(needed_store);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut entries = BTreeMap::new();
    for (name, stores) in &wanted {
        let source = secrets.get_opt(name).await?;
        let data = match source {
            Some(s) => s.data.unwrap_or_default(),
            None if name == needed => {
                return Ok(Err(NotReady::Pending(format!(
                    "credentials Secret {name} not found"
                ))));
            }
            // Another destination's Secret is gone: its backups wait on their own.
            None => continue,
        };
        for store in stores {
            match credential_entries(name, *store, &data) {
                Ok(e) => entries.extend(e),
                Err(why) if name == needed && *store == needed_store => {
                    return Ok(Err(NotReady::Failed(why)));
                }
                // Another destination's keys are incomplete: its backups fail on their own.
                Err(_) => continue,
            }
        }
    }
    let desired = storage_credentials_secret(db, entries)?;
    let target = names::storage_credentials_secret(&db.name_any());
    let current = secrets.get_opt(&target).await?;
    let same = current.as_ref().is_some_and(|c| {
        c.data == desired.data && c.owner_references() == desired.owner_references()
    });
    if same {
        return Ok(Ok(false));
    }
    secrets
        .patch(
            &target,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await?;
    ctx.metrics
        .writes
        .with_label_values(&["instantdbbackup", "Secret", "apply"])
        .inc();
    Ok(Ok(true))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_referenced_secrets_are_those_of_the_instances_backups_and_covering_policies() {
        let db: InstantDb = obj(
            json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": "docs", "namespace": "search", "labels": {"tier": "gold"}},
            "spec": {"storage": {"size": "1Gi"}}}),
        );
        let s3 = |c: &str| json!({"s3": {"bucket": "b", "credentialsSecret": c}});
        let backups: Vec<InstantDbBackup> = vec![
            obj(
                json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
                "metadata": {"name": "own"}, "spec": {"instance": "docs", "destination": s3("own-creds")}}),
            ),
            obj(
                json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
                "metadata": {"name": "pinned"}, "spec": {"instance": "docs", "policy": "p"},
                "status": {"destination": s3("pinned-creds")}}),
            ),
            obj(
                json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
                "metadata": {"name": "else"}, "spec": {"instance": "other", "destination": s3("other-creds")}}),
            ),
        ];
        let policies: Vec<InstantDbBackupPolicy> = vec![
            obj(
                json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackupPolicy",
                "metadata": {"name": "named"}, "spec": {"instance": "docs", "schedule": "@daily", "destination": s3("named-creds")}}),
            ),
            obj(
                json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackupPolicy",
                "metadata": {"name": "gold"}, "spec": {"selector": {"matchLabels": {"tier": "gold"}}, "schedule": "@daily", "destination": s3("gold-creds")}}),
            ),
            obj(
                json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackupPolicy",
                "metadata": {"name": "silver"}, "spec": {"selector": {"matchLabels": {"tier": "silver"}}, "schedule": "@daily", "destination": s3("silver-creds")}}),
            ),
        ];
        let got: Vec<String> = referenced(&db, &backups, &policies).into_keys().collect();
        assert_eq!(
            got,
            ["gold-creds", "named-creds", "own-creds", "pinned-creds"]
        );
        assert!(claims(&db, &backups, &policies).is_empty());
    }

    #[test]
    fn the_bootstrap_and_volume_destinations_are_referenced_too() {
        let mut db: InstantDb = obj(
            json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": "clone", "namespace": "search"},
            "spec": {"storage": {"size": "1Gi"}, "bootstrap": {"fromBackup": {"source": {
                "backupId": "b-1", "destination": {"s3": {"bucket": "b", "credentialsSecret": "prod-creds"}}}}}}}),
        );
        let policies: Vec<InstantDbBackupPolicy> = vec![obj(
            json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackupPolicy",
            "metadata": {"name": "local"}, "spec": {"instance": "clone", "schedule": "@daily",
            "destination": {"volume": {"claimName": "backup-pvc"}}}}),
        )];
        assert_eq!(
            referenced(&db, &[], &policies)
                .into_keys()
                .collect::<Vec<_>>(),
            ["prod-creds"]
        );
        assert_eq!(
            claims(&db, &[], &policies).into_iter().collect::<Vec<_>>(),
            ["backup-pvc"]
        );
        // once recorded, the bootstrap's pinned destination is what counts (a backup by name)
        db.spec.bootstrap = Some(obj(
            json!({"fromBackup": {"backup": "other-instances-backup"}}),
        ));
        db.status = Some(obj(
            json!({"bootstrap": {"backup": "other-instances-backup",
            "destination": {"volume": {"claimName": "shared-pvc", "path": "x"}}}}),
        ));
        assert_eq!(
            claims(&db, &[], &policies).into_iter().collect::<Vec<_>>(),
            ["backup-pvc", "shared-pvc"]
        );
        assert!(referenced(&db, &[], &policies).is_empty());
    }

    #[test]
    fn a_secret_named_by_gcs_and_azure_destinations_is_wanted_for_each_store() {
        let db: InstantDb = obj(
            json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": "docs", "namespace": "search"}, "spec": {"storage": {"size": "1Gi"}}}),
        );
        let backups: Vec<InstantDbBackup> = vec![
            obj(
                json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
                "metadata": {"name": "g"}, "spec": {"instance": "docs",
                "destination": {"gcs": {"bucket": "b", "credentialsSecret": "cloud"}}}}),
            ),
            obj(
                json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
                "metadata": {"name": "a"}, "spec": {"instance": "docs",
                "destination": {"azure": {"storageAccount": "acct", "container": "c1", "credentialsSecret": "az"}}}}),
            ),
            obj(
                json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
                "metadata": {"name": "s"}, "spec": {"instance": "docs",
                "destination": {"s3": {"bucket": "b", "credentialsSecret": "cloud"}}}}),
            ),
            obj(
                json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
                "metadata": {"name": "wi"}, "spec": {"instance": "docs",
                "destination": {"gcs": {"bucket": "b"}}}}),
            ),
        ];
        let got = referenced(&db, &backups, &[]);
        assert_eq!(
            got,
            BTreeMap::from([
                ("az".to_string(), BTreeSet::from([Store::Azure])),
                ("cloud".to_string(), BTreeSet::from([Store::S3, Store::Gcs])),
            ])
        );
    }
}
