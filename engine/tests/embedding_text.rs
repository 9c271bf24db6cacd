//! `embedding.text`: what the model embeds for a chunk (title and section path with the text,
//! or the text alone), recorded in the database, noticed by `check` when it changes, and made
//! consistent again by `repair --reembed`. Real model, real SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use instant_db::chunk::context::EmbeddingText;
use instant_db::engine::{Engine, ModelLoading};
use instant_db::ingest::{NoProgress, SourceDoc};

const GUIDE: &str = "# Kettle manual\n\n## Descaling\n\nFill it with vinegar and wait an hour.\n";

fn open(data: &std::path::Path, text: EmbeddingText) -> Engine {
    let mut cfg = common::config(data);
    cfg.embedding.text = text;
    Engine::open(cfg, ModelLoading::Required).unwrap()
}

fn ingest(engine: &Engine) {
    let doc = SourceDoc {
        source: "test:kettle.md".into(),
        name: "kettle.md".into(),
        bytes: GUIDE.as_bytes().to_vec(),
        modified_at: None,
        metadata: None,
    };
    let r = instant_db::ingest::ingest_sources(engine, vec![doc], &NoProgress).unwrap();
    assert_eq!(r.embedded_chunks, r.chunks, "{r:?}");
}

/// The stored vector of the chunk holding `needle`, and that chunk's text as stored.
fn stored(engine: &Engine, needle: &str) -> (Vec<f32>, String) {
    engine
        .store
        .read(|c| {
            Ok(c.query_row(
                "SELECT e.vector, c.text FROM chunks c JOIN embeddings e ON e.chunk_id = c.id
                 WHERE instr(c.text, ?1) > 0",
                [needle],
                |r| {
                    let b: Vec<u8> = r.get(0)?;
                    Ok((instant_db::store::blob_to_vector(&b), r.get(1)?))
                },
            )?)
        })
        .unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn embed(engine: &Engine, text: &str) -> Vec<f32> {
    engine
        .embedder()
        .unwrap()
        .embed(&[text])
        .unwrap()
        .pop()
        .unwrap()
}

#[test]
fn contextual_input_embeds_title_and_sections_but_the_stored_text_stays_as_it_was() {
    let data = tempfile::tempdir().unwrap();
    let engine = open(data.path(), EmbeddingText::Contextual);
    ingest(&engine);
    let (vector, text) = stored(&engine, "vinegar");
    assert!(
        !text.contains("Kettle manual ›"),
        "the stored text changed: {text}"
    );
    let section: Vec<String> = engine
        .store
        .chunks_of(&engine.store.list_documents(0, 1).unwrap()[0].id)
        .unwrap()
        .into_iter()
        .find(|c| c.text.contains("vinegar"))
        .unwrap()
        .section_path;
    let title = engine.store.list_documents(0, 1).unwrap()[0].title.clone();
    let contextual = EmbeddingText::Contextual.input(title.as_deref(), &section, &text);
    assert!(contextual.contains("Descaling"), "{contextual}");
    assert!(cosine(&vector, &embed(&engine, &contextual)) > 0.9999);
    assert!(
        cosine(&vector, &embed(&engine, &text)) < 0.999,
        "bare text was embedded"
    );
    assert_eq!(
        engine.stored_embedding_text().as_deref(),
        Some("contextual-1")
    );
    assert!(
        instant_db::maintenance::check(&engine)
            .unwrap()
            .notes
            .is_empty()
    );
}

#[test]
fn a_changed_recipe_is_noted_by_check_and_repair_reembed_makes_the_vectors_consistent() {
    let data = tempfile::tempdir().unwrap();
    {
        let engine = open(data.path(), EmbeddingText::Bare);
        ingest(&engine);
        assert_eq!(engine.stored_embedding_text().as_deref(), Some("bare"));
    }
    let engine = open(data.path(), EmbeddingText::Contextual);
    let report = instant_db::maintenance::check(&engine).unwrap();
    assert!(report.ok, "a recipe change is not damage: {report:?}");
    let note = report.notes.join(" ");
    assert!(
        note.contains("`bare`") && note.contains("repair --reembed"),
        "{note}"
    );
    let (before, text) = stored(&engine, "vinegar");
    assert!(cosine(&before, &embed(&engine, &text)) > 0.9999);
    let n = engine.reembed_all().unwrap();
    assert!(n >= 1);
    let (after, _) = stored(&engine, "vinegar");
    assert!(
        cosine(&after, &embed(&engine, &text)) < 0.999,
        "not re-embedded"
    );
    let report = instant_db::maintenance::check(&engine).unwrap();
    assert!(report.ok && report.notes.is_empty(), "{report:?}");
    // The index follows the new vectors: the chunk is its own nearest neighbour.
    let hits = engine
        .index()
        .search(&after, 1, None, &engine.stored_vectors())
        .unwrap();
    assert!((hits[0].1 - 1.0).abs() < 1e-3, "{hits:?}");
}

#[test]
fn every_chunk_keeps_its_own_vector_when_an_ingest_embeds_texts_out_of_order() {
    // Chunks of very different lengths across several documents: the ingest embeds them
    // grouped by length, not in document order, and must hand each vector back to its chunk.
    let data = tempfile::tempdir().unwrap();
    let engine = open(data.path(), EmbeddingText::Contextual);
    let docs = (0..5)
        .map(|d| {
            let sections: String = (0..4)
                .map(|s| {
                    let words = "tea kettle descaling vinegar ".repeat(1 + (d * 7 + s * 13) % 40);
                    format!("## Part {s} of {d}\n\n{words}marker-{d}-{s}.\n\n")
                })
                .collect();
            SourceDoc {
                source: format!("test:doc{d}.md"),
                name: format!("doc{d}.md"),
                bytes: format!("# Document {d}\n\n{sections}").into_bytes(),
                modified_at: None,
                metadata: None,
            }
        })
        .collect();
    let r = instant_db::ingest::ingest_sources(&engine, docs, &NoProgress).unwrap();
    assert!(r.chunks >= 20, "{r:?}");
    assert_eq!(r.embedded_chunks, r.chunks, "{r:?}");
    let chunks = engine
        .store
        .chunks_to_embed(engine.model_name(), 0, 1000, false)
        .unwrap();
    let lengths: std::collections::BTreeSet<usize> = chunks.iter().map(|c| c.text.len()).collect();
    assert!(
        lengths.len() >= 10,
        "lengths too alike to reorder: {lengths:?}"
    );
    for c in &chunks {
        let input = EmbeddingText::Contextual.input(c.title.as_deref(), &c.section_path, &c.text);
        let vector = engine
            .store
            .read(|db| {
                Ok(db.query_row(
                    "SELECT vector FROM embeddings WHERE chunk_id = ?1",
                    [c.id],
                    |r| r.get::<_, Vec<u8>>(0),
                )?)
            })
            .map(|b| instant_db::store::blob_to_vector(&b))
            .unwrap();
        assert!(
            cosine(&vector, &embed(&engine, &input)) > 0.9999,
            "chunk {} holds another chunk's vector",
            c.id
        );
    }
}
