//! Ranking a million-photo library: one query against 2,000,000 faces (1,000,000 photos, two
//! faces each; synthetic 192-d unit vectors of 200,000 people, same-person cosine ~0.6), today's
//! exact f32 ranking next to the 8-bit index with exact re-scoring (`search::top_faces`), in one
//! run: milliseconds per query, memory, candidates re-scored, recall of the exact top 1,000.
//!   cargo bench --bench search [-- FACES]

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use facefind::catalog::{FaceRow, FaceTable};
use facefind::rng::Rng;
use facefind::search::{self, Int8Index, DEFAULT_THRESHOLD};

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
    facefind::alloc::reuse_freed_memory();
    let faces: usize = std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let people = faces / 10;
    let t0 = Instant::now();
    use rayon::prelude::*;
    let centres: Vec<f32> = (0..people)
        .into_par_iter()
        .flat_map_iter(|p| {
            let mut r = Rng::stream(7, p as u64, 0);
            let mut v: Vec<f32> = (0..DIM).map(|_| r.normal()).collect();
            unit(&mut v);
            v
        })
        .collect();
    let sigma = 0.8 / (DIM as f32).sqrt();
    let embeddings: Vec<f32> = (0..faces)
        .into_par_iter()
        .flat_map_iter(|i| {
            let mut r = Rng::stream(8, i as u64, 0);
            let p = r.below(people);
            let mut v: Vec<f32> = centres[p * DIM..(p + 1) * DIM].iter().map(|c| c + sigma * r.normal()).collect();
            unit(&mut v);
            v
        })
        .collect();
    let mut table = FaceTable::new(DIM);
    for (i, e) in embeddings.chunks_exact(DIM).enumerate() {
        table.push(FaceRow { face_id: i as i64, photo_id: (i / 2) as i64, index: (i % 2) as u32, bbox: [0.0; 4], score: 0.99 }, e);
    }
    drop(embeddings);
    eprintln!("generated {faces} faces in {:.1} s", t0.elapsed().as_secs_f64());
    let t0 = Instant::now();
    let index = Int8Index::of_table(&table);
    let build_s = t0.elapsed().as_secs_f64();

    let queries: Vec<usize> = (0..11).map(|i| i * (faces / 11) + 3).collect();
    let k = 1000;
    // today: exact f32 scores of every face, every photo ranked
    let (today_ms, _) = median_ms(queries.len() - 1, |i| search::rank_photos(&table, table.embedding(queries[i])).len());
    let (exact_scores_ms, _) = median_ms(queries.len() - 1, |i| search::face_scores(&table, table.embedding(queries[i])).len());
    // the 8-bit index, re-scoring candidates exactly from the f32 table
    let (int8_ms, _) = median_ms(queries.len() - 1, |i| {
        let q = table.embedding(queries[i]);
        search::top_faces(&index, q, k, DEFAULT_THRESHOLD, |r| facefind::pipeline::cosine(table.embedding(r), q)).len()
    });
    // recall of the exact top 1,000 and how many faces were re-scored
    let (mut recall, mut worst, mut candidates, mut max_err) = (0.0, 1.0f64, 0usize, 0f32);
    for &qi in &queries {
        let q = table.embedding(qi);
        let exact = search::face_scores(&table, q);
        let mut order: Vec<usize> = (0..faces).collect();
        order.select_nth_unstable_by(k - 1, |&a, &b| exact[b].total_cmp(&exact[a]));
        let truth: std::collections::HashSet<usize> = order[..k].iter().copied().collect();
        let got = search::top_faces(&index, q, k, DEFAULT_THRESHOLD, |r| exact[r]);
        let r = got.iter().take(k).filter(|(i, _)| truth.contains(i)).count() as f64 / k as f64;
        recall += r / queries.len() as f64;
        worst = worst.min(r);
        let (approx, margin) = index.scores(q);
        candidates += approx.iter().zip(&exact).filter(|(a, _)| **a >= got[k - 1].1 - 2.0 * margin).count() / queries.len();
        max_err = approx.iter().zip(&exact).fold(max_err, |m, (a, e)| m.max((a - e).abs()));
    }
    let (_, margin) = index.scores(table.embedding(queries[0]));
    println!("| {faces} faces ({} photos), one query, 2 cores | today: exact f32 | 8-bit index + exact re-scoring | today / 8-bit |", faces / 2);
    println!("|---|---|---|---|");
    println!("| rank every photo (ms, median of {}) | {today_ms:.0} | {int8_ms:.0} (top {k} and all >= {DEFAULT_THRESHOLD}) | {:.1} |", queries.len() - 1, today_ms / int8_ms);
    println!("| score every face (ms) | {exact_scores_ms:.0} | - | - |");
    println!("| embeddings in memory (MB) | {:.0} | {:.0} | {:.1} |", (faces * DIM * 4) as f64 / 1e6, index.bytes() as f64 / 1e6, (faces * DIM * 4) as f64 / index.bytes() as f64);
    println!("| recall of the exact top {k} (mean / worst) | 1 | {recall:.4} / {worst:.4} | - |");
    println!("| faces re-scored per query | - | ~{candidates} | - |");
    println!("| largest score error / its bound | - | {max_err:.4} / {margin:.4} | - |");
    println!("| build the index (s) | - | {build_s:.2} | - |");
}
