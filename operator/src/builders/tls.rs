//! `spec.tls`: the engine serves HTTPS with the certificate of a `kubernetes.io/tls` Secret
//! (what a cert-manager `Certificate` writes), and the operator verifies it.
//!
//! The engine pod mounts the whole Secret (no `items`), so the kubelet swaps renewed files into
//! the running pod and the engine, which re-reads changed files on the next handshake, serves
//! them without a restart. The operator trusts exactly the Secret's CA (`ca.crt`, else
//! `tls.crt` itself for a self-signed certificate) and checks the name of the pod it calls.

use k8s_openapi::api::core::v1::Secret;

use crate::engine_client::{EngineTarget, EngineTls};

/// Where the engine pod mounts the TLS Secret.
pub const TLS_DIR: &str = "/etc/instant-db-tls";
/// Volume name of that mount.
pub const TLS_VOLUME: &str = "tls";
/// Key of the certificate chain in a `kubernetes.io/tls` Secret.
pub const CERT_KEY: &str = "tls.crt";
/// Key of the private key.
pub const KEY_KEY: &str = "tls.key";
/// Key of the issuing CA (cert-manager writes it for CA, Vault and self-signed issuers).
pub const CA_KEY: &str = "ca.crt";

/// `spec.tls.secretName`, when TLS is on.
pub fn secret_name(db: &instant_db_crds::InstantDb) -> Option<&str> {
    db.spec.tls.as_ref().map(|t| t.secret_name.as_str())
}

fn value<'a>(secret: Option<&'a Secret>, key: &str) -> Option<&'a [u8]> {
    secret?
        .data
        .as_ref()?
        .get(key)
        .map(|v| v.0.as_slice())
        .filter(|v| !v.is_empty())
}

/// The key of the Secret whose certificate clients (the operator, Prometheus) trust: `ca.crt`
/// when the Secret has one, else `tls.crt` (self-signed: the certificate is its own CA).
pub fn ca_key(secret: Option<&Secret>) -> &'static str {
    if value(secret, CA_KEY).is_some() || value(secret, CERT_KEY).is_none() {
        CA_KEY
    } else {
        CERT_KEY
    }
}

/// What the operator needs to call the engine over verified TLS, from the observed Secret; the
/// error (for `status`) names the Secret and says what to do.
pub fn engine_tls(
    secret_name: &str,
    secret: Option<&Secret>,
    server_name: String,
) -> Result<EngineTls, String> {
    if secret.is_none() {
        return Err(format!(
            "TLS Secret {secret_name} (spec.tls.secretName) not found: create it (a cert-manager Certificate with secretName {secret_name} does) or remove spec.tls"
        ));
    }
    let missing: Vec<&str> = [CERT_KEY, KEY_KEY]
        .into_iter()
        .filter(|k| value(secret, k).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "TLS Secret {secret_name} (spec.tls.secretName) has no {}: it must be a kubernetes.io/tls Secret with tls.crt and tls.key (and ca.crt for a certificate signed by a CA)",
            missing.join(" and ")
        ));
    }
    let ca = value(secret, ca_key(secret)).unwrap_or_default();
    if !String::from_utf8_lossy(ca).contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "TLS Secret {secret_name}: {} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            ca_key(secret)
        ));
    }
    Ok(EngineTls {
        ca_pem: ca.to_vec(),
        server_name,
    })
}

/// The engine pod of `db` at `ip` as the operator calls it: plain HTTP without `spec.tls`,
/// else HTTPS trusting the observed Secret's CA and checking the pod's DNS name. The error
/// (for `status`) says what is wrong with the Secret.
pub fn engine_target(
    db: &instant_db_crds::InstantDb,
    ip: String,
    tls_secret: Option<&Secret>,
) -> Result<EngineTarget, String> {
    let Some(secret_name) = secret_name(db) else {
        return Ok(EngineTarget::http(ip));
    };
    let name = db.metadata.name.as_deref().unwrap_or_default();
    let namespace = db.metadata.namespace.as_deref().unwrap_or_default();
    let tls = engine_tls(
        secret_name,
        tls_secret,
        super::names::pod_dns(name, namespace),
    )?;
    Ok(EngineTarget { ip, tls: Some(tls) })
}

/// What is wrong with the TLS Secret of `db` (None without `spec.tls`, or when it is usable).
pub fn secret_problem(
    db: &instant_db_crds::InstantDb,
    tls_secret: Option<&Secret>,
) -> Option<String> {
    let name = secret_name(db)?;
    engine_tls(name, tls_secret, String::new()).err()
}
