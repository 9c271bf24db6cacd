//! HTTPS for the API (`serve --tls-cert FILE --tls-key FILE`): the same router, behind a rustls
//! handshake.
//!
//! The certificate is looked up on every handshake by [`ReloadingCert`], which stats the two
//! files and reads them again when either changed. cert-manager renews a certificate by
//! rewriting its Secret, and the kubelet swaps the mounted files in place (an atomic symlink
//! flip): new connections get the renewed certificate without a restart, connections already open
//! keep the one they started with. A pair that does not load (a key that does not belong to the
//! certificate, a half-written file) is refused with a warning and the previous pair keeps
//! serving, so a bad rotation never takes the API down.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};

/// A client that opens a connection and sends nothing is dropped after this long, so that idle
/// sockets cannot pile up in the handshake stage.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate chain (PEM, leaf first) and its private key (PEM: PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What `stat` says about one file: a new inode, size or modification time means new content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    // `metadata` follows symlinks: a Secret volume's `tls.crt` is a link into the current
    // `..data` directory, and a rotation changes the file it resolves to.
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        modified: m.modified().ok(),
    })
}

type PairStamp = (Stamp, Stamp);

fn pair_stamp(files: &TlsFiles) -> io::Result<PairStamp> {
    Ok((stamp(&files.cert)?, stamp(&files.key)?))
}

/// The crypto provider of every TLS config the engine builds. Named explicitly: with two
/// providers compiled in (another dependency enables aws-lc-rs), rustls has no default.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks a certificate chain and its key. Every error names the file to fix.
pub fn load_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey> {
    let cert = files.cert.display();
    let key = files.key.display();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::Config(format!(
                "cannot read the TLS certificate {cert} (--tls-cert / INSTANT_DB_TLS_CERT): {e}"
            ))
        })?;
    if chain.is_empty() {
        return Err(Error::Config(format!(
            "the TLS certificate file {cert} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`); \
             give the certificate chain there, leaf first"
        )));
    }
    let private = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        Error::Config(format!(
            "cannot read the TLS private key {key} (--tls-key / INSTANT_DB_TLS_KEY): {e}; \
             it must hold one PEM private key (PKCS#8, PKCS#1 or SEC1)"
        ))
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => Error::Config(format!(
            "the TLS private key {key} does not belong to the certificate {cert}: \
             give the key the certificate was issued for"
        )),
        other => Error::Config(format!(
            "cannot use the TLS certificate {cert} with the key {key}: {other}"
        )),
    })
}

struct Loaded {
    stamp: PairStamp,
    key: Arc<CertifiedKey>,
    /// The last pair that failed to load, so a bad rotation is reported once, not per handshake.
    refused: Option<PairStamp>,
}

/// Serves the certificate of [`TlsFiles`], read again whenever the files change.
pub struct ReloadingCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Loads the pair once; an error here is a startup error (exit 2).
    pub fn load(files: TlsFiles, provider: Arc<CryptoProvider>) -> Result<ReloadingCert> {
        // The stamp is taken before the read: a change between the two is seen as a change at
        // the next handshake and read again, never missed.
        let stamp = pair_stamp(&files).map_err(|e| {
            Error::Config(format!(
                "cannot read the TLS files {} and {}: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
        let key = Arc::new(load_pair(&files, &provider)?);
        Ok(ReloadingCert {
            files,
            provider,
            loaded: Mutex::new(Loaded {
                stamp,
                key,
                refused: None,
            }),
        })
    }

    /// The pair to present now: the files' current content when it loads, else the last good one.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let stamp = pair_stamp(&self.files);
        let mut loaded = match self.loaded.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        let stamp = match stamp {
            Ok(s) if s != loaded.stamp && loaded.refused != Some(s) => s,
            // Unchanged, already refused, or momentarily missing (mid-rotation): keep serving.
            _ => return loaded.key.clone(),
        };
        match load_pair(&self.files, &self.provider) {
            Ok(key) => {
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate changed on disk: new connections get the new one");
                loaded.stamp = stamp;
                loaded.key = Arc::new(key);
                loaded.refused = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the changed TLS files do not load; still serving the previous certificate");
                loaded.refused = Some(stamp);
            }
        }
        loaded.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Builds the acceptor for `files`, checking them now so a bad pair fails the start.
pub fn acceptor(files: TlsFiles) -> Result<TlsAcceptor> {
    let provider = provider();
    let resolver = Arc::new(ReloadingCert::load(files, provider.clone())?);
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    // The server speaks HTTP/1.1 only (axum's `http1` feature).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A TCP listener whose connections come out after a completed TLS handshake. Handshakes run
/// in their own tasks, so a slow or silent client never holds up the others.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> TlsListener {
        TlsListener {
            tcp,
            acceptor,
            handshakes: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
                (tcp, peer) = axum::serve::Listener::accept(&mut self.tcp) => {
                    let acceptor = self.acceptor.clone();
                    self.handshakes.spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => Some((tls, peer)),
                            // Plain HTTP to the HTTPS port, an untrusting client, a scanner.
                            Ok(Err(e)) => {
                                tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                                None
                            }
                            Err(_) => {
                                tracing::debug!(peer = %peer, "TLS handshake timed out");
                                None
                            }
                        }
                    });
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
