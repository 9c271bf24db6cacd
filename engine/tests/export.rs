//! `export`: stored documents written out as a readable bundle, through the real engine (real
//! SQLite, chunks as ingest made them; no model) and the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use instant_db::engine::{Engine, ModelLoading};
use instant_db::export::{ExportFormat, ExportOptions, export};
use instant_db::ingest::{IngestOptions, NoProgress, ingest_paths};

/// A guide long enough for several chunks (so overlaps exist), a CSV and a note.
fn corpus(dir: &Path) -> Vec<String> {
    let mut paras = Vec::new();
    let mut md = String::from("# Field guide\n\n");
    for (h, section) in ["Install", "Operate", "Retire"].iter().enumerate() {
        md.push_str(&format!("## {section}\n\n"));
        for i in 0..12 {
            let p = format!(
                "Step {h}.{i} of {section}: check the valves, record the pressure and sign the sheet before moving on."
            );
            md.push_str(&p);
            md.push_str("\n\n");
            paras.push(p);
        }
    }
    std::fs::write(dir.join("guide.md"), md).unwrap();
    std::fs::write(dir.join("parts.csv"), "part,count\nvalve,3\ngauge,5\n").unwrap();
    std::fs::write(dir.join("note.txt"), "A short note about otters.").unwrap();
    paras
}

fn engine_with(dir: &Path, data: &Path) -> Engine {
    let e = Engine::open(common::config(data), ModelLoading::Skip).unwrap();
    let r = ingest_paths(
        &e,
        &[dir.to_path_buf()],
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.added, 3, "{:?}", r.problems);
    e
}

fn opts(format: ExportFormat) -> ExportOptions {
    ExportOptions {
        format,
        max_bytes: None,
        split_by_type: false,
        metadata: true,
        filter: vec![],
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(dir).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn a_markdown_export_has_one_file_per_document_with_its_sections_and_every_paragraph_once() {
    let (src, data, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let paras = corpus(src.path());
    let e = engine_with(src.path(), data.path());
    let guide = e
        .store
        .list_documents(0, 10)
        .unwrap()
        .into_iter()
        .find(|d| d.source.ends_with("guide.md"))
        .unwrap();
    assert!(
        guide.chunk_count > 2,
        "the guide should span several chunks"
    );
    let r = export(&e, out.path(), &opts(ExportFormat::Markdown)).unwrap();
    assert_eq!((r.documents, r.files, r.index.as_str()), (3, 3, "index.md"));
    let files = files_in(out.path());
    assert_eq!(files.len(), 4, "{files:?}");
    let name = files
        .iter()
        .find(|f| f.starts_with("field-guide-"))
        .unwrap();
    let text = std::fs::read_to_string(out.path().join(name)).unwrap();
    assert!(text.starts_with("# Field guide\n\n- source: "), "{text}");
    for h in ["## Install", "## Operate", "## Retire"] {
        assert_eq!(text.matches(h).count(), 1, "{h}: {text}");
    }
    // the chunks' overlap is not repeated: each paragraph once, in order
    let mut at = 0;
    for p in &paras {
        assert_eq!(text.matches(p.as_str()).count(), 1, "{p}");
        let here = text.find(p.as_str()).unwrap();
        assert!(here > at);
        at = here;
    }
    let index = std::fs::read_to_string(out.path().join("index.md")).unwrap();
    assert!(index.contains(&format!("]({name})")), "{index}");
    // nothing is overwritten
    let again = export(&e, out.path(), &opts(ExportFormat::Markdown)).unwrap_err();
    assert!(again.to_string().contains("not empty"), "{again}");
}

#[test]
fn filters_types_size_limits_and_metadata_shape_the_bundle() {
    let (src, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let paras = corpus(src.path());
    let e = engine_with(src.path(), data.path());

    // by type, in JSON, without metadata
    let out = tempfile::tempdir().unwrap();
    let mut o = opts(ExportFormat::Json);
    o.split_by_type = true;
    o.metadata = false;
    export(&e, out.path(), &o).unwrap();
    let files = files_in(out.path());
    assert!(
        files.iter().any(|f| f.starts_with("data/parts-")),
        "{files:?}"
    );
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("index.json")).unwrap())
            .unwrap();
    assert_eq!(index.as_array().unwrap().len(), 3);
    for entry in index.as_array().unwrap() {
        let file = entry["files"][0].as_str().unwrap();
        assert!(
            file.starts_with(&format!("{}/", entry["doc_type"].as_str().unwrap())),
            "{entry}"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.path().join(file)).unwrap()).unwrap();
        assert!(
            doc.get("source").is_none() && doc["sections"].is_array(),
            "{doc}"
        );
    }

    // a filter, and a size limit splitting the guide at paragraph boundaries
    let out = tempfile::tempdir().unwrap();
    let mut o = opts(ExportFormat::Txt);
    o.filter = instant_db::filter::parse_short("ext=md").unwrap();
    o.max_bytes = Some(2048);
    let r = export(&e, out.path(), &o).unwrap();
    assert_eq!((r.documents, r.split_documents), (1, 1), "{r:?}");
    // How many parts depends on how the chunker grouped the headings; that it is more than
    // one, each under the limit, and that together they hold every paragraph once is the point.
    assert!(r.files >= 2, "{r:?}");
    let mut all = String::new();
    for f in files_in(out.path())
        .iter()
        .filter(|f| f.as_str() != "index.txt")
    {
        let text = std::fs::read_to_string(out.path().join(f)).unwrap();
        assert!(text.len() <= 2048, "{f}: {}", text.len());
        assert!(text.contains(".part") || f.contains(".part"), "{f}");
        // every part ends on a whole paragraph
        assert!(text.trim_end().ends_with('.'), "{f}: {text}");
        all.push_str(&text);
    }
    for p in &paras {
        assert_eq!(all.matches(p.as_str()).count(), 1, "{p}");
    }
}

#[test]
fn the_export_command_writes_the_bundle_and_says_what_it_wrote() {
    let (src, data, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    corpus(src.path());
    drop(engine_with(src.path(), data.path()));
    let target = out.path().join("bundle");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_instant-db"))
        .args(["--log-level", "warn", "--format", "json", "--data-dir"])
        .arg(data.path())
        .args(["export", "--as", "txt", "--filter", "doc_type=data", "-o"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(r["documents"], 1, "{r}");
    let files = files_in(&target);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.contains(&"index.txt".to_string()));
}

/// The tar archive's files, by path, with their contents.
fn archive_files(bytes: &[u8]) -> Vec<(String, String)> {
    use std::io::Read;
    let mut out = vec![];
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        out.push((path, text));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_export_streams_the_files_the_cli_writes_and_refuses_bad_options_and_no_key() {
    let (src, data, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    corpus(src.path());
    let e = engine_with(src.path(), data.path());
    let mut o = opts(ExportFormat::Json);
    o.split_by_type = true;
    o.filter = instant_db::filter::parse_short("doc_type=data").unwrap();
    export(&e, out.path(), &o).unwrap();
    let expected: Vec<(String, String)> = files_in(out.path())
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(out.path().join(&f)).unwrap();
            (f, text)
        })
        .collect();
    drop(e);
    let engine = Engine::open(common::admin_config(data.path()), ModelLoading::Skip).unwrap();
    let s = common::TestServer::start(engine).await;
    let c = common::admin_client();
    let body =
        serde_json::json!({"format": "json", "split_by_type": true, "filter": "doc_type=data"});
    let r = c
        .post(s.url("/api/export"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-tar");
    let got = archive_files(&r.bytes().await.unwrap());
    assert_eq!(got, expected);

    let r = reqwest::Client::new()
        .post(s.url("/api/export"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for bad in [
        serde_json::json!({"format": "pdf"}),
        serde_json::json!({"max_size_mb": -1}),
        serde_json::json!({"filter": "no operator"}),
        serde_json::json!({"unknown": true}),
    ] {
        let r = c
            .post(s.url("/api/export"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_input", "{bad}: {v}");
    }
    s.stop().await;
}
