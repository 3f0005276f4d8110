//! Mutation soak on stable Rust (the stable counterpart of `fuzz/`): real album photos and the
//! format fixtures (JPEG, PNG, TIFF, GIF, WebP, HEIC, the dated photos and camera RAW files), mutated (bit flips, overwritten, inserted
//! and deleted runs, truncation, duplicated chunks, scrambled headers, splices of two files),
//! through the capture-date reader, the index's decoder and, when it decodes, the detector. Every outcome must be a
//! decoded photo with finite faces or an error with a reason; a panic is counted and printed.
//! `cargo bench --bench soak [MUTATIONS]` (default 100,000); `FACEFIND_FACES` as for the tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use facefind::photo;
use facefind::pipeline::Pipeline;

/// A small, fast, seeded generator (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else if p.extension().is_some_and(|e| {
            matches!(
                e.to_string_lossy().to_lowercase().as_str(),
                "jpg"
                    | "jpeg"
                    | "png"
                    | "tif"
                    | "gif"
                    | "webp"
                    | "heic"
                    | "heif"
                    | "avif"
                    | "dng"
                    | "cr2"
                    | "cr3"
                    | "nef"
                    | "raf"
                    | "rw2"
                    | "x3f"
            )
        }) {
            out.push(p);
        }
    }
}

fn mutate(rng: &mut Rng, a: &[u8], other: &[u8]) -> Vec<u8> {
    let mut m = a.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = m.len().max(1);
        match rng.below(8) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(len);
                    if let Some(b) = m.get_mut(i) {
                        *b ^= 1 << rng.below(8);
                    }
                }
            }
            1 => {
                let (i, n) = (rng.below(len), 1 + rng.below(64));
                for k in i..(i + n).min(m.len()) {
                    m[k] = rng.next() as u8;
                }
            }
            2 => {
                let i = rng.below(len);
                let ins: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
                m.splice(i.min(m.len())..i.min(m.len()), ins);
            }
            3 => {
                let i = rng.below(len);
                let n = 1 + rng.below(4096);
                m.drain(i.min(m.len())..(i + n).min(m.len()));
            }
            4 => m.truncate(rng.below(len)),
            5 => {
                let (i, n) = (rng.below(len), 1 + rng.below(4096));
                let chunk: Vec<u8> = m[i.min(m.len())..(i + n).min(m.len())].to_vec();
                let at = rng.below(len).min(m.len());
                m.splice(at..at, chunk);
            }
            6 => {
                // the headers and markers: the first 64 bytes
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(64.min(len));
                    if let Some(b) = m.get_mut(i) {
                        *b = rng.next() as u8;
                    }
                }
            }
            _ => {
                let cut = rng.below(len).min(m.len());
                let from = rng.below(other.len().max(1)).min(other.len());
                m.truncate(cut);
                m.extend_from_slice(&other[from..]);
            }
        }
    }
    m
}

fn main() -> anyhow::Result<()> {
    let total: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let faces = std::env::var_os("FACEFIND_FACES").map(PathBuf::from).unwrap_or_else(|| root.join("../shared/faces"));
    let mut seeds = Vec::new();
    files_under(&faces.join("album"), &mut seeds);
    files_under(&root.join("tests/data/formats"), &mut seeds);
    files_under(&root.join("tests/data/heif"), &mut seeds);
    files_under(&root.join("tests/data/dates"), &mut seeds);
    files_under(&root.join("tests/data/raw"), &mut seeds);
    files_under(&root.join("tests/data/regions"), &mut seeds);
    let seeds: Vec<(String, Vec<u8>)> =
        seeds.iter().filter_map(|p| Some((p.extension()?.to_string_lossy().to_lowercase(), std::fs::read(p).ok()?))).collect();
    anyhow::ensure!(!seeds.is_empty(), "no seed photos under {} or tests/data", faces.display());
    let p = Pipeline::load(&root.join("models"), candle_core::Device::Cpu, Default::default())?;
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(0x5eed);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut panics = Vec::new();
    let (mut decoded, mut detected_faces) = (0usize, 0usize);
    let t0 = Instant::now();
    for i in 0..total {
        let (kind, a) = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())].1;
        let m = mutate(&mut rng, a, other);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<usize, String> {
            // when it was taken: a date or none
            let _ = photo::taken::read(Path::new("/nonexistent/photo.jpg"), &m);
            // named regions: inside the photo as shown, or none
            for r in photo::regions::read(Path::new("/nonexistent/photo.jpg"), &m, (640, 480)) {
                if !r.rect.iter().all(|v| v.is_finite()) || r.name.trim().is_empty() {
                    return Err(format!("bad region {r:?}"));
                }
            }
            let d = photo::decode_scaled(&m, 640).map_err(|e| e.kind().to_string())?;
            let faces = p.detect(&d.rgb).map_err(|e| format!("detector: {e}"))?;
            if faces.iter().any(|f| !f.bbox.iter().all(|v| v.is_finite()) || !f.score.is_finite()) {
                return Err("non-finite face".into());
            }
            Ok(faces.len())
        }));
        match r {
            Ok(Ok(n)) => {
                decoded += 1;
                detected_faces += n;
                *outcomes.entry("decoded".into()).or_default() += 1;
            }
            Ok(Err(why)) => *outcomes.entry(why).or_default() += 1,
            Err(_) => {
                panics.push(format!("mutant {i} of a .{kind}"));
                std::fs::write(std::env::temp_dir().join(format!("facefind-soak-panic-{i}.{kind}")), &m)?;
            }
        }
        if (i + 1) % 10_000 == 0 {
            eprintln!("{} mutants, {:.0}/s, {} panics", i + 1, (i + 1) as f64 / t0.elapsed().as_secs_f64(), panics.len());
        }
    }
    let _ = std::panic::take_hook();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{total} mutants of {} seed files in {secs:.0} s ({:.0} executions/s); {decoded} decoded ({detected_faces} faces found); {} panics",
        seeds.len(),
        total as f64 / secs,
        panics.len()
    );
    println!("| outcome | mutants |\n|---|---|");
    for (k, v) in &outcomes {
        println!("| {k} | {v} |");
    }
    for p in &panics {
        println!("PANIC: {p} (saved in the temp folder)");
    }
    anyhow::ensure!(panics.is_empty(), "{} panics", panics.len());
    Ok(())
}
