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
    assert_eq!(checked, 7);
    // turned 90° clockwise (6): Ann, left of centre in the stored pixels, is above centre as shown
    let r6 = read(&data().join("rotated6.jpg"), &std::fs::read(data().join("rotated6.jpg")).unwrap(), (32, 64));
    assert!(r6[0].rect[1] < 0.5 && r6[0].rect[3] < 0.5, "{:?}", r6[0]);
    assert!(read(Path::new("/nonexistent.jpg"), b"not a photo", (1, 1)).is_empty());
}
