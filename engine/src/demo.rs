//! `instant-db demo`: the product's main job end to end on the embedded default. Installs the
//! assets when missing, ingests the demo corpus, starts the HTTP server on a free local port,
//! asks questions through `POST /api/search` and prints the answers.

use std::path::PathBuf;

use crate::cli::Format;
use crate::config::Config;
use crate::engine::{Engine, ModelLoading};
use crate::error::{Error, Result};
use crate::search::{SearchRequest, SearchResponse};

pub const DEFAULT_QUESTIONS: &[&str] = &[
    "How do I reset my password?",
    "When is the offline sync release?",
    "What does the Pro plan cost?",
    "What caused the login outage in February?",
];

fn default_corpus() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from("demo-corpus"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../demo-corpus"),
    ];
    candidates.into_iter().find(|p| p.is_dir())
}

pub fn run(
    config: Config,
    corpus: Option<PathBuf>,
    questions: Vec<String>,
    fmt: Format,
) -> Result<i32> {
    let corpus = corpus
        .or_else(default_corpus)
        .ok_or_else(|| Error::InvalidInput("demo corpus not found; pass --corpus DIR".into()))?;
    let paths = crate::assets::AssetPaths::resolve(&config.embedding);
    if paths.check_present().is_err() {
        eprintln!(
            "instant-db: runtime assets missing, installing them into {} …",
            paths.home.display()
        );
        let int8 = config.embedding.model == crate::assets::INT8_MODEL;
        crate::assets::run_setup(&paths.home, int8)?;
    }
    eprintln!("instant-db: data directory {}", config.data_dir.display());
    let engine = Engine::open(config, ModelLoading::Required)?;
    let opts = crate::ingest::IngestOptions::default();
    let bar = crate::cli::progress_bar("ingest");
    let report = crate::ingest::ingest_paths(&engine, std::slice::from_ref(&corpus), &opts, &bar)?;
    eprintln!(
        "instant-db: ingested {} ({} added, {} updated, {} unchanged, {} chunks) in {:.1}s",
        corpus.display(),
        report.added,
        report.updated,
        report.unchanged,
        report.chunks,
        report.seconds
    );
    let questions: Vec<String> = if questions.is_empty() {
        DEFAULT_QUESTIONS.iter().map(|s| s.to_string()).collect()
    } else {
        questions
    };
    let rt = crate::cli::runtime()?;
    let answers = rt.block_on(async move {
        let (listener, addr, key, state) = crate::server::local_read_only(engine).await?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::server::run_on(listener, state, async move {
            let _ = stop_rx.await;
        }));
        eprintln!("instant-db: server listening on http://{addr}");
        let client = reqwest::Client::new();
        let mut answers = vec![];
        for q in &questions {
            let req = SearchRequest {
                query: q.clone(),
                top_k: Some(3),
                ..Default::default()
            };
            let resp = client
                .post(format!("http://{addr}/api/search"))
                .bearer_auth(&key)
                .json(&req)
                .send()
                .await
                .map_err(|e| Error::Unavailable(format!("demo search failed: {e}")))?;
            if !resp.status().is_success() {
                return Err(Error::Internal(format!(
                    "demo search answered {}",
                    resp.status()
                )));
            }
            let r: SearchResponse = resp
                .json()
                .await
                .map_err(|e| Error::Internal(format!("bad search reply: {e}")))?;
            answers.push(r);
        }
        let _ = stop_tx.send(());
        server.await.map_err(|e| Error::Internal(e.to_string()))??;
        Ok::<_, Error>(answers)
    })?;
    for a in &answers {
        if fmt == Format::Text {
            println!("\nQ: {}", a.query);
            match a.hits.first() {
                Some(top) => {
                    println!(
                        "A: {} ({})",
                        top.document.title.as_deref().unwrap_or("untitled"),
                        top.document.source
                    );
                    if let Some(h) = top.highlights.first() {
                        println!("   {}", h.replace("<mark>", "").replace("</mark>", ""));
                    }
                }
                None => println!("A: (no results)"),
            }
        }
    }
    if fmt == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answers).map_err(|e| Error::Internal(e.to_string()))?
        );
    }
    Ok(0)
}
