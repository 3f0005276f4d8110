//! The 1 × 1 convolution (stride 1, no padding) of training as one CPU op per direction: a
//! matrix product per image straight on NCHW data, forward and backward. Written with candle's
//! reshape / transpose / matmul, each of those steps is a node whose backward pass allocates,
//! zeroes and adds a gradient the size of the activation; MobileFaceNet's largest activations go
//! through these convolutions.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::channel::slice;
use crate::kernels::matmul_strided;

/// `y[n] = w · x[n]` for `x` (N, Ci, H, W) and `w` (Co, Ci, 1, 1): the op on the CPU (f32/f64),
/// `None` elsewhere (the caller uses the generic path).
pub fn pointwise_conv(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    if !crate::kernels::channels_last(x.device()) || !matches!(x.dtype(), DType::F32 | DType::F64) || w.dtype() != x.dtype() {
        return Ok(None);
    }
    Ok(Some(x.contiguous()?.apply_op2(&w.contiguous()?, Pointwise)?))
}

struct Pointwise;
/// dx = wᵀ · dy per image.
struct PointwiseInput;
/// dw = Σₙ dy[n] · x[n]ᵀ.
struct PointwiseWeight;

/// (N, C, H·W) of an NCHW layout.
fn nchw(l: &Layout) -> Result<(usize, usize, usize)> {
    match l.shape().dims() {
        [n, c, h, w] => Ok((*n, *c, h * w)),
        d => candle_core::bail!("pointwise convolution: NCHW input expected, got {d:?}"),
    }
}

fn forward<T: candle_core::WithDType>(x: &[T], w: &[T], n: usize, ci: usize, co: usize, hw: usize) -> Result<Vec<T>> {
    if x.len() != n * ci * hw || w.len() != co * ci {
        candle_core::bail!("pointwise convolution: {} input values and {} weights for N {n}, Ci {ci}, Co {co}, HW {hw}", x.len(), w.len());
    }
    let mut y = vec![T::zero(); n * co * hw];
    y.par_chunks_mut((co * hw).max(1)).zip(x.par_chunks((ci * hw).max(1))).try_for_each(|(yn, xn)| {
        // yn is co × hw, w is co × ci, xn is ci × hw
        matmul_strided(co, hw, ci, yn, (hw, 1), false, w, (ci, 1), xn, (hw, 1))
    })?;
    Ok(y)
}

fn input_grad<T: candle_core::WithDType>(dy: &[T], w: &[T], n: usize, ci: usize, co: usize, hw: usize) -> Result<Vec<T>> {
    if dy.len() != n * co * hw || w.len() != co * ci {
        candle_core::bail!(
            "pointwise convolution gradient: {} values and {} weights for N {n}, Ci {ci}, Co {co}, HW {hw}",
            dy.len(),
            w.len()
        );
    }
    let mut dx = vec![T::zero(); n * ci * hw];
    dx.par_chunks_mut((ci * hw).max(1)).zip(dy.par_chunks((co * hw).max(1))).try_for_each(|(dxn, dyn_)| {
        // dxn is ci × hw, wᵀ is w read as ci × co (element (i, p) at w[p·ci + i]), dyn_ is co × hw
        matmul_strided(ci, hw, co, dxn, (hw, 1), false, w, (1, ci), dyn_, (hw, 1))
    })?;
    Ok(dx)
}

fn weight_grad<T: candle_core::WithDType>(x: &[T], dy: &[T], n: usize, ci: usize, co: usize, hw: usize) -> Result<Vec<T>> {
    if x.len() != n * ci * hw || dy.len() != n * co * hw {
        candle_core::bail!(
            "pointwise convolution weight gradient: {} and {} values for N {n}, Ci {ci}, Co {co}, HW {hw}",
            x.len(),
            dy.len()
        );
    }
    // one accumulator per chunk of images, summed at the end
    let chunk = n.div_ceil(rayon::current_num_threads().max(1)).max(1);
    let parts: Vec<Vec<T>> = (0..n)
        .step_by(chunk)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|start| {
            let mut acc = vec![T::zero(); co * ci];
            for i in start..(start + chunk).min(n) {
                let (xn, dyn_) = (&x[i * ci * hw..(i + 1) * ci * hw], &dy[i * co * hw..(i + 1) * co * hw]);
                // acc is co × ci, dyn_ is co × hw, xnᵀ is xn read as hw × ci (element (p, j) at
                // xn[j·hw + p])
                matmul_strided(co, ci, hw, &mut acc, (ci, 1), i > start, dyn_, (hw, 1), xn, (1, hw))?;
            }
            Ok(acc)
        })
        .collect::<Result<_>>()?;
    let mut dw = vec![T::zero(); co * ci];
    for p in parts {
        for (a, b) in dw.iter_mut().zip(p) {
            *a += b;
        }
    }
    Ok(dw)
}

impl CustomOp2 for Pointwise {
    fn name(&self) -> &'static str {
        "facefind-pointwise-conv"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, ci, hw) = nchw(l1)?;
        let co = l2.shape().dims()[0];
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(forward(slice(s1, l1)?, slice(s2, l2)?, n, ci, co, hw)?),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(forward(slice(s1, l1)?, slice(s2, l2)?, n, ci, co, hw)?),
            _ => candle_core::bail!("pointwise convolution: f32 or f64 inputs of one type"),
        };
        let d = l1.shape().dims();
        Ok((out, Shape::from((n, co, d[2], d[3]))))
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dx = dy.apply_op2_no_bwd(&w.detach(), &PointwiseInput)?;
        let dw = x.detach().apply_op2_no_bwd(&dy, &PointwiseWeight)?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp2 for PointwiseInput {
    fn name(&self) -> &'static str {
        "facefind-pointwise-conv-input-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, co, hw) = nchw(l1)?;
        let ci = l2.shape().elem_count() / co.max(1);
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(input_grad(slice(s1, l1)?, slice(s2, l2)?, n, ci, co, hw)?),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(input_grad(slice(s1, l1)?, slice(s2, l2)?, n, ci, co, hw)?),
            _ => candle_core::bail!("pointwise convolution gradient: f32 or f64 inputs of one type"),
        };
        let d = l1.shape().dims();
        Ok((out, Shape::from((n, ci, d[2], d[3]))))
    }
}

impl CustomOp2 for PointwiseWeight {
    fn name(&self) -> &'static str {
        "facefind-pointwise-conv-weight-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, ci, hw) = nchw(l1)?;
        let (_, co, _) = nchw(l2)?;
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(weight_grad(slice(s1, l1)?, slice(s2, l2)?, n, ci, co, hw)?),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(weight_grad(slice(s1, l1)?, slice(s2, l2)?, n, ci, co, hw)?),
            _ => candle_core::bail!("pointwise convolution weight gradient: f32 or f64 inputs of one type"),
        };
        Ok((out, Shape::from((co, ci))))
    }
}
