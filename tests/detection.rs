//! Detection quality on real photos: recall against dlib's hand-drawn boxes (small faces in
//! ~500 px photos), no faces on a photo of dogs, a crowded group photo.

mod common;

use facefind::photo;
use facefind::pipeline::{Pipeline, Settings};

fn pipeline(settings: Settings) -> Pipeline {
    Pipeline::load(&common::models_dir(), candle_core::Device::Cpu, settings).unwrap()
}

fn count(p: &Pipeline, rel: &str) -> usize {
    let img = photo::load_rgb(&common::faces_dir().join("album").join(rel)).unwrap();
    p.detect(&img).unwrap().len()
}

#[test]
#[ignore = "needs ../shared/faces"]
fn finds_small_faces_and_no_dogs() {
    let p = pipeline(Settings::default());
    let (found, total) = common::dlib_recall(&p);
    // the same photos at half size (~20 px faces in ~250 px photos): found by looking again at
    // 640 px (`Upscale::WhenNeeded`); at their own size alone two of them are missed
    let (found_half, _) = common::dlib_recall_at(&p, 0.5);
    let dogs = count(&p, "dlib/dogs.jpg");
    let solvay = count(&p, "human/solvay1927.jpg");
    eprintln!("dlib recall {found}/{total} (at half size {found_half}), dogs.jpg {dogs} faces, solvay1927.jpg {solvay} faces");
    assert!(found as f64 >= 0.95 * total as f64, "recall {found}/{total}");
    assert!(found_half as f64 >= 0.95 * total as f64, "recall at half size {found_half}/{total}");
    // RetinaFace fires on dog faces (scores 0.83-0.99); pinned so it does not get worse.
    assert!(dogs <= 3, "{dogs} faces reported on dogs.jpg");
    assert!((26..=32).contains(&solvay), "solvay1927.jpg: {solvay} faces");
}
