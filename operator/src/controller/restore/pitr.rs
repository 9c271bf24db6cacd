//! Point-in-time restores (`spec.targetTime`), pure: where the engine reads, which is the
//! destination folder (its backups and their `archive/`), not one archive. The folder of the
//! backup named in `spec.backup` (its recorded archive's folder), else of the
//! InstantDbBackupPolicy archiving the instance (`continuousArchiving.enabled`).

use instant_db_crds::InstantDb;
use instant_db_crds::backup::{BackupDestination, InstantDbBackupPolicy};

use crate::controller::backup::NotReady;
use crate::controller::backup::plan::{self, Store};
use crate::controller::instantdb::archiving;

/// Where a point-in-time restore reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Folder {
    /// The folder URL as the engine reads it (credentials by Secret name).
    pub url: String,
    /// Its credentials Secret and store, if it names one.
    pub credentials: Option<(String, Store)>,
    /// The destination, resolved (a volume's claim must be mounted).
    pub destination: Option<BackupDestination>,
    /// Whose folder it is, in words (for the status message).
    pub from: String,
}

/// The folder of a backup's archive URL (`source_of`'s answer).
pub fn of_backup(
    backup: &str,
    archive_url: &str,
    credentials: Option<(String, Store)>,
    destination: Option<BackupDestination>,
) -> Result<Folder, NotReady> {
    let url = plan::folder_of(archive_url)
        .map_err(|e| NotReady::Failed(format!("InstantDbBackup {backup}: {e}")))?;
    Ok(Folder {
        url,
        credentials,
        destination,
        from: format!("the folder of InstantDbBackup {backup}"),
    })
}

/// The folder of the policy archiving `db`; Failed (what to do) when there is none.
pub fn of_policy(db: &InstantDb, policies: &[InstantDbBackupPolicy]) -> Result<Folder, NotReady> {
    let instance = db.metadata.name.as_deref().unwrap_or_default();
    match archiving::plan(db, policies) {
        None => Err(NotReady::Failed(format!(
            "spec.targetTime needs the archive of {instance}: no InstantDbBackupPolicy with continuousArchiving.enabled covers it; name in spec.backup a backup whose destination folder holds the archive"
        ))),
        Some(Err(e)) => Err(NotReady::Failed(e)),
        Some(Ok(p)) => Ok(Folder {
            credentials: p.credentials().map(|(n, s)| (n.to_string(), s)),
            url: p.settings.destination.clone(),
            destination: Some(p.destination.clone()),
            from: format!("the archive of InstantDbBackupPolicy {}", p.policy),
        }),
    }
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
    fn a_point_in_time_restore_reads_the_folder_of_the_backup_or_of_the_archiving_policy() {
        let f = of_backup(
            "nightly",
            "s3://backups/search/docs/nightly-id.tar.gz?region=us-east-1&credentials=c",
            Some(("c".into(), Store::S3)),
            None,
        )
        .unwrap();
        assert_eq!(
            f.url,
            "s3://backups/search/docs?region=us-east-1&credentials=c"
        );
        let db: InstantDb = obj(
            json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": "docs", "namespace": "search"}, "spec": {"storage": {"size": "1Gi"}}}),
        );
        let Err(NotReady::Failed(m)) = of_policy(&db, &[]) else {
            panic!()
        };
        assert!(
            m.contains("continuousArchiving") && m.contains("spec.backup"),
            "{m}"
        );
        let p: InstantDbBackupPolicy = obj(
            json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackupPolicy",
            "metadata": {"name": "daily", "namespace": "search"},
            "spec": {"instance": "docs", "schedule": "@daily",
                "destination": {"volume": {"claimName": "backups"}},
                "continuousArchiving": {"enabled": true}}}),
        );
        let f = of_policy(&db, &[p]).unwrap();
        assert_eq!(f.url, "file:///backups/backups/instant-db-backups");
        assert_eq!(f.credentials, None);
        assert!(f.from.contains("daily"), "{}", f.from);
    }
}
