//! The `<name>-storage-credentials` Secret: the object-store credentials of every credentials
//! Secret the instance's backups, policies and restores name, copied under `S.<KEY>` keys so
//! the engine finds them as files `<dir>/S.AWS_ACCESS_KEY_ID`... (INTERFACES B). The engine
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
/// Key of the access key id in a credentials Secret.
pub const ACCESS_KEY_ID_KEY: &str = "AWS_ACCESS_KEY_ID";
/// Key of the secret access key in a credentials Secret.
pub const SECRET_ACCESS_KEY_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Optional key of a session token in a credentials Secret.
pub const SESSION_TOKEN_KEY: &str = "AWS_SESSION_TOKEN";

/// The entries one credentials Secret `name` contributes: `name.AWS_ACCESS_KEY_ID`,
/// `name.AWS_SECRET_ACCESS_KEY` and, when present, `name.AWS_SESSION_TOKEN`. An error (for the
/// user) when either required key is missing or empty.
pub fn credential_entries(
    name: &str,
    data: &BTreeMap<String, ByteString>,
) -> std::result::Result<BTreeMap<String, ByteString>, String> {
    let value = |key: &str| data.get(key).filter(|v| !v.0.is_empty()).cloned();
    let (Some(id), Some(secret)) = (value(ACCESS_KEY_ID_KEY), value(SECRET_ACCESS_KEY_KEY)) else {
        return Err(format!(
            "credentials Secret {name} needs the keys {ACCESS_KEY_ID_KEY} and {SECRET_ACCESS_KEY_KEY}"
        ));
    };
    let mut out = BTreeMap::from([
        (format!("{name}.{ACCESS_KEY_ID_KEY}"), id),
        (format!("{name}.{SECRET_ACCESS_KEY_KEY}"), secret),
    ]);
    if let Some(token) = value(SESSION_TOKEN_KEY) {
        out.insert(format!("{name}.{SESSION_TOKEN_KEY}"), token);
    }
    Ok(out)
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
            &data(&[
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                ("AWS_SESSION_TOKEN", "tok"),
            ]),
        )
        .unwrap();
        assert_eq!(with_token["tmp.AWS_SESSION_TOKEN"].0, b"tok");
        let e = credential_entries("half", &data(&[("AWS_ACCESS_KEY_ID", "AKID")])).unwrap_err();
        assert!(
            e.contains("needs the keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
            "{e}"
        );
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
