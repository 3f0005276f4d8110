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
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
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
