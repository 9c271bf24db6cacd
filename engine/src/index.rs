//! The embedded vector index: HNSW (`usearch`) over unit vectors with inner-product distance,
//! derived from the embeddings in SQLite.
//!
//! - The graph holds bf16 copies of the vectors: a graph walk is bound by memory traffic, and
//!   half-width vectors make it about twice as fast as f32 on this kind of CPU. The walk
//!   fetches a few more candidates than asked for and rescores them with the exact f32 vectors read
//!   from where they are stored (`source`), so scores are exact cosines. The f32 vectors are not
//!   kept in memory a second time: a vector costs its bf16 copy and its links, about 1 KB.
//! - int8 would walk about 20 % faster again, but on real embeddings it built graphs with lower
//!   recall: 0.973 against bf16's 0.977 at ef 64, 0.980 against 0.989 at ef 128 (five builds
//!   each over 61k Rust-docs chunks, ef_construction 200; `bench --suite recall`).
//! - f16 gave the same recall as bf16 on the index suite but walked about 20 % slower here
//!   (0.200 against 0.164 ms p50 at ef 48, 100k vectors, one back-to-back run), so bf16 stays.
//! - Small collections (below `search.exact_search_below` vectors) and narrow filters are
//!   scanned exactly (the bf16 copies, then the best candidates rescored): at that size a scan
//!   is as fast as the graph and never misses.
//! - Deletes and replacements go straight into the graph (`usearch` removes keys), so the index
//!   never needs a rebuild to forget a chunk.
//! - The graph is saved to `<data>/index/` with the database generation it reflects, and a
//!   journal (`journal`) lists the chunks changed since (`saved`): a write appends to the journal
//!   instead of rewriting the graph, and the start replays it (each listed id resynced with
//!   SQLite). A dump for another model or dimensions, newer than the database, or whose ids
//!   after the replay differ from the stored embeddings' is not trusted and the graph is
//!   rebuilt from SQLite, a slice at a time.

mod exact;
mod journal;
mod progress;
mod saved;
mod source;

pub use journal::IndexJournal;
pub use progress::{LoadPhase, LoadProgress, LoadStatus};
pub use source::{MemoryVectors, SliceVisitor, StoredVectors, VectorSource};

use std::collections::HashSet;
use std::sync::RwLock;

use serde::Serialize;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::config::IndexConfig;
use crate::error::{Error, Result};

pub(crate) use exact::dot;

/// Below this many vectors in one `add`, threads cost more than they save.
const PARALLEL_ADD_MIN: usize = 256;
/// Candidates fetched beyond the wanted hits, to be rescored in f32: bf16 rounding moves a
/// score by about 1e-3, which reorders near-ties only, so a fixed margin covers them whatever
/// the depth (four times the depth made a 50-deep hybrid list read 200 vectors from SQLite and
/// widen the walk to 200).
const RESCORE_EXTRA: usize = 32;

/// Allowed sets smaller than this are scored exactly: walking the graph while rejecting almost
/// every node would be slower and could miss.
const NARROW_FILTER: usize = 2048;

/// Callers the graph serves at once: `usearch` keeps a fixed set of per-thread search contexts
/// and fails a search past them ("Reserve capacity ahead of searches!") rather than waiting.
/// Its default is one per core, fewer than the searches the server admits (twice the cores)
/// plus a parallel insert; this covers both with room (config refuses a search limit above it).
pub fn search_contexts(cores: usize) -> usize {
    (4 * cores).max(64)
}

fn contexts() -> usize {
    search_contexts(crate::sysres::cores())
}

/// How many candidates a search for `k` hits rescores.
fn candidates_for(k: usize) -> usize {
    k + RESCORE_EXTRA
}

/// How a loaded graph is built and searched (the `index` settings and the exact-scan size).
#[derive(Debug, Clone, Copy)]
pub struct IndexParams<'a> {
    pub cfg: &'a IndexConfig,
    pub exact_below: usize,
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
    /// capacity or swapping it takes the write lock. Lock order: `graph`, then `ids`.
    graph: RwLock<Index>,
    /// The chunk ids in the graph: `usearch` cannot list its keys, and `check` compares them.
    ids: RwLock<HashSet<i64>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IndexStats {
    pub vectors: usize,
    pub dimensions: usize,
    pub exact_search_below: usize,
    /// Bytes the graph (bf16 vectors and links) and its id set use in memory.
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
    let graph = Index::new(&options).map_err(|e| index_err("create", e))?;
    graph
        .reserve_capacity_and_threads(0, contexts())
        .map_err(|e| index_err("reserve search contexts", e))?;
    Ok(graph)
}

fn key(id: i64) -> u64 {
    // Chunk ids are SQLite rowids: positive, so the cast is lossless both ways.
    id as u64
}

/// Keys of a `usearch` answer as chunk ids.
fn ids_of(matches: usearch::ffi::Matches) -> Vec<i64> {
    matches.keys.into_iter().map(|k| k as i64).collect()
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
            ids: RwLock::new(HashSet::new()),
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
        self.ids.read().map(|v| v.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> IndexStats {
        // In use: `usearch` grows its arenas in doubling blocks, and the part not yet used is
        // address space, not resident memory.
        let graph_bytes = self
            .graph
            .read()
            .map(|g| {
                let m = g.memory_stats();
                (m.graph_allocated + m.vectors_allocated)
                    .saturating_sub(m.graph_reserved + m.vectors_reserved)
            })
            .unwrap_or(0);
        let (vectors, id_bytes) = self
            .ids
            .read()
            .map(|v| {
                let slot = std::mem::size_of::<i64>() + 1;
                (v.len(), v.capacity() * slot)
            })
            .unwrap_or_default();
        IndexStats {
            vectors,
            dimensions: self.dimensions,
            exact_search_below: self.exact_below,
            memory_bytes: graph_bytes + id_bytes,
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
        self.add_to_graph(items)
    }

    /// Adds (or replaces) vectors in the graph and the id set.
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
        let threads = crate::sysres::cores();
        if items.len() < PARALLEL_ADD_MIN || threads == 1 {
            insert(items)?;
        } else {
            std::thread::scope(|scope| {
                let workers: Vec<_> = items
                    .chunks(items.len().div_ceil(threads))
                    .map(|part| scope.spawn(move || insert(part)))
                    .collect();
                workers.into_iter().try_for_each(|w| {
                    w.join().map_err(|_| {
                        Error::Internal("vector index insert thread panicked".into())
                    })?
                })
            })?;
        }
        let mut ids = self.ids.write().map_err(|_| poisoned())?;
        ids.extend(items.iter().map(|(id, _)| *id));
        Ok(())
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
            .reserve_capacity_and_threads(target, contexts())
            .map_err(|e| index_err("reserve capacity", e))
    }

    pub fn remove(&self, ids: &[i64]) -> Result<()> {
        let graph = self.graph.read().map_err(|_| poisoned())?;
        let mut held = self.ids.write().map_err(|_| poisoned())?;
        for id in ids {
            graph.remove(key(*id)).map_err(|e| index_err("remove", e))?;
            held.remove(id);
        }
        Ok(())
    }

    /// Top `k` (chunk id, similarity) by dot product, best first, scored exactly with the
    /// vectors of `exact`. `allowed` restricts the candidates (a metadata filter evaluated
    /// beforehand), inside the search, not after it.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        allowed: Option<&HashSet<i64>>,
        exact: &dyn VectorSource,
    ) -> Result<Vec<(i64, f32)>> {
        self.check_dims(query)?;
        let n = self.len();
        if k == 0 || n == 0 {
            return Ok(vec![]);
        }
        let wanted = candidates_for(k);
        let candidates = {
            let graph = self.graph.read().map_err(|_| poisoned())?;
            // A collection below the exact size is scanned exactly, filtered or not: the scan
            // is what its unfiltered searches cost anyway.
            let small = n < self.exact_below;
            match allowed {
                Some(a) if small || a.len() < NARROW_FILTER => scan(&graph, query, wanted, a)?,
                Some(a) => {
                    let walked = ids_of(
                        graph
                            .filtered_search(query, wanted, |key| a.contains(&(key as i64)))
                            .map_err(|e| index_err("filtered search", e))?,
                    );
                    // The walk can end before it met k allowed vectors (a filter that rejects
                    // most of a neighbourhood): the allowed set is scanned then. An allowed
                    // chunk without a vector (stored while the model was down) cannot be found
                    // either way, so the scan may still give fewer.
                    if walked.len() < k.min(a.len()) {
                        scan(&graph, query, wanted, a)?
                    } else {
                        walked
                    }
                }
                None if small => exact_candidates(&graph, query, wanted)?,
                None => {
                    let walked = walk(&graph, query, wanted)?;
                    if walked.len() < k.min(n) {
                        exact_candidates(&graph, query, wanted)?
                    } else {
                        walked
                    }
                }
            }
        };
        exact::rescore(query, k, &candidates, exact)
    }

    /// Exact top-k over all vectors (a scan of the bf16 copies, the best rescored).
    pub fn search_exact(
        &self,
        query: &[f32],
        k: usize,
        exact: &dyn VectorSource,
    ) -> Result<Vec<(i64, f32)>> {
        self.check_dims(query)?;
        let candidates = {
            let graph = self.graph.read().map_err(|_| poisoned())?;
            exact_candidates(&graph, query, candidates_for(k))?
        };
        exact::rescore(query, k, &candidates, exact)
    }

    /// Approximate top-k through the graph only, with an explicit `ef`. For benchmarks: the
    /// width is changed for the whole index under the write lock, so concurrent searches wait.
    pub fn search_graph(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        exact: &dyn VectorSource,
    ) -> Result<Vec<(i64, f32)>> {
        self.check_dims(query)?;
        let candidates = {
            let graph = self.graph.write().map_err(|_| poisoned())?;
            graph.change_expansion_search(ef);
            let walked = walk(&graph, query, candidates_for(k));
            graph.change_expansion_search(self.cfg.ef_search);
            walked?
        };
        exact::rescore(query, k, &candidates, exact)
    }

    /// Compares the ids the index holds (graph and id set alike) with `expected`.
    pub fn compare_ids(&self, expected: &[i64]) -> Result<IdMismatch> {
        const SHOWN: usize = 5;
        let graph = self.graph.read().map_err(|_| poisoned())?;
        let held = self.ids.read().map_err(|_| poisoned())?;
        let want: HashSet<i64> = expected.iter().copied().collect();
        let mut out = IdMismatch::default();
        let mut in_graph = 0;
        for id in &want {
            let found = graph.contains(key(*id));
            in_graph += usize::from(found);
            if !found || !held.contains(id) {
                out.missing_count += 1;
                if out.missing.len() < SHOWN {
                    out.missing.push(*id);
                }
            }
        }
        for id in held.iter() {
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
}

/// Graph candidates: `usearch` widens its candidate list to the count asked for when that
/// exceeds `ef_search`.
fn walk(graph: &Index, query: &[f32], wanted: usize) -> Result<Vec<i64>> {
    Ok(ids_of(
        graph
            .search(query, wanted)
            .map_err(|e| index_err("search", e))?,
    ))
}

/// The best `wanted` of all vectors by their bf16 copies (`usearch`'s brute-force scan).
fn exact_candidates(graph: &Index, query: &[f32], wanted: usize) -> Result<Vec<i64>> {
    Ok(ids_of(
        graph
            .exact_search(query, wanted)
            .map_err(|e| index_err("exact search", e))?,
    ))
}

/// The best `wanted` of the allowed vectors by their bf16 copies, read from the graph one by
/// one (ids without a vector are skipped).
fn scan(graph: &Index, query: &[f32], wanted: usize, allowed: &HashSet<i64>) -> Result<Vec<i64>> {
    let mut v = vec![0f32; query.len()];
    let mut scored = Vec::with_capacity(allowed.len().min(65_536));
    for id in allowed {
        let found = graph
            .get(key(*id), &mut v)
            .map_err(|e| index_err("read vector", e))?;
        if found > 0 {
            scored.push((*id, dot(&v, query)));
        }
    }
    Ok(exact::best(scored, wanted)
        .into_iter()
        .map(|(id, _)| id)
        .collect())
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

fn poisoned() -> Error {
    Error::Internal("vector index lock poisoned by a panic".into())
}

#[cfg(test)]
mod tests;
