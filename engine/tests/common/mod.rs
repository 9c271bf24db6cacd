//! Shared helpers of the engine's integration tests: real model, real SQLite, real HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod archiving;
pub mod azurite;
pub mod certs;
pub mod docs;
pub mod moto;
pub mod raw_http;

use std::path::{Path, PathBuf};

use instant_db::config::Config;
use instant_db::engine::{Engine, ModelLoading};
use instant_db::ingest::{IngestOptions, NoProgress};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn demo_corpus() -> PathBuf {
    repo_root().join("demo-corpus")
}

/// Question → expected file pairs from `docs/demo-questions.md`'s first table, asserted in
/// every search mode.
pub fn demo_questions() -> Vec<(String, String)> {
    let out = question_rows(true);
    assert!(out.len() >= 8, "docs/demo-questions.md lost its table");
    out
}

/// Every question of `docs/demo-questions.md`, both tables (the second is asserted in the
/// default hybrid mode only).
pub fn every_demo_question() -> Vec<(String, String)> {
    let out = question_rows(false);
    assert!(out.len() >= 13, "docs/demo-questions.md lost its tables");
    out
}

fn question_rows(first_table_only: bool) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("docs/demo-questions.md")).unwrap();
    let mut out = vec![];
    for line in text.lines() {
        if first_table_only && line.starts_with("## More") {
            break;
        }
        let cells: Vec<&str> = line
            .split('|')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if cells.len() == 2 && cells[0].ends_with('?') {
            out.push((cells[0].to_string(), cells[1].to_string()));
        }
    }
    out
}

pub fn config(data: &Path) -> Config {
    let mut cfg = Config {
        data_dir: data.to_path_buf(),
        ..Config::default()
    };
    // Tests keep backups in temp directories of their own, apart from the data directory.
    cfg.backup.allowed_roots = vec![std::env::temp_dir()];
    cfg
}

/// [`config`] for a server the tests reach with [`ADMIN_TOKEN`] (its token file written into
/// `data`, created), with thresholds that do not depend on the host.
pub fn admin_config(data: &Path) -> Config {
    std::fs::create_dir_all(data).unwrap();
    let token_file = data.join("admin-token");
    std::fs::write(&token_file, ADMIN_TOKEN).unwrap();
    let mut cfg = config(data);
    cfg.admin_token_file = Some(token_file);
    cfg.health.thresholds = host_independent_thresholds();
    cfg
}

/// A client on one bucket of the test S3 server, to look at and tamper with stored objects
/// (moto takes any key).
pub fn bucket_client(endpoint: &str, bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap()
}

/// The demo corpus is ingested as it is: nothing in it needs excluding.
pub fn demo_options() -> IngestOptions {
    IngestOptions::default()
}

pub fn engine_with_demo(data: &Path) -> Engine {
    let engine = Engine::open(config(data), ModelLoading::Required).unwrap();
    let report =
        instant_db::ingest::ingest_paths(&engine, &[demo_corpus()], &demo_options(), &NoProgress)
            .unwrap();
    assert_eq!(report.failed, 0, "{:?}", report.problems);
    assert!(report.added >= 13, "{report:?}");
    engine
}

pub struct TestServer {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<instant_db::Result<()>>>,
}

impl TestServer {
    pub async fn start(engine: Engine) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = instant_db::server::AppState::new(engine).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(instant_db::server::run_on(listener, state, async move {
            let _ = rx.await;
        }));
        TestServer {
            base: format!("http://{addr}"),
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

/// GET a URL and decode its JSON body.
pub async fn get_json(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> serde_json::Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

/// GET a URL and return its body as text (for `/metrics`).
pub async fn get_text(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

/// Resource thresholds no test machine crosses: a full shared disk or a busy CPU would make
/// the engine report itself unready, which these tests do not exercise (sysres has its own).
pub fn host_independent_thresholds() -> instant_db::sysres::Thresholds {
    instant_db::sysres::Thresholds {
        cpu_percent_warn: 101.0,
        cpu_percent_critical: 101.0,
        memory_percent_warn: 101.0,
        memory_percent_critical: 101.0,
        disk_free_percent_min: 0.0,
        disk_free_percent_critical: 0.0,
        disk_free_bytes_min: 0,
        disk_free_bytes_critical: 0,
    }
}

/// The same thresholds as a configuration file for the real binary.
pub const HOST_INDEPENDENT_CONFIG: &str = "health:
  thresholds:
    cpu_percent_warn: 101
    cpu_percent_critical: 101
    memory_percent_warn: 101
    memory_percent_critical: 101
    disk_free_percent_min: 0
    disk_free_percent_critical: 0
    disk_free_bytes_min: 0
    disk_free_bytes_critical: 0
";

/// `len` incompressible pseudo-random bytes, the same every run.
pub fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Waits until `child` (a `serve`) accepts connections on 127.0.0.1:`port`; panics when it
/// exits first or takes a minute.
pub fn wait_listening(child: &mut std::process::Child, port: u16) {
    for _ in 0..600 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("server exited before listening: {status:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("server did not start on port {port}");
}

/// The admin token the tests configure their servers with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A client that sends the test admin token with every request: a server with an admin token
/// has keys, so its `/api/*` needs one too (the admin token opens every role). A request that
/// sets its own `Authorization` header overrides it.
pub fn admin_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {ADMIN_TOKEN}")).unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// POST a JSON body to an admin endpoint with the test token: (status, JSON body or null).
pub async fn admin(
    c: &reqwest::Client,
    s: &TestServer,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = c
        .post(s.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// GET an admin endpoint with the test token and decode its JSON body.
pub async fn admin_get_json(c: &reqwest::Client, s: &TestServer, path: &str) -> serde_json::Value {
    c.get(s.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls a backup job until it is no longer running and returns its last record.
pub async fn wait_backup(c: &reqwest::Client, s: &TestServer, id: &str) -> serde_json::Value {
    for _ in 0..1200 {
        let job = admin_get_json(c, s, &format!("/admin/backups/{id}")).await;
        if job["status"] != "running" {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("backup {id} did not finish");
}

/// Every demo question finds its document first, over the server's search API.
pub async fn assert_demo_questions_answered(c: &reqwest::Client, s: &TestServer) {
    for (q, expected) in demo_questions() {
        let r = c
            .post(s.url("/api/search"))
            .json(&serde_json::json!({"query": q}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{q}");
        let r: serde_json::Value = r.json().await.unwrap();
        let top = r["hits"][0]["document"]["source"].as_str().unwrap_or("");
        assert!(top.ends_with(&expected), "{q}: {r}");
    }
}

/// Reads one HTTP/1.1 answer from a raw connection: its head (status line and headers) and body.
pub async fn read_http_answer(conn: &mut tokio::net::TcpStream) -> (String, String) {
    let mut raw = Vec::new();
    let answer = raw_http::read_answer(conn, &mut raw)
        .await
        .expect("connection closed without an answer");
    assert!(
        answer.head.to_ascii_lowercase().contains("content-length:"),
        "no content-length: {answer:?}"
    );
    (answer.head, answer.body)
}

/// An engine on `cfg` without the model (keyword search only), opened off the async runtime.
pub async fn open_without_model(cfg: Config) -> Engine {
    tokio::task::spawn_blocking(move || Engine::open(cfg, ModelLoading::Skip).unwrap())
        .await
        .unwrap()
}
