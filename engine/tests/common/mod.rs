//! Shared helpers of the engine's integration tests: real model, real SQLite, real HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod moto;

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

/// Asserted question → expected file pairs from `demo-corpus/QUESTIONS.md` (first table).
pub fn demo_questions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(demo_corpus().join("QUESTIONS.md")).unwrap();
    let mut out = vec![];
    for line in text.lines() {
        if line.starts_with("## More") {
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
    assert!(out.len() >= 8, "QUESTIONS.md lost its table");
    out
}

pub fn config(data: &Path) -> Config {
    Config {
        data_dir: data.to_path_buf(),
        ..Config::default()
    }
}

pub fn demo_options() -> IngestOptions {
    IngestOptions {
        exclude: vec!["**/QUESTIONS.md".into()],
        ..Default::default()
    }
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
