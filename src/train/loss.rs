//! Training losses on logits: cross-entropy and focal loss (γ = 2 in the seed).
//!
//! The seed's `FocalLoss` applies the focal factor (1 − p)^γ to the batch-mean cross-entropy,
//! so every sample gets the same weight. Here it is applied per sample, as in Lin et al.:
//! loss = mean_i (1 − p_i)^γ · CE_i with p_i = exp(−CE_i), so that easy samples count less.

use candle_core::{DType, Result, Tensor, D};

use super::heads::one_hot;

/// Which loss.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LossKind {
    Ce,
    Focal { gamma: f64 },
}

/// Per-sample cross-entropy (N,) of logits (N, C) and labels (N).
pub fn cross_entropy_per_sample(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let onehot = one_hot(labels, logits.dim(1)?, logits)?;
    (logp * onehot)?.sum(D::Minus1)?.neg()
}

/// Per-sample focal loss (N,): (1 − p)^γ · CE with p = exp(−CE).
pub fn focal_per_sample(logits: &Tensor, labels: &Tensor, gamma: f64) -> Result<Tensor> {
    let ce = cross_entropy_per_sample(logits, labels)?;
    let one_minus_p = ce.neg()?.exp()?.neg()?.affine(1.0, 1.0)?;
    // (1 - p) >= 0; powf on a tiny negative rounding error would be NaN.
    one_minus_p.clamp(0.0, 1.0)?.powf(gamma)? * ce
}

/// The batch-mean loss.
pub fn loss(kind: LossKind, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    match kind {
        LossKind::Ce => cross_entropy_per_sample(logits, labels)?.mean_all(),
        LossKind::Focal { gamma } => focal_per_sample(logits, labels, gamma)?.mean_all(),
    }
}

/// Number of rows whose arg-max is the label.
pub fn correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let pred = logits.argmax(D::Minus1)?.to_dtype(DType::U32)?;
    let ok = pred.eq(&labels.to_dtype(DType::U32)?)?.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()?;
    Ok(ok as usize)
}
