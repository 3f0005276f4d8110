//! Shared helpers for integration tests: where the test photos and models are.
#![allow(dead_code)]

pub mod album;

use std::path::PathBuf;

/// The `facefind` binary of this build, on the CPU with the repository's models.
pub fn facefind() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_facefind"));
    c.env("FACEFIND_MODELS", models_dir()).args(["--device", "cpu"]);
    c
}

/// What a command that must succeed printed, as JSON.
pub fn json_of(cmd: &mut std::process::Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `n` photos of an lfw-train person, from the `skip`-th on (by name).
pub fn lfw_photos(person: &str, skip: usize, n: usize) -> Vec<image::RgbImage> {
    let dir = faces_dir().join("lfw-train").join(person);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files[skip..skip + n].iter().map(|p| image::open(p).unwrap().to_rgb8()).collect()
}

/// The photos side by side, as one photo.
pub fn side_by_side(parts: &[&image::RgbImage]) -> image::RgbImage {
    let w = parts.iter().map(|p| p.width()).sum();
    let h = parts.iter().map(|p| p.height()).max().unwrap();
    let mut out = image::RgbImage::new(w, h);
    let mut x = 0;
    for p in parts {
        image::imageops::replace(&mut out, *p, x, 0);
        x += i64::from(p.width());
    }
    out
}

/// `$FACEFIND_FACES`, default `../shared/faces` beside the repository.
pub fn faces_dir() -> PathBuf {
    std::env::var_os("FACEFIND_FACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/faces"))
}

/// Copies the first `n` files (by name) of `faces_dir()/sub` into `dest` (created).
pub fn copy_photos(sub: &str, dest: &std::path::Path, n: usize) {
    std::fs::create_dir_all(dest).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(faces_dir().join(sub)).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for p in files.iter().take(n) {
        std::fs::copy(p, dest.join(p.file_name().unwrap())).unwrap();
    }
}

/// (found, total) of hand-drawn boxes matched by a detection with IoU >= 0.4.
pub fn dlib_recall(p: &facefind::pipeline::Pipeline) -> (usize, usize) {
    dlib_recall_at(p, 1.0)
}

/// [`dlib_recall`] on the photos resized by `scale` (0.5: faces of ~20 px in ~250 px photos).
pub fn dlib_recall_at(p: &facefind::pipeline::Pipeline, scale: f32) -> (usize, usize) {
    let csv = std::fs::read_to_string(faces_dir().join("dlib-training-boxes.csv")).unwrap();
    let mut by_photo: std::collections::BTreeMap<String, Vec<[f32; 4]>> = Default::default();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let b = [f[1], f[2], f[3], f[4]].map(|v| v.trim().parse::<f32>().unwrap());
        by_photo.entry(f[0].to_string()).or_default().push(b);
    }
    let (mut found, mut total) = (0, 0);
    for (path, boxes) in by_photo {
        let mut img = facefind::photo::load_rgb(&faces_dir().join("album").join(&path)).unwrap();
        if scale != 1.0 {
            let (w, h) = ((img.width() as f32 * scale).round() as u32, (img.height() as f32 * scale).round() as u32);
            img = facefind::photo::resize(&img, w, h);
        }
        let faces = p.detect(&img).unwrap();
        for b in boxes.iter().map(|b| b.map(|v| v * scale)) {
            total += 1;
            if faces.iter().any(|f| facefind::pipeline::detector::iou(&f.bbox, &b) >= 0.4) {
                found += 1;
            } else if std::env::var_os("FACEFIND_VERBOSE").is_some() {
                eprintln!("missed {path} {b:?}");
            }
        }
    }
    (found, total)
}

pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

pub fn cpu_pipeline() -> facefind::pipeline::Pipeline {
    facefind::pipeline::Pipeline::load(&models_dir(), candle_core::Device::Cpu, Default::default()).expect("models load")
}

/// A valid PNG header claiming `w` x `h` pixels (correct CRC), with no image data behind it.
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = Vec::new();
    image::RgbImage::new(4, 4).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let mut c = !0u32;
    for &b in &png[12..29] {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    png[29..33].copy_from_slice(&(!c).to_be_bytes());
    png
}

/// An embedder file (with its manifest) whose every embedding is the shipped one negated: the
/// shipped weights with the last layer negated. Cosines between faces stay as they were.
pub fn negated_embedder(dir: &std::path::Path) -> PathBuf {
    let dev = candle_core::Device::Cpu;
    let mut t = candle_core::safetensors::load(models_dir().join("mobilefacenet_arcface.safetensors"), &dev).unwrap();
    for k in ["Logits.LinearConv1x1.weight", "Logits.LinearConv1x1.bias"] {
        let neg = t[k].neg().unwrap();
        t.insert(k.to_string(), neg);
    }
    let emb = dir.join("negated.safetensors");
    candle_core::safetensors::save(&t, &emb).unwrap();
    let sha = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&emb).unwrap()));
    let manifest = serde_json::json!({"arch": "mobilefacenet", "input_size": 112, "channels": 3, "mean": 127.5, "std": 128.0,
        "embedding_dim": 192, "sha256": sha, "training": null});
    std::fs::write(dir.join("negated.json"), manifest.to_string()).unwrap();
    emb
}
