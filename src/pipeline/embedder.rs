//! MobileFaceNet trained with the ArcFace loss: 112x112 aligned RGB face -> 192-d unit vector.
//!
//! Layer names are the TensorFlow scopes of sirius-ai/MobileFaceNet_TF (`Conv2d_0`,
//! `Conv2d_4_InvResBlock_2.SeparableConv2d`, `Logits.LinearConv1x1`, ...). BatchNorm is folded
//! into the convolutions; PReLU slopes are `<layer>.alpha`. Padding is TensorFlow's SAME, which
//! pads only the bottom/right edge for stride-2 layers on even sizes.

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use image::RgbImage;

use super::ops::{ActKind, ConvAct, ConvSpec};
use crate::kernels::to_native;
use crate::nets::layers::l2_normalize;

use crate::nets::mobilefacenet::{tf_pad, EMBEDDING_DIM, INPUT_SIZE, STAGES};

/// 1x1 expand (PReLU) -> 3x3 depthwise (PReLU) -> 1x1 project (linear), residual when shapes allow.
struct InvertedResidual {
    expand: ConvAct,
    depthwise: ConvAct,
    project: ConvAct,
    residual: bool,
}

impl InvertedResidual {
    fn load(vb: VarBuilder, size: usize, c_in: usize, c_out: usize, t: usize, stride: usize) -> Result<Self> {
        let hidden = c_in * t;
        Ok(Self {
            expand: ConvAct::load(vb.pp("Conv"), ConvSpec::dense(c_in, hidden, 1, 1, 0), ActKind::PRelu)?,
            depthwise: ConvAct::load(
                vb.pp("SeparableConv2d"),
                ConvSpec::depthwise(hidden, 3, stride, 0).with_pad(tf_pad(size, 3, stride)),
                ActKind::PRelu,
            )?,
            project: ConvAct::load(vb.pp("Conv_1"), ConvSpec::dense(hidden, c_out, 1, 1, 0), ActKind::Linear)?,
            residual: stride == 1 && c_in == c_out,
        })
    }
}

impl Module for InvertedResidual {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.depthwise.forward(&self.expand.forward(x)?)?;
        if self.residual {
            self.project.forward_add(&h, x)
        } else {
            self.project.forward(&h)
        }
    }
}

pub struct MobileFaceNet {
    layers: Vec<Box<dyn Module + Send + Sync>>,
    device: Device,
}

impl MobileFaceNet {
    pub fn load(vb: VarBuilder) -> Result<Self> {
        let mut layers: Vec<Box<dyn Module + Send + Sync>> = Vec::new();
        let mut size = INPUT_SIZE;
        let stem = ConvSpec::dense(3, 64, 3, 2, 0).with_pad(tf_pad(size, 3, 2));
        layers.push(Box::new(ConvAct::load(vb.pp("Conv2d_0"), stem, ActKind::PRelu)?));
        size = size.div_ceil(2);
        let dw = ConvSpec::depthwise(64, 3, 1, 1);
        layers.push(Box::new(ConvAct::load(vb.pp("SeparableConv2d"), dw, ActKind::PRelu)?));
        layers.push(Box::new(ConvAct::load(vb.pp("Conv"), ConvSpec::dense(64, 64, 1, 1, 0), ActKind::Linear)?));
        let mut c_in = 64;
        for (scope, t, c_out, repeats, stride) in STAGES {
            for i in 0..repeats {
                let s = if i == 0 { stride } else { 1 };
                let vb = vb.pp(format!("{scope}_InvResBlock_{i}"));
                layers.push(Box::new(InvertedResidual::load(vb, size, c_in, c_out, t, s)?));
                size = size.div_ceil(s);
                c_in = c_out;
            }
        }
        layers.push(Box::new(ConvAct::load(vb.pp("Conv2d_7"), ConvSpec::dense(c_in, 512, 1, 1, 0), ActKind::PRelu)?));
        let logits = vb.pp("Logits");
        // Global depthwise convolution over the whole 7x7 map, then two linear 1x1 layers.
        let gd = ConvSpec::depthwise(512, size, 1, 0);
        layers.push(Box::new(ConvAct::load(logits.pp("SeparableConv2d"), gd, ActKind::Linear)?));
        layers.push(Box::new(ConvAct::load(logits.pp("Conv"), ConvSpec::dense(512, 512, 1, 1, 0), ActKind::Linear)?));
        let out = ConvSpec::dense(512, EMBEDDING_DIM, 1, 1, 0);
        layers.push(Box::new(ConvAct::load(logits.pp("LinearConv1x1"), out, ActKind::Linear)?));
        Ok(Self { layers, device: vb.device().clone() })
    }

    /// (N, 3, 112, 112) normalised RGB -> (N, 192), not yet L2-normalised.
    pub fn forward_raw(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.dim(0)?;
        let mut x = to_native(x)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        x.reshape((n, EMBEDDING_DIM))
    }

    /// Embeds aligned 112x112 crops; `flip` adds the mirror image's embedding before
    /// normalising (the arcface-pytorch test protocol). Returns unit vectors.
    pub fn embed(&self, crops: &[RgbImage], flip: bool) -> Result<Vec<Vec<f32>>> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let x = crops_tensor(crops, false, &self.device)?;
        let mut e = self.forward_raw(&x)?;
        if flip {
            let xf = crops_tensor(crops, true, &self.device)?;
            e = (e + self.forward_raw(&xf)?)?;
        }
        l2_normalize(&e)?.to_vec2()
    }
}

/// Crops -> (N, 3, 112, 112) as MobileFaceNet takes them ([`crate::nets::input`]: the one
/// definition of every architecture's input), optionally mirrored left-right.
pub fn crops_tensor(crops: &[RgbImage], mirror: bool, device: &Device) -> Result<Tensor> {
    use crate::nets::input::{batch_tensor, Augment};
    let refs: Vec<&RgbImage> = crops.iter().collect();
    batch_tensor(&refs, &vec![Augment { flip: mirror, ..Augment::centre() }; crops.len()], crate::nets::Arch::Mobilefacenet, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint with a missing or mis-shaped tensor names the tensor in the error.
    #[test]
    fn missing_and_misshaped_tensors_name_themselves() {
        let dev = Device::Cpu;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mobilefacenet_arcface.safetensors");
        let mut tensors = candle_core::safetensors::load(&path, &dev).unwrap();
        let dir = tempfile::tempdir().unwrap();

        let missing = "Conv2d_4_InvResBlock_2.Conv_1.weight";
        let t = tensors.remove(missing).unwrap();
        let p = dir.path().join("missing.safetensors");
        candle_core::safetensors::save(&tensors, &p).unwrap();
        // SAFETY: the file was written just above in a private temporary folder and nothing
        // changes it while it is mapped.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&p], candle_core::DType::F32, &dev).unwrap() };
        let err = MobileFaceNet::load(vb).err().expect("load must fail").to_string();
        assert!(err.contains(missing), "{err}");

        tensors.insert(missing.to_string(), t);
        let bad = "Logits.LinearConv1x1.weight";
        tensors.insert(bad.to_string(), Tensor::zeros((128, 512, 1, 1), candle_core::DType::F32, &dev).unwrap());
        let p = dir.path().join("misshaped.safetensors");
        candle_core::safetensors::save(&tensors, &p).unwrap();
        // SAFETY: the file was written just above in a private temporary folder and nothing
        // changes it while it is mapped.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&p], candle_core::DType::F32, &dev).unwrap() };
        let err = MobileFaceNet::load(vb).err().expect("load must fail").to_string();
        assert!(err.contains(bad) && err.contains("192"), "{err}");
    }
}
