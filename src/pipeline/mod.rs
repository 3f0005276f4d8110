//! The face pipeline: photo -> faces (box, score, 5 landmarks) -> aligned crops -> unit embeddings.

pub mod align;
pub mod detector;
pub mod embedder;
pub mod models;
pub mod onnx;
pub mod ops;
pub mod stream;
mod winograd;

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use image::RgbImage;
use rayon::prelude::*;

pub use detector::Detection;
pub use models::{ModelError, ModelFile, ModelSource, DETECTOR_MODEL, EMBEDDER_MODEL};

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
    /// ...and at least this (small photos are upscaled so small faces reach the 16 px anchors),
    /// as `upscale` says.
    pub detect_min_side: u32,
    /// When a photo smaller than `detect_min_side` is upscaled for detection.
    pub upscale: Upscale,
    /// Sum the embeddings of the crop and its mirror image.
    pub flip: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self { score_threshold: 0.6, nms_iou: 0.4, detect_max_side: 1024, detect_min_side: 640, upscale: Upscale::WhenNeeded, flip: true }
    }
}

/// A face box side (pixels of the photo) under which [`Upscale::WhenNeeded`] looks again at a
/// larger size.
pub const SMALL_FACE: f32 = 40.0;

/// When a small photo (longer side under [`Settings::detect_min_side`]) is upscaled for detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Upscale {
    /// Always (one pass, at the larger size).
    Always,
    /// Detect at the photo's own size; upscale and detect again when that finds no face, or a
    /// face smaller than [`SMALL_FACE`] pixels (where one small face is found, others are
    /// often missed: they sit at the 16 px anchors' limit).
    WhenNeeded,
    /// Never: detect at the photo's own size.
    Never,
}

/// A face found in a photo, in the photo's pixel coordinates (after EXIF orientation).
pub type Face = Detection;

/// The face embedder: our CPU kernels, or the candle graph of [`crate::nets`] (CUDA, Metal, and
/// architectures without CPU kernels).
pub enum Embedder {
    Kernels(embedder::MobileFaceNet),
    Graph {
        net: crate::nets::Net,
        arch: crate::nets::Arch,
    },
    /// A network read from an ONNX file.
    Onnx(Box<onnx::OnnxNet>),
}

impl Embedder {
    /// The CPU-kernel network, when that is what runs.
    pub fn kernels(&self) -> Option<&embedder::MobileFaceNet> {
        match self {
            Embedder::Kernels(m) => Some(m),
            Embedder::Graph { .. } | Embedder::Onnx(_) => None,
        }
    }

    /// Unit embeddings of aligned 112x112 crops; `flip` adds the mirror image's embedding.
    pub fn embed(&self, crops: &[RgbImage], flip: bool, device: &Device) -> candle_core::Result<Vec<Vec<f32>>> {
        match self {
            Embedder::Kernels(m) => m.embed(crops, flip),
            Embedder::Onnx(net) => flip_fused(crops, flip, |refs, mirror| net.forward(refs, mirror, device)),
            Embedder::Graph { net, arch } => flip_fused(crops, flip, |refs, mirror| {
                use crate::nets::input::{batch_tensor, Augment};
                let x = batch_tensor(refs, &vec![Augment { flip: mirror, ..Augment::centre() }; refs.len()], *arch, device)?;
                net.forward(&x, crate::nets::Mode::Eval)
            }),
        }
    }
}

/// Unit embeddings from a network's raw output `forward(crops, mirrored)`, with the mirror
/// image's output added first when `flip`.
fn flip_fused(
    crops: &[RgbImage],
    flip: bool,
    forward: impl Fn(&[&RgbImage], bool) -> candle_core::Result<candle_core::Tensor>,
) -> candle_core::Result<Vec<Vec<f32>>> {
    if crops.is_empty() {
        return Ok(Vec::new());
    }
    let refs: Vec<&RgbImage> = crops.iter().collect();
    let mut e = forward(&refs, false)?;
    if flip {
        e = (e + forward(&refs, true)?)?;
    }
    crate::nets::layers::l2_normalize(&e)?.to_vec2()
}

/// Detector + embedder on one device.
pub struct Pipeline {
    detector: detector::RetinaFace,
    embedder: Embedder,
    /// sha256 of the embedder's weight file.
    embedder_sha256: String,
    device: Device,
    pub settings: Settings,
}

/// Faces per embedder batch.
pub const EMBED_BATCH: usize = 32;

/// A VarBuilder over safetensors bytes.
fn weights(bytes: Vec<u8>, path: &Path, device: &Device) -> Result<VarBuilder<'static>, ModelError> {
    VarBuilder::from_buffered_safetensors(bytes, DType::F32, device).map_err(|source| ModelError::Load { path: path.to_path_buf(), source })
}

impl Pipeline {
    pub fn load(models: impl Into<ModelSource>, device: Device, settings: Settings) -> Result<Self, ModelError> {
        Self::load_with_embedder(models, None, device, settings)
    }

    /// Loads the detector from `models` and the embedder from `embedder_file` (a file written
    /// by `facefind train`, checked against its manifest) or the shipped one.
    pub fn load_with_embedder(
        models: impl Into<ModelSource>,
        embedder_file: Option<&Path>,
        device: Device,
        settings: Settings,
    ) -> Result<Self, ModelError> {
        let models = models.into();
        let det_path = models.path(&DETECTOR_MODEL);
        let vb = weights(models.read(&DETECTOR_MODEL)?.into_owned(), &det_path, &device)?;
        let detector = detector::RetinaFace::load(vb).map_err(|source| ModelError::Load { path: det_path, source })?;
        if let Some(f) = embedder_file.filter(|f| f.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"))) {
            let bad = |reason: String| ModelError::Embedder { path: f.to_path_buf(), reason };
            let manifest = f.with_extension("json");
            let pre: Option<onnx::Preprocess> = match std::fs::read(&manifest) {
                Ok(text) => Some(serde_json::from_slice(&text).map_err(|e| bad(format!("manifest {}: {e}", manifest.display())))?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(bad(format!("manifest {}: {e}", manifest.display()))),
            };
            let (bytes, digest) = models::read_verified(f, pre.as_ref().and_then(|p| p.sha256.as_deref()), "face embedder")?;
            let net = onnx::OnnxNet::load(bytes, pre, &device).map_err(bad)?;
            // the embeddings depend on the preprocessing too
            let digest = crate::util::digest::sha256_hex(format!("{digest} {}", net.pre.key()).as_bytes());
            return Ok(Self { detector, embedder: Embedder::Onnx(Box::new(net)), embedder_sha256: digest, device, settings });
        }
        let (path, arch, bytes, digest) = match embedder_file {
            None => {
                let bytes = models.read(&EMBEDDER_MODEL)?.into_owned();
                (models.path(&EMBEDDER_MODEL), crate::nets::Arch::Mobilefacenet, bytes, EMBEDDER_MODEL.sha256.to_string())
            }
            Some(f) => {
                let m = crate::nets::manifest::Manifest::read_for(f)
                    .map_err(|e| ModelError::Embedder { path: f.to_path_buf(), reason: format!("{e:#}") })?;
                let (bytes, digest) = models::read_verified(f, Some(&m.sha256), "face embedder")?;
                (f.to_path_buf(), m.arch, bytes, digest)
            }
        };
        let vb = weights(bytes, &path, &device)?;
        let load_err = |source| ModelError::Load { path: path.clone(), source };
        let embedder = if arch == crate::nets::Arch::Mobilefacenet && crate::kernels::channels_last(&device) {
            Embedder::Kernels(embedder::MobileFaceNet::load(vb).map_err(load_err)?)
        } else {
            Embedder::Graph { net: crate::nets::Net::inference(arch, vb).map_err(load_err)?, arch }
        };
        Ok(Self { detector, embedder, embedder_sha256: digest, device, settings })
    }

    /// sha256 of the embedder's weight file (what the catalog's embeddings depend on).
    pub fn embedder_sha256(&self) -> &str {
        &self.embedder_sha256
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn detector(&self) -> &detector::RetinaFace {
        &self.detector
    }

    pub fn embedder(&self) -> &Embedder {
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
        match self.settings.upscale {
            _ if scale <= 1.0 => self.detect_at(img, scale),
            Upscale::Always => self.detect_at(img, scale),
            Upscale::Never => self.detect_at(img, 1.0),
            Upscale::WhenNeeded => {
                let faces = self.detect_at(img, 1.0)?;
                if faces.is_empty() || faces.iter().any(|f| f.bbox[2].min(f.bbox[3]) < SMALL_FACE) {
                    self.detect_at(img, scale)
                } else {
                    Ok(faces)
                }
            }
        }
    }

    /// Detection on the photo resized by `scale`, in the photo's pixels.
    fn detect_at(&self, img: &RgbImage, scale: f32) -> candle_core::Result<Vec<Face>> {
        let s = &self.settings;
        if scale == 1.0 {
            return self.detector.detect(img, s.score_threshold, s.nms_iou);
        }
        let w = ((img.width() as f32 * scale).round() as u32).max(1);
        let h = ((img.height() as f32 * scale).round() as u32).max(1);
        let small = crate::photo::resize(img, w, h);
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
        faces.par_iter().map(|f| align::align(img, &f.landmarks).unwrap_or_else(|| align::center_crop(img, 1.0))).collect()
    }

    /// Unit embeddings of aligned crops, batched.
    /// Every face of a photo with its embedding, in detection order (what `detect` lists).
    pub fn faces_and_embeddings(&self, img: &RgbImage) -> candle_core::Result<Vec<(Face, Vec<f32>)>> {
        let faces = self.detect(img)?;
        let embeddings = self.embed(&self.align(img, &faces))?;
        Ok(faces.into_iter().zip(embeddings).collect())
    }

    /// The face a query means and its embedding: face `k` as `detect` lists them, or the
    /// largest. Returns (its index, the face, the embedding).
    pub fn query_face(&self, img: &RgbImage, k: Option<usize>) -> Result<(usize, Face, Vec<f32>), QueryError> {
        let faces = self.detect(img)?;
        let idx = match k {
            _ if faces.is_empty() => return Err(QueryError::NoFace),
            Some(k) if k < faces.len() => k,
            Some(k) => return Err(QueryError::NoSuchFace { k, n: faces.len() }),
            None => (0..faces.len())
                .max_by(|&a, &b| (faces[a].bbox[2] * faces[a].bbox[3]).total_cmp(&(faces[b].bbox[2] * faces[b].bbox[3])))
                .unwrap_or(0),
        };
        let face = faces[idx].clone();
        let embedding = self.embed(&self.align(img, std::slice::from_ref(&face)))?.remove(0);
        Ok((idx, face, embedding))
    }

    /// One unit vector per crop. An embedder that returns a NaN or infinite value (broken
    /// weights, a bad custom embedder) is an error, never an embedding.
    pub fn embed(&self, crops: &[RgbImage]) -> candle_core::Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(crops.len());
        for chunk in crops.chunks(EMBED_BATCH) {
            out.extend(self.embedder.embed(chunk, self.settings.flip, &self.device)?);
        }
        if let Some(i) = out.iter().position(|e| !all_finite(e)) {
            candle_core::bail!("the embedder returned a non-finite embedding (face {i}): its weights are broken");
        }
        Ok(out)
    }
}

/// Why a photo cannot be a query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("no face found in it")]
    NoFace,
    #[error("it has {n} faces (0..{}); face {k} does not exist", n - 1)]
    NoSuchFace { k: usize, n: usize },
    #[error(transparent)]
    Model(#[from] candle_core::Error),
}

/// Every value is finite (no NaN, no infinity).
pub fn all_finite(v: &[f32]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// Descending order of scores for a ranking, NaN last: a NaN never ranks first (plain
/// `total_cmp` sorts a positive NaN above +inf).
pub fn by_score_desc(a: f32, b: f32) -> std::cmp::Ordering {
    let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
    key(b).total_cmp(&key(a))
}

/// Side of a face chip (the catalog's and the app's small face pictures).
pub const CHIP: u32 = 96;

/// A square chip around a face box (in `img` pixels), 1.4x the box, resized to [`CHIP`].
pub fn face_chip(img: &RgbImage, bbox: [f32; 4]) -> RgbImage {
    let side = (bbox[2].max(bbox[3]) * 1.4).max(8.0);
    let cx = bbox[0] + bbox[2] / 2.0;
    let cy = bbox[1] + bbox[3] / 2.0;
    let x0 = (cx - side / 2.0).clamp(0.0, img.width().saturating_sub(1) as f32) as u32;
    let y0 = (cy - side / 2.0).clamp(0.0, img.height().saturating_sub(1) as f32) as u32;
    let w = (side as u32).min(img.width() - x0).max(1);
    let h = (side as u32).min(img.height() - y0).max(1);
    let region = image::imageops::crop_imm(img, x0, y0, w, h).to_image();
    crate::photo::resize(&region, CHIP, CHIP)
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
