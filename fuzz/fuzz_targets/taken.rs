//! Any bytes as a photo's metadata: reading when it was taken must give a date or none, never
//! panic, in time linear in the input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(t) = facefind::photo::taken::read(std::path::Path::new("/nonexistent/photo.jpg"), data) {
        assert!(facefind::photo::taken::Taken::parse(&t.to_string()).is_some_and(|u| u == t));
    }
});
