//! Fast CPU kernels for the two layers candle runs slowly: depthwise convolution and
//! bias + activation. On CUDA/Metal the same layers fall back to candle's generic ops.
//!
//! candle lowers a grouped convolution with `groups == channels` to one tiny convolution per
//! channel, and a PReLU to four elementwise passes; for MobileNet-style networks those two
//! dominate the run time. Here both become one pass over memory, fused with the bias and the
//! activation that follow them.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use std::mem::MaybeUninit;

use crate::kernels::{channels_last, Pad};
use crate::kernels::{multiversion, par_output, zeroed};

/// The non-linearity applied after a convolution.
#[derive(Debug, Clone)]
pub enum Activation {
    Linear,
    Relu,
    /// `max(x, 0) + slope * min(x, 0)` with one slope for all channels.
    Leaky(f32),
    /// Per-channel slope (PReLU), loaded from `<layer>.alpha`.
    PRelu(Vec<f32>),
}

impl Activation {
    /// Whether it can apply to `c` channels (a PReLU has one slope per channel).
    pub fn fits(&self, c: usize) -> bool {
        !matches!(self, Activation::PRelu(a) if a.len() != c)
    }

    /// The same activation written with candle tensor ops (for GPU devices).
    fn forward_generic(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Linear => Ok(x.clone()),
            Activation::Relu => x.relu(),
            Activation::Leaky(a) => {
                let neg = x.minimum(0f32)?;
                x.relu()? + (neg * (*a as f64))?
            }
            Activation::PRelu(a) => {
                let alpha = Tensor::new(a.as_slice(), x.device())?.reshape((1, a.len(), 1, 1))?;
                x.relu()? + x.minimum(0f32)?.broadcast_mul(&alpha)?
            }
        }
    }
}

/// Floats of im2col rows (or output rows) per dense-convolution tile: ~256 KiB, so a tile's
/// input and output stay in L2 while its GEMM runs.
const TILE_VALUES: usize = 64 * 1024;

fn cpu_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("facefind kernels need contiguous input"),
    }
}

/// `copy_from_slice` without a `memcpy` call for the short runs of thin layers.
#[inline(always)]
fn copy_small(dst: &mut [f32], src: &[f32]) {
    if src.len() < 32 {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    } else {
        dst.copy_from_slice(src);
    }
}

multiversion! {
    /// Adds `bias` (if given) and applies `act` in place to `data`, rows of `c` channels.
    /// Branch-free, so it vectorises.
    pub(super) fn bias_act(data: &mut [f32], c: usize, bias: Option<&[f32]>, act: &Activation) {
        if let Some(b) = bias {
            for row in data.chunks_exact_mut(c) {
                row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            }
        }
        match act {
            Activation::Linear => {}
            Activation::Relu => data.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Leaky(a) => {
                let a = *a;
                data.iter_mut().for_each(|v| *v = v.max(0.0) + a * v.min(0.0));
            }
            Activation::PRelu(alpha) => {
                for row in data.chunks_exact_mut(c) {
                    row.iter_mut().zip(alpha).for_each(|(v, a)| *v = v.max(0.0) + a * v.min(0.0));
                }
            }
        }
    }
}

/// Shape of one convolution call, for the row kernels.
struct Geom {
    h: usize,
    w: usize,
    c: usize,
    ow: usize,
    k: usize,
    s: usize,
    pad: Pad,
}

multiversion! {
    /// One output row of a depthwise convolution (+ bias + activation). `img` is one NHWC
    /// image; `tiled` holds each tap's weights repeated along a row (stride 1 only).
    #[allow(clippy::too_many_arguments)]
    fn depthwise_row(dst: &mut [f32], img: &[f32], oy: usize, g: &Geom, wt: &[f32], tiled: &[f32], bias: &[f32], act: &Activation) {
        let Geom { h, w, c, ow, k, s, pad } = *g;
        for px in dst.chunks_exact_mut(c) {
            px.copy_from_slice(bias);
        }
        for ky in 0..k {
            let Some(iy) = (oy * s + ky).checked_sub(pad.top).filter(|iy| *iy < h) else { continue };
            let src_row = &img[iy * w * c..(iy + 1) * w * c];
            for kx in 0..k {
                let t = ky * k + kx;
                if s == 1 {
                    // Output x in [x0, x1) reads input x + kx - left, which must be in [0, w):
                    // one multiply-add over a contiguous run of (x1 - x0) * c values.
                    let x0 = pad.left.saturating_sub(kx);
                    let x1 = ow.min((w + pad.left).saturating_sub(kx));
                    if x1 <= x0 {
                        continue;
                    }
                    let i0 = x0 + kx - pad.left;
                    let d = &mut dst[x0 * c..x1 * c];
                    let sr = &src_row[i0 * c..(i0 + x1 - x0) * c];
                    let wr = &tiled[(t * ow + x0) * c..(t * ow + x1) * c];
                    for ((a, p), q) in d.iter_mut().zip(sr).zip(wr) {
                        *a += p * q;
                    }
                } else {
                    let wk = &wt[t * c..(t + 1) * c];
                    for (ox, acc) in dst.chunks_exact_mut(c).enumerate() {
                        let Some(ix) = (ox * s + kx).checked_sub(pad.left).filter(|ix| *ix < w) else { continue };
                        let px = &src_row[ix * c..(ix + 1) * c];
                        for ((a, p), q) in acc.iter_mut().zip(px).zip(wk) {
                            *a += p * q;
                        }
                    }
                }
            }
        }
        bias_act(dst, c, None, act);
    }
}

multiversion! {
    /// One output row of the RGB stem: too thin for a GEMM; direct, with the 8 output
    /// channels in one register.
    fn stem_row(dst: &mut [f32], img: &[f32], oy: usize, g: &Geom, wt: &[f32], bias: &[f32], act: &Activation) {
        let Geom { h, w, c, k, s, pad, .. } = *g;
        for (ox, o) in dst.chunks_exact_mut(8).enumerate() {
            let mut acc = [0f32; 8];
            acc.copy_from_slice(bias);
            for ky in 0..k {
                let Some(iy) = (oy * s + ky).checked_sub(pad.top).filter(|iy| *iy < h) else { continue };
                for kx in 0..k {
                    let Some(ix) = (ox * s + kx).checked_sub(pad.left).filter(|ix| *ix < w) else { continue };
                    let px = &img[(iy * w + ix) * c..(iy * w + ix + 1) * c];
                    for (ci, v) in px.iter().enumerate() {
                        let wr = &wt[((ky * k + kx) * c + ci) * 8..][..8];
                        for j in 0..8 {
                            acc[j] += v * wr[j];
                        }
                    }
                }
            }
            o.copy_from_slice(&acc);
        }
        bias_act(dst, 8, None, act);
    }
}

/// `dst (m × n, row-major, uninitialised) = a (m × k, row-major) · b (k × n, row-major)`, on one
/// thread, writing every value of `dst`; returns it initialised. An error when a slice does not
/// have the size its shape needs.
fn matmul_uninit<'a>(m: usize, n: usize, k: usize, dst: &'a mut [MaybeUninit<f32>], a: &[f32], b: &[f32]) -> Result<&'a mut [f32]> {
    let holds = |len: usize, rows: usize, cols: usize| rows.checked_mul(cols).is_some_and(|need| len >= need);
    if Some(dst.len()) != m.checked_mul(n)
        || !holds(a.len(), m, k)
        || !holds(b.len(), k, n)
        || k == 0
        || isize::try_from(n).is_err()
        || isize::try_from(k).is_err()
    {
        candle_core::bail!("matmul {m}x{k} . {k}x{n}: buffers of {}, {} and {} values", dst.len(), a.len(), b.len());
    }
    // SAFETY: dst holds exactly m·n values (checked above) addressed as rows of n with unit
    // column stride; a and b hold at least m·k and k·n values with the strides passed. With
    // `read_dst` false, gemm never reads dst and writes each of its m·n values once (k > 0).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr() as *mut f32,
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
        // SAFETY: all m·n values were written by gemm just above.
        Ok(&mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32]))
    }
}

/// Host copies of a layer's parameters, laid out for the channels-last CPU kernels.
#[derive(Debug, Clone)]
pub(super) struct HostParams {
    /// Dense: (k*k*c_in) x c_out, rows ordered (ky, kx, ci). Depthwise: (k*k) x c.
    pub(super) weight: Vec<f32>,
    pub(super) bias: Vec<f32>,
}

/// The CPU kernel: NHWC in, NHWC out, bias and activation fused.
struct ConvNhwc<'a>(&'a ConvAct);

impl CustomOp1 for ConvNhwc<'_> {
    fn name(&self) -> &'static str {
        "conv-nhwc"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        conv_nhwc(self.0, cpu_f32(storage, layout)?, layout, None)
    }
}

/// The CPU kernel with a residual added after the activation (an inverted-residual block's
/// projection and shortcut in one pass over the output, not a separate tensor add).
struct ConvNhwcAdd<'a>(&'a ConvAct);

impl CustomOp2 for ConvNhwcAdd<'_> {
    fn name(&self) -> &'static str {
        "conv-nhwc-add"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        conv_nhwc(self.0, cpu_f32(s1, l1)?, l1, Some((cpu_f32(s2, l2)?, l2.shape())))
    }
}

/// `dst += residual[at..at + dst.len()]` when there is a residual.
fn add_residual(dst: &mut [f32], residual: Option<&[f32]>, at: usize) {
    if let Some(r) = residual {
        let r = &r[at..at + dst.len()];
        for (d, r) in dst.iter_mut().zip(r) {
            *d += r;
        }
    }
}

/// `l` on the NHWC input `x`, plus `residual` (of the output's shape) when given.
fn conv_nhwc(l: &ConvAct, x: &[f32], layout: &Layout, residual: Option<(&[f32], &Shape)>) -> Result<(CpuStorage, Shape)> {
    let (n, h, w, c) = layout.shape().dims4()?;
    let (k, s, pad) = (l.k, l.stride, l.pad);
    if h + pad.top + pad.bottom < k || w + pad.left + pad.right < k || s == 0 {
        candle_core::bail!("a {k}x{k} convolution of stride {s} on a {h}x{w} map padded by {pad:?}");
    }
    let oh = (h + pad.top + pad.bottom - k) / s + 1;
    let ow = (w + pad.left + pad.right - k) / s + 1;
    let c_out = l.c_out;
    let m = n * oh * ow;
    // Source pixel of tap (ky, kx) for output (oy, ox), or None in the padding.
    let src = |oy: usize, ox: usize, ky: usize, kx: usize| -> Option<(usize, usize)> {
        let iy = (oy * s + ky).checked_sub(pad.top)?;
        let ix = (ox * s + kx).checked_sub(pad.left)?;
        (iy < h && ix < w).then_some((iy, ix))
    };
    let want = if l.depthwise { (k * k * c, c) } else { (k * k * c * c_out, c_out) };
    if l.host.weight.len() != want.0 || l.host.bias.len() != want.1 || (l.depthwise && c != c_out) {
        candle_core::bail!(
            "a {k}x{k} convolution to {c_out} channels was given {c} input channels ({} weights, {} biases)",
            l.host.weight.len(),
            l.host.bias.len()
        );
    }
    let residual = match residual {
        None => None,
        Some((r, shape)) if shape.dims() == [n, oh, ow, c_out] && r.len() == m * c_out => Some(r),
        Some((_, shape)) => candle_core::bail!("a residual of shape {shape:?} for a {k}x{k} convolution to ({n}, {oh}, {ow}, {c_out})"),
    };
    if l.depthwise {
        let (wt, bias) = (&l.host.weight, &l.host.bias);
        // Stride 1: each (output row, tap) is one multiply-add over a contiguous run of
        // ow*c values, with the tap's weights tiled along the row.
        let mut tiled: Vec<f32> = Vec::with_capacity(if s == 1 { k * k * ow * c } else { 0 });
        if s == 1 && c > 0 {
            for tap in wt.chunks_exact(c) {
                for _ in 0..ow {
                    tiled.extend_from_slice(tap);
                }
            }
        }
        let g = Geom { h, w, c, ow, k, s, pad };
        // SAFETY: the chunk is zeroed first, so every value is written.
        let out = unsafe {
            par_output(
                m * c_out,
                ow * c,
                || (),
                |_, row, dst| {
                    let (b, oy) = (row / oh, row % oh);
                    let dst = zeroed(dst);
                    depthwise_row(dst, &x[b * h * w * c..(b + 1) * h * w * c], oy, &g, wt, &tiled, bias, &l.act);
                    add_residual(dst, residual, row * ow * c);
                    Ok(())
                },
            )
        }?;
        return Ok((CpuStorage::F32(out), Shape::from((n, oh, ow, c))));
    }
    if c_out == 8 && k * k * c <= 32 {
        let g = Geom { h, w, c, ow, k, s, pad };
        // SAFETY: the chunk is zeroed first, so every value is written.
        let out = unsafe {
            par_output(
                m * c_out,
                ow * 8,
                || (),
                |_, row, dst| {
                    let (b, oy) = (row / oh, row % oh);
                    let dst = zeroed(dst);
                    stem_row(dst, &x[b * h * w * c..(b + 1) * h * w * c], oy, &g, &l.host.weight, &l.host.bias, &l.act);
                    add_residual(dst, residual, row * ow * 8);
                    Ok(())
                },
            )
        }?;
        return Ok((CpuStorage::F32(out), Shape::from((n, oh, ow, c_out))));
    }
    // Winograd from 2x2 outputs up (a smaller map has no tile to share)
    if let Some(u) = l.wino.as_ref().filter(|_| oh * ow >= 4) {
        let shape = super::winograd::Shape { n, h, w, c, c_out, pad };
        let (out, oh, ow) = super::winograd::conv(x, &shape, u, |dst, at| {
            bias_act(dst, c_out, Some(&l.host.bias), &l.act);
            add_residual(dst, residual, at);
        })?;
        return Ok((CpuStorage::F32(out), Shape::from((n, oh, ow, c_out))));
    }
    // Dense: tiles of output pixels in parallel; each tile gathers its im2col rows (none
    // for 1x1) into a small, cache-resident buffer, runs one single-threaded GEMM into its
    // slice of the output, then bias + activation while the tile is still in cache.
    let kk = k * k * c;
    let direct = k == 1 && s == 1 && pad == Pad::same(0);
    let tile = (TILE_VALUES / kk.max(c_out)).clamp(16, 1024);
    // SAFETY: every path of the closure ends in `matmul_uninit`, which writes the whole chunk, or returns an error.
    let out = unsafe {
        par_output(m * c_out, tile * c_out, Vec::new, |cols: &mut Vec<f32>, ti, dst| -> Result<()> {
            let (r0, rows) = (ti * tile, dst.len() / c_out);
            let lhs: &[f32] = if direct {
                &x[r0 * c..(r0 + rows) * c]
            } else {
                cols.resize(rows * kk, 0.0);
                for (i, crow) in cols.chunks_exact_mut(kk).enumerate() {
                    let r = r0 + i;
                    let (b, rem) = (r / (oh * ow), r % (oh * ow));
                    let (oy, ox) = (rem / ow, rem % ow);
                    let inside = (oy * s).checked_sub(pad.top).is_some_and(|iy| iy + k <= h)
                        && (ox * s).checked_sub(pad.left).is_some_and(|ix| ix + k <= w);
                    if !inside {
                        crow.fill(0.0);
                    }
                    for ky in 0..k {
                        let Some(iy) = (oy * s + ky).checked_sub(pad.top).filter(|iy| *iy < h) else { continue };
                        let row = &x[(b * h + iy) * w * c..(b * h + iy + 1) * w * c];
                        let d = &mut crow[ky * k * c..(ky + 1) * k * c];
                        match (ox * s).checked_sub(pad.left) {
                            // all k taps of this kernel row are inside: one contiguous run
                            Some(ix0) if ix0 + k <= w => copy_small(d, &row[ix0 * c..(ix0 + k) * c]),
                            _ => {
                                for kx in 0..k {
                                    if let Some((_, ix)) = src(oy, ox, ky, kx) {
                                        copy_small(&mut d[kx * c..(kx + 1) * c], &row[ix * c..(ix + 1) * c]);
                                    }
                                }
                            }
                        }
                    }
                }
                cols
            };
            let dst = matmul_uninit(rows, c_out, kk, dst, lhs, &l.host.weight)?;
            bias_act(dst, c_out, Some(&l.host.bias), &l.act);
            add_residual(dst, residual, r0 * c_out);
            Ok(())
        })
    }?;
    Ok((CpuStorage::F32(out), Shape::from((n, oh, ow, c_out))))
}

/// A convolution with bias and activation: dense (groups = 1) or depthwise (groups = channels).
#[derive(Debug, Clone)]
pub struct ConvAct {
    weight: Tensor,
    bias: Tensor,
    pub(super) act: Activation,
    pub(super) k: usize,
    pub(super) stride: usize,
    pub(super) pad: Pad,
    pub(super) depthwise: bool,
    pub(super) c_out: usize,
    pub(super) host: HostParams,
    /// Winograd-transformed filters of a stride-1 3×3 dense layer from 32 channels up.
    wino: Option<std::sync::Arc<Vec<f32>>>,
}

/// The Winograd filters of a layer that takes that path (see [`super::winograd`]).
fn winograd_filters(weight: &Tensor, spec_k: usize, stride: usize, depthwise: bool) -> Result<Option<std::sync::Arc<Vec<f32>>>> {
    let (c_out, c_in) = (weight.dim(0)?, weight.dim(1)?);
    // only the CPU kernels use them
    if spec_k != 3 || stride != 1 || depthwise || c_in < 32 || !weight.device().is_cpu() {
        return Ok(None);
    }
    let w: Vec<f32> = weight.flatten_all()?.to_vec1()?;
    Ok(Some(std::sync::Arc::new(super::winograd::filters(&w, c_in, c_out))))
}

/// How a convolution layer is shaped; `pad` is applied before the kernel.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: Pad,
    pub depthwise: bool,
}

impl ConvSpec {
    pub const fn dense(c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize) -> Self {
        Self { c_in, c_out, k, stride, pad: Pad::same(pad), depthwise: false }
    }
    pub const fn depthwise(c: usize, k: usize, stride: usize, pad: usize) -> Self {
        Self { c_in: c, c_out: c, k, stride, pad: Pad::same(pad), depthwise: true }
    }
    pub const fn with_pad(mut self, pad: Pad) -> Self {
        self.pad = pad;
        self
    }
}

/// How the activation of a layer is chosen at load time.
#[derive(Debug, Clone, Copy)]
pub enum ActKind {
    Linear,
    Relu,
    Leaky(f32),
    /// Per-channel slopes read from `<layer>.alpha`.
    PRelu,
}

impl ConvAct {
    /// Loads `<prefix>.weight` (OIHW), `<prefix>.bias` and, for PReLU, `<prefix>.alpha`.
    pub fn load(vb: VarBuilder, spec: ConvSpec, act: ActKind) -> Result<Self> {
        let w_in = if spec.depthwise { 1 } else { spec.c_in };
        let weight = vb.get((spec.c_out, w_in, spec.k, spec.k), "weight")?;
        let bias = vb.get(spec.c_out, "bias")?;
        let act = match act {
            ActKind::Linear => Activation::Linear,
            ActKind::Relu => Activation::Relu,
            ActKind::Leaky(a) => Activation::Leaky(a),
            ActKind::PRelu => Activation::PRelu(vb.get(spec.c_out, "alpha")?.to_vec1()?),
        };
        Self::new(weight, bias, spec, act)
    }

    /// A layer from its weight (OIHW; depthwise (C, 1, k, k)), bias and activation, checked
    /// against `spec`.
    pub fn new(weight: Tensor, bias: Tensor, spec: ConvSpec, act: Activation) -> Result<Self> {
        let w_in = if spec.depthwise { 1 } else { spec.c_in };
        if weight.dims() != [spec.c_out, w_in, spec.k, spec.k] || bias.dims() != [spec.c_out] || !act.fits(spec.c_out) {
            candle_core::bail!(
                "a {k}x{k} convolution {ci} -> {co} was given weights {:?}, bias {:?} and an activation for other channels",
                weight.dims(),
                bias.dims(),
                k = spec.k,
                ci = spec.c_in,
                co = spec.c_out
            );
        }
        // OIHW -> (ky, kx, i) x O for the GEMM; depthwise (C,1,k,k) -> (ky, kx) x C.
        let host_w = weight.permute((2, 3, 1, 0))?.contiguous()?.flatten_all()?.to_vec1()?;
        let host = HostParams { weight: host_w, bias: bias.to_vec1()? };
        let wino = winograd_filters(&weight, spec.k, spec.stride, spec.depthwise)?;
        Ok(Self {
            weight,
            bias,
            act,
            k: spec.k,
            stride: spec.stride,
            pad: spec.pad,
            depthwise: spec.depthwise,
            c_out: spec.c_out,
            host,
            wino,
        })
    }

    /// Several convolutions of the same input, run as one (their outputs concatenated along
    /// channels): one im2col and one wider GEMM instead of several.
    pub fn fuse(parts: &[ConvAct]) -> Result<Self> {
        let first = &parts[0];
        if parts.iter().any(|p| p.k != first.k || p.stride != first.stride || p.pad != first.pad || p.depthwise) {
            candle_core::bail!("only dense convolutions of the same geometry can be fused");
        }
        let weight = Tensor::cat(&parts.iter().map(|p| p.weight.clone()).collect::<Vec<_>>(), 0)?;
        let bias = Tensor::cat(&parts.iter().map(|p| p.bias.clone()).collect::<Vec<_>>(), 0)?;
        // Every activation here is a PReLU with some slope: 1 linear, 0 ReLU, a leaky.
        let slopes = parts
            .iter()
            .flat_map(|p| match &p.act {
                Activation::Linear => vec![1.0; p.c_out],
                Activation::Relu => vec![0.0; p.c_out],
                Activation::Leaky(a) => vec![*a; p.c_out],
                Activation::PRelu(v) => v.clone(),
            })
            .collect();
        let act = if parts.iter().all(|p| matches!(p.act, Activation::Linear)) { Activation::Linear } else { Activation::PRelu(slopes) };
        let host_w = weight.permute((2, 3, 1, 0))?.contiguous()?.flatten_all()?.to_vec1()?;
        Ok(Self {
            c_out: weight.dim(0)?,
            wino: winograd_filters(&weight, first.k, first.stride, false)?,
            host: HostParams { weight: host_w, bias: bias.to_vec1()? },
            weight,
            bias,
            act,
            k: first.k,
            stride: first.stride,
            pad: first.pad,
            depthwise: false,
        })
    }

    /// NCHW path built from candle ops (used on CUDA/Metal): candle's convolution for dense
    /// layers, and for depthwise ones the shifted-view kernel of [`crate::nets::layers`]
    /// (candle would run one convolution per channel).
    fn forward_generic(&self, x: &Tensor) -> Result<Tensor> {
        let y = if self.depthwise {
            crate::nets::layers::depthwise_conv2d(x, &self.weight, self.stride, self.pad)?
        } else {
            let Pad { top, left, bottom, right } = self.pad;
            let sym = top == bottom && left == right && top == left;
            let (x, p) = if sym { (x.clone(), top) } else { (x.pad_with_zeros(2, top, bottom)?.pad_with_zeros(3, left, right)?, 0) };
            x.conv2d(&self.weight, p, self.stride, 1, 1)?
        };
        let y = y.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)?;
        self.act.forward_generic(&y)
    }
}

impl ConvAct {
    /// `forward(x) + residual`, the add fused into the CPU kernel (the residual must have the
    /// output's shape; a dense layer's).
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        if channels_last(x.device()) && x.dtype() == DType::F32 {
            x.contiguous()?.apply_op2_no_bwd(&residual.contiguous()?, &ConvNhwcAdd(self))
        } else {
            self.forward_generic(x)? + residual
        }
    }
}

impl Module for ConvAct {
    /// Input and output in the device's layout (see [`channels_last`]).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if channels_last(x.device()) && x.dtype() == DType::F32 {
            x.contiguous()?.apply_op1_no_bwd(&ConvNhwc(self))
        } else {
            self.forward_generic(x)
        }
    }
}

#[cfg(test)]
#[path = "ops_tests.rs"]
pub(crate) mod tests;
