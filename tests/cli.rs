//! The real `facefind` binary: bad input handling, output formats, the LFW protocol.

mod common;

use std::path::Path;
use std::process::Command;

use common::{facefind, json_of};

/// Truncated JPEG, zero-byte file, text named .jpg, PNG claiming 20000x20000 pixels.
fn write_bad_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut jpg = Vec::new();
    image::RgbImage::from_fn(200, 150, |x, y| image::Rgb([x as u8, y as u8, 90]))
        .write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg)
        .unwrap();
    let png = common::png_claiming(20000, 20000);
    let files: [(&str, &[u8]); 4] =
        [("truncated.jpg", &jpg[..jpg.len() / 2]), ("empty.jpg", b""), ("notes.jpg", b"shopping list: milk, eggs\n"), ("huge.png", &png)];
    files
        .iter()
        .map(|(name, data)| {
            let p = dir.join(name);
            std::fs::write(&p, data).unwrap();
            p
        })
        .collect()
}

#[test]
fn detect_reports_each_bad_file_on_one_line_and_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = write_bad_files(dir.path());
    let good = dir.path().join("good.png");
    image::RgbImage::from_pixel(320, 240, image::Rgb([120, 130, 140])).save(&good).unwrap();
    files.insert(2, good.clone());
    let out = facefind().arg("detect").args(&files).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "one line per bad file: {stderr}");
    for (name, reason) in
        [("truncated.jpg", "truncated"), ("empty.jpg", "empty file"), ("notes.jpg", "not an image"), ("huge.png", "too large")]
    {
        assert!(lines.iter().any(|l| l.contains(name) && l.contains(reason)), "{name}: {stderr}");
    }
    assert!(stdout.contains("good.png: 320x240, 0 faces"), "{stdout}");
}

#[test]
fn detect_json_lists_errors_and_faces() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_bad_files(dir.path());
    let out = facefind().args(["detect", "--json"]).arg(&files[1]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["error"].as_str().unwrap(), "empty file (0 bytes)");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn missing_models_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_facefind"))
            .args(["--device", "cpu", "--models"])
            .arg(dir.path())
            .args(["detect", "x.jpg"])
            .output()
            .unwrap()
    };
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("retinaface_mnet025.safetensors") && stderr.contains("missing"), "{stderr}");
    std::fs::write(dir.path().join("retinaface_mnet025.safetensors"), b"not weights").unwrap();
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not match") && stderr.contains("expected sha256 f481d012"), "{stderr}");
}

#[test]
#[ignore = "needs ../shared/faces"]
fn detect_json_on_a_group_photo() {
    let photo = common::faces_dir().join("album/dlib/2008_002079.jpg");
    let out = facefind().args(["detect", "--json"]).arg(&photo).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let faces = v[0]["faces"].as_array().unwrap();
    assert!(faces.len() >= 6, "{} faces", faces.len());
    for f in faces {
        assert_eq!(f["box"].as_array().unwrap().len(), 4);
        assert_eq!(f["landmarks"].as_array().unwrap().len(), 10);
        let s = f["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&s));
    }
    assert_eq!(v[0]["width"], 500);
}

/// The binary copied alone into an empty folder, run from there with no models folder anywhere
/// it could look: the networks built into it are used.
fn lone_binary(dir: &Path) -> Command {
    let exe = dir.join("facefind");
    std::fs::copy(env!("CARGO_BIN_EXE_facefind"), &exe).unwrap();
    let mut c = Command::new(&exe);
    c.current_dir(dir).env_remove("FACEFIND_MODELS").args(["--device", "cpu"]);
    c
}

#[test]
fn a_copied_binary_needs_no_models_folder() {
    let bin = tempfile::tempdir().unwrap();
    let photos = tempfile::tempdir().unwrap();
    let photo = photos.path().join("grey.png");
    image::RgbImage::from_pixel(320, 240, image::Rgb([120, 130, 140])).save(&photo).unwrap();
    let out = lone_binary(bin.path()).env("RUST_LOG", "info").arg("detect").arg(&photo).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("grey.png: 320x240, 0 faces"));
    // and the networks came from inside the binary, not from a folder it found
    assert!(stderr.contains("built into facefind"), "{stderr}");
    // a folder named with --models must hold the files (checked, never silently replaced)
    let out = lone_binary(bin.path()).args(["--models", "nowhere", "detect"]).arg(&photo).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("retinaface_mnet025.safetensors"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
#[ignore = "needs ../shared/faces"]
fn a_copied_binary_finds_faces_with_its_built_in_models() {
    let bin = tempfile::tempdir().unwrap();
    let photo = common::faces_dir().join("album/dlib/2008_002079.jpg");
    let out = lone_binary(bin.path()).args(["detect", "--json"]).arg(&photo).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v[0]["faces"].as_array().unwrap().len() >= 6);
}

/// The LFW development protocol: threshold chosen on pairsDevTrain, accuracy on pairsDevTest.
#[test]
#[ignore = "needs ../shared/faces; about 6 minutes in release"]
fn lfw_dev_accuracy() {
    let lfw = common::faces_dir().join("lfw-view1");
    let run = |pairs: &str, extra: &[&str]| -> serde_json::Value {
        let out = facefind()
            .args(["verify", "--json", "--pairs"])
            .arg(lfw.join(pairs))
            .arg("--images")
            .arg(lfw.join("images"))
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let train = run("pairsDevTrain.txt", &[]);
    let thr = train["threshold"].as_f64().unwrap();
    let test = run("pairsDevTest.txt", &["--threshold", &thr.to_string()]);
    let acc = test["accuracy_at_given_threshold"].as_f64().unwrap();
    eprintln!(
        "LFW DevTrain threshold {thr:.3}; DevTest accuracy {:.2}% (10-fold {:.2}%, AUC {:.4})",
        acc * 100.0,
        test["accuracy"].as_f64().unwrap() * 100.0,
        test["auc"].as_f64().unwrap()
    );
    assert!(acc >= 0.988, "DevTest accuracy {acc}");
    assert_eq!(test["pairs"].as_array().unwrap().len(), 1000);
}

/// A reader that goes away (`facefind people … | head`) ends the command quietly, not with a
/// panic from `println!`.
#[test]
fn a_closed_stdout_ends_the_command_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let mut child = facefind()
        .arg("people")
        .arg(&photos)
        .arg("--catalog")
        .arg(dir.path().join("c.sqlite"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before the first line
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// `search --query --face --top --json` on real photos, one of them a copy of the query photo
/// under a name that is not UTF-8: the query is the face asked for, results are the top N in
/// descending order, the copy comes first with that same face and its exact name bytes; a face
/// that does not exist is a clear error.
#[test]
#[ignore = "needs ../shared/faces"]
fn search_face_top_json_and_a_name_that_is_not_utf8() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    common::copy_photos("album/dlib", &photos, 5);
    // only the oddly named copy of the query photo stays
    std::fs::remove_file(photos.join("2008_002079.jpg")).ok();
    let group = common::faces_dir().join("album/dlib/2008_002079.jpg");
    #[cfg(unix)]
    let (copy, hex) = {
        use std::os::unix::ffi::OsStrExt;
        let name: &[u8] = b"gr\xfcppe.jpg"; // Latin-1, not UTF-8
        (photos.join(std::ffi::OsStr::from_bytes(name)), name.iter().map(|b| format!("{b:02x}")).collect::<String>())
    };
    #[cfg(not(unix))]
    let (copy, hex) = (photos.join("gruppe.jpg"), String::new());
    std::fs::copy(&group, &copy).unwrap();
    // a sidecar ExifTool wrote, beside the copy (photo.xmp)
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dates/sidecar-a.xmp"), copy.with_extension("xmp")).unwrap();
    let run = |face: &str| {
        facefind()
            .arg("search")
            .arg(&photos)
            .arg("--query")
            .arg(&group)
            .args(["--face", face, "--top", "3", "--json", "--catalog"])
            .arg(tmp.path().join("c.sqlite"))
            .output()
            .unwrap()
    };
    let out = run("2");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["query"]["face"], 2, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{v}");
    let scores: Vec<f64> = results.iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(scores[0] > 0.99 && results[0]["face"] == 2, "{v}");
    assert_eq!(results[0]["taken"], "2008-08-08T08:08:08", "{v}");
    assert!(results[1..].iter().all(|r| r["taken"].is_null()), "{v}");
    if !hex.is_empty() {
        assert_eq!(results[0]["path_hex"], hex.as_str(), "{v}");
        assert!(results[1..].iter().all(|r| r.get("path_hex").is_none()), "{v}");
    }
    let out = run("99");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("face 99 does not exist"), "{err}");
}

/// A catalog written directly: Ann (photos a0, a1), a second group of hers (b0: split from her),
/// Bob (c0, c1, far from both) and one face in no person (d0, near Ann).
fn questions_catalog(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use facefind::catalog::{Catalog, FaceRecord, PhotoRecord, Status};
    const DIM: usize = facefind::nets::mobilefacenet::EMBEDDING_DIM;
    let folder = dir.join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    let unit = |axis: usize, wobble: f32, k: usize| {
        let mut v = vec![0.0f32; DIM];
        v[axis] = 1.0;
        v[10 + k] = wobble;
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
    };
    let photos = [
        ("a0.jpg", unit(0, 0.3, 0)),
        ("a1.jpg", unit(0, 0.3, 1)),
        ("b0.jpg", unit(0, 0.5, 2)),
        ("c0.jpg", unit(1, 0.2, 3)),
        ("c1.jpg", unit(1, 0.2, 4)),
        ("d0.jpg", unit(0, 0.9, 5)),
    ];
    let records: Vec<PhotoRecord> = photos
        .iter()
        .enumerate()
        .map(|(i, (name, e))| {
            std::fs::write(folder.join(name), b"not read: the catalog is written directly").unwrap();
            PhotoRecord {
                path: name.as_bytes().to_vec(),
                size: 1,
                mtime_ns: 1,
                fingerprint: vec![i as u8],
                width: 320,
                height: 240,
                status: Status::Faces,
                taken: None,
                regions: Vec::new(),
                sidecar_sig: 0,
                reason: None,
                thumbnail: Vec::new(),
                faces: vec![FaceRecord {
                    bbox: [10.0, 10.0, 80.0, 80.0],
                    score: 0.99,
                    landmarks: [0.0; 10],
                    embedding: e.clone(),
                    chip: Vec::new(),
                }],
            }
        })
        .collect();
    let catalog = dir.join("c.sqlite");
    let mut c = Catalog::open(&catalog).unwrap();
    c.write_batch(&records).unwrap();
    let t = c.face_table().unwrap();
    let face = |name: &str| {
        (0..t.len())
            .find(|&r| c.photos().unwrap().iter().any(|p| p.id == t.photo_id(r) && p.path == name.as_bytes()))
            .map(|r| t.face_id(r))
            .unwrap()
    };
    let (a0, a1, b0, c0, c1) = (face("a0.jpg"), face("a1.jpg"), face("b0.jpg"), face("c0.jpg"), face("c1.jpg"));
    c.assign_faces(&[a0, a1], None, Some("Ann")).unwrap();
    c.assign_faces(&[b0], None, None).unwrap();
    c.assign_faces(&[c0, c1], None, Some("Bob")).unwrap();
    (folder, catalog)
}

fn suggest(folder: &Path, catalog: &Path) -> Vec<serde_json::Value> {
    let v = json_of(facefind().arg("people").arg(folder).arg("--catalog").arg(catalog).args(["--suggest", "--json"]));
    v["suggestions"].as_array().unwrap().clone()
}

fn people_edit(folder: &Path, catalog: &Path, args: &[&str]) {
    let out = facefind().arg("people").arg(folder).arg("--catalog").arg(catalog).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn people_questions_and_answers_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, catalog) = questions_catalog(dir.path());
    let cat = facefind::catalog::Catalog::open(&catalog).unwrap();
    let people = cat.people().unwrap();
    let id = |name: Option<&str>| people.iter().find(|p| p.name.as_deref() == name).unwrap().id;
    let (ann, split) = (id(Some("Ann")), id(None));
    drop(cat);
    let q = suggest(&folder, &catalog);
    // the split is one merge question, first; the face in no person is a face question; Bob is far
    assert_eq!(q[0]["kind"], "merge", "{q:?}");
    assert_eq!((q[0]["person"].as_i64(), q[0]["into"].as_i64()), (Some(split), Some(ann)), "{q:?}");
    assert!(q.iter().any(|x| x["kind"] == "face" && x["path"] == "d0.jpg" && x["face"] == 0 && x["person"].as_i64() == Some(ann)), "{q:?}");
    assert_eq!(q.iter().filter(|x| x["kind"] == "merge").count(), 1, "{q:?}");
    // "No": never asked again
    people_edit(&folder, &catalog, &["--not-same", &split.to_string(), "Ann"]);
    let q = suggest(&folder, &catalog);
    assert!(q.iter().all(|x| x["kind"] != "merge"), "{q:?}");
    // the face: "not Ann" is remembered; then put there by hand all the same
    people_edit(&folder, &catalog, &["--reject", "d0.jpg", "0", "Ann"]);
    assert!(suggest(&folder, &catalog).is_empty());
    people_edit(&folder, &catalog, &["--assign", "d0.jpg", "0", "Ann"]);
    let cat = facefind::catalog::Catalog::open(&catalog).unwrap();
    assert_eq!(cat.people().unwrap().iter().find(|p| p.id == ann).unwrap().faces, 3);
    // one edit at a time: two in one call are refused before anything changes
    let out = facefind()
        .arg("people")
        .arg(&folder)
        .arg("--catalog")
        .arg(&catalog)
        .args(["--merge", "Bob", "Ann", "--not-same", "Bob", "Ann"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(facefind::catalog::Catalog::open(&catalog).unwrap().people().unwrap().len(), 3);
    // bad answers are clear errors
    let out =
        facefind().arg("people").arg(&folder).arg("--catalog").arg(&catalog).args(["--assign", "nope.jpg", "0", "Ann"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no photo nope.jpg"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `index` stores when each photo was taken as the photo (or its sidecar) records it, the same
/// as ExifTool reads it (tests/data/dates); a catalog from before dates were kept gets them on
/// its next index run, read once from each unchanged photo.
#[test]
fn index_keeps_capture_dates_and_an_older_catalog_gets_them() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dates");
    let expected: std::collections::BTreeMap<String, Option<String>> =
        serde_json::from_str(&std::fs::read_to_string(data.join("expected.json")).unwrap()).unwrap();
    let mut want = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&data).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(t) = expected.get(&name) {
            want.insert(name.clone(), t.clone());
        }
        if expected.contains_key(&name) || name.ends_with(".xmp") {
            std::fs::copy(&p, photos.join(&name)).unwrap();
        }
    }
    assert!(want.len() >= 14 && want.values().any(Option::is_none), "{want:?}");
    let catalog = tmp.path().join("c.sqlite");
    let index = || {
        let out = facefind().arg("index").arg(&photos).arg("--catalog").arg(&catalog).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let stored = || {
        let cat = facefind::catalog::Catalog::open(&catalog).unwrap();
        let dates = cat.dates().unwrap();
        let got: std::collections::BTreeMap<String, Option<String>> =
            cat.photos().unwrap().into_iter().map(|p| (String::from_utf8_lossy(&p.path).into_owned(), dates.get(&p.id).cloned())).collect();
        got
    };
    index();
    assert_eq!(stored(), want);
    // the catalog as the schema before dates left it
    {
        let c = rusqlite::Connection::open(&catalog).unwrap();
        c.execute_batch("DROP TABLE taken; DROP TABLE dates_unread; UPDATE meta SET value = '8' WHERE key = 'schema_version';").unwrap();
    }
    assert!(stored().values().all(Option::is_none), "migrated: no dates yet");
    index();
    assert_eq!(stored(), want);
    let cat = facefind::catalog::Catalog::open(&catalog).unwrap();
    assert!(cat.dates_unread().unwrap().is_empty());
}

/// Real phone photos record when they were taken: `people --json` and `search --json` say so
/// for each face (what ExifTool reads from these files: only img1.jpg records a date, with its
/// offset); `search --sort date`, `--from`, `--to`.
#[test]
#[ignore = "needs ../shared/faces"]
fn people_and_search_say_when_each_photo_was_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    common::copy_photos("album/deepface", &photos, 6);
    let v = json_of(facefind().arg("people").arg(&photos).arg("--json").arg("--catalog").arg(tmp.path().join("c.sqlite")));
    let faces: Vec<&serde_json::Value> = v["people"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["faces"].as_array().unwrap())
        .chain(v["unassigned"].as_array().unwrap())
        .collect();
    assert!(faces.len() >= 6, "{v}");
    for f in faces {
        let want = if f["path"] == "img1.jpg" { serde_json::json!("2019-07-20T17:45:22-07:00") } else { serde_json::Value::Null };
        assert_eq!(f["taken"], want, "{f}");
    }
    // search by date: the dated photo first; a range keeps only what it holds
    let search = |args: &[&str]| -> Vec<serde_json::Value> {
        let v = json_of(
            facefind()
                .arg("search")
                .arg(&photos)
                .arg("--query")
                .arg(photos.join("img10.jpg"))
                .args(["--json", "--catalog"])
                .arg(tmp.path().join("c.sqlite"))
                .args(args),
        );
        v["results"].as_array().unwrap().clone()
    };
    let by_score = search(&[]);
    let by_date = search(&["--sort", "date"]);
    assert_eq!(by_date.len(), by_score.len());
    assert_eq!(by_date[0]["path"], "img1.jpg", "{by_date:?}");
    assert!(by_date[1..].iter().all(|r| r["taken"].is_null()));
    let in_2019 = search(&["--from", "2019-07", "--to", "2019"]);
    assert!(in_2019.len() == 1 && in_2019[0]["path"] == "img1.jpg", "{in_2019:?}");
    assert!(search(&["--from", "2019-07-21"]).is_empty());
    let out = facefind().arg("search").arg(&photos).arg("--query").arg(photos.join("img1.jpg")).args(["--from", "July"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("\"July\" is not a date"));
}
