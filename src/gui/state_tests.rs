//! The app's state under messages that arrive late or out of order: the newest query, the
//! newest snapshot and the current embedder always win.

use std::sync::Arc;

use eframe::egui;
use egui_kittest::kittest::Queryable;

use super::library::{tests::synthetic, Library};
use super::worker::{Msg, Pick, QueryFace, Tag};
use super::{App, Options, PipelineState, Prefs};

/// An app with `lib` on screen as the folder's snapshot number 10, and no frame running (only
/// the messages handed to `handle` arrive).
fn app_with(lib: Arc<Library>) -> (egui_kittest::Harness<'static, App>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    let prefs = Prefs { catalog_dir: Some(tmp.path().join("catalogs")), ..Prefs::default() };
    let options = Options { models_dir: Some(tmp.path().join("no models here")), prefs: Some(prefs), ..Options::default() };
    let mut h = egui_kittest::Harness::builder().build_eframe(move |cc| App::new(cc, options));
    let ctx = h.ctx.clone();
    let app = h.state_mut();
    app.notices.clear();
    app.pipeline = PipelineState::Loading;
    app.open_folder(folder);
    let tag = Tag { open: app.folder.as_ref().unwrap().open, run: 0 };
    app.handle(&ctx, Msg::Library { tag, seq: 10, lib });
    (h, tmp)
}

fn tag(app: &App) -> Tag {
    Tag { open: app.folder.as_ref().unwrap().open, run: 0 }
}

fn outside_face(x: f32) -> QueryFace {
    let mut embedding = vec![0.0; crate::nets::mobilefacenet::EMBEDDING_DIM];
    embedding[0] = 1.0;
    QueryFace { bbox: [x, 0.0, 10.0, 10.0], embedding, chip: egui::ColorImage::filled([4, 4], egui::Color32::GRAY) }
}

/// A query's result for an older request (a photo read slowly, then another query chosen)
/// never replaces the newer query, nor reports its failure.
#[test]
fn a_stale_query_result_never_replaces_the_newer_query() {
    let (mut h, _tmp) = app_with(Arc::new(synthetic(6)));
    let ctx = h.ctx.clone();
    let app = h.state_mut();
    // an outside photo was asked for (request 1) …
    app.query_seq += 1;
    let old = app.query_seq;
    // … then a face of the album was clicked
    app.query_face(0);
    let label = app.query().unwrap().label.clone();
    app.handle(&ctx, Msg::QueryFaces { seq: old, path: "slow.jpg".into(), faces: vec![outside_face(0.0)] });
    app.handle(&ctx, Msg::QueryFaces { seq: old, path: "slow.jpg".into(), faces: vec![outside_face(0.0), outside_face(50.0)] });
    app.handle(&ctx, Msg::QueryFailed { seq: old, path: "slow.jpg".into(), error: "gone".into() });
    assert_eq!(app.query().map(|q| q.label.clone()), Some(label));
    assert!(!app.picking_face() && app.errors().is_empty(), "{:?}", app.errors());
    // the newest request's answer lands
    app.query_seq += 1;
    let new = app.query_seq;
    app.handle(&ctx, Msg::QueryFaces { seq: new, path: "new.jpg".into(), faces: vec![outside_face(0.0)] });
    assert!(app.query().unwrap().label.starts_with("new.jpg"));
}

/// An outside photo asked for while the models load waits for them; a face chosen meanwhile
/// cancels it, so the photo never replaces the newer query when the models arrive.
#[test]
fn a_query_chosen_while_the_models_load_cancels_the_waiting_photo() {
    let (mut h, _tmp) = app_with(Arc::new(synthetic(6)));
    let app = h.state_mut();
    let before = app.query_seq;
    app.query_from_file("later.jpg".into());
    assert!(app.query_seq > before && app.pending_query_file.is_some(), "a request waiting for the models has its number");
    app.query_face(0);
    assert!(app.pending_query_file.is_none());
    let label = app.query().unwrap().label.clone();
    assert!(label.starts_with("face 0"), "{label}");
}

/// Snapshots are numbered as their reads begin: one that began earlier but arrives later (an
/// index run's read racing a people edit's) is dropped; a newer one lands.
#[test]
fn an_out_of_order_snapshot_never_replaces_a_newer_one() {
    let (mut h, _tmp) = app_with(Arc::new(synthetic(3)));
    let ctx = h.ctx.clone();
    let app = h.state_mut();
    let newer = Arc::new(synthetic(5));
    let older = Arc::new(synthetic(4));
    let t = tag(app);
    app.handle(&ctx, Msg::Library { tag: t, seq: 12, lib: newer.clone() });
    app.handle(&ctx, Msg::Library { tag: t, seq: 11, lib: older.clone() });
    app.handle(&ctx, Msg::Library { tag: t, seq: 12, lib: older.clone() });
    assert!(Arc::ptr_eq(&app.folder.as_ref().unwrap().lib, &newer));
    app.handle(&ctx, Msg::Library { tag: t, seq: 13, lib: older.clone() });
    assert!(Arc::ptr_eq(&app.folder.as_ref().unwrap().lib, &older));
}

/// The embedder (or flip fusion) changes while a face search is on screen: the search is
/// cleared with a word instead of ranking the old query vector against new embeddings, and an
/// outside photo still being read with the old models is dropped. A device change alone keeps
/// the search.
#[test]
fn an_embedder_change_never_mixes_old_and_new_vectors() {
    let (mut h, tmp) = app_with(Arc::new(synthetic(6)));
    let ctx = h.ctx.clone();
    let app = h.state_mut();
    app.query_face(0);
    assert!(app.query().is_some());
    app.prefs.device = crate::pipeline::DeviceChoice::Cpu;
    app.reload_pipeline();
    assert!(app.query().is_some(), "same vectors on another device");
    // a file query in flight with the old models
    app.query_seq += 1;
    let in_flight = app.query_seq;
    app.prefs.flip = !app.prefs.flip;
    app.reload_pipeline();
    assert!(app.query().is_none() && app.ranking().results.is_empty());
    assert!(app.infos().iter().any(|i| i.contains("embedder changed")), "{:?}", app.infos());
    app.handle(&ctx, Msg::QueryFaces { seq: in_flight, path: "old.jpg".into(), faces: vec![outside_face(0.0)] });
    assert!(app.query().is_none(), "an old-model vector is never ranked");
    // a trained embedder is only used once the user saw its numbers and said yes
    let emb = tmp.path().join("embedder.safetensors");
    std::fs::write(&emb, b"x").unwrap();
    std::fs::write(
        tmp.path().join("embedder.json"),
        r#"{"training": {"validation": {"source": "3 of 15 people held back from training", "pairs": 330, "before": 0.99, "after": 0.97, "worse": false}}}"#,
    )
    .unwrap();
    app.handle(&ctx, Msg::Picked(Pick::EmbedderFile, emb.clone()));
    assert_eq!(app.prefs.embedder, None);
    let report = app.embedder_offer.as_ref().map(|o| o.1.clone()).unwrap_or_default();
    assert!(report.contains("99.00 %") && report.contains("97.00 %") && report.contains("330 pairs"), "{report}");
    app.accept_embedder();
    assert_eq!(app.prefs.embedder, Some(emb.clone()));
    // one that does not load (an ONNX file with an operator facefind does not map): the one
    // before stays, and is loaded again
    app.handle(&ctx, Msg::Pipeline { gen: app.pipeline_gen, result: Err("unsupported ONNX op `Softmax`".into()) });
    assert_eq!(app.prefs.embedder, None);
    assert!(matches!(app.pipeline, PipelineState::Loading));
    assert!(app.errors().iter().any(|e| e.contains("Softmax") && e.contains("the one before stays")), "{:?}", app.errors());
    app.handle(&ctx, Msg::Picked(Pick::EmbedderFile, emb.clone()));
    app.accept_embedder();
    app.handle(&ctx, Msg::Pipeline { gen: app.pipeline_gen, result: Err("again".into()) });
    app.handle(&ctx, Msg::Pipeline { gen: app.pipeline_gen, result: Err("the default failed too".into()) });
    assert!(matches!(app.pipeline, PipelineState::Failed(_)), "no endless reloads");
    // a reload for another reason (the device) while a new embedder loads: its failure is no
    // reason to undo the user's choice of embedder
    app.handle(&ctx, Msg::Picked(Pick::EmbedderFile, emb.clone()));
    app.accept_embedder();
    app.prefs.device = crate::pipeline::DeviceChoice::Cpu;
    app.reload_pipeline();
    app.handle(&ctx, Msg::Pipeline { gen: app.pipeline_gen, result: Err("no device".into()) });
    assert_eq!(app.prefs.embedder, Some(emb));
}

/// Where no file dialog can open, the window asks for the path; a typed folder opens.
#[test]
fn no_file_dialog_asks_for_a_typed_path() {
    let (mut h, tmp) = app_with(Arc::new(synthetic(1)));
    let ctx = h.ctx.clone();
    h.state_mut().handle(&ctx, Msg::DialogUnavailable(Pick::Folder));
    h.run_steps(2);
    h.get_by_label_contains("No file dialog can open here");
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    h.get_by_label("typed path").focus();
    h.run_steps(1);
    h.get_by_label("typed path").type_text(&other.display().to_string());
    h.run_steps(2);
    h.get_by_label("Open").click();
    h.run_steps(2);
    assert_eq!(h.state().folder.as_ref().map(|f| f.path.clone()), Some(other.canonicalize().unwrap()));
    assert!(h.state().path_prompt.is_none());
}

/// Rankings are made off the UI thread, one at a time: a ranking shows when it is the current
/// query's and newer than the one on screen, a newer request waits for the one in flight, one
/// for an earlier query never shows, and a failed one ends the wait with a word.
#[test]
fn late_rankings_never_show_another_querys_results() {
    let lib = Arc::new(synthetic(6));
    let (mut h, _tmp) = app_with(lib.clone());
    let ctx = h.ctx.clone();
    let app = h.state_mut();
    app.query_face(0);
    assert!(app.ranking_pending() && app.rank_busy);
    let (first, q0) = (app.rank_seq, app.query().unwrap().clone());
    let ranking = || Some(Box::new(super::query::Ranking::new(&lib, &q0, 0.5)));
    // asked again while the first is being made: it waits
    app.rerank();
    assert!(app.rank_again && app.rank_seq == first + 1);
    // the first comes: shown, and the second is started
    app.handle(&ctx, Msg::Ranked { seq: first, ranking: ranking() });
    assert!(!app.ranking().results.is_empty());
    assert!(app.ranking_pending() && app.rank_busy && !app.rank_again);
    // another face is clicked: the first query's second ranking is dropped when it comes
    app.query_face(1);
    assert!(app.ranking().results.is_empty() && app.rank_again, "waits for the one in flight");
    app.handle(&ctx, Msg::Ranked { seq: first + 1, ranking: ranking() });
    assert!(app.ranking().results.is_empty() && app.ranking_pending() && app.rank_busy);
    // the newest fails: the wait ends, with a word
    let newest = app.rank_seq;
    app.handle(&ctx, Msg::Ranked { seq: newest, ranking: None });
    assert!(!app.ranking_pending() && !app.rank_busy);
    assert!(app.errors().iter().any(|e| e.contains("could not be ranked")), "{:?}", app.errors());
    // back to the album while one is made: it never shows
    app.rerank();
    let late = app.rank_seq;
    app.clear_query();
    app.handle(&ctx, Msg::Ranked { seq: late, ranking: ranking() });
    assert!(app.ranking().results.is_empty() && !app.ranking_pending());
}
