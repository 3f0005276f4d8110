//! Verification numbers from pair scores: accuracy, best threshold, k-fold accuracy, ROC AUC, TAR at a FAR.

/// Fraction of pairs classified right by `score >= threshold` meaning "same".
pub fn accuracy(scores: &[f32], same: &[bool], threshold: f32) -> f64 {
    let ok = scores.iter().zip(same).filter(|(s, y)| (**s >= threshold) == **y).count();
    ok as f64 / scores.len().max(1) as f64
}

/// The threshold with the best accuracy on these pairs (midpoints between sorted scores).
pub fn best_threshold(scores: &[f32], same: &[bool]) -> (f32, f64) {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&i, &j| scores[i].total_cmp(&scores[j]));
    // threshold below everything: all "same"
    let mut correct = same.iter().filter(|y| **y).count() as i64;
    let mut best = (scores[idx[0]] - 1e-3, correct);
    for k in 0..idx.len() {
        // move pair idx[k] to the "different" side
        correct += if same[idx[k]] { -1 } else { 1 };
        let thr = if k + 1 < idx.len() { (scores[idx[k]] + scores[idx[k + 1]]) / 2.0 } else { scores[idx[k]] + 1e-3 };
        if k + 1 < idx.len() && scores[idx[k]] == scores[idx[k + 1]] {
            continue;
        }
        if correct > best.1 {
            best = (thr, correct);
        }
    }
    (best.0, best.1 as f64 / scores.len() as f64)
}

/// K-fold cross-validated accuracy: for each fold, the threshold is chosen on the others.
/// Returns (mean, std, per-fold thresholds).
pub fn kfold_accuracy(scores: &[f32], same: &[bool], folds: &[usize], n_folds: usize) -> (f64, f64, Vec<f32>) {
    let mut accs = Vec::new();
    let mut thrs = Vec::new();
    for k in 0..n_folds {
        let (train_s, train_y): (Vec<f32>, Vec<bool>) = (0..scores.len()).filter(|&i| folds[i] != k).map(|i| (scores[i], same[i])).unzip();
        let (test_s, test_y): (Vec<f32>, Vec<bool>) = (0..scores.len()).filter(|&i| folds[i] == k).map(|i| (scores[i], same[i])).unzip();
        if train_s.is_empty() || test_s.is_empty() {
            continue;
        }
        let (thr, _) = best_threshold(&train_s, &train_y);
        accs.push(accuracy(&test_s, &test_y, thr));
        thrs.push(thr);
    }
    let n = accs.len().max(1) as f64;
    let mean = accs.iter().sum::<f64>() / n;
    let std = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n).sqrt();
    (mean, std, thrs)
}

/// Area under the ROC curve: the probability that a random same pair outscores a random
/// different pair (ties count half).
pub fn roc_auc(scores: &[f32], same: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&i, &j| scores[i].total_cmp(&scores[j]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&k| same[idx[k]]).count() as f64 * avg_rank;
        i = j + 1;
    }
    let pos = same.iter().filter(|y| **y).count() as f64;
    let neg = same.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// True accept rate at the smallest threshold whose false accept rate is at most `far`.
/// Returns (TAR, threshold).
pub fn tar_at_far(scores: &[f32], same: &[bool], far: f64) -> (f64, f32) {
    let mut neg: Vec<f32> = scores.iter().zip(same).filter(|(_, y)| !**y).map(|(s, _)| *s).collect();
    neg.sort_by(|a, b| b.total_cmp(a));
    let allowed = (far * neg.len() as f64).floor() as usize;
    // accept strictly above the (allowed)-th highest impostor score
    let thr = neg.get(allowed).map(|s| s.next_up()).unwrap_or(f32::MIN);
    let pos: Vec<f32> = scores.iter().zip(same).filter(|(_, y)| **y).map(|(s, _)| *s).collect();
    let tar = pos.iter().filter(|s| **s >= thr).count() as f64 / pos.len().max(1) as f64;
    (tar, thr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_and_accuracy_on_separable_scores() {
        let s = [0.9, 0.8, 0.7, 0.2, 0.1, 0.3];
        let y = [true, true, true, false, false, false];
        let (t, acc) = best_threshold(&s, &y);
        assert_eq!(acc, 1.0);
        assert!(t > 0.3 && t < 0.7);
        assert_eq!(roc_auc(&s, &y), 1.0);
        assert_eq!(accuracy(&s, &y, 0.75), 5.0 / 6.0);
        let (tar, thr) = tar_at_far(&s, &y, 0.0);
        assert_eq!(tar, 1.0);
        assert!(thr > 0.3);
    }

    #[test]
    fn auc_counts_ties_half_and_kfold_uses_held_out_folds() {
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), 0.5);
        let s = [0.9, 0.1, 0.2, 0.8, 0.6, 0.4];
        let y = [true, false, false, true, false, true];
        assert!((roc_auc(&s, &y) - 8.0 / 9.0).abs() < 1e-12);
        // Each fold's threshold comes from the other two (the lowest best midpoint): fold 0
        // from {0.2 F, 0.8 T, 0.6 F, 0.4 T} is 0.3, fold 1 from {0.9 T, 0.1 F, 0.6 F, 0.4 T}
        // is 0.25, fold 2 from {0.9 T, 0.1 F, 0.2 F, 0.8 T} is 0.5; held out, folds 0 and 1 are
        // right and fold 2 (0.6 F, 0.4 T) is wrong twice.
        let (mean, std, thr) = kfold_accuracy(&s, &y, &[0, 0, 1, 1, 2, 2], 3);
        for (got, want) in thr.iter().zip([0.3f32, 0.25, 0.5]) {
            assert!((got - want).abs() < 1e-6, "{thr:?}");
        }
        assert!((mean - 2.0 / 3.0).abs() < 1e-12, "{mean}");
        assert!((std - (2.0f64 / 9.0).sqrt()).abs() < 1e-12, "{std}");
    }
}
