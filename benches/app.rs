//! The app on a synthetic 10,000-photo catalog (15,000 faces of 1,000 people, grouped): time to
//! open it, UI pass time while scrolling the album, the results and the People view
//! (egui_kittest, no GPU: layout and tessellation input, not rasterisation), and resident
//! memory. `cargo bench --bench app [-- PHOTOS]` (default 10,000).
//!
//! Baseline in the same run: the same app on an empty catalog. `APP_BENCH_DIR=DIR` keeps the
//! synthetic catalog in DIR for the next run (its face snapshot too: the "first open" is then
//! not a first open); `RUST_LOG=info` prints where the open's time goes.

use std::path::Path;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use facefind::catalog::{Catalog, FaceRecord, PhotoRecord, Status};
use facefind::gui::{App, Options, Prefs};
use facefind::nets::mobilefacenet::EMBEDDING_DIM;

const PHOTOS: usize = 10_000;
/// Larger catalogs are written without people (grouping is the indexer's job, not the app's).
const GROUP_UP_TO: usize = 200_000;

/// Photos in the synthetic catalog: the first plain argument, or [`PHOTOS`].
fn photos_arg() -> usize {
    std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(PHOTOS)
}

fn jpeg(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([((x * 3 + seed) % 255) as u8, ((y * 5 + seed * 7) % 255) as u8, ((x + y + seed) % 255) as u8])
    });
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
                FaceRecord {
                    bbox: [100.0 + 300.0 * k as f32, 80.0, 120.0, 150.0],
                    score: 0.99,
                    landmarks: [0.0; 10],
                    embedding: e,
                    chip: chip.clone(),
                }
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
            taken: None,
            regions: Vec::new(),
            sidecar_sig: 0,
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
    if photos > GROUP_UP_TO {
        println!(
            "{photos} photos: people not grouped (clustering {} faces takes minutes; open time and memory are measured without people)",
            photos + photos / 2
        );
        return Ok(());
    }
    let t0 = Instant::now();
    let g = cat.group_people(&facefind::people::Params::default())?;
    if photos > 0 {
        println!("grouping {} faces: {:.2} s, {} people", photos + photos / 2, t0.elapsed().as_secs_f64(), g.new_people);
    }
    Ok(())
}

fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Run {
    /// The frame that starts a search (ranks every photo), ms.
    query_ms: f64,
    /// From that frame until the ranking is on screen, ms.
    rank_ms: f64,
    /// Resident memory with the library open, after scrolling (MiB).
    rss_open: f64,
    first_s: f64,
    open_s: f64,
    frames_ms: Vec<f64>,
    people_ms: Vec<f64>,
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The app on `options` (models absent: nothing is indexed) once its library of `photos`
/// photos is read, and how long that took.
fn open_app(options: Options, photos: usize) -> anyhow::Result<(Harness<'static, App>, f64)> {
    let t0 = Instant::now();
    let mut h: Harness<'static, App> = Harness::builder().with_size([1600.0, 1000.0]).build_eframe(move |cc| App::new(cc, options));
    while h.state().library().is_none_or(|l| l.photos.len() != photos) {
        h.step();
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(600), "catalog did not open");
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok((h, t0.elapsed().as_secs_f64()))
}

/// Opens the folder from its catalog twice (see [`open_app`]), scrolls the album, runs a query
/// and scrolls the results.
fn run(dir: &Path, photos: usize) -> anyhow::Result<Run> {
    let folder = dir.join("photos");
    std::fs::create_dir_all(&folder)?;
    let catalog = dir.join("catalog.sqlite");
    // APP_BENCH_DIR keeps the catalog between runs (writing a million photos takes minutes)
    let kept = catalog.exists() && Catalog::open(&catalog)?.photo_count()? == photos;
    if !kept {
        write_catalog(&catalog, photos)?;
    }
    let options = Options {
        folder: Some(folder),
        catalog: Some(catalog),
        models_dir: Some(dir.join("no-models")),
        prefs: Some(Prefs::default()),
        ..Options::default()
    };
    // First open after the catalog changed: the faces come from the catalog's rows and the
    // face snapshot is written; then an open of the unchanged catalog (every later start).
    let (first, first_s) = open_app(options.clone(), photos)?;
    drop(first);
    let (mut h, open_s) = open_app(options, photos)?;
    let mut frames_ms = Vec::new();
    let scroll = |h: &mut Harness<'static, App>, at: egui::Pos2, frames: usize, frames_ms: &mut Vec<f64>| {
        h.hover_at(at);
        for i in 0..frames {
            // Scroll down, and every 60 frames jump back up a long way.
            let dy = if i % 60 == 59 { 20_000.0 } else { -400.0 };
            h.event(egui::Event::MouseWheel {
                unit: egui::MouseWheelUnit::Point,
                delta: egui::vec2(0.0, dy),
                phase: egui::TouchPhase::Move,
                modifiers: egui::Modifiers::NONE,
                source: egui::MouseWheelSource::Wheel,
            });
            let t = Instant::now();
            h.step();
            frames_ms.push(t.elapsed().as_secs_f64() * 1e3);
            // ~60 Hz: the loader threads decode thumbnails in between, as in a window.
            std::thread::sleep(Duration::from_millis(16));
        }
    };
    scroll(&mut h, egui::pos2(800.0, 500.0), 240, &mut frames_ms);
    let (mut query_ms, mut rank_ms) = (0.0, 0.0);
    if photos > 0 {
        h.get_by_label_contains("face 0 in 0000/IMG_00000.jpg").click();
        let t = Instant::now();
        // the frame that takes the click asks for the ranking (made off the UI thread)
        h.step();
        query_ms = t.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(h.state().query().is_some(), "query did not start");
        let t = Instant::now();
        while h.state().ranking_pending() {
            h.step();
            anyhow::ensure!(t.elapsed() < Duration::from_secs(60), "the ranking did not come");
            std::thread::sleep(Duration::from_millis(1));
        }
        rank_ms = t.elapsed().as_secs_f64() * 1e3;
        scroll(&mut h, egui::pos2(1000.0, 500.0), 240, &mut frames_ms);
        h.get_by_label("Back to album").click();
        h.step();
    }
    let mut people_ms = Vec::new();
    h.get_by_label("People").click();
    h.step();
    anyhow::ensure!(h.state().people_view(), "People view did not open");
    scroll(&mut h, egui::pos2(800.0, 500.0), 240, &mut people_ms);
    let rss_open = rss_mib().0;
    Ok(Run { query_ms, rank_ms, rss_open, first_s, open_s, frames_ms, people_ms })
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let tmp = tempfile::tempdir()?;
    let big_dir = match std::env::var_os("APP_BENCH_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => tmp.path().join("big"),
    };
    let base_dir = tmp.path().join("empty");
    std::fs::create_dir_all(&base_dir)?;
    std::fs::create_dir_all(&big_dir)?;
    let (rss0, _) = rss_mib();
    let base = run(&base_dir, 0)?;
    let photos = photos_arg();
    let big = run(&big_dir, photos)?;
    let (rss, hwm) = rss_mib();
    println!("app on a synthetic catalog ({photos} photos, {} faces), baseline = empty catalog, same run", photos + photos / 2);
    println!("{:<34} {:>12} {:>12} {:>8}", "", "empty", format!("{photos} photos"), "ratio");
    println!("{:<34} {:>12.3} {:>12.3} {:>8.2}", "first open after a change (s)", base.first_s, big.first_s, big.first_s / base.first_s);
    println!("{:<34} {:>12.3} {:>12.3} {:>8.2}", "open, unchanged catalog (s)", base.open_s, big.open_s, big.open_s / base.open_s);
    println!("{:<34} {:>12} {:>12.1}", "search: the frame that asks (ms)", "-", big.query_ms);
    println!("{:<34} {:>12} {:>12.1}", "search: until ranked (ms)", "-", big.rank_ms);
    for (name, p) in [("UI pass median (ms)", 0.5), ("UI pass p95 (ms)", 0.95), ("UI pass max (ms)", 1.0)] {
        let (a, b) = (percentile(&base.frames_ms, p), percentile(&big.frames_ms, p));
        println!("{name:<34} {a:>12.2} {b:>12.2} {:>8.2}", b / a);
    }
    for (name, p) in [("People view median (ms)", 0.5), ("People view p95 (ms)", 0.95), ("People view max (ms)", 1.0)] {
        let (a, b) = (percentile(&base.people_ms, p), percentile(&big.people_ms, p));
        println!("{name:<34} {a:>12.2} {b:>12.2} {:>8.2}", b / a);
    }
    println!("targets: People view p95 vs 16.7 ms frame -> {:.2} of budget", percentile(&big.people_ms, 0.95) / 16.7);
    println!(
        "targets: open < 2 s -> {:.2} of budget; p95 UI pass vs 16.7 ms frame -> {:.2} of budget",
        big.open_s / 2.0,
        percentile(&big.frames_ms, 0.95) / 16.7
    );
    println!("memory: RSS with the library open {:.0} MiB (empty catalog {:.0} MiB)", big.rss_open, base.rss_open);
    println!("memory: RSS {rss:.0} MiB now, peak {hwm:.0} MiB (process start {rss0:.0} MiB; target < 1536 at 1,000,000 photos)");
    Ok(())
}
