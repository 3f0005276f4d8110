//! Catalog and search speed: re-indexing an unchanged folder of N photos (default 1,000),
//! loading a 100,000-face catalog, and ranking 100,000 faces. `cargo bench --bench catalog [-- N]`.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use facefind::catalog::{Catalog, FaceRecord, FaceRow, FaceTable, PhotoRecord, Status};
use facefind::index::{self as indexer, scan};
use facefind::nets::mobilefacenet::EMBEDDING_DIM;
use facefind::pipeline::Pipeline;
use facefind::search::rank_photos;

fn unit_vectors(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut v: Vec<f32> = (0..n * EMBEDDING_DIM)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        })
        .collect();
    for row in v.chunks_exact_mut(EMBEDDING_DIM) {
        let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= n);
    }
    v
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos)?;
    let mut jpg = Vec::new();
    image::RgbImage::from_pixel(64, 48, image::Rgb([90, 100, 110]))
        .write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg)?;
    let n_files: usize = std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let t0 = Instant::now();
    for i in 0..n_files {
        // folders of 1,000, as cameras and phones store them
        let sub = photos.join(format!("{:04}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&sub)?;
        }
        std::fs::write(sub.join(format!("IMG_{i:07}.jpg")), &jpg)?;
    }
    eprintln!("{n_files} files written in {:.1} s", t0.elapsed().as_secs_f64());
    // A catalog that already knows every file (one face each), as after a first index.
    let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let p = Pipeline::load(&models, candle_core::Device::Cpu, Default::default())?;
    let cat_path = dir.path().join("catalog.sqlite");
    let mut cat = Catalog::open(&cat_path)?;
    indexer::ensure_identity(&mut cat, &p)?;
    let emb = unit_vectors(n_files, 1);
    let records: Vec<PhotoRecord> = scan::scan(&photos)
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| PhotoRecord {
            path: facefind::catalog::path_bytes(&f.rel),
            size: f.size,
            mtime_ns: f.mtime_ns,
            fingerprint: vec![i as u8; 16],
            width: 64,
            height: 48,
            status: Status::Faces,
            taken: None,
            regions: Vec::new(),
            sidecar_sig: 0,
            reason: None,
            thumbnail: jpg.clone(),
            faces: vec![FaceRecord {
                bbox: [1.0, 2.0, 30.0, 30.0],
                score: 0.99,
                landmarks: [0.0; 10],
                embedding: emb[i * EMBEDDING_DIM..(i + 1) * EMBEDDING_DIM].to_vec(),
                chip: jpg.clone(),
            }],
        })
        .collect();
    for chunk in records.chunks(10_000) {
        cat.write_batch(chunk)?;
    }
    drop(records);
    drop(cat);
    let times: Vec<f64> = (0..if n_files > 10_000 { 3 } else { 5 })
        .map(|_| {
            let t = Instant::now();
            let mut cat = Catalog::open(&cat_path).unwrap();
            cat.lock_for_writing().unwrap();
            let s = indexer::index_folder(&photos, &mut cat, &p, &AtomicBool::new(false), &mut |_| {}).unwrap();
            assert_eq!(s.unchanged, n_files);
            t.elapsed().as_secs_f64()
        })
        .collect();
    println!("| re-index unchanged {n_files}-photo folder | {:.1} ms |", 1e3 * median(times));

    // 100,000 faces of ~77,000 photos.
    let n = 100_000;
    let dim = EMBEDDING_DIM;
    let mut table = FaceTable::new(dim);
    for (i, e) in unit_vectors(n, 7).chunks(dim).enumerate() {
        table.push(FaceRow { face_id: i as i64, photo_id: (i as i64 * 10) / 13, index: 0, bbox: [0.0; 4], score: 0.99 }, e);
    }
    let q = table.embedding(123).to_vec();
    let times: Vec<f64> = (0..20)
        .map(|_| {
            let t = Instant::now();
            let hits = rank_photos(&table, &q, facefind::search::DEFAULT_THRESHOLD);
            assert_eq!(hits[0].row, 123);
            t.elapsed().as_secs_f64()
        })
        .collect();
    println!("| rank 100,000 faces (one query) | {:.1} ms |", 1e3 * median(times));
    Ok(())
}
