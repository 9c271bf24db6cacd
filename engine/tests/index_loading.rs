//! A start that must rebuild the vector graph (unclean stop, or `index/` deleted) serves while
//! it rebuilds: live, not ready, the progress in `/health/ready` and `/health/detailed`, keyword
//! search answering, writes and vector search refused with `503 index_loading` and
//! `Retry-After`; ready once the graph is there. The real binary on a real data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use instant_db::config::Config;
use instant_db::engine::{Engine, ModelLoading};
use instant_db::index::synthetic_vectors;
use instant_db::store::{DocumentRecord, NewChunk};
use serde_json::{Value, json};

const DIMS: usize = 384;
/// Enough vectors that a debug build takes seconds to rebuild their graph (it is the graph
/// build that is slow, so the test needs no artificial delay).
const VECTORS: usize = 12_000;
const PER_DOC: usize = 200;

fn doc(id: &str) -> DocumentRecord {
    DocumentRecord {
        id: id.into(),
        source: format!("/synthetic/{id}.txt"),
        title: Some(id.into()),
        extension: Some("txt".into()),
        mime: Some("text/plain".into()),
        doc_type: "other".into(),
        size_bytes: 10,
        modified_at: None,
        content_hash: format!("hash-{id}"),
        char_count: 10,
        word_count: 2,
        line_count: 1,
        chunk_count: 0,
        metadata: json!({}),
        format_metadata: json!({}),
        ingested_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
    }
}

/// A data directory with `VECTORS` stored embeddings whose saved graph was deleted.
fn data_dir_without_its_graph(data: &Path) {
    let engine = Engine::open(
        Config {
            data_dir: data.to_path_buf(),
            ..Default::default()
        },
        ModelLoading::Skip,
    )
    .unwrap();
    let vectors = synthetic_vectors(VECTORS, DIMS, 7);
    for (d, part) in vectors.chunks(PER_DOC).enumerate() {
        let chunks: Vec<NewChunk> = part
            .iter()
            .enumerate()
            .map(|(i, v)| NewChunk {
                section_path: vec![],
                text: format!("walrus synthetic chunk {d} {i}"),
                content_start: 0,
                doc_start: 0,
                doc_end: 10,
                token_count: 4,
                embedding: Some(v.clone()),
            })
            .collect();
        engine
            .store
            .put_document(&doc(&format!("doc{d}")), &chunks, engine.model_name())
            .unwrap();
    }
    engine.store.checkpoint().unwrap();
    drop(engine);
    let _ = std::fs::remove_dir_all(data.join("index"));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: std::process::Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(data: &Path) -> Server {
    let port = free_port();
    let config = data.join("test-config.yaml");
    std::fs::write(&config, common::HOST_INDEPENDENT_CONFIG).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_instant-db"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("INSTANT_DB_DATA_DIR", data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn get(c: &reqwest::Client, url: String) -> Option<(u16, Value)> {
    let r = c.get(url).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_rebuilds_the_graph_is_live_not_ready_and_serves_keyword_search_meanwhile() {
    let data = tempfile::tempdir().unwrap();
    data_dir_without_its_graph(data.path());
    let mut server = spawn(data.path());
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Live as soon as the listener is up, which is before the graph is rebuilt.
    let started = Instant::now();
    loop {
        if let Some((200, _)) = get(&c, format!("{}/health/live", server.base)).await {
            break;
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("server exited: {status:?}");
        }
        assert!(started.elapsed() < Duration::from_secs(300), "never live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let live_after = started.elapsed();

    let (status, ready) = get(&c, format!("{}/health/ready", server.base))
        .await
        .unwrap();
    assert_eq!(status, 503, "ready while the graph is rebuilt: {ready}");
    assert_eq!(ready["ready"], false);
    let reason = ready["reasons"][0].as_str().unwrap_or_default();
    assert!(
        reason.contains("vector index is loading"),
        "reasons say why: {ready}"
    );
    let loading = &ready["index_loading"];
    assert_eq!(loading["total"], VECTORS, "{ready}");

    let (status, detailed) = get(&c, format!("{}/health/detailed", server.base))
        .await
        .unwrap();
    assert_eq!(status, 503, "{detailed}");
    let index = &detailed["components"]["vector_index"]["details"];
    assert_eq!(index["loaded"], false, "{detailed}");
    assert!(index["loading"].is_object(), "{detailed}");

    // Keyword search needs no graph.
    let r = c
        .post(format!("{}/api/search", server.base))
        .json(&json!({"query": "walrus", "mode": "keyword", "top_k": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["hits"].as_array().unwrap().len(), 3, "{body}");

    // A write would be missing from the graph being built: refused, with when to come back.
    let r = c
        .post(format!("{}/api/documents", server.base))
        .json(&json!({"title": "late", "text": "a walrus arrives late"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "index_loading", "{body}");

    // Ready once the graph is rebuilt, with every vector in it.
    let rebuilt = loop {
        let (status, _) = get(&c, format!("{}/health/ready", server.base))
            .await
            .unwrap();
        if status == 200 {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "never ready after the rebuild"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (_, detailed) = get(&c, format!("{}/health/detailed", server.base))
        .await
        .unwrap();
    let index = &detailed["components"]["vector_index"]["details"];
    assert_eq!(index["loaded"], true, "{detailed}");
    assert_eq!(index["vectors"], VECTORS, "{detailed}");
    println!(
        "{VECTORS} vectors: live after {:.1} s, ready after {:.1} s",
        live_after.as_secs_f64(),
        rebuilt.as_secs_f64()
    );
    let r = c
        .post(format!("{}/api/documents", server.base))
        .json(&json!({"title": "late", "text": "a walrus arrives late"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "writes resume once loaded");

    // The rebuilt graph was saved: SIGTERM, and the next start reuses it.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..600 {
        if server.child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        data.path().join("index/meta.json").is_file(),
        "the rebuilt graph is saved"
    );
}
