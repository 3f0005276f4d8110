//! Differentiable building blocks built only from candle tensor ops (so they run and train on
//! every backend): convolution as shifted views + matrix product, depthwise convolution as a sum
//! of shifted views times per-channel weights, batch norm with explicit statistics, PReLU.
//!
//! Feature maps are NCHW. candle 0.11 runs a grouped convolution as one convolution per group
//! (up to 512 launches per layer); here a k x k depthwise layer is k*k multiply-adds over the
//! whole map, whatever the channel count.

use crate::kernels::out_size;
use candle_core::{DType, Result, Tensor, Var, D};
use candle_nn::{Init, VarBuilder};

use super::channel;
use crate::kernels::Pad;

/// How a forward pass treats batch norm and dropout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Running statistics; dropout off.
    Eval,
    /// Batch statistics (running statistics updated); dropout on.
    Train,
    /// Each batch norm measures its input's batch statistics and sets its running statistics and
    /// affine parameters so that it is the identity for that batch in both other modes (used to
    /// insert batch norm into a network trained without it, e.g. the shipped folded weights).
    Calibrate,
}

impl Mode {
    pub fn train(self) -> bool {
        self == Mode::Train
    }
}

/// Zero-pads the two spatial dimensions of an NCHW tensor.
pub fn pad_nchw(x: &Tensor, pad: Pad) -> Result<Tensor> {
    let x = if pad.top + pad.bottom > 0 { x.pad_with_zeros(2, pad.top, pad.bottom)? } else { x.clone() };
    if pad.left + pad.right > 0 {
        x.pad_with_zeros(3, pad.left, pad.right)
    } else {
        Ok(x)
    }
}

/// The k*k shifted views of a padded NCHW map that a k x k, stride-`s` kernel reads: view
/// `ky * k + kx` is (N, C, oh, ow) and holds input pixel (oy*s + ky, ox*s + kx) at (oy, ox).
/// For stride > 1 the map is first split into its s*s phases (every s-th pixel), so each view
/// is a plain narrow of one phase.
pub fn taps(xp: &Tensor, k: usize, s: usize, oh: usize, ow: usize) -> Result<Vec<Tensor>> {
    let mut out = Vec::with_capacity(k * k);
    if s == 1 {
        for ky in 0..k {
            for kx in 0..k {
                out.push(xp.narrow(2, ky, oh)?.narrow(3, kx, ow)?);
            }
        }
        return Ok(out);
    }
    let (n, c, h, w) = xp.dims4()?;
    // Phase tensors need (oh + (k-1)/s) rows each; pad or cut to s * that.
    let (ph, pw) = (oh + (k - 1) / s, ow + (k - 1) / s);
    let fit = |x: Tensor, dim: usize, have: usize, want: usize| -> Result<Tensor> {
        if have < want {
            x.pad_with_zeros(dim, 0, want - have)
        } else {
            x.narrow(dim, 0, want)
        }
    };
    let x = fit(fit(xp.clone(), 2, h, ph * s)?, 3, w, pw * s)?;
    let x = x.reshape((n, c, ph, s, pw, s))?;
    let mut phases = Vec::with_capacity(s * s);
    for py in 0..s {
        for px in 0..s {
            phases.push(x.narrow(3, py, 1)?.narrow(5, px, 1)?.reshape((n, c, ph, pw))?);
        }
    }
    for ky in 0..k {
        for kx in 0..k {
            let p = &phases[(ky % s) * s + kx % s];
            out.push(p.narrow(2, ky / s, oh)?.narrow(3, kx / s, ow)?);
        }
    }
    Ok(out)
}

/// Depthwise convolution: `x` (N, C, H, W), `w` (C, 1, k, k), no bias. On the CPU a custom op
/// with its own forward and backward kernels; elsewhere a sum of k*k shifted views times
/// per-channel weights. A kernel covering the whole unpadded map (global depthwise
/// convolution) is one product and one sum everywhere.
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor, stride: usize, pad: Pad) -> Result<Tensor> {
    let (_, c, h, wd) = x.dims4()?;
    let (wc, one, k, k2) = w.dims4()?;
    if wc != c || one != 1 || k != k2 {
        candle_core::bail!("depthwise weight must be ({c}, 1, k, k), got {:?}", w.dims());
    }
    let oh = out_size(h, k, stride, pad.top, pad.bottom)?;
    let ow = out_size(wd, k, stride, pad.left, pad.right)?;
    if oh == 1 && ow == 1 && h == k && wd == k && pad == Pad::same(0) {
        return x.broadcast_mul(&w.reshape((1, c, k, k))?)?.sum_keepdim((2, 3));
    }
    if crate::kernels::channels_last(x.device()) && matches!(x.dtype(), DType::F32 | DType::F64) && x.dtype() == w.dtype() {
        return x.contiguous()?.apply_op2(&w.contiguous()?, super::depthwise::Depthwise { stride, pad });
    }
    depthwise_conv2d_views(x, w, stride, pad)
}

/// The shifted-view depthwise convolution (any backend; what CUDA and Metal run).
pub fn depthwise_conv2d_views(x: &Tensor, w: &Tensor, stride: usize, pad: Pad) -> Result<Tensor> {
    let (_, c, h, wd) = x.dims4()?;
    let k = w.dim(2)?;
    let oh = out_size(h, k, stride, pad.top, pad.bottom)?;
    let ow = out_size(wd, k, stride, pad.left, pad.right)?;
    let wt = w.reshape((c, k * k))?;
    let xp = pad_nchw(x, pad)?;
    let mut acc: Option<Tensor> = None;
    for (t, view) in taps(&xp, k, stride, oh, ow)?.into_iter().enumerate() {
        let term = view.broadcast_mul(&wt.narrow(1, t, 1)?.reshape((1, c, 1, 1))?)?;
        acc = Some(match acc {
            None => term,
            Some(a) => (a + term)?,
        });
    }
    acc.ok_or_else(|| candle_core::Error::Msg("empty depthwise kernel".into()))
}

/// Dense convolution: `x` (N, Ci, H, W), `w` (Co, Ci, k, k), no bias. The k*k shifted views are
/// stacked along channels (im2col) and multiplied by the weight matrix; 1 x 1 convolutions are a
/// plain matrix product.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, pad: Pad) -> Result<Tensor> {
    let (n, ci, h, wd) = x.dims4()?;
    let (co, wci, k, k2) = w.dims4()?;
    if wci != ci || k != k2 {
        candle_core::bail!("conv weight must be (c_out, {ci}, k, k), got {:?}", w.dims());
    }
    let oh = out_size(h, k, stride, pad.top, pad.bottom)?;
    let ow = out_size(wd, k, stride, pad.left, pad.right)?;
    let cols = if k == 1 && stride == 1 && pad == Pad::same(0) {
        if let Some(y) = super::pointwise::pointwise_conv(x, w)? {
            return Ok(y);
        }
        x.reshape((n, ci, h * wd))?
    } else {
        let xp = pad_nchw(x, pad)?;
        let views = taps(&xp, k, stride, oh, ow)?;
        let cols = if views.len() == 1 { views[0].contiguous()? } else { Tensor::cat(&views, 1)? };
        cols.reshape((n, k * k * ci, oh * ow))?
    };
    // Rows of the matrix in the order of the stacked views: (ky, kx, ci).
    let wm = if k == 1 { w.reshape((co, ci))? } else { w.permute((0, 2, 3, 1))?.reshape((co, k * k * ci))? };
    // One (c_out x K) . (K x N*HW) product: a weight broadcast over the batch would make its
    // gradient a sum over the batch dimension, which candle's CPU reduction does slowly.
    let kk = cols.dim(1)?;
    let flat = cols.transpose(0, 1)?.contiguous()?.reshape((kk, n * oh * ow))?;
    wm.matmul(&flat)?.reshape((co, n, oh * ow))?.transpose(0, 1)?.contiguous()?.reshape((n, co, oh, ow))
}

/// Adds a per-channel bias to an (N, C, ...) tensor.
pub fn add_channel_bias(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    let mut shape = vec![1; x.rank()];
    shape[1] = b.elem_count();
    x.broadcast_add(&b.reshape(shape)?)
}

/// PReLU with per-channel slopes (or one slope shared by all channels).
#[derive(Debug, Clone)]
pub struct PRelu {
    pub alpha: Tensor,
}

impl PRelu {
    pub fn new(vb: VarBuilder, c: usize) -> Result<Self> {
        Ok(Self { alpha: vb.get_with_hints(c, "alpha", Init::Const(0.25))? })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        super::channel::prelu(x, &self.alpha)
    }
}

/// Batch norm over dimension 1 of (N, C) or (N, C, H, W), with `weight`/`bias` (affine) and
/// `running_mean`/`running_var` as in PyTorch (momentum 0.1, unbiased running variance).
#[derive(Debug, Clone)]
pub struct BatchNorm {
    pub weight: Var,
    pub bias: Var,
    pub running_mean: Var,
    pub running_var: Var,
    pub eps: f64,
    pub momentum: f64,
}

/// The epsilon of PyTorch's and the seed's batch norm.
pub const BN_EPS: f64 = 1e-5;

fn var_of(t: Tensor) -> Result<Var> {
    Var::from_tensor(&t)
}

impl BatchNorm {
    /// Fresh batch norm: the identity in eval mode (running variance 1 - eps, so that
    /// 1/sqrt(var + eps) is exactly 1).
    pub fn new(vb: VarBuilder, c: usize) -> Result<Self> {
        Ok(Self {
            weight: var_of(vb.get_with_hints(c, "weight", Init::Const(1.0))?)?,
            bias: var_of(vb.get_with_hints(c, "bias", Init::Const(0.0))?)?,
            running_mean: var_of(vb.get_with_hints(c, "running_mean", Init::Const(0.0))?)?,
            running_var: var_of(vb.get_with_hints(c, "running_var", Init::Const(1.0 - BN_EPS))?)?,
            eps: BN_EPS,
            momentum: 0.1,
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_act(x, mode, None)
    }

    /// Batch norm followed by PReLU with slopes `alpha` when given (one fused op when training
    /// on the CPU, see [`channel::batch_norm_act_train`]).
    pub fn forward_act(&self, x: &Tensor, mode: Mode, alpha: Option<&Tensor>) -> Result<Tensor> {
        let act = |y: Tensor| match alpha {
            Some(a) => channel::prelu(&y, a),
            None => Ok(y),
        };
        match mode {
            Mode::Eval => {
                let (scale, shift) = self.scale_shift()?;
                act(channel::affine(x, &scale, &shift)?)
            }
            Mode::Train => {
                let (y, mean, var) = channel::batch_norm_act_train(x, self.weight.as_tensor(), self.bias.as_tensor(), alpha, self.eps)?;
                let count = x.elem_count() / x.dim(1)?;
                let m = self.momentum;
                let unbiased = count as f64 / (count.max(2) - 1) as f64;
                let (rm, rv) = (self.running_mean.as_tensor().detach(), self.running_var.as_tensor().detach());
                self.running_mean.set(&((rm * (1.0 - m))? + (mean * m)?)?)?;
                self.running_var.set(&((rv * (1.0 - m))? + (var * (m * unbiased))?)?)?;
                Ok(y)
            }
            Mode::Calibrate => {
                // Keep the current eval map f(x) = x * s + t, but measured on this batch:
                // weight = sqrt(var + eps) * s, bias = s * mean + t, running stats = batch stats.
                let (mean, var) = channel::batch_stats(x)?;
                let (s, t) = self.scale_shift()?;
                let y = channel::affine(x, &s, &t)?;
                self.weight.set(&(&var + self.eps)?.sqrt()?.mul(&s)?)?;
                self.bias.set(&(mean.mul(&s)? + t)?)?;
                self.running_mean.set(&mean)?;
                self.running_var.set(&var)?;
                act(y)
            }
        }
    }

    /// The eval-mode affine map `x * scale + shift` per channel.
    pub fn scale_shift(&self) -> Result<(Tensor, Tensor)> {
        let scale = (self.running_var.as_tensor() + self.eps)?.sqrt()?.recip()?.mul(self.weight.as_tensor())?;
        let shift = (self.bias.as_tensor() - self.running_mean.as_tensor().mul(&scale)?)?;
        Ok((scale, shift))
    }
}

/// Kaiming-normal initialisation (fan-out, as torchvision's ResNet and MobileNet) for a conv
/// weight of shape (c_out, c_in/groups, k, k).
pub fn kaiming_out(c_out: usize, k: usize) -> Init {
    let fan_out = (c_out * k * k) as f64;
    Init::Randn { mean: 0.0, stdev: (2.0 / fan_out).sqrt() }
}

/// Row-wise L2 normalisation, differentiable (the norm is clamped away from zero).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
    x.broadcast_div(&norm)
}

/// Inverted dropout with keep probability 1 - p; the mask comes from `seed` (drawn on the host),
/// so a training run is repeatable.
pub fn dropout(x: &Tensor, p: f64, mode: Mode, seed: u64) -> Result<Tensor> {
    if !mode.train() || p <= 0.0 {
        return Ok(x.clone());
    }
    let mut rng = crate::util::rng::Rng::stream(seed, 4, 0);
    let keep: Vec<f32> = (0..x.elem_count())
        .map(|_| if (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 >= p { (1.0 / (1.0 - p)) as f32 } else { 0.0 })
        .collect();
    x * Tensor::from_vec(keep, x.shape(), x.device())?.to_dtype(x.dtype())?
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::Device;

    pub(crate) fn random(shape: &[usize], seed: u64) -> Tensor {
        let mut s = seed;
        let v: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    /// The shifted-view convolutions agree with candle's own conv2d (grouped for depthwise),
    /// including asymmetric TF padding, stride 2 on odd and even sizes and the global kernel.
    #[test]
    fn shifted_view_convolutions_match_candle_conv2d() {
        let cases: [(usize, usize, usize, usize, Pad); 7] = [
            (8, 3, 1, 12, Pad::same(1)),
            (8, 3, 2, 12, Pad::same(1)),
            (8, 3, 2, 13, Pad::same(1)),
            (8, 3, 2, 12, Pad { top: 0, left: 0, bottom: 1, right: 1 }),
            (8, 7, 1, 7, Pad::same(0)),
            (8, 1, 1, 9, Pad::same(0)),
            (8, 1, 2, 9, Pad::same(0)),
        ];
        for (i, (c, k, s, n, pad)) in cases.into_iter().enumerate() {
            let x = random(&[2, c, n, n], i as u64 + 1);
            let sym = pad.top == pad.bottom && pad.left == pad.right && pad.top == pad.left;
            let reference = |w: &Tensor, groups: usize| {
                let (xx, p) = if sym { (x.clone(), pad.top) } else { (pad_nchw(&x, pad).unwrap(), 0) };
                xx.conv2d(w, p, s, 1, groups).unwrap()
            };
            let wd = random(&[c, 1, k, k], 100 + i as u64);
            let want = reference(&wd, c);
            for (path, got) in
                [("cpu op", depthwise_conv2d(&x, &wd, s, pad).unwrap()), ("views", depthwise_conv2d_views(&x, &wd, s, pad).unwrap())]
            {
                assert_eq!(got.dims(), want.dims(), "depthwise {path} case {i}");
                assert!(max_diff(&got, &want) < 1e-5, "depthwise {path} case {i}: {}", max_diff(&got, &want));
            }
            let w = random(&[5, c, k, k], 200 + i as u64);
            let got = conv2d(&x, &w, s, pad).unwrap();
            let want = reference(&w, 1);
            assert_eq!(got.dims(), want.dims(), "dense case {i}");
            assert!(max_diff(&got, &want) < 1e-4, "dense case {i}: {}", max_diff(&got, &want));
        }
    }

    /// Central finite differences (f64) of a scalar function of one tensor against candle's
    /// backward pass.
    pub(crate) fn check_grad(name: &str, x0: &Tensor, f: &dyn Fn(&Tensor) -> Result<Tensor>) {
        let x0 = x0.to_dtype(DType::F64).unwrap();
        let v = Var::from_tensor(&x0).unwrap();
        let y = f(v.as_tensor()).unwrap();
        let grads = y.backward().unwrap();
        let g: Vec<f64> = grads.get(v.as_tensor()).expect("no gradient").flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = x0.flatten_all().unwrap().to_vec1().unwrap();
        let h = 1e-5;
        // Every element for small inputs, otherwise a spread sample.
        let step = (base.len() / 60).max(1);
        for i in (0..base.len()).step_by(step) {
            let eval = |d: f64| {
                let mut b = base.clone();
                b[i] += d;
                let t = Tensor::from_vec(b, x0.shape(), x0.device()).unwrap();
                f(&t).unwrap().to_scalar::<f64>().unwrap()
            };
            let fd = (eval(h) - eval(-h)) / (2.0 * h);
            let tol = 1e-6 + 1e-4 * fd.abs().max(g[i].abs());
            assert!((fd - g[i]).abs() < tol, "{name}: d/dx[{i}] analytic {} vs finite difference {fd}", g[i]);
        }
    }

    /// A weighted sum, so that every output element's gradient differs.
    fn weighted_sum(y: &Tensor) -> Result<Tensor> {
        let w = random(y.dims(), 999).to_dtype(DType::F64)?;
        (y * w)?.sum_all()
    }

    #[test]
    fn depthwise_and_dense_gradients_match_finite_differences() {
        let x = random(&[2, 3, 7, 6], 5);
        let wd = random(&[3, 1, 3, 3], 6);
        let w = random(&[4, 3, 3, 3], 7);
        for (s, pad) in [(1, Pad::same(1)), (2, Pad { top: 0, left: 0, bottom: 1, right: 1 })] {
            let wd64 = wd.to_dtype(DType::F64).unwrap();
            let x64 = x.to_dtype(DType::F64).unwrap();
            // the op's forward pass is the shifted views' (odd and even widths, strides, pads)
            for (xs, pad) in
                [(x64.clone(), pad), (x64.narrow(3, 0, 5).unwrap().contiguous().unwrap(), Pad { top: 1, left: 1, bottom: 0, right: 2 })]
            {
                let d = max_diff(&depthwise_conv2d(&xs, &wd64, s, pad).unwrap(), &depthwise_conv2d_views(&xs, &wd64, s, pad).unwrap());
                assert!(d < 1e-12, "stride {s}: {d}");
            }
            check_grad("depthwise op dx", &x, &|x| weighted_sum(&depthwise_conv2d(x, &wd64, s, pad)?));
            check_grad("depthwise op dw", &wd, &|w| weighted_sum(&depthwise_conv2d(&x64, w, s, pad)?));
            check_grad("depthwise views dx", &x, &|x| weighted_sum(&depthwise_conv2d_views(x, &wd64, s, pad)?));
            check_grad("depthwise views dw", &wd, &|w| weighted_sum(&depthwise_conv2d_views(&x64, w, s, pad)?));
            let w64 = w.to_dtype(DType::F64).unwrap();
            check_grad("conv dx", &x, &|x| weighted_sum(&conv2d(x, &w64, s, pad)?));
            check_grad("conv dw", &w, &|w| weighted_sum(&conv2d(&x64, w, s, pad)?));
        }
        // 1 x 1: the pointwise op
        let w1 = random(&[5, 3, 1, 1], 10);
        let (x64, w164) = (x.to_dtype(DType::F64).unwrap(), w1.to_dtype(DType::F64).unwrap());
        check_grad("pointwise dx", &x, &|x| weighted_sum(&conv2d(x, &w164, 1, Pad::same(0))?));
        check_grad("pointwise dw", &w1, &|w| weighted_sum(&conv2d(&x64, w, 1, Pad::same(0))?));
        let generic = x64.reshape((2, 3, 42)).unwrap().transpose(0, 1).unwrap().contiguous().unwrap().reshape((3, 84)).unwrap();
        let generic = w164
            .reshape((5, 3))
            .unwrap()
            .matmul(&generic)
            .unwrap()
            .reshape((5, 2, 42))
            .unwrap()
            .transpose(0, 1)
            .unwrap()
            .reshape((2, 5, 7, 6))
            .unwrap();
        assert!(max_diff(&conv2d(&x64, &w164, 1, Pad::same(0)).unwrap(), &generic) < 1e-12);
        let g = random(&[3, 1, 7, 6], 8);
        let x7 = random(&[2, 3, 7, 6], 9).to_dtype(DType::F64).unwrap();
        // global depthwise over a 7x6 map is not square: use a 6x6 map
        let x6 = x7.narrow(2, 0, 6).unwrap().contiguous().unwrap();
        let g6 = g.narrow(2, 0, 6).unwrap().contiguous().unwrap();
        check_grad("global depthwise dw", &g6, &|w| weighted_sum(&depthwise_conv2d(&x6, w, 1, Pad::same(0))?));
    }

    #[test]
    fn batch_norm_and_prelu_gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let map = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F64, &dev);
        let bn = BatchNorm::new(vb.pp("bn"), 3).unwrap();
        bn.weight.set(&random(&[3], 11).to_dtype(DType::F64).unwrap().affine(1.0, 1.0).unwrap()).unwrap();
        let x = random(&[4, 3, 2, 2], 12);
        check_grad("batch norm (train) dx", &x, &|x| weighted_sum(&bn.forward(x, Mode::Train)?));
        let (x64, w64, b64) = (
            x.to_dtype(DType::F64).unwrap(),
            random(&[3], 16).to_dtype(DType::F64).unwrap(),
            random(&[3], 17).to_dtype(DType::F64).unwrap(),
        );
        check_grad("batch norm (train) dw", &w64, &|w| weighted_sum(&super::super::channel::batch_norm_train(&x64, w, &b64, 1e-5)?.0));
        check_grad("batch norm (train) db", &b64, &|b| weighted_sum(&super::super::channel::batch_norm_train(&x64, &w64, b, 1e-5)?.0));
        // the fused op equals the formula (the path of CUDA and Metal)
        let fused = super::super::channel::batch_norm_train(&x64, &w64, &b64, 1e-5).unwrap();
        let count = 16.0;
        let shape = [1usize, 3, 1, 1];
        let mean = (super::super::channel::channel_sum(&x64).unwrap() / count).unwrap();
        let xc = x64.broadcast_sub(&mean.reshape(&shape[..]).unwrap()).unwrap();
        let var = (super::super::channel::channel_sum(&xc.sqr().unwrap()).unwrap() / count).unwrap();
        let y = xc.broadcast_div(&(&var + 1e-5).unwrap().sqrt().unwrap().reshape(&shape[..]).unwrap()).unwrap();
        let y = y.broadcast_mul(&w64.reshape(&shape[..]).unwrap()).unwrap().broadcast_add(&b64.reshape(&shape[..]).unwrap()).unwrap();
        assert!(max_diff(&fused.0, &y) < 1e-9 && max_diff(&fused.1, &mean) < 1e-12 && max_diff(&fused.2, &var) < 1e-12);
        // batch norm + PReLU in one op: every input's gradient, per-channel and shared slopes,
        // and the same values as batch norm then PReLU
        let bn_act = |x: &Tensor, w: &Tensor, b: &Tensor, a: &Tensor| {
            super::super::channel::batch_norm_act_train(x, w, b, Some(a), 1e-5).map(|r| r.0)
        };
        for a in [random(&[3], 18), random(&[1], 19)] {
            let a64 = a.to_dtype(DType::F64).unwrap();
            check_grad("bn+prelu dx", &x, &|x| weighted_sum(&bn_act(x, &w64, &b64, &a64)?));
            check_grad("bn+prelu dw", &w64, &|w| weighted_sum(&bn_act(&x64, w, &b64, &a64)?));
            check_grad("bn+prelu db", &b64, &|b| weighted_sum(&bn_act(&x64, &w64, b, &a64)?));
            check_grad("bn+prelu dalpha", &a, &|a| weighted_sum(&bn_act(&x64, &w64, &b64, a)?));
            let composed = PRelu { alpha: a64.clone() }.forward(&fused.0).unwrap();
            assert!(max_diff(&bn_act(&x64, &w64, &b64, &a64).unwrap(), &composed) < 1e-12);
        }
        let p = PRelu { alpha: random(&[3], 13).to_dtype(DType::F64).unwrap() };
        check_grad("prelu dx", &x.affine(1.0, 0.01).unwrap(), &|x| weighted_sum(&p.forward(x)?));
        let x64 = x.affine(1.0, 0.01).unwrap().to_dtype(DType::F64).unwrap();
        check_grad("prelu dalpha", &random(&[3], 14), &|a| weighted_sum(&PRelu { alpha: a.clone() }.forward(&x64)?));
        check_grad("l2 normalize", &random(&[3, 5], 15), &|x| weighted_sum(&l2_normalize(x)?));
    }

    /// Calibration makes batch norm the identity for the calibration batch, in eval mode exactly
    /// and in train mode on that batch.
    #[test]
    fn calibrated_batch_norm_is_identity() {
        let dev = Device::Cpu;
        let map = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
        let bn = BatchNorm::new(vb.pp("bn"), 4).unwrap();
        let x = (random(&[8, 4, 3, 3], 21) * 3.0).unwrap().affine(1.0, 0.7).unwrap();
        assert!(max_diff(&bn.forward(&x, Mode::Eval).unwrap(), &x) < 1e-6, "fresh eval is identity");
        bn.forward(&x, Mode::Calibrate).unwrap();
        assert!(max_diff(&bn.forward(&x, Mode::Eval).unwrap(), &x) < 1e-5);
        assert!(max_diff(&bn.forward(&x, Mode::Train).unwrap(), &x) < 1e-4);
    }
}
