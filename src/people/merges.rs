//! Person-level questions: "Is this the same person as …?" for people whose faces come close,
//! named or not. One answer joins (or keeps apart for good) whole groups, where face questions
//! move one face at a time: a person split across the years is mended in a few clicks.

use std::collections::HashSet;

use std::borrow::Cow;

use super::{cluster, person_stats, FaceInfo, Params, PersonStats};

/// One merge question: is `person` the same person as `into`?
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MergeSuggestion {
    pub person: i64,
    pub into: i64,
    /// Mean cosine over every pair of their faces (what average linkage compares).
    pub score: f32,
}

/// Candidate people per person: the nearest by their mean vectors.
const NEAREST: usize = 8;

/// Pairs of `people` (the ones that may be asked about: not hidden) whose faces come close:
/// mean cosine over all pairs of their faces at least `min_score`, never in one photo together,
/// not said by the user to be two people (`not_same`, as (smaller, larger) id), not both named.
/// Most likely first. `into` is the named one of the two, else the one with more faces.
pub fn merge_suggestions(
    stats: &[PersonStats],
    people: &HashSet<i64>,
    named: &HashSet<i64>,
    not_same: &HashSet<(i64, i64)>,
    min_score: f32,
) -> Vec<MergeSuggestion> {
    let stats: Vec<&PersonStats> = stats.iter().filter(|s| people.contains(&s.id) && s.count > 0).collect();
    let Some(dim) = stats.first().map(|s| s.sum.len()) else { return Vec::new() };
    // candidates: nearest people by their normalised mean vectors
    let mut means = Vec::with_capacity(stats.len() * dim);
    for s in &stats {
        let n = s.sum.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        means.extend(s.sum.iter().map(|x| x / n));
    }
    let nb = cluster::knn(&means, dim, NEAREST.min(stats.len().saturating_sub(1)), 0.0);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, row) in nb.iter().enumerate() {
        for &(j, _) in row {
            let (a, b) = (stats[i], stats[j as usize]);
            let key = (a.id.min(b.id), a.id.max(b.id));
            if a.id == b.id || !seen.insert(key) || not_same.contains(&key) || a.photos.iter().any(|p| b.photos.contains(p)) {
                continue;
            }
            // two names: two people the user told apart already
            if named.contains(&a.id) && named.contains(&b.id) {
                continue;
            }
            let score = a.sum.iter().zip(&b.sum).map(|(x, y)| x * y).sum::<f32>() / (a.count * b.count) as f32;
            if score < min_score {
                continue;
            }
            // the named one stays; between two alike, the one with more faces
            let a_first =
                (named.contains(&a.id), a.count, std::cmp::Reverse(a.id)) >= (named.contains(&b.id), b.count, std::cmp::Reverse(b.id));
            let (into, person) = if a_first { (a.id, b.id) } else { (b.id, a.id) };
            out.push(MergeSuggestion { person, into, score });
        }
    }
    out.sort_by(|x, y| y.score.total_cmp(&x.score).then((x.person, x.into).cmp(&(y.person, y.into))));
    out
}

/// [`merge_suggestions`] for the people of `faces` (face `i`'s vector is `vector(i)`), asked
/// from [`Params::suggest`] up.
pub fn merge_questions<'a>(
    dim: usize,
    faces: &[FaceInfo],
    visible: &HashSet<i64>,
    named: &HashSet<i64>,
    not_same: &HashSet<(i64, i64)>,
    p: &Params,
    vector: impl Fn(usize) -> Cow<'a, [f32]>,
) -> Vec<MergeSuggestion> {
    // a face the user took out of one of the two: they are two people
    let mut apart = not_same.clone();
    for f in faces {
        if let Some((own, _)) = f.person {
            apart.extend(f.rejected.iter().map(|&r| (own.min(r), own.max(r))));
        }
    }
    merge_suggestions(&person_stats(dim, faces, vector), visible, named, &apart, p.suggest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(id: i64, vectors: &[[f32; 3]], photos: &[i64]) -> PersonStats {
        let mut sum = vec![0.0; 3];
        for v in vectors {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            sum.iter_mut().zip(v).for_each(|(s, x)| *s += x / n);
        }
        PersonStats { id, sum, count: vectors.len(), photos: photos.iter().copied().collect() }
    }

    #[test]
    fn close_people_are_asked_once_most_likely_first_and_never_when_ruled_out() {
        let young = stats(1, &[[1.0, 0.3, 0.0], [1.0, 0.2, 0.0]], &[1, 2]);
        let old = stats(2, &[[1.0, 0.9, 0.0], [1.0, 1.0, 0.1], [0.9, 1.0, 0.0]], &[3, 4, 5]);
        let other = stats(3, &[[0.0, 0.0, 1.0]], &[6]);
        let seen_with_old = stats(4, &[[1.0, 0.7, 0.0]], &[3]);
        let all = [young, old, other, seen_with_old];
        let people: HashSet<i64> = [1, 2, 3, 4].into();
        let named: HashSet<i64> = [1].into();
        let q = merge_suggestions(&all, &people, &named, &HashSet::new(), 0.4);
        // 4 shares photo 3 with 2: never 2's question; 3 is far from everyone
        assert!(q.iter().all(|m| m.person != 3 && m.into != 3), "{q:?}");
        assert!(!q.iter().any(|m| (m.person, m.into) == (4, 2) || (m.person, m.into) == (2, 4)), "{q:?}");
        // the named one stays: 2 into 1
        let first = q.iter().find(|m| m.person == 2 || m.into == 2).unwrap();
        assert_eq!((first.person, first.into), (2, 1));
        assert!(q.windows(2).all(|w| w[0].score >= w[1].score));
        // "No" remembered: never asked again; hidden people are not asked about
        let ruled_out: HashSet<(i64, i64)> = [(1, 2)].into();
        let q = merge_suggestions(&all, &people, &named, &ruled_out, 0.4);
        assert!(!q.iter().any(|m| (m.person, m.into) == (2, 1)), "{q:?}");
        let visible: HashSet<i64> = [1, 3, 4].into();
        assert!(merge_suggestions(&all, &visible, &named, &HashSet::new(), 0.4).iter().all(|m| m.person != 2 && m.into != 2));
    }
}
