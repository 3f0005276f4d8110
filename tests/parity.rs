//! The candle networks against the original runtimes (onnxruntime for RetinaFace, LiteRT for
//! MobileFaceNet) on the same inputs. Reference numbers: tests/data/parity.json, written by
//! tests/parity_reference.py.

mod common;

use facefind::photo;
use facefind::pipeline::embedder;
use image::RgbImage;
use serde_json::Value;

fn reference() -> Value {
    serde_json::from_str(include_str!("data/parity.json")).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
#[ignore = "needs ../shared/faces"]
fn detector_matches_onnxruntime() {
    check_detector();
}

/// The path CUDA and Metal take (candle ops, shifted-view depthwise convolution), run on the
/// CPU: the same reference numbers.
#[test]
#[ignore = "needs ../shared/faces"]
fn gpu_path_detector_matches_onnxruntime() {
    facefind::kernels::with_generic_ops(check_detector);
}

fn check_detector() {
    let r = reference();
    let p = common::cpu_pipeline();
    let thr = r["score_threshold"].as_f64().unwrap() as f32;
    let iou = r["nms_iou"].as_f64().unwrap() as f32;
    for img in r["detector"].as_array().unwrap() {
        let path = common::faces_dir().join(img["path"].as_str().unwrap());
        let rgb = photo::load_rgb(&path).unwrap();
        let raw = p.detector().run(&rgb).unwrap();
        for w in img["raw"].as_array().unwrap() {
            let i = w["prior"].as_u64().unwrap() as usize;
            assert!((raw.conf[i] - w["conf"].as_f64().unwrap() as f32).abs() < 1e-3, "prior {i} conf");
            for (a, b) in raw.loc[4 * i..4 * i + 4].iter().zip(f32s(&w["loc"])) {
                assert!((a - b).abs() < 1e-3, "prior {i} loc {a} vs {b}");
            }
            for (a, b) in raw.landmarks[10 * i..10 * i + 10].iter().zip(f32s(&w["landmarks"])) {
                assert!((a - b).abs() < 1e-3, "prior {i} landmarks {a} vs {b}");
            }
        }
        let got = p.detector().detect(&rgb, thr, iou).unwrap();
        let want = img["faces"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{}", path.display());
        for (g, w) in got.iter().zip(want) {
            let ws = w["score"].as_f64().unwrap() as f32;
            assert!((g.score - ws).abs() < 1e-3, "score {} vs {ws}", g.score);
            for (a, b) in g.bbox.iter().zip(f32s(&w["box"])) {
                assert!((a - b).abs() < 0.5, "box {:?} vs {}", g.bbox, w["box"]);
            }
            let lm: Vec<f32> = g.landmarks.iter().flatten().copied().collect();
            for (a, b) in lm.iter().zip(f32s(&w["landmarks"])) {
                assert!((a - b).abs() < 0.5, "landmarks {lm:?} vs {}", w["landmarks"]);
            }
            eprintln!("{}: score {:.5} (ref {ws:.5})", path.display(), g.score);
        }
    }
}

/// 112x112 crop at (x0, y0) of 112f x 112f pixels, f x f block means rounded half up
/// (the same integer arithmetic as parity_reference.py).
fn box_average_crop(img: &RgbImage, x0: u32, y0: u32, f: u32) -> RgbImage {
    let n = f * f;
    RgbImage::from_fn(112, 112, |u, v| {
        let mut sum = [0u32; 3];
        for dy in 0..f {
            for dx in 0..f {
                let p = img.get_pixel(x0 + u * f + dx, y0 + v * f + dy).0;
                for c in 0..3 {
                    sum[c] += p[c] as u32;
                }
            }
        }
        image::Rgb(sum.map(|s| ((s + n / 2) / n) as u8))
    })
}

#[test]
#[ignore = "needs ../shared/faces"]
fn embedder_matches_litert() {
    check_embedder();
}

/// The trainable graph with batch norm folded (the CUDA/Metal embedder), run on the CPU.
#[test]
#[ignore = "needs ../shared/faces"]
fn gpu_path_embedder_matches_litert() {
    facefind::kernels::with_generic_ops(|| {
        assert!(common::cpu_pipeline().embedder().kernels().is_none(), "the graph, not the CPU kernels");
        check_embedder()
    });
}

fn raw_embedding(p: &facefind::pipeline::Pipeline, t: &candle_core::Tensor) -> Vec<f32> {
    let y = match p.embedder() {
        facefind::pipeline::Embedder::Kernels(m) => m.forward_raw(t).unwrap(),
        facefind::pipeline::Embedder::Graph { net, .. } => net.forward(t, facefind::nets::Mode::Eval).unwrap(),
        facefind::pipeline::Embedder::Onnx(_) => unreachable!("the shipped embedder is not an ONNX file"),
    };
    y.flatten_all().unwrap().to_vec1().unwrap()
}

fn check_embedder() {
    let r = reference();
    let p = common::cpu_pipeline();
    for e in r["embedder"].as_array().unwrap() {
        let path = common::faces_dir().join(e["path"].as_str().unwrap());
        let rgb = photo::load_rgb(&path).unwrap();
        let (x, y, f) = (e["x"].as_u64().unwrap() as u32, e["y"].as_u64().unwrap() as u32, e["factor"].as_u64().unwrap() as u32);
        let crop = box_average_crop(&rgb, x, y, f);
        let t = embedder::crops_tensor(&[crop], false, &candle_core::Device::Cpu).unwrap();
        let got = raw_embedding(&p, &t);
        let want = f32s(&e["embedding"]);
        let dot: f32 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
        let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
        let cos = dot / (norm(&got) * norm(&want));
        let max_abs = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        eprintln!("{} f={f}: cosine {cos:.7}, max |diff| {max_abs:.2e}", path.display());
        assert!(cos >= 0.9999, "cosine {cos}");
    }
}
