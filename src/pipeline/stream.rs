//! Row-streamed CPU execution of a chain of thin convolutions: each layer's output rows are
//! made when the next layer needs them and kept in a three-row ring, so the large, thin feature
//! maps at the start of a network (the detector's stem and first stage: half to an eighth of
//! the photo's size, 8-64 channels, ~40 MB per 1024-px photo) stay in the cache instead of going
//! to memory and back once per layer.
//!
//! Layer by layer those maps made the first stage memory-bound: 16 of the detector's ~37 ms on
//! a 1024-px photo, for 7 % of its arithmetic; streamed, 7.7 ms. The kernels here keep a pixel's
//! channels in AVX2 registers (channel counts are compile-time constants), several pixels at a
//! time so the FMAs do not wait on each other, and apply bias and activation before the one
//! store.

use candle_core::{Device, Result, Tensor};

use super::ops::{Activation, ConvAct};
use crate::kernels::par_output;
use crate::kernels::Pad;

/// Channel counts the kernels are compiled for.
const CHANNELS: [usize; 4] = [8, 16, 32, 64];

/// One layer of a chain: a 3x3 convolution (dense or depthwise, padding 1, stride 1 or 2) or a
/// 1x1 convolution (stride 1, no padding).
struct Step {
    conv: ConvAct,
    c_in: usize,
}

/// Layers run in order, row by row (see the module doc).
pub struct Chain {
    steps: Vec<Step>,
}

/// Rows of one feature map with a zero pixel on each side, the last few in a ring.
struct Ring {
    data: Vec<f32>,
    tags: [Option<usize>; RING],
    /// Values per padded row.
    stride: usize,
    /// Values per pixel.
    c: usize,
}

const RING: usize = 3;

impl Ring {
    fn new(w: usize, c: usize) -> Self {
        let stride = (w + 2) * c;
        Self { data: vec![0.0; RING * stride], tags: [None; RING], stride, c }
    }
    /// Row `y`, padded, if it is still held.
    fn get(&self, y: usize) -> Option<&[f32]> {
        let slot = y % RING;
        (self.tags[slot] == Some(y)).then(|| &self.data[slot * self.stride..(slot + 1) * self.stride])
    }
    /// The inside (no padding) of the slot row `y` goes to, marked as holding it.
    fn put(&mut self, y: usize) -> &mut [f32] {
        let slot = y % RING;
        self.tags[slot] = Some(y);
        let (c, s) = (self.c, self.stride);
        &mut self.data[slot * s + c..(slot + 1) * s - c]
    }
}

impl Chain {
    /// A chain of `layers`, each taking the previous one's output; an error for a layer the
    /// row kernels do not cover.
    pub fn new(layers: &[&ConvAct]) -> Result<Self> {
        let mut steps = Vec::with_capacity(layers.len());
        for l in layers {
            let (k, s, c_out) = (l.k, l.stride, l.c_out);
            let c_in = if l.depthwise { c_out } else { l.host.weight.len() / (k * k * c_out).max(1) };
            let geometry_ok = match k {
                3 => l.pad == Pad::same(1) && (s == 1 || s == 2),
                1 => l.pad == Pad::same(0) && s == 1 && !l.depthwise,
                _ => false,
            };
            if !geometry_ok
                || !CHANNELS.contains(&c_out)
                || c_in == 0
                || l.host.weight.len() != k * k * c_in * if l.depthwise { 1 } else { c_out }
            {
                candle_core::bail!("a {k}x{k} stride-{s} convolution to {c_out} channels cannot be streamed by rows");
            }
            if let Some(prev) = steps.last().map(|p: &Step| p.conv.c_out) {
                if prev != c_in {
                    candle_core::bail!("a layer of {c_in} input channels after one of {prev} outputs");
                }
            }
            steps.push(Step { conv: (*l).clone(), c_in });
        }
        if steps.is_empty() {
            candle_core::bail!("an empty chain");
        }
        Ok(Self { steps })
    }

    /// (height, width) of every map: the input's, then each layer's output.
    fn sizes(&self, h: usize, w: usize) -> Vec<(usize, usize)> {
        let mut out = vec![(h, w)];
        for st in &self.steps {
            let (h, w) = *out.last().unwrap_or(&(h, w));
            let (k, s) = (st.conv.k, st.conv.stride);
            let p = k / 2;
            out.push(((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1));
        }
        out
    }

    /// Runs the chain on one `h` x `w` image of `c` channels, whose row `y` (w·c values, NHWC)
    /// `input(y, row)` writes, and returns the last layer's output as a (1, h', w', c') tensor.
    pub fn run(&self, h: usize, w: usize, c: usize, input: impl Fn(usize, &mut [f32]) + Sync) -> Result<Tensor> {
        if h == 0 || w == 0 || c != self.steps[0].c_in {
            candle_core::bail!("a chain of {}-channel input was given a {h}x{w}x{c} image", self.steps[0].c_in);
        }
        let sizes = self.sizes(h, w);
        let (ho, wo) = sizes[sizes.len() - 1];
        let co = self.steps[self.steps.len() - 1].conv.c_out;
        // Bands of output rows in parallel, each with its own rings. A band recomputes the
        // few rows of every map its neighbour also needs (the receptive field's overlap), so
        // bands are few: two per thread, at least 8 output rows.
        let bands = 2 * rayon::current_num_threads();
        let band = ho.div_ceil(bands).max(8);
        // SAFETY: the chunk is split into whole rows of `wo * co` values and each is zeroed before its kernel.
        let out = unsafe {
            par_output(
                ho * wo * co,
                band * wo * co,
                || (),
                |_, b, part| {
                    let z0 = b * band;
                    let mut state = BandState::new(self, &sizes, c, z0);
                    for (i, row) in part.chunks_mut(wo * co).enumerate() {
                        let row = crate::kernels::zeroed(row);
                        state.last_row(self, &sizes, &input, z0 + i, row)?;
                    }
                    Ok(())
                },
            )
        }?;
        Tensor::from_vec(out, (1, ho, wo, co), &Device::Cpu)
    }
}

/// The rings and next rows of one band.
struct BandState {
    /// Ring of map `j` (0 = the input) for every map but the last.
    rings: Vec<Ring>,
    /// The next row of map `j` to make.
    next: Vec<usize>,
}

impl BandState {
    fn new(chain: &Chain, sizes: &[(usize, usize)], c: usize, z0: usize) -> Self {
        let n = chain.steps.len();
        let mut next = vec![0; n + 1];
        next[n] = z0;
        for j in (0..n).rev() {
            let conv = &chain.steps[j].conv;
            next[j] = (conv.stride * next[j + 1]).saturating_sub(conv.k / 2);
        }
        let rings = (0..n).map(|j| Ring::new(sizes[j].1, if j == 0 { c } else { chain.steps[j - 1].conv.c_out })).collect();
        Self { rings, next }
    }

    /// Makes every row of map `j` (< the last) up to `y`, in order.
    fn ensure(
        &mut self,
        chain: &Chain,
        sizes: &[(usize, usize)],
        input: &(impl Fn(usize, &mut [f32]) + Sync),
        j: usize,
        y: usize,
    ) -> Result<()> {
        while self.next[j] <= y {
            let r = self.next[j];
            if j == 0 {
                input(r, self.rings[0].put(r));
            } else {
                self.inputs_of(chain, sizes, input, j - 1, r)?;
                let (before, after) = self.rings.split_at_mut(j);
                step_row(&chain.steps[j - 1], &before[j - 1], r, after[0].put(r), sizes[j - 1].0)?;
            }
            self.next[j] += 1;
        }
        Ok(())
    }

    /// Makes the input rows that row `r` of layer `i`'s output reads.
    fn inputs_of(
        &mut self,
        chain: &Chain,
        sizes: &[(usize, usize)],
        input: &(impl Fn(usize, &mut [f32]) + Sync),
        i: usize,
        r: usize,
    ) -> Result<()> {
        let conv = &chain.steps[i].conv;
        let last = (conv.stride * r + conv.k / 2).min(sizes[i].0 - 1);
        self.ensure(chain, sizes, input, i, last)
    }

    /// Row `z` of the chain's output into `dst`.
    fn last_row(
        &mut self,
        chain: &Chain,
        sizes: &[(usize, usize)],
        input: &(impl Fn(usize, &mut [f32]) + Sync),
        z: usize,
        dst: &mut [f32],
    ) -> Result<()> {
        let i = chain.steps.len() - 1;
        self.inputs_of(chain, sizes, input, i, z)?;
        step_row(&chain.steps[i], &self.rings[i], z, dst, sizes[i].0)
    }
}

/// Output row `r` of `st` into `dst` (w'·c_out values), from its input rows in `src` (a map
/// `h_in` rows high).
fn step_row(st: &Step, src: &Ring, r: usize, dst: &mut [f32], h_in: usize) -> Result<()> {
    let conv = &st.conv;
    let (wt, bias, act) = (&conv.host.weight[..], &conv.host.bias[..], &conv.act);
    if conv.k == 1 {
        let Some(row) = src.get(r) else { candle_core::bail!("row {r} of a streamed map is gone") };
        let c = st.c_in;
        return pw_row(dst, &row[c..row.len() - c], st.c_in, wt, bias, act);
    }
    let s = conv.stride;
    let mut rows: [Option<&[f32]>; 3] = [None; 3];
    for (ky, slot) in rows.iter_mut().enumerate() {
        let Some(y) = (s * r + ky).checked_sub(1).filter(|y| *y < h_in) else { continue };
        match src.get(y) {
            Some(row) => *slot = Some(row),
            None => candle_core::bail!("row {y} of a streamed map is gone"),
        }
    }
    conv3_row(dst, &rows, s, st.c_in, conv.depthwise, wt, bias, act)
}

/// Whether this CPU runs the row kernels (x86-64 with AVX2 and FMA); elsewhere the network
/// runs layer by layer.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Runs the AVX2 kernel `kernels::f::<c / 8>(args)` for `c` channels (one of [`CHANNELS`]), or
/// fails on a CPU without AVX2 and FMA. The caller must have checked the sizes the kernel's
/// `# Safety` section names.
macro_rules! avx2_kernel {
    ($c:expr, $f:ident($($arg:expr),*)) => {{
        if !available() {
            candle_core::bail!("the row kernels need AVX2 and FMA");
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 and FMA (checked just above), and the caller checked the
        // sizes the kernel needs.
        unsafe {
            match $c {
                8 => kernels::$f::<1>($($arg),*),
                16 => kernels::$f::<2>($($arg),*),
                32 => kernels::$f::<4>($($arg),*),
                64 => kernels::$f::<8>($($arg),*),
                c => candle_core::bail!("no row kernel for {c} channels"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("available() is false off x86-64")
    }};
}

/// A row of a 3x3 convolution, depthwise or dense (a stem: few input channels), from its (up
/// to) three padded input rows.
#[allow(clippy::too_many_arguments)]
fn conv3_row(
    dst: &mut [f32],
    rows: &[Option<&[f32]>; 3],
    s: usize,
    c_in: usize,
    depthwise: bool,
    wt: &[f32],
    bias: &[f32],
    act: &Activation,
) -> Result<()> {
    let c = bias.len();
    let ow = dst.len() / c.max(1);
    let need = (s * ow.saturating_sub(1) + 3) * c_in;
    let weights = if depthwise { 9 * c } else { 9 * c_in * c };
    if c == 0
        || (depthwise && c_in != c)
        || dst.len() != ow * c
        || wt.len() != weights
        || rows.iter().flatten().any(|r| r.len() < need)
        || !act.fits(c)
    {
        candle_core::bail!("a 3x3 row of {} values from rows of {:?} values", dst.len(), rows.map(|r| r.map(|r| r.len())));
    }
    if depthwise {
        avx2_kernel!(c, dw3(dst, rows, s, wt, bias, act))
    } else {
        avx2_kernel!(c, dense3(dst, rows, s, c_in, wt, bias, act))
    }
}

/// A row of a 1x1 convolution: narrow inputs by the row kernel, wide ones by a GEMM.
fn pw_row(dst: &mut [f32], src: &[f32], c_in: usize, wt: &[f32], bias: &[f32], act: &Activation) -> Result<()> {
    let c = bias.len();
    let w = dst.len() / c.max(1);
    if c == 0 || dst.len() != w * c || src.len() != w * c_in || wt.len() != c_in * c || !act.fits(c) {
        candle_core::bail!("a 1x1 row of {} values from {} values", dst.len(), src.len());
    }
    if c_in >= 32 {
        crate::kernels::matmul_strided(w, c, c_in, dst, (c, 1), false, src, (c_in, 1), wt, (c, 1))?;
        super::ops::bias_act(dst, c, Some(bias), act);
        return Ok(());
    }
    avx2_kernel!(c, pw(dst, src, c_in, wt, bias, act))
}

/// The row kernels: one pixel's channels in `B` AVX registers of 8, bias and activation
/// applied before the one store. Each takes the sizes its caller checked.
#[cfg(target_arch = "x86_64")]
mod kernels {
    use super::Activation;
    use candle_core::Result;
    use std::arch::x86_64::*;

    /// `act` on channels `c0..c0 + 8`.
    #[inline(always)]
    unsafe fn activate(v: __m256, act: &Activation, c0: usize) -> __m256 {
        // SAFETY: the caller runs with AVX2 and FMA; for PRelu it checked `act.fits(c)`, so alpha holds c0 + 8 slopes.
        unsafe {
            let (pos, neg) = (_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_min_ps(v, _mm256_setzero_ps()));
            match act {
                Activation::Linear => v,
                Activation::Relu => pos,
                Activation::Leaky(a) => _mm256_fmadd_ps(neg, _mm256_set1_ps(*a), pos),
                // SAFETY: the caller checked `act.fits(c)`: alpha holds c0 + 8 <= c slopes.
                Activation::PRelu(alpha) => _mm256_fmadd_ps(neg, _mm256_loadu_ps(alpha.as_ptr().add(c0)), pos),
            }
        }
    }

    /// Runs `group(first pixel, count)` over `n` pixels in groups of `P`, then one by one: `P`
    /// pixels' accumulators are independent chains, so the FMAs overlap instead of waiting on
    /// each other (a stem pixel is 27 FMAs into one register).
    macro_rules! groups {
        ($n:expr, $B:ident, $P:ident, $f:ident($($arg:expr),*)) => {{
            let n = $n;
            let mut x = 0;
            while x + $P <= n {
                $f::<$B, $P>(x, $($arg),*);
                x += $P;
            }
            while x < n {
                $f::<$B, 1>(x, $($arg),*);
                x += 1;
            }
        }};
    }

    /// Bias of `P` pixels, `B` registers each.
    #[inline(always)]
    unsafe fn start<const B: usize, const P: usize>(bias: *const f32) -> [[__m256; B]; P] {
        // SAFETY: the caller runs with AVX2 and `bias` holds 8·B values (its kernel's `# Safety`).
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); B]; P];
            for px in acc.iter_mut() {
                for (b, a) in px.iter_mut().enumerate() {
                    *a = _mm256_loadu_ps(bias.add(8 * b));
                }
            }
            acc
        }
    }

    /// Activation and store of `P` pixels from pixel `x` of `d`.
    #[inline(always)]
    unsafe fn finish<const B: usize, const P: usize>(acc: &[[__m256; B]; P], d: *mut f32, x: usize, act: &Activation) {
        // SAFETY: the caller runs with AVX2 and FMA and `d` holds pixels x..x + P of 8·B values each.
        unsafe {
            for (i, px) in acc.iter().enumerate() {
                for (b, a) in px.iter().enumerate() {
                    _mm256_storeu_ps(d.add((x + i) * 8 * B + 8 * b), activate(*a, act, 8 * b));
                }
            }
        }
    }

    /// # Safety
    /// AVX2 and FMA; `bias` holds 8·B values, `wt` 9·8·B, every row at least
    /// (s·(ow - 1) + 3)·8·B for `ow` = dst.len() / (8·B), and `act` fits 8·B channels.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dw3<const B: usize>(
        dst: &mut [f32],
        rows: &[Option<&[f32]>; 3],
        s: usize,
        wt: &[f32],
        bias: &[f32],
        act: &Activation,
    ) -> Result<()> {
        // SAFETY: this function's `# Safety` section: AVX2 and FMA, and every size the pointer reads and writes below stay within.
        unsafe {
            #[inline(always)]
            unsafe fn group<const B: usize, const P: usize>(
                x: usize,
                d: *mut f32,
                rows: &[Option<&[f32]>; 3],
                s: usize,
                w: *const f32,
                bias: *const f32,
                act: &Activation,
            ) {
                // SAFETY: called only by its kernel with pixels x..x + P inside `dst` and the rows, weights and bias its kernel's `# Safety` sizes.
                unsafe {
                    let c = 8 * B;
                    let mut acc = start::<B, P>(bias);
                    for (ky, row) in rows.iter().enumerate() {
                        let Some(row) = row else { continue };
                        for kx in 0..3 {
                            let w = w.add((ky * 3 + kx) * c);
                            let wv: [__m256; B] = std::array::from_fn(|b| _mm256_loadu_ps(w.add(8 * b)));
                            for (i, px) in acc.iter_mut().enumerate() {
                                let p = row.as_ptr().add((s * (x + i) + kx) * c);
                                for (b, a) in px.iter_mut().enumerate() {
                                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(8 * b)), wv[b], *a);
                                }
                            }
                        }
                    }
                    finish(&acc, d, x, act);
                }
            }
            let (d, w, bi) = (dst.as_mut_ptr(), wt.as_ptr(), bias.as_ptr());
            match B {
                1 => groups!(dst.len() / 8, B, P8, group(d, rows, s, w, bi, act)),
                2 => groups!(dst.len() / 16, B, P4, group(d, rows, s, w, bi, act)),
                _ => groups!(dst.len() / (8 * B), B, P2, group(d, rows, s, w, bi, act)),
            }
            Ok(())
        }
    }

    const P8: usize = 8;
    const P4: usize = 4;
    const P2: usize = 2;

    /// # Safety
    /// AVX2 and FMA; `bias` holds 8·B values, `wt` 9·c_in·8·B, every row at least
    /// (s·(ow - 1) + 3)·c_in for `ow` = dst.len() / (8·B), and `act` fits 8·B channels.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dense3<const B: usize>(
        dst: &mut [f32],
        rows: &[Option<&[f32]>; 3],
        s: usize,
        c_in: usize,
        wt: &[f32],
        bias: &[f32],
        act: &Activation,
    ) -> Result<()> {
        // SAFETY: this function's `# Safety` section: AVX2 and FMA, and every size the pointer reads and writes below stay within.
        unsafe {
            #[allow(clippy::too_many_arguments)]
            #[inline(always)]
            unsafe fn group<const B: usize, const P: usize>(
                x: usize,
                d: *mut f32,
                rows: &[Option<&[f32]>; 3],
                s: usize,
                c_in: usize,
                w: *const f32,
                bias: *const f32,
                act: &Activation,
            ) {
                // SAFETY: called only by its kernel with pixels x..x + P inside `dst` and the rows, weights and bias its kernel's `# Safety` sizes.
                unsafe {
                    let (c, kc) = (8 * B, 3 * c_in);
                    let mut acc = start::<B, P>(bias);
                    for (ky, row) in rows.iter().enumerate() {
                        let Some(row) = row else { continue };
                        let w = w.add(ky * kc * c);
                        // the three taps of a kernel row are contiguous in the padded row
                        for t in 0..kc {
                            let wv: [__m256; B] = std::array::from_fn(|b| _mm256_loadu_ps(w.add(t * c + 8 * b)));
                            for (i, px) in acc.iter_mut().enumerate() {
                                let v = _mm256_set1_ps(*row.as_ptr().add(s * (x + i) * c_in + t));
                                for (b, a) in px.iter_mut().enumerate() {
                                    *a = _mm256_fmadd_ps(v, wv[b], *a);
                                }
                            }
                        }
                    }
                    finish(&acc, d, x, act);
                }
            }
            let (d, w, bi) = (dst.as_mut_ptr(), wt.as_ptr(), bias.as_ptr());
            match B {
                1 => groups!(dst.len() / 8, B, P8, group(d, rows, s, c_in, w, bi, act)),
                2 => groups!(dst.len() / 16, B, P4, group(d, rows, s, c_in, w, bi, act)),
                _ => groups!(dst.len() / (8 * B), B, P2, group(d, rows, s, c_in, w, bi, act)),
            }
            Ok(())
        }
    }

    /// # Safety
    /// AVX2 and FMA; `bias` holds 8·B values, `wt` c_in·8·B, `src` c_in per pixel of `dst`
    /// (8·B each), and `act` fits 8·B channels.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn pw<const B: usize>(
        dst: &mut [f32],
        src: &[f32],
        c_in: usize,
        wt: &[f32],
        bias: &[f32],
        act: &Activation,
    ) -> Result<()> {
        // SAFETY: this function's `# Safety` section: AVX2 and FMA, and every size the pointer reads and writes below stay within.
        unsafe {
            #[inline(always)]
            unsafe fn group<const B: usize, const P: usize>(
                x: usize,
                d: *mut f32,
                src: *const f32,
                c_in: usize,
                w: *const f32,
                bias: *const f32,
                act: &Activation,
            ) {
                // SAFETY: called only by its kernel with pixels x..x + P inside `dst` and the rows, weights and bias its kernel's `# Safety` sizes.
                unsafe {
                    let c = 8 * B;
                    let mut acc = start::<B, P>(bias);
                    for ci in 0..c_in {
                        let wv: [__m256; B] = std::array::from_fn(|b| _mm256_loadu_ps(w.add(ci * c + 8 * b)));
                        for (i, px) in acc.iter_mut().enumerate() {
                            let v = _mm256_set1_ps(*src.add((x + i) * c_in + ci));
                            for (b, a) in px.iter_mut().enumerate() {
                                *a = _mm256_fmadd_ps(v, wv[b], *a);
                            }
                        }
                    }
                    finish(&acc, d, x, act);
                }
            }
            let (d, w, bi) = (dst.as_mut_ptr(), wt.as_ptr(), bias.as_ptr());
            match B {
                1 => groups!(dst.len() / 8, B, P8, group(d, src.as_ptr(), c_in, w, bi, act)),
                2 => groups!(dst.len() / 16, B, P4, group(d, src.as_ptr(), c_in, w, bi, act)),
                _ => groups!(dst.len() / (8 * B), B, P2, group(d, src.as_ptr(), c_in, w, bi, act)),
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ops::tests::{layer_seeded, random};
    use crate::pipeline::ops::{ActKind, ConvSpec};
    use candle_core::Module;

    fn layer_by_layer(layers: &[&ConvAct], x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for l in layers {
            x = l.forward(&x)?;
        }
        Ok(x)
    }

    /// The detector's first stage in miniature (stem, depthwise stride 1 and 2, 1x1), every
    /// activation, on sizes from one pixel up: equal to running the layers one by one.
    #[test]
    fn streamed_chain_equals_layer_by_layer() {
        let specs = [
            (ConvSpec::dense(3, 8, 3, 2, 1), ActKind::Leaky(0.1)),
            (ConvSpec::depthwise(8, 3, 1, 1), ActKind::PRelu),
            (ConvSpec::dense(8, 16, 1, 1, 0), ActKind::Relu),
            (ConvSpec::depthwise(16, 3, 2, 1), ActKind::Leaky(0.1)),
            (ConvSpec::dense(16, 32, 1, 1, 0), ActKind::Linear),
            (ConvSpec::dense(32, 16, 3, 1, 1), ActKind::Leaky(0.1)),
            (ConvSpec::depthwise(16, 3, 2, 1), ActKind::Relu),
            (ConvSpec::dense(16, 64, 1, 1, 0), ActKind::PRelu),
        ];
        let layers: Vec<ConvAct> = specs.iter().enumerate().map(|(i, (s, a))| layer_seeded(*s, *a, 10 * i as u64)).collect();
        let refs: Vec<&ConvAct> = layers.iter().collect();
        let chain = Chain::new(&refs).unwrap();
        for (h, w) in [(1, 1), (2, 3), (7, 5), (16, 16), (33, 17), (150, 97)] {
            let data = random(&[h * w * 3], (h * 1000 + w) as u64);
            let x = Tensor::from_vec(data.clone(), (1, h, w, 3), &Device::Cpu).unwrap();
            let want = layer_by_layer(&refs, &x).unwrap();
            let got = chain.run(h, w, 3, |y, row| row.copy_from_slice(&data[y * w * 3..(y + 1) * w * 3])).unwrap();
            assert_eq!(got.dims(), want.dims(), "{h}x{w}");
            let diff = (got - want).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4, "{h}x{w}: {diff}");
        }
    }

    /// Layers the row kernels do not cover, and chains that do not fit together, are refused.
    #[test]
    fn unsupported_layers_are_refused() {
        let l = |s, a| layer_seeded(s, a, 1);
        let bad = [
            vec![l(ConvSpec::dense(8, 5, 1, 1, 0), ActKind::Relu)],
            vec![l(ConvSpec::depthwise(8, 3, 1, 0), ActKind::Relu)],
            vec![l(ConvSpec::dense(8, 8, 3, 3, 1), ActKind::Relu)],
            vec![l(ConvSpec::depthwise(8, 7, 1, 3), ActKind::Relu)],
            vec![l(ConvSpec::dense(8, 16, 1, 1, 0), ActKind::Relu), l(ConvSpec::depthwise(8, 3, 1, 1), ActKind::Relu)],
            vec![],
        ];
        for layers in bad {
            assert!(Chain::new(&layers.iter().collect::<Vec<_>>()).is_err());
        }
        let ok = l(ConvSpec::dense(3, 8, 3, 2, 1), ActKind::Relu);
        let chain = Chain::new(&[&ok]).unwrap();
        assert!(chain.run(4, 4, 4, |_, _| {}).is_err());
        assert!(chain.run(0, 4, 3, |_, _| {}).is_err());
    }
}
