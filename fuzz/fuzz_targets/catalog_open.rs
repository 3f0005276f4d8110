//! Any bytes as a catalog file: opening, migrating and reading it must fail with a typed error
//! or succeed, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("catalog.sqlite");
    std::fs::write(&path, data).expect("write");
    if let Ok(cat) = facefind::catalog::Catalog::open(&path) {
        if let Ok(t) = cat.face_table() {
            let _ = cat.face_infos(&t);
        }
        let _ = cat.photos();
        let _ = cat.people();
    }
});
