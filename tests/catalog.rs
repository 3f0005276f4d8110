//! The catalog with the real binary: incremental updates, renames, bad files, schema
//! migration, a busy catalog, a read-only photo folder, and kill -9 in the middle of a run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn facefind() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_facefind"));
    c.env("FACEFIND_MODELS", common::models_dir()).args(["--device", "cpu"]);
    c
}

fn index(folder: &Path, catalog: &Path) -> (serde_json::Value, Output) {
    let out = facefind().arg("index").arg(folder).arg("--catalog").arg(catalog).arg("--json").output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (v, out)
}

/// The first `n` photos of album/face_recognition copied under `dir` and indexed: (photo
/// folder, catalog, the run's JSON summary).
fn indexed_album_photos(dir: &Path, n: usize) -> (PathBuf, PathBuf, serde_json::Value) {
    let photos = dir.join("photos");
    common::copy_photos("album/face_recognition", &photos, n);
    let cat = dir.join("c.sqlite");
    let (v, out) = index(&photos, &cat);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (photos, cat, v)
}

fn picture(path: &Path, seed: u8) {
    image::RgbImage::from_fn(480, 360, |x, y| image::Rgb([(x as u8).wrapping_mul(seed), (y as u8).wrapping_add(seed), seed]))
        .save(path)
        .unwrap();
}

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[test]
fn incremental_index_skips_unchanged_and_follows_renames_edits_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(photos.join("2024/trip")).unwrap();
    for i in 0..5u8 {
        picture(&photos.join(format!("p{i}.jpg")), i + 1);
    }
    picture(&photos.join("2024/trip/beach.png"), 9);
    let cat = dir.path().join("cat/catalog.sqlite");

    let (v, out) = index(&photos, &cat);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((n(&v, "photos"), n(&v, "processed"), n(&v, "unchanged")), (6, 6, 0));

    let (v, _) = index(&photos, &cat);
    assert_eq!((n(&v, "processed"), n(&v, "unchanged")), (0, 6));

    std::fs::rename(photos.join("p0.jpg"), photos.join("2024/moved.jpg")).unwrap();
    std::fs::remove_file(photos.join("p1.jpg")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    picture(&photos.join("p2.jpg"), 77); // edited in place
    picture(&photos.join("new.jpg"), 55);
    let (v, _) = index(&photos, &cat);
    assert_eq!(n(&v, "renamed"), 1, "{v}");
    assert_eq!(n(&v, "removed"), 1, "{v}");
    assert_eq!(n(&v, "processed"), 2, "{v}"); // p2 (edited) and new.jpg
    assert_eq!(n(&v, "unchanged"), 3, "{v}");

    let db = rusqlite::Connection::open(&cat).unwrap();
    let paths: Vec<String> = db
        .prepare("SELECT path FROM photos ORDER BY path")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|p| String::from_utf8(p.unwrap()).unwrap())
        .collect();
    assert_eq!(paths, ["2024/moved.jpg", "2024/trip/beach.png", "new.jpg", "p2.jpg", "p3.jpg", "p4.jpg"]);
}

#[test]
fn bad_files_are_recorded_with_reasons_and_never_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    picture(&photos.join("good.jpg"), 3);
    let good = std::fs::read(photos.join("good.jpg")).unwrap();
    std::fs::write(photos.join("truncated.jpg"), &good[..good.len() / 2]).unwrap();
    std::fs::write(photos.join("zero.jpg"), b"").unwrap();
    std::fs::write(photos.join("readme.jpg"), b"not a photo at all").unwrap();
    std::fs::write(photos.join("huge.png"), common::png_claiming(12000, 12000)).unwrap();
    // HEIC and AVIF headers with nothing after them: broken files, not unsupported ones
    std::fs::write(photos.join("iphone.heic"), b"\0\0\0\x18ftypheic\0\0\0\0mif1heic").unwrap();
    std::fs::write(photos.join("web.avif"), b"\0\0\0\x18ftypavif\0\0\0\0mif1avif").unwrap();
    // camera RAW is recognised by name and not decoded yet
    std::fs::write(photos.join("camera.NEF"), b"II*\0 not really a raw file").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(photos.join("does-not-exist.jpg"), photos.join("dangling.jpg")).unwrap();
    #[cfg_attr(unix, allow(unused_mut))]
    let mut name = b"caf\xe9-latin1.jpg".to_vec(); // not UTF-8
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        picture(&photos.join(std::ffi::OsStr::from_bytes(&name)), 8);
    }
    #[cfg(not(unix))]
    name.clear();

    let cat = dir.path().join("catalog.sqlite");
    let (v, out) = index(&photos, &cat);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let skipped = &v["skipped"];
    assert_eq!(skipped["corrupt"], 3, "{v}");
    assert_eq!(skipped["empty"], 1, "{v}");
    assert_eq!(skipped["not an image"], 1, "{v}");
    assert_eq!(skipped["too large"], 1, "{v}");
    assert_eq!(skipped["unsupported"], 1, "{v}");
    #[cfg(unix)]
    assert!(n(&v, "unreadable_folders") >= 1, "dangling link reported: {v}");
    let db = rusqlite::Connection::open(&cat).unwrap();
    let reason: String = db.query_row("SELECT reason FROM photos WHERE path = CAST('truncated.jpg' AS BLOB)", [], |r| r.get(0)).unwrap();
    assert!(reason.contains("truncated"), "{reason}");
    if !name.is_empty() {
        let ok: i64 = db.query_row("SELECT count(*) FROM photos WHERE path = ?1 AND status = 'no face'", [&name], |r| r.get(0)).unwrap();
        assert_eq!(ok, 1, "non-UTF-8 file name indexed");
    }
    // the bad files are remembered: a second run does not retry them
    let (v, _) = index(&photos, &cat);
    assert_eq!(n(&v, "processed"), 0, "{v}");
}

#[test]
fn nothing_readable_is_an_error_exit() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.jpg"), b"").unwrap();
    let (_, out) = index(dir.path(), &cache.path().join("c.sqlite"));
    assert_eq!(out.status.code(), Some(1));
    let (_, out) = index(&dir.path().join("no-such-folder"), &cache.path().join("c2.sqlite"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-folder"));
}

#[test]
fn the_photo_folder_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    picture(&photos.join("a.jpg"), 1);
    picture(&photos.join("b.png"), 2);
    let listing = |p: &Path| -> Vec<(PathBuf, u64, std::time::SystemTime)> {
        let mut v: Vec<_> = walk(p)
            .into_iter()
            .map(|f| {
                let m = std::fs::metadata(&f).unwrap();
                (f, m.len(), m.modified().unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let before = listing(&photos);
    // read-only folder (a no-op for root, but the listing check holds for everyone)
    let mode = std::fs::metadata(&photos).unwrap().permissions();
    let mut perm = mode.clone();
    perm.set_readonly(true);
    std::fs::set_permissions(&photos, perm).unwrap();
    let (v, out) = index(&photos, &dir.path().join("cache/c.sqlite"));
    std::fs::set_permissions(&photos, mode).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(n(&v, "processed"), 2);
    assert_eq!(listing(&photos), before);
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(walk(&e));
        } else {
            out.push(e);
        }
    }
    out
}

#[test]
fn old_schemas_are_migrated_and_other_databases_refused() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    picture(&photos.join("a.jpg"), 1);

    // schema 1: no face chips
    let v1 = dir.path().join("v1.sqlite");
    {
        let db = rusqlite::Connection::open(&v1).unwrap();
        db.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema_version', '1');
             CREATE TABLE photos (id INTEGER PRIMARY KEY, path BLOB NOT NULL UNIQUE, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
               fingerprint BLOB NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT, thumbnail BLOB);
             CREATE TABLE faces (id INTEGER PRIMARY KEY, photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE, idx INTEGER NOT NULL,
               x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL, score REAL NOT NULL, landmarks BLOB NOT NULL,
               embedding BLOB NOT NULL, UNIQUE(photo_id, idx));
             INSERT INTO photos VALUES (7, CAST('a.jpg' AS BLOB), 1, 1, x'01', 480, 360, 'faces', NULL, NULL);
             INSERT INTO photos VALUES (8, CAST('gone.jpg' AS BLOB), 1, 1, x'02', 480, 360, 'no face', NULL, NULL);",
        )
        .unwrap();
    }
    let (v, out) = index(&photos, &v1);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(n(&v, "processed"), 1);
    let db = rusqlite::Connection::open(&v1).unwrap();
    let ver: String = db.query_row("SELECT value FROM meta WHERE key='schema_version'", [], |r| r.get(0)).unwrap();
    assert_eq!(ver, facefind::catalog::SCHEMA_VERSION.to_string());
    // migrated in place, not rebuilt: a.jpg keeps its row (updated, same id); the row of a file
    // that is gone went the normal way
    let rows: Vec<(i64, Vec<u8>)> = db
        .prepare("SELECT id, path FROM photos ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, vec![(7, b"a.jpg".to_vec())]);

    // another program's database is refused and left as it was; nothing is created beside it
    let other = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO photos VALUES (1, 'x'); CREATE TABLE meta (k, v); INSERT INTO meta VALUES ('a', 'b');")
        .unwrap();
    let before = std::fs::read(&other).unwrap();
    let (_, out) = index(&photos, &other);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a facefind catalog"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&other).unwrap(), before);
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("other"))
        .collect();
    assert_eq!(beside, vec!["other.sqlite".to_string()]);

    // a newer schema is refused, not damaged
    let newer = dir.path().join("newer.sqlite");
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch(&format!(
            "PRAGMA application_id = {}; CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('schema_version', '99');",
            facefind::catalog::APPLICATION_ID
        ))
        .unwrap();
    let (_, out) = index(&photos, &newer);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("newer facefind"));
}

#[test]
fn a_second_concurrent_index_says_the_catalog_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    picture(&photos.join("a.jpg"), 1);
    let cat = dir.path().join("c.sqlite");
    // Hold the writer lock as a running `index` would.
    let mut held = facefind::catalog::Catalog::open(&cat).unwrap();
    held.lock_for_writing().unwrap();
    let (_, out) = index(&photos, &cat);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("busy"), "{stderr}");
    drop(held);
    let (v, out) = index(&photos, &cat);
    assert!(out.status.success());
    assert_eq!(n(&v, "processed"), 1);
}

/// (path, number of faces, first two embedding values of each face as hex) for every photo.
fn catalog_rows(cat: &Path) -> Vec<(Vec<u8>, i64, Option<String>)> {
    let db = rusqlite::Connection::open(cat).unwrap();
    let ok: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let mut st = db
        .prepare("SELECT p.path, count(f.id), group_concat(hex(substr(f.embedding, 1, 8)), ',') FROM photos p LEFT JOIN faces f ON f.photo_id = p.id GROUP BY p.id ORDER BY p.path")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

#[test]
#[ignore = "needs ../shared/faces"]
fn kill_9_during_indexing_then_index_again_equals_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    common::copy_photos("album/deepface", &photos, 48);
    let clean = dir.path().join("clean.sqlite");
    let (_, out) = index(&photos, &clean);
    assert!(out.status.success());

    let killed = dir.path().join("killed.sqlite");
    let rows = |cat: &Path| -> usize {
        rusqlite::Connection::open(cat)
            .and_then(|db| db.query_row("SELECT count(*) FROM photos", [], |r| r.get::<_, i64>(0)))
            .map_or(0, |n| n as usize)
    };
    // Kill twice, each time once some batches are committed and more are in flight.
    for wait_for in [8usize, 24] {
        let mut child = facefind().arg("index").arg(&photos).arg("--catalog").arg(&killed).arg("--quiet").spawn().unwrap();
        while rows(&killed) < wait_for && child.try_wait().unwrap().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
    }
    let partial = catalog_rows(&killed);
    assert!(partial.len() < 48, "the run was killed before finishing ({} rows)", partial.len());
    let (v, out) = index(&photos, &killed);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(n(&v, "unchanged") as usize, partial.len(), "committed photos are not redone");
    assert_eq!(catalog_rows(&killed), catalog_rows(&clean));
}

#[test]
fn a_photo_deleted_during_the_run_is_dropped_and_the_run_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for i in 0..4u8 {
        picture(&photos.join(format!("p{i}.jpg")), i + 1);
    }
    let p = common::cpu_pipeline();
    let mut cat = facefind::catalog::Catalog::open(&dir.path().join("c.sqlite")).unwrap();
    let victim = photos.join("p2.jpg");
    let sum = facefind::index::index_folder(&photos, &mut cat, &p, &std::sync::atomic::AtomicBool::new(false), &mut |ev| {
        // after the scan planned p2.jpg, before it is read
        if let facefind::index::Event::Planned { .. } = ev {
            std::fs::remove_file(&victim).unwrap();
        }
    })
    .unwrap();
    assert_eq!(sum.processed, 3);
    let paths: Vec<String> = cat.photos().unwrap().into_iter().map(|ph| String::from_utf8(ph.path).unwrap()).collect();
    assert_eq!(paths, ["p0.jpg", "p1.jpg", "p3.jpg"]);
}

/// Face id -> embedding, from the catalog database.
fn embeddings(cat: &Path) -> std::collections::BTreeMap<i64, Vec<f32>> {
    let db = rusqlite::Connection::open(cat).unwrap();
    let mut st = db.prepare("SELECT id, embedding FROM faces").unwrap();
    st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .unwrap()
        .map(|r| {
            let (id, b) = r.unwrap();
            (id, b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        })
        .collect()
}

/// Another embedder (the shipped weights with the last layer negated: every embedding is
/// the old one negated) is used from stored landmarks: nothing is detected again, face ids and
/// boxes stay, and going back restores the old embeddings.
#[test]
#[ignore = "needs ../shared/faces"]
fn a_new_embedder_reembeds_from_stored_faces_without_detecting_again() {
    let dir = tempfile::tempdir().unwrap();
    let (photos, cat, v) = indexed_album_photos(dir.path(), 6);
    let before = embeddings(&cat);
    assert!(before.len() >= 6, "faces: {}", before.len());

    let emb = common::negated_embedder(dir.path());

    let out = facefind().arg("--embedder").arg(&emb).arg("index").arg(&photos).arg("--catalog").arg(&cat).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let w: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(n(&w, "processed"), 0, "no photo is detected again: {w}");
    assert_eq!(w["rebuilt"], false);
    let with_faces = {
        let db = rusqlite::Connection::open(&cat).unwrap();
        db.query_row("SELECT count(DISTINCT photo_id) FROM faces", [], |r| r.get::<_, i64>(0)).unwrap() as u64
    };
    assert_eq!(n(&w, "reembedded"), with_faces);
    let after = embeddings(&cat);
    assert_eq!(after.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>(), "face ids kept");
    // Re-embedding aligns from the full-resolution photo, the first run partly from a reduced
    // JPEG decode: the crops differ by a little resampling, the embeddings by cosine < 1e-3.
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for (id, e) in &after {
        let c = cos(e, &before[id]);
        assert!(c < -0.999, "face {id}: new embedding is not the old one negated (cosine {c})");
    }
    // unchanged embedder: nothing to do; back to the shipped one: the old embeddings again
    let out = facefind().arg("--embedder").arg(&emb).arg("index").arg(&photos).arg("--catalog").arg(&cat).arg("--json").output().unwrap();
    let w: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((n(&w, "processed"), n(&w, "reembedded")), (0, 0));
    let (w, _) = index(&photos, &cat);
    assert_eq!(n(&w, "reembedded"), with_faces);
    for (id, e) in embeddings(&cat) {
        let c = cos(&e, &before[&id]);
        assert!(c > 0.999, "face {id}: cosine {c} with its first embedding");
    }
    let _ = v;
}

/// A NaN or infinite embedding (a broken embedder) is refused when written, and one already in
/// a catalog (an older build, a damaged file) is left out when the faces are read.
#[test]
fn non_finite_embeddings_are_refused_when_written_and_left_out_when_read() {
    use facefind::catalog::{Catalog, CatalogError, FaceRecord, PhotoRecord, Status};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("catalog.sqlite");
    let mut cat = Catalog::open(&path).unwrap();
    let unit = |k: usize| (0..192).map(|i| if i == k { 1.0 } else { 0.0 }).collect::<Vec<f32>>();
    let face =
        |embedding: Vec<f32>| FaceRecord { bbox: [10.0, 10.0, 50.0, 50.0], score: 0.99, landmarks: [0.0; 10], embedding, chip: Vec::new() };
    let photo = |name: &str, faces: Vec<FaceRecord>| PhotoRecord {
        path: name.as_bytes().to_vec(),
        size: 1,
        mtime_ns: 1,
        fingerprint: vec![1],
        width: 100,
        height: 100,
        status: Status::Faces,
        taken: None,
        regions: Vec::new(),
        sidecar_sig: 0,
        reason: None,
        thumbnail: Vec::new(),
        faces,
    };
    for bad in [f32::NAN, f32::INFINITY] {
        let mut e = unit(0);
        e[5] = bad;
        let err = cat.write_batch(&[photo("good.jpg", vec![face(unit(1))]), photo("bad.jpg", vec![face(unit(2)), face(e)])]).unwrap_err();
        assert!(matches!(err, CatalogError::Invalid(ref m) if m.contains("bad.jpg") && m.contains("non-finite")), "{err}");
        // nothing of the batch was written
        assert_eq!(cat.face_table().unwrap().len(), 0);
    }
    cat.write_batch(&[photo("a.jpg", vec![face(unit(1)), face(unit(2))])]).unwrap();
    let t = cat.face_table().unwrap();
    assert_eq!((t.len(), t.skipped_non_finite()), (2, 0));
    assert!(cat.write_embeddings(&[(t.face_id(0), vec![f32::NAN; 192])], &[], &[]).is_err());
    drop(cat);
    // damage one stored embedding behind the catalog's back
    let conn = rusqlite::Connection::open(&path).unwrap();
    let nan: Vec<u8> = std::iter::repeat_n(f32::NAN.to_le_bytes(), 192).flatten().collect();
    conn.execute("UPDATE faces SET embedding=?1 WHERE idx=0", [nan]).unwrap();
    drop(conn);
    let t = Catalog::open(&path).unwrap().face_table().unwrap();
    assert_eq!((t.len(), t.skipped_non_finite()), (1, 1));
    assert!(t.all_embeddings().unwrap().iter().all(|v| v.is_finite()));
}

/// A catalog written before small photos were detected at their own size (its detection
/// identity has no upscale policy) detects again only the photos under `detect_min_side`, not
/// the whole library; the next run has nothing to do.
#[test]
#[ignore = "needs ../shared/faces"]
fn the_upscale_policy_change_redetects_only_small_photos() {
    let dir = tempfile::tempdir().unwrap();
    // one photo of 424 px, five of 700 px and more
    let (photos, cat, v) = indexed_album_photos(dir.path(), 6);
    assert_eq!(n(&v, "processed"), 6);
    {
        let db = rusqlite::Connection::open(&cat).unwrap();
        let det: String = db.query_row("SELECT value FROM meta WHERE key='detection'", [], |r| r.get(0)).unwrap();
        let old = det.strip_suffix(" upscale=WhenNeeded").expect("the identity names the policy").to_string();
        db.execute("UPDATE meta SET value=?1 WHERE key='detection'", [old]).unwrap();
    }
    let (w, _) = index(&photos, &cat);
    assert_eq!((n(&w, "processed"), n(&w, "unchanged")), (1, 5), "{w}");
    assert_eq!(w["rebuilt"], false);
    let (w, _) = index(&photos, &cat);
    assert_eq!(n(&w, "processed"), 0, "{w}");
}

/// Two photos with the same content (one fingerprint) both deleted, and one copy back under a
/// new name: one row follows the rename, the other goes; no row is left for a file that is gone.
#[test]
fn copies_that_share_a_fingerprint_are_renamed_or_removed_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    picture(&photos.join("a.jpg"), 3);
    std::fs::copy(photos.join("a.jpg"), photos.join("b.jpg")).unwrap();
    picture(&photos.join("c.jpg"), 4);
    let cat = dir.path().join("c.sqlite");
    let (v, out) = index(&photos, &cat);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(n(&v, "processed"), 3);
    std::fs::rename(photos.join("a.jpg"), photos.join("moved.jpg")).unwrap();
    std::fs::remove_file(photos.join("b.jpg")).unwrap();
    let (v, out) = index(&photos, &cat);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((n(&v, "renamed"), n(&v, "removed"), n(&v, "processed")), (1, 1, 0), "{v}");
    let paths: Vec<Vec<u8>> = catalog_rows(&cat).into_iter().map(|r| r.0).collect();
    assert_eq!(paths, vec![b"c.jpg".to_vec(), b"moved.jpg".to_vec()]);
}
