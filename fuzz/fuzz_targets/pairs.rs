//! Any text as an LFW pairs file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = facefind::eval::pairs::parse_pairs(text);
    }
});
