//! The face pipeline: photo -> faces (box, score, 5 landmarks) -> aligned crops -> unit embeddings.

pub mod align;
pub mod detector;
pub mod embedder;
pub mod ops;
pub mod photo;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use image::{imageops, RgbImage};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

pub use detector::Detection;

/// A weight file the pipeline needs, with the digest it was converted to.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    pub file: &'static str,
    pub sha256: &'static str,
    pub what: &'static str,
}

pub const DETECTOR_MODEL: ModelFile = ModelFile {
    file: "retinaface_mnet025.safetensors",
    sha256: "f481d012b1914e3f11ec0d1062420e7125c54a123b15c376cef325a8d6d1ee43",
    what: "RetinaFace MobileNet-0.25 detector (tools/convert_models.py)",
};
pub const EMBEDDER_MODEL: ModelFile = ModelFile {
    file: "mobilefacenet_arcface.safetensors",
    sha256: "e1503b56703a661e82bc215373f461054e0afff33cf595612abb626790317a3c",
    what: "MobileFaceNet ArcFace embedder (tools/convert_models.py)",
};

/// Why the models could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file {path} is missing: expected the {what}; run tools/fetch_models.sh or pass --models DIR")]
    Missing { path: PathBuf, what: &'static str },
    #[error("model file {path} does not match: expected sha256 {expected} ({what}), found {found}")]
    Mismatch { path: PathBuf, what: &'static str, expected: &'static str, found: String },
    #[error("cannot read model file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("model file {path}: {source}")]
    Load { path: PathBuf, source: candle_core::Error },
}

/// Where models are looked for: `FACEFIND_MODELS`, `models/` next to the executable or two
/// levels up (cargo's target/<profile>/), then the source tree this binary was built from.
pub fn default_models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FACEFIND_MODELS") {
        return PathBuf::from(dir);
    }
    if let Ok(exe) = std::env::current_exe() {
        for up in exe.ancestors().skip(1).take(3) {
            let cand = up.join("models");
            if cand.join(DETECTOR_MODEL.file).is_file() {
                return cand;
            }
        }
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
}

/// Checks a model file's digest and returns its path.
pub fn verify_model(dir: &Path, m: &ModelFile) -> Result<PathBuf, ModelError> {
    let path = dir.join(m.file);
    if !path.is_file() {
        return Err(ModelError::Missing { path, what: m.what });
    }
    let bytes = std::fs::read(&path).map_err(|source| ModelError::Io { path: path.clone(), source })?;
    let found = format!("{:x}", Sha256::digest(&bytes));
    if found != m.sha256 {
        return Err(ModelError::Mismatch { path, what: m.what, expected: m.sha256, found });
    }
    Ok(path)
}

/// `--device auto|cpu|cuda|metal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
    Metal,
}

/// Resolves a device choice: auto prefers CUDA, then Metal, then the CPU.
pub fn select_device(choice: DeviceChoice) -> candle_core::Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => Device::new_cuda(0),
        DeviceChoice::Metal => Device::new_metal(0),
        DeviceChoice::Auto => {
            if candle_core::utils::cuda_is_available() {
                if let Ok(d) = Device::new_cuda(0) {
                    return Ok(d);
                }
            }
            if candle_core::utils::metal_is_available() {
                if let Ok(d) = Device::new_metal(0) {
                    return Ok(d);
                }
            }
            Ok(Device::Cpu)
        }
    }
}

pub fn device_name(d: &Device) -> &'static str {
    match d {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}

/// Settings that change which faces are found or what they embed to.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Settings {
    /// Minimum face probability.
    pub score_threshold: f32,
    /// NMS overlap limit.
    pub nms_iou: f32,
    /// Photos are resized so their longer side is at most this for detection...
    pub detect_max_side: u32,
    /// ...and at least this (small photos are upscaled so small faces reach the 16 px anchors).
    pub detect_min_side: u32,
    /// Sum the embeddings of the crop and its mirror image.
    pub flip: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self { score_threshold: 0.6, nms_iou: 0.4, detect_max_side: 1024, detect_min_side: 640, flip: true }
    }
}

/// A face found in a photo, in the photo's pixel coordinates (after EXIF orientation).
pub type Face = Detection;

/// Detector + embedder on one device.
pub struct Pipeline {
    detector: detector::RetinaFace,
    embedder: embedder::MobileFaceNet,
    device: Device,
    pub settings: Settings,
}

/// Faces per embedder batch.
pub const EMBED_BATCH: usize = 32;

impl Pipeline {
    pub fn load(models_dir: &Path, device: Device, settings: Settings) -> Result<Self, ModelError> {
        let load = |m: &ModelFile| -> Result<VarBuilder<'static>, ModelError> {
            let path = verify_model(models_dir, m)?;
            // SAFETY: the file is memory-mapped read-only and not modified while mapped.
            unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &device) }
                .map_err(|source| ModelError::Load { path, source })
        };
        let with_path = |m: &ModelFile| models_dir.join(m.file);
        let detector = detector::RetinaFace::load(load(&DETECTOR_MODEL)?)
            .map_err(|source| ModelError::Load { path: with_path(&DETECTOR_MODEL), source })?;
        let embedder = embedder::MobileFaceNet::load(load(&EMBEDDER_MODEL)?)
            .map_err(|source| ModelError::Load { path: with_path(&EMBEDDER_MODEL), source })?;
        Ok(Self { detector, embedder, device, settings })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn detector(&self) -> &detector::RetinaFace {
        &self.detector
    }

    pub fn embedder(&self) -> &embedder::MobileFaceNet {
        &self.embedder
    }

    /// Scale applied to a `w` x `h` photo before detection.
    pub fn detect_scale(&self, w: u32, h: u32) -> f32 {
        let long = w.max(h) as f32;
        let s = &self.settings;
        if long > s.detect_max_side as f32 {
            s.detect_max_side as f32 / long
        } else if long < s.detect_min_side as f32 {
            s.detect_min_side as f32 / long
        } else {
            1.0
        }
    }

    /// Finds faces in a photo of any size; coordinates are in the photo's pixels.
    pub fn detect(&self, img: &RgbImage) -> candle_core::Result<Vec<Face>> {
        let scale = self.detect_scale(img.width(), img.height());
        let s = &self.settings;
        if scale == 1.0 {
            return self.detector.detect(img, s.score_threshold, s.nms_iou);
        }
        let w = ((img.width() as f32 * scale).round() as u32).max(1);
        let h = ((img.height() as f32 * scale).round() as u32).max(1);
        let small = resize(img, w, h);
        let (sx, sy) = (img.width() as f32 / w as f32, img.height() as f32 / h as f32);
        let faces = self.detector.detect(&small, s.score_threshold, s.nms_iou)?;
        Ok(faces
            .into_iter()
            .map(|mut f| {
                f.bbox = [f.bbox[0] * sx, f.bbox[1] * sy, f.bbox[2] * sx, f.bbox[3] * sy];
                for p in f.landmarks.iter_mut() {
                    p[0] *= sx;
                    p[1] *= sy;
                }
                f
            })
            .collect())
    }

    /// Aligned 112x112 crops for `faces` (in parallel).
    pub fn align(&self, img: &RgbImage, faces: &[Face]) -> Vec<RgbImage> {
        faces
            .par_iter()
            .map(|f| align::align(img, &f.landmarks).unwrap_or_else(|| align::center_crop(img, 1.0)))
            .collect()
    }

    /// Unit embeddings of aligned crops, batched.
    pub fn embed(&self, crops: &[RgbImage]) -> candle_core::Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(crops.len());
        for chunk in crops.chunks(EMBED_BATCH) {
            out.extend(self.embedder.embed(chunk, self.settings.flip)?);
        }
        Ok(out)
    }
}

/// Resizes with SIMD convolution (fast_image_resize): bilinear with its support widened to the
/// scale when shrinking (no aliasing), Catmull-Rom when enlarging.
pub fn resize(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    use fast_image_resize as fr;
    let filter = if w < img.width() { fr::FilterType::Bilinear } else { fr::FilterType::CatmullRom };
    let src = fr::images::ImageRef::new(img.width(), img.height(), img.as_raw(), fr::PixelType::U8x3);
    let mut dst = fr::images::Image::new(w, h, fr::PixelType::U8x3);
    let opts = fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(filter));
    match src.map_err(|e| e.to_string()).and_then(|src| fr::Resizer::new().resize(&src, &mut dst, &opts).map_err(|e| e.to_string())) {
        Ok(()) => RgbImage::from_raw(w, h, dst.into_vec()).unwrap_or_else(|| imageops::resize(img, w, h, imageops::FilterType::Triangle)),
        Err(e) => {
            tracing::debug!("fast resize failed ({e}); using image::imageops");
            imageops::resize(img, w, h, imageops::FilterType::Triangle)
        }
    }
}

/// The face nearest the image centre, or `None`.
pub fn central_face(faces: &[Face], w: u32, h: u32) -> Option<&Face> {
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    faces.iter().min_by(|a, b| {
        let d = |f: &Face| {
            let c = f.center();
            (c[0] - cx).powi(2) + (c[1] - cy).powi(2)
        };
        d(a).total_cmp(&d(b))
    })
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
