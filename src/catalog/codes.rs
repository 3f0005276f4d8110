//! Faces' embeddings as 8-bit codes: a quarter of f32's memory and memory traffic, scored
//! against a query by integer dot products with a proven error bound (the app keeps these in
//! memory; exact vectors stay on disk, see [`super::FaceTable`]).

/// Faces' embeddings stored as 8-bit integers: each vector scaled so its largest component is
/// ±127. [`Int8Index::scores`] ranks a query against every face; `search::top_faces`
/// re-scores the candidates exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Int8Index {
    dim: usize,
    codes: Vec<i8>,
    /// Per face: the value of one code step (the vector's largest |component| / 127); NaN for
    /// a vector that is not finite (it then scores NaN, which never ranks first).
    steps: Vec<f32>,
    /// The largest ‖v - decoded codes‖ over the (finite) faces.
    max_error: f32,
}

use crate::kernels::int8::quantize;

crate::kernels::multiversion! {
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
    /// An empty index of `dim`-dimensional vectors.
    pub fn new(dim: usize) -> Self {
        Self { dim, ..Self::default() }
    }

    /// Quantises `embeddings` (rows of `dim` values).
    pub fn build(dim: usize, embeddings: &[f32]) -> Self {
        let mut index = Self::new(dim);
        for v in embeddings.chunks_exact(dim.max(1)) {
            index.push(v);
        }
        index
    }

    /// Adds one vector (of `dim` values).
    pub fn push(&mut self, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dim);
        let (step, err) = quantize(v, &mut self.codes);
        self.steps.push(step);
        self.max_error = self.max_error.max(err);
    }

    /// An index from its stored parts; `None` when they do not fit together.
    pub fn from_parts(dim: usize, codes: Vec<i8>, steps: Vec<f32>, max_error: f32) -> Option<Self> {
        (dim > 0 && dim <= crate::kernels::int8::MAX_DIM && codes.len() == steps.len() * dim && max_error.is_finite() && max_error >= 0.0)
            .then_some(Self { dim, codes, steps, max_error })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Every code, row after row.
    pub fn codes(&self) -> &[i8] {
        &self.codes
    }

    /// Every row's code step.
    pub fn steps(&self) -> &[f32] {
        &self.steps
    }

    /// The largest rounding error ‖v - decoded‖ over the rows.
    pub fn max_error(&self) -> f32 {
        self.max_error
    }

    /// Bytes the index holds.
    pub fn bytes(&self) -> usize {
        self.codes.len() + 4 * self.steps.len()
    }

    /// Row `i` decoded: within [`Int8Index::max_error`] of the vector it was made from (NaN
    /// for a vector that was not finite).
    pub fn decode(&self, i: usize) -> Vec<f32> {
        let step = self.steps[i];
        self.codes[i * self.dim..(i + 1) * self.dim].iter().map(|&c| c as f32 * step).collect()
    }

    /// Adds row `i` decoded to `sum` ([`Int8Index::decode`] without a vector of its own).
    pub fn add_to(&self, i: usize, sum: &mut [f32]) {
        let step = self.steps[i];
        for (a, &c) in sum.iter_mut().zip(&self.codes[i * self.dim..(i + 1) * self.dim]) {
            *a += c as f32 * step;
        }
    }

    /// Approximate cosines of a unit `query` with every face, and a bound on their error: for
    /// unit vectors q, v with rounding errors e_q, e_v, |q·v - (q-e_q)·(v-e_v)| ≤ ‖e_q‖ + ‖e_v‖
    /// + ‖e_q‖‖e_v‖. Empty for a query of another dimension or one that is not finite.
    pub fn scores(&self, query: &[f32]) -> (Vec<f32>, f32) {
        if query.len() != self.dim || self.is_empty() || !crate::pipeline::all_finite(query) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::int8::tests::random_units;
    use crate::nets::mobilefacenet::EMBEDDING_DIM;

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
        // a face against itself scores ~1, and decodes to within the largest error
        let (approx, _) = index.scores(&e[7 * dim..8 * dim]);
        assert!((approx[7] - 1.0).abs() < 0.01, "{}", approx[7]);
        let d: f32 = index.decode(7).iter().zip(&e[7 * dim..8 * dim]).map(|(a, b)| (a - b).powi(2)).sum::<f32>().sqrt();
        assert!(d <= index.max_error() && d > 0.0, "{d} vs {}", index.max_error());
        assert!(index.scores(&[0.5; 3]).0.is_empty(), "a query of another dimension scores nothing");
    }

    /// A vector that is not finite scores NaN and leaves the error bound of the others alone.
    #[test]
    fn a_non_finite_vector_scores_nan() {
        let dim = EMBEDDING_DIM;
        let mut e = random_units(10, dim, 4);
        e[3 * dim + 5] = f32::NAN;
        let index = Int8Index::build(dim, &e);
        let (approx, bound) = index.scores(&e[..dim]);
        assert!(approx[3].is_nan() && approx.iter().enumerate().all(|(i, a)| i == 3 || a.is_finite()));
        assert!(bound.is_finite() && bound < 0.05);
        let again = Int8Index::from_parts(dim, index.codes().to_vec(), index.steps().to_vec(), index.max_error()).unwrap();
        assert_eq!((again.codes(), again.max_error()), (index.codes(), index.max_error()));
        assert!(again.steps().iter().zip(index.steps()).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(Int8Index::from_parts(dim, vec![0; 5], vec![1.0], 0.0), None);
    }
}
