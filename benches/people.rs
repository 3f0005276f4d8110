//! People grouping speed on synthetic faces (unit vectors with planted people, 192-d like the
//! shipped embedder): 20,000 and 100,000 faces (clusters of 10 plus a quarter strangers), next
//! to the connected-components baseline on the same graph, and assigning the faces of one new
//! photo to 2,000 people. `cargo bench --bench people`.

use std::time::Instant;

use facefind::eval::clusters as metrics;
use facefind::people::{self, cluster, FaceInfo, Params};

const DIM: usize = 192;

fn faces(n: usize, seed: u64) -> (Vec<f32>, Vec<usize>, Vec<FaceInfo>) {
    let strangers = n / 4;
    let per = 10;
    let (mut emb, mut truth) = cluster::planted((n - strangers) / per, per, DIM, 0.8, seed);
    let (e2, t2) = cluster::planted(n - truth.len(), 1, DIM, 0.8, seed + 1);
    let k = truth.len();
    emb.extend(e2);
    truth.extend(t2.iter().enumerate().map(|(i, _)| k + i));
    let infos = (0..truth.len())
        .map(|i| FaceInfo { id: i as i64, photo: i as i64, score: 0.99, size_px: 100.0, person: None, rejected: vec![] })
        .collect();
    (emb, truth, infos)
}

fn main() {
    let threads = rayon::current_num_threads();
    println!("people grouping, {threads} threads, {DIM}-d unit vectors, clusters of 10 + 25 % strangers");
    println!(
        "| faces | kNN graph (k {}) | average linkage | whole plan | components (baseline) | BCubed F plan | BCubed F components ≥ 0.55 |",
        Params::default().k
    );
    println!("|---|---|---|---|---|---|---|");
    let p = Params::default();
    for n in [20_000usize, 100_000] {
        let (emb, truth, infos) = faces(n, 7);
        let t0 = Instant::now();
        let nb = cluster::knn(&emb, DIM, p.k, p.floor);
        let t_knn = t0.elapsed().as_secs_f64();
        let items: Vec<cluster::Item> = infos.iter().map(|f| cluster::Item { photo: f.photo, ..Default::default() }).collect();
        let t0 = Instant::now();
        let _ = cluster::average_linkage(&emb, DIM, &items, &nb, p.link);
        let t_al = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let cc = cluster::components(&nb, p.link);
        let t_cc = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let plan = people::plan(&emb, DIM, &infos, &p);
        let t_plan = t0.elapsed().as_secs_f64();
        let mut pred: Vec<usize> = (0..n).map(|i| 10_000_000 + i).collect();
        for (g, rows) in plan.new_people.iter().enumerate() {
            rows.iter().for_each(|&r| pred[r] = g);
        }
        println!(
            "| {n} | {t_knn:.2} s | {t_al:.2} s | {t_plan:.2} s | {:.2} s (+ the graph) | {:.3} | {:.3} |",
            t_cc,
            metrics::bcubed(&pred, &truth).f,
            metrics::bcubed(&cc, &truth).f
        );
    }

    // one new photo (5 faces) against 2,000 people of 10 faces
    let (emb, truth, mut infos) = faces(26_667, 11);
    for (i, f) in infos.iter_mut().enumerate() {
        if truth[i] < 2000 {
            f.person = Some((truth[i] as i64, people::Source::Auto));
        }
    }
    let stats = people::person_stats(DIM, &infos, people::row_vectors(&emb, DIM));
    let new_rows: Vec<usize> = (0..5).map(|k| 20_000 + k).collect();
    let new_emb: Vec<f32> = new_rows.iter().flat_map(|&r| emb[r * DIM..(r + 1) * DIM].to_vec()).collect();
    let new = people::Rows { rows: &new_rows, emb: &new_emb };
    let mut times = Vec::new();
    for _ in 0..200 {
        let t0 = Instant::now();
        std::hint::black_box(people::assign(&stats, DIM, &infos, new, &p));
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!();
    println!(
        "assigning one new photo (5 faces) to {} people: median {:.3} ms, max {:.3} ms (goal < 5 ms)",
        stats.len(),
        times[100],
        times[199]
    );
}
