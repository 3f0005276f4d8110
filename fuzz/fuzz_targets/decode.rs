//! Any bytes through both photo decoders (the index's scaled one and the full one) and as a
//! camera RAW file (its embedded preview): an error with a reason is fine, a panic or an abort
//! is a bug.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = facefind::photo::decode_scaled(data, 640);
    let _ = facefind::photo::decode_rgb(data);
    let _ = facefind::photo::decode_raw_scaled(data, 640);
});
