//! Fast CPU kernels for the two layers candle runs slowly: depthwise convolution and
//! bias + activation. On CUDA/Metal the same layers fall back to candle's generic ops.
//!
//! candle lowers a grouped convolution with `groups == channels` to one tiny convolution per
//! channel, and a PReLU to four elementwise passes; for MobileNet-style networks those two
//! dominate the run time. Here both become one pass over memory, fused with the bias and the
//! activation that follow them.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Result, Shape, Tensor, D};
use candle_nn::VarBuilder;
use rayon::prelude::*;

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
    #[inline(always)]
    fn apply(&self, c: usize, v: f32) -> f32 {
        match self {
            Activation::Linear => v,
            Activation::Relu => v.max(0.0),
            Activation::Leaky(a) => {
                if v < 0.0 {
                    a * v
                } else {
                    v
                }
            }
            Activation::PRelu(a) => {
                if v < 0.0 {
                    a[c] * v
                } else {
                    v
                }
            }
        }
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

/// Padding as (top, left, bottom, right): TensorFlow's SAME padding is asymmetric for stride 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pad {
    pub top: usize,
    pub left: usize,
    pub bottom: usize,
    pub right: usize,
}

impl Pad {
    pub const fn same(p: usize) -> Self {
        Self { top: p, left: p, bottom: p, right: p }
    }
    /// TensorFlow "SAME" padding for a square kernel `k` and stride `s` on an `n`-pixel side.
    pub fn tf_same(n: usize, k: usize, s: usize) -> (usize, usize) {
        let out = n.div_ceil(s);
        let total = ((out - 1) * s + k).saturating_sub(n);
        (total / 2, total - total / 2)
    }
}

fn cpu_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("facefind kernels need contiguous input"),
    }
}

/// Per-channel bias followed by an activation, on an NCHW tensor, in one pass.
struct BiasAct<'a> {
    bias: &'a [f32],
    act: &'a Activation,
}

impl CustomOp1 for BiasAct<'_> {
    fn name(&self) -> &'static str {
        "bias-act"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(storage, layout)?;
        let dims = layout.shape().dims();
        let c = dims[1];
        let plane: usize = dims[2..].iter().product();
        let mut out = x.to_vec();
        out.par_chunks_mut(plane.max(1)).enumerate().for_each(|(i, p)| {
            let ch = i % c;
            let b = self.bias[ch];
            for v in p.iter_mut() {
                *v = self.act.apply(ch, *v + b);
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Depthwise convolution (one KxK filter per channel) + bias + activation.
struct DepthwiseOp<'a> {
    weight: &'a [f32], // C x K x K
    bias: &'a [f32],
    act: &'a Activation,
    k: usize,
    stride: usize,
    pad: Pad,
}

impl DepthwiseOp<'_> {
    fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let oh = (h + self.pad.top + self.pad.bottom - self.k) / self.stride + 1;
        let ow = (w + self.pad.left + self.pad.right - self.k) / self.stride + 1;
        (oh, ow)
    }
}

impl CustomOp1 for DepthwiseOp<'_> {
    fn name(&self) -> &'static str {
        "depthwise-conv"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(storage, layout)?;
        let (n, c, h, w) = layout.shape().dims4()?;
        let (oh, ow) = self.out_hw(h, w);
        let (k, s) = (self.k, self.stride);
        let (pt, pl) = (self.pad.top as isize, self.pad.left as isize);
        let mut out = vec![0f32; n * c * oh * ow];
        out.par_chunks_mut(oh * ow).enumerate().for_each(|(i, dst)| {
            let ch = i % c;
            let src = &x[i * h * w..(i + 1) * h * w];
            let wk = &self.weight[ch * k * k..(ch + 1) * k * k];
            let b = self.bias[ch];
            for oy in 0..oh {
                let iy0 = (oy * s) as isize - pt;
                let row = &mut dst[oy * ow..(oy + 1) * ow];
                for (ox, o) in row.iter_mut().enumerate() {
                    let ix0 = (ox * s) as isize - pl;
                    let mut acc = b;
                    let inside = iy0 >= 0
                        && ix0 >= 0
                        && (iy0 as usize + k) <= h
                        && (ix0 as usize + k) <= w;
                    if inside {
                        let (iy0, ix0) = (iy0 as usize, ix0 as usize);
                        for ky in 0..k {
                            let srow = &src[(iy0 + ky) * w + ix0..(iy0 + ky) * w + ix0 + k];
                            let wrow = &wk[ky * k..(ky + 1) * k];
                            for kx in 0..k {
                                acc += srow[kx] * wrow[kx];
                            }
                        }
                    } else {
                        for ky in 0..k {
                            let iy = iy0 + ky as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..k {
                                let ix = ix0 + kx as isize;
                                if ix < 0 || ix >= w as isize {
                                    continue;
                                }
                                acc += src[iy as usize * w + ix as usize] * wk[ky * k + kx];
                            }
                        }
                    }
                    *o = self.act.apply(ch, acc);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }
}

/// Host copies of a layer's parameters, used by the CPU kernels.
#[derive(Debug, Clone)]
struct HostParams {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// A convolution with bias and activation: dense (groups = 1) or depthwise (groups = channels).
#[derive(Debug, Clone)]
pub struct ConvAct {
    weight: Tensor,
    bias: Tensor,
    act: Activation,
    k: usize,
    stride: usize,
    pad: Pad,
    depthwise: bool,
    host: HostParams,
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
        let host = HostParams { weight: weight.flatten_all()?.to_vec1()?, bias: bias.to_vec1()? };
        Ok(Self {
            weight,
            bias,
            act,
            k: spec.k,
            stride: spec.stride,
            pad: spec.pad,
            depthwise: spec.depthwise,
            host,
        })
    }

    fn forward_generic(&self, x: &Tensor) -> Result<Tensor> {
        let Pad { top, left, bottom, right } = self.pad;
        let sym = top == bottom && left == right && top == left;
        let (x, p) = if sym {
            (x.clone(), top)
        } else {
            (x.pad_with_zeros(2, top, bottom)?.pad_with_zeros(3, left, right)?, 0)
        };
        let groups = if self.depthwise { self.weight.dim(0)? } else { 1 };
        let y = x.conv2d(&self.weight, p, self.stride, 1, groups)?;
        let y = y.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)?;
        self.act.forward_generic(&y)
    }

    fn forward_cpu(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        if self.depthwise {
            return x.apply_op1_no_bwd(&DepthwiseOp {
                weight: &self.host.weight,
                bias: &self.host.bias,
                act: &self.act,
                k: self.k,
                stride: self.stride,
                pad: self.pad,
            });
        }
        let (n, c, h, w) = x.dims4()?;
        let c_out = self.weight.dim(0)?;
        let y = if self.k == 1 && self.stride == 1 && self.pad == Pad::same(0) {
            // A 1x1 convolution is a matrix product: (O x C) . (C x HW) per image.
            let wm = self.weight.reshape((c_out, c))?;
            let xm = x.reshape((n, c, h * w))?;
            wm.broadcast_left(n)?.matmul(&xm)?.reshape((n, c_out, h, w))?
        } else {
            let Pad { top, left, bottom, right } = self.pad;
            if top == bottom && left == right && top == left {
                x.conv2d(&self.weight, top, self.stride, 1, 1)?
            } else {
                let x = x.pad_with_zeros(2, top, bottom)?.pad_with_zeros(3, left, right)?;
                x.conv2d(&self.weight, 0, self.stride, 1, 1)?
            }
        };
        y.contiguous()?.apply_op1_no_bwd(&BiasAct { bias: &self.host.bias, act: &self.act })
    }
}

impl Module for ConvAct {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            self.forward_cpu(x)
        } else {
            self.forward_generic(x)
        }
    }
}

/// Row-wise L2 normalisation of an (N, D) tensor.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
    x.broadcast_div(&norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn random(shape: &[usize], seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..shape.iter().product::<usize>())
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    }

    fn layer(spec: ConvSpec, act: ActKind) -> ConvAct {
        let dev = Device::Cpu;
        let w_in = if spec.depthwise { 1 } else { spec.c_in };
        let map = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
        {
            let mut data = map.data().lock().unwrap();
            let w = Tensor::from_vec(random(&[spec.c_out * w_in * spec.k * spec.k], 1), (spec.c_out, w_in, spec.k, spec.k), &dev).unwrap();
            data.insert("l.weight".into(), Var::from_tensor(&w).unwrap());
            let b = Tensor::from_vec(random(&[spec.c_out], 2), spec.c_out, &dev).unwrap();
            data.insert("l.bias".into(), Var::from_tensor(&b).unwrap());
            let a = Tensor::from_vec(random(&[spec.c_out], 3), spec.c_out, &dev).unwrap();
            data.insert("l.alpha".into(), Var::from_tensor(&a).unwrap());
        }
        ConvAct::load(vb.pp("l"), spec, act).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn fast_cpu_kernels_match_candle_generic_ops() {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(random(&[2 * 8 * 13 * 12], 7), (2, 8, 13, 12), &dev).unwrap();
        let cases = [
            (ConvSpec::depthwise(8, 3, 1, 1), ActKind::PRelu),
            (ConvSpec::depthwise(8, 3, 2, 1), ActKind::Leaky(0.1)),
            (ConvSpec::depthwise(8, 3, 2, 0).with_pad(Pad { top: 0, left: 0, bottom: 1, right: 1 }), ActKind::Relu),
            (ConvSpec::depthwise(8, 7, 1, 0), ActKind::Linear),
            (ConvSpec::dense(8, 5, 1, 1, 0), ActKind::PRelu),
            (ConvSpec::dense(8, 5, 3, 2, 1), ActKind::Leaky(0.1)),
            (ConvSpec::dense(8, 4, 3, 2, 0).with_pad(Pad { top: 0, left: 0, bottom: 1, right: 1 }), ActKind::PRelu),
        ];
        for (spec, act) in cases {
            let l = layer(spec, act);
            let fast = l.forward_cpu(&x).unwrap();
            let slow = l.forward_generic(&x).unwrap();
            assert_eq!(fast.dims(), slow.dims(), "{spec:?}");
            assert!(max_diff(&fast, &slow) < 1e-5, "{spec:?} {act:?}: {}", max_diff(&fast, &slow));
        }
    }

    #[test]
    fn tf_same_padding_is_bottom_right_heavy() {
        assert_eq!(Pad::tf_same(112, 3, 2), (0, 1));
        assert_eq!(Pad::tf_same(56, 3, 1), (1, 1));
        assert_eq!(Pad::tf_same(7, 3, 2), (1, 1));
    }
}
