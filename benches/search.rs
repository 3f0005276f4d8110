//! Ranking a million-photo library: one query against 2,000,000 faces (1,000,000 photos, two
//! faces each; synthetic 192-d unit vectors of 200,000 people, same-person cosine ~0.6), the
//! exact f32 ranking of every face in memory (the app before session 8) next to what the app
//! does now (`search::rank_photos` on a table read from its snapshot file: 8-bit codes in
//! memory, exact f32 re-scoring of the candidates read from the file), in one run:
//! milliseconds per query, memory, candidates re-scored, recall of the exact top 1,000.
//!   cargo bench --bench search [-- FACES]

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use facefind::catalog::face_table::{SnapshotWriter, Stamp};
use facefind::catalog::FaceRow;
use facefind::search::{self, DEFAULT_THRESHOLD};
use facefind::util::rng::Rng;

const DIM: usize = 192;

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

/// Median milliseconds of `f` over `n` runs (after one warm-up).
fn median_ms<T>(n: usize, mut f: impl FnMut(usize) -> T) -> (f64, T) {
    let mut out = f(0);
    let mut t: Vec<f64> = (1..=n)
        .map(|i| {
            let t0 = Instant::now();
            out = f(i);
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], out)
}

fn main() {
    facefind::util::alloc::reuse_freed_memory();
    let faces: usize = std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let people = faces / 10;
    let t_gen = Instant::now();
    use rayon::prelude::*;
    let centres: Vec<f32> = (0..people)
        .into_par_iter()
        .flat_map_iter(|p| {
            let mut r = Rng::stream(7, 0, p as u64);
            let mut v: Vec<f32> = (0..DIM).map(|_| r.normal()).collect();
            unit(&mut v);
            v
        })
        .collect();
    let sigma = 0.8 / (DIM as f32).sqrt();
    let embeddings: Vec<f32> = (0..faces)
        .into_par_iter()
        .flat_map_iter(|i| {
            let mut r = Rng::stream(8, 0, i as u64);
            let p = r.below(people);
            let mut v: Vec<f32> = centres[p * DIM..(p + 1) * DIM].iter().map(|c| c + sigma * r.normal()).collect();
            unit(&mut v);
            v
        })
        .collect();
    let dir = tempfile::tempdir().expect("temporary directory");
    let t0 = Instant::now();
    let mut w = SnapshotWriter::create(&dir.path().join("catalog.faces"), Stamp { catalog_id: "0".repeat(32), generation: 0 }, DIM)
        .expect("snapshot");
    for (i, e) in embeddings.chunks_exact(DIM).enumerate() {
        w.push(FaceRow { face_id: i as i64, photo_id: (i / 2) as i64, index: (i % 2) as u32, bbox: [0.0; 4], score: 0.99 }, e)
            .expect("snapshot");
    }
    let table = w.finish(0).expect("snapshot");
    let build_s = t0.elapsed().as_secs_f64();
    eprintln!("generated {faces} faces and their snapshot in {:.1} s", t_gen.elapsed().as_secs_f64());
    let index = table.codes();
    let row = |r: usize| &embeddings[r * DIM..(r + 1) * DIM];
    // before: exact f32 scores of every face from memory, every photo ranked
    let exact_scores = |q: &[f32]| -> Vec<f32> { embeddings.par_chunks_exact(DIM).map(|e| facefind::pipeline::cosine(e, q)).collect() };

    let queries: Vec<usize> = (0..11).map(|i| i * (faces / 11) + 3).collect();
    let k = 1000;
    let (today_ms, _) = median_ms(queries.len() - 1, |i| search::rank_scores(&table, &exact_scores(row(queries[i]))).len());
    let (exact_scores_ms, _) = median_ms(queries.len() - 1, |i| exact_scores(row(queries[i])).len());
    // now: the 8-bit codes, candidates re-scored exactly from the snapshot file
    let (int8_ms, _) = median_ms(queries.len() - 1, |i| search::rank_photos(&table, row(queries[i]), DEFAULT_THRESHOLD).len());
    let (top_ms, _) = median_ms(queries.len() - 1, |i| {
        let q = row(queries[i]);
        search::top_faces(index, q, k, DEFAULT_THRESHOLD, |r| facefind::pipeline::cosine(&table.embedding(r), q)).len()
    });
    // recall of the exact top 1,000 and how many faces were re-scored
    let (mut recall, mut worst, mut candidates, mut max_err, mut photos_equal) = (0.0, 1.0f64, 0usize, 0f32, 0usize);
    for &qi in &queries {
        let q = row(qi);
        let exact = exact_scores(q);
        let mut order: Vec<usize> = (0..faces).collect();
        order.select_nth_unstable_by(k - 1, |&a, &b| exact[b].total_cmp(&exact[a]));
        let truth: std::collections::HashSet<usize> = order[..k].iter().copied().collect();
        let got = search::top_faces(index, q, k, DEFAULT_THRESHOLD, |r| exact[r]);
        let r = got.iter().take(k).filter(|(i, _)| truth.contains(i)).count() as f64 / k as f64;
        recall += r / queries.len() as f64;
        worst = worst.min(r);
        let (approx, margin) = index.scores(q);
        candidates += approx.iter().zip(&exact).filter(|(a, _)| **a >= got[k - 1].1 - 2.0 * margin).count() / queries.len();
        max_err = approx.iter().zip(&exact).fold(max_err, |m, (a, e)| m.max((a - e).abs()));
        // the photos at or above the threshold, in order, with their scores: equal to exact
        let want = search::rank_scores(&table, &exact);
        let have = search::rank_photos(&table, q, DEFAULT_THRESHOLD);
        let n = search::count_matches(&want, DEFAULT_THRESHOLD);
        photos_equal += usize::from(want[..n] == have[..n] && search::count_matches(&have, DEFAULT_THRESHOLD) == n);
    }
    let (_, margin) = index.scores(row(queries[0]));
    println!("| {faces} faces ({} photos), one query, 2 cores | before: exact f32 in memory | now: 8-bit codes + exact re-scoring from the snapshot | before / now |", faces / 2);
    println!("|---|---|---|---|");
    println!(
        "| rank every photo (ms, median of {}) | {today_ms:.0} | {int8_ms:.0} (exact at >= {DEFAULT_THRESHOLD} and the top {}) | {:.1} |",
        queries.len() - 1,
        search::EXACT_TOP,
        today_ms / int8_ms
    );
    println!("| top {k} faces and all >= {DEFAULT_THRESHOLD} (ms) | - | {top_ms:.0} | - |");
    println!("| score every face (ms) | {exact_scores_ms:.0} | - | - |");
    println!(
        "| face table in memory (MB) | {:.0} | {:.0} | {:.1} |",
        (faces * DIM * 4) as f64 / 1e6,
        table.memory_bytes() as f64 / 1e6,
        (faces * DIM * 4) as f64 / table.memory_bytes() as f64
    );
    println!(
        "| photos >= {DEFAULT_THRESHOLD}: same photos, order and scores as exact | - | {photos_equal} of {} queries | - |",
        queries.len()
    );
    println!("| recall of the exact top {k} (mean / worst) | 1 | {recall:.4} / {worst:.4} | - |");
    println!("| faces re-scored per query | - | ~{candidates} | - |");
    println!("| largest score error / its bound | - | {max_err:.4} / {margin:.4} | - |");
    println!("| write the snapshot (s) | - | {build_s:.2} | - |");
}
