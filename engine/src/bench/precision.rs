//! The int8 model against the default fp32 one, in the same run: ingest-style throughput on the
//! same texts (rounds interleaved, so both see the same machine load), one-query latency, and
//! how far the vectors move.

use std::time::Instant;

use serde_json::{Value, json};

use super::{latency_stats, round};
use crate::assets::{self, AssetPaths, INT8_MODEL};
use crate::config::{Config, EmbeddingConfig};
use crate::embed::{Embedder, Lane};
use crate::error::Result;

const ROUNDS: usize = 3;

/// The default fp32 model and its int8 variant, with `config`'s other embedding settings;
/// `None` when the int8 model is not installed (`instant-db setup --int8`).
pub(super) fn installed_pair(config: &Config) -> Option<[EmbeddingConfig; 2]> {
    let fp32 = EmbeddingConfig {
        model: assets::DEFAULT_MODEL.into(),
        model_dir: None,
        ..config.embedding.clone()
    };
    let int8 = EmbeddingConfig {
        model: INT8_MODEL.into(),
        ..fp32.clone()
    };
    AssetPaths::resolve(&int8).check_present().ok()?;
    Some([fp32, int8])
}

/// `None` when the int8 model is not installed (`instant-db setup --int8`).
pub(super) fn compare(config: &Config, texts: &[&str], queries: &[&str]) -> Result<Option<Value>> {
    let Some([fp32_cfg, int8_cfg]) = installed_pair(config) else {
        return Ok(None);
    };
    eprintln!("bench: int8 model against fp32 on {} texts …", texts.len());
    let models = [
        Embedder::load(&fp32_cfg, &AssetPaths::resolve(&fp32_cfg))?,
        Embedder::load(&int8_cfg, &AssetPaths::resolve(&int8_cfg))?,
    ];
    let mut seconds = [0.0f64; 2];
    for _ in 0..ROUNDS {
        for (m, s) in models.iter().zip(seconds.iter_mut()) {
            let t = Instant::now();
            m.embed(texts)?;
            *s += t.elapsed().as_secs_f64();
        }
    }
    let rate = |s: f64| (texts.len() * ROUNDS) as f64 / s;
    // One model's queries after the other's: alternating them query by query would leave each
    // session's thread pool asleep when its next query comes, and time the wake-up.
    let mut query_ms = [vec![], vec![]];
    for (m, ms) in models.iter().zip(query_ms.iter_mut()) {
        for q in queries {
            let t = Instant::now();
            m.embed_on(Lane::Query, &[q])?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let (fp32_vectors, int8_vectors) = (models[0].embed(texts)?, models[1].embed(texts)?);
    let cosines: Vec<f32> = fp32_vectors
        .iter()
        .zip(&int8_vectors)
        .map(|(a, b)| assets::cosine(a, b))
        .collect();
    let mean = cosines.iter().sum::<f32>() / cosines.len().max(1) as f32;
    let min = cosines.iter().copied().fold(f32::INFINITY, f32::min);
    let [fp32_q, int8_q] = query_ms;
    Ok(Some(json!({
        "texts": texts.len(),
        "rounds": ROUNDS,
        "fp32_texts_per_second": round(rate(seconds[0]), 1),
        "int8_texts_per_second": round(rate(seconds[1]), 1),
        "int8_over_fp32": round(seconds[0] / seconds[1], 2),
        "query_embedding_fp32": latency_stats(fp32_q),
        "query_embedding_int8": latency_stats(int8_q),
        "cosine_int8_to_fp32": {"mean": round(f64::from(mean), 4), "min": round(f64::from(min), 4)},
    })))
}
