//! The exact f32 vectors beside the graph: what small collections and narrow filters scan, and
//! what graph candidates are rescored with.

use std::collections::HashMap;

/// Slot → (chunk id, vector), packed so a scan reads memory in order.
#[derive(Default)]
pub(super) struct ExactVectors {
    ids: Vec<i64>,
    data: Vec<f32>,
    slot_of: HashMap<i64, usize>,
    dims: usize,
}

impl ExactVectors {
    pub(super) fn new(dims: usize) -> Self {
        ExactVectors {
            dims,
            ..Default::default()
        }
    }

    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(super) fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f32>()
    }

    /// Adds or replaces the vector of `id` (of the store's dimensions, checked by the caller).
    pub(super) fn put(&mut self, id: i64, v: &[f32]) {
        let dims = self.dims;
        match self.slot_of.get(&id) {
            Some(&slot) => self.data[slot * dims..(slot + 1) * dims].copy_from_slice(v),
            None => {
                self.slot_of.insert(id, self.ids.len());
                self.ids.push(id);
                self.data.extend_from_slice(v);
            }
        }
    }

    /// Removes a vector by moving the last slot into its place.
    pub(super) fn remove(&mut self, id: i64) {
        let Some(slot) = self.slot_of.remove(&id) else {
            return;
        };
        let dims = self.dims;
        let last = self.ids.len() - 1;
        if slot != last {
            let moved = self.ids[last];
            self.ids[slot] = moved;
            let (head, tail) = self.data.split_at_mut(last * dims);
            head[slot * dims..(slot + 1) * dims].copy_from_slice(&tail[..dims]);
            self.slot_of.insert(moved, slot);
        }
        self.ids.pop();
        self.data.truncate(last * dims);
    }

    pub(super) fn contains(&self, id: i64) -> bool {
        self.slot_of.contains_key(&id)
    }

    pub(super) fn ids(&self) -> &[i64] {
        &self.ids
    }

    fn vector(&self, id: i64) -> Option<&[f32]> {
        let slot = *self.slot_of.get(&id)?;
        Some(&self.data[slot * self.dims..(slot + 1) * self.dims])
    }

    /// The best `k` of `candidates` by exact dot product, best first; unknown ids are skipped.
    pub(super) fn top_k_of(
        &self,
        query: &[f32],
        k: usize,
        candidates: impl Iterator<Item = i64>,
    ) -> Vec<(i64, f32)> {
        let scored = candidates
            .filter_map(|id| self.vector(id).map(|v| (id, dot(v, query))))
            .collect();
        best(scored, k)
    }

    /// The best `k` of all vectors.
    pub(super) fn top_k(&self, query: &[f32], k: usize) -> Vec<(i64, f32)> {
        let scored = self
            .ids
            .iter()
            .zip(self.data.chunks_exact(self.dims))
            .map(|(id, v)| (*id, dot(v, query)))
            .collect();
        best(scored, k)
    }
}

fn best(mut scored: Vec<(i64, f32)>, k: usize) -> Vec<(i64, f32)> {
    let k = k.min(scored.len());
    if k == 0 {
        return vec![];
    }
    scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored
}

pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Independent accumulators let the compiler vectorise the loop.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_moves_the_last_slot_and_keeps_every_other_vector_findable() {
        let mut s = ExactVectors::new(2);
        for id in 1..=4 {
            s.put(id, &[id as f32, 0.0]);
        }
        s.remove(2);
        assert_eq!(s.len(), 3);
        for id in [1, 3, 4] {
            assert_eq!(s.vector(id), Some(&[id as f32, 0.0][..]));
        }
        assert_eq!(s.vector(2), None);
        s.put(3, &[0.0, 9.0]);
        assert_eq!(s.vector(3), Some(&[0.0, 9.0][..]));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn top_k_orders_by_score_and_skips_unknown_candidates() {
        let mut s = ExactVectors::new(2);
        s.put(1, &[1.0, 0.0]);
        s.put(2, &[0.6, 0.8]);
        s.put(3, &[0.0, 1.0]);
        let q = [0.0, 1.0];
        assert_eq!(s.top_k(&q, 2), vec![(3, 1.0), (2, 0.8)]);
        assert_eq!(
            s.top_k_of(&q, 5, [1, 99, 2].into_iter()),
            vec![(2, 0.8), (1, 0.0)]
        );
    }

    #[test]
    fn dot_handles_lengths_that_are_not_a_multiple_of_the_unroll() {
        let a: Vec<f32> = (0..13).map(|i| i as f32).collect();
        let want: f32 = a.iter().map(|x| x * x).sum();
        assert_eq!(dot(&a, &a), want);
    }
}
