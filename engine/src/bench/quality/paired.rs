//! Two models asked the same queries: how far apart their MRR@10 is, and how sure that gap is.
//! The queries are paired (each asked of both), so the gap's spread comes from the per-query
//! differences, which is much tighter than comparing two independent scores.

use super::reciprocal_rank;

/// Normal quantile of a two-sided 95 % interval.
const Z_95: f64 = 1.96;

/// The mean per-query difference in reciprocal rank (other − base), i.e. the gap in MRR@10.
#[derive(Debug, PartialEq)]
pub(super) struct Gap {
    pub mean: f64,
    /// 95 % interval of the mean (normal approximation; hundreds of queries).
    pub low: f64,
    pub high: f64,
    /// Queries whose document the two models ranked differently (within the first ten).
    pub differing: usize,
}

impl Gap {
    /// `base` and `other` are the ranks of the same queries, in the same order.
    pub fn of(base: &[Option<usize>], other: &[Option<usize>]) -> Gap {
        let d: Vec<f64> = base
            .iter()
            .zip(other)
            .map(|(&b, &o)| reciprocal_rank(o) - reciprocal_rank(b))
            .collect();
        let n = d.len() as f64;
        let mean = d.iter().sum::<f64>() / n.max(1.0);
        let half = if d.len() < 2 {
            0.0
        } else {
            let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            Z_95 * (var / n).sqrt()
        };
        Gap {
            mean,
            low: mean - half,
            high: mean + half,
            differing: d.iter().filter(|x| **x != 0.0).count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_ranks_give_no_gap_and_no_spread() {
        let r = [Some(1), Some(3), None, Some(12)];
        assert_eq!(
            Gap::of(&r, &r),
            Gap {
                mean: 0.0,
                low: 0.0,
                high: 0.0,
                differing: 0
            }
        );
    }

    #[test]
    fn the_gap_is_the_mean_difference_with_a_paired_interval() {
        // Query 1 drops from first to second (-0.5), query 2 rises from 4th to 2nd (+0.25),
        // query 3 stays, query 4 falls out of the first ten (-0.2), query 5 moves past ten
        // on both sides (no difference).
        let base = [Some(1), Some(4), Some(2), Some(5), Some(11)];
        let other = [Some(2), Some(2), Some(2), None, Some(30)];
        let g = Gap::of(&base, &other);
        let d = [-0.5, 0.25, 0.0, -0.2, 0.0];
        let mean = d.iter().sum::<f64>() / 5.0;
        let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
        assert!((g.mean - mean).abs() < 1e-12);
        assert!((g.high - g.low - 2.0 * 1.96 * sd / 5f64.sqrt()).abs() < 1e-12);
        assert!(g.low < g.mean && g.mean < g.high);
        assert_eq!(g.differing, 3);
    }

    #[test]
    fn a_single_query_has_no_interval_to_speak_of() {
        let g = Gap::of(&[Some(1)], &[Some(2)]);
        assert_eq!((g.mean, g.low, g.high), (-0.5, -0.5, -0.5));
        assert_eq!(Gap::of(&[], &[]).differing, 0);
    }
}
