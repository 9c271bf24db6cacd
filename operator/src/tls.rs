//! The process's TLS crypto provider, chosen explicitly.
//!
//! rustls picks its process default provider from its crate features, and panics on the first
//! TLS client when both `ring` and `aws-lc-rs` are on. Which features are on depends on what is
//! built together: `object_store` (the engine's) turns on `aws-lc-rs`, the workspace's own
//! `rustls` turns on `ring`, so `cargo build -p instant-db -p instant-db-operator` (the image
//! build) made an operator binary that panicked in `kube::Client::try_default`. Installing one
//! provider at start makes the binary independent of how it was built.

/// Installs `ring` as the process default crypto provider, unless one is installed already.
pub fn install_default_crypto_provider() {
    // An Err means a provider is already installed (by an earlier call): nothing to do.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
