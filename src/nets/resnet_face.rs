//! The seed's `resnet_face18` (arcface-pytorch models/resnet.py): IRBlocks with pre-activation
//! batch norm, optional squeeze-and-excitation, 1x128x128 grayscale input, dropout 0.5, a
//! 512-d embedding after BatchNorm1d. Tensor names follow the PyTorch module names (PReLU slopes
//! are `<prelu>.alpha`).

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::layers::{self, kaiming_out, BatchNorm, Mode, PRelu};
use crate::kernels::Pad;

/// Input side (grayscale).
pub const INPUT_SIZE: usize = 128;
/// Embedding dimension.
pub const EMBEDDING_DIM: usize = 512;

fn conv_weight(vb: &VarBuilder, c_out: usize, c_in: usize, k: usize) -> Result<Tensor> {
    vb.get_with_hints((c_out, c_in, k, k), "weight", kaiming_out(c_out, k))
}

/// Linear layer (PyTorch layout: weight (out, in), bias (out)), Xavier-normal weights as the seed.
struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn new(vb: VarBuilder, c_in: usize, c_out: usize) -> Result<Self> {
        let std = (2.0 / (c_in + c_out) as f64).sqrt();
        Ok(Self {
            weight: vb.get_with_hints((c_out, c_in), "weight", Init::Randn { mean: 0.0, stdev: std })?,
            bias: vb.get_with_hints(c_out, "bias", Init::Const(0.0))?,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }
}

struct Se {
    fc0: Linear,
    prelu: PRelu,
    fc2: Linear,
}

impl Se {
    fn new(vb: VarBuilder, c: usize) -> Result<Self> {
        Ok(Self {
            fc0: Linear::new(vb.pp("fc.0"), c, c / 16)?,
            prelu: PRelu::new(vb.pp("fc.1"), 1)?,
            fc2: Linear::new(vb.pp("fc.2"), c / 16, c)?,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, _, _) = x.dims4()?;
        let y = x.mean_keepdim(3)?.mean_keepdim(2)?.reshape((n, c))?;
        let y = candle_nn::ops::sigmoid(&self.fc2.forward(&self.prelu.forward(&self.fc0.forward(&y)?)?)?)?;
        x.broadcast_mul(&y.reshape((n, c, 1, 1))?)
    }
}

struct IrBlock {
    bn0: BatchNorm,
    conv1: Tensor,
    bn1: BatchNorm,
    prelu: PRelu,
    conv2: Tensor,
    bn2: BatchNorm,
    stride: usize,
    se: Option<Se>,
    downsample: Option<(Tensor, BatchNorm)>,
}

impl IrBlock {
    fn new(vb: VarBuilder, c_in: usize, c_out: usize, stride: usize, use_se: bool) -> Result<Self> {
        let downsample = if stride != 1 || c_in != c_out {
            Some((conv_weight(&vb.pp("downsample.0"), c_out, c_in, 1)?, BatchNorm::new(vb.pp("downsample.1"), c_out)?))
        } else {
            None
        };
        Ok(Self {
            bn0: BatchNorm::new(vb.pp("bn0"), c_in)?,
            conv1: conv_weight(&vb.pp("conv1"), c_in, c_in, 3)?,
            bn1: BatchNorm::new(vb.pp("bn1"), c_in)?,
            prelu: PRelu::new(vb.pp("prelu"), 1)?,
            conv2: conv_weight(&vb.pp("conv2"), c_out, c_in, 3)?,
            bn2: BatchNorm::new(vb.pp("bn2"), c_out)?,
            stride,
            se: if use_se { Some(Se::new(vb.pp("se"), c_out)?) } else { None },
            downsample,
        })
    }
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let out = self.bn0.forward(x, mode)?;
        let out = self.bn1.forward_act(&layers::conv2d(&out, &self.conv1, 1, Pad::same(1))?, mode, Some(&self.prelu.alpha))?;
        let mut out = self.bn2.forward(&layers::conv2d(&out, &self.conv2, self.stride, Pad::same(1))?, mode)?;
        if let Some(se) = &self.se {
            out = se.forward(&out)?;
        }
        let residual = match &self.downsample {
            Some((w, bn)) => bn.forward(&layers::conv2d(x, w, self.stride, Pad::same(0))?, mode)?,
            None => x.clone(),
        };
        self.prelu.forward(&(out + residual)?)
    }
}

/// `resnet_face18(use_se)`: (N, 1, 128, 128) grayscale (x/255 - 0.5) / 0.5 -> (N, 512).
pub struct ResNetFace {
    conv1: Tensor,
    bn1: BatchNorm,
    prelu: PRelu,
    layers: Vec<IrBlock>,
    bn4: BatchNorm,
    fc5: Linear,
    bn5: BatchNorm,
    /// Seed of the next training pass's dropout mask.
    pub dropout_seed: std::sync::atomic::AtomicU64,
}

impl ResNetFace {
    pub fn new(vb: VarBuilder, use_se: bool) -> Result<Self> {
        let mut layers = Vec::new();
        let mut c_in = 64;
        for (i, (c, stride)) in [(64, 1), (128, 2), (256, 2), (512, 2)].into_iter().enumerate() {
            for j in 0..2 {
                let s = if j == 0 { stride } else { 1 };
                layers.push(IrBlock::new(vb.pp(format!("layer{}.{j}", i + 1)), c_in, c, s, use_se)?);
                c_in = c;
            }
        }
        Ok(Self {
            conv1: conv_weight(&vb.pp("conv1"), 64, 1, 3)?,
            bn1: BatchNorm::new(vb.pp("bn1"), 64)?,
            prelu: PRelu::new(vb.pp("prelu"), 1)?,
            layers,
            bn4: BatchNorm::new(vb.pp("bn4"), 512)?,
            fc5: Linear::new(vb.pp("fc5"), 512 * 8 * 8, EMBEDDING_DIM)?,
            bn5: BatchNorm::new(vb.pp("bn5"), EMBEDDING_DIM)?,
            dropout_seed: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let n = x.dim(0)?;
        let x = self.bn1.forward_act(&layers::conv2d(x, &self.conv1, 1, Pad::same(1))?, mode, Some(&self.prelu.alpha))?;
        let mut x = x.max_pool2d(2)?;
        for l in &self.layers {
            x = l.forward(&x, mode)?;
        }
        let x = layers::dropout(&self.bn4.forward(&x, mode)?, 0.5, mode, self.dropout_seed.load(std::sync::atomic::Ordering::Relaxed))?;
        let x = self.fc5.forward(&x.reshape((n, ()))?)?;
        self.bn5.forward(&x, mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Shapes through the whole network (128 -> 64 after the max-pool -> 8 before fc5), with
    /// and without squeeze-and-excitation, and gradients reaching the first convolution.
    #[test]
    fn resnet_face18_embeds_128px_grayscale_to_512_and_trains() {
        let dev = Device::Cpu;
        for use_se in [true, false] {
            let map = candle_nn::VarMap::new();
            let net = ResNetFace::new(crate::nets::seeded_builder(&map, 3, DType::F32, &dev), use_se).unwrap();
            let x = Tensor::randn(0f32, 1f32, (2, 1, INPUT_SIZE, INPUT_SIZE), &dev).unwrap();
            let y = net.forward(&x, Mode::Train).unwrap();
            assert_eq!(y.dims(), &[2, EMBEDDING_DIM]);
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let conv1 = map.data().lock().unwrap()["conv1.weight"].as_tensor().clone();
            let gn = g.get(&conv1).expect("gradient reaches conv1").sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(gn.is_finite() && gn > 0.0, "conv1 gradient norm² {gn}");
            let a = net.forward(&x, Mode::Eval).unwrap();
            let b = net.forward(&x, Mode::Eval).unwrap();
            assert_eq!(a.dims(), &[2, EMBEDDING_DIM]);
            let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(d, 0.0, "eval mode has no dropout");
        }
    }
}
