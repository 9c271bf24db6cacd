//! Ingest the demo corpus with the real model and check every search mode answers correctly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use instant_db::filter::FilterInput;
use instant_db::ingest::NoProgress;
use instant_db::search::{Mode, SearchRequest};

fn ask(
    engine: &instant_db::engine::Engine,
    q: &str,
    mode: Mode,
) -> instant_db::search::SearchResponse {
    engine
        .search(&SearchRequest {
            query: q.into(),
            mode,
            top_k: Some(5),
            ..Default::default()
        })
        .unwrap()
}

#[test]
fn every_demo_question_ranks_its_document_first_in_hybrid_and_vector_modes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::engine_with_demo(dir.path());
    let mut failures = vec![];
    for mode in [Mode::Hybrid, Mode::Vector] {
        for (q, expected) in common::demo_questions() {
            let r = ask(&engine, &q, mode);
            let top = r
                .hits
                .first()
                .map(|h| h.document.source.clone())
                .unwrap_or_default();
            if !top.ends_with(&expected) {
                failures.push(format!("{mode:?}: {q:?} → {top} (expected {expected})"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn keyword_mode_finds_exact_terms_and_highlights_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::engine_with_demo(dir.path());
    let postmortem = "incident-postmortem-2026-02-outage.md";

    // Terms found only in one document's text: its chunk holding them comes first, marked.
    let r = ask(&engine, "expired certificate", Mode::Keyword);
    assert!(
        r.hits[0].document.source.ends_with(postmortem),
        "{:?}",
        r.hits[0].document
    );
    assert!(
        r.hits[0]
            .highlights
            .iter()
            .any(|h| h.contains("<mark>certificate</mark>")),
        "{:?}",
        r.hits[0].highlights
    );
    assert!(r.hits[0].keyword_score.is_some() && r.hits[0].vector_score.is_none());

    // Terms that are the document's title. Every chunk of it matches them through the title
    // and section columns, so which of its chunks comes first is BM25's length normalisation
    // (the shortest one), not whether the chunk's text holds them: the document must come
    // first, and its opening chunk (the title heading, joined to the Summary) must be among
    // the hits with each term marked.
    let r = ask(&engine, "postmortem login outage", Mode::Keyword);
    assert!(
        r.hits[0].document.source.ends_with(postmortem),
        "{:?}",
        r.hits[0].document
    );
    assert!(
        r.hits
            .iter()
            .all(|h| h.keyword_score.is_some() && h.vector_score.is_none())
    );
    let opening = r
        .hits
        .iter()
        .find(|h| h.document.source.ends_with(postmortem) && h.chunk.index == 0)
        .unwrap_or_else(|| panic!("the opening chunk is not among the hits: {:#?}", r.hits));
    for mark in [
        "<mark>Postmortem</mark>",
        "<mark>login</mark>",
        "<mark>outage</mark>",
    ] {
        assert!(
            opening.highlights.iter().any(|h| h.contains(mark)),
            "{mark}: {:?}",
            opening.highlights
        );
    }
}

#[test]
fn reingesting_unchanged_files_is_a_no_op_and_changed_files_replace_their_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = tempfile::tempdir().unwrap();
    for f in ["faq.md", "pricing.csv"] {
        std::fs::copy(common::demo_corpus().join(f), corpus.path().join(f)).unwrap();
    }
    let engine = instant_db::engine::Engine::open(
        common::config(dir.path()),
        instant_db::engine::ModelLoading::Required,
    )
    .unwrap();
    let paths = [corpus.path().to_path_buf()];
    let first = instant_db::ingest::ingest_paths(&engine, &paths, &Default::default(), &NoProgress)
        .unwrap();
    assert_eq!((first.added, first.unchanged), (2, 0));
    let before = engine.stats().unwrap();
    let gen_before = engine.store.generation().unwrap();
    let again = instant_db::ingest::ingest_paths(&engine, &paths, &Default::default(), &NoProgress)
        .unwrap();
    assert_eq!((again.added, again.updated, again.unchanged), (0, 0, 2));
    assert_eq!(
        engine.store.generation().unwrap(),
        gen_before,
        "a no-op re-ingest wrote to the database"
    );
    std::fs::write(
        corpus.path().join("faq.md"),
        "# Lumen FAQ\n\nZebras are the mascot of the quarterly offsite.\n",
    )
    .unwrap();
    let changed =
        instant_db::ingest::ingest_paths(&engine, &paths, &Default::default(), &NoProgress)
            .unwrap();
    assert_eq!((changed.updated, changed.unchanged), (1, 1));
    let after = engine.stats().unwrap();
    assert_eq!(after.store.documents, before.store.documents);
    assert!(after.store.chunks < before.store.chunks);
    assert_eq!(after.index.vectors as i64, after.store.embeddings);
    let r = ask(&engine, "how do I reset my password", Mode::Keyword);
    assert!(
        r.hits
            .iter()
            .all(|h| !h.chunk.text.contains("Forgot password")),
        "old chunks survived the update"
    );
    assert!(
        ask(&engine, "zebras mascot", Mode::Keyword).hits[0]
            .document
            .source
            .ends_with("faq.md")
    );
    let integrity = engine.store.integrity_check().unwrap();
    assert!(integrity.ok, "{:?}", integrity.problems);
}

#[test]
fn filters_apply_inside_search_in_every_mode_and_both_syntaxes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::engine_with_demo(dir.path());
    // The best answer is the FAQ, but the filter excludes markdown: the next best non-md document wins.
    for filter in [
        FilterInput::Short("extension!=md".into()),
        serde_json::from_value(
            serde_json::json!([{"field": "extension", "op": "ne", "value": "md"}]),
        )
        .unwrap(),
    ] {
        for mode in [Mode::Hybrid, Mode::Vector, Mode::Keyword] {
            let r = engine
                .search(&SearchRequest {
                    query: "How do I reset my password?".into(),
                    mode,
                    top_k: Some(5),
                    filter: Some(filter.clone()),
                    ..Default::default()
                })
                .unwrap();
            assert!(!r.hits.is_empty(), "{mode:?}");
            assert!(
                r.hits.iter().all(|h| !h.document.source.ends_with(".md")),
                "{mode:?}: {:?}",
                r.hits
                    .iter()
                    .map(|h| &h.document.source)
                    .collect::<Vec<_>>()
            );
        }
    }
    // A narrow filter still returns top_k hits when enough documents match (filtering is not after top-k).
    let r = engine
        .search(&SearchRequest {
            query: "notes".into(),
            mode: Mode::Vector,
            top_k: Some(3),
            filter: Some(FilterInput::Short("extension=csv".into())),
            ..Default::default()
        })
        .unwrap();
    assert!(!r.hits.is_empty() && r.hits.iter().all(|h| h.document.source.ends_with(".csv")));
    let r = engine
        .search(&SearchRequest {
            query: "password".into(),
            mode: Mode::Hybrid,
            filter: Some(FilterInput::Short("doc_type=faq".into())),
            ..Default::default()
        })
        .unwrap();
    assert!(r.hits.iter().all(|h| h.document.doc_type == "faq"));
}

#[test]
fn pagination_and_threshold_behave() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::engine_with_demo(dir.path());
    let q = "Lumen notebook";
    let all = engine
        .search(&SearchRequest {
            query: q.into(),
            mode: Mode::Vector,
            top_k: Some(6),
            ..Default::default()
        })
        .unwrap();
    let page2 = engine
        .search(&SearchRequest {
            query: q.into(),
            mode: Mode::Vector,
            top_k: Some(3),
            offset: 3,
            ..Default::default()
        })
        .unwrap();
    let ids: Vec<i64> = all.hits[3..].iter().map(|h| h.chunk.id).collect();
    assert_eq!(
        page2.hits.iter().map(|h| h.chunk.id).collect::<Vec<_>>(),
        ids
    );
    assert_eq!(page2.hits[0].rank, 4);
    let cut = all.hits[2].score;
    let above = engine
        .search(&SearchRequest {
            query: q.into(),
            mode: Mode::Vector,
            top_k: Some(6),
            score_threshold: Some(cut),
            ..Default::default()
        })
        .unwrap();
    assert!(
        above.hits.iter().all(|h| h.score >= cut) && above.hits.len() >= 3 && above.hits.len() < 6
    );
}

#[test]
fn a_model_that_cannot_load_leaves_keyword_search_working() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.embedding.model_dir = Some(dir.path().join("no-model-here"));
    let engine =
        instant_db::engine::Engine::open(cfg, instant_db::engine::ModelLoading::BestEffort)
            .unwrap();
    assert!(engine.model_error().unwrap().contains("instant-db setup"));
    let report = instant_db::ingest::ingest_paths(
        &engine,
        &[common::demo_corpus().join("faq.md")],
        &Default::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(report.added, 1);
    assert!(report.degraded.is_some());
    let r = ask(&engine, "reset password", Mode::Hybrid);
    assert!(r.degraded.is_some());
    assert!(r.hits[0].document.source.ends_with("faq.md"));
    let err = engine
        .search(&SearchRequest {
            query: "reset".into(),
            mode: Mode::Vector,
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.code(), "model_unavailable");
}

/// Past `search.keyword_chunks_per_thread` chunks a keyword query is split over the cores, and
/// a hybrid search embeds its query beside its keyword half instead of before it: both answer
/// exactly as on a collection below the threshold. (The split needs two cores; on one, both
/// engines take the plain path.)
#[test]
fn split_keyword_queries_and_hybrid_beside_them_answer_as_the_plain_path() {
    let dir = tempfile::tempdir().unwrap();
    type Answer = Vec<(i64, Option<f32>, Option<f32>)>;
    let answers = |engine: &instant_db::engine::Engine| -> Vec<Answer> {
        let mut out = vec![];
        for (q, _) in common::demo_questions() {
            for mode in [Mode::Keyword, Mode::Hybrid] {
                for filter in [None, Some(FilterInput::Short("doc_type:faq".into()))] {
                    let r = engine
                        .search(&SearchRequest {
                            query: q.clone(),
                            mode,
                            top_k: Some(20),
                            filter,
                            ..Default::default()
                        })
                        .unwrap();
                    assert!(r.degraded.is_none(), "{r:?}");
                    out.push(
                        r.hits
                            .iter()
                            .map(|h| (h.chunk.id, h.keyword_score, h.vector_score))
                            .collect(),
                    );
                }
            }
        }
        out
    };
    let plain = answers(&common::engine_with_demo(dir.path()));
    let mut cfg = common::config(dir.path());
    cfg.search.keyword_chunks_per_thread = 10;
    let split =
        instant_db::engine::Engine::open(cfg, instant_db::engine::ModelLoading::Required).unwrap();
    let split = answers(&split);
    assert_eq!(split.len(), plain.len());
    // Most lists have several hits to order (a filtered keyword query may have none).
    let ordered = plain.iter().filter(|a| a.len() > 1).count();
    assert!(ordered * 4 >= plain.len() * 3, "{plain:?}");
    for (s, p) in split.iter().zip(&plain) {
        let ids = |a: &Answer| a.iter().map(|h| (h.0, h.1)).collect::<Vec<_>>();
        // Keyword scores are SQLite's own, so equal; vector scores may differ in the last bits
        // between the query session (one thread) and the ingest session (every core).
        assert_eq!(ids(s), ids(p));
        for (a, b) in s.iter().zip(p) {
            let (a, b) = (a.2.unwrap_or(0.0), b.2.unwrap_or(0.0));
            assert!((a - b).abs() < 1e-4, "{a} against {b}");
        }
    }
}
