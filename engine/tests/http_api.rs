//! The HTTP API over a real socket: search, documents, uploads, directory ingest, errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use serde_json::{Value, json};

async fn demo_server(allowed_root: Option<&std::path::Path>) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = tokio::task::spawn_blocking({
        let p = dir.path().to_path_buf();
        move || common::engine_with_demo(&p)
    })
    .await
    .unwrap();
    if let Some(root) = allowed_root {
        engine.config.ingest.allowed_roots = vec![root.to_path_buf()];
    }
    engine.config.limits.max_upload_bytes = 64 * 1024;
    let server = TestServer::start(engine).await;
    (dir, server)
}

async fn post(c: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = c.post(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_over_http_answers_the_demo_questions() {
    let (_dir, s) = demo_server(None).await;
    let c = reqwest::Client::new();
    for (q, expected) in common::demo_questions() {
        let (status, body) = post(&c, s.url("/api/search"), json!({"query": q, "top_k": 3})).await;
        assert_eq!(status, 200, "{body}");
        let top = body["hits"][0]["document"]["source"].as_str().unwrap();
        assert!(top.ends_with(&expected), "{q} → {top}");
        assert!(
            body["hits"][0]["chunk"]["text"].is_string()
                && body["hits"][0]["highlights"].is_array()
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_json_error() {
    let (_dir, s) = demo_server(None).await;
    let c = reqwest::Client::new();
    let cases = [
        (json!({"query": "   "}), 400, "empty"),
        (json!({"query": "x", "filter": "size>"}), 400, "no value"),
        (
            json!({"query": "x", "filter": "a?b"}),
            400,
            "unknown operator",
        ),
        (
            json!({"query": "x", "filter": {"size": {"bigger": 1}}}),
            400,
            "bigger",
        ),
        (
            json!({"query": "x", "mode": "fuzzy"}),
            400,
            "invalid request body",
        ),
        (json!({"query": "x", "top_k": 0}), 400, "top_k"),
        (
            json!({"query": "x", "unknown_field": 1}),
            400,
            "unknown field",
        ),
    ];
    for (body, status, needle) in cases {
        let (got, reply) = post(&c, s.url("/api/search"), body.clone()).await;
        assert_eq!(got, status, "{body} → {reply}");
        let msg = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{body} → {msg}");
        assert!(reply["error"]["code"].is_string());
    }
    let r = c
        .post(s.url("/api/search"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c.get(s.url("/api/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_documents_can_be_added_read_searched_and_deleted() {
    let (_dir, s) = demo_server(None).await;
    let c = reqwest::Client::new();
    let (status, report) = post(&c, s.url("/api/documents"), json!({
        "title": "Quokka policy", "text": "Quokkas may visit the office on Fridays.", "metadata": {"team": "facilities"}
    }))
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["added"], 1);
    let (_, again) = post(&c, s.url("/api/documents"), json!({"title": "Quokka policy", "text": "Quokkas may visit the office on Fridays.", "metadata": {"team": "facilities"}})).await;
    assert_eq!(again["unchanged"], 1, "{again}");
    let (_, found) = post(
        &c,
        s.url("/api/search"),
        json!({"query": "quokkas in the office", "filter": "team=facilities"}),
    )
    .await;
    let id = found["hits"][0]["document"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(found["hits"].as_array().unwrap().len(), 1);
    let doc: Value = common::get_json(&c, s.url(&format!("/api/documents/{id}"))).await;
    assert_eq!(doc["metadata"]["team"], "facilities");
    assert!(!doc["chunks"].as_array().unwrap().is_empty());
    let list: Value = common::get_json(&c, s.url("/api/documents?limit=100")).await;
    assert_eq!(list.as_array().unwrap().len(), 14);
    assert_eq!(
        c.delete(s.url(&format!("/api/documents/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        c.get(s.url(&format!("/api/documents/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.delete(s.url(&format!("/api/documents/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let (_, gone) = post(
        &c,
        s.url("/api/search"),
        json!({"query": "quokkas", "mode": "keyword"}),
    )
    .await;
    assert!(gone["hits"].as_array().unwrap().is_empty(), "{gone}");
    let (status, err) = post(
        &c,
        s.url("/api/documents"),
        json!({"text": "x", "format": "exe"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown format")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_size_limited_and_stay_inside_the_data_directory() {
    let (dir, s) = demo_server(None).await;
    let c = reqwest::Client::new();
    let upload = |name: &str, bytes: Vec<u8>| {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_string());
        c.post(s.url("/api/process/file"))
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
    };
    let r = upload(
        "../../escape.md",
        b"# Escape\n\nCapybaras run the build pipeline.".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let stored = stored_uploads(dir.path(), "escape.md");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].starts_with(dir.path().join("uploads")));
    assert!(
        !dir.path().join("../escape.md").exists()
            && !dir.path().parent().unwrap().join("escape.md").exists()
    );
    let (_, found) = post(
        &c,
        s.url("/api/search"),
        json!({"query": "capybaras build pipeline"}),
    )
    .await;
    let source = found["hits"][0]["document"]["source"].as_str().unwrap();
    assert!(
        source.contains("/uploads/") && source.ends_with("/escape.md"),
        "{source}"
    );
    let r = upload("big.txt", vec![b'a'; 200 * 1024]).await.unwrap();
    assert_eq!(r.status(), 413);
    let r = upload("tool.exe", b"MZ".to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    let reply: Value = r.json().await.unwrap();
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unsupported file type"),
        "{reply}"
    );
    // Not multipart at all: still the API's JSON error, not a plain-text rejection.
    let (status, reply) = post(&c, s.url("/api/process/file"), json!({"file": "x"})).await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data"),
        "{reply}"
    );
    s.stop().await;
}

/// A client still sending an oversized upload reads the 413, not a connection reset: a server that
/// answers and closes with request bytes unread makes the kernel reset the connection, and the
/// reset throws the answer away (reqwest then reports "connection closed before message
/// completed"). Twenty rounds, because the loss is a race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_upload_still_being_sent_gets_its_413_every_time() {
    let (_dir, s) = demo_server(None).await;
    let c = reqwest::Client::new();
    for round in 0..20 {
        let part = reqwest::multipart::Part::bytes(vec![b'a'; 900 * 1024]).file_name("big.txt");
        let r = c
            .post(s.url("/api/process/file"))
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap_or_else(|e| panic!("round {round}: no answer to an oversized upload: {e:?}"));
        assert_eq!(r.status(), 413, "round {round}");
        let reply: Value = r.json().await.unwrap();
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains("limits.max_upload_bytes"),
            "{reply}"
        );
    }
    s.stop().await;
}

/// Files named `name` anywhere under `<data>/uploads/`.
fn stored_uploads(data: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for dir in std::fs::read_dir(data.join("uploads")).unwrap() {
        let p = dir.unwrap().path().join(name);
        if p.is_file() {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_uploads_with_the_same_name_both_stay_and_a_repeat_upload_changes_nothing() {
    let (dir, s) = demo_server(None).await;
    let c = reqwest::Client::new();
    let upload = |bytes: &'static [u8]| {
        let part = reqwest::multipart::Part::bytes(bytes).file_name("notes.md");
        c.post(s.url("/api/process/file"))
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
    };
    let first: &[u8] = b"# Pelican roster\n\nPelicans guard the north warehouse.";
    let second: &[u8] = b"# Heron roster\n\nHerons guard the south warehouse.";
    for (bytes, outcome) in [(first, "added"), (second, "added"), (first, "unchanged")] {
        let r = upload(bytes).await.unwrap();
        assert_eq!(r.status(), 200);
        let report: Value = r.json().await.unwrap();
        assert_eq!(report[outcome], 1, "{report}");
    }
    assert_eq!(stored_uploads(dir.path(), "notes.md").len(), 2);
    for (query, title) in [("pelicans", "Pelican roster"), ("herons", "Heron roster")] {
        let (_, found) = post(
            &c,
            s.url("/api/search"),
            json!({"query": query, "mode": "keyword"}),
        )
        .await;
        let hits = found["hits"].as_array().unwrap();
        assert_eq!(hits.len(), 1, "{found}");
        assert_eq!(hits[0]["document"]["title"], title);
        assert!(
            hits[0]["document"]["source"]
                .as_str()
                .unwrap()
                .ends_with("/notes.md")
        );
    }
    let stats: Value = common::get_json(&c, s.url("/api/stats")).await;
    assert_eq!(stats["documents"], 15);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_ingest_skips_symlinks_that_lead_outside_the_allowed_roots() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let docs = root.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::create_dir_all(root.path().join("shared")).unwrap();
    std::fs::create_dir_all(outside.path().join("private")).unwrap();
    std::fs::write(docs.join("a.md"), "# Axolotl\n\nAxolotls regrow limbs.").unwrap();
    std::fs::write(
        root.path().join("shared/inside.md"),
        "# Narwhal\n\nNarwhals have tusks.",
    )
    .unwrap();
    std::fs::write(
        outside.path().join("secret.md"),
        "# Secret\n\nWombat vault code is 4711.",
    )
    .unwrap();
    std::fs::write(
        outside.path().join("private/deep.md"),
        "# Deep\n\nWombat tunnels are private.",
    )
    .unwrap();
    let link = std::os::unix::fs::symlink;
    link(outside.path().join("secret.md"), docs.join("secret.md")).unwrap();
    link(outside.path().join("private"), docs.join("private")).unwrap();
    link(root.path().join("shared/inside.md"), docs.join("inside.md")).unwrap();
    let (_dir, s) = demo_server(Some(root.path())).await;
    let c = reqwest::Client::new();
    let (status, report) = post(&c, s.url("/api/process/directory"), json!({"path": docs})).await;
    assert_eq!(status, 200, "{report}");
    // The link that stays inside the root is followed; the two leading out are not.
    assert_eq!(report["added"], 2, "{report}");
    assert_eq!(report["skipped"], 2, "{report}");
    for name in ["secret.md", "private"] {
        let p = report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["source"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not reported: {report}"));
        assert_eq!(p["outcome"], "skipped");
        assert!(
            p["reason"]
                .as_str()
                .unwrap()
                .contains("outside ingest.allowed_roots"),
            "{p}"
        );
    }
    let (_, found) = post(
        &c,
        s.url("/api/search"),
        json!({"query": "wombat", "mode": "keyword"}),
    )
    .await;
    assert!(found["hits"].as_array().unwrap().is_empty(), "{found}");
    // Named directly, a link leading out is refused as a whole.
    let (status, _) = post(
        &c,
        s.url("/api/process/directory"),
        json!({"path": docs.join("secret.md")}),
    )
    .await;
    assert_eq!(status, 403);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_ingest_only_reads_under_allowed_roots() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("docs")).unwrap();
    std::fs::write(
        root.path().join("docs/a.md"),
        "# Axolotl\n\nAxolotls regrow limbs.",
    )
    .unwrap();
    let (_dir, s) = demo_server(Some(root.path())).await;
    let c = reqwest::Client::new();
    let (status, report) = post(
        &c,
        s.url("/api/process/directory"),
        json!({"path": root.path().join("docs")}),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["added"], 1);
    let (status, reply) = post(&c, s.url("/api/process/directory"), json!({"path": "/etc"})).await;
    assert_eq!(status, 403);
    assert_eq!(reply["error"]["code"], "forbidden", "{reply}");
    let sneaky = format!("{}/docs/../../", root.path().display());
    let (status, reply) = post(&c, s.url("/api/process/directory"), json!({"path": sneaky})).await;
    assert_eq!(status, 400);
    assert!(
        reply["error"]["message"].as_str().unwrap().contains(".."),
        "{reply}"
    );
    let missing = root.path().join("nope");
    let (status, reply) = post(
        &c,
        s.url("/api/process/directory"),
        json!({"path": missing}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(reply["error"]["code"], "invalid_input", "{reply}");
    let (status, reply) = post(&c, s.url("/api/process/directory"), json!({"folder": "x"})).await;
    assert_eq!(status, 400);
    assert!(reply["error"]["message"].is_string(), "{reply}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_config_health_and_openapi_are_served() {
    let (_dir, s) = demo_server(None).await;
    let c = reqwest::Client::new();
    let stats: Value = common::get_json(&c, s.url("/api/stats")).await;
    assert_eq!(stats["documents"], 13);
    assert_eq!(stats["index"]["vectors"], stats["embeddings"]);
    let cfg: Value = common::get_json(&c, s.url("/api/config")).await;
    assert_eq!(cfg["embedding"]["model"], "all-MiniLM-L6-v2");
    let health = c.get(s.url("/api/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let spec: Value = common::get_json(&c, s.url("/api/openapi.json")).await;
    for path in [
        "/api/search",
        "/api/documents",
        "/api/documents/{id}",
        "/api/process/file",
        "/api/process/directory",
        "/health/ready",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the OpenAPI description"
        );
    }
    assert!(spec["components"]["schemas"]["SearchRequest"].is_object());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_cli_ingest_reports_refused_paths_and_ingests_the_others() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("docs")).unwrap();
    std::fs::write(
        root.path().join("docs/a.md"),
        "# Axolotl\n\nAxolotls regrow limbs.",
    )
    .unwrap();
    let (dir, s) = demo_server(Some(root.path())).await;
    let base = s.base.clone();
    let docs = root.path().join("docs");
    let cli_data = dir.path().join("cli");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_instant-db"))
            .env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", std::env::temp_dir())
            .args(["--log-level", "warn", "--format", "json", "--data-dir"])
            .arg(cli_data)
            .args(["ingest", "--server", &base, "/definitely/not/here", "/etc"])
            .arg(&docs)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["added"], 1, "{report}");
    assert_eq!(report["failed"], 2, "{report}");
    let reasons: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("cannot read"), "{reasons:?}");
    assert!(reasons[1].contains("allowed_roots"), "{reasons:?}");
    s.stop().await;
}

/// A server over an empty data directory, with the configuration adjusted first.
async fn empty_server(
    configure: impl FnOnce(&mut instant_db::config::Config) + Send + 'static,
) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_path_buf();
    let engine = tokio::task::spawn_blocking(move || {
        let mut cfg = common::config(&p);
        configure(&mut cfg);
        instant_db::engine::Engine::open(cfg, instant_db::engine::ModelLoading::Required).unwrap()
    })
    .await
    .unwrap();
    (dir, TestServer::start(engine).await)
}

/// Asserts the API's error shape and returns the code.
async fn json_error(r: reqwest::Response, status: u16) -> (String, String) {
    assert_eq!(r.status(), status, "{}", r.url());
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{}: not JSON",
        r.url()
    );
    let body: Value = r.json().await.unwrap();
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_string();
    let message = body["error"]["message"]
        .as_str()
        .expect("error.message")
        .to_string();
    assert!(!message.is_empty());
    (code, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_unknown_routes_and_wrong_methods_answer_json_errors() {
    let (_dir, s) = empty_server(|_| {}).await;
    let c = reqwest::Client::new();
    let (code, msg) = json_error(
        c.get(s.url("/api/documents?limit=lots"))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(code, "invalid_input");
    assert!(msg.contains("limit"), "{msg}");
    let (code, _) = json_error(
        c.post(s.url("/api/search"))
            .header("content-type", "text/plain")
            .body(r#"{"query": "x"}"#)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(code, "invalid_input");
    let (code, _) = json_error(
        c.post(s.url("/api/process/file"))
            .json(&json!({"file": "a.md"}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(code, "invalid_input");
    let (code, _) = json_error(c.get(s.url("/nowhere")).send().await.unwrap(), 404).await;
    assert_eq!(code, "not_found");
    let (code, msg) = json_error(c.delete(s.url("/api/search")).send().await.unwrap(), 405).await;
    assert_eq!(code, "method_not_allowed");
    assert!(msg.contains("DELETE"), "{msg}");
    let (code, _) = json_error(c.put(s.url("/health")).send().await.unwrap(), 405).await;
    assert_eq!(code, "method_not_allowed");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_uri_and_oversized_headers_answer_json_414_and_431() {
    // No model needed: the limits are in front of everything.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.limits.max_uri_bytes = 1024;
    cfg.limits.max_header_bytes = 4096;
    let engine = common::open_without_model(cfg).await;
    let s = TestServer::start(engine).await;
    let c = reqwest::Client::new();
    let long = "a".repeat(2048);
    let (code, msg) = json_error(
        c.get(s.url(&format!("/api/documents?limit=1&x={long}")))
            .send()
            .await
            .unwrap(),
        414,
    )
    .await;
    assert_eq!(code, "uri_too_long");
    assert!(msg.contains("limits.max_uri_bytes"), "{msg}");
    // Probes too: the limit is in front of routing and auth.
    let (code, _) = json_error(
        c.get(s.url(&format!("/health/live?x={long}")))
            .send()
            .await
            .unwrap(),
        414,
    )
    .await;
    assert_eq!(code, "uri_too_long");
    let (code, msg) = json_error(
        c.get(s.url("/api/documents"))
            .header("x-filler", "b".repeat(8 * 1024))
            .send()
            .await
            .unwrap(),
        431,
    )
    .await;
    assert_eq!(code, "headers_too_large");
    assert!(msg.contains("limits.max_header_bytes"), "{msg}");
    // Within both limits: answered as usual.
    let r = c
        .get(s.url("/api/documents?limit=1"))
        .header("x-filler", "b".repeat(1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_failures_are_tracked_by_route_and_kind_in_health_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path());
    let engine = common::open_without_model(cfg).await;
    // A file found damaged: data routes answer 503 database_damaged, a failure of the engine.
    engine.store.mark_damaged("test: malformed").unwrap();
    let s = TestServer::start(engine).await;
    let c = reqwest::Client::new();
    for _ in 0..2 {
        let (code, _) = json_error(c.get(s.url("/api/documents")).send().await.unwrap(), 503).await;
        assert_eq!(code, "database_damaged");
    }
    // The caller's own mistakes are not the engine's failures.
    json_error(c.get(s.url("/nowhere")).send().await.unwrap(), 404).await;
    let metrics = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"instantdb_errors_total{component="/api/documents",kind="database_damaged"} 2"#
        ),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"kind="not_found""#), "{metrics}");
    // /health/detailed shows the group once the next sample is taken (every 10 s by default);
    // a sample taken between the two failures shows one, the one after both shows two.
    let mut group = Value::Null;
    for _ in 0..300 {
        let d: Value = c
            .get(s.url("/health/detailed"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(g) = d["components"]["errors"]["details"]["recent"]
            .as_array()
            .and_then(|r| r.iter().find(|g| g["component"] == "/api/documents"))
        {
            group = g.clone();
            if group["count"] == 2 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(group["kind"], "database_damaged", "{group}");
    assert_eq!(group["count"], 2, "{group}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_timeout_gets_a_json_503() {
    use tokio::io::AsyncWriteExt;
    let (_dir, s) = empty_server(|c| c.limits.request_timeout_secs = 1).await;
    // A body that never arrives in full keeps the handler waiting past the timeout, whatever
    // the machine's speed.
    let mut conn = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    conn.write_all(b"POST /api/search HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\"")
        .await
        .unwrap();
    let (head, body) = common::read_http_answer(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "timeout", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.request_timeout_secs"),
        "{v}"
    );
    drop(conn);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_429_413_and_400_as_json_errors() {
    let (_dir, s) = empty_server(|c| {
        c.ingest.max_concurrent = 1;
        c.limits.max_request_bytes = 64 * 1024;
        c.search.max_query_chars = 100;
    })
    .await;
    let c = reqwest::Client::new();

    let (code, msg) = json_error(
        c.post(s.url("/api/documents"))
            .json(&json!({"text": "a".repeat(100 * 1024)}))
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    assert_eq!(code, "payload_too_large");
    assert!(msg.contains("limits.max_request_bytes"), "{msg}");

    let (code, msg) = json_error(
        c.post(s.url("/api/search"))
            .json(&json!({"query": "q".repeat(101)}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(code, "invalid_input");
    assert!(msg.contains("100"), "{msg}");

    // One long ingest holds the only slot; a second ingest meanwhile is refused.
    let docs: Vec<Value> = (0..150)
        .map(|i| json!({"name": format!("n{i}"), "text": format!("Note {i} about the slow ingest of walruses, item {i}.")}))
        .collect();
    let big = tokio::spawn({
        let (c, url) = (c.clone(), s.url("/api/documents"));
        async move {
            c.post(url)
                .json(&json!({ "documents": docs }))
                .send()
                .await
                .unwrap()
        }
    });
    let mut refused = None;
    while !big.is_finished() {
        let r = c
            .post(s.url("/api/documents"))
            .json(&json!({"name": "small", "text": "A small note."}))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            refused = Some(r);
            break;
        }
    }
    let big = big.await.unwrap();
    // Should the small one have won the race for the slot, the big one is the refused one.
    let refused = match refused {
        Some(r) => r,
        None => big,
    };
    let (code, msg) = json_error(refused, 429).await;
    assert_eq!(code, "too_many_requests");
    assert!(msg.contains("ingest.max_concurrent"), "{msg}");
    s.stop().await;
}
