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
