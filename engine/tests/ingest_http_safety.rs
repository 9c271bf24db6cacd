//! Data safety at the HTTP ingest edge, over a real socket with the real model: identical
//! concurrent uploads, uploads and the ingest slots, keys of text documents, and work cut short
//! by the request timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use serde_json::{Value, json};

/// A server over an empty data directory, with the configuration adjusted first.
async fn server(
    configure: impl FnOnce(&mut instant_db::config::Config) + Send + 'static,
) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_path_buf();
    let engine = tokio::task::spawn_blocking(move || {
        let mut cfg = common::config(&p);
        cfg.health.thresholds = common::host_independent_thresholds();
        configure(&mut cfg);
        instant_db::engine::Engine::open(cfg, instant_db::engine::ModelLoading::Required).unwrap()
    })
    .await
    .unwrap();
    (dir, TestServer::start(engine).await)
}

/// The value of an unlabelled sample in a Prometheus text page (`None` when absent).
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// Sources of every stored document.
async fn sources(c: &reqwest::Client, s: &TestServer) -> Vec<String> {
    let docs = common::get_json(c, s.url("/api/documents?limit=1000")).await;
    docs.as_array()
        .unwrap()
        .iter()
        .map(|d| d["source"].as_str().unwrap().to_string())
        .collect()
}

/// `words` words of plain English-looking text, the same every run, no two sentences alike.
fn long_text(words: usize) -> String {
    const VOCAB: &[&str] = &[
        "river", "engine", "copper", "lantern", "harbour", "meadow", "signal", "winter", "garden",
        "ledger", "falcon", "quarry", "timber", "beacon", "orchard", "compass", "saddle",
        "thunder", "marble", "harvest", "glacier", "canvas", "pepper", "violet", "anchor",
    ];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut out = String::with_capacity(words * 8);
    for i in 0..words {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(VOCAB[(x % VOCAB.len() as u64) as usize]);
        out.push(if i % 12 == 11 { '.' } else { ' ' });
        if i % 12 == 11 {
            out.push(' ');
        }
    }
    out
}

/// The same file sent 32 times at once: each upload is stored aside under its own temporary
/// name before it takes the shared name, so none of them loses its file to another's rename
/// (they used to answer 500 `store upload: No such file or directory`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_identical_concurrent_uploads_all_succeed_or_are_unchanged() {
    let (_dir, s) = server(|c| c.ingest.max_concurrent = 32).await;
    let c = reqwest::Client::new();
    let bytes: &'static [u8] = b"# Otter schedule\n\nOtters clean the east dock on Tuesdays.";
    let uploads = (0..32).map(|_| {
        let part = reqwest::multipart::Part::bytes(bytes).file_name("otters.md");
        c.post(s.url("/api/process/file"))
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
    });
    let answers = futures::future::join_all(uploads).await;
    let mut stored = 0;
    for r in answers {
        let r = r.unwrap();
        let status = r.status();
        let report: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["failed"], 0, "{report}");
        stored += report["added"].as_u64().unwrap() + report["updated"].as_u64().unwrap();
        assert_eq!(
            report["added"].as_u64().unwrap()
                + report["updated"].as_u64().unwrap()
                + report["unchanged"].as_u64().unwrap(),
            1,
            "{report}"
        );
    }
    assert!(stored >= 1);
    let docs = sources(&c, &s).await;
    assert_eq!(docs.len(), 1, "{docs:?}");
    s.stop().await;
}

/// Writes the head of a multipart upload of `total` file bytes on a raw connection and sends
/// `sent` of them; the rest is for the caller to send.
async fn start_upload(s: &TestServer, total: usize, sent: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let head = "--XBOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.txt\"\r\nContent-Type: text/plain\r\n\r\n";
    let tail = "\r\n--XBOUNDARY--\r\n";
    let len = head.len() + total + tail.len();
    let mut conn = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let request = format!(
        "POST /api/process/file HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=XBOUNDARY\r\nContent-Length: {len}\r\n\r\n{head}"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    conn.write_all(&vec![b'w'; sent]).await.unwrap();
    conn
}

/// An upload takes its ingest slot before its body is read into memory: with one slot, a
/// second upload sent while the first is still arriving is refused with 429 without being
/// buffered, so N concurrent uploads never hold more than `ingest.max_concurrent` bodies.
/// (Before, every upload was read whole first and only then asked for a slot: the second one
/// was buffered and ingested while the first was still on the wire.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_holds_its_ingest_slot_while_its_body_arrives_and_others_wait_unread() {
    use tokio::io::AsyncWriteExt;
    let (_dir, s) = server(|c| c.ingest.max_concurrent = 1).await;
    let c = reqwest::Client::new();
    let total = 200 * 1024;
    let mut first = start_upload(&s, total, 64 * 1024).await;
    // The first upload is being read: the gauge says one body is in memory.
    let mut receiving = None;
    for _ in 0..600 {
        let m = common::get_text(&c, s.url("/metrics")).await;
        receiving = sample(&m, "instantdb_uploads_in_memory");
        if receiving == Some(1.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        receiving,
        Some(1.0),
        "the first upload never showed as in memory"
    );
    let part = reqwest::multipart::Part::bytes(b"# Second\n\nA second upload.".to_vec())
        .file_name("second.md");
    let r = c
        .post(s.url("/api/process/file"))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "a second upload was taken in while the only slot was busy"
    );
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ingest.max_concurrent"),
        "{body}"
    );
    let m = common::get_text(&c, s.url("/metrics")).await;
    assert_eq!(sample(&m, "instantdb_uploads_in_memory"), Some(1.0), "{m}");
    // The first one finishes and is ingested.
    first
        .write_all(&vec![b'w'; total - 64 * 1024])
        .await
        .unwrap();
    first.write_all(b"\r\n--XBOUNDARY--\r\n").await.unwrap();
    let (head, body) = common::read_http_answer(&mut first).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    let m = common::get_text(&c, s.url("/metrics")).await;
    assert_eq!(sample(&m, "instantdb_uploads_in_memory"), Some(0.0), "{m}");
    s.stop().await;
}

/// Without a `name`, a text document is keyed by its content: two different documents with the
/// same title both stay (they used to overwrite each other), the report gives each its key, and
/// sending one again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_text_documents_are_keyed_by_content_so_equal_titles_do_not_overwrite() {
    let (_dir, s) = server(|_| {}).await;
    let c = reqwest::Client::new();
    let add = |text: &str| {
        c.post(s.url("/api/documents"))
            .json(&json!({"title": "Meeting notes", "text": text}))
            .send()
    };
    let monday = "Monday: the walrus team ships the parser.";
    let friday = "Friday: the heron team reviews the index.";
    let mut keys = vec![];
    for text in [monday, friday] {
        let report: Value = add(text).await.unwrap().json().await.unwrap();
        assert_eq!(report["added"], 1, "{report}");
        let file = &report["files"][0];
        let id = file["document_id"]
            .as_str()
            .expect("the report names the key");
        assert!(
            file["source"].as_str().unwrap().starts_with("api:"),
            "{report}"
        );
        keys.push(id.to_string());
    }
    assert_ne!(keys[0], keys[1]);
    for key in &keys {
        let doc = common::get_json(&c, s.url(&format!("/api/documents/{key}"))).await;
        assert_eq!(doc["title"], "Meeting notes", "{doc}");
    }
    assert_eq!(sources(&c, &s).await.len(), 2);
    let again: Value = add(monday).await.unwrap().json().await.unwrap();
    assert_eq!(again["unchanged"], 1, "{again}");
    assert_eq!(sources(&c, &s).await.len(), 2);
    s.stop().await;
}

/// A request cut by `limits.request_timeout_secs` takes its work with it: the ingest of a large
/// document stops (its slot frees) and the document is never stored. Before, the 503 went out
/// while the ingest ran on to the end and stored the document anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_cut_by_the_request_timeout_stops_and_stores_nothing() {
    let (_dir, s) = server(|c| {
        c.limits.request_timeout_secs = 1;
        c.ingest.max_concurrent = 1;
    })
    .await;
    let c = reqwest::Client::new();
    // About 1,000 chunks: far more than one second of embedding on any machine.
    let text = long_text(120_000);
    let r = c
        .post(s.url("/api/documents"))
        .json(&json!({"name": "huge", "text": text}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // The slot frees once the cut ingest has stopped; a small document then goes in.
    let mut freed = false;
    for _ in 0..3000 {
        let r = c
            .post(s.url("/api/documents"))
            .json(&json!({"name": "small", "text": "A small note about otters."}))
            .send()
            .await
            .unwrap();
        if r.status() != 429 {
            assert_eq!(r.status(), 200);
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(freed, "the cut ingest never let its slot go");
    let stored = sources(&c, &s).await;
    assert_eq!(stored, vec!["api:small".to_string()], "{stored:?}");
    s.stop().await;
}

/// SIGTERM during a long ingest: the server stops the ingest once its grace period is over and
/// exits, instead of running the ingest to its end first (the runtime used to wait for every
/// blocking thread: minutes for one large document).
#[test]
fn sigterm_during_a_long_ingest_exits_within_the_grace_period() {
    let data = tempfile::tempdir().unwrap();
    let port = common::moto::free_port();
    let config = data.path().join("test-config.yaml");
    std::fs::write(&config, common::HOST_INDEPENDENT_CONFIG).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_instant-db"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("INSTANT_DB_DATA_DIR", data.path())
        .env("INSTANT_DB_SHUTDOWN_GRACE_PERIOD_SECS", "2")
        .env("INSTANT_DB_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_listening(&mut child, port);
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = reqwest::Client::new();
    let ingest = rt.spawn({
        let (c, url) = (c.clone(), format!("{base}/api/documents"));
        async move {
            c.post(url)
                .json(&json!({"name": "huge", "text": long_text(120_000)}))
                .send()
                .await
        }
    });
    // The ingest is embedding once the model has seen its first texts.
    let embedding = rt.block_on(async {
        for _ in 0..1200 {
            let m = common::get_text(&c, format!("{base}/metrics")).await;
            if sample(&m, "instantdb_embedded_texts_total").is_some_and(|n| n > 0.0) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    });
    assert!(embedding, "the ingest never started embedding");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let sent = std::time::Instant::now();
    // Grace period (2 s) plus the time one embedding batch and the shutdown steps take; the
    // whole document would take minutes.
    let bound = std::time::Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if sent.elapsed() > bound {
            let _ = child.kill();
            panic!("the server was still running {bound:?} after SIGTERM (grace period 2 s)");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    eprintln!("exited {:?} after SIGTERM", sent.elapsed());
    assert!(exit.success(), "{exit:?}");
    // The client got an answer or a closed connection, never a hang.
    let _ = rt.block_on(ingest).unwrap();
}

/// Ingest embedding goes through the embedding circuit breaker, like search: with the breaker
/// open after repeated failures, an ingest stores its documents for keyword search, names them
/// in the report's `degraded_documents`, counts the failure and the documents in metrics, and
/// `/health/detailed` says how many chunks lack vectors. (Before, ingest called the model
/// directly: the breaker, its retries and its metrics never saw ingest, and a failure only
/// reached the log.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_with_the_embedding_breaker_open_reports_its_degraded_documents() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_path_buf();
    let engine = tokio::task::spawn_blocking(move || {
        let mut cfg = common::config(&p);
        cfg.health.thresholds = common::host_independent_thresholds();
        cfg.health.check_interval_secs = 1;
        instant_db::engine::Engine::open(cfg, instant_db::engine::ModelLoading::Required).unwrap()
    })
    .await
    .unwrap();
    // As after repeated inference failures (the default threshold is 5).
    for _ in 0..5 {
        engine.embed_breaker.record_failure();
    }
    assert_eq!(
        engine.embed_breaker.state(),
        instant_db::resilience::BreakerState::Open
    );
    let s = TestServer::start(engine).await;
    let c = reqwest::Client::new();
    let r = c
        .post(s.url("/api/documents"))
        .json(&json!({"name": "badgers", "text": "Badgers dig the tunnels under the old mill."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["added"], 1, "{report}");
    assert_eq!(report["embedded_chunks"], 0, "{report}");
    assert_eq!(
        report["degraded_documents"],
        json!(["api:badgers"]),
        "{report}"
    );
    assert!(
        report["degraded"]
            .as_str()
            .unwrap()
            .contains("instant-db repair"),
        "{report}"
    );
    let m = common::get_text(&c, s.url("/metrics")).await;
    assert!(
        m.contains("instantdb_embedding_failures_total{path=\"ingest\"} 1"),
        "{m}"
    );
    assert_eq!(
        sample(&m, "instantdb_ingest_degraded_documents_total"),
        Some(1.0)
    );
    // Still found by keyword search.
    let found: Value = c
        .post(s.url("/api/search"))
        .json(&json!({"query": "badgers tunnels", "mode": "keyword"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["hits"][0]["document"]["source"], "api:badgers");
    let mut component = Value::Null;
    for _ in 0..200 {
        let d = common::get_json(&c, s.url("/health/detailed")).await;
        component = d["components"]["embeddings"].clone();
        if component["details"]["chunks_without_vectors"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(component["status"], "degraded", "{component}");
    assert_eq!(
        component["details"]["chunks_without_vectors"], 1,
        "{component}"
    );
    assert!(
        component["details"]["action"]
            .as_str()
            .unwrap()
            .contains("instant-db repair"),
        "{component}"
    );
    s.stop().await;
}
