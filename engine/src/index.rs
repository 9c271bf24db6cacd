//! The embedded vector index: HNSW (`usearch`) over unit vectors with inner-product distance,
//! derived from the embeddings in SQLite.
//!
//! - The graph holds bf16 copies of the vectors: a graph walk is bound by memory traffic, and
//!   half-width vectors make it about twice as fast as f32 on this kind of CPU. The walk
//!   fetches more candidates than asked for and rescores them with the exact f32 vectors kept
//!   beside it (`exact`), so scores are exact cosines.
//! - int8 would walk about 20 % faster again, but on real embeddings it built graphs with lower
//!   recall: 0.973 against bf16's 0.977 at ef 64, 0.980 against 0.989 at ef 128 (five builds
//!   each over 61k Rust-docs chunks, ef_construction 200; `bench --suite recall`).
//! - f16 gave the same recall as bf16 on the index suite but walked about 20 % slower here
//!   (0.200 against 0.164 ms p50 at ef 48, 100k vectors, one back-to-back run), so bf16 stays.
//! - Small collections (below `search.exact_search_below` vectors) and narrow filters are
//!   searched exactly: at that size a scan is as fast as the graph and never misses.
//! - Deletes and replacements go straight into the graph (`usearch` removes keys), so the index
//!   never needs a rebuild to forget a chunk.
//! - The graph is saved to `<data>/index/` with the database generation it reflects, and a
//!   journal (`journal`) lists the chunks changed since: a write appends to the journal instead of
//!   rewriting the graph, and the start replays it (each listed id resynced with SQLite). A dump
//!   for another model or dimensions, newer than the database, or whose ids after the replay
//!   differ from the stored embeddings' is not trusted and the graph is rebuilt from SQLite. The
//!   exact vectors always come from SQLite.

mod exact;
mod journal;
mod progress;

pub use journal::IndexJournal;
pub use progress::{LoadPhase, LoadProgress, LoadStatus};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::config::IndexConfig;
use crate::error::{Error, Result};

use exact::ExactVectors;

const DUMP_FILE: &str = "graph.usearch";
const META_FILE: &str = "meta.json";
/// 3: the dump has a journal beside it. Older dumps were written without one (their changes
/// since cannot be replayed), so they are rebuilt once.
const META_FORMAT: u32 = 3;
/// Serializes whole-directory swaps of saves of the same index (a backup's and the shutdown's,
/// or two processes on one data directory), in the index directory's parent.
const LOCK_FILE: &str = ".index.lock";
/// Below this many vectors in one `add`, threads cost more than they save.
const PARALLEL_ADD_MIN: usize = 256;
/// Graph candidates fetched per wanted hit, to be rescored in f32. The walk keeps ef_search
/// candidates anyway; rescoring more of them costs microseconds and repairs bf16's ordering.
const RESCORE_FACTOR: usize = 4;
/// Allowed sets smaller than this are scored exactly: walking the graph while rejecting almost
/// every node would be slower and could miss.
const NARROW_FILTER: usize = 2048;

/// Vectors added per progress step of a rebuild.
const REBUILD_SLICE: usize = 4096;

/// How a loaded graph is built and searched (the `index` settings and the exact-scan size).
#[derive(Debug, Clone, Copy)]
pub struct IndexParams<'a> {
    pub cfg: &'a IndexConfig,
    pub exact_below: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexMeta {
    format: u32,
    generation: u64,
    dimensions: usize,
    model: String,
    vectors: usize,
}

/// How [`VectorIndex::load`] got its graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LoadOutcome {
    /// The saved graph was used, with the journal replayed; otherwise it was rebuilt.
    pub reused_dump: bool,
    /// Journal entries replayed onto the saved graph.
    pub replayed: usize,
    /// Why the saved graph was not used (`None` when it was).
    pub rebuild_reason: Option<String>,
}

/// Where the index's ids disagree with the ids it should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMismatch {
    /// Expected ids the index lacks (a few, for the report) and how many in all.
    pub missing: Vec<i64>,
    pub missing_count: usize,
    /// Ids the index holds that are not expected (dead chunks) and how many in all.
    pub extra: Vec<i64>,
    pub extra_count: usize,
}

impl IdMismatch {
    pub fn is_empty(&self) -> bool {
        self.missing_count == 0 && self.extra_count == 0
    }
}

pub struct VectorIndex {
    dimensions: usize,
    model: String,
    cfg: IndexConfig,
    exact_below: usize,
    /// Searches and adds share the graph (`usearch` is thread-safe for both); growing its
    /// capacity or swapping it takes the write lock. Lock order: `graph`, then `exact`.
    graph: RwLock<Index>,
    exact: RwLock<ExactVectors>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IndexStats {
    pub vectors: usize,
    pub dimensions: usize,
    pub exact_search_below: usize,
    /// Bytes the graph and the exact vectors occupy in memory.
    pub memory_bytes: usize,
}

fn index_err(context: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("vector index: {context}: {e}"))
}

fn new_graph(dimensions: usize, cfg: &IndexConfig) -> Result<Index> {
    let options = IndexOptions {
        dimensions,
        metric: MetricKind::IP,
        quantization: ScalarKind::BF16,
        connectivity: cfg.m,
        expansion_add: cfg.ef_construction,
        expansion_search: cfg.ef_search,
        multi: false,
    };
    Index::new(&options).map_err(|e| index_err("create", e))
}

fn key(id: i64) -> u64 {
    // Chunk ids are SQLite rowids: positive, so the cast is lossless both ways.
    id as u64
}

impl VectorIndex {
    pub fn new(
        dimensions: usize,
        model: &str,
        cfg: &IndexConfig,
        exact_below: usize,
    ) -> Result<Self> {
        Ok(VectorIndex {
            dimensions,
            model: model.to_string(),
            cfg: cfg.clone(),
            exact_below,
            graph: RwLock::new(new_graph(dimensions, cfg)?),
            exact: RwLock::new(ExactVectors::new(dimensions)),
        })
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The SIMD kernels `usearch` picked on this CPU (e.g. `haswell`, `serial`), for reports.
    pub fn hardware_acceleration(&self) -> String {
        self.graph
            .read()
            .map(|g| g.hardware_acceleration())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.exact.read().map(|v| v.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> IndexStats {
        let graph_bytes = self.graph.read().map(|g| g.memory_usage()).unwrap_or(0);
        let (vectors, exact_bytes) = self
            .exact
            .read()
            .map(|v| (v.len(), v.bytes()))
            .unwrap_or_default();
        let memory_bytes = graph_bytes + exact_bytes;
        IndexStats {
            vectors,
            dimensions: self.dimensions,
            exact_search_below: self.exact_below,
            memory_bytes,
        }
    }

    fn check_dims(&self, v: &[f32]) -> Result<()> {
        if v.len() == self.dimensions {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "vector has {} dimensions, the index has {}",
                v.len(),
                self.dimensions
            )))
        }
    }

    /// Adds vectors (chunk id, unit vector). An id already present is replaced.
    pub fn add(&self, items: &[(i64, Vec<f32>)]) -> Result<()> {
        for (_, v) in items {
            self.check_dims(v)?;
        }
        if items.is_empty() {
            return Ok(());
        }
        {
            let mut exact = self.exact.write().map_err(|_| poisoned())?;
            for (id, v) in items {
                exact.put(*id, v);
            }
        }
        self.add_to_graph(items)
    }

    /// Adds (or replaces) vectors in the graph only.
    fn add_to_graph(&self, items: &[(i64, Vec<f32>)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        self.reserve_for(items.len())?;
        let graph = self.graph.read().map_err(|_| poisoned())?;
        let insert = |batch: &[(i64, Vec<f32>)]| -> Result<()> {
            for (id, v) in batch {
                if graph.contains(key(*id)) {
                    graph
                        .remove(key(*id))
                        .map_err(|e| index_err("replace", e))?;
                }
                graph.add(key(*id), v).map_err(|e| index_err("add", e))?;
            }
            Ok(())
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if items.len() < PARALLEL_ADD_MIN || threads == 1 {
            return insert(items);
        }
        std::thread::scope(|scope| {
            let workers: Vec<_> = items
                .chunks(items.len().div_ceil(threads))
                .map(|part| scope.spawn(move || insert(part)))
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .map_err(|_| Error::Internal("vector index insert thread panicked".into()))?
            })
        })
    }

    /// Grows the graph's capacity ahead of an insert; `usearch` needs room reserved up front.
    fn reserve_for(&self, extra: usize) -> Result<()> {
        {
            let graph = self.graph.read().map_err(|_| poisoned())?;
            if graph.size() + extra <= graph.capacity() {
                return Ok(());
            }
        }
        let graph = self.graph.write().map_err(|_| poisoned())?;
        // Doubling keeps the number of reallocations logarithmic in the collection size.
        let target = (graph.size() + extra).max(graph.capacity() * 2).max(1024);
        graph
            .reserve(target)
            .map_err(|e| index_err("reserve capacity", e))
    }

    pub fn remove(&self, ids: &[i64]) -> Result<()> {
        let graph = self.graph.read().map_err(|_| poisoned())?;
        let mut exact = self.exact.write().map_err(|_| poisoned())?;
        for id in ids {
            graph.remove(key(*id)).map_err(|e| index_err("remove", e))?;
            exact.remove(*id);
        }
        Ok(())
    }

    /// Top `k` (chunk id, similarity) by dot product, best first. `allowed` restricts the
    /// candidates (a metadata filter evaluated beforehand), inside the search, not after it.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        allowed: Option<&HashSet<i64>>,
    ) -> Result<Vec<(i64, f32)>> {
        self.check_dims(query)?;
        let graph = self.graph.read().map_err(|_| poisoned())?;
        let exact = self.exact.read().map_err(|_| poisoned())?;
        if k == 0 || exact.len() == 0 {
            return Ok(vec![]);
        }
        // A collection below the exact size is scanned exactly, filtered or not: the scan is
        // what its unfiltered searches cost anyway.
        let small = exact.len() < self.exact_below;
        match allowed {
            Some(a) if small || a.len() < NARROW_FILTER => {
                Ok(exact.top_k_of(query, k, a.iter().copied()))
            }
            Some(a) => {
                let hits = graph
                    .filtered_search(query, k * RESCORE_FACTOR, |key| a.contains(&(key as i64)))
                    .map_err(|e| index_err("filtered search", e))?;
                let top = exact.top_k_of(query, k, hits.keys.into_iter().map(|k| k as i64));
                // The walk can end before it met k allowed vectors (a filter that rejects
                // most of a neighbourhood): the allowed set is scanned then. An allowed chunk
                // without a vector (stored while the model was down) cannot be found either
                // way, so the scan may still give fewer.
                if top.len() < k.min(a.len()) {
                    Ok(exact.top_k_of(query, k, a.iter().copied()))
                } else {
                    Ok(top)
                }
            }
            None if small => Ok(exact.top_k(query, k)),
            None => {
                let top = graph_search(&graph, &exact, query, k)?;
                if top.len() < k.min(exact.len()) {
                    Ok(exact.top_k(query, k))
                } else {
                    Ok(top)
                }
            }
        }
    }

    /// Exact top-k over all vectors.
    pub fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<(i64, f32)>> {
        self.check_dims(query)?;
        Ok(self.exact.read().map_err(|_| poisoned())?.top_k(query, k))
    }

    /// Approximate top-k through the graph only, with an explicit `ef`. For benchmarks: the
    /// width is changed for the whole index under the write lock, so concurrent searches wait.
    pub fn search_graph(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<(i64, f32)>> {
        self.check_dims(query)?;
        let graph = self.graph.write().map_err(|_| poisoned())?;
        let exact = self.exact.read().map_err(|_| poisoned())?;
        graph.change_expansion_search(ef);
        let hits = graph_search(&graph, &exact, query, k);
        graph.change_expansion_search(self.cfg.ef_search);
        hits
    }

    /// Loads the saved graph and replays its journal when the dump is for this model and
    /// dimensions and not newer than the database (`generation`), and its ids then are those
    /// of `vectors` (the stored embeddings); otherwise rebuilds the graph from them.
    pub fn load(
        dir: &Path,
        generation: u64,
        dimensions: usize,
        model: &str,
        cfg: &IndexConfig,
        exact_below: usize,
        vectors: Vec<(i64, Vec<f32>)>,
    ) -> Result<(VectorIndex, LoadOutcome)> {
        let progress = LoadProgress::default();
        Self::load_with_progress(
            dir,
            generation,
            dimensions,
            model,
            &IndexParams { cfg, exact_below },
            vectors,
            &progress,
        )
    }

    /// [`VectorIndex::load`] reporting its phase and the vectors indexed so far to `progress`.
    pub fn load_with_progress(
        dir: &Path,
        generation: u64,
        dimensions: usize,
        model: &str,
        params: &IndexParams<'_>,
        vectors: Vec<(i64, Vec<f32>)>,
        progress: &LoadProgress,
    ) -> Result<(VectorIndex, LoadOutcome)> {
        let (cfg, exact_below) = (params.cfg, params.exact_below);
        progress.set_phase(LoadPhase::LoadingSavedGraph, vectors.len());
        let index = VectorIndex::new(dimensions, model, cfg, exact_below)?;
        for (_, v) in &vectors {
            index.check_dims(v)?;
        }
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
                Ok(()) => match index.replay(&vectors, &journal::read(dir))? {
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
            *index.graph.write().map_err(|_| poisoned())? = new_graph(dimensions, cfg)?;
            progress.set_phase(LoadPhase::Rebuilding, vectors.len());
            progress.set_rebuild_reason(why);
            // In slices so a probe sees the rebuild move; each slice still fills every core.
            for part in vectors.chunks(REBUILD_SLICE) {
                index.add(part)?;
                progress.advance(part.len());
            }
        } else {
            let mut exact = index.exact.write().map_err(|_| poisoned())?;
            for (id, v) in &vectors {
                exact.put(*id, v);
            }
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
    /// the stored ones (`Ok(Err(why))` otherwise): a dump with dead ids or missing ones is never
    /// used, whatever its generation says.
    fn replay(
        &self,
        stored: &[(i64, Vec<f32>)],
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
        let readd: Vec<(i64, Vec<f32>)> = stored
            .iter()
            .filter(|(id, _)| touched.contains(id))
            .cloned()
            .collect();
        self.add_to_graph(&readd)?;
        let graph = self.graph.read().map_err(|_| poisoned())?;
        let missing = stored
            .iter()
            .filter(|(id, _)| !graph.contains(key(*id)))
            .count();
        if missing > 0 || graph.size() != stored.len() {
            return Ok(Err(format!(
                "saved index after its journal holds {} vectors, {missing} of the {} stored ones missing",
                graph.size(),
                stored.len()
            )));
        }
        Ok(Ok(touched.len()))
    }

    /// Compares the ids the index holds (graph and exact vectors alike) with `expected`.
    pub fn compare_ids(&self, expected: &[i64]) -> Result<IdMismatch> {
        const SHOWN: usize = 5;
        let graph = self.graph.read().map_err(|_| poisoned())?;
        let exact = self.exact.read().map_err(|_| poisoned())?;
        let want: HashSet<i64> = expected.iter().copied().collect();
        let mut out = IdMismatch::default();
        let mut in_graph = 0;
        for id in &want {
            let found = graph.contains(key(*id));
            in_graph += usize::from(found);
            if !found || !exact.contains(*id) {
                out.missing_count += 1;
                if out.missing.len() < SHOWN {
                    out.missing.push(*id);
                }
            }
        }
        for id in exact.ids() {
            if !want.contains(id) {
                out.extra_count += 1;
                if out.extra.len() < SHOWN {
                    out.extra.push(*id);
                }
            }
        }
        // The graph's keys cannot be listed; with every expected id present, any surplus in its
        // size is keys that should not be there.
        let graph_surplus = graph.size().saturating_sub(in_graph);
        out.extra_count = out.extra_count.max(graph_surplus);
        out.missing.sort_unstable();
        out.extra.sort_unstable();
        Ok(out)
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

/// Graph candidates, rescored exactly. `usearch` widens its candidate list to the count asked
/// for when that exceeds `ef_search`.
fn graph_search(
    graph: &Index,
    exact: &ExactVectors,
    query: &[f32],
    k: usize,
) -> Result<Vec<(i64, f32)>> {
    let hits = graph
        .search(query, k * RESCORE_FACTOR)
        .map_err(|e| index_err("search", e))?;
    Ok(exact.top_k_of(query, k, hits.keys.into_iter().map(|k| k as i64)))
}

/// Deterministic unit vectors with the structure of sentence embeddings: points of a
/// 24-dimensional latent space (32 topic clusters) mapped linearly into `dims` dimensions, plus
/// a little isotropic noise, then normalised. Sentence embeddings have a low intrinsic
/// dimension; uniform random vectors do not, and no graph index finds their neighbours well, so
/// they would misstate real behaviour. Used by benchmarks and tests.
pub fn synthetic_vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    use rand::{Rng, SeedableRng};
    const LATENT: usize = 24;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Box-Muller: two uniforms in (0, 1] make a standard normal.
    let mut normal = move || {
        let (u, v): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    };
    let basis: Vec<Vec<f32>> = (0..dims)
        .map(|_| (0..LATENT).map(|_| normal()).collect())
        .collect();
    let centres: Vec<Vec<f32>> = (0..32)
        .map(|_| (0..LATENT).map(|_| normal()).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % centres.len()];
            let z: Vec<f32> = c.iter().map(|x| x + 0.8 * normal()).collect();
            let mut v: Vec<f32> = basis
                .iter()
                .map(|row| row.iter().zip(&z).map(|(a, b)| a * b).sum::<f32>() + 0.3 * normal())
                .collect();
            crate::embed::normalize(&mut v);
            v
        })
        .collect()
}

fn read_meta(dir: &Path) -> Option<IndexMeta> {
    let bytes = std::fs::read(dir.join(META_FILE)).ok()?;
    serde_json::from_slice::<IndexMeta>(&bytes)
        .ok()
        .filter(|m| m.format == META_FORMAT)
}

fn poisoned() -> Error {
    Error::Internal("vector index lock poisoned by a panic".into())
}

#[cfg(test)]
mod tests;
