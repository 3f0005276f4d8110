//! Classification heads of face-recognition training: a plain softmax classifier and the margin
//! heads (SphereFace, CosFace, ArcFace, insightface's combined margin) as in arcface-pytorch's
//! `models/metrics.py`. Each margin is a pure function of the cosines, the one-hot labels and its
//! constants; [`Head`] holds the class weights.
//!
//! candle has no `acos`: every angle-space margin is written with cos/sin identities
//! (`cos(θ + m) = cos θ cos m − sin θ sin m`, Chebyshev polynomials for `cos(mθ)`), and
//! SphereFace's `k = ⌊mθ/π⌋` is counted from `cos θ ≤ cos(jπ/m)`.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

use crate::nets::layers::l2_normalize;

/// Which head, with its constants.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HeadKind {
    /// Linear classifier with bias (`nn.Linear`), the baseline.
    Softmax,
    /// SphereProduct: multiplicative angular margin `m`, annealed by
    /// λ = max(5, 1000·(1 + 0.12·iter)^-1), logits scaled by ‖x‖.
    Sphereface { m: u32 },
    /// AddMarginProduct: s·(cos θ − m) for the label.
    Cosface { s: f64, m: f64 },
    /// ArcMarginProduct: s·cos(θ + m) for the label; below th = cos(π − m) it falls back to
    /// cos θ − sin(π − m)·m (or, with `easy_margin`, keeps cos θ when cos θ ≤ 0).
    Arcface { s: f64, m: f64, easy_margin: bool },
    /// insightface's combined margin s·(cos(m1·θ + m2) − m3) for the label (integer m1).
    Combined { s: f64, m1: u32, m2: f64, m3: f64 },
}

impl HeadKind {
    /// The seed's constants (train.py builds AddMarginProduct with s = 30, m = 0.35 and
    /// ArcMarginProduct with s = 30, m = 0.5; insightface's combined margin uses s = 64 and
    /// (1, 0.3, 0.2)).
    pub fn defaults(name: &str) -> Option<Self> {
        Some(match name {
            "softmax" => HeadKind::Softmax,
            "sphereface" => HeadKind::Sphereface { m: 4 },
            "cosface" => HeadKind::Cosface { s: 30.0, m: 0.35 },
            "arcface" => HeadKind::Arcface { s: 30.0, m: 0.5, easy_margin: false },
            "combined" => HeadKind::Combined { s: 64.0, m1: 1, m2: 0.3, m3: 0.2 },
            _ => return None,
        })
    }
    pub fn name(&self) -> &'static str {
        match self {
            HeadKind::Softmax => "softmax",
            HeadKind::Sphereface { .. } => "sphereface",
            HeadKind::Cosface { .. } => "cosface",
            HeadKind::Arcface { .. } => "arcface",
            HeadKind::Combined { .. } => "combined",
        }
    }
}

/// One-hot rows for `labels` (u32, N) over `classes`, in `like`'s dtype and device.
pub fn one_hot(labels: &Tensor, classes: usize, like: &Tensor) -> Result<Tensor> {
    candle_nn::encoding::one_hot(labels.to_dtype(DType::U32)?, classes, 1f32, 0f32)?.to_dtype(like.dtype())
}

/// Puts `target` in the label column and `cos` elsewhere: `onehot·target + (1 − onehot)·cos`.
fn mix(onehot: &Tensor, target: &Tensor, cos: &Tensor) -> Result<Tensor> {
    (onehot * target)? + ((onehot.ones_like()? - onehot)? * cos)?
}

/// sin θ = sqrt(clamp(1 − cos², 0, 1)), as the seed computes it.
fn sine(cos: &Tensor) -> Result<Tensor> {
    cos.sqr()?.neg()?.affine(1.0, 1.0)?.clamp(0.0, 1.0)?.sqrt()
}

/// CosFace logits from cosines (N, C).
pub fn cosface_logits(cos: &Tensor, onehot: &Tensor, s: f64, m: f64) -> Result<Tensor> {
    mix(onehot, &cos.affine(1.0, -m)?, cos)? * s
}

/// ArcFace logits from cosines (N, C), with the seed's `easy_margin` and th/mm fall-back.
pub fn arcface_logits(cos: &Tensor, onehot: &Tensor, s: f64, m: f64, easy_margin: bool) -> Result<Tensor> {
    let phi = (cos.affine(m.cos(), 0.0)? - sine(cos)?.affine(m.sin(), 0.0)?)?;
    let phi = if easy_margin {
        cos.gt(0.0)?.where_cond(&phi, cos)?
    } else {
        let th = (std::f64::consts::PI - m).cos();
        let mm = (std::f64::consts::PI - m).sin() * m;
        cos.gt(th)?.where_cond(&phi, &cos.affine(1.0, -mm)?)?
    };
    mix(onehot, &phi, cos)? * s
}

/// Chebyshev polynomials T_n(c) = cos(nθ) and U_{n−1}(c) = sin(nθ)/sin θ.
fn chebyshev(c: &Tensor, n: u32) -> Result<(Tensor, Tensor)> {
    let (mut t0, mut t1) = (c.ones_like()?, c.clone());
    let (mut u0, mut u1) = (c.zeros_like()?, c.ones_like()?);
    // invariant: t1 = T_k, u1 = U_{k-1}, starting at k = 1
    for _ in 1..n {
        let t2 = ((c * &t1)? * 2.0)?.sub(&t0)?;
        let u2 = ((c * &u1)? * 2.0)?.sub(&u0)?;
        (t0, t1, u0, u1) = (t1, t2, u1, u2);
    }
    if n == 0 {
        return Ok((c.ones_like()?, c.zeros_like()?));
    }
    Ok((t1, u1))
}

/// Combined-margin logits s·(cos(m1·θ + m2) − m3) for the label, s·cos θ elsewhere.
pub fn combined_logits(cos: &Tensor, onehot: &Tensor, s: f64, m1: u32, m2: f64, m3: f64) -> Result<Tensor> {
    let (t, u) = chebyshev(cos, m1)?;
    let sin_m1 = (sine(cos)? * u)?;
    let target = (t.affine(m2.cos(), -m3)? - sin_m1.affine(m2.sin(), 0.0)?)?;
    mix(onehot, &target, cos)? * s
}

/// SphereFace's λ after `iter` forward passes (the seed increments before use, so the first
/// batch sees iter = 1).
pub fn sphereface_lambda(iter: u64) -> f64 {
    (1000.0 * (1.0 + 0.12 * iter as f64).powf(-1.0)).max(5.0)
}

/// SphereFace logits from cosines (N, C) and feature norms (N, 1).
pub fn sphereface_logits(cos: &Tensor, onehot: &Tensor, x_norm: &Tensor, m: u32, lambda: f64) -> Result<Tensor> {
    let cos = cos.clamp(-1.0, 1.0)?;
    let (cos_m, _) = chebyshev(&cos, m)?;
    // k = floor(m θ / π) with the seed's π = 3.14159265, counted without acos; no gradient.
    let c = cos.detach();
    let mut k = c.zeros_like()?;
    // the seed's truncated π on purpose: the reference numbers were made with it
    #[allow(clippy::approx_constant)]
    const SEED_PI: f64 = 3.14159265;
    for j in 1..=m {
        let bound = (j as f64 * SEED_PI / m as f64).cos();
        k = (k + c.le(bound)?.to_dtype(c.dtype())?)?;
    }
    let parity = (&k - (k.affine(0.5, 0.0)?.floor()? * 2.0)?)?;
    let sign = parity.affine(-2.0, 1.0)?;
    let phi = ((sign * cos_m)? - (k * 2.0)?)?;
    let out = ((onehot * (phi - &cos)?)? * (1.0 / (1.0 + lambda)))?.add(&cos)?;
    out.broadcast_mul(x_norm)
}

/// A head: class weights (C, D) (+ bias for softmax) and the margin.
pub struct Head {
    pub kind: HeadKind,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    classes: usize,
    /// Forward passes so far (SphereFace's λ schedule).
    pub iter: u64,
}

impl Head {
    /// `weight` (C, D) Xavier-uniform as the seed; softmax adds `bias` (C).
    pub fn new(vb: VarBuilder, kind: HeadKind, dim: usize, classes: usize) -> Result<Self> {
        let bound = (6.0 / (dim + classes) as f64).sqrt();
        let weight = vb.get_with_hints((classes, dim), "weight", Init::Uniform { lo: -bound, up: bound })?;
        let bias = match kind {
            HeadKind::Softmax => Some(vb.get_with_hints(classes, "bias", Init::Const(0.0))?),
            _ => None,
        };
        Ok(Self { kind, weight, bias, classes, iter: 0 })
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Logits (N, C) for embeddings `x` (N, D) and labels (N); advances SphereFace's counter.
    pub fn forward(&mut self, x: &Tensor, labels: &Tensor) -> Result<Tensor> {
        if let HeadKind::Softmax = self.kind {
            let y = x.matmul(&self.weight.t()?)?;
            return match &self.bias {
                Some(b) => y.broadcast_add(b),
                None => Ok(y),
            };
        }
        let cos = l2_normalize(x)?.matmul(&l2_normalize(&self.weight)?.t()?)?;
        let onehot = one_hot(labels, self.classes, &cos)?;
        match self.kind {
            HeadKind::Softmax => unreachable!("handled above"),
            HeadKind::Sphereface { m } => {
                self.iter += 1;
                let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
                sphereface_logits(&cos, &onehot, &norm, m, sphereface_lambda(self.iter))
            }
            HeadKind::Cosface { s, m } => cosface_logits(&cos, &onehot, s, m),
            HeadKind::Arcface { s, m, easy_margin } => arcface_logits(&cos, &onehot, s, m, easy_margin),
            HeadKind::Combined { s, m1, m2, m3 } => combined_logits(&cos, &onehot, s, m1, m2, m3),
        }
    }
}
