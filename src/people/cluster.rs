//! Clustering unit vectors on cosine similarity: an exact k-nearest-neighbour graph (blocked
//! GEMM), average-linkage agglomeration restricted to that graph with cannot-link constraints,
//! and the connected-components baseline.
//!
//! Average linkage is exact here: for unit vectors the mean pairwise cosine between clusters A
//! and B is `(ΣA · ΣB) / (|A| |B|)`, so each cluster only keeps the sum of its members. The graph
//! only proposes which clusters to compare; a merge needs the *average* similarity of every
//! pair to reach the threshold, so one look-alike edge cannot chain two people together (the
//! failure of connected components and of single linkage).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};

use rayon::prelude::*;

use crate::kernels::int8::{self, PackedCodes};
use crate::kernels::matmul_strided;

/// Rows per GEMM block of the neighbour search.
const ROW_BLOCK: usize = 128;
/// Columns per GEMM block (a 128 × 4096 block of scores is 2 MiB; a multiple of
/// [`int8::TILE_COLS`]).
const COL_BLOCK: usize = 4096;
const _: () = assert!(COL_BLOCK.is_multiple_of(int8::TILE_COLS));

/// For every row of `emb` (n × dim, unit rows), its `k` most similar other rows with cosine at
/// least `floor`, most similar first.
pub fn knn(emb: &[f32], dim: usize, k: usize, floor: f32) -> Vec<Vec<(u32, f32)>> {
    nearest_f32(emb, emb, dim, k, floor, true)
}

/// For every row of `rows` (n × dim), its `k` largest dot products with the rows of `cols`
/// (m × dim) that are at least `floor`, largest first, as (column, score).
pub fn knn_between(rows: &[f32], cols: &[f32], dim: usize, k: usize, floor: f32) -> Vec<Vec<(u32, f32)>> {
    nearest_f32(rows, cols, dim, k, floor, false)
}

/// [`knn_between`] against 8-bit coded vectors (`cols`), by 8-bit dot products: scores within
/// [`int8::error_bound`] of the exact ones (~0.01 for unit vectors of 192 components), so a
/// column may be listed or left out at the floor, or two close ones swap places.
pub fn knn_codes(rows: &[f32], cols: &PackedCodes, k: usize, floor: f32) -> Vec<Vec<(u32, f32)>> {
    let q = int8::Queries::new(cols.dim(), rows);
    nearest(q.len(), cols.len(), k, floor, false, |r0, h, c0, w, out| int8::scores(&q, r0, h, cols, c0, w, out))
}

/// [`knn`] by 8-bit dot products (see [`knn_codes`]): a quarter of the f32 GEMM's time where
/// the CPU has VNNI.
pub fn knn_quantized(emb: &[f32], dim: usize, k: usize, floor: f32) -> Vec<Vec<(u32, f32)>> {
    let (q, cols) = (int8::Queries::new(dim, emb), PackedCodes::quantized(dim, emb));
    nearest(q.len(), cols.len(), k, floor, true, |r0, h, c0, w, out| int8::scores(&q, r0, h, &cols, c0, w, out))
}

/// [`knn_between`]; with `same` (`rows` is `cols`) a row is not its own neighbour.
fn nearest_f32(rows: &[f32], cols: &[f32], dim: usize, k: usize, floor: f32, same: bool) -> Vec<Vec<(u32, f32)>> {
    let n = rows.len().checked_div(dim).unwrap_or(0);
    let m = cols.len().checked_div(dim).unwrap_or(0);
    assert!(n * dim == rows.len() && m * dim == cols.len(), "embedding matrices are not n × dim");
    nearest(n, m, k, floor, same, |r0, h, c0, w, scores| {
        // rows r0.. (h × dim) times columns c0.. read as a dim × w matrix
        matmul_strided(
            h,
            w,
            dim,
            scores,
            (w, 1),
            false,
            &rows[r0 * dim..(r0 + h) * dim],
            (dim, 1),
            &cols[c0 * dim..(c0 + w) * dim],
            (1, dim),
        )
        .expect("both blocks lie inside the matrices checked above")
    })
}

/// The `k` best scores of each of `n` rows against `m` columns at least `floor`, best first;
/// `score(r0, h, c0, w, out)` fills `out` (h × w, row-major) with the scores of rows
/// `r0..r0 + h` against columns `c0..c0 + w` (`c0` a multiple of [`COL_BLOCK`]).
fn nearest(
    n: usize,
    m: usize,
    k: usize,
    floor: f32,
    same: bool,
    score: impl Fn(usize, usize, usize, usize, &mut [f32]) + Sync,
) -> Vec<Vec<(u32, f32)>> {
    if n == 0 || k == 0 || m == 0 {
        return vec![Vec::new(); n];
    }
    let blocks: Vec<usize> = (0..n).step_by(ROW_BLOCK).collect();
    blocks
        .par_iter()
        .flat_map_iter(|&r0| {
            let h = ROW_BLOCK.min(n - r0);
            let mut best: Vec<Vec<(u32, f32)>> = vec![Vec::with_capacity(k + 1); h];
            let mut scores = vec![0f32; h * COL_BLOCK];
            for c0 in (0..m).step_by(COL_BLOCK) {
                let w = COL_BLOCK.min(m - c0);
                score(r0, h, c0, w, &mut scores[..h * w]);
                for (i, b) in best.iter_mut().enumerate() {
                    let row = &scores[i * w..(i + 1) * w];
                    let mut kth = if b.len() == k { b[k - 1].1 } else { floor };
                    for (j, &s) in row.iter().enumerate() {
                        // `>=` keeps the floor itself; the kth best only rises
                        if s >= kth && !(same && c0 + j == r0 + i) && (b.len() < k || s > kth) {
                            let pos = b.partition_point(|&(_, t)| t >= s);
                            b.insert(pos, ((c0 + j) as u32, s));
                            b.truncate(k);
                            if b.len() == k {
                                kth = b[k - 1].1;
                            }
                        }
                    }
                }
            }
            best
        })
        .collect()
}

/// Labels of connected components of the graph "cosine ≥ threshold" over `neighbours` (the
/// baseline; labels are 0.. in order of first appearance).
pub fn components(neighbours: &[Vec<(u32, f32)>], threshold: f32) -> Vec<usize> {
    let n = neighbours.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for (i, nb) in neighbours.iter().enumerate() {
        for &(j, s) in nb {
            if s >= threshold {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j as usize));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    relabel(&(0..n).map(|i| find(&mut parent, i)).collect::<Vec<_>>())
}

/// Renumbers arbitrary labels 0.. in order of first appearance.
pub fn relabel(labels: &[usize]) -> Vec<usize> {
    let mut map = HashMap::new();
    labels
        .iter()
        .map(|&l| {
            let next = map.len();
            *map.entry(l).or_insert(next)
        })
        .collect()
}

/// What a face brings into average-linkage clustering besides its embedding.
#[derive(Debug, Clone, Default)]
pub struct Item {
    /// Faces of one photo are never merged (a photo shows each person once).
    pub photo: i64,
    /// The person this face already belongs to (seeds a cluster that is never merged with
    /// another person's).
    pub person: Option<i64>,
    /// People this face must never join (the user said "not X").
    pub rejected: Vec<i64>,
}

struct Cluster {
    sum: Vec<f32>,
    size: usize,
    photos: HashSet<i64>,
    person: Option<i64>,
    rejected: HashSet<i64>,
    neighbours: HashSet<usize>,
    version: u32,
    alive: bool,
}

#[derive(PartialEq)]
struct Candidate {
    sim: f32,
    a: usize,
    b: usize,
    va: u32,
    vb: u32,
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Candidate {
    // highest similarity first; ties by lower ids so the result does not depend on heap order
    fn cmp(&self, o: &Self) -> Ordering {
        self.sim.total_cmp(&o.sim).then(o.a.cmp(&self.a)).then(o.b.cmp(&self.b))
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Cluster {
    fn conflicts(&self, o: &Cluster) -> bool {
        if let (Some(p), Some(q)) = (self.person, o.person) {
            if p != q {
                return true;
            }
        }
        if self.person.is_some_and(|p| o.rejected.contains(&p)) || o.person.is_some_and(|p| self.rejected.contains(&p)) {
            return true;
        }
        let (small, large) = if self.photos.len() <= o.photos.len() { (&self.photos, &o.photos) } else { (&o.photos, &self.photos) };
        small.iter().any(|p| large.contains(p))
    }
}

/// Average-linkage agglomerative clustering of unit rows `emb` (n × dim) over the candidate
/// pairs of `neighbours`, merging while the best average similarity is at least `threshold`
/// and never across a cannot-link (same photo, two people, a rejection). Items of one person
/// start in one cluster. Returns a cluster label per row (0.., first-appearance order).
pub fn average_linkage(emb: &[f32], dim: usize, items: &[Item], neighbours: &[Vec<(u32, f32)>], threshold: f32) -> Vec<usize> {
    let n = items.len();
    assert_eq!(emb.len(), n * dim);
    assert_eq!(neighbours.len(), n);
    // seed: one cluster per person, one per other face
    let mut owner: Vec<usize> = vec![usize::MAX; n];
    let mut clusters: Vec<Cluster> = Vec::new();
    let mut of_person: HashMap<i64, usize> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        let c = match it.person.and_then(|p| of_person.get(&p).copied()) {
            Some(c) => c,
            None => {
                clusters.push(Cluster {
                    sum: vec![0.0; dim],
                    size: 0,
                    photos: HashSet::new(),
                    person: it.person,
                    rejected: HashSet::new(),
                    neighbours: HashSet::new(),
                    version: 0,
                    alive: true,
                });
                if let Some(p) = it.person {
                    of_person.insert(p, clusters.len() - 1);
                }
                clusters.len() - 1
            }
        };
        owner[i] = c;
        let cl = &mut clusters[c];
        for (s, x) in cl.sum.iter_mut().zip(&emb[i * dim..(i + 1) * dim]) {
            *s += x;
        }
        cl.size += 1;
        cl.photos.insert(it.photo);
        cl.rejected.extend(it.rejected.iter().copied());
    }
    for (i, nb) in neighbours.iter().enumerate() {
        for &(j, _) in nb {
            let (a, b) = (owner[i], owner[j as usize]);
            if a != b {
                clusters[a].neighbours.insert(b);
                clusters[b].neighbours.insert(a);
            }
        }
    }
    let sim = |a: &Cluster, b: &Cluster| dot(&a.sum, &b.sum) / (a.size * b.size) as f32;
    let mut heap = BinaryHeap::new();
    for a in 0..clusters.len() {
        for &b in &clusters[a].neighbours {
            if a < b {
                let s = sim(&clusters[a], &clusters[b]);
                if s >= threshold {
                    heap.push(Candidate { sim: s, a, b, va: 0, vb: 0 });
                }
            }
        }
    }
    let mut merged_into: Vec<usize> = (0..clusters.len()).collect();
    while let Some(Candidate { sim: _, a, b, va, vb }) = heap.pop() {
        if !clusters[a].alive || !clusters[b].alive || clusters[a].version != va || clusters[b].version != vb {
            continue;
        }
        if clusters[a].conflicts(&clusters[b]) {
            continue;
        }
        // keep the larger cluster (fewer set moves)
        let (keep, gone) = if clusters[a].size >= clusters[b].size { (a, b) } else { (b, a) };
        let g = std::mem::replace(
            &mut clusters[gone],
            Cluster {
                sum: Vec::new(),
                size: 0,
                photos: HashSet::new(),
                person: None,
                rejected: HashSet::new(),
                neighbours: HashSet::new(),
                version: 0,
                alive: false,
            },
        );
        merged_into[gone] = keep;
        {
            let k = &mut clusters[keep];
            for (s, x) in k.sum.iter_mut().zip(&g.sum) {
                *s += x;
            }
            k.size += g.size;
            k.photos.extend(g.photos);
            k.rejected.extend(g.rejected);
            k.person = k.person.or(g.person);
            k.version += 1;
            k.neighbours.remove(&gone);
        }
        for c in g.neighbours {
            if c == keep {
                continue;
            }
            clusters[c].neighbours.remove(&gone);
            clusters[c].neighbours.insert(keep);
            clusters[keep].neighbours.insert(c);
        }
        let nbs: Vec<usize> = clusters[keep].neighbours.iter().copied().collect();
        for c in nbs {
            let s = sim(&clusters[keep], &clusters[c]);
            if s >= threshold {
                let (x, y) = (keep.min(c), keep.max(c));
                heap.push(Candidate { sim: s, a: x, b: y, va: clusters[x].version, vb: clusters[y].version });
            }
        }
    }
    let root = |mut c: usize| {
        while merged_into[c] != c {
            c = merged_into[c];
        }
        c
    };
    relabel(&owner.iter().map(|&c| root(c)).collect::<Vec<_>>())
}

/// Synthetic faces for tests and benches: `per` unit vectors around each of `k` random centres
/// (pairwise cosine about 1 / (1 + noise²) within a centre), deterministic for a seed. Returns
/// the vectors (row-major) and each row's centre.
pub fn planted(k: usize, per: usize, dim: usize, noise: f32, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = crate::util::rng::Rng::stream(seed, 0, 0);
    let unit = |v: &mut [f32]| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
    };
    let (mut emb, mut truth) = (Vec::new(), Vec::new());
    for c in 0..k {
        let mut centre: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
        unit(&mut centre);
        for _ in 0..per {
            let mut v: Vec<f32> = centre.iter().map(|x| x + noise * rng.normal() / (dim as f32).sqrt()).collect();
            unit(&mut v);
            emb.extend(v);
            truth.push(c);
        }
    }
    (emb, truth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_knn(emb: &[f32], dim: usize, k: usize, floor: f32) -> Vec<Vec<u32>> {
        let n = emb.len() / dim;
        (0..n)
            .map(|i| {
                let mut s: Vec<(u32, f32)> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| (j as u32, dot(&emb[i * dim..][..dim], &emb[j * dim..][..dim])))
                    .filter(|p| p.1 >= floor)
                    .collect();
                s.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                s.truncate(k);
                s.into_iter().map(|p| p.0).collect()
            })
            .collect()
    }

    #[test]
    fn knn_matches_brute_force_across_blocks() {
        // more rows than one row block and columns than one column block
        let (emb, _) = planted(60, 80, 16, 1.0, 3);
        let got = knn(&emb, 16, 5, 0.1);
        let want = brute_knn(&emb, 16, 5, 0.1);
        assert_eq!(got.len(), 4800);
        let mut same = 0;
        for (g, w) in got.iter().zip(&want) {
            assert!(g.windows(2).all(|p| p[0].1 >= p[1].1), "sorted");
            assert!(g.iter().all(|p| p.1 >= 0.1));
            if g.iter().map(|p| p.0).collect::<Vec<_>>() == *w {
                same += 1;
            }
        }
        // ties in f32 sums may swap equal neighbours; nearly every row must agree exactly
        assert!(same >= 4790, "{same} of 4800 rows agree");
        // rows against other rows: the first 300 against the other 4,500 (a row's own column
        // is no longer there to skip)
        let (rows, cols) = emb.split_at(300 * 16);
        let between = knn_between(rows, cols, 16, 5, 0.1);
        let mut same = 0;
        for (i, g) in between.iter().enumerate() {
            let mut all: Vec<(u32, f32)> = (0..4500)
                .map(|j| (j as u32, rows[i * 16..(i + 1) * 16].iter().zip(&cols[j * 16..(j + 1) * 16]).map(|(a, b)| a * b).sum()))
                .filter(|p: &(u32, f32)| p.1 >= 0.1)
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1));
            all.truncate(5);
            same += (g.iter().map(|p| p.0).collect::<Vec<_>>() == all.iter().map(|p| p.0).collect::<Vec<_>>()) as usize;
        }
        assert!(same >= 297, "{same} of 300 rows agree");
    }

    /// The 8-bit neighbour search finds what the exact one finds, up to its error bound: every
    /// listed score is within the bound of the exact one, and a neighbour is left out only when
    /// the exact k-th score is within twice the bound of it (across row and column blocks).
    #[test]
    fn quantized_knn_agrees_with_the_exact_one_within_its_bound() {
        let (dim, k, floor) = (16, 5, 0.1);
        let (emb, _) = planted(60, 80, dim, 1.0, 3);
        let exact = |i: usize, j: usize| dot(&emb[i * dim..][..dim], &emb[j * dim..][..dim]);
        let bound = int8::error_bound(&int8::Queries::new(dim, &emb), &PackedCodes::quantized(dim, &emb));
        assert!(bound < 0.05, "bound {bound}");
        let got = knn_quantized(&emb, dim, k, floor);
        let want = brute_knn(&emb, dim, k, floor);
        let mut same = 0;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(g.windows(2).all(|p| p[0].1 >= p[1].1) && g.iter().all(|p| p.1 >= floor && p.0 as usize != i));
            assert!(g.iter().all(|&(j, s)| (s - exact(i, j as usize)).abs() <= bound), "row {i}");
            let last = g.last().map_or(floor, |p| exact(i, p.0 as usize));
            for &j in w.iter().filter(|j| !g.iter().any(|p| p.0 == **j)) {
                assert!(exact(i, j as usize) <= last + 2.0 * bound, "row {i}: {j} left out");
            }
            same += (g.iter().map(|p| p.0).collect::<Vec<_>>() == *w) as usize;
        }
        assert!(same >= 3500, "{same} of 4800 rows agree exactly");
        // against packed codes of other rows
        let (rows, cols) = emb.split_at(300 * dim);
        let between = knn_codes(rows, &PackedCodes::quantized(dim, cols), k, floor);
        let exact_between = knn_between(rows, cols, dim, k, floor);
        for (i, g) in between.iter().enumerate() {
            assert!(g.iter().all(|&(j, s)| (s - exact(i, 300 + j as usize)).abs() <= bound), "row {i}");
        }
        let agree = between.iter().zip(&exact_between).filter(|(a, b)| a.iter().map(|p| p.0).eq(b.iter().map(|p| p.0))).count();
        assert!(agree >= 200, "{agree} of 300 rows agree exactly");
    }

    #[test]
    fn chained_look_alikes_stay_apart_with_average_linkage() {
        // two tight people A and B, and a bridge face between them: components chain all
        // three groups, average linkage does not
        let dim = 3;
        let v = |x: f32, y: f32| {
            let n = (x * x + y * y + 1.0f32).sqrt();
            [x / n, y / n, 1.0 / n]
        };
        let mut emb = Vec::new();
        for i in 0..5 {
            emb.extend(v(-1.0 + 0.01 * i as f32, 0.0));
        }
        for i in 0..5 {
            emb.extend(v(1.0 + 0.01 * i as f32, 0.0));
        }
        emb.extend(v(0.0, 0.0)); // cos with each side ≈ 0.71
        let items: Vec<Item> = (0..11).map(|i| Item { photo: i, ..Item::default() }).collect();
        let nb = knn(&emb, dim, 10, -1.0);
        let cc = components(&nb, 0.7);
        assert!(cc.iter().all(|&l| l == 0), "components chain everything: {cc:?}");
        let al = average_linkage(&emb, dim, &items, &nb, 0.7);
        assert_ne!(al[0], al[5], "{al:?}");
        assert!(al[..5].iter().all(|&l| l == al[0]) && al[5..10].iter().all(|&l| l == al[5]), "{al:?}");
    }

    #[test]
    fn cannot_links_hold() {
        let (emb, _) = planted(1, 6, 8, 0.2, 1);
        let nb = knn(&emb, 8, 5, -1.0);
        // faces 0 and 1 in one photo; face 2 was rejected from person 7, face 3 is person 7's;
        // faces 4 and 5 belong to person 9
        let items = vec![
            Item { photo: 1, ..Item::default() },
            Item { photo: 1, ..Item::default() },
            Item { photo: 2, person: None, rejected: vec![7] },
            Item { photo: 3, person: Some(7), rejected: vec![] },
            Item { photo: 4, person: Some(9), rejected: vec![] },
            Item { photo: 5, person: Some(9), rejected: vec![] },
        ];
        let l = average_linkage(&emb, 8, &items, &nb, -1.0);
        assert_ne!(l[0], l[1], "same photo: {l:?}");
        assert_ne!(l[2], l[3], "rejected: {l:?}");
        assert_ne!(l[3], l[4], "two people: {l:?}");
        assert_eq!(l[4], l[5], "one person: {l:?}");
        // everything is one identity, so all remaining merges happen: 3 clusters at most
        // ({0 or 1, ...}, {the other of 0/1, ...}, ...) — check each cluster is constraint-clean
        for c in 0..=*l.iter().max().unwrap() {
            let members: Vec<usize> = (0..6).filter(|&i| l[i] == c).collect();
            let people: HashSet<i64> = members.iter().filter_map(|&i| items[i].person).collect();
            assert!(people.len() <= 1);
        }
    }

    #[test]
    fn planted_clusters_are_recovered() {
        let (emb, truth) = planted(50, 12, 64, 0.7, 5);
        let items: Vec<Item> = (0..truth.len()).map(|i| Item { photo: i as i64, ..Item::default() }).collect();
        let nb = knn(&emb, 64, 10, 0.0);
        let l = average_linkage(&emb, 64, &items, &nb, 0.4);
        assert_eq!(relabel(&truth), l);
    }
}
