//! HEIC/HEIF photos (every iPhone since 2017) and AVIF photos, decoded in pure Rust: the
//! HEIF container (items, grid tiles, `irot`/`imir`/`clap`, colour boxes) and the HEVC codec by
//! `heic-rs`, the AV1 codec of AVIF (the same container) by `re_rav1d`, built without its
//! assembly.
//!
//! Why these: both are permissively licensed like facefind (`heic-rs` MIT OR Apache-2.0 with no
//! C and no `unsafe`; `re_rav1d` BSD-2-Clause, a Rust port of dav1d) and need nothing installed,
//! so a fresh machine still builds with `cargo run --release`. The other routes were worse:
//! libheif (through `libheif-rs`) and dav1d need C libraries on every machine or a cmake/meson
//! build; the other pure-Rust decoders (`heic`, `rav1d-safe`/`zenavif`) are AGPL.
//!
//! Colour: a file without an `nclx` colour box (iPhone photos carry an ICC profile instead) is
//! converted as full-range BT.601, as libheif does, instead of heic-rs's limited-range BT.709,
//! which made such photos about 7 % brighter and less saturated than every other viewer shows
//! them; an AVIF without one uses its AV1 sequence header's range. EXIF orientation is not
//! applied: HEIF says the transform boxes rule.

use heic_rs::context::Context;
use heic_rs::{color, grid, hevc, transform, ChromaFormat, Error, MatrixCoefficients, Nclx, PixelLayout, Range};
use image::RgbImage;
use rayon::prelude::*;

use super::decode::{PhotoError, MAX_PIXELS};

/// Colour of a file that does not say: full-range BT.601 (libheif's choice; what iPhones write).
const UNLABELLED: Nclx = Nclx { primaries: 1, transfer: 13, matrix: MatrixCoefficients::Bt601, matrix_code: 6, range: Range::Full };

/// The brands of an ISO-BMFF file's `ftyp` box (major first), or nothing.
fn brands(data: &[u8]) -> Vec<[u8; 4]> {
    if data.len() < 16 || &data[4..8] != b"ftyp" {
        return Vec::new();
    }
    let size = (u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize).clamp(16, data.len());
    // major brand, then (after the minor version) the compatible brands
    std::iter::once(8)
        .chain((16..size).step_by(4))
        .filter(|&i| i + 4 <= size)
        .map(|i| [data[i], data[i + 1], data[i + 2], data[i + 3]])
        .collect()
}

/// True when `data` starts like an AVIF file (AV1 in the HEIF container).
pub fn is_avif(data: &[u8]) -> bool {
    brands(data).iter().any(|b| b == b"avif" || b == b"avis")
}

/// True when `data` starts like a HEIC/HEIF file whose images are HEVC-coded.
pub fn is_heic(data: &[u8]) -> bool {
    !is_avif(data)
        && brands(data).first().is_some_and(|b| matches!(b, b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1"))
}

/// The codec of the container's images.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Codec {
    Hevc,
    Av1,
}

/// Decodes the primary image of a HEIC/HEIF or AVIF file to RGB, transforms applied.
pub fn decode(data: &[u8]) -> Result<RgbImage, PhotoError> {
    let codec = if is_avif(data) { Codec::Av1 } else { Codec::Hevc };
    // heic-rs parses the shared container but refuses AVIF by its brand: show it a copy whose
    // AVIF brands read `mif1` (the generic HEIF brand); nothing else in the file changes.
    let patched;
    let data = if codec == Codec::Av1 {
        patched = without_avif_brands(data);
        &patched[..]
    } else {
        data
    };
    let ctx = Context::open(data).map_err(reason)?;
    let id = ctx.meta.primary;
    let props = ctx.props(id).map_err(reason)?;
    let tiles = ctx.grid(id).map_err(reason)?;
    let (w, h) = match (&tiles, &props.ispe) {
        (Some((g, _)), _) => (g.output_width, g.output_height),
        (None, Some(ispe)) => (ispe.width, ispe.height),
        (None, None) => return Err(PhotoError::Corrupt("HEIF: the image has no size (ispe)".into())),
    };
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(PhotoError::TooLarge { w, h });
    }
    let _turn = super::decode::decode_turn(w, h);
    let coded = |item: u32| -> Result<(hevc::Frame, Option<Range>), PhotoError> {
        let bytes = ctx.item_data(item).map_err(reason)?;
        match codec {
            Codec::Hevc => {
                let p = ctx.props(item).map_err(reason)?;
                let hvcc = p.hvcc.as_ref().ok_or(Error::MissingBox("hvcC")).map_err(reason)?;
                let nals = hvcc.split_nals(&bytes).map_err(reason)?;
                let frame = hevc::decode_still(&hvcc.parameter_sets(), &nals).map_err(reason)?;
                frame.validate().map_err(reason)?;
                Ok((frame, None))
            }
            Codec::Av1 => av1_frame(&bytes),
        }
    };
    let (frame, av1_range) = match tiles {
        Some((g, items)) => {
            // Tiles in parallel, except while holding the big-decode turn: threads waiting for
            // the turn could never run the parallel jobs (a deadlock).
            let frames = if super::decode::turn_held_here() {
                items.iter().map(|&t| coded(t).map(|f| f.0)).collect::<Result<Vec<_>, _>>()?
            } else {
                items.par_iter().map(|&t| coded(t).map(|f| f.0)).collect::<Result<Vec<_>, _>>()?
            };
            (grid::compose(&g, &frames, MAX_PIXELS).map_err(reason)?, None)
        }
        None => coded(id)?,
    };
    let nclx = props.nclx.unwrap_or(match av1_range {
        Some(range) => Nclx { range, ..UNLABELLED },
        None => UNLABELLED,
    });
    let img = color::convert(&frame, None, nclx, PixelLayout::Rgb8, MAX_PIXELS, Some(1)).map_err(reason)?;
    let img = transform::apply_all(img, &props.transforms).map_err(reason)?;
    let (w, h) = (img.width, img.height);
    RgbImage::from_raw(w, h, img.data)
        .ok_or_else(|| PhotoError::Corrupt(format!("HEIF: decoded {w}x{h} image has the wrong number of bytes")))
}

/// A copy of `data` whose `ftyp` brands `avif`/`avis` read `mif1`.
fn without_avif_brands(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    let size = if v.len() >= 16 && &v[4..8] == b"ftyp" { (u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as usize).min(v.len()) } else { 0 };
    for i in std::iter::once(8).chain((16..size).step_by(4)) {
        if i + 4 <= size && (&v[i..i + 4] == b"avif" || &v[i..i + 4] == b"avis") {
            v[i..i + 4].copy_from_slice(b"mif1");
        }
    }
    v
}

/// Decodes one AV1-coded item (one frame) into the planar form heic-rs converts; also returns
/// the sample range its sequence header declares.
fn av1_frame(obus: &[u8]) -> Result<(hevc::Frame, Option<Range>), PhotoError> {
    use re_rav1d::dav1d::{self, PlanarImageComponent as C};
    let bad = |e: dav1d::Error| PhotoError::Corrupt(format!("AVIF: AV1 {e}"));
    let mut settings = dav1d::Settings::new();
    settings.set_n_threads(1);
    settings.set_max_frame_delay(1);
    settings.set_frame_size_limit(MAX_PIXELS as u32);
    let mut dec = dav1d::Decoder::with_settings(&settings).map_err(bad)?;
    dec.send_data(obus.to_vec(), None, None, None).map_err(bad)?;
    let mut tries = 0;
    let pic = loop {
        match dec.get_picture() {
            Ok(p) => break p,
            Err(dav1d::Error::Again) if tries < 8 => {
                tries += 1;
                match dec.send_pending_data() {
                    Ok(()) | Err(dav1d::Error::Again) => {}
                    Err(e) => return Err(bad(e)),
                }
            }
            Err(dav1d::Error::Again) => return Err(PhotoError::Corrupt("AVIF: the AV1 data holds no complete frame".into())),
            Err(e) => return Err(bad(e)),
        }
    };
    let (w, h, depth) = (pic.width(), pic.height(), pic.bit_depth());
    let chroma = match pic.pixel_layout() {
        dav1d::PixelLayout::I400 => ChromaFormat::Monochrome,
        dav1d::PixelLayout::I420 => ChromaFormat::Yuv420,
        dav1d::PixelLayout::I422 => ChromaFormat::Yuv422,
        dav1d::PixelLayout::I444 => ChromaFormat::Yuv444,
    };
    let plane = |c: C, pw: u32, ph: u32| -> Result<Vec<u16>, PhotoError> {
        let p = pic.plane(c);
        let bytes: &[u8] = p.as_ref();
        let (stride, bpp) = (pic.stride(c) as usize, if depth > 8 { 2 } else { 1 });
        if pw as usize * bpp > stride || stride * (ph as usize).saturating_sub(1) + pw as usize * bpp > bytes.len() {
            return Err(PhotoError::Corrupt("AVIF: AV1 plane smaller than its size".into()));
        }
        let mut out = Vec::with_capacity(pw as usize * ph as usize);
        for row in bytes.chunks(stride).take(ph as usize) {
            if bpp == 2 {
                out.extend(row[..2 * pw as usize].chunks_exact(2).map(|v| u16::from_le_bytes([v[0], v[1]])));
            } else {
                out.extend(row[..pw as usize].iter().map(|&v| v as u16));
            }
        }
        Ok(out)
    };
    let (cw, ch) = chroma.chroma_size(w, h);
    let y = plane(C::Y, w, h)?;
    let (cb, cr) = if chroma == ChromaFormat::Monochrome { (Vec::new(), Vec::new()) } else { (plane(C::U, cw, ch)?, plane(C::V, cw, ch)?) };
    let range = if pic.color_range() == dav1d::pixel::YUVRange::Full { Range::Full } else { Range::Limited };
    let frame = hevc::Frame { width: w, height: h, bit_depth: depth as u8, chroma, y, cb, cr, y_stride: w, c_stride: cw };
    frame.validate().map_err(reason)?;
    Ok((frame, Some(range)))
}

/// One line for the user.
fn reason(e: Error) -> PhotoError {
    match e {
        Error::Unsupported(what) => PhotoError::Unsupported(format!("HEIF variant ({what})")),
        Error::PixelLimit { .. } => PhotoError::Corrupt(format!("HEIF: {e}")),
        Error::Io(kind) => PhotoError::Io(std::io::Error::from(kind)),
        e => PhotoError::Corrupt(format!("HEIF: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/heif")
    }

    /// Every committed HEIF and AVIF file decodes to its reference decoder's size (after `irot`)
    /// and pixels within a few levels (mean under 4 of 255; chroma upsampling differs at sharp
    /// colour edges): libheif for HEIF (tests/data/heif/reference.py), libavif for AVIF
    /// (tests/data/avif/make.py; one AVIF is a 3x2 grid of tiles); the truncated ones are clear
    /// errors, as they are there.
    #[test]
    fn heif_and_avif_files_decode_like_the_reference_decoders() {
        let mut checked = 0;
        for (dir, is_kind) in [(data_dir(), is_heic as fn(&[u8]) -> bool), (data_dir().join("../avif"), is_avif)] {
            let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
            let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
            for (name, want) in reference["files"].as_object().unwrap() {
                checked += 1;
                let data = std::fs::read(dir.join(name)).unwrap();
                assert!(is_kind(&data), "{name}");
                if name.starts_with("grid") {
                    // its primary item is of type `grid` (tiles composed by the decoder)
                    assert!(data.windows(4).any(|w| w == b"grid"), "{name} is not a grid");
                }
                let got = decode(&data);
                if want.get("error").is_some() {
                    let e = got.err().unwrap_or_else(|| panic!("{name} decoded; the reference decoder refused it"));
                    assert!(matches!(e, PhotoError::Corrupt(_)), "{name}: {e}");
                    continue;
                }
                let img = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    (img.width() as u64, img.height() as u64),
                    (want["width"].as_u64().unwrap(), want["height"].as_u64().unwrap()),
                    "{name}"
                );
                let (w, h) = img.dimensions();
                let (mean, worst) = crate::photo::sample_differences(&img, &want["samples"]);
                eprintln!("{name}: {w}x{h}, mean difference from the reference {mean:.2} levels, worst {worst}");
                // a sample right on a sharp colour edge of a 4:2:0 file can differ by tens of
                // levels (each decoder places and interpolates chroma its own way); the mean
                // over 64 samples cannot
                assert!(mean < 4.0 && worst < 48.0, "{name}: mean difference {mean:.2} levels, worst {worst}");
            }
        }
        assert!(checked >= 13, "{checked} files");
    }

    /// The rotation in `irot` is applied: the thumbnail-mismatch file is coded 64x64 with a
    /// 270° turn, and its libheif reference is the turned image (checked above); here the
    /// same file decoded without the turn must differ from it.
    #[test]
    fn irot_is_applied() {
        let data = std::fs::read(data_dir().join("transform_mismatch_thumbnail.heic")).unwrap();
        let info = heic_rs::probe(&data).unwrap();
        assert_ne!(info.rotation, heic_rs::Rotation::None);
        let turned = decode(&data).unwrap();
        let plain = heic_rs::decode(&data, &heic_rs::DecodeOptions { apply_transforms: false, ..Default::default() }).unwrap();
        let plain = RgbImage::from_raw(plain.width, plain.height, plain.data).unwrap();
        assert_ne!(turned.as_raw(), plain.as_raw());
        // turning the plain decode by the file's rotation gives ours (up to the colour rule)
        let back = image::imageops::rotate90(&plain);
        let close =
            turned.pixels().zip(back.pixels()).filter(|(a, b)| a.0.iter().zip(b.0).all(|(x, y)| (*x as i32 - y as i32).abs() < 40)).count();
        let close270 = turned
            .pixels()
            .zip(image::imageops::rotate270(&plain).pixels())
            .filter(|(a, b)| a.0.iter().zip(b.0).all(|(x, y)| (*x as i32 - y as i32).abs() < 40))
            .count();
        assert!(close.max(close270) > turned.pixels().len() * 9 / 10, "{close} {close270}");
    }

    /// A thread holding the big-decode turn (the index's network loop re-decoding a big photo)
    /// decodes a HEIF grid while every pool thread waits for that turn: nothing may wait for
    /// the pool. This hung an index run of 100 MP HEIC photos.
    #[test]
    fn decoding_under_the_turn_never_waits_for_the_pool() {
        let data = std::fs::read(data_dir().join("RGB_8__29x100.heif")).unwrap();
        assert!(heic_rs::probe(&data).unwrap().is_grid);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _turn = super::super::decode::decode_turn(10_000, 10_000);
            for _ in 0..rayon::current_num_threads() {
                rayon::spawn(|| drop(super::super::decode::decode_turn(10_000, 10_000)));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            let _ = tx.send(decode(&data).map(|i| i.dimensions()).map_err(|e| e.to_string()));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("deadlock: the decode waited for pool threads that wait for its turn");
        assert_eq!(got, Ok((29, 100)));
    }
}
