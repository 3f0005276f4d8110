//! People grouping at a million photos: a grouped library of PHOTOS synthetic photos (1.5 faces
//! per photo, a quarter of them strangers seen once, the rest 5,000 people; 192-d unit vectors,
//! same-person cosine ~0.6) gets NEW more photos, then (each in its own process, for its peak
//! memory) is grouped the way facefind groups after an index run (`Catalog::group_people`: the
//! new faces only) and the way a library is grouped whole (`people::plan` over every face: the
//! whole unassigned pool clustered again, every exact embedding loaded; nothing written). Also prints
//! how the library was built (grown in steps of STEP photos, each grouped incrementally) and its
//! BCubed F against the planted people.
//!   cargo bench --bench grouping [-- PHOTOS [NEW [STEP]]]   (default 1,000,000 1,000 50,000)
//! `GROUPING_BENCH_DIR=DIR` keeps the library in DIR for the next run; `GROUPING_BENCH_MODES=
//! incremental` runs one way only (`whole,incremental` by default).

use std::path::{Path, PathBuf};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use facefind::catalog::{Catalog, FaceRecord, PhotoRecord, Status};
use facefind::eval::clusters as metrics;
use facefind::people::{self, Params};
use facefind::util::rng::Rng;

const DIM: usize = 192;
const PEOPLE: usize = 5_000;

/// Photo `i`'s faces: (truth label, embedding). Strangers get labels above every person's.
fn photo_faces(i: usize, centres: &[f32]) -> Vec<(usize, Vec<f32>)> {
    let mut r = Rng::stream(21, 0, i as u64);
    let sigma = 0.8 / (DIM as f32).sqrt();
    let mut out: Vec<(usize, Vec<f32>)> = Vec::new();
    for k in 0..1 + i % 2 {
        let label = if r.uniform() < 0.25 {
            PEOPLE + 2 * i + k
        } else {
            let mut p = r.below(PEOPLE);
            if out.iter().any(|f| f.0 == p) {
                p = (p + 1) % PEOPLE;
            }
            p
        };
        let mut v: Vec<f32> = if label < PEOPLE {
            centres[label * DIM..(label + 1) * DIM].iter().map(|c| c + sigma * r.normal()).collect()
        } else {
            (0..DIM).map(|_| r.normal()).collect()
        };
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        out.push((label, v));
    }
    out
}

fn centres() -> Vec<f32> {
    (0..PEOPLE)
        .flat_map(|p| {
            let mut r = Rng::stream(20, 0, p as u64);
            let mut v: Vec<f32> = (0..DIM).map(|_| r.normal()).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= n);
            v
        })
        .collect()
}

fn records(range: std::ops::Range<usize>, centres: &[f32]) -> Vec<PhotoRecord> {
    range
        .map(|i| PhotoRecord {
            path: format!("{:04}/IMG_{i:07}.jpg", i / 1000).into_bytes(),
            size: 3_000_000,
            mtime_ns: 1_700_000_000_000_000_000,
            fingerprint: (i as u64).to_le_bytes().to_vec(),
            width: 4000,
            height: 3000,
            status: Status::Faces,
            taken: None,
            regions: Vec::new(),
            sidecar_sig: 0,
            reason: None,
            thumbnail: Vec::new(),
            faces: photo_faces(i, centres)
                .into_iter()
                .enumerate()
                .map(|(k, (_, e))| FaceRecord {
                    bbox: [200.0 + 1000.0 * k as f32, 300.0, 400.0, 500.0],
                    score: 0.99,
                    landmarks: [0.0; 10],
                    embedding: e,
                    chip: Vec::new(),
                })
                .collect(),
        })
        .collect()
}

/// Peak resident memory of this process so far, MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// BCubed F of the catalog's people against the planted labels (unassigned faces alone).
fn quality(cat: &Catalog, centres: &[f32]) -> anyhow::Result<(f64, f64, f64)> {
    let t = cat.face_table()?;
    let links = cat.face_links()?;
    let photo_index: std::collections::HashMap<i64, usize> = cat
        .photos()?
        .into_iter()
        .filter_map(|p| {
            let name = String::from_utf8_lossy(&p.path).into_owned();
            Some((p.id, name.split("IMG_").nth(1)?.trim_end_matches(".jpg").parse().ok()?))
        })
        .collect();
    let (mut pred, mut truth) = (Vec::new(), Vec::new());
    for r in 0..t.len() {
        let i = photo_index[&t.photo_id(r)];
        truth.push(photo_faces(i, centres)[t.face_index(r) as usize].0);
        pred.push(links.get(&t.face_id(r)).map(|l| l.0 as usize).unwrap_or(usize::MAX / 2 + r));
    }
    let b = metrics::bcubed(&pred, &truth);
    Ok((b.precision, b.recall, b.f))
}

fn child(mode: &str, path: &Path) -> anyhow::Result<()> {
    match mode {
        "incremental" => {
            let mut cat = Catalog::open(path)?;
            let t0 = Instant::now();
            let s = cat.group_people(&Params::default())?;
            println!(
                "incremental\t{:.2}\t{:.0}\t{} faces joined people, {} new people, {} faces unassigned",
                t0.elapsed().as_secs_f64(),
                peak_mib(),
                s.assigned,
                s.new_people,
                s.unassigned
            );
        }
        "whole" => {
            let cat = Catalog::open(path)?;
            let t0 = Instant::now();
            let t = cat.face_table()?;
            let infos = cat.face_infos(&t)?;
            let emb = t.all_embeddings()?;
            let plan = people::plan(&emb, t.dim(), &infos, &Params::default());
            println!(
                "whole\t{:.2}\t{:.0}\t{} faces joined people, {} new people (not written)",
                t0.elapsed().as_secs_f64(),
                peak_mib(),
                plan.assign.len(),
                plan.new_people.len()
            );
        }
        _ => anyhow::bail!("unknown mode {mode}"),
    }
    Ok(())
}

/// Runs this bench as a child process in `mode` and returns its tab-separated line.
fn run_child(mode: &str, path: &Path) -> anyhow::Result<Vec<String>> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["--child", mode])
        .arg(path)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "{mode} failed ({})", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with(mode)).ok_or_else(|| anyhow::anyhow!("{mode}: no result in {text}"))?;
    Ok(line.split('\t').map(str::to_string).collect())
}

fn main() -> anyhow::Result<()> {
    facefind::util::alloc::reuse_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1], Path::new(&args[2]));
    }
    let num = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (photos, new, step) = (num(0, 1_000_000), num(1, 1_000), num(2, 50_000));
    let tmp = tempfile::tempdir()?;
    let dir: PathBuf = std::env::var_os("GROUPING_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let base = dir.join(format!("base-{photos}-{step}.sqlite"));
    let centres = centres();
    println!("people grouping at {photos} photos + {new} new, {} threads", rayon::current_num_threads());
    if !base.exists() {
        let building = dir.join("building.sqlite");
        for p in [building.clone(), building.with_extension("faces")] {
            let _ = std::fs::remove_file(p);
        }
        let mut cat = Catalog::open(&building)?;
        let t0 = Instant::now();
        let (mut write_s, mut group_s) = (0.0, 0.0);
        for s0 in (0..photos).step_by(step) {
            let t = Instant::now();
            for chunk in (s0..(s0 + step).min(photos)).collect::<Vec<_>>().chunks(1000) {
                cat.write_batch(&records(chunk[0]..chunk[chunk.len() - 1] + 1, &centres))?;
            }
            write_s += t.elapsed().as_secs_f64();
            let t = Instant::now();
            cat.group_people(&Params::default())?;
            group_s += t.elapsed().as_secs_f64();
            eprintln!("  {} photos grouped, {:.0} s", (s0 + step).min(photos), t0.elapsed().as_secs_f64());
        }
        let (p, r, f) = quality(&cat, &centres)?;
        println!(
            "library built in steps of {step} photos: writing {write_s:.0} s, grouping {group_s:.0} s; {} people; BCubed P {p:.3} R {r:.3} F {f:.3} against the planted people",
            cat.people()?.len()
        );
        drop(cat);
        std::fs::rename(&building, &base)?;
        let _ = std::fs::remove_file(building.with_extension("faces"));
    }
    let work = dir.join("work.sqlite");
    for p in [work.clone(), work.with_extension("sqlite-wal"), work.with_extension("sqlite-shm"), work.with_extension("faces")] {
        let _ = std::fs::remove_file(p);
    }
    std::fs::copy(&base, &work)?;
    {
        let mut cat = Catalog::open(&work)?;
        cat.write_batch(&records(photos..photos + new, &centres))?;
        // the face snapshot an index run leaves for the app (shared by both ways below)
        let t0 = Instant::now();
        let t = cat.face_table()?;
        println!(
            "{} faces; face table read after the new photos were written (snapshot rebuilt from the catalog): {:.2} s",
            t.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    println!();
    println!("| grouping after {new} new photos | time | peak RSS | result |");
    println!("|---|---|---|---|");
    let modes = std::env::var("GROUPING_BENCH_MODES").unwrap_or_else(|_| "whole,incremental".into());
    for mode in modes.split(',') {
        let f = run_child(mode, &work)?;
        let name = if mode == "whole" {
            "every face again (`people::plan`, all exact embeddings)"
        } else {
            "new faces only (`Catalog::group_people`, written)"
        };
        println!("| {name} | {} s | {} MiB | {} |", f[1], f[2], f[3]);
    }
    Ok(())
}
