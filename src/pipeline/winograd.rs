//! Winograd F(2×2, 3×3) for stride-1 3×3 dense convolutions on channels-last maps (Lavin &
//! Gray, 2015): every 4×4 input tile and every 3×3 filter are transformed so that one output
//! tile of 2×2 pixels costs 16 products per channel pair instead of 36. The products of all
//! tiles of a band of rows are 16 matrix products, (tiles × C_in) · (C_in × C_out), which is
//! where the time goes; the transforms are additions over channel vectors.

use std::mem::MaybeUninit;

use candle_core::Result;
use rayon::prelude::*;

use crate::kernels::{matmul_strided, multiversion, Pad};

/// The filters transformed, `U = G g Gᵀ` for each (input, output) channel pair, as 16 matrices
/// of `c_in × c_out` (row-major), one per position of the 4×4 tile. `w` is OIHW.
pub(super) fn filters(w: &[f32], c_in: usize, c_out: usize) -> Vec<f32> {
    let mut u = vec![0f32; 16 * c_in * c_out];
    // G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]
    let g = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    for co in 0..c_out {
        for ci in 0..c_in {
            let f = &w[(co * c_in + ci) * 9..(co * c_in + ci + 1) * 9];
            // G f: 4 rows of 3
            let cols: [[f32; 4]; 3] = std::array::from_fn(|kx| g(f[kx], f[3 + kx], f[6 + kx]));
            for i in 0..4 {
                let row = g(cols[0][i], cols[1][i], cols[2][i]);
                for (j, v) in row.into_iter().enumerate() {
                    u[((i * 4 + j) * c_in + ci) * c_out + co] = v;
                }
            }
        }
    }
    u
}

/// `dst = a + sb·b + sc·c`, element by element (sb, sc are ±1 or 0).
#[inline(always)]
fn comb(dst: &mut [f32], a: &[f32], b: &[f32], sb: f32, c: &[f32], sc: f32) {
    for (((d, a), b), c) in dst.iter_mut().zip(a).zip(b).zip(c) {
        *d = a + sb * b + sc * c;
    }
}

multiversion! {
    /// One tile's input transform, `V = Bᵀ d B` with Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0],
    /// [0, −1, 1, 0], [0, 1, 0, −1]]: `d` its 16 pixels (row-major channel vectors) into
    /// position `p` of the 16 matrices of `v` (tiles × c each); `t` holds 16·c.
    fn input_tile(d: &[&[f32]; 16], t: &mut [f32], v: &mut [f32], tiles: usize, p: usize, zeros: &[f32]) {
        let c = zeros.len();
        for j in 0..4 {
            let (d0, d1, d2, d3) = (d[j], d[4 + j], d[8 + j], d[12 + j]);
            comb(&mut t[j * c..(j + 1) * c], d0, d2, -1.0, zeros, 0.0);
            comb(&mut t[(4 + j) * c..(5 + j) * c], d1, d2, 1.0, zeros, 0.0);
            comb(&mut t[(8 + j) * c..(9 + j) * c], d2, d1, -1.0, zeros, 0.0);
            comb(&mut t[(12 + j) * c..(13 + j) * c], d1, d3, -1.0, zeros, 0.0);
        }
        for i in 0..4 {
            let row = |j: usize| &t[(i * 4 + j) * c..(i * 4 + j + 1) * c];
            let at = |j: usize| ((i * 4 + j) * tiles + p) * c;
            let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
            comb(&mut v[at(0)..at(0) + c], r0, r2, -1.0, zeros, 0.0);
            comb(&mut v[at(1)..at(1) + c], r1, r2, 1.0, zeros, 0.0);
            comb(&mut v[at(2)..at(2) + c], r2, r1, -1.0, zeros, 0.0);
            comb(&mut v[at(3)..at(3) + c], r1, r3, -1.0, zeros, 0.0);
        }
    }
}

multiversion! {
    /// One tile's output transform, `Y = Aᵀ M A` with Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]: from
    /// position `p` of the 16 matrices of `m` (tiles × c_out each) into `y`, its 2×2 outputs
    /// (row-major channel vectors of `y.len() / 4`); `t` holds 8·c_out.
    fn output_tile(m: &[f32], tiles: usize, p: usize, t: &mut [f32], y: &mut [f32]) {
        let c = y.len() / 4;
        let mv = |xi: usize| &m[(xi * tiles + p) * c..(xi * tiles + p + 1) * c];
        let (s0, s1) = t.split_at_mut(4 * c);
        for j in 0..4 {
            comb(&mut s0[j * c..(j + 1) * c], mv(j), mv(4 + j), 1.0, mv(8 + j), 1.0);
            comb(&mut s1[j * c..(j + 1) * c], mv(4 + j), mv(8 + j), -1.0, mv(12 + j), -1.0);
        }
        for (r, s) in [&*s0, &*s1].into_iter().enumerate() {
            let sv = |j: usize| &s[j * c..(j + 1) * c];
            let (y0, y1) = y[2 * r * c..(2 * r + 2) * c].split_at_mut(c);
            comb(y0, sv(0), sv(1), 1.0, sv(2), 1.0);
            comb(y1, sv(1), sv(2), -1.0, sv(3), -1.0);
        }
    }
}

/// Per-thread buffers of one band of tiles.
#[derive(Default)]
struct Scratch {
    /// Transformed input: 16 matrices of tiles × c_in.
    v: Vec<f32>,
    /// Their products: 16 matrices of tiles × c_out.
    m: Vec<f32>,
    /// The input tile after its row transform (16 × c_in), the output's (8 × c_out).
    t: Vec<f32>,
    zeros: Vec<f32>,
}

/// A stride-1 3×3 convolution's shape.
pub(super) struct Shape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub c_out: usize,
    pub pad: Pad,
}

/// The convolution of NHWC `x` with filters `u` (from [`filters`]), (n, oh, ow, c_out) out;
/// `finish(dst, first value's index in the output)` runs on each band's rows once written
/// (bias, activation, residual).
pub(super) fn conv(x: &[f32], s: &Shape, u: &[f32], finish: impl Fn(&mut [f32], usize) + Sync) -> Result<(Vec<f32>, usize, usize)> {
    let Shape { n, h, w, c, c_out, pad } = *s;
    let (oh, ow) = ((h + pad.top + pad.bottom).saturating_sub(2), (w + pad.left + pad.right).saturating_sub(2));
    if x.len() != n * h * w * c || u.len() != 16 * c * c_out || oh == 0 || ow == 0 || c == 0 || c_out == 0 {
        candle_core::bail!(
            "a 3x3 Winograd convolution {c} -> {c_out} on ({n}, {h}, {w}) given {} inputs, {} filter values",
            x.len(),
            u.len()
        );
    }
    let (tiles_y, tiles_x) = (oh.div_ceil(2), ow.div_ceil(2));
    // bands of `r` tile rows: at least ~24 tiles per product (its rows), where the map allows
    let r = 24usize.div_ceil(tiles_x).clamp(1, tiles_y);
    let per_image = oh * ow * c_out;
    let band = 2 * r * ow * c_out;
    let mut out: Vec<f32> = Vec::with_capacity(n * per_image);
    out.spare_capacity_mut()[..n * per_image]
        .par_chunks_mut(per_image)
        .enumerate()
        .flat_map(|(b, img)| img.par_chunks_mut(band).enumerate().map(move |(t, part)| (b, t, part)))
        .try_for_each_init(Scratch::default, |sc, (b, t, part)| -> Result<()> {
            let img = &x[b * h * w * c..(b + 1) * h * w * c];
            let (ty0, ty1) = (t * r, ((t + 1) * r).min(tiles_y));
            let dst = band_tiles(sc, img, s, u, (ty0, ty1), part)?;
            finish(dst, b * per_image + ty0 * 2 * ow * c_out);
            Ok(())
        })?;
    // SAFETY: the chunks cover the first n·per_image values, and `band_tiles` wrote every value
    // of each (it returns the chunk initialised, or an error, before which we returned).
    unsafe { out.set_len(n * per_image) };
    Ok((out, oh, ow))
}

/// Tile rows `ty0..ty1` of one image into `part` (their output rows, possibly one short at the
/// bottom); returns `part` written.
fn band_tiles<'a>(
    sc: &mut Scratch,
    img: &[f32],
    s: &Shape,
    u: &[f32],
    (ty0, ty1): (usize, usize),
    part: &'a mut [MaybeUninit<f32>],
) -> Result<&'a mut [f32]> {
    let Shape { h, w, c, c_out, pad, .. } = *s;
    let (oh, ow) = (h + pad.top + pad.bottom - 2, w + pad.left + pad.right - 2);
    let tiles_x = ow.div_ceil(2);
    let tiles = (ty1 - ty0) * tiles_x;
    sc.v.resize(16 * tiles * c, 0.0);
    sc.m.resize(16 * tiles * c_out, 0.0);
    sc.t.resize(16 * c.max(c_out).max(1), 0.0);
    sc.zeros.resize(c, 0.0);
    let Scratch { v, m, t, zeros } = sc;
    let zeros: &[f32] = zeros;
    for ty in ty0..ty1 {
        for tx in 0..tiles_x {
            let pixel = |k: usize| -> &[f32] {
                let iy = (2 * ty + k / 4).checked_sub(pad.top).filter(|&y| y < h);
                let ix = (2 * tx + k % 4).checked_sub(pad.left).filter(|&x| x < w);
                match (iy, ix) {
                    (Some(y), Some(x)) => &img[(y * w + x) * c..(y * w + x + 1) * c],
                    _ => zeros,
                }
            };
            input_tile(&std::array::from_fn(pixel), t, v, tiles, (ty - ty0) * tiles_x + tx, zeros);
        }
    }
    for xi in 0..16 {
        let (vm, mm, um) = (
            &v[xi * tiles * c..(xi + 1) * tiles * c],
            &mut m[xi * tiles * c_out..(xi + 1) * tiles * c_out],
            &u[xi * c * c_out..(xi + 1) * c * c_out],
        );
        matmul_strided(tiles, c_out, c, mm, (c_out, 1), false, vm, (c, 1), um, (c_out, 1))?;
    }
    let rows = part.len() / (ow * c_out);
    if part.len() != rows * ow * c_out || rows > 2 * (ty1 - ty0) || 2 * ty0 + rows > oh {
        candle_core::bail!("a Winograd band of {} values for {} tile rows", part.len(), ty1 - ty0);
    }
    let (s, y) = t.split_at_mut(8 * c_out);
    let y = &mut y[..4 * c_out];
    // every output pixel of the band is one tile's, written once: counted, to know all are
    let mut written = 0;
    for ty in ty0..ty1 {
        for tx in 0..tiles_x {
            output_tile(m, tiles, (ty - ty0) * tiles_x + tx, s, y);
            for (k, yv) in y.chunks_exact(c_out).enumerate() {
                let (oy, ox) = (2 * (ty - ty0) + k / 2, 2 * tx + k % 2);
                if oy < rows && ox < ow {
                    for (d, v) in part[(oy * ow + ox) * c_out..(oy * ow + ox + 1) * c_out].iter_mut().zip(yv) {
                        d.write(*v);
                    }
                    written += c_out;
                }
            }
        }
    }
    if written != part.len() {
        candle_core::bail!("a Winograd band wrote {written} of its {} values", part.len());
    }
    // SAFETY: each output pixel (oy < rows, ox < ow) is written by exactly one tile position,
    // c_out values each, and `written` counted part.len() of them: every value is initialised;
    // MaybeUninit<f32> has f32's layout.
    let dst = unsafe { &mut *(part as *mut [MaybeUninit<f32>] as *mut [f32]) };
    Ok(dst)
}
