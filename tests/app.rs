//! The desktop app driven through egui_kittest (no window): open, index, click a face, slider,
//! inspector, refine, export; and the errors a user must see in the window.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use facefind::catalog::{Catalog, FaceRecord, PhotoRecord, Status};
use facefind::gui::{App, Options, Prefs};
use facefind::nets::mobilefacenet::EMBEDDING_DIM;

fn harness(options: Options) -> Harness<'static, App> {
    Harness::builder().with_size([1400.0, 900.0]).build_eframe(move |cc| App::new(cc, options))
}

/// The app on a catalog written by the test, without models (nothing is indexed).
fn on_catalog(folder: PathBuf, catalog: PathBuf, tmp: &Path) -> Harness<'static, App> {
    harness(Options {
        folder: Some(folder),
        catalog: Some(catalog),
        models_dir: Some(tmp.join("no-models")),
        prefs: Some(prefs()),
        ..Options::default()
    })
}

/// Steps frames until `cond` holds (background threads do the work between frames).
fn wait(h: &mut Harness<'static, App>, what: &str, secs: u64, cond: impl Fn(&App) -> bool) {
    let t0 = Instant::now();
    loop {
        h.step();
        if cond(h.state()) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}; errors: {:?}", h.state().errors());
        std::thread::sleep(Duration::from_millis(20));
    }
    h.run_steps(3);
}

/// Two frames, then frames until no ranking is being made (rankings run off the UI thread).
fn settle(h: &mut Harness<'static, App>) {
    h.run_steps(2);
    if h.state().ranking_pending() {
        wait(h, "the ranking", 60, |a| !a.ranking_pending());
    }
}

/// A file dropped on the window.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn drop_on_window(h: &mut Harness<'static, App>, path: &Path) {
    h.input_mut().dropped_files.push(std::sync::Arc::new(Dropped(path.to_path_buf())));
    h.step();
}

/// Focuses the text field labelled `label` and types `text` into it.
fn type_into(h: &mut Harness<'static, App>, label: &str, text: &str) {
    h.get_by_label(label).focus();
    h.run_steps(1);
    h.get_by_label(label).type_text(text);
    settle(h);
}

fn prefs() -> Prefs {
    Prefs { threshold: 0.5, show_below: true, ..Prefs::default() }
}

fn unit(v: impl Iterator<Item = f32>) -> Vec<f32> {
    let v: Vec<f32> = v.collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// Identity `k`'s direction plus a little photo-specific noise.
fn embedding(k: usize, photo: usize) -> Vec<f32> {
    unit((0..EMBEDDING_DIM).map(|i| if i == k { 1.0 } else { 0.0 } + 0.08 * (((i * 31 + photo * 17) % 13) as f32 / 13.0 - 0.5)))
}

fn jpeg(w: u32, h: u32, shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([shade, 100, 200 - shade / 2]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).unwrap();
    out
}

/// A folder of 12 files and a catalog for it written directly: photo i shows identity i % 3;
/// group.jpg shows identities 0 and 1.
fn synthetic(dir: &Path) -> (PathBuf, PathBuf) {
    let folder = dir.join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    let catalog = dir.join("catalog.sqlite");
    let mut cat = Catalog::open(&catalog).unwrap();
    let face = |k: usize, photo: usize, x: f32| FaceRecord {
        bbox: [x, 40.0, 60.0, 80.0],
        score: 0.99,
        landmarks: [0.0; 10],
        embedding: embedding(k, photo),
        chip: jpeg(96, 96, (k * 80) as u8),
    };
    let mut records = Vec::new();
    for i in 0..12 {
        let name = if i == 11 { "group.jpg".to_string() } else { format!("p{i:02}.jpg") };
        std::fs::write(folder.join(&name), jpeg(64, 48, (i * 20) as u8)).unwrap();
        let faces = if i == 11 { vec![face(0, i, 20.0), face(1, i, 200.0)] } else { vec![face(i % 3, i, 100.0)] };
        records.push(PhotoRecord {
            path: name.into_bytes(),
            size: 1,
            mtime_ns: 1_700_000_000_000_000_000,
            fingerprint: vec![i as u8],
            width: 320,
            height: 240,
            status: Status::Faces,
            taken: match i {
                5 => Some("2001-01-01T00:00:00".to_string()),
                7 => Some("1999-05-05T12:00:00+01:00".to_string()),
                _ => None,
            },
            regions: Vec::new(),
            sidecar_sig: 0,
            reason: None,
            thumbnail: jpeg(256, 192, (i * 20) as u8),
            faces,
        });
    }
    cat.write_batch(&records).unwrap();
    (folder, catalog)
}

/// [`synthetic`], grouped into people, the first of them named Ann.
fn synthetic_with_ann(dir: &Path) -> (PathBuf, PathBuf) {
    let (folder, catalog) = synthetic(dir);
    let mut c = Catalog::open(&catalog).unwrap();
    c.group_people(&facefind::people::Params::default()).unwrap();
    let first = c.people().unwrap()[0].id;
    c.name_person(first, Some("Ann")).unwrap();
    (folder, catalog)
}

#[test]
fn first_run_shows_the_welcome_panel() {
    let mut h = harness(Options { prefs: Some(prefs()), models_dir: Some(common::models_dir()), ..Options::default() });
    h.run_steps(3);
    h.get_by_label("Open a photo folder…");
    h.get_by_label("or drop a folder onto this window");
    assert!(h.state().library().is_none());
}

/// The whole flow on a catalog written by the test, with the models missing: the library is
/// still browsable and searchable, and the missing model is reported in the window.
#[test]
fn query_slider_inspector_refine_export_on_a_catalog() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, catalog) = synthetic(tmp.path());
    let missing_models = tmp.path().join("no-models");
    let mut h = harness(Options {
        folder: Some(folder.clone()),
        catalog: Some(catalog),
        models_dir: Some(missing_models),
        prefs: Some(prefs()),
        ..Options::default()
    });
    wait(&mut h, "the catalog", 30, |a| a.library().is_some_and(|l| l.photos.len() == 12));
    wait(&mut h, "the model error", 30, |a| !a.errors().is_empty());
    let errors = h.state().errors().join("\n");
    assert!(errors.contains("retinaface_mnet025.safetensors"), "{errors}");
    h.get_by_label_contains("did not load");

    // Click the face of p00.jpg (identity 0) in the faces strip.
    h.get_by_label("face 0 in p00.jpg").click();
    settle(&mut h);
    let state = h.state();
    assert_eq!(state.query().map(|q| q.label.as_str()), Some("face 0 in p00.jpg"));
    let order: Vec<String> = state.ranking().results.iter().map(|r| state.library().unwrap().rel(r.hit.photo_id)).collect();
    // Identity 0: p00, p03, p06, p09 and group.jpg score high; the rest near 0.
    let top: std::collections::BTreeSet<&str> = order[..5].iter().map(String::as_str).collect();
    assert_eq!(top, ["group.jpg", "p00.jpg", "p03.jpg", "p06.jpg", "p09.jpg"].into_iter().collect());
    assert_eq!(order[0], "p00.jpg");
    let scores = &state.ranking().scores;
    assert!((scores[0] - 1.0).abs() < 1e-4 && scores[4] > 0.8 && scores[5] < 0.2, "{scores:?}");
    assert_eq!(state.ranking().match_count(state.threshold()), 5);
    h.get_by_label("5 photos ≥ 0.50");
    h.get_by_label_contains("result 1 p00.jpg 1.00");

    // The slider: above every non-identical score, then below everything.
    h.get_by_role_and_label(egui::Role::Slider, "threshold").set_value_accesskit(0.98);
    settle(&mut h);
    assert!((h.state().threshold() - 0.98).abs() < 1e-4, "{}", h.state().threshold());
    assert_eq!(h.state().ranking().match_count(h.state().threshold()), 1);
    h.get_by_label("1 photo ≥ 0.98");
    h.get_by_role_and_label(egui::Role::Slider, "threshold").set_value_accesskit(-0.2);
    settle(&mut h);
    h.get_by_label("12 photos ≥ -0.20");
    h.get_by_role_and_label(egui::Role::Slider, "threshold").set_value_accesskit(0.5);
    settle(&mut h);

    // Inspector on the second result; → moves on, Esc closes.
    let second = h.state().ranking().results[1].hit.photo_id;
    let second_name = h.state().library().unwrap().rel(second);
    h.get_by_label_contains(&format!("result 2 {second_name}")).click();
    settle(&mut h);
    assert_eq!(h.state().inspected(), Some(second));
    h.get_by_label(&second_name);
    h.key_press(egui::Key::ArrowRight);
    settle(&mut h);
    assert_eq!(h.state().inspected(), Some(h.state().ranking().results[2].hit.photo_id));
    h.key_press(egui::Key::ArrowLeft);
    settle(&mut h);
    assert_eq!(h.state().inspected(), Some(second));

    // Refine: reject this photo → it drops to the bottom and stops matching.
    h.get_by_label("Not this person").click();
    settle(&mut h);
    let r = &h.state().ranking().results;
    assert_eq!(r.last().map(|x| x.hit.photo_id), Some(second));
    assert_eq!(h.state().ranking().match_count(0.5), 4);
    h.get_by_label("4 photos ≥ 0.50");
    // ... and confirm p01 (identity 1): the query moves towards it, so it ranks first.
    h.key_press(egui::Key::Escape);
    settle(&mut h);
    assert_eq!(h.state().inspected(), None);
    let p01 = h.state().library().unwrap().photos.iter().find(|p| p.path == b"p01.jpg").unwrap().id;
    h.get_by_label_contains("p01.jpg").click();
    settle(&mut h);
    assert_eq!(h.state().inspected(), Some(p01));
    h.get_by_label("Yes, this person").click();
    settle(&mut h);
    assert_eq!(h.state().ranking().results[0].hit.photo_id, p01);
    h.key_press(egui::Key::Escape);
    settle(&mut h);

    // Export the matches and a CSV.
    let n = h.state().ranking().match_count(h.state().threshold());
    let out = tmp.path().join("export");
    type_into(&mut h, "export folder", &out.display().to_string());
    h.get_by_label(&format!("Export {n} photos")).click();
    h.run_steps(1);
    h.get_by_label("Save CSV").click();
    wait(&mut h, "the export", 30, |a| a.infos().len() >= 2);
    let mut exported: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    exported.sort();
    assert_eq!(exported.len(), n + 1, "{exported:?}");
    assert!(exported.contains(&"facefind-results.csv".to_string()));
    let csv = std::fs::read_to_string(out.join("facefind-results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13);
    assert!(csv.lines().nth(1).unwrap().starts_with("p01.jpg,"), "{csv}");
    // The photo folder is untouched.
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 12);
}

#[test]
fn a_folder_dropped_on_the_window_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, _) = synthetic(tmp.path());
    let catalogs = tmp.path().join("catalogs");
    // The catalog the app will look for: the one written above, moved under the catalog location.
    let expected = facefind::catalog::catalog_path_in(&catalogs, &folder).unwrap();
    std::fs::create_dir_all(expected.parent().unwrap()).unwrap();
    std::fs::rename(tmp.path().join("catalog.sqlite"), &expected).unwrap();
    let prefs = Prefs { catalog_dir: Some(catalogs), ..prefs() };
    let mut h = harness(Options { models_dir: Some(tmp.path().join("no-models")), prefs: Some(prefs), ..Options::default() });
    settle(&mut h);
    h.get_by_label("Open a photo folder…");
    drop_on_window(&mut h, &folder);
    wait(&mut h, "the dropped folder", 30, |a| a.library().is_some_and(|l| l.photos.len() == 12));
    h.get_by_label("photo group.jpg");
    // Dropping the open folder again keeps it as it is (no second catalog reader or writer).
    drop_on_window(&mut h, &folder);
    h.run_steps(3);
    assert_eq!(h.state().library().map(|l| l.photos.len()), Some(12));
    // A photo dropped while the models are missing says why it cannot be searched.
    drop_on_window(&mut h, &folder.join("p01.jpg"));
    wait(&mut h, "the query error", 30, |a| a.errors().iter().any(|e| e.contains("cannot query")));
}

/// Another process indexing the same catalog: the app says it waits, shows what the catalog
/// holds meanwhile, and indexes once the other one lets go (no error, nothing lost).
#[test]
fn a_busy_catalog_is_waited_for_and_reported_in_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, catalog) = synthetic(tmp.path());
    let mut holder = Catalog::open(&catalog).unwrap();
    holder.lock_for_writing().unwrap();
    let mut h = harness(Options {
        folder: Some(folder),
        catalog: Some(catalog),
        models_dir: Some(common::models_dir()),
        prefs: Some(prefs()),
        ..Options::default()
    });
    wait(&mut h, "the waiting notice", 60, |a| a.infos().iter().any(|e| e.contains("waiting for another indexing run")));
    h.get_by_label_contains("waiting for another indexing run");
    // What the catalog holds is still shown, and the run has not ended.
    assert_eq!(h.state().library().map(|l| l.photos.len()), Some(12));
    h.run_steps(10);
    assert!(h.state().is_indexing());
    drop(holder);
    wait(&mut h, "the index run to end", 120, |a| !a.is_indexing());
    assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());
}

/// Another program's database given as the catalog is refused, the window says why, and the
/// file is left as it was.
#[test]
fn a_foreign_database_is_refused_in_the_window_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = plain_photos(&tmp.path().join("photos"), 2, 9);
    let catalog = tmp.path().join("old.sqlite");
    rusqlite::Connection::open(&catalog)
        .unwrap()
        .execute_batch("CREATE TABLE images (name TEXT, vec BLOB); INSERT INTO images VALUES ('x', x'00');")
        .unwrap();
    let before = std::fs::read(&catalog).unwrap();
    let mut h = harness(Options {
        folder: Some(folder),
        catalog: Some(catalog.clone()),
        models_dir: Some(common::models_dir()),
        prefs: Some(prefs()),
        ..Options::default()
    });
    wait(&mut h, "the refusal", 60, |a| a.errors().iter().any(|e| e.contains("not a facefind catalog")));
    // in the notice and where the photos would be
    assert!(h.get_all_by_label_contains("not a facefind catalog").count() >= 1);
    h.run_steps(5);
    assert_eq!(std::fs::read(&catalog).unwrap(), before);
}

/// A catalog of ours whose version cannot be read is refused (the window says why and what it
/// would do), nothing in it changes until the user clicks Rebuild, and the rebuilt catalog
/// keeps the named person.
#[test]
fn an_unreadable_catalog_is_rebuilt_only_when_the_user_asks() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, catalog) = synthetic_with_ann(tmp.path());
    rusqlite::Connection::open(&catalog).unwrap().execute_batch("UPDATE meta SET value = 'garbage' WHERE key = 'schema_version'").unwrap();
    let before = std::fs::read(&catalog).unwrap();
    let mut h = on_catalog(folder, catalog.clone(), tmp.path());
    wait(&mut h, "the refusal", 30, |a| a.errors().iter().any(|e| e.contains("garbage")));
    h.run_steps(3);
    assert_eq!(std::fs::read(&catalog).unwrap(), before, "refused: not written");
    h.get_by_label("Rebuild catalog").click();
    wait(&mut h, "the rebuilt catalog", 30, |a| a.library().is_some_and(|l| l.people.iter().any(|p| p.name.as_deref() == Some("Ann"))));
    assert!(h.state().infos().iter().any(|i| i.contains("rebuilt")), "{:?}", h.state().infos());
}

#[test]
fn an_unreadable_folder_is_reported_in_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = harness(Options {
        folder: Some(tmp.path().join("gone")),
        models_dir: Some(common::models_dir()),
        prefs: Some(prefs()),
        ..Options::default()
    });
    h.run_steps(3);
    h.get_by_label_contains("not a readable folder");
}

/// The real pipeline on real photos: index in the background, click a face, compare with the
/// search the command line does.
#[test]
#[ignore = "needs ../shared/faces"]
fn index_and_search_real_photos() {
    let album = common::faces_dir().join("album");
    assert!(album.is_dir(), "{} missing (set FACEFIND_FACES)", album.display());
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    let labels = std::fs::read_to_string(common::faces_dir().join("album-labels.csv")).unwrap();
    // Single-identity photos of the two most frequent people, plus one photo nobody else is in.
    let mut by_person: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in labels.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() >= 2 && !cols[1].contains(';') && !cols[1].is_empty() && cols[1] != "?" {
            by_person.entry(cols[1].to_string()).or_default().push(cols[0].to_string());
        }
    }
    let mut people: Vec<(String, Vec<String>)> = by_person.into_iter().filter(|(_, v)| v.len() >= 3).collect();
    people.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let mut copied = Vec::new();
    for (person, photos) in people.iter().take(2) {
        for p in photos.iter().take(4) {
            let name = format!("{person}-{}", Path::new(p).file_name().unwrap().to_string_lossy());
            std::fs::copy(album.join(p), folder.join(&name)).unwrap();
            copied.push((person.clone(), name));
        }
    }
    std::fs::write(folder.join("broken.jpg"), b"not a photo").unwrap();
    let catalog = tmp.path().join("catalog.sqlite");
    let mut h = harness(Options {
        folder: Some(folder.clone()),
        catalog: Some(catalog.clone()),
        models_dir: Some(common::models_dir()),
        prefs: Some(prefs()),
        ..Options::default()
    });
    wait(&mut h, "indexing", 600, |a| !a.is_indexing() && a.library().is_some_and(|l| l.photos.len() == copied.len() + 1));
    assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());
    h.get_by_label_contains("1 error");

    // Click the first face of the first person's first photo.
    let (person, first) = copied[0].clone();
    h.get_by_label(&format!("face 0 in {first}")).click();
    settle(&mut h);
    let app = h.state();
    let lib = app.library().unwrap();
    // The same ranking the command line computes from the catalog.
    let cat = Catalog::open(&catalog).unwrap();
    let table = cat.face_table().unwrap();
    let row = (0..table.len()).find(|&r| lib.rel(table.photo_id(r)) == first && table.face_index(r) == 0).unwrap();
    let expected = facefind::search::rank_photos(&table, &table.embedding(row), app.ranking().exact_from);
    let got: Vec<(i64, f32)> = app.ranking().results.iter().map(|r| (r.hit.photo_id, r.hit.score)).collect();
    let want: Vec<(i64, f32)> = expected.iter().map(|h| (h.photo_id, h.score)).collect();
    assert_eq!(got, want);
    // The same person's photos come first and match at the default threshold.
    let matched: Vec<String> = app.ranking().matches(app.threshold()).map(|r| lib.rel(r.hit.photo_id)).collect();
    let same: Vec<&String> = copied.iter().filter(|(p, _)| *p == person).map(|(_, n)| n).collect();
    for n in &same {
        assert!(matched.contains(n), "{n} not matched: {matched:?}");
    }
    eprintln!(
        "matched {} of {} ({} are {person}); scores {:?}",
        matched.len(),
        got.len(),
        same.len(),
        got.iter().map(|g| g.1).collect::<Vec<_>>()
    );

    h.get_by_role_and_label(egui::Role::Slider, "threshold").set_value_accesskit(0.99);
    settle(&mut h);
    h.get_by_label_contains("1 photo ≥");

    // A group photo from outside the folder, dropped on the window: pick one of its faces.
    let outside = album.join("human/solvay1927.jpg");
    drop_on_window(&mut h, &outside);
    wait(&mut h, "the faces of the dropped photo", 120, |a| a.picking_face());
    h.get_by_label("pick face 3").click();
    settle(&mut h);
    assert_eq!(h.state().query().map(|q| q.label.as_str()), Some("face 3 in solvay1927.jpg (outside the folder)"));
    assert!(!h.state().picking_face());
    assert_eq!(h.state().ranking().results.len(), got.len());
    // Back to the first query.
    h.get_by_label("Back to album").click();
    settle(&mut h);
    h.get_by_label(&format!("face 0 in {first}")).click();
    settle(&mut h);

    // Inspector on the best result, confirm it, back to the grid.
    h.get_by_label_contains("result 1 ").click();
    settle(&mut h);
    let top = h.state().inspected().expect("inspector open");
    h.get_by_label("Yes, this person").click();
    settle(&mut h);
    assert_eq!(h.state().query().and_then(|q| q.verdict(top)), Some(facefind::gui::query::Verdict::Yes));
    h.key_press(egui::Key::Escape);
    settle(&mut h);
    assert_eq!(h.state().inspected(), None);

    // Export the matches at the default threshold.
    h.get_by_role_and_label(egui::Role::Slider, "threshold").set_value_accesskit(0.5);
    settle(&mut h);
    let n = h.state().ranking().match_count(0.5);
    let out = tmp.path().join("export");
    type_into(&mut h, "export folder", &out.display().to_string());
    h.get_by_label(&format!("Export {n} photos")).click();
    wait(&mut h, "the export", 60, |a| !a.infos().is_empty());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), n);
    assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());
}

fn catalog_people(catalog: &Path) -> Vec<(Option<String>, usize)> {
    let c = Catalog::open(catalog).unwrap();
    c.people().unwrap().into_iter().map(|p| (p.name, p.faces)).collect()
}

/// People in the window: name a person, merge two, undo, move a face to a new person, and
/// answer "No" to a "Who is this?" question.
#[test]
fn people_name_merge_undo_move_and_reject() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, catalog) = synthetic(tmp.path());
    Catalog::open(&catalog).unwrap().group_people(&facefind::people::Params::default()).unwrap();
    assert_eq!(catalog_people(&catalog).iter().map(|p| p.1).collect::<Vec<_>>(), vec![5, 5, 3]);
    let mut h = on_catalog(folder, catalog.clone(), tmp.path());
    wait(&mut h, "the people", 30, |a| a.library().is_some_and(|l| l.people.len() == 3));
    h.get_by_label("People").click();
    settle(&mut h);
    assert!(h.state().people_view());

    // name the first person (5 faces)
    h.get_all_by_label("person Unnamed · 5").next().unwrap().click();
    settle(&mut h);
    assert!(h.state().query().is_some_and(|q| q.person.is_some()));
    type_into(&mut h, "person name", "Ann");
    h.get_by_label("Name").click();
    wait(&mut h, "the name", 30, |a| a.library().is_some_and(|l| l.people.iter().any(|p| p.name.as_deref() == Some("Ann"))));
    assert_eq!(catalog_people(&catalog)[0], (Some("Ann".into()), 5));

    // merge the 3-face person into Ann, then undo
    h.get_by_label("Back to people").click();
    settle(&mut h);
    h.get_by_label("person Unnamed · 3").click();
    settle(&mut h);
    h.get_by_label("Merge into…").click();
    settle(&mut h);
    h.get_by_label("Ann (5 photos)").click();
    wait(&mut h, "the merge", 30, |a| a.library().is_some_and(|l| l.people.len() == 2));
    assert_eq!(catalog_people(&catalog)[0], (Some("Ann".into()), 8));
    h.get_by_label("Undo").click();
    wait(&mut h, "the undo", 30, |a| a.library().is_some_and(|l| l.people.len() == 3));
    assert_eq!(catalog_people(&catalog).iter().map(|p| p.1).collect::<Vec<_>>(), vec![5, 5, 3]);

    // move a face of Ann to a new person, from the inspector (the merged person's search
    // closed when it was merged away: the People view is on screen)
    assert!(h.state().query().is_none());
    h.get_by_label("person Ann · 5").click();
    settle(&mut h);
    h.get_all_by_label_contains("result 2 ").next().unwrap().click();
    settle(&mut h);
    h.get_all_by_label("Move to…").next().unwrap().click();
    settle(&mut h);
    h.get_by_label("New person").click();
    wait(&mut h, "the move", 30, |a| a.library().is_some_and(|l| l.people.len() == 4));
    assert_eq!(catalog_people(&catalog).iter().map(|p| p.1).collect::<Vec<_>>(), vec![5, 4, 3, 1]);

    // "Who is this?": Ann's faces are certain, so no face of hers is asked about; the moved
    // face's new person may be Ann: asked as one question, and "No" keeps them apart for good
    h.key_press(egui::Key::Escape);
    h.get_by_label("Back to people").click();
    settle(&mut h);
    wait(&mut h, "the question", 30, |a| a.library().is_some_and(|l| l.merges.len() == 1));
    assert!(h.state().library().unwrap().suggestions.is_empty(), "{:?}", h.state().library().unwrap().suggestions);
    h.get_by_label("No, Unnamed is not Ann").click();
    wait(&mut h, "the answer", 30, |a| a.library().is_some_and(|l| l.merges.is_empty()));
    let c = Catalog::open(&catalog).unwrap();
    assert_eq!(c.not_same().unwrap().len(), 1);
    assert_eq!(catalog_people(&catalog).iter().map(|p| p.1).collect::<Vec<_>>(), vec![5, 4, 3, 1]);
    assert!(h.state().errors().iter().all(|e| e.contains("did not load")), "{:?}", h.state().errors());
}

/// Two "Yes" answers clicked in the same frame are both saved: edits go to one writer, in the
/// order they were made, and neither is lost to the other.
#[test]
fn two_answers_in_one_frame_are_both_saved() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, catalog) = synthetic_with_ann(tmp.path());
    // two of Ann's faces in no person: each is a question ("Ann?")
    rusqlite::Connection::open(&catalog)
        .unwrap()
        .execute(
            "DELETE FROM face_person WHERE face_id IN (SELECT face_id FROM face_person fp JOIN people p ON p.id=fp.person_id
             WHERE p.name='Ann' ORDER BY face_id LIMIT 2)",
            [],
        )
        .unwrap();
    let mut h = on_catalog(folder, catalog.clone(), tmp.path());
    wait(&mut h, "the questions", 30, |a| a.library().is_some_and(|l| l.suggestions.len() >= 2));
    h.get_by_label("People").click();
    settle(&mut h);
    let asked: usize = h.state().library().unwrap().suggestions.len();
    {
        let yes: Vec<_> = h.get_all_by_label("Yes").collect();
        assert!(yes.len() >= 2, "{} questions shown", yes.len());
        yes[0].click();
        yes[1].click();
    }
    h.step();
    let confirmed = |c: &Path| -> usize {
        let c = Catalog::open(c).unwrap();
        let ann = c.find_person("Ann").unwrap();
        c.person_faces(ann).unwrap().iter().filter(|f| f.1 == facefind::people::Source::Confirmed).count()
    };
    wait(&mut h, "both answers", 30, |a| confirmed(&catalog) >= 2 && a.library().is_some_and(|l| l.suggestions.len() < asked));
    assert_eq!(confirmed(&catalog), 2);
    assert!(h.state().errors().iter().all(|e| e.contains("did not load")), "{:?}", h.state().errors());
}

/// "Save as person": a face search becomes a named person.
#[test]
fn a_search_saved_as_a_person() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, catalog) = synthetic(tmp.path());
    let mut h = on_catalog(folder, catalog.clone(), tmp.path());
    wait(&mut h, "the catalog", 30, |a| a.library().is_some_and(|l| l.photos.len() == 12));
    h.get_by_label("face 0 in p00.jpg").click();
    settle(&mut h);
    type_into(&mut h, "new person name", "Bob");
    h.get_by_label("Save 1 face as Bob").click();
    wait(&mut h, "the person", 30, |a| a.library().is_some_and(|l| l.people.iter().any(|p| p.name.as_deref() == Some("Bob"))));
    let c = Catalog::open(&catalog).unwrap();
    let bob = c.find_person("Bob").unwrap();
    assert_eq!(c.person_faces(bob).unwrap().iter().map(|f| f.1).collect::<Vec<_>>(), vec![facefind::people::Source::User]);
    // the search is now Bob's
    assert_eq!(h.state().query().and_then(|q| q.person), Some(bob));
}

/// Patterned photos without faces (the detector runs on each, quickly).
fn plain_photos(dir: &Path, n: usize, seed: u8) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(160, 120, |x, y| {
            image::Rgb([(x as u8).wrapping_mul(seed), (y as u8).wrapping_add(i as u8).wrapping_mul(7), seed])
        });
        img.save(dir.join(format!("p{i:03}.jpg"))).unwrap();
    }
    dir.canonicalize().unwrap()
}

/// The races of a real session: A → B → A while A is indexing, then a settings change that
/// reloads the models while indexing. Each folder ends up showing its own photos, every run
/// finishes, no cancelled run's message lands on the wrong view (no stale error, nothing stuck
/// in "indexing").
#[test]
fn reopen_a_b_a_and_reload_while_indexing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = plain_photos(&tmp.path().join("a"), 40, 3);
    let b = plain_photos(&tmp.path().join("b"), 6, 5);
    let prefs = Prefs { catalog_dir: Some(tmp.path().join("catalogs")), ..prefs() };
    let mut h =
        harness(Options { folder: Some(a.clone()), models_dir: Some(common::models_dir()), prefs: Some(prefs), ..Options::default() });
    wait(&mut h, "A to start indexing", 120, |app| {
        app.library().is_some_and(|l| !l.photos.is_empty()) || app.infos().iter().any(|i| i.contains("waiting"))
    });
    h.state_mut().open_folder(b.clone());
    settle(&mut h);
    h.state_mut().open_folder(a.clone());
    wait(&mut h, "A to finish", 300, |app| !app.is_indexing() && app.library().is_some_and(|l| l.photos.len() == 40));
    assert_eq!(h.state().library().map(|l| l.folder.clone()), Some(a.clone()));
    assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());
    // B was indexed (or at least opened) into its own catalog, never into A's
    h.state_mut().open_folder(b.clone());
    wait(&mut h, "B to finish", 120, |app| !app.is_indexing() && app.library().is_some_and(|l| l.photos.len() == 6));
    assert_eq!(h.state().library().map(|l| l.folder.clone()), Some(b));
    // back to A, and flip fusion changed while it re-checks: the models reload, A is indexed again
    h.state_mut().open_folder(a.clone());
    h.run_steps(1);
    h.get_by_label("Settings").click();
    settle(&mut h);
    h.get_by_label("embed each face and its mirror image").click();
    settle(&mut h);
    wait(&mut h, "A after the reload", 300, |app| !app.is_indexing() && app.library().is_some_and(|l| l.photos.len() == 40));
    assert_eq!(h.state().library().map(|l| l.folder.clone()), Some(a));
    assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());
}

/// The results as a table: sorted by clicking a header (again: the other way), a row opens the
/// inspector; hidden people are listed in their table and come back with Show.
#[test]
fn results_table_sorts_and_opens_a_photo_and_hidden_people_come_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, catalog) = synthetic_with_ann(tmp.path());
    let mut h = on_catalog(folder, catalog.clone(), tmp.path());
    wait(&mut h, "the catalog", 30, |a| a.library().is_some_and(|l| l.photos.len() == 12));
    h.get_by_label("face 0 in p00.jpg").click();
    settle(&mut h);
    h.get_by_label("Table").click();
    h.run_steps(3);
    let first_row = |h: &Harness<'static, App>| {
        h.query_all_by_label_contains("result row ").next().map(|n| n.accesskit_node().label().unwrap_or_default()).unwrap_or_default()
    };
    assert!(first_row(&h).starts_with("result row 1 p00.jpg"), "{}", first_row(&h));
    assert_eq!(h.query_all_by_label_contains("result row ").count(), 12);
    h.get_by_label("file").click();
    h.run_steps(3);
    assert!(first_row(&h).contains(" group.jpg "), "by name: {}", first_row(&h));
    h.get_by_label("file").click();
    h.run_steps(3);
    assert!(first_row(&h).contains(" p10.jpg "), "by name, descending: {}", first_row(&h));
    // by capture date: oldest first, then newest first; the undated last both ways
    let rows = |h: &Harness<'static, App>| -> Vec<String> {
        h.query_all_by_label_contains("result row ").map(|n| n.accesskit_node().label().unwrap_or_default()).collect()
    };
    h.get_by_label("taken").click();
    h.run_steps(3);
    let by_date = rows(&h);
    assert!(by_date[0].contains(" p07.jpg ") && by_date[1].contains(" p05.jpg "), "by date: {by_date:?}");
    h.get_by_label("taken").click();
    h.run_steps(3);
    let by_date = rows(&h);
    assert!(by_date[0].contains(" p05.jpg ") && by_date[1].contains(" p07.jpg ") && by_date.len() == 12, "newest first: {by_date:?}");
    h.get_by_label("1999-05-05 12:00:00");
    // the year strip: a year's photos only, then all again; the thumbnails follow the same order
    h.get_by_label("1999 · 1").click();
    h.run_steps(3);
    assert_eq!(rows(&h).len(), 1, "{:?}", rows(&h));
    h.get_by_label("Thumbnails").click();
    h.run_steps(3);
    assert_eq!(
        h.query_all_by_label_contains("result ")
            .filter(|n| n.accesskit_node().label().unwrap_or_default().starts_with("result 8 p07"))
            .count(),
        1
    );
    h.get_by_label("1999 · 1").click();
    h.get_by_label("oldest").click();
    h.run_steps(3);
    let thumbs: Vec<String> = h
        .query_all_by_label_contains("result ")
        .map(|n| n.accesskit_node().label().unwrap_or_default())
        .filter(|l| !l.starts_with("result row"))
        .collect();
    assert!(thumbs.len() == 12 && thumbs[0].contains(" p07.jpg") && thumbs[1].contains(" p05.jpg"), "{thumbs:?}");
    h.get_by_label("Table").click();
    h.run_steps(3);
    // back to by name, descending
    h.get_by_label("file").click();
    h.run_steps(3);
    h.get_by_label("file").click();
    h.run_steps(3);
    // the row of p03 opens it; → goes on in the table's order (p02, before it p04)
    let id =
        |h: &Harness<'static, App>, name: &str| h.state().library().unwrap().photos.iter().find(|p| p.path == name.as_bytes()).unwrap().id;
    h.get_by_label_contains(" p03.jpg ").click();
    settle(&mut h);
    assert_eq!(h.state().inspected(), Some(id(&h, "p03.jpg")));
    // the inspector says when a photo was taken, or that it does not say
    h.get_by_label("no capture date");
    h.key_press(egui::Key::ArrowRight);
    settle(&mut h);
    assert_eq!(h.state().inspected(), Some(id(&h, "p02.jpg")));
    h.key_press(egui::Key::Escape);
    settle(&mut h);

    // hide Ann (from her search), then find her in the hidden table and show her again
    h.get_by_label("Back to album").click();
    settle(&mut h);
    h.get_by_label("People").click();
    settle(&mut h);
    h.get_by_label_contains("person Ann").click();
    settle(&mut h);
    h.get_by_label("Hide").click();
    wait(&mut h, "Ann hidden", 30, |a| a.library().is_some_and(|l| l.people.iter().any(|p| p.name.as_deref() == Some("Ann") && p.hidden)));
    h.get_by_label("Back to people").click();
    settle(&mut h);
    h.get_by_label("Hidden (1)").click();
    h.run_steps(10);
    h.get_by_label("Ann");
    h.get_by_label("Show").click();
    wait(&mut h, "Ann shown", 30, |a| a.library().is_some_and(|l| l.people.iter().any(|p| p.name.as_deref() == Some("Ann") && !p.hidden)));
}

/// Files an index run could not read are listed in a table with their reason.
#[test]
fn skipped_files_are_listed_with_their_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = plain_photos(&tmp.path().join("photos"), 2, 9);
    std::fs::write(folder.join("notes.jpg"), b"shopping list").unwrap();
    std::fs::write(folder.join("empty.png"), b"").unwrap();
    let prefs = Prefs { catalog_dir: Some(tmp.path().join("catalogs")), ..prefs() };
    // no models folder named: the networks built into facefind index the folder
    let mut h = harness(Options { folder: Some(folder.clone()), prefs: Some(prefs), ..Options::default() });
    wait(&mut h, "the index run", 300, |a| !a.is_indexing() && a.library().is_some_and(|l| l.photos.len() == 4));
    h.get_by_label("2 files skipped").click();
    h.run_steps(10);
    h.get_by_label("notes.jpg");
    h.get_by_label("empty.png");
    h.get_by_label_contains("not an image");
    h.get_by_label_contains("empty file");
    // the app started again on the same catalog: nothing is retried (the files did not change),
    // and after its (empty) run they are still listed, from the catalog
    drop(h);
    let prefs = Prefs { catalog_dir: Some(tmp.path().join("catalogs")), ..self::prefs() };
    let mut h = harness(Options { folder: Some(folder), prefs: Some(prefs), ..Options::default() });
    wait(&mut h, "the second run", 300, |a| {
        !a.is_indexing() && a.index_summary().is_some() && a.library().is_some_and(|l| l.photos.len() == 4)
    });
    assert_eq!(h.state().index_summary().map(|s| s.processed), Some(0), "nothing retried");
    h.run_steps(10);
    h.get_by_label("2 files skipped").click();
    h.run_steps(10);
    h.get_by_label("notes.jpg");
    h.get_by_label_contains("not an image");
}

/// "Is this the same person as Ann?": a person split in two is one question; "No" is remembered
/// (also after a restart), and "Yes" makes them one person.
#[test]
fn a_person_split_in_two_is_one_question() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, catalog) = synthetic_with_ann(tmp.path());
    {
        // two of Ann's five faces grouped apart (as a second look of her would be)
        let mut c = Catalog::open(&catalog).unwrap();
        let ann = c.find_person("Ann").unwrap();
        let faces: Vec<i64> = c.person_faces(ann).unwrap().iter().map(|f| f.0).take(2).collect();
        c.assign_faces(&faces, None, None).unwrap();
    }
    let open = |tmp: &Path| on_catalog(folder.clone(), catalog.clone(), tmp);
    let mut h = open(tmp.path());
    wait(&mut h, "the question", 30, |a| a.library().is_some_and(|l| !l.merges.is_empty()));
    h.get_by_label("People").click();
    settle(&mut h);
    // her own faces are certain: not asked about
    assert!(h.state().library().unwrap().suggestions.iter().all(|s| {
        let l = h.state().library().unwrap();
        l.person(s.person).is_none_or(|p| p.name.as_deref() != Some("Ann"))
    }));
    h.get_by_label("No, Unnamed is not Ann").click();
    wait(&mut h, "the answer", 30, |a| a.library().is_some_and(|l| l.merges.is_empty()));
    drop(h);
    let mut h = open(tmp.path());
    wait(&mut h, "the people", 30, |a| a.library().is_some_and(|l| l.people.len() == 4));
    assert!(h.state().library().unwrap().merges.is_empty(), "asked again after No");
    // with the answer forgotten, the question is back, and "Yes" makes them one person
    let c = Catalog::open(&catalog).unwrap();
    let ann = c.find_person("Ann").unwrap();
    let split = c.people().unwrap().into_iter().find(|p| p.faces == 2 && p.name.is_none()).unwrap().id;
    drop(c);
    rusqlite::Connection::open(&catalog).unwrap().execute("DELETE FROM not_same", []).unwrap();
    drop(h);
    let mut h = open(tmp.path());
    wait(&mut h, "the question again", 30, |a| a.library().is_some_and(|l| !l.merges.is_empty()));
    h.get_by_label("People").click();
    settle(&mut h);
    h.get_by_label("Yes, Unnamed is Ann").click();
    wait(&mut h, "the merge", 30, |a| a.library().is_some_and(|l| l.people.iter().any(|p| p.id == ann && p.faces == 5)));
    assert!(h.state().library().unwrap().people.iter().all(|p| p.id != split));
}

/// Photos just below the threshold that stand apart from the rest are offered in one click.
#[test]
fn near_misses_are_offered_below_the_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, catalog) = synthetic(tmp.path());
    let mut h = on_catalog(folder, catalog, tmp.path());
    wait(&mut h, "the catalog", 30, |a| a.library().is_some_and(|l| l.photos.len() == 12));
    h.get_by_label("face 0 in p00.jpg").click();
    settle(&mut h);
    // at 0.5 every photo of identity 0 matches and the rest are far below: nothing to offer
    assert!(h.query_by_label_contains("more photos may be").is_none());
    // at 0.95 two photos match (scores 1.00, 0.96); the other three of identity 0 (0.93, 0.90,
    // 0.86) sit just below, near the matches, far above the rest (0.02)
    h.get_by_role_and_label(egui::Role::Slider, "threshold").set_value_accesskit(0.95);
    h.run_steps(3);
    h.get_by_label("2 photos ≥ 0.95");
    h.get_by_label_contains("3 more photos may be face 0 in p00.jpg").click();
    h.run_steps(3);
    assert_eq!(h.state().ranking().match_count(h.state().threshold()), 5);
    assert!(h.state().threshold() > 0.85 && h.state().threshold() < 0.87, "{}", h.state().threshold());
}

/// Ann with Bob (group.jpg, the one photo of both), then Bob taken off again; Ann without Bob
/// (her photos, not the group photo).
#[test]
fn a_second_person_added_to_a_search_and_taken_off() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, catalog) = synthetic_with_ann(tmp.path());
    {
        let mut c = Catalog::open(&catalog).unwrap();
        let other = c.people().unwrap().into_iter().find(|p| p.name.is_none() && p.faces == 5).expect("the other person of group.jpg");
        c.name_person(other.id, Some("Bob")).unwrap();
    }
    let mut h = on_catalog(folder, catalog, tmp.path());
    wait(&mut h, "the catalog", 30, |a| a.library().is_some_and(|l| l.people.len() == 3));
    let ann = h.state().library().unwrap().people.iter().find(|p| p.name.as_deref() == Some("Ann")).unwrap().id;
    h.state_mut().query_person(ann);
    settle(&mut h);
    h.get_by_label("5 photos ≥ 0.50");
    h.get_by_label("With…").click();
    h.run_steps(3);
    h.get_by_label("Bob (5 photos)").click();
    settle(&mut h);
    h.get_by_label("Ann with Bob");
    h.get_by_label("1 photo ≥ 0.50");
    let matched: Vec<String> = h.state().ranking().matches(0.5).map(|r| h.state().library().unwrap().rel(r.hit.photo_id)).collect();
    assert_eq!(matched, vec!["group.jpg"]);
    h.get_by_label("with Bob ×").click();
    settle(&mut h);
    h.get_by_label("5 photos ≥ 0.50");
    assert!(h.query_by_label("with Bob ×").is_none());
    h.get_by_label("Without…").click();
    h.run_steps(3);
    h.get_by_label("Bob (5 photos)").click();
    settle(&mut h);
    h.get_by_label("Ann without Bob");
    h.get_by_label("4 photos ≥ 0.50");
    assert!(h.state().ranking().matches(0.5).all(|r| h.state().library().unwrap().rel(r.hit.photo_id) != "group.jpg"));
    // the threshold moved: who is left out is found again at the new one
    h.get_by_role_and_label(egui::Role::Slider, "threshold").set_value_accesskit(0.6);
    settle(&mut h);
    assert_eq!(h.state().ranking().left_out_at, Some(0.6));
    h.get_by_label("4 photos ≥ 0.60");
}
