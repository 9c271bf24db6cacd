//! The `<name>-storage-credentials` Secret: the object-store credentials of every credentials
//! Secret the instance's backups, policies and restores name, copied under `S.<KEY>` keys so
//! the engine finds them as files `<dir>/S.AWS_ACCESS_KEY_ID`, `<dir>/S.GOOGLE_SERVICE_ACCOUNT_KEY`,
//! `<dir>/S.AZURE_STORAGE_ACCOUNT_KEY` (INTERFACES B). The engine
//! pod mounts it whole, so a new entry reaches the running pod without a restart.

use std::collections::BTreeMap;

use instant_db_crds::InstantDb;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::{FIELD_MANAGER, names, owner_reference, selector_labels};
use crate::error::Result;

/// Where the engine pod mounts the Secret (the engine's default `backup.credentials_dir`).
pub const CREDENTIALS_DIR: &str = "/etc/instant-db-credentials";
/// Volume name of the mount.
pub const CREDENTIALS_VOLUME: &str = "storage-credentials";
/// Key of the access key id in an S3 credentials Secret.
pub const ACCESS_KEY_ID_KEY: &str = "AWS_ACCESS_KEY_ID";
/// Key of the secret access key in an S3 credentials Secret.
pub const SECRET_ACCESS_KEY_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Optional key of a session token in an S3 credentials Secret.
pub const SESSION_TOKEN_KEY: &str = "AWS_SESSION_TOKEN";
/// Key of the service account key (the JSON file) in a GCS credentials Secret.
pub const GOOGLE_SERVICE_ACCOUNT_KEY: &str = "GOOGLE_SERVICE_ACCOUNT_KEY";
/// Key of the storage account access key in an Azure credentials Secret.
pub const AZURE_STORAGE_ACCOUNT_KEY: &str = "AZURE_STORAGE_ACCOUNT_KEY";

/// The object store a credentials Secret is for: it decides which keys the Secret must hold
/// (the engine reads exactly these files for `s3://`, `gs://` and `az://` URLs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Store {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`.
    S3,
    /// `GOOGLE_SERVICE_ACCOUNT_KEY`.
    Gcs,
    /// `AZURE_STORAGE_ACCOUNT_KEY`.
    Azure,
}

impl Store {
    /// The keys a credentials Secret for this store must have.
    pub fn required_keys(self) -> &'static [&'static str] {
        match self {
            Store::S3 => &[ACCESS_KEY_ID_KEY, SECRET_ACCESS_KEY_KEY],
            Store::Gcs => &[GOOGLE_SERVICE_ACCOUNT_KEY],
            Store::Azure => &[AZURE_STORAGE_ACCOUNT_KEY],
        }
    }

    fn optional_keys(self) -> &'static [&'static str] {
        match self {
            Store::S3 => &[SESSION_TOKEN_KEY],
            Store::Gcs | Store::Azure => &[],
        }
    }

    /// The destination field users know it by (`s3`, `gcs`, `azure`).
    pub fn field(self) -> &'static str {
        match self {
            Store::S3 => "s3",
            Store::Gcs => "gcs",
            Store::Azure => "azure",
        }
    }
}

/// The entries one credentials Secret `name` contributes for `store`: `name.KEY` for each of
/// the store's keys (`name.AWS_ACCESS_KEY_ID`, `name.GOOGLE_SERVICE_ACCOUNT_KEY`...), the
/// optional ones when present. An error (for the user, naming the Secret and the keys) when a
/// required key is missing or empty.
pub fn credential_entries(
    name: &str,
    store: Store,
    data: &BTreeMap<String, ByteString>,
) -> std::result::Result<BTreeMap<String, ByteString>, String> {
    let value = |key: &str| data.get(key).filter(|v| !v.0.is_empty()).cloned();
    let required = store.required_keys();
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|k| value(k).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "credentials Secret {name} has no {} (the {} destination needs the key{} {}): add {} to the Secret",
            missing.join(" and "),
            store.field(),
            if required.len() > 1 { "s" } else { "" },
            required.join(" and "),
            if missing.len() > 1 { "them" } else { "it" },
        ));
    }
    Ok(required
        .iter()
        .chain(store.optional_keys())
        .filter_map(|key| value(key).map(|v| (format!("{name}.{key}"), v)))
        .collect())
}

/// The Secret for `db` from the entries of its credentials Secrets (see
/// [`credential_entries`]), owned by the InstantDb so it goes with it.
pub fn storage_credentials_secret(
    db: &InstantDb,
    entries: BTreeMap<String, ByteString>,
) -> Result<Secret> {
    let name = db.name_any();
    let mut labels = selector_labels(&name, "storage-credentials");
    labels.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    labels.insert("app.kubernetes.io/part-of".into(), "instant-db".into());
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(names::storage_credentials_secret(&name)),
            namespace: db.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(db)?]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(entries),
        ..Default::default()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn each_credentials_secret_contributes_its_keys_under_its_name() {
        let e = credential_entries(
            "s3-creds",
            Store::S3,
            &data(&[
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
                ("unrelated", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(
            e.keys().collect::<Vec<_>>(),
            [
                "s3-creds.AWS_ACCESS_KEY_ID",
                "s3-creds.AWS_SECRET_ACCESS_KEY"
            ]
        );
        let with_token = credential_entries(
            "tmp",
            Store::S3,
            &data(&[
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                ("AWS_SESSION_TOKEN", "tok"),
            ]),
        )
        .unwrap();
        assert_eq!(with_token["tmp.AWS_SESSION_TOKEN"].0, b"tok");
        let e = credential_entries("half", Store::S3, &data(&[("AWS_ACCESS_KEY_ID", "AKID")]))
            .unwrap_err();
        assert!(
            e.contains("Secret half has no AWS_SECRET_ACCESS_KEY")
                && e.contains("needs the keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
            "{e}"
        );
    }

    #[test]
    fn gcs_and_azure_secrets_contribute_their_one_key_and_a_missing_key_is_named() {
        let key = r#"{"type": "service_account", "private_key": "..."}"#;
        let e = credential_entries(
            "gcs-key",
            Store::Gcs,
            &data(&[
                ("GOOGLE_SERVICE_ACCOUNT_KEY", key),
                ("AWS_ACCESS_KEY_ID", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(
            e.keys().collect::<Vec<_>>(),
            ["gcs-key.GOOGLE_SERVICE_ACCOUNT_KEY"]
        );
        assert_eq!(e["gcs-key.GOOGLE_SERVICE_ACCOUNT_KEY"].0, key.as_bytes());
        let e = credential_entries(
            "az-key",
            Store::Azure,
            &data(&[("AZURE_STORAGE_ACCOUNT_KEY", "a2V5")]),
        )
        .unwrap();
        assert_eq!(
            e.keys().collect::<Vec<_>>(),
            ["az-key.AZURE_STORAGE_ACCOUNT_KEY"]
        );
        // an S3 Secret named by an azure destination: the message names the Secret and the key
        let e = credential_entries(
            "s3-creds",
            Store::Azure,
            &data(&[("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")]),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "credentials Secret s3-creds has no AZURE_STORAGE_ACCOUNT_KEY (the azure destination \
             needs the key AZURE_STORAGE_ACCOUNT_KEY): add it to the Secret"
        );
        let e = credential_entries(
            "g",
            Store::Gcs,
            &data(&[("GOOGLE_SERVICE_ACCOUNT_KEY", "")]),
        )
        .unwrap_err();
        assert!(e.contains("has no GOOGLE_SERVICE_ACCOUNT_KEY"), "{e}");
    }

    #[test]
    fn the_secret_is_named_after_the_instance_and_owned_by_it() {
        let db: InstantDb = serde_json::from_value(serde_json::json!({
            "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": "docs", "namespace": "search", "uid": "u1"},
            "spec": {"storage": {"size": "1Gi"}}
        }))
        .unwrap();
        let entries = credential_entries(
            "a",
            Store::S3,
            &data(&[("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")]),
        )
        .unwrap();
        let s = storage_credentials_secret(&db, entries.clone()).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("docs-storage-credentials"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("search"));
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("InstantDb", "u1")
        );
        assert_eq!(s.data.unwrap(), entries);
    }
}
