//! Camera RAW files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, PEF, SRW): faces come from the
//! full-size JPEG preview every camera embeds (what the camera's own screen shows), not from
//! demosaicing the sensor data: it is the photo as the photographer saw it, and reading it is
//! as fast as a JPEG. A RAW with no JPEG preview (rare outside stripped test files) is refused as
//! unsupported, with that reason: the pure-Rust sensor decoders (`rawloader`, `rawler`,
//! `quickraw`) are all LGPL-2.1, which a statically linked MIT/Apache binary cannot take on.
//!
//! TIFF-based files (DNG, CR2, NEF, ARW, ORF, RW2, PEF, SRW) are walked IFD by IFD (with their
//! SubIFDs and the EXIF IFD) for JPEG previews (`JPEGInterchangeFormat`, JPEG-compressed strips,
//! Panasonic's `JpgFromRaw`); other containers (CR3, RAF) are searched for embedded JPEG streams.
//! The largest baseline or progressive JPEG wins (lossless JPEG is sensor data, not a preview);
//! the orientation is the RAW's own (IFD0), unless the preview carries one.

/// File extensions of camera RAW formats.
pub const RAW_EXT: &[&str] =
    &["dng", "cr2", "cr3", "nef", "nrw", "arw", "srf", "sr2", "orf", "rw2", "raf", "pef", "srw", "3fr", "iiq", "erf", "kdc", "mrw", "x3f"];

/// True when `ext` (any case) is a camera RAW extension.
pub fn is_raw_ext(ext: &str) -> bool {
    RAW_EXT.iter().any(|e| e.eq_ignore_ascii_case(ext))
}

use super::tiff::Tiff;

/// The largest embedded JPEG preview of a RAW file, and the RAW's EXIF orientation (1..=8) when
/// it has one.
pub fn preview(data: &[u8]) -> Option<(&[u8], Option<u8>)> {
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    let mut orientation = None;
    if let Some(t) = Tiff::new(data) {
        let mut seen = std::collections::HashSet::new();
        let mut todo = vec![(t.u32_at(4)? as usize, true)];
        while let Some((ifd, first)) = todo.pop() {
            if ifd == 0 || ifd >= data.len() || !seen.insert(ifd) || seen.len() > 64 {
                continue;
            }
            let Some(entries) = t.entries(ifd) else { continue };
            let get = |tag: u16| entries.iter().find(|e| e.tag == tag);
            if first {
                orientation = get(0x0112).and_then(|e| t.value(e, 0)).map(|v| v as u8).filter(|v| (1..=8).contains(v));
            }
            // JPEGInterchangeFormat + length
            if let (Some(o), Some(l)) = (get(0x0201).and_then(|e| t.value(e, 0)), get(0x0202).and_then(|e| t.value(e, 0))) {
                candidates.push((o as usize, l as usize));
            }
            // one JPEG-compressed strip (old-style 6 or new-style 7)
            if matches!(get(0x0103).and_then(|e| t.value(e, 0)), Some(6 | 7)) {
                if let (Some(o), Some(l)) = (get(0x0111).and_then(|e| t.value(e, 0)), get(0x0117).and_then(|e| t.value(e, 0))) {
                    candidates.push((o as usize, l as usize));
                }
            }
            // Panasonic RW2: JpgFromRaw, the JPEG inline as the tag's bytes
            if let Some(e) = get(0x002E) {
                candidates.push((e.offset_or_value as usize, e.count as usize));
            }
            for tag in [0x014A, 0x8769] {
                if let Some(e) = get(tag) {
                    for i in 0..e.count.min(16) {
                        if let Some(v) = t.value(e, i as usize) {
                            todo.push((v as usize, false));
                        }
                    }
                }
            }
            if first {
                if let Some(next) = t.next_ifd(ifd) {
                    todo.push((next, true));
                }
            }
        }
    }
    if candidates.is_empty() {
        // CR3, RAF and the rest: every JPEG stream in the file
        let mut i = 0;
        while let Some(k) = data[i..].windows(3).position(|w| w == [0xFF, 0xD8, 0xFF]) {
            candidates.push((i + k, data.len() - i - k));
            i += k + 3;
            if candidates.len() > 256 {
                break;
            }
        }
    }
    candidates
        .into_iter()
        .filter_map(|(o, l)| {
            let jpeg = data.get(o..o.checked_add(l)?.min(data.len()))?;
            let (w, h) = baseline_jpeg_size(jpeg)?;
            Some((w as u64 * h as u64, jpeg))
        })
        .max_by_key(|c| c.0)
        .map(|(_, jpeg)| (jpeg, orientation))
}

/// Width and height of a baseline, extended or progressive JPEG (SOF0/1/2) — not lossless ones.
fn baseline_jpeg_size(j: &[u8]) -> Option<(u32, u32)> {
    let f = super::decode::jpeg_frame(j)?;
    (matches!(f.marker, 0xC0..=0xC2) && f.width > 0 && f.height > 0).then_some((f.width, f.height))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32, shade: u8) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, _| image::Rgb([shade, (x % 256) as u8, 90]));
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).unwrap();
        out
    }

    /// A little-endian TIFF the way cameras lay out a CR2/NEF/DNG: IFD0 (orientation 6, a small
    /// JPEG thumbnail by JPEGInterchangeFormat, a SubIFD), the SubIFD holding the full-size
    /// preview as one JPEG strip, and a bigger lossless-JPEG "sensor" strip that must be ignored.
    fn tiff_raw() -> (Vec<u8>, Vec<u8>) {
        let thumb = jpeg(64, 48, 10);
        let full = jpeg(320, 240, 200);
        // lossless JPEG header (SOF3) claiming 4000x3000: sensor data, not a preview
        let sensor: Vec<u8> = [0xFF, 0xD8, 0xFF, 0xC3, 0, 11, 8, 0x0B, 0xB8, 0x0F, 0xA0, 1, 1, 0x11, 0]
            .into_iter()
            .chain(std::iter::repeat_n(0u8, 64))
            .collect();
        let mut d = b"II*\0".to_vec();
        d.extend_from_slice(&8u32.to_le_bytes());
        let entry = |d: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32| {
            d.extend_from_slice(&tag.to_le_bytes());
            d.extend_from_slice(&kind.to_le_bytes());
            d.extend_from_slice(&count.to_le_bytes());
            d.extend_from_slice(&value.to_le_bytes());
        };
        // IFD0 at 8 (4 entries), the preview's SubIFD and the sensor's SubIFD (3 entries
        // each), then the data; the SubIFDs entry (count 2) is pointed at its offset array last
        let ifd0 = 8;
        let sub = ifd0 + 2 + 4 * 12 + 4;
        let sensor_ifd = sub + 2 + 3 * 12 + 4;
        let data = sensor_ifd + 2 + 3 * 12 + 4;
        let (thumb_at, full_at) = (data, data + thumb.len());
        let sensor_at = full_at + full.len();
        d.extend_from_slice(&4u16.to_le_bytes());
        entry(&mut d, 0x0112, 3, 1, 6);
        entry(&mut d, 0x014A, 4, 2, 0); // two SubIFDs: the offset of their offset array, set below
        entry(&mut d, 0x0201, 4, 1, thumb_at as u32);
        entry(&mut d, 0x0202, 4, 1, thumb.len() as u32);
        d.extend_from_slice(&0u32.to_le_bytes());
        d.extend_from_slice(&3u16.to_le_bytes());
        entry(&mut d, 0x0103, 3, 1, 7);
        entry(&mut d, 0x0111, 4, 1, full_at as u32);
        entry(&mut d, 0x0117, 4, 1, full.len() as u32);
        d.extend_from_slice(&0u32.to_le_bytes());
        d.extend_from_slice(&3u16.to_le_bytes());
        entry(&mut d, 0x0103, 3, 1, 7);
        entry(&mut d, 0x0111, 4, 1, sensor_at as u32);
        entry(&mut d, 0x0117, 4, 1, sensor.len() as u32);
        d.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(d.len(), data);
        d.extend_from_slice(&thumb);
        d.extend_from_slice(&full);
        d.extend_from_slice(&sensor);
        let array_at = d.len() as u32;
        d.extend_from_slice(&(sub as u32).to_le_bytes());
        d.extend_from_slice(&(sensor_ifd as u32).to_le_bytes());
        let sub_entry = ifd0 + 2 + 12;
        d[sub_entry + 8..sub_entry + 12].copy_from_slice(&array_at.to_le_bytes());
        (d, full)
    }

    #[test]
    fn the_largest_baseline_preview_of_a_tiff_raw_and_its_orientation() {
        let (raw, full) = tiff_raw();
        let (jpeg, orientation) = preview(&raw).unwrap();
        assert_eq!(jpeg, &full[..]);
        assert_eq!(orientation, Some(6));
        // decoded: the 320x240 preview turned by the RAW's orientation 6
        let d = crate::photo::decode_raw_scaled(&raw, 4096).unwrap();
        assert_eq!((d.rgb.dimensions(), d.full_width, d.full_height), ((240, 320), 240, 320));
        let e = crate::photo::decode_raw_scaled(b"II*\0 not really a raw file", 4096).unwrap_err();
        assert!(matches!(e, crate::photo::PhotoError::Unsupported(_)), "{e}");
        // big-endian works the same way (a minimal one: IFD0 with one JPEG)
        let j = super::tests::jpeg(100, 80, 50);
        let mut be = b"MM\0*".to_vec();
        be.extend_from_slice(&8u32.to_be_bytes());
        be.extend_from_slice(&2u16.to_be_bytes());
        for (tag, v) in [(0x0201u16, 8 + 2 + 24 + 4), (0x0202, j.len() as u32)] {
            be.extend_from_slice(&tag.to_be_bytes());
            be.extend_from_slice(&4u16.to_be_bytes());
            be.extend_from_slice(&1u32.to_be_bytes());
            be.extend_from_slice(&v.to_be_bytes());
        }
        be.extend_from_slice(&0u32.to_be_bytes());
        be.extend_from_slice(&j);
        assert_eq!(preview(&be).map(|p| p.0.len()), Some(j.len()));
    }

    /// Real camera files (tests/data/raw, from exiv2's and ExifTool's test data): each decodes
    /// to the largest JPEG ExifTool extracts from it, pixel for pixel as Pillow decodes that
    /// JPEG (make.sh), or, with no usable preview, is a clear "unsupported" error.
    #[test]
    fn real_camera_files_decode_to_their_largest_preview() {
        use crate::photo::{load_rgb, PhotoError};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/raw");
        let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
        let files = reference["files"].as_object().unwrap();
        assert!(files.len() >= 9);
        let mut failures = Vec::new();
        for (name, want) in files {
            let got = load_rgb(&dir.join(name));
            if want.get("none").is_some() {
                if !matches!(&got, Err(PhotoError::Unsupported(_))) {
                    failures.push(format!("{name}: {:?}, not unsupported", got.map(|i| i.dimensions())));
                }
                continue;
            }
            // two JPEG decoders (IDCT and chroma upsampling differ by a level or two)
            failures.extend(crate::photo::reference_mismatch(name, got.map_err(|e| e.to_string()), want, 6.0));
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// RAF and CR3 are not TIFF: their previews are found as embedded JPEG streams, the
    /// largest one winning.
    #[test]
    fn previews_of_other_containers_are_found_by_their_jpeg_streams() {
        let (small, big) = (jpeg(160, 120, 20), jpeg(640, 480, 220));
        let mut raf = b"FUJIFILMCCD-RAW 0201FF383501".to_vec();
        raf.extend(std::iter::repeat_n(0u8, 100));
        raf.extend_from_slice(&small);
        raf.extend(std::iter::repeat_n(7u8, 50));
        raf.extend_from_slice(&big);
        raf.extend(std::iter::repeat_n(0u8, 100));
        let (j, o) = preview(&raf).unwrap();
        assert!(j.starts_with(&big[..64]) && o.is_none());
        assert!(preview(b"no preview in here at all").is_none());
        // garbage and truncated data: no panic, no preview
        for cut in [3, 10, 40, 200] {
            let (raw, _) = tiff_raw();
            let _ = preview(&raw[..cut]);
        }
    }
}
