//! "Find this person" on the labelled album: every single-identity photo is the query (its
//! largest face); relevant = the other photos containing that identity. Prints mean average
//! precision and precision/recall at the default threshold.

mod common;

use common::album;
use facefind::search::DEFAULT_THRESHOLD;

#[test]
#[ignore = "needs ../shared/faces"]
fn album_find_this_person() {
    // FACEFIND_EMBEDDER=FILE measures a trained embedder with the same numbers
    let p = match std::env::var_os("FACEFIND_EMBEDDER").filter(|e| !e.is_empty()) {
        Some(e) => facefind::pipeline::Pipeline::load_with_embedder(
            &common::models_dir(),
            Some(std::path::Path::new(&e)),
            candle_core::Device::Cpu,
            Default::default(),
        )
        .unwrap(),
        None => common::cpu_pipeline(),
    };
    let s = album::find_this_person(&p);
    println!("album: {} queries, {} photos indexed, {} faces", s.queries, s.photos, s.faces);
    println!("mean average precision: {:.3}", s.map);
    println!("| threshold | precision | recall |");
    println!("|---|---|---|");
    for &(t, precision, recall) in &s.at {
        println!("| {t:.2}{} | {precision:.3} | {recall:.3} |", if t == DEFAULT_THRESHOLD { " (default)" } else { "" });
    }
    assert!(s.map >= 0.95, "mAP {:.3}", s.map);
    let (precision, recall) = s.at_default();
    assert!(precision >= 0.9 && recall >= 0.9, "P {precision:.3} R {recall:.3} at {DEFAULT_THRESHOLD}");
}
