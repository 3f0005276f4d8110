//! "Find this person" on the labelled album (`album-labels.csv`), for tests/album.rs and
//! benches/small_photos.rs: every single-identity photo is a query (its largest face); relevant =
//! the other photos holding that identity.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;

use facefind::catalog::Catalog;
use facefind::index as indexer;
use facefind::pipeline::Pipeline;
use facefind::search::{rank_photos, DEFAULT_THRESHOLD};

pub struct Labels {
    /// path relative to album/ -> lowercase identities (without "?")
    pub ids: HashMap<String, HashSet<String>>,
    /// photos labelled with exactly one identity and nothing else
    pub single: Vec<String>,
}

pub fn labels() -> Labels {
    let csv = std::fs::read_to_string(super::faces_dir().join("album-labels.csv")).unwrap();
    let mut ids = HashMap::new();
    let mut single = Vec::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.splitn(4, ',').collect();
        let all: Vec<String> = f[1].split(';').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect();
        let named: HashSet<String> = all.iter().filter(|s| *s != "?").cloned().collect();
        if all.len() == 1 && named.len() == 1 {
            single.push(f[0].to_string());
        }
        ids.insert(f[0].to_string(), named);
    }
    Labels { ids, single }
}

/// Thresholds at which precision and recall are reported.
pub const THRESHOLDS: [f32; 7] = [0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60];

pub struct AlbumScores {
    pub queries: usize,
    pub photos: usize,
    pub faces: usize,
    /// Mean average precision over the queries.
    pub map: f64,
    /// (threshold, precision, recall) for each of [`THRESHOLDS`].
    pub at: Vec<(f32, f64, f64)>,
    /// Seconds the index run took.
    pub index_secs: f64,
}

impl AlbumScores {
    /// (precision, recall) at the default threshold.
    pub fn at_default(&self) -> (f64, f64) {
        self.at.iter().find(|(t, ..)| *t == DEFAULT_THRESHOLD).map(|&(_, p, r)| (p, r)).unwrap()
    }
}

/// Indexes the album into a fresh catalog with `p` and scores every query.
pub fn find_this_person(p: &Pipeline) -> AlbumScores {
    let album = super::faces_dir().join("album");
    let dir = tempfile::tempdir().unwrap();
    let mut cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
    let t0 = std::time::Instant::now();
    indexer::index_folder(&album, &mut cat, p, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let index_secs = t0.elapsed().as_secs_f64();
    let table = cat.face_table().unwrap();
    let photos: HashMap<i64, String> =
        cat.photos().unwrap().into_iter().map(|ph| (ph.id, String::from_utf8_lossy(&ph.path).into_owned())).collect();
    let id_of: HashMap<&str, i64> = photos.iter().map(|(id, p)| (p.as_str(), *id)).collect();
    let lab = labels();

    let mut aps = Vec::new();
    let mut counts = vec![(0usize, 0usize, 0usize); THRESHOLDS.len()];
    for q in &lab.single {
        let who = lab.ids[q].iter().next().unwrap().clone();
        let relevant: HashSet<&str> = lab.ids.iter().filter(|(p, ids)| *p != q && ids.contains(&who)).map(|(p, _)| p.as_str()).collect();
        if relevant.is_empty() {
            continue;
        }
        // the query: the largest face of the query photo
        let Some(qid) = id_of.get(q.as_str()) else { panic!("{q} not indexed") };
        let rows: Vec<usize> = (0..table.len()).filter(|&r| table.photo_id(r) == *qid).collect();
        let Some(&qrow) =
            rows.iter().max_by(|&&a, &&b| (table.bbox(a)[2] * table.bbox(a)[3]).total_cmp(&(table.bbox(b)[2] * table.bbox(b)[3])))
        else {
            eprintln!("no face in query photo {q}");
            aps.push(0.0);
            continue;
        };
        let hits: Vec<_> = rank_photos(&table, &table.embedding(qrow), -1.0).into_iter().filter(|h| h.photo_id != *qid).collect();
        let (mut found, mut sum_prec) = (0, 0.0);
        for (rank, h) in hits.iter().enumerate() {
            if relevant.contains(photos[&h.photo_id].as_str()) {
                found += 1;
                sum_prec += found as f64 / (rank + 1) as f64;
            }
        }
        aps.push(sum_prec / relevant.len() as f64);
        if std::env::var("ALBUM_DEBUG").is_ok() {
            for h in hits.iter().filter(|h| h.score >= 0.45 && !relevant.contains(photos[&h.photo_id].as_str())) {
                eprintln!("FP {q} ({who}) -> {} {:.3} {:?}", photos[&h.photo_id], h.score, lab.ids.get(&photos[&h.photo_id]));
            }
        }
        for (k, t) in THRESHOLDS.iter().enumerate() {
            let good = hits.iter().filter(|h| h.score >= *t && relevant.contains(photos[&h.photo_id].as_str())).count();
            let matched = hits.iter().filter(|h| h.score >= *t).count();
            counts[k].0 += good;
            counts[k].1 += matched - good;
            counts[k].2 += relevant.len() - good;
        }
    }
    let at = THRESHOLDS
        .iter()
        .zip(&counts)
        .map(|(&t, &(g, b, m))| (t, g as f64 / (g + b).max(1) as f64, g as f64 / (g + m).max(1) as f64))
        .collect();
    AlbumScores {
        queries: aps.len(),
        photos: photos.len(),
        faces: table.len(),
        map: aps.iter().sum::<f64>() / aps.len().max(1) as f64,
        at,
        index_secs,
    }
}
