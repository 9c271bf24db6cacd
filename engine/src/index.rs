//! The embedded vector index: HNSW (`hnsw_rs`) over unit vectors with dot-product distance,
//! derived from the embeddings in SQLite.
//!
//! - Small collections (below `search.exact_search_below` vectors) and narrow filters are
//!   searched exactly: at that size a scan is as fast as the graph and never misses.
//! - `hnsw_rs` cannot delete, so removed chunks become tombstones filtered out of every search;
//!   when they pass a quarter of the graph it is rebuilt from the live vectors.
//! - The graph is dumped to `<data>/index/` with the database generation it reflects; at start a
//!   dump whose generation differs from the database's is stale and rebuilt from SQLite.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use hnsw_rs::prelude::{AnnT, DistDot, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};

use crate::config::IndexConfig;
use crate::error::{Error, Result};

const DUMP_BASENAME: &str = "hnsw";
const MAX_LAYERS: usize = 16;

type Graph = Hnsw<'static, f32, DistDot>;

#[derive(Debug, Serialize, Deserialize)]
struct IndexMeta {
    format: u32,
    generation: u64,
    dimensions: usize,
    model: String,
    /// Chunk ids present in the dumped graph; the dump is only valid for exactly these.
    graph_ids: usize,
    tombstones: Vec<i64>,
}

struct State {
    graph: Graph,
    /// Live vectors: slot → (chunk id, vector). Also what exact search scans.
    ids: Vec<i64>,
    vectors: Vec<f32>,
    slot_of: HashMap<i64, usize>,
    /// Ids still in the graph but deleted from the database.
    tombstones: HashSet<i64>,
    graph_size: usize,
}

pub struct VectorIndex {
    dimensions: usize,
    model: String,
    cfg: IndexConfig,
    exact_below: usize,
    state: RwLock<State>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IndexStats {
    pub vectors: usize,
    pub graph_nodes: usize,
    pub tombstones: usize,
    pub dimensions: usize,
    pub exact_search_below: usize,
}

fn new_graph(cfg: &IndexConfig, capacity: usize) -> Graph {
    Hnsw::new(
        cfg.m,
        capacity.max(1024),
        MAX_LAYERS,
        cfg.ef_construction,
        DistDot,
    )
}

impl VectorIndex {
    pub fn new(dimensions: usize, model: &str, cfg: &IndexConfig, exact_below: usize) -> Self {
        VectorIndex {
            dimensions,
            model: model.to_string(),
            cfg: cfg.clone(),
            exact_below,
            state: RwLock::new(State {
                graph: new_graph(cfg, 1024),
                ids: vec![],
                vectors: vec![],
                slot_of: HashMap::new(),
                tombstones: HashSet::new(),
                graph_size: 0,
            }),
        }
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    pub fn len(&self) -> usize {
        self.state.read().map(|s| s.ids.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> IndexStats {
        let (vectors, graph_nodes, tombstones) = self
            .state
            .read()
            .map(|s| (s.ids.len(), s.graph_size, s.tombstones.len()))
            .unwrap_or_default();
        IndexStats {
            vectors,
            graph_nodes,
            tombstones,
            dimensions: self.dimensions,
            exact_search_below: self.exact_below,
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
        let mut s = self.state.write().map_err(|_| poisoned())?;
        for (id, v) in items {
            if s.slot_of.contains_key(id) {
                remove_slot(&mut s, *id);
                s.tombstones.insert(*id);
            }
            let slot = s.ids.len();
            s.ids.push(*id);
            s.vectors.extend_from_slice(v);
            s.slot_of.insert(*id, slot);
        }
        let batch: Vec<(&[f32], usize)> = items
            .iter()
            .map(|(id, v)| (v.as_slice(), *id as usize))
            .collect();
        if !batch
            .iter()
            .any(|(_, id)| s.tombstones.contains(&(*id as i64)))
        {
            if batch.len() > 64 {
                s.graph.parallel_insert_slice(&batch);
            } else {
                for item in batch {
                    s.graph.insert_slice(item);
                }
            }
            s.graph_size += items.len();
        } else {
            // A re-added id cannot be un-tombstoned in the graph: rebuild instead.
            drop(s);
            return self.rebuild_graph();
        }
        Ok(())
    }

    pub fn remove(&self, ids: &[i64]) -> Result<()> {
        let needs_rebuild = {
            let mut s = self.state.write().map_err(|_| poisoned())?;
            for id in ids {
                if s.slot_of.contains_key(id) {
                    remove_slot(&mut s, *id);
                    s.tombstones.insert(*id);
                }
            }
            s.tombstones.len() * 4 > s.graph_size.max(1)
        };
        if needs_rebuild {
            self.rebuild_graph()?;
        }
        Ok(())
    }

    /// Rebuilds the graph from the live vectors, dropping tombstones.
    pub fn rebuild_graph(&self) -> Result<()> {
        let mut s = self.state.write().map_err(|_| poisoned())?;
        let graph = new_graph(&self.cfg, s.ids.len());
        let dims = self.dimensions;
        let batch: Vec<(&[f32], usize)> = s
            .ids
            .iter()
            .enumerate()
            .map(|(slot, id)| (&s.vectors[slot * dims..(slot + 1) * dims], *id as usize))
            .collect();
        graph.parallel_insert_slice(&batch);
        s.graph_size = s.ids.len();
        s.graph = graph;
        s.tombstones.clear();
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
        let s = self.state.read().map_err(|_| poisoned())?;
        if k == 0 || s.ids.is_empty() {
            return Ok(vec![]);
        }
        let narrow = allowed.is_some_and(|a| a.len() < 2048);
        if s.ids.len() < self.exact_below || narrow {
            return Ok(exact(&s, self.dimensions, query, k, allowed));
        }
        Ok(self.graph_search(&s, query, k, self.cfg.ef_search, allowed))
    }

    /// Exact top-k over all live vectors (ground truth for recall measurements).
    pub fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<(i64, f32)>> {
        self.check_dims(query)?;
        let s = self.state.read().map_err(|_| poisoned())?;
        Ok(exact(&s, self.dimensions, query, k, None))
    }

    /// Approximate top-k through the graph only, with an explicit `ef` (benchmarks).
    pub fn search_graph(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<(i64, f32)>> {
        self.check_dims(query)?;
        let s = self.state.read().map_err(|_| poisoned())?;
        Ok(self.graph_search(&s, query, k, ef, None))
    }

    fn graph_search(
        &self,
        s: &State,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed: Option<&HashSet<i64>>,
    ) -> Vec<(i64, f32)> {
        let ef = ef.max(k);
        let hits = if s.tombstones.is_empty() && allowed.is_none() {
            s.graph.search(query, k, ef)
        } else {
            let keep = |id: &usize| {
                let id = *id as i64;
                !s.tombstones.contains(&id) && allowed.is_none_or(|a| a.contains(&id))
            };
            s.graph.search_filter(query, k, ef, Some(&keep))
        };
        hits.into_iter()
            .map(|n| (n.d_id as i64, 1.0 - n.distance))
            .collect()
    }

    /// Loads the dumped graph when it matches `generation`, else returns `None`.
    /// The vectors themselves always come from SQLite (`add_loaded`).
    pub fn load(
        dir: &Path,
        generation: u64,
        dimensions: usize,
        model: &str,
        cfg: &IndexConfig,
        exact_below: usize,
        vectors: Vec<(i64, Vec<f32>)>,
    ) -> Result<(VectorIndex, bool)> {
        let index = VectorIndex::new(dimensions, model, cfg, exact_below);
        let fresh = match read_meta(dir) {
            Some(meta)
                if meta.generation == generation
                    && meta.dimensions == dimensions
                    && meta.model == model
                    && meta.graph_ids == vectors.len() + meta.tombstones.len() =>
            {
                match load_graph(dir) {
                    Ok(graph) => {
                        let mut s = index.state.write().map_err(|_| poisoned())?;
                        s.graph_size = meta.graph_ids;
                        s.graph = graph;
                        s.tombstones = meta.tombstones.into_iter().collect();
                        fill(&mut s, vectors.iter());
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "vector index dump unreadable; rebuilding");
                        false
                    }
                }
            }
            _ => false,
        };
        if !fresh {
            {
                let mut s = index.state.write().map_err(|_| poisoned())?;
                fill(&mut s, vectors.iter());
            }
            index.rebuild_graph()?;
        }
        Ok((index, fresh))
    }

    /// Writes the graph and its metadata atomically (a temp directory renamed over the old one).
    pub fn persist(&self, dir: &Path, generation: u64) -> Result<()> {
        let s = self.state.read().map_err(|_| poisoned())?;
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create index directory", e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".index-")
            .tempdir_in(parent)
            .map_err(|e| Error::io("create index temp directory", e))?;
        if s.graph_size > 0 {
            s.graph
                .file_dump(tmp.path(), DUMP_BASENAME)
                .map_err(|e| Error::Internal(format!("cannot dump vector index: {e}")))?;
        }
        let meta = IndexMeta {
            format: 1,
            generation,
            dimensions: self.dimensions,
            model: self.model.clone(),
            graph_ids: s.graph_size,
            tombstones: s.tombstones.iter().copied().collect(),
        };
        let meta_json =
            serde_json::to_vec_pretty(&meta).map_err(|e| Error::Internal(e.to_string()))?;
        std::fs::write(tmp.path().join("meta.json"), meta_json)
            .map_err(|e| Error::io("write index meta", e))?;
        let old = parent.join(format!(".index-old-{}", std::process::id()));
        if dir.exists() {
            std::fs::rename(dir, &old).map_err(|e| Error::io("replace index", e))?;
        }
        let kept = tmp.keep();
        std::fs::rename(&kept, dir).map_err(|e| Error::io("replace index", e))?;
        let _ = std::fs::remove_dir_all(&old);
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

/// Deterministic unit vectors with the structure of sentence embeddings: points of a
/// 24-dimensional latent space (32 topic clusters) mapped linearly into `dims` dimensions, plus
/// a little isotropic noise, then normalised. Sentence embeddings have a low intrinsic
/// dimension; uniform random vectors do not, and no graph index finds their neighbours well, so
/// they would misstate real behaviour. Used by benchmarks and tests.
pub fn synthetic_vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    const LATENT: usize = 24;
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut uniform = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    // Box-Muller: two uniforms make a standard normal.
    let mut normal = move || {
        let (u, v) = (uniform(), uniform());
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

fn fill<'a>(s: &mut State, vectors: impl Iterator<Item = &'a (i64, Vec<f32>)>) {
    for (id, v) in vectors {
        let slot = s.ids.len();
        s.ids.push(*id);
        s.vectors.extend_from_slice(v);
        s.slot_of.insert(*id, slot);
    }
}

/// Removes a live vector by moving the last slot into its place.
fn remove_slot(s: &mut State, id: i64) {
    let Some(slot) = s.slot_of.remove(&id) else {
        return;
    };
    let dims = s.vectors.len() / s.ids.len().max(1);
    let last = s.ids.len() - 1;
    if slot != last {
        let moved = s.ids[last];
        s.ids[slot] = moved;
        let (head, tail) = s.vectors.split_at_mut(last * dims);
        head[slot * dims..(slot + 1) * dims].copy_from_slice(&tail[..dims]);
        s.slot_of.insert(moved, slot);
    }
    s.ids.pop();
    s.vectors.truncate(last * dims);
}

fn exact(
    s: &State,
    dims: usize,
    query: &[f32],
    k: usize,
    allowed: Option<&HashSet<i64>>,
) -> Vec<(i64, f32)> {
    let mut scored: Vec<(i64, f32)> = match allowed {
        Some(a) => a
            .iter()
            .filter_map(|id| {
                s.slot_of
                    .get(id)
                    .map(|&slot| (*id, dot(&s.vectors[slot * dims..(slot + 1) * dims], query)))
            })
            .collect(),
        None => s
            .ids
            .iter()
            .zip(s.vectors.chunks_exact(dims))
            .map(|(id, v)| (*id, dot(v, query)))
            .collect(),
    };
    let k = k.min(scored.len());
    if k == 0 {
        return vec![];
    }
    scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four accumulators let the compiler vectorise the loop.
    let mut acc = [0f32; 4];
    let chunks = a.len() / 4 * 4;
    for i in (0..chunks).step_by(4) {
        acc[0] += a[i] * b[i];
        acc[1] += a[i + 1] * b[i + 1];
        acc[2] += a[i + 2] * b[i + 2];
        acc[3] += a[i + 3] * b[i + 3];
    }
    let mut sum = acc.iter().sum::<f32>();
    for i in chunks..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

fn read_meta(dir: &Path) -> Option<IndexMeta> {
    let bytes = std::fs::read(dir.join("meta.json")).ok()?;
    serde_json::from_slice::<IndexMeta>(&bytes)
        .ok()
        .filter(|m| m.format == 1)
}

fn load_graph(dir: &Path) -> std::result::Result<Graph, String> {
    if !dir.join(format!("{DUMP_BASENAME}.hnsw.graph")).exists() {
        return Err("no graph file".into());
    }
    // `hnsw_rs` ties a reloaded graph's lifetime to its loader; the loader is a few paths and
    // options, leaked once per load (at start and after a restore) so the graph can be 'static.
    let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, DUMP_BASENAME)));
    io.load_hnsw::<f32, DistDot>().map_err(|e| e.to_string())
}

fn poisoned() -> Error {
    Error::Internal("vector index lock poisoned by a panic".into())
}

#[cfg(test)]
mod tests;
