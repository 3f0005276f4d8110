//! Pipeline speed on this machine: embedder faces/s and detector images/s (1024-px photo).
//! Run with `cargo bench --bench pipeline`; `tools/bench_pipeline.sh` prints it next to the
//! original runtimes (onnxruntime, LiteRT) on the same inputs.

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::Device;
use facefind::photo;
use facefind::pipeline::{embedder, Pipeline};
use image::RgbImage;

fn faces_dir() -> std::path::PathBuf {
    std::env::var_os("FACEFIND_FACES")
        .map(Into::into)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/faces"))
}

/// Best (minimum) seconds per call over `iters` calls after one warm-up: on a shared machine
/// the minimum is the most repeatable statistic.
fn time<F: FnMut()>(iters: usize, mut f: F) -> f64 {
    f();
    let mut v: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[0]
}

fn main() -> anyhow::Result<()> {
    facefind::util::alloc::reuse_freed_memory();
    let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let p = Pipeline::load(&models, Device::Cpu, Default::default())?;
    let photo_path = faces_dir().join("album/deepface/couple.jpg");
    let img = photo::load_rgb(&photo_path)?;
    let scale = 1024.0 / img.width().max(img.height()) as f32;
    let det_img = image::imageops::resize(
        &img,
        (img.width() as f32 * scale) as u32,
        (img.height() as f32 * scale) as u32,
        image::imageops::FilterType::Triangle,
    );
    let crops: Vec<RgbImage> = (0..32).map(|i| image::imageops::crop_imm(&det_img, 10 * i, 10 * i, 112, 112).to_image()).collect();
    let x = embedder::crops_tensor(&crops, false, &Device::Cpu)?;
    println!("| stage | input | candle (this crate) |");
    println!("|---|---|---|");
    // `BENCH_ONLY=detector` (for profiling) skips the embedder.
    let only_detector = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "detector");
    for batch in [1usize, 32].into_iter().filter(|_| !only_detector) {
        let xb = x.narrow(0, 0, batch)?;
        let s = time(10, || {
            p.embedder().kernels().expect("CPU kernels").forward_raw(&xb).unwrap();
        });
        println!("| embedder | batch {batch} | {:.1} faces/s ({:.2} ms/face) |", batch as f64 / s, 1e3 * s / batch as f64);
    }
    // the sizes facefind runs the detector at: large photos (1024 px), the second look at small
    // ones (640 px), and LFW-sized photos as they are (250 px)
    // `BENCH_SIDES=250` (for profiling) times only those sizes
    let sides: Vec<u32> =
        std::env::var("BENCH_SIDES").map(|v| v.split(',').filter_map(|s| s.parse().ok()).collect()).unwrap_or(vec![1024, 640, 250]);
    for side in sides {
        let scale = side as f32 / img.width().max(img.height()) as f32;
        let (w, h) = ((img.width() as f32 * scale).round() as u32, (img.height() as f32 * scale).round() as u32);
        let det_img = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
        let iters = if only_detector { 100 } else { 30 } * (1024 / side as usize).max(1);
        let s = time(iters, || {
            p.detector().run(&det_img).unwrap();
        });
        println!("| detector {side} px | {}x{} | {:.2} images/s ({:.1} ms) |", det_img.width(), det_img.height(), 1.0 / s, 1e3 * s);
    }
    Ok(())
}
