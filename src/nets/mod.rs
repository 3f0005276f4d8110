//! Trainable network definitions (candle-nn `VarMap`/`VarBuilder`, explicit batch norm), used
//! by training and, with batch norm folded, as the inference graph on CUDA and Metal.

pub mod channel;
mod depthwise;
pub mod input;
pub mod layers;
pub mod manifest;
pub mod mobilefacenet;
pub mod pointwise;
pub mod resnet_face;

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};

pub use layers::Mode;

/// A `VarMap` backend whose fresh tensors are drawn from a seeded generator keyed by the
/// tensor's name (candle's CPU generator cannot be seeded), so a run from scratch repeats
/// exactly. Tensors already in the map are returned as they are.
struct SeededVars {
    map: VarMap,
    seed: u64,
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

impl candle_nn::var_builder::SimpleBackend for SeededVars {
    fn get(&self, s: candle_core::Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self.map.data().lock().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!("tensor {name}: shape {:?}, expected {:?}", v.shape(), s);
            }
            return Ok(v.as_tensor().clone());
        }
        let n = s.elem_count();
        let mut rng = crate::util::rng::Rng::stream(self.seed, name_hash(name), 0);
        let mut unit = || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let values: Vec<f64> = match h {
            Init::Const(c) => vec![c; n],
            Init::Uniform { lo, up } => (0..n).map(|_| lo + (up - lo) * unit()).collect(),
            Init::Randn { mean, stdev } => {
                (0..n).map(|_| mean + stdev * (-2.0 * unit().ln()).sqrt() * (std::f64::consts::TAU * unit()).cos()).collect()
            }
            other => {
                return other.var(s, dtype, dev).map(|v| {
                    data.insert(name.to_string(), v.clone());
                    v.as_tensor().clone()
                })
            }
        };
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let v = candle_core::Var::from_tensor(&t)?;
        data.insert(name.to_string(), v.clone());
        Ok(v.as_tensor().clone())
    }
    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("tensor {name}: a VarMap creates tensors from their shape")
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.map.data().lock().map(|d| d.contains_key(name)).unwrap_or(false)
    }
}

/// A builder over `map` that initialises missing tensors repeatably from `seed`.
pub fn seeded_builder(map: &VarMap, seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(SeededVars { map: map.clone(), seed }), dtype, device.clone())
}

/// The embedding networks facefind can train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// MobileFaceNet, the shipped embedder's topology: 112x112 RGB, 192-d.
    Mobilefacenet,
    /// The seed's resnet_face18 with squeeze-and-excitation: 128x128 grayscale, 512-d.
    ResnetFace18,
    /// resnet_face18 without squeeze-and-excitation.
    ResnetFace18NoSe,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Mobilefacenet => "mobilefacenet",
            Arch::ResnetFace18 => "resnet-face18",
            Arch::ResnetFace18NoSe => "resnet-face18-no-se",
        }
    }
    /// Side of the square input.
    pub fn input_size(self) -> usize {
        match self {
            Arch::Mobilefacenet => mobilefacenet::INPUT_SIZE,
            _ => resnet_face::INPUT_SIZE,
        }
    }
    /// Input channels: 3 (RGB, (x - 127.5) / 128) or 1 (grayscale, (x - 127.5) / 127.5).
    pub fn channels(self) -> usize {
        match self {
            Arch::Mobilefacenet => 3,
            _ => 1,
        }
    }
    pub fn embedding_dim(self) -> usize {
        match self {
            Arch::Mobilefacenet => mobilefacenet::EMBEDDING_DIM,
            _ => resnet_face::EMBEDDING_DIM,
        }
    }
    /// (mean, divisor) applied to 0..255 pixels.
    pub fn normalisation(self) -> (f32, f32) {
        match self {
            Arch::Mobilefacenet => (127.5, 128.0),
            _ => (127.5, 127.5),
        }
    }
}

/// One of the trainable networks.
pub enum Net {
    MobileFaceNet(mobilefacenet::MobileFaceNet),
    ResNetFace(resnet_face::ResNetFace),
}

impl Net {
    /// The trainable graph (batch norm explicit). With a `VarMap` builder, tensors missing from
    /// the map are created with the network's initialisation.
    pub fn trainable(arch: Arch, vb: VarBuilder) -> Result<Self> {
        Ok(match arch {
            Arch::Mobilefacenet => Net::MobileFaceNet(mobilefacenet::MobileFaceNet::new(vb, mobilefacenet::Form::Trainable)?),
            Arch::ResnetFace18 => Net::ResNetFace(resnet_face::ResNetFace::new(vb, true)?),
            Arch::ResnetFace18NoSe => Net::ResNetFace(resnet_face::ResNetFace::new(vb, false)?),
        })
    }

    /// The inference graph from a weight file written by [`Net::inference_tensors`].
    pub fn inference(arch: Arch, vb: VarBuilder) -> Result<Self> {
        Ok(match arch {
            Arch::Mobilefacenet => Net::MobileFaceNet(mobilefacenet::MobileFaceNet::new(vb, mobilefacenet::Form::Folded)?),
            _ => Self::trainable(arch, vb)?,
        })
    }

    /// (N, C, S, S) normalised input -> (N, D) embeddings (not L2-normalised).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match self {
            Net::MobileFaceNet(m) => m.forward(x, mode),
            Net::ResNetFace(m) => m.forward(x, mode),
        }
    }

    /// The tensors of the inference form: MobileFaceNet with batch norm folded into the
    /// convolutions (the shipped file's names); resnet_face18 keeps its batch norm (its
    /// pre-activation batch norm precedes a zero-padded convolution, which cannot absorb it
    /// exactly), and runs in eval mode.
    pub fn inference_tensors(&self, vars: &candle_nn::VarMap) -> Result<HashMap<String, Tensor>> {
        match self {
            Net::MobileFaceNet(m) => m.folded(),
            Net::ResNetFace(_) => {
                let data = vars.data().lock().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                data.iter().map(|(k, v)| Ok((k.clone(), v.as_tensor().detach().contiguous()?))).collect()
            }
        }
    }
}
