//! Any bytes as a photo's metadata (or an XMP packet): reading named face regions gives regions
//! with a name and a finite box, or none, and never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for r in facefind::photo::regions::read(std::path::Path::new("/nonexistent/photo.jpg"), data, (640, 480)) {
        assert!(!r.name.trim().is_empty() && r.rect.iter().all(|v| v.is_finite()));
    }
});
