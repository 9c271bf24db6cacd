//! The graph on disk: loading a saved graph (its journal replayed) or rebuilding it from the
//! stored vectors, and saving it whole.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::source::StoredVectors;
use super::{
    IndexParams, LoadOutcome, LoadPhase, LoadProgress, VectorIndex, index_err, journal, key,
    new_graph, poisoned,
};
use crate::config::IndexConfig;
use crate::error::{Error, Result};

pub(super) const DUMP_FILE: &str = "graph.usearch";
const META_FILE: &str = "meta.json";
/// 3: the dump has a journal beside it. Older dumps were written without one (their changes
/// since cannot be replayed), so they are rebuilt once.
const META_FORMAT: u32 = 3;
/// Serializes whole-directory swaps of saves of the same index (a backup's and the shutdown's,
/// or two processes on one data directory), in the index directory's parent.
const LOCK_FILE: &str = ".index.lock";
/// Vectors read and added per step of a rebuild: the only vectors a rebuild holds in memory
/// besides the graph, and the granularity of its progress.
const REBUILD_SLICE: usize = 4096;

#[derive(Debug, Serialize, Deserialize)]
struct IndexMeta {
    format: u32,
    generation: u64,
    dimensions: usize,
    model: String,
    vectors: usize,
}

impl VectorIndex {
    /// Loads the saved graph and replays its journal when the dump is for this model and
    /// dimensions and not newer than the database (`generation`), and its ids then are those
    /// of `stored`; otherwise rebuilds the graph from `stored`.
    pub fn load(
        dir: &Path,
        generation: u64,
        dimensions: usize,
        model: &str,
        cfg: &IndexConfig,
        exact_below: usize,
        stored: &dyn StoredVectors,
    ) -> Result<(VectorIndex, LoadOutcome)> {
        let progress = LoadProgress::default();
        Self::load_with_progress(
            dir,
            generation,
            dimensions,
            model,
            &IndexParams { cfg, exact_below },
            stored,
            &progress,
        )
    }

    /// [`VectorIndex::load`] reporting its phase and the vectors indexed so far to `progress`.
    /// Memory: the graph, the ids, and one slice of vectors at a time.
    pub fn load_with_progress(
        dir: &Path,
        generation: u64,
        dimensions: usize,
        model: &str,
        params: &IndexParams<'_>,
        stored: &dyn StoredVectors,
        progress: &LoadProgress,
    ) -> Result<(VectorIndex, LoadOutcome)> {
        let (cfg, exact_below) = (params.cfg, params.exact_below);
        let ids = stored.ids()?;
        progress.set_phase(LoadPhase::LoadingSavedGraph, ids.len());
        let index = VectorIndex::new(dimensions, model, cfg, exact_below)?;
        let mut replayed = 0;
        let reason = match read_meta(dir) {
            None if !dir.join(META_FILE).exists() => Some("no saved index".to_string()),
            None => Some("saved index of an older format or unreadable".to_string()),
            Some(meta) if meta.dimensions != dimensions || meta.model != model => Some(format!(
                "saved index is for {} ({} dimensions), not {model} ({dimensions})",
                meta.model, meta.dimensions
            )),
            Some(meta) if meta.generation > generation => Some(format!(
                "saved index (generation {}) is newer than the database ({generation})",
                meta.generation
            )),
            Some(meta) => match index.load_graph(dir, meta.vectors) {
                Err(e) => Some(format!("saved index unreadable: {e}")),
                Ok(()) => match index.replay(&ids, stored, &journal::read(dir))? {
                    Ok(n) => {
                        replayed = n;
                        None
                    }
                    Err(why) => Some(why),
                },
            },
        };
        if let Some(why) = &reason {
            if dir.exists() {
                tracing::warn!(reason = %why, "saved vector index not used; rebuilding");
            }
            // The graph of a dump that was not used goes before the new one is built.
            *index.graph.write().map_err(|_| poisoned())? = new_graph(dimensions, cfg)?;
            index.ids.write().map_err(|_| poisoned())?.clear();
            index.reserve_for(ids.len())?;
            progress.set_phase(LoadPhase::Rebuilding, ids.len());
            progress.set_rebuild_reason(why);
            // In slices so a probe sees the rebuild move; each slice still fills every core.
            stored.for_each_slice(REBUILD_SLICE, &mut |part| {
                index.add(part)?;
                progress.advance(part.len());
                Ok(())
            })?;
        } else {
            *index.ids.write().map_err(|_| poisoned())? = ids.into_iter().collect();
        }
        let outcome = LoadOutcome {
            reused_dump: reason.is_none(),
            replayed,
            rebuild_reason: reason,
        };
        Ok((index, outcome))
    }

    /// Applies the journal to the loaded graph: every listed id is removed and, when `stored`
    /// has a vector for it, added back with that vector. Then the graph's ids must be exactly
    /// `ids` (`Ok(Err(why))` otherwise): a dump with dead ids or missing ones is never used,
    /// whatever its generation says.
    fn replay(
        &self,
        ids: &[i64],
        stored: &dyn StoredVectors,
        journal: &[i64],
    ) -> Result<std::result::Result<usize, String>> {
        let touched: HashSet<i64> = journal.iter().copied().collect();
        {
            let graph = self.graph.read().map_err(|_| poisoned())?;
            for id in &touched {
                if graph.contains(key(*id)) {
                    graph.remove(key(*id)).map_err(|e| index_err("replay", e))?;
                }
            }
        }
        let listed: Vec<i64> = touched.iter().copied().collect();
        self.add_to_graph(&stored.vectors(&listed)?)?;
        let graph = self.graph.read().map_err(|_| poisoned())?;
        let missing = ids.iter().filter(|id| !graph.contains(key(**id))).count();
        if missing > 0 || graph.size() != ids.len() {
            return Ok(Err(format!(
                "saved index after its journal holds {} vectors, {missing} of the {} stored ones missing",
                graph.size(),
                ids.len()
            )));
        }
        Ok(Ok(touched.len()))
    }

    fn load_graph(&self, dir: &Path, expected: usize) -> Result<()> {
        let path = dir.join(DUMP_FILE);
        let path = path.to_str().ok_or_else(|| {
            Error::Internal(format!("index path {} is not UTF-8", path.display()))
        })?;
        let graph = self.graph.write().map_err(|_| poisoned())?;
        graph.load(path).map_err(|e| index_err("load", e))?;
        if graph.dimensions() != self.dimensions || graph.size() != expected {
            return Err(index_err(
                "load",
                format!(
                    "saved graph has {} vectors of {} dimensions, expected {expected} of {}",
                    graph.size(),
                    graph.dimensions(),
                    self.dimensions
                ),
            ));
        }
        // The file keeps the build-time search width; the configured one wins.
        graph.change_expansion_search(self.cfg.ef_search);
        graph
            .reserve_capacity_and_threads(graph.size(), super::contexts())
            .map_err(|e| index_err("reserve search contexts", e))?;
        Ok(())
    }

    /// Writes the graph and its metadata atomically (a temp directory renamed over the old one),
    /// with an empty journal. `generation` must be the database's as of the graph's content:
    /// the caller keeps writes out meanwhile ([`crate::engine::Engine::persist_index`]).
    pub fn persist(&self, dir: &Path, generation: u64) -> Result<()> {
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create index directory", e))?;
        // Each save swaps whole directories: two at once would rename each other's away.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(parent.join(LOCK_FILE))
            .map_err(|e| Error::io("open the index lock file", e))?;
        lock.lock()
            .map_err(|e| Error::io("lock the index directory", e))?;
        let graph = self.graph.read().map_err(|_| poisoned())?;
        let tmp = tempfile::Builder::new()
            .prefix(".index-")
            .tempdir_in(parent)
            .map_err(|e| Error::io("create index temp directory", e))?;
        let dump = tmp.path().join(DUMP_FILE);
        let dump = dump.to_str().ok_or_else(|| {
            Error::Internal(format!("index path {} is not UTF-8", dump.display()))
        })?;
        graph.save(dump).map_err(|e| index_err("save", e))?;
        let meta = IndexMeta {
            format: META_FORMAT,
            generation,
            dimensions: self.dimensions,
            model: self.model.clone(),
            vectors: graph.size(),
        };
        let meta_json =
            serde_json::to_vec_pretty(&meta).map_err(|e| Error::Internal(e.to_string()))?;
        std::fs::write(tmp.path().join(META_FILE), meta_json)
            .map_err(|e| Error::io("write index meta", e))?;
        // The old directory moves into a directory of its own (unique, removed when dropped).
        let old = tempfile::Builder::new()
            .prefix(".index-old-")
            .tempdir_in(parent)
            .map_err(|e| Error::io("create index temp directory", e))?;
        if dir.exists() {
            std::fs::rename(dir, old.path().join("index"))
                .map_err(|e| Error::io("replace index", e))?;
        }
        let kept = tmp.keep();
        std::fs::rename(&kept, dir).map_err(|e| Error::io("replace index", e))?;
        drop(old);
        Ok(())
    }

    /// Files of the persisted index, for backups.
    pub fn files(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn read_meta(dir: &Path) -> Option<IndexMeta> {
    let bytes = std::fs::read(dir.join(META_FILE)).ok()?;
    serde_json::from_slice::<IndexMeta>(&bytes)
        .ok()
        .filter(|m| m.format == META_FORMAT)
}
