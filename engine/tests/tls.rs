//! HTTPS for the API: the real server behind rustls, certificates made by a test CA, clients
//! that trust it or not, a certificate renewed on disk while the server runs, and the real
//! binary's startup checks and `--ca-file`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::certs::{Ca, client_trusting};
use instant_db::engine::{Engine, ModelLoading};
use instant_db::server::tls::{TlsFiles, TlsListener, acceptor};
use serde_json::json;

struct HttpsServer {
    port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<instant_db::Result<()>>,
}

impl HttpsServer {
    /// The engine served exactly as `serve` does with `--tls-cert/--tls-key`.
    async fn start(data: &std::path::Path, files: TlsFiles) -> HttpsServer {
        let cfg = common::config(data);
        let engine =
            tokio::task::spawn_blocking(move || Engine::open(cfg, ModelLoading::Skip).unwrap())
                .await
                .unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        let listener = TlsListener::new(tcp, acceptor(files).unwrap());
        let state = instant_db::server::AppState::new(engine).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(instant_db::server::run_on(listener, state, async move {
            let _ = stopped.await;
        }));
        HttpsServer { port, stop, handle }
    }

    /// The server with a certificate for `localhost` from `ca`, its files in `certs`.
    async fn with_cert_from(ca: &Ca, data: &std::path::Path, certs: &std::path::Path) -> Self {
        let (cert, key) = ca.leaf(&["localhost"]).write(certs);
        HttpsServer::start(data, TlsFiles { cert, key }).await
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_ingest_and_search_work_for_a_client_trusting_the_ca_and_shut_down_gracefully() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let s = HttpsServer::with_cert_from(&ca, data.path(), certs.path()).await;
    let c = client_trusting(&ca.pem);
    let r = c
        .post(s.url("/api/documents"))
        .json(
            &json!({"title": "Quokka policy", "text": "Quokkas may visit the office on Fridays."}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let hits: serde_json::Value = c
        .post(s.url("/api/search"))
        .json(&json!({"query": "quokkas", "mode": "keyword"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hits["hits"].as_array().unwrap().len(), 1, "{hits}");
    assert_eq!(
        c.get(s.url("/health/live")).send().await.unwrap().status(),
        200
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_not_trusting_the_ca_and_plain_http_to_the_https_port_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let s = HttpsServer::with_cert_from(&ca, data.path(), certs.path()).await;

    let stranger = client_trusting(&Ca::new("another CA").pem);
    let err = stranger
        .get(s.url("/health/live"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // The public roots do not vouch for a private CA either.
    let public = reqwest::Client::new();
    assert!(public.get(s.url("/health/live")).send().await.is_err());
    // Plain HTTP gets no HTTP answer from the HTTPS port.
    let plain = reqwest::Client::new()
        .get(format!("http://localhost:{}/health/live", s.port))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    // The server still serves those who trust it.
    let c = client_trusting(&ca.pem);
    assert_eq!(
        c.get(s.url("/health/live")).send().await.unwrap().status(),
        200
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_reaches_new_connections_without_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let s = HttpsServer::with_cert_from(&old_ca, data.path(), certs.path()).await;
    // A fresh client per request: a pooled connection would keep its old handshake.
    let get = |ca: &str| {
        let c = client_trusting(ca);
        let url = s.url("/health/live");
        async move { c.get(url).send().await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(get(&old_ca.pem).await.unwrap(), 200);
    assert!(get(&new_ca.pem).await.is_err());

    // A half-done rotation (a key that does not belong to the certificate) is refused and the
    // previous certificate keeps serving.
    let renewed = new_ca.leaf(&["localhost"]);
    let stray = new_ca.leaf(&["localhost"]);
    std::fs::write(certs.path().join("tls.crt"), &renewed.cert_pem).unwrap();
    std::fs::write(certs.path().join("tls.key"), &stray.key_pem).unwrap();
    assert_eq!(get(&old_ca.pem).await.unwrap(), 200);
    assert!(get(&new_ca.pem).await.is_err());

    // The complete renewal is served from the next connection on.
    renewed.write(certs.path());
    assert_eq!(get(&new_ca.pem).await.unwrap(), 200);
    assert!(get(&old_ca.pem).await.is_err());
    s.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn instant_db(data: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_instant-db"));
    c.env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", std::env::temp_dir());
    c.args(["--log-level", "warn", "--data-dir"]).arg(data);
    c.env_remove("INSTANT_DB_CA_FILE")
        .env_remove("INSTANT_DB_TLS_CERT")
        .env_remove("INSTANT_DB_TLS_KEY");
    c
}

#[test]
fn serve_refuses_half_a_tls_configuration_and_a_mismatched_key_with_exit_2_naming_the_file() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = ca.leaf(&["localhost"]).write(certs.path());
    let listen = format!("127.0.0.1:{}", free_port());

    let out = instant_db(data.path())
        .args(["serve", "--listen", &listen, "--tls-cert"])
        .arg(&cert)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");

    let out = instant_db(data.path())
        .args(["serve", "--listen", &listen, "--tls-key"])
        .arg(&key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tls-cert"), "{stderr}");

    let other = certs.path().join("other.key");
    std::fs::write(&other, ca.leaf(&["localhost"]).key_pem).unwrap();
    let out = instant_db(data.path())
        .args(["serve", "--listen", &listen, "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&other)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&*other.to_string_lossy()) && stderr.contains("does not belong"),
        "{stderr}"
    );

    let missing = certs.path().join("missing.crt");
    let out = instant_db(data.path())
        .args(["serve", "--listen", &listen])
        .env("INSTANT_DB_TLS_CERT", &missing)
        .env("INSTANT_DB_TLS_KEY", &key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&*missing.to_string_lossy()), "{stderr}");
}

#[test]
fn an_https_listener_off_loopback_still_needs_api_keys() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = Ca::new("test CA").leaf(&["localhost"]).write(certs.path());
    let out = instant_db(data.path())
        .args(["serve", "--listen", &format!("0.0.0.0:{}", free_port())])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env_remove("INSTANT_DB_API_KEYS_DIR")
        .env_remove("INSTANT_DB_ADMIN_TOKEN_FILE")
        .env_remove("INSTANT_DB_ADMIN_TOKEN")
        .env_remove("INSTANT_DB_INSECURE_NO_AUTH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("without authentication"), "{stderr}");
}

/// Kills the server when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_cli_searches_an_https_server_with_ca_file_and_says_what_to_do_without_it() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = ca.leaf(&["localhost"]).write(certs.path());
    let ca_file = certs.path().join("ca.crt");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let port = free_port();
    let server = format!("https://localhost:{port}");
    let _child = Child(
        instant_db(data.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = client_trusting(&ca.pem);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = std::time::Instant::now();
    while rt
        .block_on(client.get(format!("{server}/health/live")).send())
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the HTTPS server did not come up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let out = instant_db(elsewhere.path())
        .args([
            "--format",
            "json",
            "stats",
            "--server",
            &server,
            "--ca-file",
        ])
        .arg(&ca_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = instant_db(elsewhere.path())
        .args([
            "search", "anything", "--mode", "keyword", "--server", &server,
        ])
        .env("INSTANT_DB_CA_FILE", &ca_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = instant_db(elsewhere.path())
        .args([
            "search", "anything", "--mode", "keyword", "--server", &server,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--ca-file"), "{stderr}");
}

/// A TLS connection to `port` trusting exactly `ca_pem`, for requests written byte by byte.
async fn raw_tls(
    ca_pem: &str,
    port: u16,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(instant_db::server::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_a_head_the_http_library_refuses_gets_the_json_error_too() {
    use common::raw_http::{exchange, get, long_target_request};
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let s = HttpsServer::with_cert_from(&ca, data.path(), certs.path()).await;
    let a = exchange(raw_tls(&ca.pem, s.port).await, long_target_request()).await;
    assert_eq!(a.error_code(414), "uri_too_long");
    let many: String = (0..5000).map(|i| format!("h{i}:\r\n")).collect();
    let a = exchange(raw_tls(&ca.pem, s.port).await, get("/health/live", &many)).await;
    assert_eq!(a.error_code(431), "headers_too_large");
    // An ordinary request on such a connection is answered as usual.
    let a = exchange(raw_tls(&ca.pem, s.port).await, get("/health/live", "")).await;
    assert_eq!(a.status, 200, "{a:?}");
    s.stop().await;
}
