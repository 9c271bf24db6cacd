//! Exact scores: the graph's candidates (ranked by their bf16 copies) rescored with the f32
//! vectors from the [`VectorSource`], so every score returned is the exact cosine.

use super::source::VectorSource;
use crate::error::Result;

/// The best `k` of `candidates` by exact dot product with `query`, best first; candidates the
/// source has no vector for (deleted since the walk) are skipped.
pub(super) fn rescore(
    query: &[f32],
    k: usize,
    candidates: &[i64],
    source: &dyn VectorSource,
) -> Result<Vec<(i64, f32)>> {
    let scored = source
        .vectors(candidates)?
        .into_iter()
        .map(|(id, v)| (id, dot(&v, query)))
        .collect();
    Ok(best(scored, k))
}

/// The best `k` of `scored`, best first (ties by id, so answers are stable).
pub(super) fn best(mut scored: Vec<(i64, f32)>, k: usize) -> Vec<(i64, f32)> {
    let k = k.min(scored.len());
    if k == 0 {
        return vec![];
    }
    scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
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
    use super::super::source::MemoryVectors;
    use super::*;

    #[test]
    fn rescoring_orders_by_exact_score_and_skips_candidates_without_a_vector() {
        let source = MemoryVectors::new(&[
            (1, vec![1.0, 0.0]),
            (2, vec![0.6, 0.8]),
            (3, vec![0.0, 1.0]),
        ]);
        let q = [0.0, 1.0];
        assert_eq!(
            rescore(&q, 2, &[1, 2, 3], &source).unwrap(),
            vec![(3, 1.0), (2, 0.8)]
        );
        assert_eq!(
            rescore(&q, 5, &[1, 99, 2], &source).unwrap(),
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
