//! `vector_store: qdrant`: the engine (real model, real SQLite) against the in-memory Qdrant
//! double (`tests/qdrant-double`, qdrant-client's own gRPC server traits), and against a real
//! Qdrant when `QDRANT_URL` names one.
//!
//! What the double cannot show, and a real Qdrant does: HNSW approximation (the double scans
//! exactly, so hit lists here are exact), payload indexes and optimisers, and `wait` semantics
//! (every double write is visible at once).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use instant_db::config::Config;
use instant_db::engine::{Engine, ModelLoading};
use instant_db::filter::FilterInput;
use instant_db::ingest::{NoProgress, SourceDoc};
use instant_db::qdrant::VectorStoreKind;
use instant_db::search::{Mode, SearchRequest};
use qdrant_double::QdrantDouble;
use serde_json::json;

fn qdrant_config(data: &Path, url: &str, collection: &str) -> Config {
    let mut cfg = common::config(data);
    cfg.vector_store = VectorStoreKind::Qdrant;
    cfg.qdrant.url = Some(url.to_string());
    cfg.qdrant.collection = collection.to_string();
    // Outages are simulated: fail fast instead of retrying for seconds.
    cfg.resilience = serde_norway::from_str(
        "retries: {qdrant: {max_attempts: 2, delay_ms: 10, max_total_ms: 100}}\n\
         breakers: {qdrant: {failure_threshold: 50}}",
    )
    .unwrap();
    cfg
}

/// Five care notes of different kinds and sizes; each matches the query, so filters decide.
fn docs() -> Vec<SourceDoc> {
    [
        ("otters.md", "# Otters\n\n## Feeding\n\nCare notes for the otters: fish twice a day.\n", json!({"team": "core"})),
        ("badgers.txt", "Care notes for the badgers: feeding, cleaning and health checks, with a long list of chores for the evening shift.\n", json!({"team": "search"})),
        ("herons.md", "# Herons\n\nCare notes for the herons: feeding and cleaning.\n", json!({"team": "core-infra"})),
        ("lynx.csv", "animal,note\nlynx,care notes: feeding\n", json!({"team": "ops"})),
        ("Getting Started.md", "# Getting Started\n\nCare notes for new keepers: feeding, cleaning.\n", json!({})),
    ]
    .into_iter()
    .map(|(name, text, meta)| SourceDoc {
        source: format!("test:{name}"),
        name: name.to_string(),
        bytes: text.as_bytes().to_vec(),
        modified_at: Some("2026-01-10T00:00:00Z".into()),
        metadata: Some(meta),
    })
    .collect()
}

fn ingest(engine: &Engine, docs: Vec<SourceDoc>) -> instant_db::ingest::IngestReport {
    instant_db::ingest::ingest_sources(engine, docs, &NoProgress).unwrap()
}

fn search(
    engine: &Engine,
    mode: Mode,
    filter: Option<&str>,
) -> instant_db::Result<instant_db::search::SearchResponse> {
    engine.search(&SearchRequest {
        query: "care notes feeding".into(),
        mode,
        top_k: Some(20),
        filter: filter.map(|f| FilterInput::Short(f.to_string())),
        ..Default::default()
    })
}

fn sources(resp: &instant_db::search::SearchResponse) -> BTreeSet<String> {
    resp.hits
        .iter()
        .map(|h| h.document.source.trim_start_matches("test:").to_string())
        .collect()
}

fn stored_ids(engine: &Engine) -> Vec<u64> {
    let mut ids: Vec<u64> = engine
        .store
        .embedding_ids(engine.model_name(), 384)
        .unwrap()
        .into_iter()
        .map(|i| i as u64)
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn every_filter_gives_the_same_vector_hits_with_qdrant_as_with_the_embedded_index() {
    let qdrant = QdrantDouble::start();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let embedded = Engine::open(common::config(a.path()), ModelLoading::Required).unwrap();
    let remote = Engine::open(
        qdrant_config(b.path(), &qdrant.url(), "filters"),
        ModelLoading::Required,
    )
    .unwrap();
    assert_eq!(ingest(&embedded, docs()).added, 5);
    let report = ingest(&remote, docs());
    assert_eq!(report.added, 5, "{report:?}");
    assert_eq!(qdrant.point_ids("filters"), stored_ids(&remote));
    assert_eq!(qdrant.collection_size("filters"), Some(384));
    // Payload filters (translated) and residual ones (resolved in SQLite, sent as ids), mixed.
    for filter in [
        "type=data",
        "type!=data",
        "ext=[md,csv]",
        "ext!=[md,csv]",
        "title=\"Getting Started\"",
        "size>100",
        "size<=60",
        "chunk_count=1",
        "section=Otters / Feeding",
        "title",
        "!title",
        "team=core",
        "team~core",
        "title^Get",
        "source$.md",
        "ext=md;team~core",
        "type=nothing-like-this",
        "team=nobody",
    ] {
        let want = search(&embedded, Mode::Vector, Some(filter)).unwrap();
        let got = search(&remote, Mode::Vector, Some(filter)).unwrap();
        assert_eq!(sources(&got), sources(&want), "filter {filter}");
        let hybrid = search(&remote, Mode::Hybrid, Some(filter)).unwrap();
        assert_eq!(hybrid.degraded, None, "filter {filter}");
        assert_eq!(
            sources(&hybrid),
            sources(&search(&embedded, Mode::Hybrid, Some(filter)).unwrap()),
            "hybrid, filter {filter}"
        );
    }
    // The comparison is not vacuous: filters narrow the hits to some, not none or all.
    let some = search(&remote, Mode::Vector, Some("ext=[md,csv]")).unwrap();
    assert_eq!(sources(&some).len(), 4, "{:?}", sources(&some));
    let mixed = search(&remote, Mode::Vector, Some("ext=md;team~core")).unwrap();
    assert_eq!(
        sources(&mixed),
        ["herons.md", "otters.md"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    // Without a filter the nearest chunks and their order agree too (cosine both ways).
    let want: Vec<i64> = search(&embedded, Mode::Vector, None)
        .unwrap()
        .hits
        .iter()
        .map(|h| h.chunk.index)
        .collect();
    let got = search(&remote, Mode::Vector, None).unwrap();
    assert_eq!(got.hits.len(), want.len());
    let first = &got.hits[0];
    assert!(
        first.vector_score.unwrap() > 0.3,
        "{:?}",
        first.vector_score
    );
    // The filter Qdrant saw for a translated condition is a payload filter, not an id list.
    search(&remote, Mode::Vector, Some("type=data")).unwrap();
    let f = qdrant.last_query_filter().unwrap();
    assert!(format!("{f:?}").contains("doc_type"), "{f:?}");
    assert!(!format!("{f:?}").contains("HasId"), "{f:?}");
}

#[test]
fn replacing_and_deleting_documents_keeps_the_collection_in_step_with_the_database() {
    let qdrant = QdrantDouble::start();
    let data = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        qdrant_config(data.path(), &qdrant.url(), "docs"),
        ModelLoading::Required,
    )
    .unwrap();
    ingest(&engine, docs());
    let before = qdrant.point_ids("docs");
    let mut changed = docs();
    changed.truncate(1);
    changed[0].bytes = b"# Otters\n\nNew care notes for the otters: clams now.\n".to_vec();
    assert_eq!(ingest(&engine, changed).updated, 1);
    let after = qdrant.point_ids("docs");
    assert_eq!(after, stored_ids(&engine));
    assert_ne!(
        after, before,
        "the replaced document's chunks kept their points"
    );
    let doc = engine.store.list_documents(0, 10).unwrap();
    let otters = doc.iter().find(|d| d.source == "test:otters.md").unwrap();
    let payload = qdrant.payload("docs", *after.last().unwrap()).unwrap();
    assert!(
        format!("{:?}", payload.get("document_id")).contains(&otters.id),
        "{payload:?}"
    );
    engine.delete_document(&otters.id).unwrap();
    assert_eq!(qdrant.point_ids("docs"), stored_ids(&engine));
    assert_eq!(qdrant.point_ids("docs").len(), 4);
}

#[test]
fn a_qdrant_outage_degrades_hybrid_search_to_keyword_and_writes_catch_up_afterwards() {
    let qdrant = QdrantDouble::start();
    let data = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        qdrant_config(data.path(), &qdrant.url(), "outage"),
        ModelLoading::Required,
    )
    .unwrap();
    let mut all = docs();
    let late = all.split_off(3);
    ingest(&engine, all);
    qdrant.set_unavailable(true);
    let hybrid = search(&engine, Mode::Hybrid, None).unwrap();
    let why = hybrid.degraded.clone().unwrap();
    assert!(
        why.contains("keyword-only") && why.contains("qdrant"),
        "{why}"
    );
    assert!(!hybrid.hits.is_empty(), "keyword hits are still served");
    let e = search(&engine, Mode::Vector, None).unwrap_err();
    assert_eq!(e.code(), "vector_store_unavailable", "{e}");
    assert_eq!(e.http_status(), 503);
    // A write during the outage is stored (SQLite is the source of truth) and marked behind.
    let report = ingest(&engine, late[..1].to_vec());
    assert_eq!(report.added, 1, "{report:?}");
    assert!(engine.qdrant_behind());
    assert_ne!(qdrant.point_ids("outage"), stored_ids(&engine));
    // `/health/detailed` says so: the vector store is degraded, with what happens next.
    let health = instant_db::health::HealthMonitor::new().refresh(&engine);
    let component = &health.components["vector_index"];
    assert_eq!(component.details["store"], "qdrant");
    assert_eq!(component.details["behind"], true);
    assert_eq!(serde_json::to_value(component.status).unwrap(), "degraded");
    assert!(
        health
            .reasons
            .iter()
            .any(|r| r.contains("missed writes") && r.contains("repair")),
        "{:?}",
        health.reasons
    );
    // Back up: the next write uploads what was missed.
    qdrant.set_unavailable(false);
    ingest(&engine, late[1..].to_vec());
    assert!(!engine.qdrant_behind());
    assert_eq!(qdrant.point_ids("outage"), stored_ids(&engine));
    assert_eq!(search(&engine, Mode::Hybrid, None).unwrap().degraded, None);
    let health = instant_db::health::HealthMonitor::new().refresh(&engine);
    assert_eq!(health.components["vector_index"].details["behind"], false);
}

#[test]
fn the_server_start_uploads_what_the_collection_lacks_and_repair_uploads_everything() {
    let qdrant = QdrantDouble::start();
    let data = tempfile::tempdir().unwrap();
    // Ingested with the embedded store first: moving to Qdrant uploads the stored vectors.
    {
        let engine = Engine::open(common::config(data.path()), ModelLoading::Required).unwrap();
        ingest(&engine, docs());
    }
    let engine = Engine::open_deferred(
        qdrant_config(data.path(), &qdrant.url(), "moved"),
        ModelLoading::Required,
    )
    .unwrap();
    engine.load_deferred_index().unwrap();
    assert_eq!(qdrant.point_ids("moved"), stored_ids(&engine));
    let uploads = qdrant.calls("upsert");
    // A second start with the counts agreeing uploads nothing.
    engine.load_deferred_index().unwrap();
    assert_eq!(qdrant.calls("upsert"), uploads);
    let report = instant_db::maintenance::check(&engine).unwrap();
    assert!(report.ok, "{report:?}");
    let repaired = instant_db::maintenance::repair(&engine).unwrap();
    assert_eq!(repaired.vectors, stored_ids(&engine).len());
    assert!(qdrant.calls("upsert") > uploads, "repair uploaded nothing");
    // An outage does not fail the check (that would make the operator restore a healthy
    // database); it is reported by health instead.
    qdrant.set_unavailable(true);
    assert!(instant_db::maintenance::check(&engine).unwrap().ok);
    let e = instant_db::maintenance::repair(&engine).unwrap_err();
    assert_eq!(e.code(), "vector_store_unavailable", "{e}");
}

#[test]
fn a_collection_of_another_dimension_is_refused_with_what_to_do() {
    let qdrant = QdrantDouble::start();
    let data = tempfile::tempdir().unwrap();
    let small = {
        let mut cfg = qdrant_config(data.path(), &qdrant.url(), "other");
        cfg.data_dir = data.path().join("small");
        cfg
    };
    // A collection made for a 384-dimensional model, then opened by one without a model
    // (dimension 384 assumed) works; a different collection size does not.
    let engine = Engine::open(small, ModelLoading::Required).unwrap();
    ingest(&engine, docs()[..1].to_vec());
    assert_eq!(qdrant.collection_size("other"), Some(384));
    let client = qdrant_client::Qdrant::from_url(&qdrant.url())
        .skip_compatibility_check()
        .build()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(client.create_collection(
        qdrant_client::qdrant::CreateCollectionBuilder::new("tiny").vectors_config(
            qdrant_client::qdrant::VectorParamsBuilder::new(
                8,
                qdrant_client::qdrant::Distance::Cosine,
            ),
        ),
    ))
    .unwrap();
    let other = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        qdrant_config(other.path(), &qdrant.url(), "tiny"),
        ModelLoading::Required,
    )
    .unwrap();
    let e = instant_db::maintenance::repair(&engine)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("8-dimensional") && e.contains("384") && e.contains("qdrant.collection"),
        "{e}"
    );
}

#[test]
fn the_api_key_is_sent_from_its_file_and_a_wrong_one_says_what_to_check() {
    let qdrant = QdrantDouble::start_with_api_key("s3cret-key");
    let data = tempfile::tempdir().unwrap();
    let key_file = data.path().join("qdrant-key");
    std::fs::write(&key_file, "s3cret-key\n").unwrap();
    let mut cfg = qdrant_config(&data.path().join("db"), &qdrant.url(), "keyed");
    cfg.qdrant.api_key_file = Some(key_file.clone());
    let engine = Engine::open(cfg.clone(), ModelLoading::Required).unwrap();
    ingest(&engine, docs());
    assert_eq!(qdrant.point_ids("keyed"), stored_ids(&engine));
    assert!(!stored_ids(&engine).is_empty());
    drop(engine);
    std::fs::write(&key_file, "other-key-7f3a\n").unwrap();
    let engine = Engine::open(cfg, ModelLoading::Required).unwrap();
    let e = search(&engine, Mode::Vector, None).unwrap_err().to_string();
    assert!(e.contains("API key"), "{e}");
    assert!(
        !e.contains("7f3a") && !e.contains("s3cret"),
        "the error shows a key: {e}"
    );
}

/// Against a real Qdrant (`QDRANT_URL=http://host:6334`): the same round trip as the double's.
#[test]
fn with_a_real_qdrant_ingest_search_and_delete_work_when_qdrant_url_is_set() {
    let Ok(url) = std::env::var("QDRANT_URL") else {
        eprintln!("SKIPPED: QDRANT_URL is not set; this test needs a real Qdrant (gRPC port)");
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let collection = format!("instant-db-test-{}", std::process::id());
    let engine = Engine::open(
        qdrant_config(data.path(), &url, &collection),
        ModelLoading::Required,
    )
    .unwrap();
    ingest(&engine, docs());
    let hits = search(&engine, Mode::Vector, Some("ext=md")).unwrap();
    assert_eq!(
        sources(&hits),
        ["Getting Started.md", "herons.md", "otters.md"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let id = engine.store.list_documents(0, 10).unwrap()[0].id.clone();
    engine.delete_document(&id).unwrap();
    assert!(instant_db::maintenance::check(&engine).unwrap().ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_uploads_the_restored_vectors_and_drops_the_points_it_does_not_have() {
    let qdrant = QdrantDouble::start();
    let data = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let engine = std::sync::Arc::new(
        Engine::open(
            qdrant_config(&data.path().join("db"), &qdrant.url(), "restored"),
            ModelLoading::Required,
        )
        .unwrap(),
    );
    let e = engine.clone();
    tokio::task::spawn_blocking(move || ingest(&e, docs()[..3].to_vec()))
        .await
        .unwrap();
    let backed_up = stored_ids(&engine);
    let report = instant_db::maintenance::backup(
        engine.clone(),
        &backups.path().join("b1").display().to_string(),
        None,
        instant_db::backup::no_progress(),
    )
    .await
    .unwrap();
    // The manifest says where the vectors live.
    assert_eq!(
        report.manifest.extra["vector_store"],
        json!({"kind": "qdrant", "collection": "restored"})
    );
    // After the backup: two more documents, so the collection holds points the backup lacks.
    let e = engine.clone();
    tokio::task::spawn_blocking(move || ingest(&e, docs()[3..].to_vec()))
        .await
        .unwrap();
    assert!(qdrant.point_ids("restored").len() > backed_up.len());
    instant_db::maintenance::restore(
        engine.clone(),
        &report.location,
        instant_db::backup::no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(stored_ids(&engine), backed_up);
    assert_eq!(qdrant.point_ids("restored"), backed_up);
    let e = engine.clone();
    let hits = tokio::task::spawn_blocking(move || search(&e, Mode::Vector, None).unwrap())
        .await
        .unwrap();
    assert_eq!(sources(&hits).len(), 3, "{:?}", sources(&hits));
}
