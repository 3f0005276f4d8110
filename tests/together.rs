//! Photos of several people together, and of one without another: `search --person A --person
//! B --without C` on composite photos of three known people (LFW photos side by side).

mod common;

use common::{facefind, json_of};
use std::collections::BTreeSet;
use std::path::Path;

fn search(folder: &Path, catalog: &Path, args: &[&str]) -> BTreeSet<String> {
    let v = json_of(facefind().arg("search").arg(folder).arg("--catalog").arg(catalog).arg("--json").args(args));
    let results = v["results"].as_array().unwrap();
    // every photo with a face is listed, the matches first
    assert_eq!(results.len(), 19, "{v}");
    let first_other = results.iter().position(|r| r["match"] == false).unwrap_or(results.len());
    assert!(results[first_other..].iter().all(|r| r["match"] == false), "{v}");
    results.iter().filter(|r| r["match"] == true).map(|r| r["path"].as_str().unwrap().to_string()).collect()
}

fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
#[ignore = "needs ../shared/faces"]
fn two_people_together_and_one_without_another() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    let catalog = tmp.path().join("c.sqlite");
    let (a, b, c) =
        (common::lfw_photos("Tony_Blair", 0, 10), common::lfw_photos("Serena_Williams", 0, 9), common::lfw_photos("Hugo_Chavez", 0, 8));
    let save = |name: &str, img: &image::RgbImage| img.save(folder.join(name)).unwrap();
    // alone: enough for each to become a person
    for i in 0..4 {
        save(&format!("a{i}.png"), &a[i]);
        save(&format!("b{i}.png"), &b[i]);
        save(&format!("c{i}.png"), &c[i]);
    }
    // together: A and B (three times), A and C (twice), B and C, and all three; each face a
    // photo of its own
    save("ab0.png", &common::side_by_side(&[&a[4], &b[4]]));
    save("ab1.png", &common::side_by_side(&[&b[5], &a[5]]));
    save("ab2.png", &common::side_by_side(&[&a[6], &b[6]]));
    save("ac0.png", &common::side_by_side(&[&a[7], &c[4]]));
    save("ac1.png", &common::side_by_side(&[&c[5], &a[8]]));
    save("bc0.png", &common::side_by_side(&[&b[7], &c[6]]));
    save("abc.png", &common::side_by_side(&[&a[9], &b[8], &c[7]]));
    // name the person of each alone photo
    let v = json_of(facefind().arg("people").arg(&folder).arg("--catalog").arg(&catalog).arg("--json"));
    for (name, photo) in [("Ann", "a0.png"), ("Bob", "b0.png"), ("Cy", "c0.png")] {
        let person = v["people"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["faces"].as_array().unwrap().iter().any(|f| f["path"] == photo))
            .unwrap_or_else(|| panic!("{photo} in no person: {v}"));
        let id = person["id"].to_string();
        let out = facefind().arg("people").arg(&folder).arg("--catalog").arg(&catalog).args(["--name", &id, name]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(search(&folder, &catalog, &["--person", "Ann", "--person", "Bob"]), names(&["ab0.png", "ab1.png", "ab2.png", "abc.png"]));
    assert_eq!(
        search(&folder, &catalog, &["--person", "Ann", "--person", "Bob", "--without", "Cy"]),
        names(&["ab0.png", "ab1.png", "ab2.png"])
    );
    assert_eq!(
        search(&folder, &catalog, &["--person", "Ann", "--without", "Bob"]),
        names(&["a0.png", "a1.png", "a2.png", "a3.png", "ac0.png", "ac1.png"])
    );
    assert_eq!(search(&folder, &catalog, &["--person", "Cy", "--person", "Bob", "--person", "Ann"]), names(&["abc.png"]));
    // the best photo of two: a different face for each, ranked by the weaker
    let v = json_of(
        facefind().arg("search").arg(&folder).arg("--catalog").arg(&catalog).args(["--json", "--person", "Ann", "--person", "Bob"]),
    );
    let first = &v["results"][0];
    assert_eq!(v["query"]["people"].as_array().unwrap().len(), 2, "{v}");
    let faces: BTreeSet<u64> = first["people"].as_array().unwrap().iter().map(|p| p["face"].as_u64().unwrap()).collect();
    assert_eq!(faces.len(), 2, "two different faces: {first}");
    assert!(
        first["score"].as_f64().unwrap()
            <= first["people"].as_array().unwrap().iter().map(|p| p["score"].as_f64().unwrap()).fold(1.0, f64::min) + 1e-6
    );
    // a person both wanted and left out is an error
    let out = facefind()
        .arg("search")
        .arg(&folder)
        .arg("--catalog")
        .arg(&catalog)
        .args(["--person", "Ann", "--without", "ann"])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("both wanted and left out"));
}
