//! "Find this person" on the labelled album: every single-identity photo is the query (its
//! largest face); relevant = the other photos containing that identity. Prints mean average
//! precision and precision/recall at the default threshold.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;

use facefind::catalog::{indexer, Catalog};
use facefind::search::{rank_photos, DEFAULT_THRESHOLD};

struct Labels {
    /// path relative to album/ -> lowercase identities (without "?")
    ids: HashMap<String, HashSet<String>>,
    /// photos labelled with exactly one identity and nothing else
    single: Vec<String>,
}

fn labels() -> Labels {
    let csv = std::fs::read_to_string(common::faces_dir().join("album-labels.csv")).unwrap();
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

#[test]
#[ignore = "needs ../shared/faces"]
fn album_find_this_person() {
    let album = common::faces_dir().join("album");
    let dir = tempfile::tempdir().unwrap();
    // tools/eval_embedder.sh measures a trained embedder with the same numbers
    let p = match std::env::var_os("FACEFIND_EMBEDDER").filter(|e| !e.is_empty()) {
        Some(e) => facefind::pipeline::Pipeline::load_with_embedder(&common::models_dir(), Some(std::path::Path::new(&e)), candle_core::Device::Cpu, Default::default()).unwrap(),
        None => common::cpu_pipeline(),
    };
    let mut cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
    indexer::index_folder(&album, &mut cat, &p, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let table = cat.face_table().unwrap();
    let photos: HashMap<i64, String> = cat.photos().unwrap().into_iter().map(|ph| (ph.id, String::from_utf8_lossy(&ph.path).into_owned())).collect();
    let id_of: HashMap<&str, i64> = photos.iter().map(|(id, p)| (p.as_str(), *id)).collect();
    let lab = labels();

    let (mut aps, mut tp, mut fp, mut fn_) = (Vec::new(), 0usize, 0usize, 0usize);
    let thresholds = [0.30f32, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60];
    let mut at = vec![(0usize, 0usize, 0usize); thresholds.len()];
    for q in &lab.single {
        let who = lab.ids[q].iter().next().unwrap().clone();
        let relevant: HashSet<&str> =
            lab.ids.iter().filter(|(p, ids)| *p != q && ids.contains(&who)).map(|(p, _)| p.as_str()).collect();
        if relevant.is_empty() {
            continue;
        }
        // the query: the largest face of the query photo
        let Some(qid) = id_of.get(q.as_str()) else { panic!("{q} not indexed") };
        let rows: Vec<usize> = (0..table.len()).filter(|&r| table.photo_id(r) == *qid).collect();
        let Some(&qrow) = rows.iter().max_by(|&&a, &&b| (table.bbox(a)[2] * table.bbox(a)[3]).total_cmp(&(table.bbox(b)[2] * table.bbox(b)[3]))) else {
            eprintln!("no face in query photo {q}");
            aps.push(0.0);
            continue;
        };
        let hits: Vec<_> = rank_photos(&table, table.embedding(qrow)).into_iter().filter(|h| h.photo_id != *qid).collect();
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
        for (k, t) in thresholds.iter().enumerate() {
            let m: Vec<_> = hits.iter().filter(|h| h.score >= *t).collect();
            let good = m.iter().filter(|h| relevant.contains(photos[&h.photo_id].as_str())).count();
            at[k].0 += good;
            at[k].1 += m.len() - good;
            at[k].2 += relevant.len() - good;
            if *t == DEFAULT_THRESHOLD {
                (tp, fp, fn_) = (tp + good, fp + m.len() - good, fn_ + relevant.len() - good);
            }
        }
    }
    let map = aps.iter().sum::<f64>() / aps.len() as f64;
    println!("album: {} queries, {} photos indexed, {} faces", aps.len(), photos.len(), table.len());
    println!("mean average precision: {map:.3}");
    println!("| threshold | precision | recall |");
    println!("|---|---|---|");
    for (k, t) in thresholds.iter().enumerate() {
        let (g, b, m) = at[k];
        println!("| {t:.2}{} | {:.3} | {:.3} |", if *t == DEFAULT_THRESHOLD { " (default)" } else { "" }, g as f64 / (g + b).max(1) as f64, g as f64 / (g + m).max(1) as f64);
    }
    assert!(map >= 0.95, "mAP {map:.3}");
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fn_).max(1) as f64;
    assert!(precision >= 0.9 && recall >= 0.9, "P {precision:.3} R {recall:.3} at {DEFAULT_THRESHOLD}");
}
