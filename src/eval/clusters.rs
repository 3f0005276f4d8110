//! Clustering quality against ground truth: pairwise and BCubed precision, recall and F.

use std::collections::HashMap;

/// Precision, recall and their harmonic mean.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f: f64,
}

impl Prf {
    fn new(precision: f64, recall: f64) -> Self {
        let f = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        Prf { precision, recall, f }
    }
}

fn pairs<K>(m: HashMap<K, usize>) -> f64 {
    m.values().map(|&c| (c * c.saturating_sub(1) / 2) as f64).sum()
}

fn counts<K: std::hash::Hash + Eq + Copy>(keys: impl Iterator<Item = K>) -> HashMap<K, usize> {
    let mut m = HashMap::new();
    for k in keys {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// Pairwise: precision = same-cluster pairs that are same-identity / same-cluster pairs;
/// recall = same-identity pairs that share a cluster / same-identity pairs. An empty set of
/// pairs counts as perfect.
pub fn pairwise(pred: &[usize], truth: &[usize]) -> Prf {
    assert_eq!(pred.len(), truth.len());
    let both = pairs(counts(pred.iter().copied().zip(truth.iter().copied())));
    let p = pairs(counts(pred.iter().copied()));
    let t = pairs(counts(truth.iter().copied()));
    Prf::new(if p > 0.0 { both / p } else { 1.0 }, if t > 0.0 { both / t } else { 1.0 })
}

/// BCubed (Bagga & Baldwin): per item, the share of its cluster with its identity (precision)
/// and the share of its identity in its cluster (recall), averaged over items.
pub fn bcubed(pred: &[usize], truth: &[usize]) -> Prf {
    assert_eq!(pred.len(), truth.len());
    if pred.is_empty() {
        return Prf::new(1.0, 1.0);
    }
    let both = counts(pred.iter().copied().zip(truth.iter().copied()));
    let pc = counts(pred.iter().copied());
    let tc = counts(truth.iter().copied());
    let (mut p, mut r) = (0.0, 0.0);
    for (&a, &b) in pred.iter().zip(truth) {
        let n = both[&(a, b)] as f64;
        p += n / pc[&a] as f64;
        r += n / tc[&b] as f64;
    }
    let n = pred.len() as f64;
    Prf::new(p / n, r / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_split_and_merge() {
        let truth = [0, 0, 0, 1, 1];
        let same = bcubed(&[5, 5, 5, 2, 2], &truth);
        assert_eq!((same.precision, same.recall, same.f), (1.0, 1.0, 1.0));
        // all singletons: precision 1, recall (1/3·3 + 1/2·2)/5 = 2/5
        let split = bcubed(&[0, 1, 2, 3, 4], &truth);
        assert_eq!(split.precision, 1.0);
        assert!((split.recall - 0.4).abs() < 1e-12);
        assert_eq!(pairwise(&[0, 1, 2, 3, 4], &truth).recall, 0.0);
        // everything merged: pairwise precision = 4 same pairs / 10 pairs
        let merged = pairwise(&[0; 5], &truth);
        assert!((merged.precision - 0.4).abs() < 1e-12 && merged.recall == 1.0);
        // BCubed precision of the merge: (3·3/5 + 2·2/5)/5 = 13/25
        assert!((bcubed(&[0; 5], &truth).precision - 0.52).abs() < 1e-12);
    }
}
