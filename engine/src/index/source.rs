//! Where the index gets exact vectors from: the graph keeps bf16 copies only, and the f32
//! vectors stay where they are stored (SQLite's `embeddings`), read when a search rescores its
//! few candidates or a load rebuilds the graph, never held in memory a second time.

use std::collections::HashMap;

use crate::error::Result;

/// What a load is handed, a slice of stored vectors at a time.
pub type SliceVisitor<'a> = dyn FnMut(&[(i64, Vec<f32>)]) -> Result<()> + 'a;

/// Exact f32 vectors by chunk id.
pub trait VectorSource {
    /// The vectors of those of `ids` that have one, in any order.
    fn vectors(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<f32>)>>;
}

/// Every vector the index should hold, for a load: its ids, and all vectors in slices.
pub trait StoredVectors: VectorSource {
    /// Ids of the stored vectors (of the index's dimensions).
    fn ids(&self) -> Result<Vec<i64>>;

    /// Calls `f` with consecutive slices of at most `slice` stored vectors, until all were
    /// given or `f` fails.
    fn for_each_slice(&self, slice: usize, f: &mut SliceVisitor<'_>) -> Result<()>;
}

/// Vectors held in memory: for benchmarks and tests, which have no database behind the index.
#[derive(Debug, Default, Clone)]
pub struct MemoryVectors {
    order: Vec<i64>,
    map: HashMap<i64, Vec<f32>>,
}

impl MemoryVectors {
    pub fn new(items: &[(i64, Vec<f32>)]) -> MemoryVectors {
        let mut m = MemoryVectors::default();
        m.put(items);
        m
    }

    /// Adds or replaces vectors.
    pub fn put(&mut self, items: &[(i64, Vec<f32>)]) {
        for (id, v) in items {
            if self.map.insert(*id, v.clone()).is_none() {
                self.order.push(*id);
            }
        }
    }

    pub fn remove(&mut self, ids: &[i64]) {
        for id in ids {
            self.map.remove(id);
        }
        self.order.retain(|id| self.map.contains_key(id));
    }
}

impl VectorSource for MemoryVectors {
    fn vectors(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<f32>)>> {
        Ok(ids
            .iter()
            .filter_map(|id| self.map.get(id).map(|v| (*id, v.clone())))
            .collect())
    }
}

impl StoredVectors for MemoryVectors {
    fn ids(&self) -> Result<Vec<i64>> {
        Ok(self.order.clone())
    }

    fn for_each_slice(&self, slice: usize, f: &mut SliceVisitor<'_>) -> Result<()> {
        for ids in self.order.chunks(slice.max(1)) {
            f(&self.vectors(ids)?)?;
        }
        Ok(())
    }
}
