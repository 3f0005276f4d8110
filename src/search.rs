//! Ranking: cosine similarity of a query embedding against every face of a catalog, one
//! result per photo (its best face). A pure function over an in-memory matrix, shared by the
//! command line and the app.

use crate::catalog::FaceTable;
use crate::pipeline::by_score_desc;

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

/// Cosine similarity of `query` (unit vector) with every face (unit vectors). A query from
/// another embedder (another dimension) scores nothing.
pub fn face_scores(table: &FaceTable, query: &[f32]) -> Vec<f32> {
    if table.is_empty() {
        return Vec::new();
    }
    if query.len() != table.dim() {
        tracing::error!(query = query.len(), catalog = table.dim(), "query and catalog come from different embedders");
        return Vec::new();
    }
    use rayon::prelude::*;
    table
        .embeddings()
        .par_chunks_exact(table.dim())
        .map(|e| e.iter().zip(query).map(|(a, b)| a * b).sum())
        .collect()
}

/// How a person's faces are fused in a search: the mean ranks as well as the max on the
/// album and LFW (README "People") and costs one pass.
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
pub fn mean_direction<'a>(dim: usize, vectors: impl IntoIterator<Item = &'a [f32]>) -> Vec<f32> {
    let mut mean = vec![0f32; dim];
    for v in vectors {
        mean.iter_mut().zip(v).for_each(|(m, x)| *m += x);
    }
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    mean.iter_mut().for_each(|x| *x /= norm);
    mean
}

/// Scores of every face against several queries, fused.
pub fn face_scores_fused(table: &FaceTable, queries: &[&[f32]], fuse: Fuse) -> Vec<f32> {
    match (queries, fuse) {
        ([], _) => Vec::new(),
        ([q], _) => face_scores(table, q),
        (qs, Fuse::Mean) => face_scores(table, &mean_direction(qs[0].len(), qs.iter().copied())),
        (qs, Fuse::Max) => {
            let mut best = face_scores(table, qs[0]);
            for q in &qs[1..] {
                best.iter_mut().zip(face_scores(table, q)).for_each(|(b, s)| *b = b.max(s));
            }
            best
        }
    }
}

/// Photos ranked by their best face's similarity to `query`, highest first. Faces of a
/// photo must be adjacent in the table (as [`crate::catalog::Catalog::face_table`] returns them).
pub fn rank_photos(table: &FaceTable, query: &[f32]) -> Vec<Hit> {
    rank_scores(table, &face_scores(table, query))
}

/// [`rank_photos`] for several query faces (a person), fused per face.
pub fn rank_photos_fused(table: &FaceTable, queries: &[&[f32]], fuse: Fuse) -> Vec<Hit> {
    rank_scores(table, &face_scores_fused(table, queries, fuse))
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
    hits.sort_by(|a, b| by_score_desc(a.score, b.score).then(a.photo_id.cmp(&b.photo_id)));
    hits
}

/// Number of hits at or above `threshold` (hits are sorted, so this is a binary search).
pub fn count_matches(hits: &[Hit], threshold: f32) -> usize {
    hits.partition_point(|h| h.score >= threshold)
}

/// Faces' embeddings stored as 8-bit integers (a quarter of f32's memory and memory traffic):
/// each vector scaled so its largest component is ±127. Ranks a query against every face by
/// integer dot products; [`top_faces`] re-scores the candidates exactly.
#[derive(Debug, Clone, Default)]
pub struct Int8Index {
    dim: usize,
    codes: Vec<i8>,
    /// Per face: the value of one code step (the vector's largest |component| / 127).
    steps: Vec<f32>,
    /// The largest ‖v - decoded codes‖ over the faces.
    max_error: f32,
}

/// Codes of one vector, its code step and the norm of its rounding error.
fn quantize(v: &[f32], codes: &mut Vec<i8>) -> (f32, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let step = if max > 0.0 && max.is_finite() { max / 127.0 } else { 1.0 };
    let mut err = 0f32;
    codes.extend(v.iter().map(|x| {
        let c = (x / step).round().clamp(-127.0, 127.0);
        err += (x - c * step).powi(2);
        c as i8
    }));
    (step, err.sqrt())
}

crate::pipeline::ops::multiversion! {
    /// `out[i] = codes[i·d..(i+1)·d] · q` for every row, in 32-bit integers (exact: 512 · 127²
    /// is far below 2³¹).
    fn dot_rows_i8(codes: &[i8], q: &[i8], out: &mut [i32]) {
        let d = q.len();
        for (row, o) in codes.chunks_exact(d).zip(out.iter_mut()) {
            *o = row.iter().zip(q).map(|(&a, &b)| a as i16 as i32 * b as i16 as i32).sum();
        }
    }
}

impl Int8Index {
    /// Quantises `embeddings` (rows of `dim` values).
    pub fn build(dim: usize, embeddings: &[f32]) -> Self {
        let n = embeddings.len().checked_div(dim).unwrap_or(0);
        let mut codes = Vec::with_capacity(n * dim);
        let mut max_error = 0f32;
        let steps = embeddings
            .chunks_exact(dim.max(1))
            .take(n)
            .map(|v| {
                let (step, err) = quantize(v, &mut codes);
                max_error = max_error.max(err);
                step
            })
            .collect();
        Self { dim, codes, steps, max_error }
    }

    /// The index of a face table.
    pub fn of_table(table: &FaceTable) -> Self {
        Self::build(table.dim(), table.embeddings())
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Bytes the index holds.
    pub fn bytes(&self) -> usize {
        self.codes.len() + 4 * self.steps.len()
    }

    /// Approximate cosines of a unit `query` with every face, and a bound on their error: for
    /// unit vectors q, v with rounding errors e_q, e_v, |q·v - (q-e_q)·(v-e_v)| ≤ ‖e_q‖ + ‖e_v‖
    /// + ‖e_q‖‖e_v‖. Empty for a query of another dimension.
    pub fn scores(&self, query: &[f32]) -> (Vec<f32>, f32) {
        if query.len() != self.dim || self.is_empty() {
            return (Vec::new(), 0.0);
        }
        let mut q = Vec::with_capacity(self.dim);
        let (q_step, q_err) = quantize(query, &mut q);
        use rayon::prelude::*;
        // rows per task: large enough that a task costs far more than its scheduling
        const ROWS: usize = 16 * 1024;
        let mut out = vec![0f32; self.len()];
        out.par_chunks_mut(ROWS).zip(self.codes.par_chunks(ROWS * self.dim)).zip(self.steps.par_chunks(ROWS)).for_each_init(
            || vec![0i32; ROWS],
            |dots, ((o, codes), steps)| {
                let dots = &mut dots[..o.len()];
                dot_rows_i8(codes, &q, dots);
                for ((o, &d), &s) in o.iter_mut().zip(dots.iter()).zip(steps) {
                    *o = d as f32 * s * q_step;
                }
            },
        );
        (out, q_err + self.max_error + q_err * self.max_error)
    }
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
    // The k-th best approximate score: k faces score at least it - margin exactly, so the
    // exact k-th best does too, and a face can only reach that if its approximation is within
    // 2 margins of it.
    let kth = match k {
        0 => f32::INFINITY,
        k if k >= approx.len() => f32::NEG_INFINITY,
        k => {
            let mut v = approx.clone();
            *v.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a)).1
        }
    };
    let cut = floor.min(kth) - 2.0 * margin;
    use rayon::prelude::*;
    let mut out: Vec<(usize, f32)> = approx.par_iter().enumerate().filter(|(_, &a)| a >= cut).map(|(i, _)| (i, exact(i))).collect();
    out.sort_by(|a, b| by_score_desc(a.1, b.1).then(a.0.cmp(&b.0)));
    let keep = out.iter().take_while(|(_, s)| *s >= floor).count().max(k.min(out.len()));
    out.truncate(keep);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::FaceRow;
    use crate::pipeline::embedder::EMBEDDING_DIM;

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
        let hits = rank_photos(&t, &q);
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
        let hits = rank_photos(&t, &unit(0, 3, 1.0));
        assert_eq!(hits.iter().map(|h| h.photo_id).collect::<Vec<_>>(), vec![1, 3, 2]);
        assert!((hits[0].score - 0.6).abs() < 1e-6 && hits[2].score.is_nan());
        assert_eq!(count_matches(&hits, 0.0), 2);
    }

    fn random_units(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let mut r = crate::rng::Rng::stream(seed, i as u64, 0);
            let v: Vec<f32> = (0..dim).map(|_| r.normal()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            out.extend(v.iter().map(|x| x / norm));
        }
        out
    }

    /// Every 8-bit score is within the bound `scores` reports, and the bound is not vacuous.
    #[test]
    fn int8_scores_stay_within_their_error_bound() {
        let dim = EMBEDDING_DIM;
        let e = random_units(3000, dim, 1);
        let index = Int8Index::build(dim, &e);
        assert_eq!((index.len(), index.bytes()), (3000, 3000 * (dim + 4)));
        for q in random_units(5, dim, 2).chunks_exact(dim).chain([&e[7 * dim..8 * dim]]) {
            let (approx, bound) = index.scores(q);
            assert!(bound > 0.0 && bound < 0.05, "bound {bound}");
            for (a, v) in approx.iter().zip(e.chunks_exact(dim)) {
                let exact = crate::pipeline::cosine(q, v);
                assert!((a - exact).abs() <= bound, "{a} vs {exact} (bound {bound})");
            }
        }
        // a face against itself scores ~1
        let (approx, _) = index.scores(&e[7 * dim..8 * dim]);
        assert!((approx[7] - 1.0).abs() < 0.01, "{}", approx[7]);
        assert!(index.scores(&[0.5; 3]).0.is_empty(), "a query of another dimension scores nothing");
    }

    /// `top_faces` returns what ranking every exact score returns: the same faces in the same
    /// order, the best `k` and everything at or above the floor.
    #[test]
    fn top_faces_equal_the_exact_ranking() {
        let dim = EMBEDDING_DIM;
        // clustered data: near-ties around the cut, where a loose candidate set would show
        let mut e = random_units(4000, dim, 3);
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
}
