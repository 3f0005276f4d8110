//! 8-bit dot products of many queries with many coded vectors (an int8 GEMM for neighbour
//! search): the coded vectors are packed once into 16-column panels and scored with AVX-512 VNNI
//! where the CPU has it (64 multiply-adds per instruction, four times f32's FMA, exact in 32-bit
//! integers), else decoded block by block into the f32 GEMM.

use super::matmul_strided;

/// Codes of `v` appended to `codes` (each component over the code step, the largest |component|
/// / 127, rounded), its code step and the norm of its rounding error. A vector that is not
/// finite gets codes 0, step NaN (it scores NaN) and error 0.
pub fn quantize(v: &[f32], codes: &mut Vec<i8>) -> (f32, f32) {
    if !v.iter().all(|x| x.is_finite()) {
        codes.extend(std::iter::repeat_n(0i8, v.len()));
        return (f32::NAN, 0.0);
    }
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let step = if max > 0.0 { max / 127.0 } else { 1.0 };
    let mut err = 0f32;
    codes.extend(v.iter().map(|x| {
        let c = (x / step).round().clamp(-127.0, 127.0);
        err += (x - c * step).powi(2);
        c as i8
    }));
    (step, err.sqrt())
}

/// Columns per panel: the 32-bit lanes of a 512-bit register.
const LANES: usize = 16;
/// Panels per tile of the VNNI kernel.
const PANELS: usize = 2;
/// Columns per tile.
pub const TILE_COLS: usize = LANES * PANELS;
/// Query rows per tile.
const TILE_ROWS: usize = 8;
/// The largest dimension whose dot products fit 32-bit integers: 255 · 128 · dim < 2³¹.
pub const MAX_DIM: usize = 65_536;

/// Coded vectors packed for [`scores`]: panel `p` holds columns `16p..16p + 16`, for each group
/// of 4 components the 4 codes of each of its 16 columns (`[step][column][4]`, 64 bytes: one
/// register). Columns past the last vector are zero.
#[derive(Debug, Clone)]
pub struct PackedCodes {
    dim: usize,
    /// Components padded to a multiple of 4.
    depth: usize,
    len: usize,
    panels: Vec<i8>,
    /// Per column: the sum of its codes (for the +128 offset of the queries' codes).
    sums: Vec<i32>,
    /// Per column: its code step (0 past the last vector).
    steps: Vec<f32>,
    /// The largest rounding error of a vector (see [`quantize`]).
    max_error: f32,
}

impl PackedCodes {
    /// Packs `len` coded vectors of `dim` components: `row(j)` is vector `j`'s codes, its code
    /// step and its rounding error.
    pub fn pack<'a>(dim: usize, len: usize, row: impl Fn(usize) -> (&'a [i8], f32, f32)) -> Self {
        assert!(dim <= MAX_DIM && (dim > 0 || len == 0), "{len} vectors of dimension {dim} (1..={MAX_DIM})");
        let depth = dim.div_ceil(4) * 4;
        let cols = len.div_ceil(TILE_COLS) * TILE_COLS;
        let (mut panels, mut sums, mut steps) = (vec![0i8; cols * depth], vec![0i32; cols], vec![0f32; cols]);
        let mut max_error = 0f32;
        for j in 0..len {
            let (codes, step, error) = row(j);
            assert_eq!(codes.len(), dim, "vector {j} has {} codes, not {dim}", codes.len());
            let panel = &mut panels[(j / LANES) * LANES * depth..(j / LANES + 1) * LANES * depth];
            for (d, &c) in codes.iter().enumerate() {
                panel[(d / 4) * LANES * 4 + (j % LANES) * 4 + d % 4] = c;
            }
            sums[j] = codes.iter().map(|&c| c as i32).sum();
            steps[j] = step;
            max_error = max_error.max(error);
        }
        PackedCodes { dim, depth, len, panels, sums, steps, max_error }
    }

    /// `vectors` (rows of `dim`) quantised and packed.
    pub fn quantized(dim: usize, vectors: &[f32]) -> Self {
        let mut codes = Vec::with_capacity(vectors.len());
        let rows: Vec<(f32, f32)> = vectors.chunks_exact(dim).map(|v| quantize(v, &mut codes)).collect();
        Self::pack(dim, rows.len(), |j| (&codes[j * dim..(j + 1) * dim], rows[j].0, rows[j].1))
    }

    /// Vectors packed.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Vector `j` decoded (codes times step).
    pub fn decode(&self, j: usize) -> Vec<f32> {
        assert!(j < self.len, "vector {j} of {}", self.len);
        let panel = &self.panels[(j / LANES) * LANES * self.depth..];
        (0..self.dim).map(|d| panel[(d / 4) * LANES * 4 + (j % LANES) * 4 + d % 4] as f32 * self.steps[j]).collect()
    }

    /// Columns `c0..c0 + w` decoded, row-major (`w × dim`).
    fn decode_block(&self, c0: usize, w: usize) -> Vec<f32> {
        (c0..c0 + w).flat_map(|j| self.decode(j)).collect()
    }
}

/// Queries quantised for [`scores`]: codes offset by 128 (unsigned), padded so that a tile of
/// rows may start at any query.
#[derive(Debug, Clone)]
pub struct Queries {
    dim: usize,
    depth: usize,
    len: usize,
    codes: Vec<u8>,
    steps: Vec<f32>,
    max_error: f32,
    /// The queries as given (for the f32 path).
    exact: Vec<f32>,
}

impl Queries {
    /// `queries` (rows of `dim`) quantised.
    pub fn new(dim: usize, queries: &[f32]) -> Self {
        assert!(dim > 0 && dim <= MAX_DIM && queries.len().is_multiple_of(dim), "queries are not rows of {dim}");
        let depth = dim.div_ceil(4) * 4;
        let len = queries.len() / dim;
        // a tile may start at any row: TILE_ROWS − 1 rows of padding past the last
        let rows = len + TILE_ROWS - 1;
        let mut codes = vec![128u8; rows * depth];
        let (mut steps, mut max_error) = (vec![0f32; rows], 0f32);
        let mut q = Vec::with_capacity(dim);
        for (i, v) in queries.chunks_exact(dim).enumerate() {
            q.clear();
            let (step, error) = quantize(v, &mut q);
            for (o, &c) in codes[i * depth..i * depth + dim].iter_mut().zip(&q) {
                *o = (c as i16 + 128) as u8;
            }
            steps[i] = step;
            max_error = max_error.max(error);
        }
        // a query that is not finite scores NaN on both paths (never a neighbour)
        let exact = queries
            .chunks_exact(dim)
            .flat_map(|v| if v.iter().all(|x| x.is_finite()) { v.to_vec() } else { vec![f32::NAN; dim] })
            .collect();
        Queries { dim, depth, len, codes, steps, max_error, exact }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The bound on |exact − approximate| of [`scores`] for unit vectors: with rounding errors
/// e_q, e_v, |q·v − (q − e_q)·(v − e_v)| ≤ ‖e_q‖ + ‖e_v‖ + ‖e_q‖‖e_v‖.
pub fn error_bound(q: &Queries, p: &PackedCodes) -> f32 {
    q.max_error + p.max_error + q.max_error * p.max_error
}

/// `out[i · w + j]` = query `r0 + i` · vector `c0 + j` for `i < h`, `j < w`, approximately (see
/// [`error_bound`]). `c0` is a multiple of [`TILE_COLS`].
pub fn scores(q: &Queries, r0: usize, h: usize, p: &PackedCodes, c0: usize, w: usize, out: &mut [f32]) {
    assert!(q.dim == p.dim, "queries of {} components against vectors of {}", q.dim, p.dim);
    assert!(r0 + h <= q.len && c0 + w <= p.len && c0.is_multiple_of(TILE_COLS) && out.len() >= h * w, "block out of range");
    #[cfg(target_arch = "x86_64")]
    if has_vnni() {
        // SAFETY: the CPU has both features `scores_vnni` is compiled for (checked just above).
        return unsafe { scores_vnni(q, r0, h, p, c0, w, out) };
    }
    scores_decoded(q, r0, h, p, c0, w, out)
}

#[cfg(target_arch = "x86_64")]
fn has_vnni() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// [`scores`] without VNNI: the block's vectors decoded, times the exact queries (f32 GEMM).
fn scores_decoded(q: &Queries, r0: usize, h: usize, p: &PackedCodes, c0: usize, w: usize, out: &mut [f32]) {
    let block = p.decode_block(c0, w);
    matmul_strided(h, w, q.dim, out, (w, 1), false, &q.exact[r0 * q.dim..(r0 + h) * q.dim], (q.dim, 1), &block, (1, q.dim))
        .expect("both blocks lie inside the matrices checked above");
}

/// [`scores`] with VNNI: per tile of 8 queries × 32 columns, 16 registers of 32-bit sums, each
/// step a 4-byte broadcast of a query against a 64-byte panel register.
///
/// # Safety
/// The CPU has AVX-512 F and VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn scores_vnni(q: &Queries, r0: usize, h: usize, p: &PackedCodes, c0: usize, w: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let depth = q.depth;
    let panel_len = LANES * depth;
    for c in (c0..c0 + w).step_by(TILE_COLS) {
        let b0 = &p.panels[(c / LANES) * panel_len..(c / LANES + 1) * panel_len];
        let b1 = &p.panels[(c / LANES + 1) * panel_len..(c / LANES + 2) * panel_len];
        for t in (r0..r0 + h).step_by(TILE_ROWS) {
            // whole tiles: the queries are padded by TILE_ROWS − 1 rows
            let a = &q.codes[t * depth..(t + TILE_ROWS) * depth];
            let mut acc = [[_mm512_setzero_si512(); PANELS]; TILE_ROWS];
            for s in 0..depth / 4 {
                // SAFETY: b0 and b1 hold depth / 4 steps of 64 bytes each (panel_len = 16 · depth),
                // `a` TILE_ROWS rows of `depth` bytes, and 4 · s + 4 ≤ depth
                let (v0, v1) =
                    unsafe { (_mm512_loadu_si512(b0.as_ptr().add(s * 64).cast()), _mm512_loadu_si512(b1.as_ptr().add(s * 64).cast())) };
                for (i, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: row i of `a` has `depth` bytes and 4 · s + 4 ≤ depth (see above)
                    let x = unsafe { a.as_ptr().add(i * depth + 4 * s).cast::<i32>().read_unaligned() };
                    let x = _mm512_set1_epi32(x);
                    acc[0] = _mm512_dpbusd_epi32(acc[0], x, v0);
                    acc[1] = _mm512_dpbusd_epi32(acc[1], x, v1);
                }
            }
            let cols = TILE_COLS.min(c0 + w - c);
            for (i, acc) in acc.iter().enumerate().take((r0 + h - t).min(TILE_ROWS)) {
                let row = &mut out[(t - r0 + i) * w + (c - c0)..(t - r0 + i) * w + (c - c0) + cols];
                let step = _mm512_set1_ps(q.steps[t + i]);
                for (k, &acc) in acc.iter().enumerate() {
                    // the queries' codes are offset by 128: take 128 · (sum of the column's codes) back
                    let at = c + k * LANES;
                    // SAFETY: sums and steps are padded to whole tiles: `at + 16` is within them
                    let (sums, steps) =
                        unsafe { (_mm512_loadu_si512(p.sums.as_ptr().add(at).cast()), _mm512_loadu_ps(p.steps.as_ptr().add(at))) };
                    let dot = _mm512_sub_epi32(acc, _mm512_slli_epi32::<7>(sums));
                    let v = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(dot), step), steps);
                    let n = cols.saturating_sub(k * LANES).min(LANES);
                    if n == 0 {
                        break;
                    }
                    // SAFETY: `row` holds `cols` values; the mask writes the first n ≤ cols − 16k of them
                    unsafe { _mm512_mask_storeu_ps(row.as_mut_ptr().add(k * LANES), ((1u32 << n) - 1) as u16, v) };
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` random unit vectors of `dim` components (vector `i` from its own stream of `seed`).
    pub(crate) fn random_units(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let mut r = crate::util::rng::Rng::stream(seed, 0, i as u64);
            let v: Vec<f32> = (0..dim).map(|_| r.normal()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            out.extend(v.iter().map(|x| x / norm));
        }
        out
    }

    /// Every score of every block (ragged edges, a dimension not a multiple of 4) is within the
    /// bound of the exact dot product, and within the query's rounding of the decoded vector's,
    /// with VNNI (where the CPU has it) and without.
    #[test]
    fn int8_scores_match_exact_dot_products_within_their_bound() {
        for dim in [192, 37] {
            let (n, m) = (21, 77);
            let (qs, vs) = (random_units(n, dim, 1), random_units(m, dim, 2));
            let (q, p) = (Queries::new(dim, &qs), PackedCodes::quantized(dim, &vs));
            let bound = error_bound(&q, &p);
            assert!(bound > 0.0 && bound < 0.05, "bound {bound}");
            let blocks = [(0, n, 0, m), (3, 9, 32, 45), (20, 1, 64, 13)];
            for ((r0, h, c0, w), decoded_only) in blocks.into_iter().flat_map(|b| [(b, false), (b, true)]) {
                let mut out = vec![f32::NAN; h * w];
                if decoded_only {
                    scores_decoded(&q, r0, h, &p, c0, w, &mut out);
                } else {
                    scores(&q, r0, h, &p, c0, w, &mut out);
                }
                for i in 0..h {
                    for j in 0..w {
                        let (a, b) = (&qs[(r0 + i) * dim..(r0 + i + 1) * dim], &vs[(c0 + j) * dim..(c0 + j + 1) * dim]);
                        let exact: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                        let got = out[i * w + j];
                        assert!((got - exact).abs() <= bound, "dim {dim} ({}, {}): {got} vs {exact}", r0 + i, c0 + j);
                        let decoded: f32 = p.decode(c0 + j).iter().zip(a).map(|(x, y)| x * y).sum();
                        assert!((got - decoded).abs() <= 1.01 * q.max_error + 1e-5, "{got} vs {decoded}");
                    }
                }
            }
        }
    }

    /// Packing keeps every code: a vector decodes to within its rounding error.
    #[test]
    fn packed_vectors_decode_to_what_was_packed() {
        let dim = 10;
        let vs = random_units(40, dim, 3);
        let p = PackedCodes::quantized(dim, &vs);
        assert_eq!((p.len(), p.dim()), (40, dim));
        for j in [0, 15, 16, 39] {
            let d: f32 = p.decode(j).iter().zip(&vs[j * dim..(j + 1) * dim]).map(|(a, b)| (a - b).powi(2)).sum::<f32>().sqrt();
            assert!(d <= p.max_error + 1e-6, "{j}: {d}");
        }
    }
}
