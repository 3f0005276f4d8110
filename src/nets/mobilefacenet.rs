//! MobileFaceNet with the shipped topology (sirius-ai/MobileFaceNet_TF scopes), as a trainable
//! candle-nn graph with explicit batch norm, and, without batch norm, the inference graph that
//! CUDA and Metal run.
//!
//! Every convolution is `<layer>.weight` (OIHW), then `<layer>.bias` (folded form) or batch
//! norm `<layer>.bn.*` (trainable form: its shift is the bias), then PReLU `<layer>.alpha` where
//! the shipped network has one. The
//! folded form (batch norm merged into weight and bias) has exactly the shipped file's tensors,
//! so a trained network loads into the CPU kernels of the pipeline's embedder unchanged.

use std::collections::HashMap;

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::layers::{self, add_channel_bias, BatchNorm, Mode, PRelu};
use crate::kernels::Pad;

/// Side of the aligned input crop.
pub const INPUT_SIZE: usize = 112;
/// Embedding dimension.
pub const EMBEDDING_DIM: usize = 192;

/// Inverted-residual stages: (scope, expansion, output channels, repeats, first stride).
pub const STAGES: [(&str, usize, usize, usize, usize); 5] = [
    ("Conv2d_2", 2, 64, 5, 2),
    ("Conv2d_3", 4, 128, 1, 2),
    ("Conv2d_4", 2, 128, 6, 1),
    ("Conv2d_5", 4, 128, 1, 2),
    ("Conv2d_6", 2, 128, 2, 1),
];

/// TensorFlow SAME padding of a square kernel as a [`Pad`].
pub fn tf_pad(n: usize, k: usize, s: usize) -> Pad {
    let (a, b) = Pad::tf_same(n, k, s);
    Pad { top: a, left: a, bottom: b, right: b }
}

/// Whether the graph carries batch norm (training) or has it folded into the convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Trainable,
    Folded,
}

/// Convolution (+ batch norm) (+ PReLU).
pub struct ConvBn {
    name: String,
    weight: Tensor,
    /// Folded form only: in the trainable form batch norm's shift plays this part.
    bias: Option<Tensor>,
    bn: Option<BatchNorm>,
    act: Option<PRelu>,
    stride: usize,
    pad: Pad,
    depthwise: bool,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn load(
        vb: &VarBuilder,
        name: &str,
        form: Form,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: Pad,
        depthwise: bool,
        prelu: bool,
    ) -> Result<Self> {
        let v = vb.pp(name);
        let w_in = if depthwise { 1 } else { c_in };
        let fan = if depthwise { k * k } else { c_out * k * k };
        let weight = v.get_with_hints((c_out, w_in, k, k), "weight", Init::Randn { mean: 0.0, stdev: (2.0 / fan as f64).sqrt() })?;
        let (bias, bn) = match form {
            Form::Trainable => (None, Some(BatchNorm::new(v.pp("bn"), c_out)?)),
            Form::Folded => (Some(v.get_with_hints(c_out, "bias", Init::Const(0.0))?), None),
        };
        let act = if prelu { Some(PRelu::new(v.clone(), c_out)?) } else { None };
        Ok(Self { name: name.to_string(), weight, bias, bn, act, stride, pad, depthwise })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = if self.depthwise {
            layers::depthwise_conv2d(x, &self.weight, self.stride, self.pad)?
        } else {
            layers::conv2d(x, &self.weight, self.stride, self.pad)?
        };
        let y = match &self.bias {
            Some(b) => add_channel_bias(&y, b)?,
            None => y,
        };
        if let Some(bn) = &self.bn {
            return bn.forward_act(&y, mode, self.act.as_ref().map(|a| &a.alpha));
        }
        match &self.act {
            Some(a) => a.forward(&y),
            None => Ok(y),
        }
    }

    /// This layer's tensors with batch norm folded in (eval-mode statistics).
    fn folded(&self, out: &mut HashMap<String, Tensor>) -> Result<()> {
        let c_out = self.weight.dim(0)?;
        let bias = match &self.bias {
            Some(b) => b.clone(),
            None => Tensor::zeros(c_out, self.weight.dtype(), self.weight.device())?,
        };
        let (w, b) = match &self.bn {
            None => (self.weight.clone(), bias),
            Some(bn) => {
                let (scale, shift) = bn.scale_shift()?;
                let w = self.weight.broadcast_mul(&scale.reshape(((), 1, 1, 1))?)?;
                let b = ((&bias * &scale)? + shift)?;
                (w, b)
            }
        };
        out.insert(format!("{}.weight", self.name), w.detach().contiguous()?);
        out.insert(format!("{}.bias", self.name), b.detach().contiguous()?);
        if let Some(a) = &self.act {
            out.insert(format!("{}.alpha", self.name), a.alpha.detach().contiguous()?);
        }
        Ok(())
    }
}

struct Block {
    expand: ConvBn,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

/// MobileFaceNet: 112x112 RGB (x - 127.5) / 128, NCHW -> 192-d embedding (not normalised).
pub struct MobileFaceNet {
    stem: Vec<ConvBn>,
    blocks: Vec<Block>,
    head: Vec<ConvBn>,
}

impl MobileFaceNet {
    /// Builds the graph from `vb`: a `VarMap` (training; missing tensors are initialised) or a
    /// weight file (inference; every tensor must be there).
    pub fn new(vb: VarBuilder, form: Form) -> Result<Self> {
        let mut size = INPUT_SIZE;
        let stem = vec![
            ConvBn::load(&vb, "Conv2d_0", form, 3, 64, 3, 2, tf_pad(size, 3, 2), false, true)?,
            ConvBn::load(&vb, "SeparableConv2d", form, 64, 64, 3, 1, Pad::same(1), true, true)?,
            ConvBn::load(&vb, "Conv", form, 64, 64, 1, 1, Pad::same(0), false, false)?,
        ];
        size = size.div_ceil(2);
        let mut blocks = Vec::new();
        let mut c_in = 64;
        for (scope, t, c_out, repeats, stride) in STAGES {
            for i in 0..repeats {
                let s = if i == 0 { stride } else { 1 };
                let p = format!("{scope}_InvResBlock_{i}");
                let hidden = c_in * t;
                blocks.push(Block {
                    expand: ConvBn::load(&vb, &format!("{p}.Conv"), form, c_in, hidden, 1, 1, Pad::same(0), false, true)?,
                    depthwise: ConvBn::load(
                        &vb,
                        &format!("{p}.SeparableConv2d"),
                        form,
                        hidden,
                        hidden,
                        3,
                        s,
                        tf_pad(size, 3, s),
                        true,
                        true,
                    )?,
                    project: ConvBn::load(&vb, &format!("{p}.Conv_1"), form, hidden, c_out, 1, 1, Pad::same(0), false, false)?,
                    residual: s == 1 && c_in == c_out,
                });
                size = size.div_ceil(s);
                c_in = c_out;
            }
        }
        let head = vec![
            ConvBn::load(&vb, "Conv2d_7", form, c_in, 512, 1, 1, Pad::same(0), false, true)?,
            ConvBn::load(&vb, "Logits.SeparableConv2d", form, 512, 512, size, 1, Pad::same(0), true, false)?,
            ConvBn::load(&vb, "Logits.Conv", form, 512, 512, 1, 1, Pad::same(0), false, false)?,
            ConvBn::load(&vb, "Logits.LinearConv1x1", form, 512, EMBEDDING_DIM, 1, 1, Pad::same(0), false, false)?,
        ];
        Ok(Self { stem, blocks, head })
    }

    /// (N, 3, 112, 112) -> (N, 192).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let n = x.dim(0)?;
        let mut x = x.clone();
        for l in &self.stem {
            x = l.forward(&x, mode)?;
        }
        for b in &self.blocks {
            let y = b.project.forward(&b.depthwise.forward(&b.expand.forward(&x, mode)?, mode)?, mode)?;
            x = if b.residual { (y + x)? } else { y };
        }
        for l in &self.head {
            x = l.forward(&x, mode)?;
        }
        x.reshape((n, EMBEDDING_DIM))
    }

    fn layers(&self) -> impl Iterator<Item = &ConvBn> {
        self.stem.iter().chain(self.blocks.iter().flat_map(|b| [&b.expand, &b.depthwise, &b.project])).chain(self.head.iter())
    }

    /// The inference tensors (batch norm folded), named as the shipped weight file.
    pub fn folded(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for l in self.layers() {
            l.folded(&mut out)?;
        }
        Ok(out)
    }
}
