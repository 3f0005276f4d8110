//! Shared helpers for integration tests: where the test photos and models are.
#![allow(dead_code)]

use std::path::PathBuf;

/// `$FACEFIND_FACES`, default `../shared/faces` beside the repository.
pub fn faces_dir() -> PathBuf {
    std::env::var_os("FACEFIND_FACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/faces"))
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
