//! Depthwise convolution on the CPU as a candle custom op with forward and backward kernels
//! (NCHW, any stride and asymmetric padding): one pass per (image, channel) plane instead of
//! the k*k shifted views, which on the CPU cost a strided pass and a zero-padded gradient each.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::channel::slice;
use crate::kernels::Pad;

/// Plane geometry of one call.
#[derive(Clone, Copy)]
struct Geom {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    k: usize,
    s: usize,
    pad: Pad,
}

impl Geom {
    /// For output column range of tap kx: the ox whose input column is inside the image.
    #[inline]
    fn ox_range(&self, kx: usize) -> (usize, usize) {
        // ix = ox*s + kx - left in [0, w)
        let lo = self.pad.left.saturating_sub(kx).div_ceil(self.s);
        let hi = if self.w + self.pad.left > kx { ((self.w + self.pad.left - kx - 1) / self.s + 1).min(self.ow) } else { 0 };
        (lo, hi.max(lo))
    }
    #[inline]
    fn iy(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.s + ky).checked_sub(self.pad.top).filter(|iy| *iy < self.h)
    }
}

trait Elem:
    Copy + Default + Send + Sync + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> + std::ops::AddAssign + candle_core::WithDType
{
}
impl Elem for f32 {}
impl Elem for f64 {}

crate::kernels::multiversion! {
    /// y[oy, ox] = sum w[ky, kx] * x[oy*s + ky - top, ox*s + kx - left], one plane.
    fn forward_plane<T: Elem>(x: &[T], wk: &[T], y: &mut [T], g: &Geom) {
        // With a stride, each input row is first split into its phases (columns p, p + s,
        // p + 2s, ... one after another): every tap then reads a contiguous run, as at stride 1.
        let starts: Vec<usize> = (0..g.s).scan(0, |at, p| Some(std::mem::replace(at, *at + (g.w + g.s - 1 - p) / g.s))).collect();
        let mut phases: Vec<T> = Vec::with_capacity(if g.s > 1 { g.w } else { 0 });
        for ky in 0..g.k {
            for oy in 0..g.oh {
                let Some(iy) = g.iy(oy, ky) else { continue };
                let mut xr = &x[iy * g.w..(iy + 1) * g.w];
                if g.s > 1 {
                    phases.clear();
                    (0..g.s).for_each(|p| phases.extend(xr.iter().skip(p).step_by(g.s)));
                    xr = &phases;
                }
                let yr = &mut y[oy * g.ow..(oy + 1) * g.ow];
                for kx in 0..g.k {
                    let wv = wk[ky * g.k + kx];
                    let (a, b) = g.ox_range(kx);
                    if a == b {
                        continue;
                    }
                    // the input column of output a, as an index into xr
                    let ix = a * g.s + kx - g.pad.left;
                    let i0 = starts[ix % g.s] + ix / g.s;
                    for (yv, xv) in yr[a..b].iter_mut().zip(&xr[i0..i0 + (b - a)]) {
                        *yv += wv * *xv;
                    }
                }
            }
        }
    }
}

crate::kernels::multiversion! {
    /// dx[iy, ix] += w[ky, kx] * dy[oy, ox], one plane.
    fn grad_input_plane<T: Elem>(dy: &[T], wk: &[T], dx: &mut [T], g: &Geom) {
        for ky in 0..g.k {
            for oy in 0..g.oh {
                let Some(iy) = g.iy(oy, ky) else { continue };
                let dyr = &dy[oy * g.ow..(oy + 1) * g.ow];
                let dxr = &mut dx[iy * g.w..(iy + 1) * g.w];
                for kx in 0..g.k {
                    let wv = wk[ky * g.k + kx];
                    let (a, b) = g.ox_range(kx);
                    if g.s == 1 {
                        let i0 = a + kx - g.pad.left;
                        for (d, v) in dxr[i0..i0 + (b - a)].iter_mut().zip(&dyr[a..b]) {
                            *d += wv * *v;
                        }
                    } else {
                        for ox in a..b {
                            dxr[ox * g.s + kx - g.pad.left] += wv * dyr[ox];
                        }
                    }
                }
            }
        }
    }
}

crate::kernels::multiversion! {
    /// acc[ky, kx, ox] += sum over oy of dy[oy, ox] * x[iy, ix], one plane: the weight gradient
    /// kept per output column, so the inner loop runs along a row (as the forward pass does)
    /// instead of reducing each short row to one value; [`run_grad_weight`] sums the columns.
    fn grad_weight_rows<T: Elem>(x: &[T], dy: &[T], acc: &mut [T], g: &Geom) {
        for ky in 0..g.k {
            for oy in 0..g.oh {
                let Some(iy) = g.iy(oy, ky) else { continue };
                let xr = &x[iy * g.w..(iy + 1) * g.w];
                let dyr = &dy[oy * g.ow..(oy + 1) * g.ow];
                for kx in 0..g.k {
                    let (a, b) = g.ox_range(kx);
                    let ar = &mut acc[(ky * g.k + kx) * g.ow..(ky * g.k + kx + 1) * g.ow];
                    if g.s == 1 {
                        let i0 = a + kx - g.pad.left;
                        for ((s, d), v) in ar[a..b].iter_mut().zip(&dyr[a..b]).zip(&xr[i0..i0 + (b - a)]) {
                            *s += *d * *v;
                        }
                    } else {
                        for ox in a..b {
                            ar[ox] += dyr[ox] * xr[ox * g.s + kx - g.pad.left];
                        }
                    }
                }
            }
        }
    }
}

/// The differentiable op: (x, w) -> y.
pub(crate) struct Depthwise {
    pub stride: usize,
    pub pad: Pad,
}

impl Depthwise {
    fn geom(&self, h: usize, w: usize, k: usize) -> Result<Geom> {
        let oh = crate::kernels::out_size(h, k, self.stride, self.pad.top, self.pad.bottom)?;
        let ow = crate::kernels::out_size(w, k, self.stride, self.pad.left, self.pad.right)?;
        Ok(Geom { h, w, oh, ow, k, s: self.stride, pad: self.pad })
    }
}

fn run_fwd<T: Elem>(x: &[T], wt: &[T], n: usize, c: usize, g: &Geom) -> Vec<T> {
    let (ip, op) = (g.h * g.w, g.oh * g.ow);
    let mut y = vec![T::default(); n * c * op];
    y.par_chunks_mut(op).enumerate().for_each(|(i, yp)| {
        let ch = i % c;
        forward_plane(&x[i * ip..(i + 1) * ip], &wt[ch * g.k * g.k..(ch + 1) * g.k * g.k], yp, g);
    });
    y
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        "facefind-depthwise"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l1.shape().dims4()?;
        let k = l2.shape().dims4()?.2;
        let g = self.geom(h, w, k)?;
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(run_fwd(slice::<f32>(s1, l1)?, slice::<f32>(s2, l2)?, n, c, &g)),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(run_fwd(slice::<f64>(s1, l1)?, slice::<f64>(s2, l2)?, n, c, &g)),
            _ => candle_core::bail!("depthwise op: f32 or f64 inputs of one type"),
        };
        Ok((out, Shape::from((n, c, g.oh, g.ow))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dx = dy.apply_op2_no_bwd(w, &GradInput { op: self, h: x.dim(2)?, w: x.dim(3)? })?;
        let dw = x.apply_op2_no_bwd(&dy, &GradWeight { op: self, k: w.dim(2)? })?;
        Ok((Some(dx), Some(dw)))
    }
}

/// (dy, w) -> dx.
struct GradInput<'a> {
    op: &'a Depthwise,
    h: usize,
    w: usize,
}

fn run_grad_input<T: Elem>(dy: &[T], wt: &[T], n: usize, c: usize, g: &Geom) -> Vec<T> {
    let (ip, op) = (g.h * g.w, g.oh * g.ow);
    let mut dx = vec![T::default(); n * c * ip];
    dx.par_chunks_mut(ip).enumerate().for_each(|(i, dxp)| {
        let ch = i % c;
        grad_input_plane(&dy[i * op..(i + 1) * op], &wt[ch * g.k * g.k..(ch + 1) * g.k * g.k], dxp, g);
    });
    dx
}

impl CustomOp2 for GradInput<'_> {
    fn name(&self) -> &'static str {
        "facefind-depthwise-grad-input"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, _, _) = l1.shape().dims4()?;
        let k = l2.shape().dims4()?.2;
        let g = self.op.geom(self.h, self.w, k)?;
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(run_grad_input(slice::<f32>(s1, l1)?, slice::<f32>(s2, l2)?, n, c, &g))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(run_grad_input(slice::<f64>(s1, l1)?, slice::<f64>(s2, l2)?, n, c, &g))
            }
            _ => candle_core::bail!("depthwise grad: f32 or f64 inputs of one type"),
        };
        Ok((out, Shape::from((n, c, self.h, self.w))))
    }
}

/// (x, dy) -> dw.
struct GradWeight<'a> {
    op: &'a Depthwise,
    k: usize,
}

fn run_grad_weight<T: Elem>(x: &[T], dy: &[T], n: usize, c: usize, g: &Geom) -> Vec<T> {
    let (ip, op, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    let mut dw = vec![T::default(); c * kk];
    dw.par_chunks_mut(kk).enumerate().for_each(|(ch, dwc)| {
        let mut acc = vec![T::default(); kk * g.ow];
        for b in 0..n {
            let i = b * c + ch;
            grad_weight_rows(&x[i * ip..(i + 1) * ip], &dy[i * op..(i + 1) * op], &mut acc, g);
        }
        for (d, columns) in dwc.iter_mut().zip(acc.chunks_exact(g.ow.max(1))) {
            *d = columns.iter().fold(T::default(), |s, v| s + *v);
        }
    });
    dw
}

impl CustomOp2 for GradWeight<'_> {
    fn name(&self) -> &'static str {
        "facefind-depthwise-grad-weight"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l1.shape().dims4()?;
        let g = self.op.geom(h, w, self.k)?;
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(run_grad_weight(slice::<f32>(s1, l1)?, slice::<f32>(s2, l2)?, n, c, &g))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(run_grad_weight(slice::<f64>(s1, l1)?, slice::<f64>(s2, l2)?, n, c, &g))
            }
            _ => candle_core::bail!("depthwise grad: f32 or f64 inputs of one type"),
        };
        Ok((out, Shape::from((c, 1, self.k, self.k))))
    }
}
