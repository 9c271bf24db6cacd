//! The real model through ONNX Runtime must reproduce sentence-transformers' vectors.
//! Needs the assets from `instant-db setup` (CI runs it first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use instant_db::assets::{self, AssetPaths};
use instant_db::config::EmbeddingConfig;
use instant_db::embed::Embedder;

fn embedder() -> Embedder {
    let cfg = EmbeddingConfig::default();
    let paths = AssetPaths::resolve(&cfg);
    Embedder::load(&cfg, &paths).expect("assets installed by `instant-db setup`")
}

#[test]
fn embeddings_match_sentence_transformers_reference_vectors() {
    let e = embedder();
    assert_eq!(e.dimensions(), 384);
    let refs = assets::reference_vectors().unwrap();
    assert_eq!(refs.len(), 8);
    let texts: Vec<&str> = refs.iter().map(|(t, _)| t.as_str()).collect();
    let got = e.embed(&texts).unwrap();
    for ((text, want), got) in refs.iter().zip(&got) {
        let cos = assets::cosine(want, got);
        assert!(cos >= 0.999, "cosine {cos} for {text:?}");
    }
}

#[test]
fn the_query_session_is_built_when_a_query_first_needs_it_not_at_load() {
    use instant_db::embed::Lane;
    let e = embedder();
    assert!(!e.has_query_session());
    // A query alone borrows the idle ingest session: still no second copy of the model.
    e.embed(&["an ingest batch"]).unwrap();
    e.embed_on(Lane::Query, &["a query"]).unwrap();
    assert!(!e.has_query_session());
    let beside = e.embed_on(Lane::QueryBeside, &["a query"]).unwrap();
    assert!(e.has_query_session());
    let alone = e.embed_on(Lane::Query, &["a query"]).unwrap();
    assert!(assets::cosine(&beside[0], &alone[0]) > 0.99999);
    let prepared = embedder();
    prepared.prepare_query_session().unwrap();
    assert!(prepared.has_query_session());
}

#[test]
fn batch_order_and_size_do_not_change_vectors() {
    let e = embedder();
    let texts = [
        "short",
        "a somewhat longer sentence about databases",
        "mid length text",
    ];
    let together = e.embed(&texts).unwrap();
    for (i, t) in texts.iter().enumerate() {
        let alone = e.embed(&[t]).unwrap();
        assert!(assets::cosine(&alone[0], &together[i]) > 0.99999);
    }
}

#[test]
fn self_check_passes_on_the_installed_model() {
    let worst = assets::self_check(&embedder()).unwrap();
    assert!(worst >= 0.999);
}

#[test]
fn the_int8_model_is_its_own_model_close_to_the_reference_vectors_but_not_equal() {
    // CI's setup builds it (`instant-db setup --int8`).
    let cfg = EmbeddingConfig {
        model: assets::INT8_MODEL.into(),
        ..Default::default()
    };
    let paths = AssetPaths::resolve(&cfg);
    assert!(paths.model_dir.ends_with(assets::INT8_MODEL), "{paths:?}");
    let int8 = Embedder::load(&cfg, &paths).expect("int8 model built by `instant-db setup --int8`");
    assert_eq!(int8.model_name(), assets::INT8_MODEL);
    let worst = assets::self_check(&int8).unwrap();
    assert!(
        (assets::min_reference_cosine(assets::INT8_MODEL)..0.9999).contains(&worst),
        "int8 vectors at cosine {worst} of the fp32 references: not quantized, or too far"
    );
    // Each int8 vector is still nearest to its own text's fp32 vector of all eight.
    let refs = assets::reference_vectors().unwrap();
    let texts: Vec<&str> = refs.iter().map(|(t, _)| t.as_str()).collect();
    for (i, v) in int8.embed(&texts).unwrap().iter().enumerate() {
        let nearest = (0..refs.len())
            .max_by(|&a, &b| {
                assets::cosine(v, &refs[a].1).total_cmp(&assets::cosine(v, &refs[b].1))
            })
            .unwrap();
        assert_eq!(nearest, i, "{:?}", texts[i]);
    }
}

#[test]
fn a_missing_model_directory_names_the_setup_command() {
    let cfg = EmbeddingConfig {
        model_dir: Some("/nonexistent/model".into()),
        ..Default::default()
    };
    let err = Embedder::load(&cfg, &AssetPaths::resolve(&cfg))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("instant-db setup"), "{err}");
}

/// A model directory holding one of the tiny fixture models (see `fixtures/models/`) next to
/// the real tokenizer.
fn tiny_model(fixture: &str) -> (tempfile::TempDir, EmbeddingConfig, AssetPaths) {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models");
    std::fs::copy(fixtures.join(fixture), dir.path().join("model.onnx")).unwrap();
    let real = AssetPaths::resolve(&EmbeddingConfig::default());
    std::fs::copy(real.tokenizer_file(), dir.path().join("tokenizer.json")).unwrap();
    let cfg = EmbeddingConfig {
        model: format!("tiny-{fixture}"),
        model_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let paths = AssetPaths::resolve(&cfg);
    (dir, cfg, paths)
}

#[test]
fn a_model_without_a_token_embedding_output_is_refused_naming_the_model_and_its_outputs() {
    let (_dir, cfg, paths) = tiny_model("no-token-output.onnx");
    let err = match Embedder::load(&cfg, &paths) {
        Ok(_) => panic!("a model with only `logits` was accepted"),
        Err(e) => e,
    };
    assert!(
        matches!(err, instant_db::Error::ModelUnavailable(_)),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("tiny-no-token-output.onnx") && msg.contains("`logits`"),
        "{msg}"
    );
}

#[test]
fn a_model_naming_its_output_token_embeddings_and_taking_no_token_types_is_used() {
    let (_dir, cfg, paths) = tiny_model("token-embeddings.onnx");
    let e = Embedder::load(&cfg, &paths).unwrap();
    assert_eq!(e.dimensions(), 2);
    let vectors = e.embed(&["one", "a longer second text"]).unwrap();
    for v in vectors {
        assert_eq!(v.len(), 2);
        assert!(
            (v[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6,
            "{v:?}"
        );
        assert!(
            (v[1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6,
            "{v:?}"
        );
    }
}
