//! The `vector_store` and `qdrant` keys of the configuration.
//!
//! ```yaml
//! vector_store: qdrant            # `embedded` (default): the graph in the data directory
//! qdrant:
//!   url: http://qdrant:6334       # the gRPC port
//!   collection: instant-db
//!   api_key_file: /etc/instant-db/qdrant/api-key   # or INSTANT_DB_QDRANT_API_KEY
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The environment variable holding the Qdrant API key when `qdrant.api_key_file` is unset. The
/// key itself is never a configuration value, so `config show` and logs cannot print it.
pub const API_KEY_ENV: &str = "INSTANT_DB_QDRANT_API_KEY";

/// Where vectors live and are searched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VectorStoreKind {
    /// The HNSW graph in the data directory, rebuilt from SQLite when needed.
    #[default]
    Embedded,
    /// A Qdrant collection (scale-out); SQLite keeps documents, chunks, full text and vectors.
    Qdrant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QdrantConfig {
    /// The gRPC endpoint (`http://host:6334`, or `https://` for TLS). No credentials in it.
    pub url: Option<String>,
    /// The collection; created with the model's dimension and cosine distance when missing.
    pub collection: String,
    /// A file holding the API key (a mounted Secret); unset: `INSTANT_DB_QDRANT_API_KEY`.
    #[schema(value_type = Option<String>)]
    pub api_key_file: Option<PathBuf>,
    /// Timeout of one call, in seconds.
    pub timeout_secs: f64,
    /// Points per upsert call.
    pub upload_batch: usize,
}

impl Default for QdrantConfig {
    fn default() -> Self {
        QdrantConfig {
            url: None,
            collection: "instant-db".into(),
            api_key_file: None,
            timeout_secs: 10.0,
            upload_batch: 256,
        }
    }
}

impl QdrantConfig {
    /// Checks the settings `vector_store: qdrant` needs; `Ok` for the embedded store.
    pub fn validate(&self, kind: VectorStoreKind) -> Result<()> {
        if kind != VectorStoreKind::Qdrant {
            return Ok(());
        }
        let bad = |key: &str, msg: &str| Err(Error::Config(format!("key `{key}`: {msg}")));
        let Some(url) = self.url.as_deref().filter(|u| !u.trim().is_empty()) else {
            return bad(
                "qdrant.url",
                "`vector_store: qdrant` needs the Qdrant gRPC URL, e.g. http://qdrant:6334 \
                 (INSTANT_DB_QDRANT_URL)",
            );
        };
        let Some(rest) = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
        else {
            return bad("qdrant.url", "must start with http:// or https://");
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return bad(
                "qdrant.url",
                "must not carry credentials; give the API key with qdrant.api_key_file or \
                 INSTANT_DB_QDRANT_API_KEY",
            );
        }
        if authority.is_empty() {
            return bad("qdrant.url", "names no host");
        }
        if self.collection.is_empty()
            || self.collection.len() > 255
            || !self
                .collection
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return bad(
                "qdrant.collection",
                "must be 1-255 letters, digits, `-`, `_` or `.`",
            );
        }
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0 && self.timeout_secs <= 600.0)
        {
            return bad("qdrant.timeout_secs", "must be more than 0 and at most 600");
        }
        if self.upload_batch == 0 || self.upload_batch > 10_000 {
            return bad("qdrant.upload_batch", "must be between 1 and 10000");
        }
        Ok(())
    }

    /// The API key: the file's first line when `api_key_file` is set, else the environment's.
    pub fn api_key(&self, env: impl Fn(&str) -> Option<String>) -> Result<Option<String>> {
        if let Some(path) = &self.api_key_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Config(format!(
                    "key `qdrant.api_key_file`: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            let key = text.lines().next().unwrap_or_default().trim().to_string();
            if key.is_empty() {
                return Err(Error::Config(format!(
                    "key `qdrant.api_key_file`: {} is empty",
                    path.display()
                )));
            }
            return Ok(Some(key));
        }
        Ok(env(API_KEY_ENV)
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qdrant(url: &str) -> QdrantConfig {
        QdrantConfig {
            url: Some(url.into()),
            ..QdrantConfig::default()
        }
    }

    #[test]
    fn the_embedded_store_needs_no_qdrant_settings() {
        QdrantConfig::default()
            .validate(VectorStoreKind::Embedded)
            .unwrap();
    }

    #[test]
    fn qdrant_without_a_url_is_refused_with_the_variable_to_set() {
        let e = QdrantConfig::default()
            .validate(VectorStoreKind::Qdrant)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("qdrant.url") && e.contains("INSTANT_DB_QDRANT_URL"),
            "{e}"
        );
    }

    #[test]
    fn a_url_with_credentials_or_another_scheme_is_refused() {
        let e = qdrant("http://user:secret@qdrant:6334")
            .validate(VectorStoreKind::Qdrant)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must not carry credentials"), "{e}");
        assert!(
            !e.contains("secret"),
            "the error repeats the credential: {e}"
        );
        let e = qdrant("qdrant:6334")
            .validate(VectorStoreKind::Qdrant)
            .unwrap_err()
            .to_string();
        assert!(e.contains("http://"), "{e}");
        qdrant("https://qdrant.example:6334/")
            .validate(VectorStoreKind::Qdrant)
            .unwrap();
    }

    #[test]
    fn a_bad_collection_name_is_refused() {
        let mut c = qdrant("http://qdrant:6334");
        c.collection = "a/b".into();
        let e = c.validate(VectorStoreKind::Qdrant).unwrap_err().to_string();
        assert!(e.contains("qdrant.collection"), "{e}");
    }

    #[test]
    fn the_api_key_comes_from_the_file_first_then_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "from-file\n").unwrap();
        let env = |k: &str| (k == API_KEY_ENV).then(|| "from-env".to_string());
        let mut c = qdrant("http://q:6334");
        assert_eq!(c.api_key(env).unwrap().as_deref(), Some("from-env"));
        c.api_key_file = Some(file.clone());
        assert_eq!(c.api_key(env).unwrap().as_deref(), Some("from-file"));
        std::fs::write(&file, "\n").unwrap();
        let e = c.api_key(env).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
        c.api_key_file = None;
        assert_eq!(c.api_key(|_| None).unwrap(), None);
    }
}
