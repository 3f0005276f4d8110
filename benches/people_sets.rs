//! People grouping on every labelled set, at one setting: the album, LFW's development people,
//! and album-like sets drawn from `lfw-train` (people with many photos, single-photo strangers,
//! faces of different people put together in one "group photo"), plus all of `lfw-train`.
//! For each set: connected components at their best threshold (pairwise precision ≥ 0.97), and
//! every candidate grouping; then, per candidate, its worst margin over the best components
//! baseline and its worst pairwise precision across the sets; then a simulated user answering
//! "Who is this?" from the labels (quality after 0, 5, 10, 20 answers); grouping grown over 5 and
//! 20 index runs next to grouping whole; then person search with
//! several exemplars: one mean query against the best of the exemplars' groups. Needs
//! ../shared/faces.
//!   cargo bench --bench people_sets [-- SEEDS] [methods|runs|user|search …]
//! (default 3 drawn sets, every section).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use facefind::catalog::Catalog;
use facefind::eval::clusters::{bcubed, pairwise, Prf};
use facefind::people::cluster::{self, Item};
use facefind::people::{self, FaceInfo, Params, Source};
use facefind::pipeline::Pipeline;
use facefind::search::mean_direction;
use facefind::util::rng::Rng;

const DIM: usize = 192;

/// Faces with their person and photo (faces of one photo are never one person).
struct Set {
    name: String,
    emb: Vec<f32>,
    truth: Vec<usize>,
    photo: Vec<i64>,
}

impl Set {
    fn len(&self) -> usize {
        self.truth.len()
    }
}

/// The central face of every photo of `folder`/PERSON/*.jpg, by person; cached under target/.
fn central_faces(p: &Pipeline, folder: &std::path::Path, cache: &str) -> Vec<(String, Vec<f32>)> {
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join(cache);
    let key = format!("{}\n", p.embedder_sha256());
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Some(body) = text.strip_prefix(&key) {
            return body
                .lines()
                .map(|l| {
                    let (who, v) = l.split_once('\t').unwrap();
                    (who.to_string(), v.split(' ').map(|x| x.parse().unwrap()).collect())
                })
                .collect();
        }
    }
    let mut paths = Vec::new();
    let mut people: Vec<PathBuf> = std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    people.sort();
    for d in people {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        paths.extend(files);
    }
    let t0 = std::time::Instant::now();
    let emb = facefind::eval::pairs::embed_central_faces(p, &paths).unwrap();
    eprintln!("embedded {} photos of {} in {:.0} s", paths.len(), folder.display(), t0.elapsed().as_secs_f64());
    let mut out = Vec::new();
    let mut text = key;
    for path in &paths {
        let Some(e) = emb[path].embedding.clone() else { continue };
        let who = path.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        text += &format!("{who}\t{}\n", e.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" "));
        out.push((who, e));
    }
    std::fs::write(&cache, text).unwrap();
    out
}

/// Numbers people by first appearance.
fn numbered(names: &[String]) -> Vec<usize> {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    names
        .iter()
        .map(|n| {
            let k = ids.len();
            *ids.entry(n.as_str()).or_insert(k)
        })
        .collect()
}

/// The album's single-identity photos with one detected face (as tests/people.rs).
fn album(p: &Pipeline) -> Set {
    let dir = tempfile::tempdir().unwrap();
    let mut cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
    facefind::index::index_folder(&common::faces_dir().join("album"), &mut cat, p, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let t = cat.face_table().unwrap();
    let path_of: HashMap<i64, String> =
        cat.photos().unwrap().into_iter().map(|ph| (ph.id, String::from_utf8_lossy(&ph.path).into_owned())).collect();
    let labels = common::album::labels();
    let mut per_photo: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for r in 0..t.len() {
        per_photo.entry(t.photo_id(r)).or_default().push(r);
    }
    let (mut emb, mut names, mut photo) = (Vec::new(), Vec::new(), Vec::new());
    for (ph, rows) in per_photo {
        let path = &path_of[&ph];
        if rows.len() == 1 && labels.single.contains(path) {
            emb.extend(t.embedding(rows[0]));
            names.push(labels.ids[path].iter().next().unwrap().clone());
            photo.push(ph);
        }
    }
    Set { name: "album".into(), emb, truth: numbered(&names), photo }
}

/// People with at least `min` photos, at most `max` each, one photo each.
fn people_set(name: &str, faces: &[(String, Vec<f32>)], min: usize, max: usize) -> Set {
    let mut by: BTreeMap<&str, Vec<&Vec<f32>>> = BTreeMap::new();
    faces.iter().for_each(|(w, e)| by.entry(w).or_default().push(e));
    let (mut emb, mut names) = (Vec::new(), Vec::new());
    for (w, es) in by.into_iter().filter(|(_, es)| es.len() >= min) {
        for e in es.into_iter().take(max) {
            emb.extend_from_slice(e);
            names.push(w.to_string());
        }
    }
    let photo = (0..names.len() as i64).collect();
    Set { name: name.into(), emb, truth: numbered(&names), photo }
}

/// An album-like set drawn from lfw-train: 20 people with at least 6 photos (up to 20 each),
/// 60 strangers (one photo each), and a fifth of the faces put two or three (of different
/// people) into one photo.
fn drawn_album(faces: &[(String, Vec<f32>)], seed: u64) -> Set {
    let mut by: BTreeMap<&str, Vec<&Vec<f32>>> = BTreeMap::new();
    faces.iter().for_each(|(w, e)| by.entry(w).or_default().push(e));
    let mut rng = Rng::stream(seed, 7, 0);
    let mut many: Vec<&str> = by.iter().filter(|(_, es)| es.len() >= 6).map(|(w, _)| *w).collect();
    let mut few: Vec<&str> = by.iter().filter(|(_, es)| es.len() < 6).map(|(w, _)| *w).collect();
    rng.shuffle(&mut many);
    rng.shuffle(&mut few);
    let (mut emb, mut names) = (Vec::new(), Vec::new());
    for w in many.iter().take(20) {
        for e in by[w].iter().take(20) {
            emb.extend_from_slice(e);
            names.push(w.to_string());
        }
    }
    for w in few.iter().take(60) {
        emb.extend_from_slice(by[w][0]);
        names.push(w.to_string());
    }
    let n = names.len();
    let mut photo: Vec<i64> = (0..n as i64).collect();
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut grouped = 0;
    let mut i = 0;
    while grouped < n / 5 && i + 3 <= order.len() {
        let k = 2 + rng.below(2);
        let members: Vec<usize> = order[i..i + k].to_vec();
        i += k;
        let distinct: std::collections::HashSet<&String> = members.iter().map(|&m| &names[m]).collect();
        if distinct.len() == k {
            members.iter().for_each(|&m| photo[m] = photo[members[0]]);
            grouped += k;
        }
    }
    Set { name: format!("lfw-train album {seed}"), emb, truth: numbered(&names), photo }
}

/// One grouping of a set's faces.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Method {
    /// Connected components of cosine ≥ t (the baseline).
    Components(f32),
    /// Average linkage at `link`, then groups joined while at least `support` pairs of their
    /// faces reach `join` (no join when `support` is 0).
    Linkage { link: f32, join: f32, support: usize },
}

impl Method {
    fn name(&self) -> String {
        match self {
            Method::Components(t) => format!("components ≥ {t:.2}"),
            Method::Linkage { link, support: 0, .. } => format!("average linkage {link:.2}"),
            Method::Linkage { link, join, support } => format!("average linkage {link:.2}, join {support} pairs ≥ {join:.2}"),
        }
    }
}

/// Groups whose faces have at least `support` pairs at or above `join` become one, largest
/// support first, never two faces of one photo in a group; repeated until nothing joins.
fn join_groups(labels: &[usize], nb: &[Vec<(u32, f32)>], photo: &[i64], join: f32, support: usize) -> Vec<usize> {
    let mut lab = labels.to_vec();
    loop {
        let mut edges: HashMap<(usize, usize), (usize, f32)> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for (i, row) in nb.iter().enumerate() {
            for &(j, c) in row {
                let j = j as usize;
                if c < join || !seen.insert((i.min(j), i.max(j))) {
                    continue;
                }
                let (a, b) = (lab[i], lab[j]);
                if a != b {
                    let e = edges.entry((a.min(b), a.max(b))).or_insert((0, 0.0));
                    e.0 += 1;
                    e.1 = e.1.max(c);
                }
            }
        }
        let mut cand: Vec<((usize, usize), (usize, f32))> = edges.into_iter().filter(|(_, (n, _))| *n >= support).collect();
        cand.sort_by(|x, y| y.1 .0.cmp(&x.1 .0).then(y.1 .1.total_cmp(&x.1 .1)).then(x.0.cmp(&y.0)));
        let mut photos: HashMap<usize, std::collections::HashSet<i64>> = HashMap::new();
        for (i, &l) in lab.iter().enumerate() {
            photos.entry(l).or_default().insert(photo[i]);
        }
        let mut into: HashMap<usize, usize> = HashMap::new();
        let root = |into: &HashMap<usize, usize>, mut c: usize| {
            while let Some(&n) = into.get(&c) {
                c = n;
            }
            c
        };
        let mut merged = false;
        for ((a, b), _) in cand {
            let (a, b) = (root(&into, a), root(&into, b));
            if a == b || photos[&a].iter().any(|p| photos[&b].contains(p)) {
                continue;
            }
            let gone = photos.remove(&b).unwrap();
            photos.get_mut(&a).unwrap().extend(gone);
            into.insert(b, a);
            merged = true;
        }
        if !merged {
            return lab;
        }
        lab = lab.iter().map(|&l| root(&into, l)).collect();
    }
}

fn run(set: &Set, m: Method, graphs: &Graphs) -> (Prf, Prf) {
    let pred = match m {
        Method::Components(t) => {
            // faces of one photo must not be merged either: components ignore it, as the baseline did
            cluster::components(&graphs.wide, t)
        }
        Method::Linkage { link, join, support } => {
            let items: Vec<Item> = set.photo.iter().map(|&p| Item { photo: p, ..Default::default() }).collect();
            let l = cluster::average_linkage(&set.emb, DIM, &items, &graphs.narrow, link);
            if support == 0 {
                l
            } else {
                join_groups(&l, &graphs.narrow, &set.photo, join, support)
            }
        }
    };
    (pairwise(&pred, &set.truth), bcubed(&pred, &set.truth))
}

struct Graphs {
    /// 64 neighbours from cosine 0.2 (for components up to that many).
    wide: Vec<Vec<(u32, f32)>>,
    /// The shipped grouping's graph (Params: 16 neighbours from 0.30).
    narrow: Vec<Vec<(u32, f32)>>,
}

/// Grouping as a labelling: a face's person, or its own label when it is in none.
fn person_labels(faces: &[FaceInfo]) -> Vec<usize> {
    let raw: Vec<usize> = faces.iter().enumerate().map(|(i, f)| f.person.map_or(1_000_000_000 + i, |p| p.0 as usize)).collect();
    cluster::relabel(&raw)
}

/// Grouping as index runs do it: the set's faces arrive in `batches` runs (in an order shuffled
/// by `seed`), each grouped incrementally ([`people::plan_new`]: the run's faces with the
/// people so far and the faces still unassigned). (pairwise, BCubed) at the end.
fn in_batches(set: &Set, batches: usize, seed: u64) -> (Prf, Prf) {
    let p = Params::default();
    let n = set.len();
    let mut faces: Vec<FaceInfo> = (0..n)
        .map(|i| FaceInfo { id: i as i64, photo: set.photo[i], score: 0.99, size_px: 100.0, person: None, rejected: vec![] })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    let mut r = Rng::stream(seed, 77, 0);
    for i in (1..n).rev() {
        order.swap(i, r.below(i + 1));
    }
    let rows = |rs: &[usize]| -> Vec<f32> { rs.iter().flat_map(|&r| set.emb[r * DIM..(r + 1) * DIM].to_vec()).collect() };
    let (mut seen, mut next_id) = (Vec::new(), 0i64);
    for run in order.chunks(n.div_ceil(batches.max(1))) {
        let stats = people::person_stats(DIM, &faces, people::row_vectors(&set.emb, DIM));
        let pool: Vec<usize> = seen.iter().copied().filter(|&r: &usize| faces[r].person.is_none()).collect();
        let (new_emb, pool_codes) = (rows(run), people::PackedCodes::quantized(DIM, &rows(&pool)));
        let pool = people::Pool { rows: &pool, codes: &pool_codes };
        let plan = people::plan_new(DIM, &faces, &stats, people::Rows { rows: run, emb: &new_emb }, Some(pool), &p);
        for (r, id) in plan.assign {
            faces[r].person = Some((id, Source::Auto));
        }
        for g in plan.new_people {
            g.iter().for_each(|&r| faces[r].person = Some((next_id, Source::Auto)));
            next_id += 1;
        }
        seen.extend_from_slice(run);
    }
    let pred = person_labels(&faces);
    (pairwise(&pred, &set.truth), bcubed(&pred, &set.truth))
}

/// The label most faces of person `pid` carry.
fn majority(faces: &[FaceInfo], truth: &[usize], pid: i64) -> Option<usize> {
    let mut n: HashMap<usize, usize> = HashMap::new();
    faces.iter().zip(truth).filter(|(f, _)| f.person.map(|p| p.0) == Some(pid)).for_each(|(_, &t)| *n.entry(t).or_default() += 1);
    n.into_iter().max_by_key(|&(t, c)| (c, std::cmp::Reverse(t))).map(|(t, _)| t)
}

/// A user who answers "Who is this?" truthfully from the labels, one question at a time, as the
/// app and `people --suggest` order them (person questions first, then faces; every person counts
/// as named: names are given as one goes). (answers, yes answers, pairwise, BCubed) at each of
/// `checkpoints`.
fn simulated_user(set: &Set, checkpoints: &[usize]) -> Vec<(usize, usize, Prf, Prf)> {
    let p = Params::default();
    let n = set.len();
    let mut faces: Vec<FaceInfo> = (0..n)
        .map(|i| FaceInfo { id: i as i64, photo: set.photo[i], score: 0.99, size_px: 100.0, person: None, rejected: vec![] })
        .collect();
    let plan = people::plan(&set.emb, DIM, &faces, &p);
    for (g, rows) in plan.new_people.iter().enumerate() {
        rows.iter().for_each(|&r| faces[r].person = Some((g as i64, Source::Auto)));
    }
    let vector = people::row_vectors(&set.emb, DIM);
    let mut not_same: std::collections::HashSet<(i64, i64)> = Default::default();
    let (mut answers, mut yes, mut out) = (0, 0, Vec::new());
    let last = checkpoints.iter().copied().max().unwrap_or(0);
    loop {
        if checkpoints.contains(&answers) || answers == last {
            let pred = person_labels(&faces);
            out.push((answers, yes, pairwise(&pred, &set.truth), bcubed(&pred, &set.truth)));
        }
        if answers >= last {
            return out;
        }
        let ids: std::collections::HashSet<i64> = faces.iter().filter_map(|f| f.person.map(|x| x.0)).collect();
        // person questions between unnamed groups (the app skips two named people); face
        // questions as if every person had its name
        let merges = people::merges::merge_questions(DIM, &faces, &ids, &Default::default(), &not_same, &p, &vector);
        if let Some(m) = merges.first() {
            if majority(&faces, &set.truth, m.person) == majority(&faces, &set.truth, m.into) {
                faces
                    .iter_mut()
                    .filter(|f| f.person.map(|x| x.0) == Some(m.person))
                    .for_each(|f| f.person = f.person.map(|x| (m.into, x.1)));
                yes += 1;
            } else {
                not_same.insert((m.person.min(m.into), m.person.max(m.into)));
            }
        } else {
            let Some(q) = people::suggestions(DIM, &faces, &ids, &p, &vector).first().copied() else {
                // nothing left to ask: the rest of the checkpoints are this state
                let pred = person_labels(&faces);
                for &c in checkpoints.iter().filter(|&&c| c > answers) {
                    out.push((c, yes, pairwise(&pred, &set.truth), bcubed(&pred, &set.truth)));
                }
                return out;
            };
            if majority(&faces, &set.truth, q.person) == Some(set.truth[q.row]) {
                faces[q.row].person = Some((q.person, Source::Confirmed));
                yes += 1;
            } else {
                faces[q.row].rejected.push(q.person);
                if faces[q.row].person.map(|x| x.0) == Some(q.person) {
                    faces[q.row].person = None;
                }
            }
        }
        answers += 1;
    }
}

/// Average precision of ranking every face of `set` but the exemplars by `score`, relevant =
/// the other faces of person `who`.
fn average_precision(set: &Set, who: usize, exemplars: &[usize], score: impl Fn(&[f32]) -> f32) -> f64 {
    ranked_precision(set, |i| set.truth[i] == who, |i| exemplars.contains(&i), score)
}

/// Average precision of ranking the faces of `set` that are not `skip` by `score`.
fn ranked_precision(set: &Set, relevant: impl Fn(usize) -> bool, skip: impl Fn(usize) -> bool, score: impl Fn(&[f32]) -> f32) -> f64 {
    let mut ranked: Vec<(f32, bool)> =
        (0..set.len()).filter(|&i| !skip(i)).map(|i| (score(&set.emb[i * DIM..(i + 1) * DIM]), relevant(i))).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let relevant = ranked.iter().filter(|r| r.1).count().max(1);
    let (mut found, mut sum) = (0, 0.0);
    for (k, r) in ranked.iter().enumerate() {
        if r.1 {
            found += 1;
            sum += found as f64 / (k + 1) as f64;
        }
    }
    sum / relevant as f64
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Person search with `q` exemplars of each person with at least `q + 3` faces (every start in
/// turn): one query along the exemplars' mean (today), the best of the exemplars' groups' means
/// (exemplars grouped by average linkage at the grouping threshold), the best single exemplar.
/// Mean average precision of each.
fn person_search(set: &Set, q: usize) -> (usize, f64, f64, f64) {
    let link = Params::default().link;
    let mut by: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    set.truth.iter().enumerate().for_each(|(i, &t)| by.entry(t).or_default().push(i));
    let (mut n, mut mean, mut groups, mut best) = (0, 0.0, 0.0, 0.0);
    for (&who, rows) in by.iter().filter(|(_, r)| r.len() >= q + 3) {
        for start in 0..rows.len() {
            let ex: Vec<usize> = (0..q).map(|k| rows[(start + k) % rows.len()]).collect();
            let v = |i: usize| &set.emb[i * DIM..(i + 1) * DIM];
            let m = mean_direction(DIM, ex.iter().map(|&i| v(i)));
            let sub: Vec<f32> = ex.iter().flat_map(|&i| v(i).to_vec()).collect();
            let items: Vec<Item> = ex.iter().map(|&i| Item { photo: i as i64, ..Default::default() }).collect();
            let labels = cluster::average_linkage(&sub, DIM, &items, &cluster::knn(&sub, DIM, q, -1.0), link);
            let mut gs: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            labels.iter().zip(&ex).for_each(|(&l, &i)| gs.entry(l).or_default().push(i));
            let means: Vec<Vec<f32>> = gs.values().map(|g| mean_direction(DIM, g.iter().map(|&i| v(i)))).collect();
            mean += average_precision(set, who, &ex, |e| dot(e, &m));
            groups += average_precision(set, who, &ex, |e| means.iter().map(|g| dot(e, g)).fold(f32::MIN, f32::max));
            best += average_precision(set, who, &ex, |e| ex.iter().map(|&i| dot(e, v(i))).fold(f32::MIN, f32::max));
            n += 1;
        }
    }
    let d = n.max(1) as f64;
    (n, mean / d, groups / d, best / d)
}

/// Each person with at least 8 faces split into two looks (2-means on cosine, seeded by the
/// most central face and the face least like it); where the smaller look has at least 3 faces,
/// 4 exemplars from the larger look and 1 from the smaller query for the smaller look's other
/// faces (the larger look's are left out of the ranking). Mean average precision of the mean
/// query, the best exemplar-group mean and the best single exemplar, as [`person_search`].
fn person_search_across_looks(set: &Set) -> (usize, f64, f64, f64) {
    let link = Params::default().link;
    let v = |i: usize| &set.emb[i * DIM..(i + 1) * DIM];
    let mut by: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    set.truth.iter().enumerate().for_each(|(i, &t)| by.entry(t).or_default().push(i));
    let (mut n, mut mean, mut groups, mut best) = (0, 0.0, 0.0, 0.0);
    for rows in by.values().filter(|r| r.len() >= 8) {
        let centre = mean_direction(DIM, rows.iter().map(|&i| v(i)));
        let a0 = *rows.iter().max_by(|&&x, &&y| dot(v(x), &centre).total_cmp(&dot(v(y), &centre))).expect("8 faces");
        let b0 = *rows.iter().min_by(|&&x, &&y| dot(v(x), v(a0)).total_cmp(&dot(v(y), v(a0)))).expect("8 faces");
        let (mut ca, mut cb) = (v(a0).to_vec(), v(b0).to_vec());
        let mut look: Vec<bool> = Vec::new();
        for _ in 0..5 {
            look = rows.iter().map(|&i| dot(v(i), &cb) > dot(v(i), &ca)).collect();
            let side = |b: bool| rows.iter().zip(&look).filter(move |(_, &l)| l == b).map(|(&i, _)| v(i));
            ca = mean_direction(DIM, side(false));
            cb = mean_direction(DIM, side(true));
        }
        let mut a: Vec<usize> = rows.iter().zip(&look).filter(|(_, &l)| !l).map(|(&i, _)| i).collect();
        let mut b: Vec<usize> = rows.iter().zip(&look).filter(|(_, &l)| l).map(|(&i, _)| i).collect();
        if a.len() < b.len() {
            std::mem::swap(&mut a, &mut b);
        }
        if b.len() < 3 || a.len() < 5 {
            continue;
        }
        for start in 0..b.len() {
            let mut ex: Vec<usize> = a[..4].to_vec();
            ex.push(b[start]);
            let m = mean_direction(DIM, ex.iter().map(|&i| v(i)));
            let sub: Vec<f32> = ex.iter().flat_map(|&i| v(i).to_vec()).collect();
            let items: Vec<Item> = ex.iter().map(|&i| Item { photo: i as i64, ..Default::default() }).collect();
            let labels = cluster::average_linkage(&sub, DIM, &items, &cluster::knn(&sub, DIM, 5, -1.0), link);
            let mut gs: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            labels.iter().zip(&ex).for_each(|(&l, &i)| gs.entry(l).or_default().push(i));
            let means: Vec<Vec<f32>> = gs.values().map(|g| mean_direction(DIM, g.iter().map(|&i| v(i)))).collect();
            let relevant = |i: usize| b.contains(&i) && !ex.contains(&i);
            let skip = |i: usize| ex.contains(&i) || a.contains(&i);
            mean += ranked_precision(set, relevant, skip, |e| dot(e, &m));
            groups += ranked_precision(set, relevant, skip, |e| means.iter().map(|g| dot(e, g)).fold(f32::MIN, f32::max));
            best += ranked_precision(set, relevant, skip, |e| ex.iter().map(|&i| dot(e, v(i))).fold(f32::MIN, f32::max));
            n += 1;
        }
    }
    let d = n.max(1) as f64;
    (n, mean / d, groups / d, best / d)
}

fn main() {
    facefind::util::alloc::reuse_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let seeds: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(3);
    let named: Vec<&str> = args.iter().map(String::as_str).filter(|a| a.parse::<u64>().is_err()).collect();
    let section = |name: &str| named.is_empty() || named.contains(&name);
    let p = common::cpu_pipeline();
    let faces_dir = common::faces_dir();
    let train = central_faces(&p, &faces_dir.join("lfw-train"), "people_sets_lfw_train.txt");
    let dev = central_faces(&p, &faces_dir.join("lfw-view1/images"), "people_sets_lfw_dev.txt");
    let mut sets = vec![album(&p), people_set("LFW dev (≥ 4 photos, ≤ 10 each)", &dev, 4, 10)];
    sets.extend((1..=seeds).map(|s| drawn_album(&train, s)));
    sets.push(people_set("lfw-train, all", &train, 1, usize::MAX));

    let defaults = Params::default();
    // connected components at one threshold for every set, next to the one setting of the others
    let mut methods: Vec<Method> = (50..=70).step_by(5).map(|t| Method::Components(t as f32 / 100.0)).collect();
    for link in [0.45f32, 0.50, 0.55] {
        methods.push(Method::Linkage { link, join: 0.0, support: 0 });
        for join in [0.50f32, 0.55, 0.60, 0.65] {
            for support in [1usize, 2, 3] {
                methods.push(Method::Linkage { link, join, support });
            }
        }
    }
    // per method: (worst BCubed F margin over the best components, worst pairwise precision)
    let mut worst: Vec<(f64, f64)> = vec![(f64::INFINITY, f64::INFINITY); methods.len()];
    for set in sets.iter().filter(|_| section("methods")) {
        let graphs = Graphs {
            wide: cluster::knn(&set.emb, DIM, 64.min(set.len()), 0.2),
            narrow: cluster::knn(&set.emb, DIM, defaults.k, defaults.floor),
        };
        let people = set.truth.iter().max().map_or(0, |m| m + 1);
        println!("\n### {}: {} faces, {} people", set.name, set.len(), people);
        println!("| method | pairwise P | pairwise R | BCubed P | BCubed R | BCubed F |");
        println!("|---|---|---|---|---|---|");
        let mut best = (0.0f64, 0.0f32);
        for t in (30..=70).step_by(5).map(|t| t as f32 / 100.0) {
            let (pw, bc) = run(set, Method::Components(t), &graphs);
            if pw.precision >= 0.97 && bc.f > best.0 {
                best = (bc.f, t);
            }
        }
        let (pw, bc) = run(set, Method::Components(best.1), &graphs);
        println!(
            "| best {} (P ≥ 0.97) | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            Method::Components(best.1).name(),
            pw.precision,
            pw.recall,
            bc.precision,
            bc.recall,
            bc.f
        );
        for (k, m) in methods.iter().enumerate() {
            let (pw, bc) = run(set, *m, &graphs);
            worst[k].0 = worst[k].0.min(bc.f - best.0);
            worst[k].1 = worst[k].1.min(pw.precision);
            println!("| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |", m.name(), pw.precision, pw.recall, bc.precision, bc.recall, bc.f);
        }
    }
    if section("methods") {
        across(&methods, &worst, sets.len());
    }
    if section("runs") {
        runs(&sets);
    }
    if section("user") {
        user(&sets);
    }
    if section("search") {
        search(&sets);
    }
}

/// Each method's worst margin and precision over the sets.
fn across(methods: &[Method], worst: &[(f64, f64)], sets: usize) {
    println!("\n### Across the {sets} sets (one setting each)");
    println!("| method | worst BCubed F − best components | worst pairwise P |");
    println!("|---|---|---|");
    let mut order: Vec<usize> = (0..methods.len()).collect();
    order.sort_by(|&a, &b| worst[b].0.total_cmp(&worst[a].0));
    for k in order {
        println!("| {} | {:+.3} | {:.3} |", methods[k].name(), worst[k].0, worst[k].1);
    }
}

/// Grouping grown over index runs next to grouping whole.
fn runs(sets: &[Set]) {
    println!("\n### Grouped whole, and grown in index runs (faces in shuffled order, each run grouped incrementally)");
    println!("| set | runs | pairwise P | pairwise R | BCubed P | BCubed R | BCubed F |");
    println!("|---|---|---|---|---|---|---|");
    for set in sets {
        for batches in [1usize, 5, 20] {
            let (pw, bc) = in_batches(set, batches, 1);
            println!(
                "| {} | {batches} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
                set.name, pw.precision, pw.recall, bc.precision, bc.recall, bc.f
            );
        }
    }
}

/// The simulated user's answers.
fn user(sets: &[Set]) {
    println!("\n### A user answering Who is this? truthfully (first question each time; person questions first)");
    println!("| set | answers | of them yes | pairwise P | pairwise R | BCubed F |");
    println!("|---|---|---|---|---|---|");
    for set in sets {
        for (answers, yes, pw, bc) in simulated_user(set, &[0, 5, 10, 20]) {
            println!("| {} | {answers} | {yes} | {:.3} | {:.3} | {:.3} |", set.name, pw.precision, pw.recall, bc.f);
        }
    }
}

/// Person search with several exemplars.
fn search(sets: &[Set]) {
    println!("\n### Person search with 5 exemplars: one mean query, the best of the exemplar groups, the best exemplar (mAP)");
    println!("| set | queries | mean of exemplars | best group mean | best single exemplar |");
    println!("|---|---|---|---|---|");
    for set in sets {
        let (n, mean, groups, best) = person_search(set, 5);
        println!("| {} | {n} | {mean:.3} | {groups:.3} | {best:.3} |", set.name);
    }
    println!(
        "\n### Person search across two looks: 4 exemplars of a person's larger look, 1 of the smaller, ranking the smaller look (mAP)"
    );
    println!("| set | queries | mean of exemplars | best group mean | best single exemplar |");
    println!("|---|---|---|---|---|");
    for set in sets {
        let (n, mean, groups, best) = person_search_across_looks(set);
        println!("| {} | {n} | {mean:.3} | {groups:.3} | {best:.3} |", set.name);
    }
}
