//! Photos of several people together, or of some without others: each photo's faces matched
//! one to one to the wanted people (the assignment whose weakest match is strongest), and the
//! photo ranked by that weakest match.

use super::{face_scores, Hit};
use crate::catalog::FaceTable;
use crate::pipeline::by_score_desc;

/// The most people one query may want together (the matching is exact over their subsets).
pub const MAX_WANTED: usize = 8;

/// The score of a wanted person no face of the photo can stand for (fewer faces than people).
pub const ABSENT: f32 = -1.0;

/// One photo of a query for several people.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoMatch {
    /// The photo, its weakest wanted match (the rank) and the face that stands for the first
    /// wanted person (the face the photo is shown by).
    pub hit: Hit,
    /// The face (table row) that stands for each wanted person, in query order, with its score;
    /// `None` where the photo has fewer faces than wanted people.
    pub faces: Vec<Option<(usize, f32)>>,
    /// A face that is an unwanted person (see [`rank_together`]), with that person's index.
    pub unwanted: Option<(usize, usize)>,
}

impl PhotoMatch {
    /// Holds every wanted person at or above `threshold` and nobody unwanted.
    pub fn is_match(&self, threshold: f32) -> bool {
        self.hit.score >= threshold && self.unwanted.is_none()
    }
}

/// Every photo with a face, for a query of `wanted` people together and `unwanted` people
/// absent (one unit vector each): a photo matches when a different face stands for each wanted
/// person at or above `threshold` and no face is an unwanted person, that is matches them at
/// or above `threshold` and better than it matches any wanted person (so a wanted person's face
/// that happens to look like an unwanted one does not hide the photo). The matches come first,
/// then the rest, each by their weakest wanted match (ties by photo id). Scores are exact at or
/// above `floor` (`floor <= threshold`), as [`face_scores`].
pub fn rank_together(table: &FaceTable, wanted: &[Vec<f32>], unwanted: &[Vec<f32>], threshold: f32, floor: f32) -> Vec<PhotoMatch> {
    assert!((1..=MAX_WANTED).contains(&wanted.len()), "1 to {MAX_WANTED} wanted people");
    let floor = floor.min(threshold);
    let want: Vec<Vec<f32>> = wanted.iter().map(|q| face_scores(table, q, floor)).collect();
    let avoid: Vec<Vec<f32>> = unwanted.iter().map(|q| face_scores(table, q, floor)).collect();
    if want.iter().chain(&avoid).any(|s| s.len() != table.len()) {
        return Vec::new(); // another embedder's query (face_scores said so)
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < table.len() {
        let photo_id = table.photo_id(start);
        let end = start + (start..table.len()).take_while(|&r| table.photo_id(r) == photo_id).count();
        out.push(photo_match(photo_id, start..end, &want, &avoid, threshold));
        start = end;
    }
    use rayon::prelude::*;
    out.par_sort_unstable_by(|a, b| {
        b.is_match(threshold)
            .cmp(&a.is_match(threshold))
            .then(by_score_desc(a.hit.score, b.hit.score))
            .then(a.hit.photo_id.cmp(&b.hit.photo_id))
    });
    out
}

/// The photo of faces `rows` (see [`rank_together`]).
fn photo_match(photo_id: i64, rows: std::ops::Range<usize>, want: &[Vec<f32>], avoid: &[Vec<f32>], threshold: f32) -> PhotoMatch {
    // a NaN (an embedding that slipped past the checks) stands for nobody
    let s = |q: &[f32], r: usize| if q[r].is_nan() { f32::NEG_INFINITY } else { q[r] };
    let scores: Vec<Vec<f32>> = want.iter().map(|q| rows.clone().map(|r| s(q, r)).collect()).collect();
    let assigned = bottleneck(&scores);
    let faces: Vec<Option<(usize, f32)>> = assigned.iter().enumerate().map(|(p, f)| f.map(|f| (rows.start + f, scores[p][f]))).collect();
    let score = faces.iter().map(|f| f.map_or(ABSENT, |(_, s)| s)).fold(f32::INFINITY, f32::min);
    let unwanted = rows.clone().find_map(|r| {
        let best_wanted = want.iter().map(|q| s(q, r)).fold(f32::NEG_INFINITY, f32::max);
        avoid.iter().position(|q| s(q, r) >= threshold && s(q, r) > best_wanted).map(|c| (r, c))
    });
    let row = faces[0].map_or(rows.start, |(r, _)| r);
    PhotoMatch { hit: Hit { photo_id, row, score: score.max(ABSENT) }, faces, unwanted }
}

/// The one-to-one assignment of faces to people (`scores[person][face]`) whose weakest score is
/// highest: each person's face index, `None` for people left without one when there are fewer
/// faces than people. Exact, by dynamic programming over subsets of people (at most
/// [`MAX_WANTED`]): faces × 2^people × people steps.
pub fn bottleneck(scores: &[Vec<f32>]) -> Vec<Option<usize>> {
    let k = scores.len();
    let n = scores.first().map_or(0, Vec::len);
    assert!(k <= MAX_WANTED && scores.iter().all(|s| s.len() == n));
    let full = (1usize << k) - 1;
    // best[m]: the highest weakest score with the people of mask m placed on faces seen so far
    // (+inf for nobody placed, None for not reached); how[f][m]: the person face f took on the
    // way to m, None when face f took nobody
    let mut best: Vec<Option<f32>> = vec![None; full + 1];
    best[0] = Some(f32::INFINITY);
    let mut how: Vec<Vec<Option<u8>>> = Vec::with_capacity(n);
    for f in 0..n {
        let mut next = best.clone();
        let mut took = vec![None; full + 1];
        for (m, b) in best.iter().enumerate() {
            let Some(b) = *b else { continue };
            for (p, row) in scores.iter().enumerate() {
                let to = m | (1 << p);
                let v = b.min(row[f]);
                if to != m && next[to].is_none_or(|x| v > x) {
                    next[to] = Some(v);
                    took[to] = Some(p as u8);
                }
            }
        }
        best = next;
        how.push(took);
    }
    // the fullest mask reached (every person when there are faces enough), at its best score
    let end = (0..=full)
        .filter_map(|m| best[m].map(|v| (m, v)))
        .max_by(|a, b| a.0.count_ones().cmp(&b.0.count_ones()).then(a.1.total_cmp(&b.1)))
        .map_or(0, |(m, _)| m);
    let mut out = vec![None; k];
    let mut m = end;
    for f in (0..n).rev() {
        if let Some(p) = how[f][m] {
            let p = p as usize;
            out[p] = Some(f);
            m &= !(1 << p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every one-to-one assignment, for checking the dynamic programme.
    fn brute(scores: &[Vec<f32>]) -> f32 {
        fn go(scores: &[Vec<f32>], p: usize, used: &mut Vec<bool>, acc: f32) -> f32 {
            if p == scores.len() {
                return acc;
            }
            let mut best = f32::NEG_INFINITY;
            for f in 0..used.len() {
                if !used[f] {
                    used[f] = true;
                    best = best.max(go(scores, p + 1, used, acc.min(scores[p][f])));
                    used[f] = false;
                }
            }
            best
        }
        go(scores, 0, &mut vec![false; scores[0].len()], f32::INFINITY)
    }

    #[test]
    fn the_assignment_whose_weakest_match_is_strongest() {
        // one face is the best for both; the one-to-one answer gives it to the one who needs it
        let s = vec![vec![0.9, 0.6], vec![0.8, 0.1]];
        assert_eq!(bottleneck(&s), vec![Some(1), Some(0)]);
        // fewer faces than people: one person is left without
        let s = vec![vec![0.9], vec![0.7]];
        let got = bottleneck(&s);
        assert_eq!(got.iter().filter(|f| f.is_some()).count(), 1);
        assert_eq!(got[0], Some(0), "the stronger match is kept");
        // no faces at all
        assert_eq!(bottleneck(&[vec![], vec![]]), vec![None, None]);
        // against every permutation on random matrices
        let mut rng = crate::util::rng::Rng::stream(7, 0, 0);
        for trial in 0..300 {
            let k = 1 + trial % 4;
            let n = k + (trial / 4) % 4;
            let s: Vec<Vec<f32>> = (0..k).map(|_| (0..n).map(|_| rng.uniform() * 2.0 - 1.0).collect()).collect();
            let got = bottleneck(&s);
            let mut seen = std::collections::HashSet::new();
            assert!(got.iter().all(|f| f.is_some_and(|f| seen.insert(f))), "one to one: {got:?}");
            let weakest = got.iter().enumerate().map(|(p, f)| s[p][f.unwrap()]).fold(f32::INFINITY, f32::min);
            assert_eq!(weakest, brute(&s), "trial {trial}: {s:?}");
        }
    }

    /// Photos of A and B together, without C, on planted faces: exactly the expected photos,
    /// ranked by their weakest match.
    #[test]
    fn together_and_without_on_planted_faces() {
        use crate::catalog::FaceRow;
        let dim = 8;
        let axis = |i: usize, c: f32| {
            let mut v = vec![0f32; dim];
            v[i] = c;
            v[7] = (1.0 - c * c).sqrt();
            v
        };
        let (a, b, c) = (0, 1, 2);
        // faces: (photo, embedding); A's face in photo 5 looks like C too (0.6) but more like A
        let mut ac = vec![0f32; dim];
        ac[a] = 0.75;
        ac[c] = 0.6;
        ac[7] = (1.0f32 - 0.75 * 0.75 - 0.36).sqrt();
        let faces = [
            (1, axis(a, 0.9)),
            (1, axis(b, 0.7)),
            (2, axis(a, 0.95)),
            (3, axis(a, 0.9)),
            (3, axis(b, 0.9)),
            (3, axis(c, 0.8)),
            (4, axis(b, 0.8)),
            (4, axis(a, 0.6)),
            (5, ac),
            (5, axis(b, 0.99)),
            (6, axis(a, 0.9)), // one face: cannot be both A and B
        ];
        let mut t = FaceTable::new(dim);
        for (i, (photo, e)) in faces.iter().enumerate() {
            t.push(FaceRow { face_id: i as i64, photo_id: *photo, index: 0, bbox: [0.0; 4], score: 0.9 }, e);
        }
        let q = |i: usize| axis(i, 1.0);
        let got = rank_together(&t, &[q(a), q(b)], &[q(c)], 0.5, 0.4);
        let matched: Vec<i64> = got.iter().filter(|m| m.is_match(0.5)).map(|m| m.hit.photo_id).collect();
        // photo 5 (0.75, 0.99), photo 1 (0.9, 0.7), photo 4 (0.6, 0.8); photo 3 holds C
        assert_eq!(matched, vec![5, 1, 4]);
        assert!((got[0].hit.score - 0.75).abs() < 1e-6 && got[0].faces[0].unwrap().0 == 8);
        let three = got.iter().find(|m| m.hit.photo_id == 3).unwrap();
        assert_eq!(three.unwanted, Some((5, 0)));
        let six = got.iter().find(|m| m.hit.photo_id == 6).unwrap();
        assert_eq!((six.hit.score, six.faces[1]), (ABSENT, None));
        // without the unwanted person, photo 3 matches too; A alone is the plain ranking
        let got = rank_together(&t, &[q(a), q(b)], &[], 0.5, 0.4);
        assert_eq!(got.iter().filter(|m| m.is_match(0.5)).count(), 4);
        let alone = rank_together(&t, &[q(a)], &[], 0.5, 0.4);
        let plain = super::super::rank_photos(&t, &q(a), 0.4);
        assert_eq!(alone.iter().map(|m| m.hit).collect::<Vec<_>>(), plain);
    }
}
