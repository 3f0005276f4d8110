//! Named face regions other tools wrote, read by facefind as ExifTool reads them
//! (`tests/data/regions`, made by its `make.sh`), and applied to people when a folder is indexed.

mod common;

use facefind::photo::regions::{oriented, read, Scheme};
use std::path::{Path, PathBuf};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/regions")
}

/// Every fixture: the face regions facefind reads are ExifTool's, in the frame the photo is
/// shown in (MWG centre and size, or Microsoft's corner and size, turned by the orientation).
#[test]
fn regions_read_as_exiftool_reads_them() {
    let expected: serde_json::Value = serde_json::from_slice(&std::fs::read(data().join("expected.json")).unwrap()).unwrap();
    let mut checked = 0;
    for (file, e) in expected.as_object().unwrap() {
        if !file.ends_with(".jpg") {
            continue;
        }
        let path = data().join(file);
        let o = e["orientation"].as_u64().unwrap() as u16;
        let (w, h) = (e["width"].as_u64().unwrap() as u32, e["height"].as_u64().unwrap() as u32);
        let shown = if o >= 5 { (h, w) } else { (w, h) };
        let got = read(&path, &std::fs::read(&path).unwrap(), shown);
        let want: Vec<(String, [f32; 4], Scheme)> = e["regions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["type"].as_str().is_none_or(|t| t == "Face"))
            .map(|r| {
                let v = |k: &str, i: usize| r[k][i].as_f64().unwrap() as f32;
                let (rect, scheme) = if r.get("mwg").is_some() {
                    (
                        [
                            v("mwg", 0) - v("mwg", 2) / 2.0,
                            v("mwg", 1) - v("mwg", 3) / 2.0,
                            v("mwg", 0) + v("mwg", 2) / 2.0,
                            v("mwg", 1) + v("mwg", 3) / 2.0,
                        ],
                        Scheme::Mwg,
                    )
                } else {
                    ([v("mp", 0), v("mp", 1), v("mp", 0) + v("mp", 2), v("mp", 1) + v("mp", 3)], Scheme::Microsoft)
                };
                (r["name"].as_str().unwrap().to_string(), oriented(rect, o), scheme)
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{file}: {got:?}");
        for (g, (name, rect, scheme)) in got.iter().zip(&want) {
            assert_eq!((&g.name, g.scheme), (name, *scheme), "{file}");
            assert!(g.rect.iter().zip(rect).all(|(a, b)| (a - b).abs() < 1e-5), "{file}: {g:?} vs {rect:?}");
        }
        checked += 1;
    }
    assert_eq!(checked, 8);
    // turned 90° clockwise (6): Ann, left of centre in the stored pixels, is above centre as shown
    let r6 = read(&data().join("rotated6.jpg"), &std::fs::read(data().join("rotated6.jpg")).unwrap(), (32, 64));
    assert!(r6[0].rect[1] < 0.5 && r6[0].rect[3] < 0.5, "{:?}", r6[0]);
    assert!(read(Path::new("/nonexistent.jpg"), b"not a photo", (1, 1)).is_empty());
}

/// Names from ExifTool-written sidecars (`composite.xmp`: Ann left, Bob right, Cy where no face
/// is) on photos of two people side by side, in both sidecar namings: the faces join Ann and Bob
/// as imported, grouping adds their other photos, Cy is listed without a face; a sidecar changed
/// afterwards (names swapped) moves its faces.
#[test]
#[ignore = "needs ../shared/faces"]
fn names_from_sidecars_become_people_and_a_changed_sidecar_moves_them() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    let catalog = tmp.path().join("c.sqlite");
    let (a, b) = (common::lfw_photos("Tony_Blair", 0, 7), common::lfw_photos("Serena_Williams", 0, 7));
    let sidecar = std::fs::read_to_string(data().join("composite.xmp")).unwrap();
    for i in 0..3 {
        let both = common::side_by_side(&[&a[i], &b[i]]);
        let name = format!("ab{i}.png");
        both.save(folder.join(&name)).unwrap();
        // photo.xmp and photo.png.xmp
        let side = if i == 1 { folder.join(format!("{name}.xmp")) } else { folder.join(format!("ab{i}.xmp")) };
        std::fs::write(side, &sidecar).unwrap();
    }
    for i in 3..7 {
        a[i].save(folder.join(format!("a{i}.png"))).unwrap();
        b[i].save(folder.join(format!("b{i}.png"))).unwrap();
    }
    let people = |folder: &Path| common::json_of(common::facefind().arg("people").arg(folder).arg("--catalog").arg(&catalog).arg("--json"));
    let v = people(&folder);
    let person = |v: &serde_json::Value, name: &str| -> Vec<(String, u64, String)> {
        let p = v["people"].as_array().unwrap().iter().filter(|p| p["name"] == name).collect::<Vec<_>>();
        assert_eq!(p.len(), 1, "one {name}: {v}");
        p[0]["faces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["path"].as_str().unwrap().to_string(), f["face"].as_u64().unwrap(), f["source"].as_str().unwrap().to_string()))
            .collect()
    };
    let (ann, bob) = (person(&v, "Ann"), person(&v, "Bob"));
    let imported = |faces: &[(String, u64, String)]| faces.iter().filter(|f| f.2 == "imported").map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(imported(&ann), ["ab0.png", "ab1.png", "ab2.png"], "{v}");
    assert_eq!(imported(&bob), ["ab0.png", "ab1.png", "ab2.png"], "{v}");
    // grouping put their photos alone with them
    let alone = |faces: &[(String, u64, String)], p: char| faces.iter().filter(|f| f.0.starts_with(p) && !f.0.starts_with("ab")).count();
    assert_eq!((alone(&ann, 'a'), alone(&ann, 'b'), alone(&bob, 'b'), alone(&bob, 'a')), (4, 0, 4, 0), "{v}");
    let without: Vec<&str> = v["regions_without_a_face"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(without, ["Cy", "Cy", "Cy"], "{v}");
    assert!(v["regions_skipped"].as_array().unwrap().is_empty(), "{v}");

    // the sidecar of ab0 now names them the other way round
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(folder.join("ab0.xmp"), sidecar.replace("Ann", "Tmp").replace("Bob", "Ann").replace("Tmp", "Bob")).unwrap();
    let v = people(&folder);
    let (ann, bob) = (person(&v, "Ann"), person(&v, "Bob"));
    let face_in = |faces: &[(String, u64, String)], photo: &str| faces.iter().find(|f| f.0 == photo).map(|f| f.1);
    let (ann0, bob0) = (face_in(&ann, "ab0.png").unwrap(), face_in(&bob, "ab0.png").unwrap());
    let (ann1, bob1) = (face_in(&ann, "ab1.png").unwrap(), face_in(&bob, "ab1.png").unwrap());
    assert_eq!((ann0, bob0), (bob1, ann1), "ab0's faces swapped people: {v}");

    // export: one sidecar per photo with a named face, mirroring the folder; imported into an
    // empty catalog of a copy of the photos, the same people come back
    let out = tmp.path().join("xmp");
    let e = common::json_of(
        common::facefind().arg("people").arg(&folder).arg("--catalog").arg(&catalog).arg("--export-xmp").arg(&out).arg("--json"),
    );
    let named: usize =
        v["people"].as_array().unwrap().iter().filter(|p| !p["name"].is_null()).map(|p| p["faces"].as_array().unwrap().len()).sum();
    assert_eq!((e["written"].as_u64(), e["faces"].as_u64()), (Some(11), Some(named as u64)), "{e}");
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for f in std::fs::read_dir(&folder).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|x| x == "png") {
            std::fs::copy(&f, copy.join(f.file_name().unwrap())).unwrap();
            let side = out.join(format!("{}.xmp", f.file_name().unwrap().to_string_lossy()));
            assert!(side.is_file(), "{side:?}");
            std::fs::copy(&side, copy.join(side.file_name().unwrap())).unwrap();
        }
    }
    let again =
        common::json_of(common::facefind().arg("people").arg(&copy).arg("--catalog").arg(tmp.path().join("again.sqlite")).arg("--json"));
    let set = |v: &serde_json::Value, name: &str| -> std::collections::BTreeSet<(String, u64)> {
        person(v, name).into_iter().map(|f| (f.0, f.1)).collect()
    };
    for name in ["Ann", "Bob"] {
        assert_eq!(set(&again, name), set(&v, name), "{name}: {again}");
        assert!(person(&again, name).iter().all(|f| f.2 == "imported"));
    }
    // beside the photos: another program's sidecars are left alone
    let before = std::fs::read(folder.join("ab1.png.xmp")).unwrap();
    let b = common::json_of(common::facefind().arg("people").arg(&folder).arg("--catalog").arg(&catalog).args([
        "--export-xmp",
        "--beside",
        "--json",
    ]));
    assert_eq!(b["written"].as_u64(), Some(8), "{b}");
    let skipped: Vec<&str> = b["skipped"].as_array().unwrap().iter().map(|s| s["path"].as_str().unwrap()).collect();
    assert_eq!(skipped, ["ab0.png", "ab1.png", "ab2.png"], "{b}");
    assert_eq!(std::fs::read(folder.join("ab1.png.xmp")).unwrap(), before);
    assert!(folder.join("a3.png.xmp").is_file() && !folder.join("ab0.png.xmp").exists());
    // a folder inside the photo folder is refused
    let inside = common::facefind()
        .arg("people")
        .arg(&folder)
        .arg("--catalog")
        .arg(&catalog)
        .arg("--export-xmp")
        .arg(folder.join("x"))
        .output()
        .unwrap();
    assert!(!inside.status.success() && String::from_utf8_lossy(&inside.stderr).contains("inside the photo folder"));
}

/// The APP1 segments (EXIF, XMP) of a JPEG.
fn app1_segments(jpeg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF && jpeg[i + 1] != 0xDA {
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if jpeg[i + 1] == 0xE1 {
            out.extend_from_slice(&jpeg[i..i + 2 + len]);
        }
        i += 2 + len;
    }
    out
}

/// A photo stored turned (EXIF orientation 6) with MWG regions embedded for its stored pixels,
/// as ExifTool wrote them (`turned-composite.jpg`'s segments on the pixels of two LFW photos side
/// by side, turned a quarter counter-clockwise): each name lands on its face as the photo is
/// shown.
#[test]
#[ignore = "needs ../shared/faces"]
fn regions_of_a_turned_photo_land_on_their_faces() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    let (a, b) = (common::lfw_photos("Tony_Blair", 0, 1), common::lfw_photos("Serena_Williams", 0, 1));
    let shown = common::side_by_side(&[&a[0], &b[0]]);
    let stored = image::imageops::rotate270(&shown);
    let mut encoded = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 92).encode_image(&stored).unwrap();
    let fixture = std::fs::read(data().join("turned-composite.jpg")).unwrap();
    let mut jpeg = encoded[..2].to_vec();
    jpeg.extend(app1_segments(&fixture));
    jpeg.extend_from_slice(&encoded[2..]);
    std::fs::write(folder.join("turned.jpg"), &jpeg).unwrap();
    let v = common::json_of(common::facefind().arg("people").arg(&folder).arg("--catalog").arg(tmp.path().join("c.sqlite")).arg("--json"));
    let face = |name: &str| -> Vec<f64> {
        let p = v["people"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name}: {v}"));
        let f = &p["faces"][0];
        assert_eq!(f["source"], "imported", "{v}");
        f["box"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    // shown 500 wide: Ann (Tony Blair) on the left half, Bob (Serena Williams) on the right
    let (ann, bob) = (face("Ann"), face("Bob"));
    assert!(ann[0] + ann[2] / 2.0 < 250.0 && bob[0] + bob[2] / 2.0 > 250.0, "{v}");
    assert!(v["regions_skipped"].as_array().unwrap().is_empty() && v["regions_without_a_face"].as_array().unwrap().is_empty(), "{v}");
}
