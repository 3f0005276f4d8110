use std::path::Path;
use std::time::Instant;
use facefind::catalog::{Catalog, FaceRecord, PhotoRecord, Status};
use facefind::pipeline::embedder::EMBEDDING_DIM;
fn jpeg(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([((x * 3 + seed) % 255) as u8, ((y * 5 + seed * 7) % 255) as u8, ((x + y + seed) % 255) as u8]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).expect("jpeg");
    out
}

fn write_catalog(path: &Path, photos: usize) -> anyhow::Result<()> {
    let mut cat = Catalog::open(path)?;
    let thumbs: Vec<Vec<u8>> = (0..16).map(|i| jpeg(256, 171, i * 13)).collect();
    let chip = jpeg(96, 96, 5);
    let mut s = 1u64;
    let mut rand = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    // 1,000 people: each face is its person's direction plus noise (pairwise cosine ≈ 0.7)
    let centres: Vec<Vec<f32>> = (0..1000).map(|_| (0..EMBEDDING_DIM).map(|_| rand()).collect()).collect();
    let mut batch = Vec::new();
    for i in 0..photos {
        let faces = (0..1 + i % 2)
            .map(|k| {
                let c = &centres[(i * 7 + k) % centres.len()];
                let mut e: Vec<f32> = c.iter().map(|x| x / 0.29 + 0.65 * rand() / 0.29).collect();
                let n = e.iter().map(|x| x * x).sum::<f32>().sqrt();
                e.iter_mut().for_each(|x| *x /= n);
                FaceRecord { bbox: [100.0 + 300.0 * k as f32, 80.0, 120.0, 150.0], score: 0.99, landmarks: [0.0; 10], embedding: e, chip: chip.clone() }
            })
            .collect();
        batch.push(PhotoRecord {
            path: format!("{:04}/IMG_{i:05}.jpg", i / 500).into_bytes(),
            size: 3_000_000,
            mtime_ns: 1_700_000_000_000_000_000,
            fingerprint: (i as u64).to_le_bytes().to_vec(),
            width: 4000,
            height: 2667,
            status: Status::Faces,
            reason: None,
            thumbnail: thumbs[i % thumbs.len()].clone(),
            faces,
        });
        if batch.len() == 500 {
            cat.write_batch(&batch)?;
            batch.clear();
        }
    }
    cat.write_batch(&batch)?;
    let t0 = Instant::now();
    let g = cat.group_people(&facefind::people::Params::default())?;
    if photos > 0 {
        println!("grouping {} faces: {:.2} s, {} people", photos + photos / 2, t0.elapsed().as_secs_f64(), g.new_people);
    }
    Ok(())
}


fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).unwrap().parse()?;
    let path = std::path::PathBuf::from(format!("/tmp/{}.sqlite", std::env::args().nth(2).unwrap_or(format!("open{n}"))));
    if !path.exists() { write_catalog(&path, n)?; }
    let t = Instant::now();
    let cat = Catalog::open(&path)?;
    eprintln!("open {:.3}", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let table = cat.face_table()?;
    eprintln!("face_table {:.3} ({} faces)", t.elapsed().as_secs_f64(), table.len());
    let t = Instant::now();
    let infos = cat.face_infos(&table)?;
    eprintln!("face_infos {:.3}", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let people = cat.people()?;
    eprintln!("people {:.3} ({})", t.elapsed().as_secs_f64(), people.len());
    let named: std::collections::HashSet<i64> = people.iter().filter(|p| p.name.is_some()).map(|p| p.id).collect();
    let t = Instant::now();
    let s = facefind::people::suggestions(table.embeddings(), table.dim(), &infos, &named, &facefind::people::Params::default());
    eprintln!("suggestions {:.3} ({})", t.elapsed().as_secs_f64(), s.len());
    let t = Instant::now();
    let photos = cat.photos()?;
    eprintln!("photos {:.3} ({})", t.elapsed().as_secs_f64(), photos.len());
    Ok(())
}
