//! Any text as an arcface-pytorch list file (`path label` lines).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = facefind::train::data::parse_list(text, std::path::Path::new("/data/list.txt"));
    }
});
