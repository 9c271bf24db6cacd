//! The saved vector index and its journal, on a real SQLite database: a small write does not
//! rewrite the graph, a crash needs only the journal replayed, a saved graph never holds ids the
//! database does not (whatever its generation says), saves do not collide, and `check` looks at
//! the ids and at what is on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use instant_db::engine::{Engine, ModelLoading};
use instant_db::index::{VectorIndex, synthetic_vectors};
use instant_db::ingest::{NoProgress, SourceDoc};
use instant_db::search::SearchRequest;
use instant_db::store::{DocumentRecord, NewChunk};

const DIMS: usize = 384;

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
        metadata: serde_json::json!({}),
        format_metadata: serde_json::json!({}),
        ingested_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
    }
}

fn chunks(vectors: &[Vec<f32>]) -> Vec<NewChunk> {
    vectors
        .iter()
        .enumerate()
        .map(|(i, v)| NewChunk {
            section_path: vec![],
            text: format!("synthetic chunk {i}"),
            content_start: 0,
            doc_start: 0,
            doc_end: 10,
            token_count: 3,
            embedding: Some(v.clone()),
        })
        .collect()
}

/// `docs` documents of `per_doc` chunks with synthetic embeddings, stored and indexed the way
/// an ingest does it (the store's commit, then the index follows).
fn fill(engine: &Engine, docs: usize, per_doc: usize, seed: u64) -> Vec<Vec<f32>> {
    let vs = synthetic_vectors(docs * per_doc, DIMS, seed);
    for (d, part) in vs.chunks(per_doc).enumerate() {
        let out = engine
            .store
            .put_document(&doc(&format!("doc{d}")), &chunks(part), engine.model_name())
            .unwrap();
        engine.index().add(&out.added).unwrap();
    }
    vs
}

/// The chunk ids with a stored embedding, read apart from the engine.
fn stored_ids(engine: &Engine) -> Vec<i64> {
    let c = rusqlite::Connection::open(engine.store.path()).unwrap();
    let mut stmt = c
        .prepare("SELECT chunk_id FROM embeddings ORDER BY chunk_id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Identity and content stamp of the saved graph file.
fn dump_stamp(data: &Path) -> (u64, i64, i64, u64) {
    let m = std::fs::metadata(data.join("index/graph.usearch")).unwrap();
    (m.ino(), m.mtime(), m.mtime_nsec(), m.size())
}

fn config(data: &Path) -> instant_db::config::Config {
    let mut cfg = common::config(data);
    // every search goes through the graph, so what the graph holds is what is found
    cfg.search.exact_search_below = 0;
    cfg
}

#[test]
fn a_small_ingest_appends_to_the_journal_and_a_crash_replays_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = Engine::open(config(&data), ModelLoading::Required).unwrap();
    let vs = fill(&engine, 100, 40, 1);
    engine.persist_index().unwrap();
    let before = dump_stamp(&data);

    let text = "Sourdough starters ferment flour and water with wild yeast and lactobacilli.";
    let report = instant_db::ingest::ingest_sources(
        &engine,
        vec![SourceDoc {
            source: "api:bread".into(),
            name: "bread.txt".into(),
            bytes: text.as_bytes().to_vec(),
            modified_at: None,
            metadata: None,
        }],
        &NoProgress,
    )
    .unwrap();
    assert_eq!(report.added, 1, "{report:?}");
    assert_eq!(
        dump_stamp(&data),
        before,
        "one small ingest rewrote the whole saved graph"
    );
    let journal = std::fs::read_to_string(data.join("index/journal")).unwrap_or_default();
    assert!(
        journal.lines().count() >= report.embedded_chunks && report.embedded_chunks > 0,
        "journal after the ingest: {journal:?} ({report:?})"
    );

    // A crash: no shutdown save. The next start replays the journal onto the saved graph.
    drop(engine);
    let engine = Engine::open(config(&data), ModelLoading::Required).unwrap();
    let load = engine.index_load().unwrap(); // new-api
    assert!(load.reused_dump, "{load:?}"); // new-api
    assert!(load.replayed >= 1, "{load:?}"); // new-api
    assert_eq!(engine.index().len(), vs.len() + report.embedded_chunks);
    let found = engine
        .search(&SearchRequest {
            query: "wild yeast sourdough fermentation".into(),
            mode: instant_db::search::Mode::Vector,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(found.hits[0].document.source, "api:bread", "{found:?}");
    // and every synthetic chunk is still found by its own vector
    for (i, v) in vs.iter().enumerate().step_by(97) {
        let hit = engine
            .index()
            .search(v, 1, None, &engine.stored_vectors())
            .unwrap();
        let want = stored_ids(&engine)[i];
        assert_eq!(hit[0].0, want, "synthetic chunk {i}");
    }
    assert!(instant_db::maintenance::check(&engine).unwrap().ok);
}

#[test]
fn a_dump_saved_between_a_commit_and_the_index_update_is_never_loaded_with_dead_ids() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = Engine::open(config(&data), ModelLoading::Skip).unwrap();
    fill(&engine, 20, 10, 2);
    engine.persist_index().unwrap();
    // doc0 replaced by as many new chunks (new rowids: doc19 holds the highest ones), committed
    // but not yet applied to the index; the index is saved in that moment, at the new
    // generation, as an unlocked save would.
    let new = synthetic_vectors(10, DIMS, 99);
    engine
        .store
        .put_document(&doc("doc0"), &chunks(&new), engine.model_name())
        .unwrap();
    engine
        .index()
        .persist(&data.join("index"), engine.store.generation().unwrap())
        .unwrap();
    drop(engine);

    let engine = Engine::open(config(&data), ModelLoading::Skip).unwrap();
    let ids = stored_ids(&engine);
    let newest = *ids.last().unwrap();
    let hit = engine
        .index()
        .search(&new[9], 1, None, &engine.stored_vectors())
        .unwrap();
    assert_eq!(hit[0].0, newest, "the new chunk is not in the loaded graph");
    let report = instant_db::maintenance::check(&engine).unwrap();
    assert!(report.ok, "{:?}", report.problems);
}

#[test]
fn check_finds_dead_ids_in_the_index_even_when_the_counts_agree() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = Engine::open(config(&data), ModelLoading::Skip).unwrap();
    fill(&engine, 5, 10, 3);
    engine.persist_index().unwrap();
    // doc0's chunks replaced behind the index's back: 10 dead ids in it, 10 new ones missing
    engine
        .store
        .put_document(
            &doc("doc0"),
            &chunks(&synthetic_vectors(10, DIMS, 7)),
            engine.model_name(),
        )
        .unwrap();
    assert_eq!(engine.index().len(), stored_ids(&engine).len());
    let report = instant_db::maintenance::check(&engine).unwrap();
    assert!(!report.ok, "check passed an index holding dead ids");
    let problem = report.problems.join("; ");
    assert!(problem.contains("10 dead"), "{problem}");
    assert!(
        report.advice.unwrap_or_default().contains("repair"),
        "{problem}"
    );
}

#[test]
fn concurrent_saves_of_one_index_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let idx_dir = dir.path().join("index");
    let vs = synthetic_vectors(500, 32, 4);
    let items: Vec<(i64, Vec<f32>)> = (1..).zip(vs).collect();
    let idx = VectorIndex::new(32, "m", &Default::default(), 10).unwrap();
    idx.add(&items).unwrap();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..6)
            .map(|_| s.spawn(|| (0..8).map(|g| idx.persist(&idx_dir, g)).collect::<Vec<_>>()))
            .collect();
        for w in workers {
            for r in w.join().unwrap() {
                r.unwrap();
            }
        }
    });
    let stored = instant_db::index::MemoryVectors::new(&items);
    let (loaded, _) =
        VectorIndex::load(&idx_dir, 7, 32, "m", &Default::default(), 10, &stored).unwrap();
    assert_eq!(loaded.len(), 500);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".index-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn check_reports_a_deleted_index_directory_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = Engine::open(config(&data), ModelLoading::Skip).unwrap();
    fill(&engine, 5, 10, 5);
    engine.persist_index().unwrap();
    drop(engine);
    std::fs::remove_dir_all(data.join("index")).unwrap();

    let engine = Engine::open(config(&data), ModelLoading::Skip).unwrap();
    let report = instant_db::maintenance::check(&engine).unwrap();
    assert!(!report.ok, "check passed a missing index directory");
    let problem = report.problems.join("; ");
    assert!(problem.contains("index"), "{problem}");
    assert!(problem.contains("repair"), "{problem}");
    // repair saves it again, and check passes
    instant_db::maintenance::repair(&engine).unwrap();
    let report = instant_db::maintenance::check(&engine).unwrap();
    assert!(report.ok, "{:?}", report.problems);
}
