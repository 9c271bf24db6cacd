//! Every filter operator, in both syntaxes, executed by SQLite through keyword, vector and
//! hybrid search over real documents embedded by the real model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use instant_db::engine::{Engine, ModelLoading};
use instant_db::filter::FilterInput;
use instant_db::ingest::{NoProgress, SourceDoc};
use instant_db::search::{Mode, SearchRequest};
use serde_json::{Value, json};

/// Four animal-care documents; every one matches the query, so the filter alone decides.
fn engine(data: &std::path::Path) -> Engine {
    let engine = Engine::open(common::config(data), ModelLoading::Required).unwrap();
    let docs = [
        (
            "otters",
            "2026-01-10T00:00:00Z",
            json!({"team": "core", "tags": ["alpha", "beta"], "priority": 3, "due": "2026-01-15",
                   "owner": {"name": "Ann"}}),
        ),
        (
            "badgers",
            "2026-02-20T00:00:00Z",
            json!({"team": "search", "tags": ["gamma"], "priority": 7, "due": "2026-03-01",
                   "owner": {"name": "Bob"}}),
        ),
        (
            "herons",
            "2025-11-05T00:00:00Z",
            json!({"team": "core-infra", "priority": 10, "due": "2025-12-31"}),
        ),
        (
            "lynx",
            "2026-03-30T00:00:00Z",
            json!({"team": "ops", "tags": "alpha-beta", "priority": 1}),
        ),
    ];
    let sources = docs
        .into_iter()
        .map(|(name, modified, meta)| SourceDoc {
            source: format!("test:{name}"),
            name: format!("{name}.md"),
            bytes: format!(
                "# {name}\n\nCare notes for the {name}: feeding, cleaning and health checks.\n"
            )
            .into_bytes(),
            modified_at: Some(modified.into()),
            metadata: Some(meta),
        })
        .collect();
    let report = instant_db::ingest::ingest_sources(&engine, sources, &NoProgress).unwrap();
    assert_eq!(report.added, 4, "{report:?}");
    assert_eq!(report.embedded_chunks, 4, "{report:?}");
    engine
}

fn found(engine: &Engine, mode: Mode, filter: FilterInput) -> BTreeSet<String> {
    let resp = engine
        .search(&SearchRequest {
            query: "care notes".into(),
            mode,
            top_k: Some(20),
            filter: Some(filter),
            ..Default::default()
        })
        .unwrap();
    resp.hits
        .iter()
        .map(|h| h.document.source.trim_start_matches("test:").to_string())
        .collect()
}

#[test]
fn every_operator_filters_keyword_vector_and_hybrid_search_alike_in_both_syntaxes() {
    let data = tempfile::tempdir().unwrap();
    let engine = engine(data.path());
    // (short syntax, the same as JSON conditions, the documents that pass)
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("team=core", json!({"team": "core"}), &["otters"]),
        (
            "team!=core",
            json!([{"field": "team", "op": "ne", "value": "core"}]),
            &["badgers", "herons", "lynx"],
        ),
        // Substring of a scalar, case-insensitive.
        (
            "team~CORE",
            json!({"team": {"contains": "CORE"}}),
            &["herons", "otters"],
        ),
        // Element of a JSON array (exact), or substring of a scalar.
        (
            "tags~alpha",
            json!({"tags": {"contains": "alpha"}}),
            &["lynx", "otters"],
        ),
        (
            "tags~alph",
            json!({"tags": {"contains": "alph"}}),
            &["lynx"],
        ),
        (
            "tags!~alpha",
            json!([{"field": "tags", "op": "not_contains", "value": "alpha"}]),
            &["badgers", "herons"],
        ),
        (
            "team^core",
            json!({"team": {"starts_with": "core"}}),
            &["herons", "otters"],
        ),
        (
            "team$infra",
            json!({"team": {"ends_with": "infra"}}),
            &["herons"],
        ),
        // Numbers compare as numbers (10 > 7, not "10" < "7").
        (
            "priority>3",
            json!({"priority": {"gt": 3}}),
            &["badgers", "herons"],
        ),
        ("priority<3", json!({"priority": {"lt": 3}}), &["lynx"]),
        (
            "priority>=7",
            json!({"priority": {"ge": 7}}),
            &["badgers", "herons"],
        ),
        (
            "priority<=3",
            json!({"priority": {"le": 3}}),
            &["lynx", "otters"],
        ),
        // Dates in user metadata and in a document column.
        (
            "due>2026-01-01",
            json!({"due": {"gt": "2026-01-01"}}),
            &["badgers", "otters"],
        ),
        (
            "due<2026-01-01",
            json!({"due": {"lt": "2026-01-01"}}),
            &["herons"],
        ),
        (
            "due>=2026-03-01",
            json!({"due": {"ge": "2026-03-01"}}),
            &["badgers"],
        ),
        (
            "due<=2026-01-15",
            json!({"due": {"le": "2026-01-15"}}),
            &["herons", "otters"],
        ),
        (
            "modified_at>=2026-02-01",
            json!([{"field": "modified_at", "op": "ge", "value": "2026-02-01"}]),
            &["badgers", "lynx"],
        ),
        (
            "modified_at<2026-01-01",
            json!({"modified_at": {"lt": "2026-01-01"}}),
            &["herons"],
        ),
        (
            "team=[core,ops]",
            json!({"team": {"in": ["core", "ops"]}}),
            &["lynx", "otters"],
        ),
        (
            "team!=[core,ops]",
            json!([{"field": "team", "op": "not_in", "value": ["core", "ops"]}]),
            &["badgers", "herons"],
        ),
        (
            "team~/^core(-infra)?$/",
            json!({"team": {"regex": "^core(-infra)?$"}}),
            &["herons", "otters"],
        ),
        // A `;` inside the pattern does not end the condition.
        (
            "team~/^(core|search);?$/; priority>3",
            json!([{"field": "team", "op": "regex", "value": "^(core|search);?$"},
                   {"field": "priority", "op": "gt", "value": 3}]),
            &["badgers"],
        ),
        (
            "tags",
            json!([{"field": "tags", "op": "exists"}]),
            &["badgers", "lynx", "otters"],
        ),
        (
            "!tags",
            json!([{"field": "tags", "op": "not_exists"}]),
            &["herons"],
        ),
        // Nested user metadata.
        (
            "metadata.owner.name=Ann",
            json!({"metadata.owner.name": "Ann"}),
            &["otters"],
        ),
        (
            "metadata.owner.name",
            json!([{"field": "metadata.owner.name", "op": "exists"}]),
            &["badgers", "otters"],
        ),
        (
            "size>0; !owner",
            json!({"size": {"gt": 0}, "owner": {"not_exists": null}}),
            &["herons", "lynx"],
        ),
    ];
    for (short, json_form, expected) in cases {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        let forms = [
            FilterInput::Short(short.to_string()),
            serde_json::from_value::<FilterInput>(json_form.clone()).unwrap(),
        ];
        for filter in forms {
            for mode in [Mode::Keyword, Mode::Vector, Mode::Hybrid] {
                let got = found(&engine, mode, filter.clone());
                assert_eq!(got, expected, "{mode:?} {filter:?}");
            }
        }
    }
}

#[test]
fn without_a_filter_every_document_answers_so_the_filter_cases_are_meaningful() {
    let data = tempfile::tempdir().unwrap();
    let engine = engine(data.path());
    for mode in [Mode::Keyword, Mode::Vector, Mode::Hybrid] {
        let got = found(&engine, mode, FilterInput::List(vec![]));
        assert_eq!(got.len(), 4, "{mode:?}: {got:?}");
    }
}
