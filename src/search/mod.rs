//! Ranking: cosine similarity of a query embedding against every face of a catalog, one
//! result per photo (its best face). Every face is scored from its 8-bit code, and every face
//! that could matter is scored again exactly; pure functions shared by the command line and
//! the app.

pub mod together;

use crate::catalog::codes::Int8Index;
use crate::catalog::FaceTable;
use crate::pipeline::by_score_desc;

/// Faces scored exactly whatever the floor: the best this many (the top of any list shown).
pub const EXACT_TOP: usize = 100;

/// Default decision threshold on cosine similarity (see README "Threshold").
pub const DEFAULT_THRESHOLD: f32 = 0.50;

/// One photo in a ranking: its best-matching face and that face's score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub photo_id: i64,
    /// Row of the best face in the [`FaceTable`].
    pub row: usize,
    pub score: f32,
}

/// Cosine similarity of `query` (unit vector) with every face (unit vectors): exact for every
/// face that could score at least `floor` or be among the best [`EXACT_TOP`], from the 8-bit
/// codes (within their error bound, at most ~0.02) for the rest. So everything at or above
/// `floor` is exact and in exact order. A query from another embedder (another dimension)
/// scores nothing.
pub fn face_scores(table: &FaceTable, query: &[f32], floor: f32) -> Vec<f32> {
    if table.is_empty() {
        return Vec::new();
    }
    if query.len() != table.dim() {
        tracing::error!(query = query.len(), catalog = table.dim(), "query and catalog come from different embedders");
        return Vec::new();
    }
    let (mut scores, margin) = table.codes().scores(query);
    let cut = candidate_cut(&scores, margin, EXACT_TOP, floor);
    use rayon::prelude::*;
    let candidates: Vec<usize> = scores.iter().enumerate().filter(|(_, &a)| a >= cut).map(|(i, _)| i).collect();
    let exact: Vec<f32> = candidates.par_iter().map(|&i| crate::pipeline::cosine(&table.embedding(i), query)).collect();
    for (i, s) in candidates.into_iter().zip(exact) {
        scores[i] = s;
    }
    scores
}

/// The approximate score at and above which a face may score at least `floor` exactly or be
/// among the best `k`: the k-th best approximate score bounds the exact k-th best from below
/// by one margin, and a face reaches it only if its approximation is within two margins.
fn candidate_cut(approx: &[f32], margin: f32, k: usize, floor: f32) -> f32 {
    let kth = match k {
        0 => f32::INFINITY,
        k if k >= approx.len() => f32::NEG_INFINITY,
        k => {
            let mut v = approx.to_vec();
            *v.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a)).1
        }
    };
    floor.min(kth) - 2.0 * margin
}

/// How a person's faces are fused in a search: the mean ranks as well as the max on the
/// album and LFW (docs/benchmarks.md) and costs one pass.
pub const PERSON_FUSE: Fuse = Fuse::Mean;

/// How several query faces (a person's exemplars) score one face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fuse {
    /// The best cosine over the queries.
    Max,
    /// The cosine with the normalised mean of the queries (ranks as the mean cosine does, on
    /// the scale of a single face's scores, so one threshold fits both).
    Mean,
}

/// The unit vector along the sum of `vectors` (the direction of their mean): a person's, or a
/// refined query's, single vector.
pub fn mean_direction<V: AsRef<[f32]>>(dim: usize, vectors: impl IntoIterator<Item = V>) -> Vec<f32> {
    let mut mean = vec![0f32; dim];
    for v in vectors {
        mean.iter_mut().zip(v.as_ref()).for_each(|(m, x)| *m += x);
    }
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    mean.iter_mut().for_each(|x| *x /= norm);
    mean
}

/// Scores of every face against several queries, fused (exact at and above `floor`, as
/// [`face_scores`]).
pub fn face_scores_fused(table: &FaceTable, queries: &[&[f32]], fuse: Fuse, floor: f32) -> Vec<f32> {
    match (queries, fuse) {
        ([], _) => Vec::new(),
        ([q], _) => face_scores(table, q, floor),
        (qs, Fuse::Mean) => face_scores(table, &mean_direction(qs[0].len(), qs.iter().copied()), floor),
        (qs, Fuse::Max) => {
            let mut best = face_scores(table, qs[0], floor);
            for q in &qs[1..] {
                best.iter_mut().zip(face_scores(table, q, floor)).for_each(|(b, s)| *b = b.max(s));
            }
            best
        }
    }
}

/// Photos ranked by their best face's similarity to `query`, highest first; every photo whose
/// best face scores at least `floor` has its exact score and place (see [`face_scores`]). Faces
/// of a photo must be adjacent in the table (as [`crate::catalog::Catalog::face_table`]
/// returns them).
pub fn rank_photos(table: &FaceTable, query: &[f32], floor: f32) -> Vec<Hit> {
    rank_scores(table, &face_scores(table, query, floor))
}

/// [`rank_photos`] for several query faces (a person), fused per face.
pub fn rank_photos_fused(table: &FaceTable, queries: &[&[f32]], fuse: Fuse, floor: f32) -> Vec<Hit> {
    rank_scores(table, &face_scores_fused(table, queries, fuse, floor))
}

/// Photos ranked by their best face's score.
pub fn rank_scores(table: &FaceTable, scores: &[f32]) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    for (row, &score) in scores.iter().enumerate() {
        let photo_id = table.photo_id(row);
        match hits.last_mut() {
            Some(h) if h.photo_id == photo_id => {
                if score > h.score || h.score.is_nan() {
                    h.score = score;
                    h.row = row;
                }
            }
            _ => hits.push(Hit { photo_id, row, score }),
        }
    }
    // a total order (ties by photo id), so the parallel unstable sort is deterministic
    use rayon::prelude::*;
    hits.par_sort_unstable_by(|a, b| by_score_desc(a.score, b.score).then(a.photo_id.cmp(&b.photo_id)));
    hits
}

/// Number of hits at or above `threshold` (hits are sorted, so this is a binary search).
pub fn count_matches(hits: &[Hit], threshold: f32) -> usize {
    hits.partition_point(|h| h.score >= threshold)
}

/// The faces that could score at least `floor` or be among the best `k`, with their exact
/// scores (`exact(row)`), best first: approximate scores from `index` pick the candidates
/// (every face within twice the error bound of the cut), exact ones rank them: the same faces
/// and order as ranking every exact score (for unit vectors).
pub fn top_faces(index: &Int8Index, query: &[f32], k: usize, floor: f32, exact: impl Fn(usize) -> f32 + Sync) -> Vec<(usize, f32)> {
    let (approx, margin) = index.scores(query);
    if approx.is_empty() {
        return Vec::new();
    }
    let cut = candidate_cut(&approx, margin, k, floor);
    use rayon::prelude::*;
    let mut out: Vec<(usize, f32)> = approx.par_iter().enumerate().filter(|(_, &a)| a >= cut).map(|(i, _)| (i, exact(i))).collect();
    out.sort_by(|a, b| by_score_desc(a.1, b.1).then(a.0.cmp(&b.0)));
    let keep = out.iter().take_while(|(_, s)| *s >= floor).count().max(k.min(out.len()));
    out.truncate(keep);
    out
}

/// How far below the threshold near misses are looked for (no further than the app's exact
/// scores reach, so that the photos offered are the ones that then match).
pub const NEAR_MISS_WINDOW: f32 = 0.10;
/// The score gap that sets near misses apart from the rest.
pub const NEAR_MISS_GAP: f32 = 0.08;

/// Photos just below `threshold` that stand apart from the rest ("more photos that may be this
/// person"): `scores` sorted best first; among those in [threshold − [`NEAR_MISS_WINDOW`],
/// threshold), the ones above the widest drop to the next score (to the window's floor after the
/// last one), when that drop is at least
/// [`NEAR_MISS_GAP`] and wider than their distance to the last match. Returns how many, and the
/// lowest of their scores.
pub fn near_misses(scores: &[f32], threshold: f32) -> Option<(usize, f32)> {
    let start = scores.partition_point(|&s| s >= threshold);
    let end = start + scores[start..].partition_point(|&s| s >= threshold - NEAR_MISS_WINDOW);
    // after the last score there is nothing: its drop is to the window's floor
    let gap = |i: usize| scores[i] - scores.get(i + 1).copied().unwrap_or(threshold - NEAR_MISS_WINDOW);
    let best = (start..end).max_by(|&a, &b| gap(a).total_cmp(&gap(b)).then(b.cmp(&a)))?;
    // and nearer the matches than the rest: a lone stranger above the crowd is not offered
    let last_match = if start > 0 { scores[start - 1] } else { threshold };
    (gap(best) >= NEAR_MISS_GAP && last_match - scores[best] <= gap(best)).then(|| (best + 1 - start, scores[best]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_the_few_just_below_set_apart_from_the_rest() {
        // two photos at 0.46 and 0.44 near the last match (0.52), then the crowd from 0.30 down
        let s = [0.9, 0.52, 0.46, 0.44, 0.30, 0.29, 0.28, 0.1];
        assert_eq!(near_misses(&s, 0.5), Some((2, 0.44)));
        // one stranger above the crowd, far below the matches: not offered
        assert_eq!(near_misses(&[0.9, 0.78, 0.425, 0.268, 0.25], 0.5), None);
        // no gap wide enough: nothing stands apart
        assert_eq!(near_misses(&[0.9, 0.48, 0.45, 0.42, 0.39, 0.36], 0.5), None);
        // nothing in the window, or nothing at all
        assert_eq!(near_misses(&[0.9, 0.2], 0.5), None);
        assert_eq!(near_misses(&[], 0.5), None);
        // the last score of all, near the last match: its drop is to the window's floor
        assert_eq!(near_misses(&[0.52, 0.49], 0.5), Some((1, 0.49)));
    }
    use crate::catalog::FaceRow;
    use crate::nets::mobilefacenet::EMBEDDING_DIM;

    fn unit(i: usize, j: usize, c: f32) -> Vec<f32> {
        let mut v = vec![0.0; EMBEDDING_DIM];
        v[i] = c;
        v[j] = (1.0 - c * c).sqrt();
        v
    }

    #[test]
    fn best_face_per_photo_sorted_descending() {
        let mut t = FaceTable::new(EMBEDDING_DIM);
        for (photo, emb) in [(1, unit(0, 1, 0.2)), (1, unit(0, 1, 0.9)), (2, unit(0, 2, 0.5)), (3, unit(1, 2, 1.0))] {
            let row = FaceRow { face_id: t.len() as i64, photo_id: photo, index: 0, bbox: [0.0; 4], score: 0.99 };
            t.push(row, &emb);
        }
        let q = unit(0, 3, 1.0);
        let hits = rank_photos(&t, &q, -1.0);
        assert_eq!(hits.iter().map(|h| h.photo_id).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(hits[0].row, 1);
        assert!((hits[0].score - 0.9).abs() < 1e-6);
        assert_eq!(count_matches(&hits, 0.5), 2);
        assert_eq!(count_matches(&hits, 0.95), 0);
        assert_eq!(count_matches(&hits, -1.0), 3);
    }

    /// A NaN score (an embedding that slipped past the checks) ranks last, and a photo's NaN
    /// face does not hide its other faces.
    #[test]
    fn a_nan_never_ranks_first() {
        let mut t = FaceTable::new(EMBEDDING_DIM);
        let nan = vec![f32::NAN; EMBEDDING_DIM];
        for (photo, emb) in [(1, nan.clone()), (1, unit(0, 1, 0.6)), (2, nan.clone()), (3, unit(0, 2, 0.3))] {
            let row = FaceRow { face_id: t.len() as i64, photo_id: photo, index: 0, bbox: [0.0; 4], score: 0.99 };
            t.push(row, &emb);
        }
        let hits = rank_photos(&t, &unit(0, 3, 1.0), 0.5);
        assert_eq!(hits.iter().map(|h| h.photo_id).collect::<Vec<_>>(), vec![1, 3, 2]);
        assert!((hits[0].score - 0.6).abs() < 1e-6 && hits[2].score.is_nan());
        assert_eq!(count_matches(&hits, 0.0), 2);
    }

    /// `top_faces` returns what ranking every exact score returns: the same faces in the same
    /// order, the best `k` and everything at or above the floor.
    #[test]
    fn top_faces_equal_the_exact_ranking() {
        let dim = EMBEDDING_DIM;
        // clustered data: near-ties around the cut, where a loose candidate set would show
        let mut e = crate::kernels::int8::tests::random_units(4000, dim, 3);
        let centre = e[..dim].to_vec();
        for v in e.chunks_exact_mut(dim).skip(1).step_by(3) {
            v.iter_mut().zip(&centre).for_each(|(x, c)| *x = 0.6 * c + 0.8 * *x);
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= n);
        }
        let index = Int8Index::build(dim, &e);
        let exact = |q: &[f32]| -> Vec<f32> { e.chunks_exact(dim).map(|v| crate::pipeline::cosine(q, v)).collect() };
        for (k, floor) in [(10, 2.0), (100, 0.5), (0, 0.5), (5000, 2.0), (1, -1.0)] {
            let q = &e[..dim];
            let s = exact(q);
            let got = top_faces(&index, q, k, floor, |r| s[r]);
            let mut want: Vec<(usize, f32)> = s.iter().copied().enumerate().collect();
            want.sort_by(|a, b| by_score_desc(a.1, b.1).then(a.0.cmp(&b.0)));
            let n = want.iter().take_while(|(_, x)| *x >= floor).count().max(k.min(want.len()));
            want.truncate(n);
            assert_eq!(got, want, "k {k}, floor {floor}");
        }
        assert_eq!(top_faces(&Int8Index::default(), &e[..dim], 10, 0.5, |_| 0.0), vec![]);
    }

    /// Everything that could reach the floor (and the best [`EXACT_TOP`]) is scored exactly;
    /// the rest is within the codes' bound.
    #[test]
    fn face_scores_are_exact_above_the_floor() {
        let dim = EMBEDDING_DIM;
        let e = crate::kernels::int8::tests::random_units(2000, dim, 5);
        let mut t = FaceTable::new(dim);
        for (i, v) in e.chunks_exact(dim).enumerate() {
            t.push(FaceRow { face_id: i as i64, photo_id: i as i64, index: 0, bbox: [0.0; 4], score: 0.9 }, v);
        }
        // the query: near face 0, so some faces score high
        let q = mean_direction(dim, [&e[..dim], &e[dim..2 * dim]]);
        let exact: Vec<f32> = e.chunks_exact(dim).map(|v| crate::pipeline::cosine(v, &q)).collect();
        let (_, bound) = t.codes().scores(&q);
        for floor in [0.5, 0.05, 2.0] {
            let got = face_scores(&t, &q, floor);
            let mut order: Vec<usize> = (0..exact.len()).collect();
            order.sort_by(|&a, &b| exact[b].total_cmp(&exact[a]));
            let top: std::collections::HashSet<usize> = order[..EXACT_TOP].iter().copied().collect();
            for (i, (&g, &x)) in got.iter().zip(&exact).enumerate() {
                if x >= floor || top.contains(&i) {
                    assert_eq!(g, x, "face {i} (floor {floor})");
                } else {
                    assert!((g - x).abs() <= bound, "face {i}: {g} vs {x}");
                }
            }
            assert!(got.iter().zip(&exact).any(|(g, x)| g != x), "the tail is approximate (floor {floor})");
        }
    }
}
