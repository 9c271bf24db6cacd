//! Integrity checks and repair of derived data.

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::Result;
use crate::store::IntegrityReport;

/// The database's own check plus the vector index's agreement with the embeddings table.
pub fn check(engine: &Engine) -> Result<IntegrityReport> {
    let mut report = engine.store.integrity_check()?;
    if report.ok || !report.problems.iter().any(|p| p.starts_with("sqlite:")) {
        let vectors = engine.index().len() as i64;
        let dims = engine.index().dimensions();
        let mut expected = 0i64;
        engine
            .store
            .for_each_embedding(engine.model_name(), |_, v| {
                if v.len() == dims {
                    expected += 1;
                }
            })?;
        if vectors != expected {
            report.ok = false;
            report.problems.push(format!(
                "vector index holds {vectors} vectors for {expected} stored embeddings"
            ));
        }
    }
    Ok(report)
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepairReport {
    pub fts_rows: usize,
    pub embeddings_added: usize,
    pub vectors: usize,
    pub integrity_ok: bool,
    pub problems: Vec<String>,
}

/// Rebuilds the full-text index, embeds chunks stored without vectors (when the model is
/// available) and rebuilds the vector index from SQLite.
pub fn repair(engine: &Engine) -> Result<RepairReport> {
    let fts_rows = engine.store.rebuild_fts()?;
    let embeddings_added = if engine.embedder().is_some() {
        engine.backfill_embeddings()?
    } else {
        0
    };
    let _ = std::fs::remove_dir_all(engine.config.index_dir());
    engine.reload_index()?;
    engine.persist_index()?;
    let after = check(engine)?;
    Ok(RepairReport {
        fts_rows,
        embeddings_added,
        vectors: engine.index().len(),
        integrity_ok: after.ok,
        problems: after.problems,
    })
}
