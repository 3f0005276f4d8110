//! Detection quality on real photos: recall against dlib's hand-drawn boxes (small faces in
//! ~500 px photos), no faces on a photo of dogs, a crowded group photo.

mod common;

use facefind::pipeline::{detector::iou, photo, Pipeline, Settings};

fn pipeline(settings: Settings) -> Pipeline {
    Pipeline::load(&common::models_dir(), candle_core::Device::Cpu, settings).unwrap()
}

/// (found, total) of hand-drawn boxes matched by a detection with IoU >= 0.4.
fn dlib_recall(p: &Pipeline) -> (usize, usize) {
    let csv = std::fs::read_to_string(common::faces_dir().join("dlib-training-boxes.csv")).unwrap();
    let mut by_photo: std::collections::BTreeMap<String, Vec<[f32; 4]>> = Default::default();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let b = [f[1], f[2], f[3], f[4]].map(|v| v.trim().parse::<f32>().unwrap());
        by_photo.entry(f[0].to_string()).or_default().push(b);
    }
    let (mut found, mut total) = (0, 0);
    for (path, boxes) in by_photo {
        let img = photo::load_rgb(&common::faces_dir().join("album").join(&path)).unwrap();
        let faces = p.detect(&img).unwrap();
        for b in &boxes {
            total += 1;
            if faces.iter().any(|f| iou(&f.bbox, b) >= 0.4) {
                found += 1;
            } else {
                eprintln!("missed {path} {b:?}");
            }
        }
    }
    (found, total)
}

fn count(p: &Pipeline, rel: &str) -> usize {
    let img = photo::load_rgb(&common::faces_dir().join("album").join(rel)).unwrap();
    p.detect(&img).unwrap().len()
}

#[test]
#[ignore = "needs ../shared/faces"]
fn finds_small_faces_and_no_dogs() {
    let p = pipeline(Settings::default());
    let (found, total) = dlib_recall(&p);
    let dogs = count(&p, "dlib/dogs.jpg");
    let solvay = count(&p, "human/solvay1927.jpg");
    eprintln!("dlib recall {found}/{total}, dogs.jpg {dogs} faces, solvay1927.jpg {solvay} faces");
    assert!(found as f64 >= 0.95 * total as f64, "recall {found}/{total}");
    // RetinaFace fires on dog faces (scores 0.83-0.99); pinned so it does not get worse.
    assert!(dogs <= 3, "{dogs} faces reported on dogs.jpg");
    assert!((26..=32).contains(&solvay), "solvay1927.jpg: {solvay} faces");
}
