//! API keys and roles over real HTTP: the real server (and the real binary where the start-up
//! decision is what is tested), real SQLite, the real model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::moto::free_port;
use common::{ADMIN_TOKEN, TestServer};
use serde_json::{Value, json};

const READ_KEY: &str = "test-read-key-0123456789";
const WRITE_KEY: &str = "test-write-key-0123456789";

/// Writes the key files the way the operator mounts them: `<dir>/read`, `<dir>/write`.
fn key_files(dir: &Path) -> std::path::PathBuf {
    let keys = dir.join("api");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("read"), format!("{READ_KEY}\n")).unwrap();
    std::fs::write(keys.join("write"), format!("{WRITE_KEY}\n")).unwrap();
    std::fs::write(dir.join("admin-token"), ADMIN_TOKEN).unwrap();
    keys
}

async fn server_with_keys(dir: &Path, metrics_requires_key: bool) -> TestServer {
    let keys = key_files(dir);
    let mut cfg = common::config(&dir.join("data"));
    cfg.auth.keys_dir = Some(keys);
    cfg.auth.metrics_requires_key = metrics_requires_key;
    cfg.admin_token_file = Some(dir.join("admin-token"));
    let engine =
        instant_db::engine::Engine::open(cfg, instant_db::engine::ModelLoading::Required).unwrap();
    TestServer::start(engine).await
}

fn search_body() -> Value {
    json!({"query": "backup", "mode": "keyword"})
}

fn doc_body() -> Value {
    json!({"documents": [{"text": "Keys guard the write path.", "name": "auth-note"}]})
}

/// (status, JSON body, WWW-Authenticate header) of a request with an optional key.
async fn call(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let mut req = c.request(method, url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.json().await.unwrap_or(Value::Null), www)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_search_is_401_with_a_bearer_challenge_when_keys_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_keys(dir.path(), false).await;
    let c = reqwest::Client::new();
    let (status, body, www) = call(
        &c,
        reqwest::Method::POST,
        s.url("/api/search"),
        None,
        Some(search_body()),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{body}"
    );
    assert_eq!(www.as_deref(), Some("Bearer"));
    // a wrong key of the right length is no better than none
    let wrong = format!("{}X", &READ_KEY[..READ_KEY.len() - 1]);
    assert_eq!(wrong.len(), READ_KEY.len());
    let (status, body, www) = call(
        &c,
        reqwest::Method::POST,
        s.url("/api/search"),
        Some(&wrong),
        Some(search_body()),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(www.as_deref(), Some("Bearer"));
    assert!(!body.to_string().contains(&wrong), "{body}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_opens_its_endpoints_and_gets_403_naming_the_role_above() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_keys(dir.path(), false).await;
    let c = reqwest::Client::new();
    use reqwest::Method as M;

    // read: search, list, stats, config; not ingest
    for (m, path, body) in [
        (M::POST, "/api/search", Some(search_body())),
        (M::GET, "/api/documents", None),
        (M::GET, "/api/stats", None),
        (M::GET, "/api/config", None),
    ] {
        let (status, b, _) = call(&c, m, s.url(path), Some(READ_KEY), body).await;
        assert_eq!(status, 200, "{path}: {b}");
    }
    let (status, b, _) = call(
        &c,
        M::POST,
        s.url("/api/documents"),
        Some(READ_KEY),
        Some(doc_body()),
    )
    .await;
    assert_eq!(status, 403, "{b}");
    assert_eq!(b["error"]["code"], "forbidden");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("`write`"),
        "{b}"
    );
    let (status, _, _) = call(
        &c,
        M::DELETE,
        s.url("/api/documents/x"),
        Some(READ_KEY),
        None,
    )
    .await;
    assert_eq!(status, 403);

    // write: ingest and delete; not /admin/*
    let (status, b, _) = call(
        &c,
        M::POST,
        s.url("/api/documents"),
        Some(WRITE_KEY),
        Some(doc_body()),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    let (status, b, _) = call(
        &c,
        M::POST,
        s.url("/api/search"),
        Some(WRITE_KEY),
        Some(search_body()),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    let (status, b, _) = call(
        &c,
        M::POST,
        s.url("/admin/integrity"),
        Some(WRITE_KEY),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 403, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("`admin`"),
        "{b}"
    );
    let (status, _, _) = call(&c, M::GET, s.url("/admin/backups"), Some(READ_KEY), None).await;
    assert_eq!(status, 403);

    // admin: everything
    for (m, path, body) in [
        (M::POST, "/api/search", Some(search_body())),
        (M::POST, "/api/documents", Some(doc_body())),
        (M::POST, "/admin/integrity", Some(json!({}))),
        (M::GET, "/admin/backups", None),
    ] {
        let (status, b, _) = call(&c, m, s.url(path), Some(ADMIN_TOKEN), body).await;
        assert_eq!(status, 200, "{path}: {b}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_the_description_are_open_metrics_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_keys(&dir.path().join("a"), false).await;
    let c = reqwest::Client::new();
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/health/detailed",
        "/api/openapi.json",
        "/metrics",
    ] {
        let r = c.get(s.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 200, "{path}: {body}");
    }
    s.stop().await;

    let s = server_with_keys(&dir.path().join("b"), true).await;
    assert_eq!(c.get(s.url("/metrics")).send().await.unwrap().status(), 401);
    let r = c
        .get(s.url("/metrics"))
        .bearer_auth(READ_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("instantdb_http_requests_total")
    );
    assert_eq!(
        c.get(s.url("/health/ready")).send().await.unwrap().status(),
        200
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_description_declares_bearer_and_401_403_on_every_protected_operation() {
    let data = tempfile::tempdir().unwrap();
    let engine = instant_db::engine::Engine::open(
        common::config(data.path()),
        instant_db::engine::ModelLoading::Skip,
    )
    .unwrap();
    let s = TestServer::start(engine).await;
    let doc = common::get_json(&reqwest::Client::new(), s.url("/api/openapi.json")).await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut protected = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let open = path.starts_with("/health") || path == "/api/health";
            if open {
                assert!(op.get("security").is_none(), "{method} {path} is open");
                continue;
            }
            protected += 1;
            assert_eq!(op["security"], json!([{"bearer": []}]), "{method} {path}");
            for status in ["401", "403"] {
                assert!(
                    op["responses"].get(status).is_some(),
                    "{method} {path} lacks {status}"
                );
            }
            assert!(
                op["description"].as_str().unwrap().contains("role"),
                "{method} {path}"
            );
        }
    }
    assert!(protected >= 15, "{protected}");
    s.stop().await;
}

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_instant-db"));
    cmd.env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", std::env::temp_dir());
    // The test must not inherit keys or an "insecure" switch from whoever runs it.
    for (k, _) in std::env::vars() {
        if k.starts_with("INSTANT_DB_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--log-level", "warn"]);
    cmd
}

#[test]
fn serve_on_a_network_address_without_keys_exits_2_and_says_what_to_do() {
    let data = tempfile::tempdir().unwrap();
    let out = binary()
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--insecure-no-auth")
            && err.contains("INSTANT_DB_INSECURE_NO_AUTH")
            && err.contains("INSTANT_DB_API_KEYS_DIR"),
        "{err}"
    );
}

/// Starts `serve` on `listen`, waits for it on 127.0.0.1:`port`.
fn spawn_serve(data: &Path, listen: &str, port: u16, extra: &[&str]) -> std::process::Child {
    let mut child = binary()
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", listen])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_listening(&mut child, port);
    child
}

fn stop(mut child: std::process::Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_keys_stays_open_on_loopback_and_on_a_network_address_only_when_told_insecure()
 {
    let dir = tempfile::tempdir().unwrap();
    let c = reqwest::Client::new();
    for (listen_host, extra) in [
        ("127.0.0.1", &[][..]),
        ("0.0.0.0", &["--insecure-no-auth"][..]),
    ] {
        let port = free_port();
        let data = dir.path().join(listen_host);
        let child = spawn_serve(&data, &format!("{listen_host}:{port}"), port, extra);
        let (status, b, _) = call(
            &c,
            reqwest::Method::POST,
            format!("http://127.0.0.1:{port}/api/documents"),
            None,
            Some(doc_body()),
        )
        .await;
        stop(child);
        assert_eq!(status, 200, "{listen_host}: {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_against_a_server_send_the_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_keys(dir.path(), false).await;
    let key_file = dir.path().join("client-key");
    std::fs::write(&key_file, format!("{READ_KEY}\n")).unwrap();
    let base = s.base.clone();
    let run = move |args: Vec<String>, env: Option<(&'static str, &'static str)>| {
        let mut cmd = binary();
        cmd.args(&args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let search = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "--format", "json", "search", "backup", "--mode", "keyword", "--server", &base,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let with_file = search(&["--api-key-file", key_file.to_str().unwrap()]);
    let none = search(&[]);
    let stats = vec!["stats".to_string(), "--server".into(), s.base.clone()];
    let outs = tokio::task::spawn_blocking(move || {
        (
            run(with_file, None),
            run(none, None),
            run(stats, Some(("INSTANT_DB_API_KEY", READ_KEY))),
        )
    })
    .await
    .unwrap();
    let (ok, refused, stats) = outs;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("401") && err.contains("Bearer"), "{err}");
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    s.stop().await;
}

#[test]
fn the_demo_works_when_keys_are_configured_for_serve() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_files(dir.path());
    let out = binary()
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--format", "json", "demo", "--corpus"])
        .arg(common::demo_corpus())
        .env("INSTANT_DB_API_KEYS_DIR", &keys)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
