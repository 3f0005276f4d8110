//! Network inputs from aligned 112x112 face crops: per-arch size, colour and normalisation,
//! with the training augmentations (horizontal flip; random crop for the 128-px grayscale arch).

use candle_core::{Device, Tensor};
use image::RgbImage;
use rayon::prelude::*;

use super::Arch;
use crate::util::rng::Rng;

/// How one sample is augmented.
#[derive(Debug, Clone, Copy, Default)]
pub struct Augment {
    pub flip: bool,
    /// Crop offset inside the 144x144 resized face (resnet_face18 only); (8, 8) is the centre.
    pub dx: usize,
    pub dy: usize,
}

impl Augment {
    pub fn centre() -> Self {
        Self { flip: false, dx: 8, dy: 8 }
    }
    pub fn random(rng: &mut Rng, arch: Arch) -> Self {
        let flip = rng.below(2) == 1;
        let (dx, dy) = if arch.channels() == 1 { (rng.below(17), rng.below(17)) } else { (8, 8) };
        Self { flip, dx, dy }
    }
}

/// One sample's network input as `arch` expects it (C x S x S, normalised): MobileFaceNet takes
/// the aligned crop as is; resnet_face18 takes it resized to 144, cropped to 128, grayscale.
pub fn input_values(crop: &RgbImage, arch: Arch, aug: Augment, dst: &mut [f32]) {
    let (mean, div) = arch.normalisation();
    let s = arch.input_size();
    if arch.channels() == 3 {
        for (i, px) in crop.pixels().enumerate() {
            let (y, mut x) = (i / s, i % s);
            if aug.flip {
                x = s - 1 - x;
            }
            for c in 0..3 {
                dst[c * s * s + y * s + x] = (px.0[c] as f32 - mean) / div;
            }
        }
    } else {
        let big = crate::photo::resize(crop, 144, 144);
        for y in 0..s {
            for x in 0..s {
                let p = big.get_pixel((x + aug.dx) as u32, (y + aug.dy) as u32).0;
                // ITU-R 601 luma, as PIL's convert('L')
                let g = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
                let xx = if aug.flip { s - 1 - x } else { x };
                dst[y * s + xx] = (g - mean) / div;
            }
        }
    }
}

/// A batch tensor (N, C, S, S) for `crops` with per-sample augmentation.
pub fn batch_tensor(crops: &[&RgbImage], augs: &[Augment], arch: Arch, device: &Device) -> candle_core::Result<Tensor> {
    let (c, s) = (arch.channels(), arch.input_size());
    // RGB architectures take the aligned crop as it is; the grayscale one resizes it
    if let Some(bad) = crops.iter().find(|x| c == 3 && (x.width() as usize != s || x.height() as usize != s)) {
        candle_core::bail!("{} expects {s}x{s} crops, got {}x{}", arch.name(), bad.width(), bad.height());
    }
    let per = c * s * s;
    let mut data = vec![0f32; crops.len() * per];
    data.par_chunks_mut(per).zip(crops.par_iter().zip(augs)).for_each(|(dst, (crop, aug))| input_values(crop, arch, *aug, dst));
    Tensor::from_vec(data, (crops.len(), c, s, s), device)
}
