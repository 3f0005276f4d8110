//! RetinaFace (MobileNet-0.25 backbone) face detector: network, anchors, box decoding and NMS.
//!
//! Layer names follow biubug6/Pytorch_Retinaface (`backbone.stage1.1.dw`, `fpn.merge2`,
//! `ssh1.conv5x5_1`, `class_head.0`, ...). The network sees BGR pixels minus (104, 117, 123);
//! its outputs are decoded against priors on strides 8/16/32 with variances 0.1/0.2.

use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::{ops::softmax_last_dim, VarBuilder};
use image::RgbImage;
use rayon::prelude::*;
use serde::Serialize;

use super::ops::{ActKind, ConvAct, ConvSpec};
use super::stream::Chain;
use crate::kernels::{channel_dim, channels_last, spatial, to_native, upsample_nearest};

/// Per-channel mean subtracted from BGR input (the training mean of Pytorch_Retinaface).
pub const BGR_MEAN: [f32; 3] = [104.0, 117.0, 123.0];
const LEAKY: ActKind = ActKind::Leaky(0.1);
const VARIANCE: [f32; 2] = [0.1, 0.2];
/// (stride, anchor sizes in input pixels) for the three pyramid levels.
pub const LEVELS: [(usize, [f32; 2]); 3] = [(8, [16.0, 32.0]), (16, [64.0, 128.0]), (32, [256.0, 512.0])];

/// One detected face in the coordinates of the image given to the detector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// [x, y, w, h]
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub score: f32,
    /// Right eye, left eye, nose, right mouth corner, left mouth corner (image left to right:
    /// the subject's right eye comes first).
    pub landmarks: [[f32; 2]; 5],
}

impl Detection {
    pub fn scaled(&self, s: f32) -> Self {
        let mut d = self.clone();
        d.bbox.iter_mut().for_each(|v| *v *= s);
        d.landmarks.iter_mut().flatten().for_each(|v| *v *= s);
        d
    }
    pub fn center(&self) -> [f32; 2] {
        [self.bbox[0] + self.bbox[2] / 2.0, self.bbox[1] + self.bbox[3] / 2.0]
    }
}

/// MobileNetV1 depthwise-separable block: 3x3 depthwise then 1x1 pointwise, both leaky.
struct DwBlock {
    dw: ConvAct,
    pw: ConvAct,
}

impl DwBlock {
    fn load(vb: VarBuilder, c_in: usize, c_out: usize, stride: usize) -> Result<Self> {
        Ok(Self {
            dw: ConvAct::load(vb.pp("dw"), ConvSpec::depthwise(c_in, 3, stride, 1), LEAKY)?,
            pw: ConvAct::load(vb.pp("pw"), ConvSpec::dense(c_in, c_out, 1, 1, 0), LEAKY)?,
        })
    }
}

impl Module for DwBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.pw.forward(&self.dw.forward(x)?)
    }
}

/// (stage, c_in, c_out, stride) of every depthwise-separable block, in order.
const BACKBONE: [(usize, usize, usize, usize); 13] = [
    (1, 8, 16, 1),
    (1, 16, 32, 2),
    (1, 32, 32, 1),
    (1, 32, 64, 2),
    (1, 64, 64, 1),
    (2, 64, 128, 2),
    (2, 128, 128, 1),
    (2, 128, 128, 1),
    (2, 128, 128, 1),
    (2, 128, 128, 1),
    (2, 128, 128, 1),
    (3, 128, 256, 2),
    (3, 256, 256, 1),
];

/// MobileNet-0.25 returning the stride 8, 16 and 32 feature maps.
struct Backbone {
    stem: ConvAct,
    stages: [Vec<DwBlock>; 3],
    /// The stem and the first stage as one row-streamed chain (the CPU path from a photo).
    first: Chain,
}

impl Backbone {
    fn load(vb: VarBuilder) -> Result<Self> {
        let stem = ConvAct::load(vb.pp("stage1.0.conv"), ConvSpec::dense(3, 8, 3, 2, 1), LEAKY)?;
        let mut stages: [Vec<DwBlock>; 3] = Default::default();
        for (stage, c_in, c_out, stride) in BACKBONE {
            let blocks = &mut stages[stage - 1];
            let idx = blocks.len() + usize::from(stage == 1);
            blocks.push(DwBlock::load(vb.pp(format!("stage{stage}.{idx}")), c_in, c_out, stride)?);
        }
        let first: Vec<&ConvAct> = std::iter::once(&stem).chain(stages[0].iter().flat_map(|b| [&b.dw, &b.pw])).collect();
        let first = Chain::new(&first)?;
        Ok(Self { stem, stages, first })
    }

    fn forward(&self, x: &Tensor) -> Result<[Tensor; 3]> {
        let mut x = self.stem.forward(x)?;
        for block in &self.stages[0] {
            x = block.forward(&x)?;
        }
        self.rest(x)
    }

    /// The three feature maps from the first stage's output.
    fn rest(&self, first: Tensor) -> Result<[Tensor; 3]> {
        let mut x = first.clone();
        let mut outs = vec![first];
        for stage in &self.stages[1..] {
            for block in stage {
                x = block.forward(&x)?;
            }
            outs.push(x.clone());
        }
        let [a, b, c]: [Tensor; 3] = outs.try_into().expect("three stages");
        Ok([a, b, c])
    }

    /// The three feature maps of an RGB photo, its first stage streamed by rows from its bytes
    /// (CPU: see [`Chain`]).
    fn forward_image(&self, img: &RgbImage) -> Result<[Tensor; 3]> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let raw = img.as_raw();
        let first = self.first.run(h, w, 3, |y, row| bgr_row(row, &raw[y * w * 3..(y + 1) * w * 3]))?;
        self.rest(first)
    }
}

struct Fpn {
    outputs: [ConvAct; 3],
    merge1: ConvAct,
    merge2: ConvAct,
}

impl Fpn {
    fn load(vb: VarBuilder) -> Result<Self> {
        let out = |i: usize, c: usize| ConvAct::load(vb.pp(format!("output{i}")), ConvSpec::dense(c, 64, 1, 1, 0), LEAKY);
        Ok(Self {
            outputs: [out(1, 64)?, out(2, 128)?, out(3, 256)?],
            merge1: ConvAct::load(vb.pp("merge1"), ConvSpec::dense(64, 64, 3, 1, 1), LEAKY)?,
            merge2: ConvAct::load(vb.pp("merge2"), ConvSpec::dense(64, 64, 3, 1, 1), LEAKY)?,
        })
    }

    fn forward(&self, feats: &[Tensor; 3]) -> Result<[Tensor; 3]> {
        // The 1x1 output layers keep the size; each adds the coarser level, upsampled, in its
        // own kernel (no separate tensor add).
        let o3 = self.outputs[2].forward(&feats[2])?;
        let (h2, w2) = spatial(&feats[1])?;
        let o2 = self.merge2.forward(&self.outputs[1].forward_add(&feats[1], &upsample_nearest(&o3, h2, w2)?)?)?;
        let (h1, w1) = spatial(&feats[0])?;
        let o1 = self.merge1.forward(&self.outputs[0].forward_add(&feats[0], &upsample_nearest(&o2, h1, w1)?)?)?;
        Ok([o1, o2, o3])
    }
}

/// Single Stage Headless context module: 3x3, "5x5" and "7x7" branches, concatenated, ReLU.
/// The ReLU after the concatenation is folded into the last conv of each branch, and the
/// convolutions reading the same input run as one: conv3x3 with conv5x5_1 (the module's
/// input), conv5x5_2 with conv7x7_2 (conv5x5_1's output).
struct Ssh {
    conv3x3_and_5x5_1: ConvAct,
    conv5x5_2_and_7x7_2: ConvAct,
    conv7x7_3: ConvAct,
}

impl Ssh {
    fn load(vb: VarBuilder) -> Result<Self> {
        let c =
            |name: &str, c_in: usize, c_out: usize, act: ActKind| ConvAct::load(vb.pp(name), ConvSpec::dense(c_in, c_out, 3, 1, 1), act);
        Ok(Self {
            conv3x3_and_5x5_1: ConvAct::fuse(&[c("conv3x3", 64, 32, ActKind::Relu)?, c("conv5x5_1", 64, 16, LEAKY)?])?,
            conv5x5_2_and_7x7_2: ConvAct::fuse(&[c("conv5x5_2", 16, 16, ActKind::Relu)?, c("conv7x7_2", 16, 16, LEAKY)?])?,
            conv7x7_3: c("conv7x7_3", 16, 16, ActKind::Relu)?,
        })
    }
}

impl Module for Ssh {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let ch = channel_dim(x.device());
        let y = self.conv3x3_and_5x5_1.forward(x)?;
        let a = y.narrow(ch, 0, 32)?;
        let z = self.conv5x5_2_and_7x7_2.forward(&y.narrow(ch, 32, 16)?)?;
        let b = z.narrow(ch, 0, 16)?;
        let c = self.conv7x7_3.forward(&z.narrow(ch, 16, 16)?)?;
        Tensor::cat(&[a, b, c], ch)
    }
}

/// RetinaFace with a MobileNet-0.25 backbone.
pub struct RetinaFace {
    backbone: Backbone,
    fpn: Fpn,
    ssh: [Ssh; 3],
    /// Per level, the class (2 anchors x 2), box (2 x 4) and landmark (2 x 10) heads run as
    /// one 1x1 convolution to 32 channels.
    head: [ConvAct; 3],
    device: Device,
}

/// Raw network outputs for one image, on the host: per prior, `loc` (4), `conf` (face
/// probability) and `landmarks` (10).
pub struct RawOutput {
    pub loc: Vec<f32>,
    pub conf: Vec<f32>,
    pub landmarks: Vec<f32>,
}

impl RetinaFace {
    pub fn load(vb: VarBuilder) -> Result<Self> {
        let head = |i: usize| -> Result<ConvAct> {
            let h = |name: &str, k: usize| ConvAct::load(vb.pp(name).pp(i), ConvSpec::dense(64, 2 * k, 1, 1, 0), ActKind::Linear);
            ConvAct::fuse(&[h("class_head", 2)?, h("bbox_head", 4)?, h("landmark_head", 10)?])
        };
        Ok(Self {
            backbone: Backbone::load(vb.pp("backbone"))?,
            fpn: Fpn::load(vb.pp("fpn"))?,
            ssh: [Ssh::load(vb.pp("ssh1"))?, Ssh::load(vb.pp("ssh2"))?, Ssh::load(vb.pp("ssh3"))?],
            head: [head(0)?, head(1)?, head(2)?],
            device: vb.device().clone(),
        })
    }

    /// Runs the network on an (N, 3, H, W) BGR-minus-mean tensor. Returns (loc, conf, landmarks) shaped (N, priors, 4),
    /// (N, priors, 2) after softmax, (N, priors, 10).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        self.forward_native(&to_native(x)?)
    }

    fn forward_native(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        self.heads(&self.backbone.forward(x)?, x.dim(0)?)
    }

    /// FPN, context modules and heads on the backbone's three maps of `n` images.
    fn heads(&self, feats: &[Tensor; 3], n: usize) -> Result<(Tensor, Tensor, Tensor)> {
        let feats = self.fpn.forward(feats)?;
        let mut loc = Vec::new();
        let mut conf = Vec::new();
        let mut lm = Vec::new();
        for (i, f) in feats.iter().enumerate() {
            let f = self.ssh[i].forward(f)?;
            let y = self.head[i].forward(&f)?;
            let y = if channels_last(y.device()) { y } else { y.permute((0, 2, 3, 1))?.contiguous()? };
            // channels: 2 anchors x (2 classes), then x (4 box offsets), then x (10 landmarks)
            let part = |from: usize, k: usize| y.narrow(3, from, 2 * k)?.contiguous()?.reshape((n, (), k));
            conf.push(part(0, 2)?);
            loc.push(part(4, 4)?);
            lm.push(part(12, 10)?);
        }
        let conf = softmax_last_dim(&Tensor::cat(&conf, 1)?)?;
        Ok((Tensor::cat(&loc, 1)?, conf, Tensor::cat(&lm, 1)?))
    }

    /// Runs the network on one RGB image at its own resolution.
    pub fn run(&self, img: &RgbImage) -> Result<RawOutput> {
        let (loc, conf, lm) = if channels_last(&self.device) && super::stream::available() {
            self.heads(&self.backbone.forward_image(img)?, 1)?
        } else {
            self.forward_native(&bgr_tensor(img, &self.device)?)?
        };
        let face = conf.narrow(D::Minus1, 1, 1)?;
        Ok(RawOutput { loc: loc.flatten_all()?.to_vec1()?, conf: face.flatten_all()?.to_vec1()?, landmarks: lm.flatten_all()?.to_vec1()? })
    }

    /// Detects faces in `img` at its own resolution: decode, threshold, NMS.
    pub fn detect(&self, img: &RgbImage, score_threshold: f32, nms_iou: f32) -> Result<Vec<Detection>> {
        let raw = self.run(img)?;
        let priors = priors(img.width() as usize, img.height() as usize);
        let dets = decode(&raw, &priors, img.width() as f32, img.height() as f32, score_threshold);
        Ok(nms(dets, nms_iou))
    }
}

/// HWC RGB u8 -> BGR minus mean, (1, 3, H, W) on GPUs or already channels-last
/// (1, H, W, 3) on the CPU (see [`super::ops::channels_last`]).
pub fn bgr_tensor(img: &RgbImage, device: &Device) -> Result<Tensor> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut data = vec![0f32; 3 * h * w];
    data.par_chunks_mut(3 * w).zip(img.as_raw().par_chunks(3 * w)).for_each(|(dst, src)| bgr_row(dst, src));
    let x = Tensor::from_vec(data, (1, h, w, 3), device)?;
    if channels_last(device) {
        Ok(x)
    } else {
        x.permute((0, 3, 1, 2))?.contiguous()
    }
}

/// One row of RGB bytes as the network's input: BGR minus [`BGR_MEAN`].
fn bgr_row(dst: &mut [f32], src: &[u8]) {
    for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
        d[0] = s[2] as f32 - BGR_MEAN[0];
        d[1] = s[1] as f32 - BGR_MEAN[1];
        d[2] = s[0] as f32 - BGR_MEAN[2];
    }
}

/// Prior boxes (cx, cy, w, h), normalised to the image size, in network output order.
pub fn priors(width: usize, height: usize) -> Vec<[f32; 4]> {
    let mut out = Vec::new();
    for (stride, sizes) in LEVELS {
        let (fw, fh) = (width.div_ceil(stride), height.div_ceil(stride));
        for y in 0..fh {
            for x in 0..fw {
                for s in sizes {
                    out.push([
                        (x as f32 + 0.5) * stride as f32 / width as f32,
                        (y as f32 + 0.5) * stride as f32 / height as f32,
                        s / width as f32,
                        s / height as f32,
                    ]);
                }
            }
        }
    }
    out
}

/// Decodes every prior scoring above `score_threshold` into pixel coordinates.
pub fn decode(raw: &RawOutput, priors: &[[f32; 4]], width: f32, height: f32, score_threshold: f32) -> Vec<Detection> {
    let mut out = Vec::new();
    for (i, p) in priors.iter().enumerate() {
        let score = raw.conf[i];
        if score <= score_threshold {
            continue;
        }
        let l = &raw.loc[4 * i..4 * i + 4];
        let cx = p[0] + l[0] * VARIANCE[0] * p[2];
        let cy = p[1] + l[1] * VARIANCE[0] * p[3];
        let w = p[2] * (l[2] * VARIANCE[1]).exp();
        let h = p[3] * (l[3] * VARIANCE[1]).exp();
        let bbox = [(cx - w / 2.0) * width, (cy - h / 2.0) * height, w * width, h * height];
        let lm = &raw.landmarks[10 * i..10 * i + 10];
        let mut landmarks = [[0f32; 2]; 5];
        for (k, pt) in landmarks.iter_mut().enumerate() {
            pt[0] = (p[0] + lm[2 * k] * VARIANCE[0] * p[2]) * width;
            pt[1] = (p[1] + lm[2 * k + 1] * VARIANCE[0] * p[3]) * height;
        }
        out.push(Detection { bbox, score, landmarks });
    }
    out
}

/// Intersection over union of two [x, y, w, h] boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let x0 = a[0].max(b[0]);
    let y0 = a[1].max(b[1]);
    let x1 = (a[0] + a[2]).min(b[0] + b[2]);
    let y1 = (a[1] + a[3]).min(b[1] + b[3]);
    let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Greedy non-maximum suppression: keeps the best-scoring boxes, drops any box overlapping a
/// kept one by more than `iou_threshold`. Output is sorted by score, descending.
pub fn nms(mut dets: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::new();
    for d in dets {
        if keep.iter().all(|k| iou(&k.bbox, &d.bbox) <= iou_threshold) {
            keep.push(d);
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priors_follow_network_output_order() {
        let p = priors(64, 32);
        // stride 8: 8x4 cells, stride 16: 4x2, stride 32: 2x1; two sizes each.
        assert_eq!(p.len(), 2 * (32 + 8 + 2));
        assert_eq!(p[0], [4.0 / 64.0, 4.0 / 32.0, 16.0 / 64.0, 16.0 / 32.0]);
        assert_eq!(p[1], [4.0 / 64.0, 4.0 / 32.0, 32.0 / 64.0, 32.0 / 32.0]);
        // second cell moves along x first
        assert_eq!(p[2][0], 12.0 / 64.0);
        // first prior of stride 16 level
        assert_eq!(p[64], [8.0 / 64.0, 8.0 / 32.0, 64.0 / 64.0, 64.0 / 32.0]);
        // odd sizes round up, as the convolutions do
        assert_eq!(priors(17, 9).len(), 2 * (3 * 2 + 2 + 1));
    }

    #[test]
    fn decode_zero_offsets_gives_prior_boxes() {
        let p = vec![[0.5, 0.25, 0.1, 0.2]];
        let raw = RawOutput { loc: vec![0.0; 4], conf: vec![0.9], landmarks: vec![0.0; 10] };
        let d = decode(&raw, &p, 200.0, 100.0, 0.5);
        assert_eq!(d.len(), 1);
        let b = d[0].bbox;
        assert!((b[0] - 90.0).abs() < 1e-4 && (b[1] - 15.0).abs() < 1e-4);
        assert!((b[2] - 20.0).abs() < 1e-4 && (b[3] - 20.0).abs() < 1e-4);
        assert_eq!(d[0].landmarks[3], [100.0, 25.0]);
        // offsets: one unit of loc moves the centre by variance * prior size
        let raw = RawOutput { loc: vec![1.0, 0.0, 0.0, 5.0], conf: vec![0.9], landmarks: vec![1.0; 10] };
        let d = &decode(&raw, &p, 200.0, 100.0, 0.5)[0];
        assert!((d.center()[0] - (0.5 + 0.1 * 0.1) * 200.0).abs() < 1e-3);
        assert!((d.bbox[3] - 0.2 * 1f32.exp() * 100.0).abs() < 1e-3);
        assert!((d.landmarks[0][0] - 102.0).abs() < 1e-4);
        // below threshold: nothing
        assert!(decode(&raw, &p, 200.0, 100.0, 0.95).is_empty());
    }

    fn det(x: f32, y: f32, s: f32, score: f32) -> Detection {
        Detection { bbox: [x, y, s, s], score, landmarks: [[0.0; 2]; 5] }
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[20.0, 0.0, 10.0, 10.0]), 0.0);
        assert!((iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 10.0, 10.0]) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn nms_keeps_best_of_overlapping_and_all_separate() {
        let kept =
            nms(vec![det(1.0, 0.0, 10.0, 0.8), det(0.0, 0.0, 10.0, 0.9), det(50.0, 50.0, 10.0, 0.7), det(5.0, 0.0, 10.0, 0.95)], 0.4);
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        // 0.95 at x=5 overlaps 0.9 at x=0 by 1/3 (< 0.4, kept); 0.8 at x=1 overlaps x=0 by 0.82 (dropped)
        assert_eq!(scores, vec![0.95, 0.9, 0.7]);
    }
}
