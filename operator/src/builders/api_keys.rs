//! The `<name>-api` Secret: the engine's `read` and `write` API keys.
//!
//! The keys are generated once and then read back from the Secret on every reconcile, so a
//! reconcile never rotates them (clients keep working); a deleted Secret gets new keys, and the
//! pod restarts onto them through the config hash, like the admin token.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::{Resolved, meta, names};

/// Key of the `read` role's API key in the Secret (mounted at `/etc/instant-db/api/read`).
pub const READ_KEY: &str = "read";
/// Key of the `write` role's API key in the Secret (mounted at `/etc/instant-db/api/write`).
pub const WRITE_KEY: &str = "write";
/// Directory of the key files in the engine container (`INSTANT_DB_API_KEYS_DIR`).
pub const API_KEYS_DIR: &str = "/etc/instant-db/api";
/// The engine refuses shorter keys; a shorter value found in the Secret is replaced.
pub const MIN_KEY_LEN: usize = 16;

/// The two keys the engine gets.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeys {
    pub read: String,
    pub write: String,
}

impl std::fmt::Debug for ApiKeys {
    // never prints a key
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeys(..)")
    }
}

/// The keys stored in `existing` where it holds usable ones, `generate()` for the others.
pub fn api_keys(existing: Option<&Secret>, mut generate: impl FnMut() -> String) -> ApiKeys {
    let stored = |key: &str| {
        existing
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .map(|v| v.trim().to_string())
            .filter(|v| v.len() >= MIN_KEY_LEN && !v.contains(char::is_whitespace))
    };
    ApiKeys {
        read: stored(READ_KEY).unwrap_or_else(&mut generate),
        write: stored(WRITE_KEY).unwrap_or_else(&mut generate),
    }
}

/// The Secret holding both keys.
pub fn api_secret(r: &Resolved, owner: &OwnerReference, keys: &ApiKeys) -> Secret {
    Secret {
        metadata: meta(r, owner, names::api_secret(&r.name), "engine"),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                READ_KEY.to_string(),
                ByteString(keys.read.as_bytes().to_vec()),
            ),
            (
                WRITE_KEY.to_string(),
                ByteString(keys.write.as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn secret(read: &str, write: Option<&str>) -> Secret {
        let mut data = BTreeMap::from([(READ_KEY.to_string(), ByteString(read.into()))]);
        if let Some(w) = write {
            data.insert(WRITE_KEY.to_string(), ByteString(w.into()));
        }
        Secret {
            data: Some(data),
            ..Default::default()
        }
    }

    fn counter() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("generated-key-number-{n}")
        }
    }

    #[test]
    fn keys_are_generated_once_and_then_read_back_never_rotated() {
        let first = api_keys(None, counter());
        assert_eq!(first.read, "generated-key-number-1");
        assert_eq!(first.write, "generated-key-number-2");
        assert_ne!(first.read, first.write);
        // the next reconcile reads them from the Secret it applied
        let r = instant_db_crds_resolved();
        let applied = api_secret(&r, &owner(), &first);
        let again = api_keys(Some(&applied), || panic!("must not generate"));
        assert_eq!(again, first);
    }

    #[test]
    fn a_missing_or_unusable_key_is_replaced_and_the_other_kept() {
        let kept = "existing-read-key-0123456789";
        let keys = api_keys(Some(&secret(kept, None)), counter());
        assert_eq!(keys.read, kept);
        assert_eq!(keys.write, "generated-key-number-1");
        let keys = api_keys(
            Some(&secret("short", Some("has space in it 0123"))),
            counter(),
        );
        assert_eq!(keys.read, "generated-key-number-1");
        assert_eq!(keys.write, "generated-key-number-2");
    }

    #[test]
    fn the_secret_holds_both_keys_under_their_role_names_and_debug_hides_them() {
        let keys = ApiKeys {
            read: "r".repeat(20),
            write: "w".repeat(20),
        };
        let s = api_secret(&instant_db_crds_resolved(), &owner(), &keys);
        assert_eq!(s.metadata.name.as_deref(), Some("docs-api"));
        let data = s.data.unwrap();
        assert_eq!(data[READ_KEY].0, "r".repeat(20).as_bytes());
        assert_eq!(data[WRITE_KEY].0, "w".repeat(20).as_bytes());
        assert!(!format!("{keys:?}").contains("rrrr"));
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "instantdb.io/v1alpha1".into(),
            kind: "InstantDb".into(),
            name: "docs".into(),
            uid: "u".into(),
            controller: Some(true),
            ..Default::default()
        }
    }

    fn instant_db_crds_resolved() -> Resolved {
        Resolved {
            name: "docs".into(),
            namespace: "search".into(),
            image: "img:1".into(),
            version: "1".into(),
            suspend: false,
            deletion_policy: Default::default(),
            integrity_interval_secs: 60,
            log_level: Default::default(),
            log_format: Default::default(),
            storage_size: "1Gi".into(),
        }
    }
}
