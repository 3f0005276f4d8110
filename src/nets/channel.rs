//! Per-channel operations on NCHW (or (N, C)) tensors for training: an affine map
//! `x * scale[c] + shift[c]`, PReLU, and sums over every dimension but the channel.
//!
//! candle differentiates a broadcast by summing the gradient over the broadcast dimensions;
//! on the CPU a sum over dimensions (0, 2, 3) takes its slow, single-threaded per-element path,
//! and a training step spent most of its time there. On the CPU these are custom ops whose
//! backward passes reduce each contiguous plane first (the fast path); on CUDA and Metal they
//! are the plain broadcast ops.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

fn use_cpu_op(x: &Tensor) -> bool {
    crate::kernels::channels_last(x.device()) && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// (N, C, rest) of a tensor whose channel dimension is 1.
fn ncr(x: &Tensor) -> Result<(usize, usize, usize)> {
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    Ok((n, c, x.elem_count() / (n * c).max(1)))
}

fn channel_shape(x: &Tensor, c: usize) -> Vec<usize> {
    let mut shape = vec![1; x.rank()];
    shape[1] = c;
    shape
}

/// Sum over every dimension but 1: (N, C, ...) -> (C).
pub fn channel_sum(x: &Tensor) -> Result<Tensor> {
    let (n, c, r) = ncr(x)?;
    x.contiguous()?.reshape((n, c, r))?.sum(2)?.sum(0)
}

/// `x * scale[c] + shift[c]`; `scale` and `shift` have C elements.
pub fn affine(x: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    if use_cpu_op(x) && scale.dtype() == x.dtype() && shift.dtype() == x.dtype() {
        return x.contiguous()?.apply_op3(&scale.contiguous()?, &shift.contiguous()?, Affine);
    }
    let shape = channel_shape(x, scale.elem_count());
    x.broadcast_mul(&scale.reshape(shape.clone())?)?.broadcast_add(&shift.reshape(shape)?)
}

/// PReLU with C slopes (or one shared slope).
pub fn prelu(x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    if use_cpu_op(x) && alpha.dtype() == x.dtype() {
        return x.contiguous()?.apply_op2(&alpha.contiguous()?, PRelu);
    }
    let shape = channel_shape(x, alpha.elem_count());
    x.relu()? + x.minimum(0f32)?.broadcast_mul(&alpha.reshape(shape)?)?
}

trait Elem: candle_core::WithDType + Send + Sync {}
impl Elem for f32 {}
impl Elem for f64 {}

/// The contiguous data of a CPU storage (shared by the CPU custom ops of `nets`).
pub(crate) fn slice<'a, T: candle_core::WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("facefind CPU op needs contiguous inputs"),
    }
}

/// The slope of channel `ch` (one shared slope when there is one value).
#[inline]
fn at<T: Copy>(v: &[T], ch: usize) -> T {
    if v.len() == 1 {
        v[0]
    } else {
        v[ch]
    }
}

struct Affine;

fn affine_fwd<T: Elem>(x: &[T], s: &[T], b: &[T], c: usize, r: usize) -> Vec<T> {
    let mut y = vec![T::zero(); x.len()];
    y.par_chunks_mut(r.max(1)).zip(x.par_chunks(r.max(1))).enumerate().for_each(|(i, (yp, xp))| {
        let (sv, bv) = (at(s, i % c), at(b, i % c));
        for (o, v) in yp.iter_mut().zip(xp) {
            *o = *v * sv + bv;
        }
    });
    y
}

impl CustomOp3 for Affine {
    fn name(&self) -> &'static str {
        "facefind-channel-affine"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = l1.shape().dims();
        let (n, c) = (dims[0], dims[1]);
        let r = l1.shape().elem_count() / (n * c).max(1);
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(affine_fwd(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, c, r))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(affine_fwd(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, c, r))
            }
            _ => candle_core::bail!("channel affine: f32 or f64 inputs of one type"),
        };
        Ok((out, l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        shift: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dx = dy.apply_op3_no_bwd(scale, &shift.zeros_like()?, &Affine)?;
        let dscale = channel_sum(&(&dy * x.detach())?)?.reshape(scale.shape())?;
        let dshift = channel_sum(&dy)?.reshape(shift.shape())?;
        Ok((Some(dx), Some(dscale), Some(dshift)))
    }
}

struct PRelu;

fn prelu_fwd<T: Elem>(x: &[T], a: &[T], c: usize, r: usize) -> Vec<T> {
    let mut y = vec![T::zero(); x.len()];
    y.par_chunks_mut(r.max(1)).zip(x.par_chunks(r.max(1))).enumerate().for_each(|(i, (yp, xp))| {
        let av = at(a, i % c);
        for (o, v) in yp.iter_mut().zip(xp) {
            *o = if *v > T::zero() { *v } else { av * *v };
        }
    });
    y
}

impl CustomOp2 for PRelu {
    fn name(&self) -> &'static str {
        "facefind-prelu"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l1.shape().dims();
        let (n, c) = (dims[0], dims[1]);
        let r = l1.shape().elem_count() / (n * c).max(1);
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(prelu_fwd(slice(s1, l1)?, slice(s2, l2)?, c, r)),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(prelu_fwd(slice(s1, l1)?, slice(s2, l2)?, c, r)),
            _ => candle_core::bail!("prelu: f32 or f64 inputs of one type"),
        };
        Ok((out, l1.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, alpha: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let x = x.detach();
        let dx = dy.apply_op3_no_bwd(&x, alpha, &PReluGradInput)?;
        let neg = x.minimum(0.0)?;
        let per_channel = channel_sum(&(&dy * neg)?)?;
        let dalpha =
            if alpha.elem_count() == 1 { per_channel.sum_all()?.reshape(alpha.shape())? } else { per_channel.reshape(alpha.shape())? };
        Ok((Some(dx), Some(dalpha)))
    }
}

/// (dy, x, alpha) -> dy where x > 0, alpha * dy elsewhere.
struct PReluGradInput;

fn prelu_dx<T: Elem>(dy: &[T], x: &[T], a: &[T], c: usize, r: usize) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(r.max(1)).zip(dy.par_chunks(r.max(1)).zip(x.par_chunks(r.max(1)))).enumerate().for_each(|(i, (op, (gp, xp)))| {
        let av = at(a, i % c);
        for ((o, g), v) in op.iter_mut().zip(gp).zip(xp) {
            *o = if *v > T::zero() { *g } else { av * *g };
        }
    });
    out
}

impl CustomOp3 for PReluGradInput {
    fn name(&self) -> &'static str {
        "facefind-prelu-grad"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = l2.shape().dims();
        let (n, c) = (dims[0], dims[1]);
        let r = l2.shape().elem_count() / (n * c).max(1);
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(prelu_dx(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, c, r))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(prelu_dx(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, c, r))
            }
            _ => candle_core::bail!("prelu grad: f32 or f64 inputs of one type"),
        };
        Ok((out, l2.shape().clone()))
    }
}

/// Batch norm in training mode, fused: `y = (x - mean[c]) / sqrt(var[c] + eps) * w[c] + b[c]`
/// with the batch's per-channel mean and biased variance. Returns (y, mean, var); mean and var
/// are detached (for the running statistics). See [`batch_norm_act_train`].
pub fn batch_norm_train(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    batch_norm_act_train(x, w, b, None, eps)
}

/// Batch norm in training mode followed by an optional PReLU with slopes `alpha` (C values or
/// one shared): returns (prelu(bn(x)), mean, var), mean and var detached.
///
/// On the CPU this is one custom op: the forward reads `x` three times (two for the statistics)
/// and writes only the activation; the backward recomputes the batch-norm output from `x` and
/// the statistics kept from the forward, and needs two passes over (x, dy) for dx, dw, db and
/// dalpha together. The composed form (batch norm, then PReLU, each its own node) makes autograd
/// store, zero and accumulate a gradient for every intermediate map, a dozen passes over
/// tensors of up to 100 MB at batch 64. CUDA and Metal run the composed form.
pub fn batch_norm_act_train(x: &Tensor, w: &Tensor, b: &Tensor, alpha: Option<&Tensor>, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    let (_, c, _) = ncr(x)?;
    let same = |t: &Tensor| t.dtype() == x.dtype();
    if use_cpu_op(x) && same(w) && same(b) && alpha.is_none_or(same) {
        if w.elem_count() != c || b.elem_count() != c {
            candle_core::bail!("batch norm: {c} channels but {} weights and {} biases", w.elem_count(), b.elem_count());
        }
        let alpha_len = alpha.map_or(0, |a| a.elem_count());
        if alpha_len > 1 && alpha_len != c {
            candle_core::bail!("prelu: {c} channels but {alpha_len} slopes");
        }
        let mut parts = vec![w.flatten_all()?, b.flatten_all()?];
        if let Some(a) = alpha {
            parts.push(a.flatten_all()?);
        }
        let params = Tensor::cat(&parts, 0)?;
        let stats = Arc::new(Mutex::new(Vec::new()));
        let op = BnAct { eps, alpha_len, stats: stats.clone() };
        let y = x.contiguous()?.apply_op2(&params, op)?;
        let st = stats.lock().map_err(|_| candle_core::Error::Msg("batch norm statistics lock poisoned".into()))?.clone();
        if st.len() != 2 * c {
            candle_core::bail!("batch norm: the forward kept no statistics");
        }
        let mean = Tensor::from_vec(st[..c].to_vec(), c, x.device())?.to_dtype(x.dtype())?;
        let var = Tensor::from_vec(st[c..].to_vec(), c, x.device())?.to_dtype(x.dtype())?;
        return Ok((y, mean, var));
    }
    let (mean, var) = batch_stats(x)?;
    let scale = (&var + eps)?.sqrt()?.recip()?.mul(w)?;
    let y = affine(x, &scale, &(b - mean.mul(&scale)?)?)?;
    let y = match alpha {
        Some(a) => prelu(&y, a)?,
        None => y,
    };
    Ok((y, mean.detach(), var.detach()))
}

/// Per-channel mean and biased variance over every dimension but 1, each (C).
pub fn batch_stats(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let count = (x.elem_count() / x.dim(1)?) as f64;
    let mean = (channel_sum(x)? / count)?;
    let centred = affine(x, &mean.ones_like()?, &mean.neg()?)?;
    let var = (channel_sum(&centred.sqr()?)? / count)?;
    Ok((mean, var))
}

/// The fused batch norm (+ PReLU) op: inputs x and params = [w; b; alpha] (alpha absent,
/// one value or C values). The forward stores the batch statistics (mean, var; f64) for the
/// caller's running statistics and for the backward.
struct BnAct {
    eps: f64,
    alpha_len: usize,
    stats: Arc<Mutex<Vec<f64>>>,
}

/// Lanes of the plane kernels' sums: a float sum the compiler may not reorder cannot vectorise,
/// so each kernel keeps `L` partial sums (in `T`; a plane's sums are combined in f64).
const L: usize = 16;

/// The f64 sum of `L` lane sums and a tail.
#[inline(always)]
fn lanes_total<T: Elem>(lanes: &[T; L], tail: f64) -> f64 {
    lanes.iter().map(|v| v.to_f64()).sum::<f64>() + tail
}

crate::kernels::multiversion! {
    /// A plane's mean and sum of squared deviations from it.
    fn plane_moments<T: Elem>(p: &[T]) -> (f64, f64) {
        let (chunks, tail) = p.as_chunks::<L>();
        let mut acc = [T::zero(); L];
        for c in chunks {
            for j in 0..L {
                acc[j] += c[j];
            }
        }
        let mean = lanes_total(&acc, tail.iter().map(|v| v.to_f64()).sum()) / p.len().max(1) as f64;
        let m = T::from_f64(mean);
        let mut acc = [T::zero(); L];
        for c in chunks {
            for j in 0..L {
                acc[j] += (c[j] - m) * (c[j] - m);
            }
        }
        (mean, lanes_total(&acc, tail.iter().map(|v| (v.to_f64() - mean).powi(2)).sum()))
    }
}

/// Per-channel mean and biased variance of (N, C, R) data: per-plane moments combined per
/// channel (Chan et al.), in f64.
fn bn_stats<T: Elem>(x: &[T], n: usize, c: usize, r: usize) -> (Vec<f64>, Vec<f64>) {
    let planes: Vec<(f64, f64)> = x.par_chunks(r.max(1)).map(plane_moments).collect();
    let count = (n * r).max(1) as f64;
    let mut mean = vec![0f64; c];
    let mut var = vec![0f64; c];
    for ch in 0..c {
        mean[ch] = (0..n).map(|i| planes[i * c + ch].0).sum::<f64>() / n.max(1) as f64;
        var[ch] = (0..n).map(|i| planes[i * c + ch].1 + r as f64 * (planes[i * c + ch].0 - mean[ch]).powi(2)).sum::<f64>() / count;
    }
    (mean, var)
}

/// Channel `ch`'s batch-norm map `x * s + t` and PReLU slope (1 without PReLU), in `T`.
#[derive(Clone, Copy)]
struct ChannelMap<T> {
    s: T,
    t: T,
    a: T,
}

/// The per-channel maps of batch norm with statistics (mean, var) and params [w; b; alpha].
fn channel_maps<T: Elem>(params: &[T], mean: &[f64], var: &[f64], c: usize, alpha_len: usize, eps: f64) -> Vec<ChannelMap<T>> {
    (0..c)
        .map(|ch| {
            let scale = params[ch].to_f64() / (var[ch] + eps).sqrt();
            let a = match alpha_len {
                0 => T::from_f64(1.0),
                1 => params[2 * c],
                _ => params[2 * c + ch],
            };
            ChannelMap { s: T::from_f64(scale), t: T::from_f64(params[c + ch].to_f64() - mean[ch] * scale), a }
        })
        .collect()
}

crate::kernels::multiversion! {
    /// y = x·s + t, then PReLU with slope a when `prelu`, one plane.
    fn bn_act_plane<T: Elem>(xp: &[T], yp: &mut [T], m: ChannelMap<T>, prelu: bool) {
        if prelu {
            for (o, v) in yp.iter_mut().zip(xp) {
                let u = *v * m.s + m.t;
                *o = if u > T::zero() { u } else { m.a * u };
            }
        } else {
            for (o, v) in yp.iter_mut().zip(xp) {
                *o = *v * m.s + m.t;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn bn_act_fwd<T: Elem>(
    x: &[T],
    params: &[T],
    n: usize,
    c: usize,
    r: usize,
    alpha_len: usize,
    eps: f64,
    stats: &Mutex<Vec<f64>>,
) -> Result<Vec<T>> {
    let (mean, var) = bn_stats(x, n, c, r);
    let maps = channel_maps(params, &mean, &var, c, alpha_len, eps);
    let mut y = vec![T::zero(); x.len()];
    y.par_chunks_mut(r.max(1))
        .zip(x.par_chunks(r.max(1)))
        .enumerate()
        .for_each(|(i, (yp, xp))| bn_act_plane(xp, yp, maps[i % c], alpha_len > 0));
    let mut st = stats.lock().map_err(|_| candle_core::Error::Msg("batch norm statistics lock poisoned".into()))?;
    *st = mean.into_iter().chain(var).collect();
    Ok(y)
}

crate::kernels::multiversion! {
    /// One plane's Σg, Σg·(x − mu) and Σdy·min(u, 0), with u = x·s + t and g = dy·(u > 0 ? 1 : a)
    /// (g = dy without PReLU).
    fn bn_act_plane_sums<T: Elem>(xp: &[T], gp: &[T], m: ChannelMap<T>, mu: T, prelu: bool) -> (f64, f64, f64) {
        let n = xp.len().min(gp.len());
        let ((xc, xt), (gc, gt)) = (xp[..n].as_chunks::<L>(), gp[..n].as_chunks::<L>());
        // branch-free: the select of g (and of min(u, 0)) vectorises
        let one = |v: T, g: T| -> (T, T, T) {
            let u = v * m.s + m.t;
            let pos = !prelu || u > T::zero();
            let gu = if pos { g } else { m.a * g };
            (gu, gu * (v - mu), if pos { T::zero() } else { g * u })
        };
        let (mut s, mut sx, mut sa) = ([T::zero(); L], [T::zero(); L], [T::zero(); L]);
        for (xs, gs) in xc.iter().zip(gc) {
            for j in 0..L {
                let (a, b, c) = one(xs[j], gs[j]);
                s[j] += a;
                sx[j] += b;
                sa[j] += c;
            }
        }
        let (mut ts, mut tsx, mut tsa) = (0f64, 0f64, 0f64);
        for (v, g) in xt.iter().zip(gt) {
            let (a, b, c) = one(*v, *g);
            (ts, tsx, tsa) = (ts + a.to_f64(), tsx + b.to_f64(), tsa + c.to_f64());
        }
        (lanes_total(&s, ts), lanes_total(&sx, tsx), lanes_total(&sa, tsa))
    }
}

crate::kernels::multiversion! {
    /// dx = k0·g − k1·x + k2 for one plane, g as in [`bn_act_plane_sums`].
    fn bn_act_plane_dx<T: Elem>(dp: &mut [T], xp: &[T], gp: &[T], m: ChannelMap<T>, prelu: bool, k: [T; 3]) {
        let [k0, k1, k2] = k;
        if prelu {
            for (o, (v, g)) in dp.iter_mut().zip(xp.iter().zip(gp)) {
                let u = *v * m.s + m.t;
                let gu = if u > T::zero() { *g } else { m.a * *g };
                *o = k0 * gu - k1 * *v + k2;
            }
        } else {
            for (o, (v, g)) in dp.iter_mut().zip(xp.iter().zip(gp)) {
                *o = k0 * *g - k1 * *v + k2;
            }
        }
    }
}

/// (dx, dparams) of batch norm (+ PReLU) in training mode, packed as [dx; dw; db; dalpha].
/// With u = x·s + t the batch-norm output and g = dy·(u > 0 ? 1 : a) its gradient:
/// dalpha = Σ dy·min(u, 0), db = Σg, dw = inv·Σ g·(x − mean),
/// dx = k·g − k/M·Σg − k/M·x̂·Σ(g·x̂) with k = w·inv and x̂ = (x − mean)·inv.
#[allow(clippy::too_many_arguments)]
fn bn_act_bwd<T: Elem>(
    x: &[T],
    dy: &[T],
    params: &[T],
    mean: &[f64],
    var: &[f64],
    n: usize,
    c: usize,
    r: usize,
    alpha_len: usize,
    eps: f64,
) -> Vec<T> {
    let maps = channel_maps(params, mean, var, c, alpha_len, eps);
    let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    // Per plane: Σg, Σg·(x − mean), Σdy·min(u, 0).
    let planes: Vec<(f64, f64, f64)> = x
        .par_chunks(r.max(1))
        .zip(dy.par_chunks(r.max(1)))
        .enumerate()
        .map(|(i, (xp, gp))| bn_act_plane_sums(xp, gp, maps[i % c], T::from_f64(mean[i % c]), alpha_len > 0))
        .collect();
    let count = (n * r).max(1) as f64;
    let (mut sum_g, mut sum_g_xhat, mut sum_a) = (vec![0f64; c], vec![0f64; c], vec![0f64; c]);
    for ch in 0..c {
        sum_g[ch] = (0..n).map(|i| planes[i * c + ch].0).sum();
        sum_g_xhat[ch] = (0..n).map(|i| planes[i * c + ch].1).sum::<f64>() * inv[ch];
        sum_a[ch] = (0..n).map(|i| planes[i * c + ch].2).sum();
    }
    let mut out = vec![T::zero(); x.len() + 2 * c + alpha_len];
    let (dx, rest) = out.split_at_mut(x.len());
    dx.par_chunks_mut(r.max(1)).zip(x.par_chunks(r.max(1)).zip(dy.par_chunks(r.max(1)))).enumerate().for_each(|(i, (dp, (xp, gp)))| {
        let ch = i % c;
        let m = &maps[ch];
        let k = params[ch].to_f64() * inv[ch];
        // dx = k·g − k/M·Σg − k/M·x̂·Σ(g·x̂), with x̂ = (x − mean)·inv
        let a = T::from_f64(k);
        let bcoef = T::from_f64(k * inv[ch] * sum_g_xhat[ch] / count);
        let c0 = T::from_f64(-k * sum_g[ch] / count + k * inv[ch] * sum_g_xhat[ch] * mean[ch] / count);
        bn_act_plane_dx(dp, xp, gp, *m, alpha_len > 0, [a, bcoef, c0]);
    });
    for ch in 0..c {
        rest[ch] = T::from_f64(sum_g_xhat[ch]);
        rest[c + ch] = T::from_f64(sum_g[ch]);
    }
    match alpha_len {
        0 => {}
        1 => rest[2 * c] = T::from_f64(sum_a.iter().sum()),
        _ => {
            for ch in 0..c {
                rest[2 * c + ch] = T::from_f64(sum_a[ch]);
            }
        }
    }
    out
}

fn dims_ncr(l: &Layout) -> (usize, usize, usize) {
    let dims = l.shape().dims();
    let (n, c) = (dims[0], dims[1]);
    (n, c, l.shape().elem_count() / (n * c).max(1))
}

impl BnAct {
    fn check(&self, c: usize, params: usize) -> Result<()> {
        if params != 2 * c + self.alpha_len {
            candle_core::bail!("batch norm: {c} channels but {params} parameters (alpha {})", self.alpha_len);
        }
        Ok(())
    }
}

impl CustomOp2 for BnAct {
    fn name(&self) -> &'static str {
        "facefind-batch-norm-act-train"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, r) = dims_ncr(l1);
        self.check(c, l2.shape().elem_count())?;
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(bn_act_fwd(slice(s1, l1)?, slice(s2, l2)?, n, c, r, self.alpha_len, self.eps, &self.stats)?)
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(bn_act_fwd(slice(s1, l1)?, slice(s2, l2)?, n, c, r, self.alpha_len, self.eps, &self.stats)?)
            }
            _ => candle_core::bail!("batch norm: f32 or f64 inputs of one type"),
        };
        Ok((out, l1.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, params: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (len, np) = (x.elem_count(), params.elem_count());
        let stats = self.stats.lock().map_err(|_| candle_core::Error::Msg("batch norm statistics lock poisoned".into()))?.clone();
        let grad = BnActGrad { eps: self.eps, alpha_len: self.alpha_len, stats };
        let packed = x.detach().apply_op3_no_bwd(&dy.contiguous()?, &params.detach(), &grad)?;
        let dx = packed.narrow(0, 0, len)?.reshape(x.shape())?;
        let dparams = packed.narrow(0, len, np)?;
        Ok((Some(dx), Some(dparams)))
    }
}

/// (x, dy, params) -> [dx; dw; db; dalpha] with the forward's statistics.
struct BnActGrad {
    eps: f64,
    alpha_len: usize,
    stats: Vec<f64>,
}

impl CustomOp3 for BnActGrad {
    fn name(&self) -> &'static str {
        "facefind-batch-norm-act-train-grad"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, r) = dims_ncr(l1);
        if l2.shape() != l1.shape() || l3.shape().elem_count() != 2 * c + self.alpha_len || self.stats.len() != 2 * c {
            candle_core::bail!(
                "batch norm gradient: shapes {:?} {:?} {:?}, {} statistics",
                l1.shape(),
                l2.shape(),
                l3.shape(),
                self.stats.len()
            );
        }
        let (mean, var) = self.stats.split_at(c);
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(bn_act_bwd(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, mean, var, n, c, r, self.alpha_len, self.eps))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(bn_act_bwd(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, mean, var, n, c, r, self.alpha_len, self.eps))
            }
            _ => candle_core::bail!("batch norm gradient: f32 or f64 inputs of one type"),
        };
        Ok((out, Shape::from(n * c * r + 2 * c + self.alpha_len)))
    }
}
