//! Request spans in the JSON logs, from a real server. Its own test binary: it installs the
//! global subscriber, which every thread (async workers and blocking ingest or search) logs to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use serde_json::{Value, json};

fn closed_span<'a>(lines: &'a [Value], name: &str, text: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["span"]["name"] == name && l["fields"]["message"] == "close")
        .unwrap_or_else(|| panic!("no {name} span closed in the log:\n{text}"))
}

#[test]
fn request_search_and_ingest_spans_log_their_fields_and_timing_as_json() {
    let logs = tempfile::tempdir().unwrap();
    let guard = instant_db::telemetry::init(&instant_db::telemetry::TelemetryConfig {
        level: "info".into(),
        format: instant_db::telemetry::LogFormat::Json,
        file: Some(logs.path().join("engine.log")),
        ..Default::default()
    })
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().to_path_buf();
        let engine = tokio::task::spawn_blocking(move || {
            instant_db::engine::Engine::open(
                common::config(&p),
                instant_db::engine::ModelLoading::Required,
            )
            .unwrap()
        })
        .await
        .unwrap();
        let s = TestServer::start(engine).await;
        let c = reqwest::Client::new();
        let r = c
            .get(s.url("/api/documents/no-such-id"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let r = c.get(s.url("/health/live")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = c
            .post(s.url("/api/documents"))
            .json(&json!({"name": "walrus", "text": "Walruses meet on ice."}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = c
            .post(s.url("/api/search"))
            .json(&json!({"query": "ice", "mode": "keyword", "top_k": 5}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        s.stop().await;
    });
    drop(guard); // flushes the file
    let mut text = String::new();
    for entry in std::fs::read_dir(logs.path()).unwrap() {
        text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();

    let request = lines
        .iter()
        .find(|l| {
            l["span"]["name"] == "http_request"
                && l["fields"]["message"] == "close"
                && l["span"]["status"] == 404
        })
        .unwrap_or_else(|| panic!("no request span closed in the log:\n{text}"));
    assert_eq!(request["span"]["route"], "/api/documents/{id}", "{request}");
    assert_eq!(request["span"]["method"], "GET");
    assert!(
        request["span"]["latency_ms"].as_f64().is_some(),
        "{request}"
    );
    assert!(request["fields"]["time.busy"].is_string(), "{request}");

    assert!(
        !lines.iter().any(|l| l["span"]["route"] == "/health/live"),
        "probes are logged at INFO:\n{text}"
    );

    let ingest = closed_span(&lines, "ingest", &text);
    assert_eq!(ingest["span"]["added"], 1, "{ingest}");
    assert!(ingest["fields"]["time.busy"].is_string(), "{ingest}");

    let search = closed_span(&lines, "search", &text);
    assert_eq!(search["span"]["mode"], "keyword", "{search}");
    assert_eq!(search["span"]["top_k"], 5, "{search}");
    assert_eq!(search["span"]["hits"], 1, "{search}");
    assert!(search["fields"]["time.busy"].is_string(), "{search}");
}
