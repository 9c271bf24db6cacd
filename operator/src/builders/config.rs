//! Engine configuration (ConfigMap) and admin token (Secret).

use std::collections::BTreeMap;

use instant_db_crds::{InstantDb, LogFormat, LogLevel};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use rand::RngCore;
use serde_json::json;

use super::{DEFAULT_BATCH_SIZE, DEFAULT_MODEL, ENGINE_PORT, Resolved, meta, names};
use crate::error::Result;

/// Key of the engine config in the ConfigMap (mounted at `/etc/instant-db/config.yaml`).
pub const CONFIG_KEY: &str = "config.yaml";
/// Key of the log level in the ConfigMap (mounted at `/etc/instant-db/log-level`): apart from
/// `config.yaml` because the engine follows it while it runs, so a new level is no restart.
pub const LOG_LEVEL_KEY: &str = "log-level";
/// Key of the admin token in the Secret (mounted at `/etc/instant-db/admin/token`).
pub const ADMIN_TOKEN_KEY: &str = "token";

/// The engine's `config.yaml`: only keys the engine knows (it rejects unknown keys).
pub fn engine_config(db: &InstantDb, r: &Resolved) -> serde_json::Value {
    let emb = db.spec.embedding.clone().unwrap_or_default();
    let mut embedding = json!({
        "model": emb.model.clone().unwrap_or_else(|| DEFAULT_MODEL.to_string()),
        "batch_size": emb.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
    });
    if let Some(t) = super::embedding_threads(emb.threads, db.spec.resources.as_ref()) {
        embedding["threads"] = json!(t);
    }
    if let Some(src) = &emb.model_source {
        let dir = match &src.sub_path {
            Some(p) if !p.is_empty() => format!("/models/{}", p.trim_matches('/')),
            _ => "/models".to_string(),
        };
        embedding["model_dir"] = json!(dir);
    }
    let format = match r.log_format {
        LogFormat::Json => "json",
        LogFormat::Text => "text",
    };
    let mut cfg = json!({
        "data_dir": "/data",
        "listen": format!("0.0.0.0:{ENGINE_PORT}"),
        "admin_token_file": "/etc/instant-db/admin/token",
        "embedding": embedding,
        "logging": {"format": format, "level_file": format!("/etc/instant-db/{LOG_LEVEL_KEY}")},
        "health": {"integrity_interval_secs": r.integrity_interval_secs},
    });
    if let Some(endpoint) = db.spec.otel.as_ref().and_then(|o| o.endpoint.clone()) {
        cfg["otel"] = json!({ "endpoint": endpoint });
    }
    cfg
}

/// The engine's `archive.*` for an instance an InstantDbBackupPolicy archives
/// (`spec.continuousArchiving`): the policy's destination folder as the engine reads it (the
/// backups and their `archive/` in one folder, credentials by Secret name) and its bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// Folder URL (`destination_url` of the policy's resolved destination).
    pub destination: String,
    /// `archive.max_lag_secs`.
    pub max_lag_secs: u64,
    /// `archive.max_buffer_bytes`; None keeps the engine's default.
    pub max_buffer_bytes: Option<u64>,
}

/// The `archive:` block of `config.yaml`. Part of the config, so of the pod template's hash:
/// turning archiving on or off, or a new bound, restarts the engine once (it reads its
/// configuration at start), never a resync.
pub fn archive_config(a: &ArchiveSettings) -> serde_json::Value {
    let mut v = json!({"destination": a.destination, "max_lag_secs": a.max_lag_secs});
    if let Some(b) = a.max_buffer_bytes {
        v["max_buffer_bytes"] = json!(b);
    }
    v
}

/// The engine's log level as its level file holds it.
pub fn log_level(r: &Resolved) -> &'static str {
    match r.log_level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

/// ConfigMap holding `config.yaml` (with `archive:` when a policy archives the instance) and
/// `log-level`.
pub fn config_map(
    db: &InstantDb,
    r: &Resolved,
    owner: &OwnerReference,
    archive: Option<&ArchiveSettings>,
) -> Result<ConfigMap> {
    let mut cfg = engine_config(db, r);
    if let Some(a) = archive {
        cfg["archive"] = archive_config(a);
    }
    let yaml = serde_norway::to_string(&cfg)?;
    Ok(ConfigMap {
        metadata: meta(r, owner, names::config_map(&r.name), "engine"),
        data: Some(BTreeMap::from([
            (CONFIG_KEY.to_string(), yaml),
            (LOG_LEVEL_KEY.to_string(), format!("{}\n", log_level(r))),
        ])),
        ..Default::default()
    })
}

/// Secret holding the admin token. The token is generated once by the controller and reused
/// from the existing Secret afterwards.
pub fn admin_secret(r: &Resolved, owner: &OwnerReference, token: &str) -> Secret {
    Secret {
        metadata: meta(r, owner, names::admin_secret(&r.name), "engine"),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            ADMIN_TOKEN_KEY.to_string(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

/// A new random admin token (256 bits, hex).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
