//! Per-channel operations on NCHW (or (N, C)) tensors for training: an affine map
//! `x * scale[c] + shift[c]`, PReLU, and sums over every dimension but the channel.
//!
//! candle differentiates a broadcast by summing the gradient over the broadcast dimensions;
//! on the CPU a sum over dimensions (0, 2, 3) takes its slow, single-threaded per-element path,
//! and a training step spent most of its time there. On the CPU these are custom ops whose
//! backward passes reduce each contiguous plane first (the fast path); on CUDA and Metal they
//! are the plain broadcast ops.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

fn use_cpu_op(x: &Tensor) -> bool {
    crate::pipeline::ops::channels_last(x.device()) && matches!(x.dtype(), DType::F32 | DType::F64)
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
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l1.shape().dims();
        let (n, c) = (dims[0], dims[1]);
        let r = l1.shape().elem_count() / (n * c).max(1);
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(affine_fwd(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, c, r)),
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(affine_fwd(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, c, r)),
            _ => candle_core::bail!("channel affine: f32 or f64 inputs of one type"),
        };
        Ok((out, l1.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, scale: &Tensor, shift: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
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
        let dalpha = if alpha.elem_count() == 1 { per_channel.sum_all()?.reshape(alpha.shape())? } else { per_channel.reshape(alpha.shape())? };
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
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l2.shape().dims();
        let (n, c) = (dims[0], dims[1]);
        let r = l2.shape().elem_count() / (n * c).max(1);
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(prelu_dx(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, c, r)),
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(prelu_dx(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, c, r)),
            _ => candle_core::bail!("prelu grad: f32 or f64 inputs of one type"),
        };
        Ok((out, l2.shape().clone()))
    }
}

/// Batch norm in training mode, fused: `y = (x - mean[c]) / sqrt(var[c] + eps) * w[c] + b[c]`
/// with the batch's per-channel mean and biased variance. Returns (y, mean, var); mean and var
/// are detached (for the running statistics). On the CPU one custom op does the forward in two
/// passes over `x` and the backward in closed form in three, instead of the dozen elementwise
/// passes autograd makes of the formula.
pub fn batch_norm_train(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    let (n, c, r) = ncr(x)?;
    if use_cpu_op(x) && w.dtype() == x.dtype() && b.dtype() == x.dtype() {
        let packed = x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, BnTrain { eps })?;
        let len = n * c * r;
        let y = packed.narrow(0, 0, len)?.reshape(x.shape())?;
        let mean = packed.narrow(0, len, c)?.detach();
        let var = packed.narrow(0, len + c, c)?.detach();
        return Ok((y, mean, var));
    }
    let (mean, var) = batch_stats(x)?;
    let scale = (&var + eps)?.sqrt()?.recip()?.mul(w)?;
    let y = affine(x, &scale, &(b - mean.mul(&scale)?)?)?;
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

struct BnTrain {
    eps: f64,
}

/// Per-channel mean and biased variance of (N, C, R) data: per-plane sums combined per channel
/// (Chan et al.), in f64.
fn bn_stats<T: Elem>(x: &[T], n: usize, c: usize, r: usize) -> (Vec<f64>, Vec<f64>) {
    let planes: Vec<(f64, f64)> = x
        .par_chunks(r.max(1))
        .map(|p| {
            let m = p.iter().map(|v| v.to_f64()).sum::<f64>() / r.max(1) as f64;
            (m, p.iter().map(|v| (v.to_f64() - m).powi(2)).sum::<f64>())
        })
        .collect();
    let count = (n * r).max(1) as f64;
    let mut mean = vec![0f64; c];
    let mut var = vec![0f64; c];
    for ch in 0..c {
        mean[ch] = (0..n).map(|i| planes[i * c + ch].0).sum::<f64>() / n.max(1) as f64;
        var[ch] = (0..n).map(|i| planes[i * c + ch].1 + r as f64 * (planes[i * c + ch].0 - mean[ch]).powi(2)).sum::<f64>() / count;
    }
    (mean, var)
}

fn bn_fwd<T: Elem>(x: &[T], w: &[T], b: &[T], n: usize, c: usize, r: usize, eps: f64) -> Vec<T> {
    let (mean, var) = bn_stats(x, n, c, r);
    let mut out = vec![T::zero(); x.len() + 2 * c];
    let (y, stats) = out.split_at_mut(x.len());
    y.par_chunks_mut(r.max(1)).zip(x.par_chunks(r.max(1))).enumerate().for_each(|(i, (yp, xp))| {
        let ch = i % c;
        let scale = w[ch].to_f64() / (var[ch] + eps).sqrt();
        let (s, t) = (T::from_f64(scale), T::from_f64(b[ch].to_f64() - mean[ch] * scale));
        for (o, v) in yp.iter_mut().zip(xp) {
            *o = *v * s + t;
        }
    });
    for ch in 0..c {
        stats[ch] = T::from_f64(mean[ch]);
        stats[c + ch] = T::from_f64(var[ch]);
    }
    out
}

/// (dx, dw, db) of batch norm in training mode, packed: dx = w·inv/M · (M·dy − Σdy − x̂·Σ(dy·x̂)).
fn bn_bwd<T: Elem>(x: &[T], dy: &[T], w: &[T], n: usize, c: usize, r: usize, eps: f64) -> Vec<T> {
    let (mean, var) = bn_stats(x, n, c, r);
    let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let planes: Vec<(f64, f64)> = x
        .par_chunks(r.max(1))
        .zip(dy.par_chunks(r.max(1)))
        .enumerate()
        .map(|(i, (xp, gp))| {
            let m = mean[i % c];
            xp.iter().zip(gp).fold((0f64, 0f64), |(s, sx), (v, g)| (s + g.to_f64(), sx + g.to_f64() * (v.to_f64() - m)))
        })
        .collect();
    let count = (n * r).max(1) as f64;
    let (mut sum_dy, mut sum_dy_xhat) = (vec![0f64; c], vec![0f64; c]);
    for ch in 0..c {
        sum_dy[ch] = (0..n).map(|i| planes[i * c + ch].0).sum();
        sum_dy_xhat[ch] = (0..n).map(|i| planes[i * c + ch].1).sum::<f64>() * inv[ch];
    }
    let mut out = vec![T::zero(); x.len() + 2 * c];
    let (dx, rest) = out.split_at_mut(x.len());
    dx.par_chunks_mut(r.max(1)).zip(x.par_chunks(r.max(1)).zip(dy.par_chunks(r.max(1)))).enumerate().for_each(|(i, (dp, (xp, gp)))| {
        let ch = i % c;
        let k = w[ch].to_f64() * inv[ch];
        // dx = k·dy − k/M·Σdy − k/M·x̂·Σ(dy·x̂), with x̂ = (x − mean)·inv
        let a = T::from_f64(k);
        let bcoef = T::from_f64(k * inv[ch] * sum_dy_xhat[ch] / count);
        let c0 = T::from_f64(-k * sum_dy[ch] / count + k * inv[ch] * sum_dy_xhat[ch] * mean[ch] / count);
        for (o, (v, g)) in dp.iter_mut().zip(xp.iter().zip(gp)) {
            *o = a * *g - bcoef * *v + c0;
        }
    });
    for ch in 0..c {
        rest[ch] = T::from_f64(sum_dy_xhat[ch]);
        rest[c + ch] = T::from_f64(sum_dy[ch]);
    }
    out
}

struct BnTrainGrad {
    eps: f64,
}

fn dims_ncr(l: &Layout) -> (usize, usize, usize) {
    let dims = l.shape().dims();
    let (n, c) = (dims[0], dims[1]);
    (n, c, l.shape().elem_count() / (n * c).max(1))
}

impl CustomOp3 for BnTrain {
    fn name(&self) -> &'static str {
        "facefind-batch-norm-train"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, r) = dims_ncr(l1);
        if l2.shape().elem_count() != c || l3.shape().elem_count() != c {
            candle_core::bail!("batch norm: {c} channels but {} weights and {} biases", l2.shape().elem_count(), l3.shape().elem_count());
        }
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(bn_fwd(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, n, c, r, self.eps)),
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(bn_fwd(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, n, c, r, self.eps)),
            _ => candle_core::bail!("batch norm: f32 or f64 inputs of one type"),
        };
        Ok((out, Shape::from(n * c * r + 2 * c)))
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, _out: &Tensor, dout: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let len = x.elem_count();
        let c = w.elem_count();
        let dy = dout.narrow(0, 0, len)?.reshape(x.shape())?.contiguous()?;
        let packed = x.detach().apply_op3_no_bwd(&dy, &w.detach(), &BnTrainGrad { eps: self.eps })?;
        let dx = packed.narrow(0, 0, len)?.reshape(x.shape())?;
        let dw = packed.narrow(0, len, c)?.reshape(w.shape())?;
        let db = packed.narrow(0, len + c, c)?.reshape(b.shape())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

impl CustomOp3 for BnTrainGrad {
    fn name(&self) -> &'static str {
        "facefind-batch-norm-train-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, r) = dims_ncr(l1);
        if l2.shape() != l1.shape() || l3.shape().elem_count() != c {
            candle_core::bail!("batch norm gradient: shapes {:?} {:?} {:?}", l1.shape(), l2.shape(), l3.shape());
        }
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(bn_bwd(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, n, c, r, self.eps)),
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(bn_bwd(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, n, c, r, self.eps)),
            _ => candle_core::bail!("batch norm gradient: f32 or f64 inputs of one type"),
        };
        Ok((out, Shape::from(n * c * r + 2 * c)))
    }
}
