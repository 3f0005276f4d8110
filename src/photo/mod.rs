//! Reading photos from disk: format sniffing, size limits, EXIF orientation, typed errors.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use decode::{decode_turn, is_jpeg, jpeg_frame, Segment};
pub mod decode;
pub mod heif;
pub mod raw;
pub mod regions;
pub mod taken;
pub mod tiff;

pub use decode::{PhotoError, BIG_DECODE_PIXELS, MAX_PIXELS};

/// Sniffs formats `image` cannot decode, so they are reported as unsupported, not corrupt.
fn sniff_unsupported(head: &[u8]) -> Option<&'static str> {
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let brand = &head[8..12];
        return Some(match brand {
            b"avif" | b"avis" => "AVIF",
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"hevc" | b"heim" | b"heis" => "HEIC",
            _ => "ISO media (HEIC/AVIF/video)",
        });
    }
    None
}

/// True when a JPEG's entropy-coded data has no end-of-image marker: the file was cut short.
/// Segments before the first scan are skipped by their lengths (an EXIF thumbnail has its
/// own EOI inside APP1, which must not count).
pub fn jpeg_is_truncated(data: &[u8]) -> bool {
    for s in decode::segments(data) {
        match s {
            // not a marker where one must be: leave it to the decoder
            Segment::NotAMarker => return false,
            // start of scan: the image ends with FF D9 somewhere after it
            Segment::Marker { marker: 0xDA, at } => return !data[at..].windows(2).any(|w| w == [0xFF, 0xD9]),
            Segment::Marker { .. } => {}
        }
    }
    true
}

/// Decodes `path` to RGB with its EXIF orientation applied (a camera RAW file: its embedded
/// preview, see [`raw`]).
pub fn load_rgb(path: &Path) -> Result<RgbImage, PhotoError> {
    let data = std::fs::read(path)?;
    if is_raw_path(path) {
        return decode_raw_scaled(&data, u32::MAX).map(|d| d.rgb);
    }
    decode_rgb(&data)
}

/// File extensions read as photos (any case), camera RAW ones ([`raw::RAW_EXT`]) aside.
pub const PHOTO_EXT: &[&str] = &["jpg", "jpeg", "jpe", "jfif", "png", "webp", "bmp", "tif", "tiff", "gif", "heic", "heif", "hif", "avif"];

/// True when the file's extension is one facefind reads: [`PHOTO_EXT`] or a camera RAW format.
/// The scan of a folder, `train`'s DATA and the app's file dialogs use this one list.
pub fn is_photo_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| {
        let e = e.to_string_lossy();
        PHOTO_EXT.iter().any(|x| x.eq_ignore_ascii_case(&e)) || raw::is_raw_ext(&e)
    })
}

/// Every extension [`is_photo_path`] accepts, for file dialogs' filters.
pub fn photo_extensions() -> impl Iterator<Item = &'static str> {
    PHOTO_EXT.iter().chain(raw::RAW_EXT).copied()
}

/// True when the file's extension is a camera RAW format.
pub fn is_raw_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| raw::is_raw_ext(&e.to_string_lossy()))
}

/// A camera RAW file's embedded JPEG preview, decoded like a JPEG (see [`decode_scaled`]) and
/// turned by the RAW's orientation when the preview carries none of its own.
pub fn decode_raw_scaled(data: &[u8], min_long_side: u32) -> Result<Decoded, PhotoError> {
    if data.is_empty() {
        return Err(PhotoError::Empty);
    }
    let Some((jpeg, orientation)) = raw::preview(data) else {
        return Err(PhotoError::Unsupported("camera RAW without an embedded JPEG preview".into()));
    };
    let mut d = decode_scaled(jpeg, min_long_side)?;
    let own = jpeg_orientation(jpeg).is_some_and(|o| o != 1);
    if let (false, Some(o)) = (own, orientation.and_then(image::metadata::Orientation::from_exif)) {
        let mut img = DynamicImage::ImageRgb8(std::mem::take(&mut d.rgb));
        img.apply_orientation(o);
        d.rgb = img.into_rgb8();
        if matches!(orientation, Some(5..=8)) {
            std::mem::swap(&mut d.full_width, &mut d.full_height);
        }
    }
    Ok(d)
}

/// The EXIF orientation a JPEG records, as its decoder reads it (headers only).
fn jpeg_orientation(data: &[u8]) -> Option<u8> {
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(data));
    dec.read_info().ok()?;
    dec.exif_data().and_then(exif_orientation)
}

/// Decodes an encoded photo to RGB with its EXIF orientation applied.
pub fn decode_rgb(data: &[u8]) -> Result<RgbImage, PhotoError> {
    if data.is_empty() {
        return Err(PhotoError::Empty);
    }
    if heif::is_heic(data) || heif::is_avif(data) {
        return heif::decode(data);
    }
    if is_jpeg(data) {
        // One JPEG decoder for the index and the query, so a photo embeds the same either way
        // (and 12/16-bit lossless JPEGs, which the general decoder refuses, are read); the
        // general decoder gets a second chance when it refuses a file.
        return match decode_scaled(data, u32::MAX) {
            Ok(d) => Ok(d.rgb),
            Err(first @ PhotoError::Corrupt(_)) => decode_general(data).map_err(|_| first),
            Err(e) => Err(e),
        };
    }
    decode_general(data)
}

/// The `image` crate's decoders (everything but HEIF; JPEG as a fallback).
fn decode_general(data: &[u8]) -> Result<RgbImage, PhotoError> {
    let mut reader = ImageReader::new(Cursor::new(data)).with_guessed_format()?;
    let Some(format) = reader.format() else {
        return Err(match sniff_unsupported(&data[..data.len().min(16)]) {
            Some(f) => PhotoError::Unsupported(f.to_string()),
            None => PhotoError::NotAnImage,
        });
    };
    if format == image::ImageFormat::Jpeg && jpeg_is_truncated(data) {
        return Err(PhotoError::Corrupt("JPEG data ends before its end-of-image marker (truncated file)".into()));
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(2 * 1024 * 1024 * 1024);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| classify(e, format))?;
    let (w, h) = decoder.dimensions();
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(PhotoError::TooLarge { w, h });
    }
    let _turn = decode_turn(w, h);
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, format))?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

/// A decoded photo, possibly at a reduced scale, with its full size (after EXIF orientation).
#[derive(Debug)]
pub struct Decoded {
    pub rgb: RgbImage,
    pub full_width: u32,
    pub full_height: u32,
}

impl Decoded {
    /// Full-resolution pixels per decoded pixel (1 when decoded at full size).
    pub fn scale_to_full(&self) -> f32 {
        self.full_width as f32 / self.rgb.width() as f32
    }
}

/// Decodes `data`, JPEGs at the smallest DCT scale (1/8..1) whose longer side is still at
/// least `min_long_side`; other formats at full size, then resized to that long side (so a
/// 100 MP PNG is not kept at 300 MB while it waits for detection).
pub fn decode_scaled(data: &[u8], min_long_side: u32) -> Result<Decoded, PhotoError> {
    if !is_jpeg(data) {
        let rgb = decode_rgb(data)?;
        let (fw, fh) = rgb.dimensions();
        let long = fw.max(fh);
        let rgb = if long > min_long_side.max(1) {
            let f = min_long_side.max(1) as f64 / long as f64;
            resize(&rgb, ((fw as f64 * f).round() as u32).max(1), ((fh as f64 * f).round() as u32).max(1))
        } else {
            rgb
        };
        return Ok(Decoded { full_width: fw, full_height: fh, rgb });
    }
    if jpeg_is_truncated(data) {
        return Err(PhotoError::Corrupt("JPEG data ends before its end-of-image marker (truncated file)".into()));
    }
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(data));
    dec.read_info().map_err(jpeg_error)?;
    let info = dec.info().ok_or_else(|| PhotoError::Corrupt("Jpeg: no header".into()))?;
    let (w, h) = (info.width as u32, info.height as u32);
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(PhotoError::TooLarge { w, h });
    }
    let long = w.max(h);
    let (rw, rh) = if long > min_long_side {
        let f = min_long_side as f64 / long as f64;
        (((w as f64 * f).ceil() as u16).max(1), ((h as f64 * f).ceil() as u16).max(1))
    } else {
        (w as u16, h as u16)
    };
    let (sw, sh) = dec.scale(rw, rh).map_err(jpeg_error)?;
    let _turn = decode_turn(sw as u32, sh as u32);
    let pixels = dec.decode().map_err(jpeg_error)?;
    let (sw, sh) = (sw as u32, sh as u32);
    let rgb = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => RgbImage::from_raw(sw, sh, pixels),
        jpeg_decoder::PixelFormat::L8 => RgbImage::from_raw(sw, sh, pixels.iter().flat_map(|&v| [v, v, v]).collect()),
        jpeg_decoder::PixelFormat::L16 => {
            // native-endian samples of `precision` bits (12 or 16 in practice)
            let max = ((1u32 << jpeg_frame(data).map_or(16, |f| f.precision).clamp(2, 16)) - 1) as f32;
            RgbImage::from_raw(
                sw,
                sh,
                pixels
                    .chunks_exact(2)
                    .flat_map(|v| {
                        let g = (u16::from_ne_bytes([v[0], v[1]]) as f32 * 255.0 / max).round().min(255.0) as u8;
                        [g, g, g]
                    })
                    .collect(),
            )
        }
        // jpeg-decoder undoes Adobe's inversion: 0 is no ink
        jpeg_decoder::PixelFormat::CMYK32 => RgbImage::from_raw(
            sw,
            sh,
            pixels
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = 255 - p[3] as u32;
                    [p[0], p[1], p[2]].map(|c| (((255 - c as u32) * k + 127) / 255) as u8)
                })
                .collect(),
        ),
    }
    .ok_or_else(|| PhotoError::Corrupt("Jpeg: decoded size mismatch".into()))?;
    let orientation = dec.exif_data().and_then(exif_orientation).unwrap_or(1);
    let mut img = DynamicImage::ImageRgb8(rgb);
    if let Some(o) = image::metadata::Orientation::from_exif(orientation) {
        img.apply_orientation(o);
    }
    let (fw, fh) = if orientation >= 5 { (h, w) } else { (w, h) };
    Ok(Decoded { rgb: img.into_rgb8(), full_width: fw, full_height: fh })
}

fn jpeg_error(e: jpeg_decoder::Error) -> PhotoError {
    match e {
        jpeg_decoder::Error::Unsupported(what) => PhotoError::Unsupported(format!("JPEG variant ({what:?})")),
        e => PhotoError::Corrupt(format!("Jpeg: {e}")),
    }
}

/// The EXIF orientation tag (1..=8) from a raw EXIF block (TIFF header onwards).
pub fn exif_orientation(exif: &[u8]) -> Option<u8> {
    let exif = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    let le = match exif.get(..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |i: usize| -> Option<u16> {
        let b = exif.get(i..i + 2)?;
        Some(if le { u16::from_le_bytes([b[0], b[1]]) } else { u16::from_be_bytes([b[0], b[1]]) })
    };
    let u32_at = |i: usize| -> Option<u32> {
        let b = exif.get(i..i + 4)?;
        let a = [b[0], b[1], b[2], b[3]];
        Some(if le { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) })
    };
    let ifd = u32_at(4)? as usize;
    let n = u16_at(ifd)? as usize;
    for k in 0..n {
        let e = ifd + 2 + 12 * k;
        if u16_at(e)? == 0x0112 {
            let v = u16_at(e + 8)?;
            return (1..=8).contains(&v).then_some(v as u8);
        }
    }
    None
}

fn classify(e: image::ImageError, format: image::ImageFormat) -> PhotoError {
    match e {
        image::ImageError::Unsupported(u) => PhotoError::Unsupported(format!("{format:?}: {u}")),
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            PhotoError::Corrupt(format!("{format:?} data ends early"))
        }
        image::ImageError::IoError(io) => PhotoError::Io(io),
        image::ImageError::Limits(l) => PhotoError::Corrupt(format!("{format:?}: {l}")),
        other => PhotoError::Corrupt(format!("{format:?}: {other}")),
    }
}

/// Test helper for the fixture tests (formats, HEIF/AVIF, RAW): the mean and the worst absolute
/// difference, in levels, between `img` and a reference's 8x8 grid of RGB samples (`samples`
/// as the fixtures' reference.json files hold them: the pixel at the centre of each cell).
/// Resizes with SIMD convolution (fast_image_resize): bilinear with its support widened to the
/// scale when shrinking (no aliasing), Catmull-Rom when enlarging.
pub fn resize(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    use fast_image_resize as fr;
    let filter = if w < img.width() { fr::FilterType::Bilinear } else { fr::FilterType::CatmullRom };
    let src = fr::images::ImageRef::new(img.width(), img.height(), img.as_raw(), fr::PixelType::U8x3);
    let mut dst = fr::images::Image::new(w, h, fr::PixelType::U8x3);
    let opts = fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(filter));
    match src.map_err(|e| e.to_string()).and_then(|src| fr::Resizer::new().resize(&src, &mut dst, &opts).map_err(|e| e.to_string())) {
        Ok(()) => RgbImage::from_raw(w, h, dst.into_vec())
            .unwrap_or_else(|| image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle)),
        Err(e) => {
            tracing::debug!("fast resize failed ({e}); using image::imageops");
            image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle)
        }
    }
}

#[cfg(test)]
pub(crate) fn sample_differences(img: &RgbImage, samples: &serde_json::Value) -> (f64, f64) {
    let (w, h) = img.dimensions();
    let (mut sum, mut worst) = (0f64, 0f64);
    for (i, row) in samples.as_array().expect("sample rows").iter().enumerate() {
        for (j, px) in row.as_array().expect("sample row").iter().enumerate() {
            let (x, y) = (((j as f64 + 0.5) * w as f64 / 8.0) as u32, ((i as f64 + 0.5) * h as f64 / 8.0) as u32);
            let ours = img.get_pixel(x, y).0;
            for c in 0..3 {
                let d = (ours[c] as f64 - px[c].as_f64().expect("sample value")).abs();
                sum += d;
                worst = worst.max(d);
            }
        }
    }
    (sum / (64.0 * 3.0), worst)
}

/// Test helper for the fixture tests: what is wrong with a decode `got` of fixture `name` against
/// its reference entry `want` (`width`, `height`, `samples`), or `None` when its size matches and
/// no sample is more than `tolerance` levels off.
#[cfg(test)]
pub(crate) fn reference_mismatch(name: &str, got: Result<RgbImage, String>, want: &serde_json::Value, tolerance: f64) -> Option<String> {
    let img = match got {
        Ok(img) => img,
        Err(e) => return Some(format!("{name}: {e}")),
    };
    let (w, h) = img.dimensions();
    if (w as u64, h as u64) != (want["width"].as_u64().expect("width"), want["height"].as_u64().expect("height")) {
        return Some(format!("{name}: {w}x{h}"));
    }
    let (_, worst) = sample_differences(&img, &want["samples"]);
    (worst > tolerance).then(|| format!("{name}: off by up to {worst} levels (tolerance {tolerance})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_list_of_photo_extensions_for_every_reader() {
        for p in ["a.jpg", "b.JPEG", "c.heic", "d.HEIF", "e.avif", "f.dng", "g.CR3", "h.nef", "i.tif", "j.webp"] {
            assert!(is_photo_path(Path::new(p)), "{p}");
        }
        for p in ["a.txt", "b", "c.json", "d.xmp", ".jpg"] {
            assert!(!is_photo_path(Path::new(p)), "{p}");
        }
        assert!(photo_extensions().any(|e| e == "arw") && photo_extensions().any(|e| e == "hif"));
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn exif_orientation_both_byte_orders() {
        let mut le = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0".to_vec();
        assert_eq!(exif_orientation(&le), Some(6));
        le[18] = 9;
        assert_eq!(exif_orientation(&le), None);
        let be = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x03\0\0".to_vec();
        assert_eq!(exif_orientation(&be), Some(3));
        assert_eq!(exif_orientation(b"junk"), None);
    }

    /// A JPEG with an APP1 EXIF block saying `orientation`.
    fn jpeg_with_orientation(img: &RgbImage, orientation: u8) -> Vec<u8> {
        let mut jpg = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg).unwrap();
        let mut tiff = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0".to_vec();
        tiff.extend_from_slice(&[orientation, 0, 0, 0, 0, 0, 0, 0]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let len = (app1.len() + 2) as u16;
        let mut out = jpg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpg[2..]);
        out
    }

    #[test]
    fn exif_orientation_is_applied_by_both_decoders() {
        // 64x32, left half red, right half blue; orientation 6 = rotate 90 clockwise to display.
        let img = RgbImage::from_fn(64, 32, |x, _| if x < 32 { image::Rgb([250, 0, 0]) } else { image::Rgb([0, 0, 250]) });
        let data = jpeg_with_orientation(&img, 6);
        let full = decode_rgb(&data).unwrap();
        let scaled = decode_scaled(&data, 4096).unwrap();
        assert_eq!(full.dimensions(), (32, 64));
        assert_eq!(scaled.rgb.dimensions(), (32, 64));
        assert_eq!((scaled.full_width, scaled.full_height), (32, 64));
        // after a clockwise turn the left (red) half is on top
        for img in [&full, &scaled.rgb] {
            assert!(img.get_pixel(16, 8).0[0] > 200 && img.get_pixel(16, 56).0[2] > 200);
        }
        let half = decode_scaled(&data, 32).unwrap();
        assert_eq!(half.rgb.dimensions(), (16, 32));
        assert_eq!((half.full_width, half.full_height), (32, 64));
    }

    #[test]
    fn scaled_jpeg_decode_keeps_full_size() {
        let mut jpg = Vec::new();
        image::RgbImage::from_fn(800, 600, |x, y| image::Rgb([x as u8, y as u8, 7]))
            .write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg)
            .unwrap();
        let d = decode_scaled(&jpg, 200).unwrap();
        assert_eq!(d.rgb.dimensions(), (200, 150));
        assert_eq!((d.full_width, d.full_height), (800, 600));
        let d = decode_scaled(&jpg, 1000).unwrap();
        assert_eq!(d.rgb.dimensions(), (800, 600));
        assert!(matches!(decode_scaled(&jpg[..jpg.len() / 2], 200), Err(PhotoError::Corrupt(_))));
    }

    #[test]
    fn bad_files_get_one_clear_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("empty.jpg"), b"").unwrap();
        std::fs::write(p("text.jpg"), b"hello, this is not a photo\n").unwrap();
        let mut png = Vec::new();
        image::RgbImage::new(8, 8).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        // IHDR width/height live at bytes 16..24; claim 20000x20000.
        let mut huge = png.clone();
        huge[16..20].copy_from_slice(&20000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&20000u32.to_be_bytes());
        let crc = crc32(&huge[12..29]);
        huge[29..33].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(p("huge.png"), &huge).unwrap();
        let mut jpg = Vec::new();
        image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 7]))
            .write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg)
            .unwrap();
        std::fs::write(p("truncated.jpg"), &jpg[..jpg.len() / 3]).unwrap();
        std::fs::write(p("ok.jpg"), &jpg).unwrap();
        let mut heic = vec![0, 0, 0, 24];
        heic.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
        std::fs::write(p("photo.heic"), &heic).unwrap();
        let mut avif = vec![0, 0, 0, 24];
        avif.extend_from_slice(b"ftypavif\0\0\0\0mif1avif");
        std::fs::write(p("photo.avif"), &avif).unwrap();

        assert!(matches!(load_rgb(&p("empty.jpg")), Err(PhotoError::Empty)));
        assert!(matches!(load_rgb(&p("text.jpg")), Err(PhotoError::NotAnImage)));
        assert!(matches!(load_rgb(&p("huge.png")), Err(PhotoError::TooLarge { w: 20000, h: 20000 })));
        assert!(matches!(load_rgb(&p("truncated.jpg")), Err(PhotoError::Corrupt(_))), "{:?}", load_rgb(&p("truncated.jpg")));
        // a HEIC or AVIF header with nothing after it is a broken file, not an unsupported one
        assert!(matches!(load_rgb(&p("photo.heic")), Err(PhotoError::Corrupt(_))), "{:?}", load_rgb(&p("photo.heic")));
        assert!(matches!(load_rgb(&p("photo.avif")), Err(PhotoError::Corrupt(_))), "{:?}", load_rgb(&p("photo.avif")));
        assert!(matches!(load_rgb(&p("missing.jpg")), Err(PhotoError::Io(_))));
        assert_eq!(load_rgb(&p("ok.jpg")).unwrap().dimensions(), (64, 64));
    }

    /// Every fixture in tests/data/formats (16- and 12-bit JPEG, PNG and TIFF, CMYK JPEG,
    /// palette and grey + alpha PNG, animated GIF and WebP) decodes to the right pixels through
    /// both decoders (the indexer's scaled one and the full one); tests/data/formats/make.py
    /// wrote them with the true 8-bit values.
    #[test]
    fn every_pixel_format_decodes_to_the_right_pixels() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/formats");
        let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
        let files = reference.as_object().unwrap();
        assert!(files.len() >= 12);
        let mut failures = Vec::new();
        for (name, want) in files {
            let data = std::fs::read(dir.join(name)).unwrap();
            let tolerance = want["tolerance"].as_f64().unwrap();
            if want.get("unsupported").is_some() {
                for got in [decode_rgb(&data).err(), decode_scaled(&data, u32::MAX).err()] {
                    if !matches!(got, Some(PhotoError::Unsupported(_))) {
                        failures.push(format!("{name}: {got:?}, not unsupported"));
                    }
                }
                continue;
            }
            let full = decode_rgb(&data).map_err(|e| e.to_string());
            let scaled = decode_scaled(&data, u32::MAX).map(|d| d.rgb).map_err(|e| e.to_string());
            for (path, got) in [("decode_rgb", full), ("decode_scaled", scaled)] {
                failures.extend(reference_mismatch(&format!("{name} ({path})"), got, want, tolerance));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// All eight EXIF orientations, through both decoders: a 4x2 image with one red pixel in
    /// its top-left corner ends up where the orientation says.
    #[test]
    fn all_eight_exif_orientations() {
        // stored 48x32: left-top 16x16 block red, the rest grey; where does red end up?
        let mut img = RgbImage::from_pixel(48, 32, image::Rgb([128, 128, 128]));
        for y in 0..16 {
            for x in 0..16 {
                img.put_pixel(x, y, image::Rgb([255, 0, 0]));
            }
        }
        // displayed size and the displayed corner holding the stored top-left block
        let expect = [
            (1, (48, 32), "tl"),
            (2, (48, 32), "tr"),
            (3, (48, 32), "br"),
            (4, (48, 32), "bl"),
            (5, (32, 48), "tl"),
            (6, (32, 48), "tr"),
            (7, (32, 48), "br"),
            (8, (32, 48), "bl"),
        ];
        for (o, size, corner) in expect {
            let data = jpeg_with_orientation(&img, o);
            let full = decode_rgb(&data).unwrap();
            let scaled = decode_scaled(&data, u32::MAX).unwrap();
            for (path, got) in [("decode_rgb", &full), ("decode_scaled", &scaled.rgb)] {
                assert_eq!(got.dimensions(), size, "orientation {o} {path}");
                let (w, h) = size;
                let at = |x: u32, y: u32| got.get_pixel(x, y).0[0] > 200 && got.get_pixel(x, y).0[1] < 60;
                let corners = [("tl", at(4, 4)), ("tr", at(w - 5, 4)), ("br", at(w - 5, h - 5)), ("bl", at(4, h - 5))];
                let red: Vec<&str> = corners.iter().filter(|c| c.1).map(|c| c.0).collect();
                assert_eq!(red, [corner], "orientation {o} {path}");
            }
            assert_eq!((scaled.full_width, scaled.full_height), size, "orientation {o}");
        }
    }

    /// Big decodes take turns (one thread at a time across a 4-thread pool running 16 of them),
    /// and a decode nested in another on the same thread goes ahead instead of waiting for
    /// itself (it deadlocked before).
    #[test]
    fn big_decodes_take_turns_without_deadlocking_under_rayon() {
        use rayon::prelude::*;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
            // the threads inside a big decode right now, and the most seen at once
            let inside = std::sync::Mutex::new(std::collections::HashMap::<std::thread::ThreadId, usize>::new());
            let most = std::sync::atomic::AtomicUsize::new(0);
            pool.install(|| {
                (0..16).into_par_iter().for_each(|_| {
                    let _turn = decode_turn(10_000, 10_000);
                    let me = std::thread::current().id();
                    {
                        let mut m = inside.lock().unwrap();
                        *m.entry(me).or_default() += 1;
                        most.fetch_max(m.len(), std::sync::atomic::Ordering::SeqCst);
                    }
                    // a decode nested in this one on the same thread goes ahead (no rayon here:
                    // code holding the turn must not use the pool, see `Turn`)
                    let _nested = decode_turn(10_000, 10_000);
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    let mut m = inside.lock().unwrap();
                    let n = m.get_mut(&me).unwrap();
                    *n -= 1;
                    if *n == 0 {
                        m.remove(&me);
                    }
                });
            });
            let _ = tx.send(most.load(std::sync::atomic::Ordering::SeqCst));
        });
        let most = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("deadlock: big decodes never finished");
        // one thread at a time (it may run a nested one itself)
        assert_eq!(most, 1, "{most} threads decoding big photos at once");
    }
}
