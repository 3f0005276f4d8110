//! When upscaling small photos for detection pays: each policy of `Settings::upscale` on LFW
//! pairsDevTest (250x250 photos: images/s and 10-fold accuracy of `verify`), dlib's hand-drawn
//! boxes (small faces in ~500 px photos, and at half size: ~20 px faces in ~250 px photos: recall) and the album (mAP, precision/recall at the
//! default threshold, index time), in one run. Needs ../shared/faces.
//!   cargo bench --bench small_photos [-- POLICY...]   (always, when-needed, never)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use facefind::eval::{metrics, pairs};
use facefind::pipeline::{Pipeline, Settings, Upscale};

fn main() {
    facefind::util::alloc::reuse_freed_memory();
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let policies = [("always", Upscale::Always), ("when-needed", Upscale::WhenNeeded), ("never", Upscale::Never)];
    let view1 = common::faces_dir().join("lfw-view1");
    let pairs = pairs::parse_pairs(&std::fs::read_to_string(view1.join("pairsDevTest.txt")).unwrap()).unwrap();
    let images = view1.join("images");
    let paths = pairs.image_paths(&images);
    println!("| upscale | LFW images/s | LFW no face | pairsDevTest 10-fold | dlib recall | dlib at half size | album mAP | album P/R at 0.50 | album faces | album index s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, upscale) in policies {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let p = Pipeline::load(&common::models_dir(), candle_core::Device::Cpu, Settings { upscale, ..Settings::default() }).unwrap();
        let t0 = Instant::now();
        let embedded = pairs::embed_central_faces(&p, &paths).unwrap();
        let ips = paths.len() as f64 / t0.elapsed().as_secs_f64();
        let no_face = embedded.values().filter(|e| e.fallback).count();
        let scores = pairs::pair_scores(&pairs, &images, &embedded);
        let (s, same, folds) = pairs::scored(&pairs, &scores);
        let (acc, std, _) = metrics::kfold_accuracy(&s, &same, &folds, pairs.n_folds);
        let (found, total) = common::dlib_recall(&p);
        let (found_half, _) = common::dlib_recall_at(&p, 0.5);
        let album = common::album::find_this_person(&p);
        let (pr, rc) = album.at_default();
        println!(
            "| {name} | {ips:.1} | {no_face} | {:.2} % ± {:.2} | {found}/{total} | {found_half}/{total} | {:.3} | {pr:.3} / {rc:.3} | {} | {:.1} |",
            acc * 100.0,
            std * 100.0,
            album.map,
            album.faces,
            album.index_secs
        );
    }
}
