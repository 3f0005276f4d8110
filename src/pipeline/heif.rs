//! HEIC/HEIF photos (every iPhone since 2017) decoded in pure Rust by `heic-rs`.
//!
//! Why `heic-rs`: it is MIT OR Apache-2.0 like facefind, has no C and no `unsafe`, and needs
//! nothing installed, so a fresh machine still builds with `cargo run --release`. The other
//! routes were worse: libheif (through `libheif-rs`) needs the C library and libde265 on every
//! machine or a cmake build, and the other pure-Rust decoder (`heic`) is AGPL.
//!
//! One thing is done here rather than in `heic_rs::decode`: a file without an `nclx` colour
//! box (iPhone photos carry an ICC profile instead) is converted as full-range BT.601, as
//! libheif does, instead of heic-rs's limited-range BT.709, which made such photos about 7 %
//! brighter and less saturated than every other viewer shows them. Grid tiles, `clap`, `irot`
//! and `imir` are applied; EXIF orientation is not (HEIF says the transform boxes rule).

use heic_rs::context::Context;
use heic_rs::{color, grid, hevc, transform, Error, MatrixCoefficients, Nclx, PixelLayout, Range};
use image::RgbImage;

use super::photo::{PhotoError, MAX_PIXELS};

/// Colour of a file that does not say: full-range BT.601 (libheif's choice; what iPhones write).
const UNLABELLED: Nclx = Nclx { primaries: 1, transfer: 13, matrix: MatrixCoefficients::Bt601, matrix_code: 6, range: Range::Full };

/// True when `head` (the first bytes of a file) is an ISO-BMFF file with a HEIF brand whose
/// images are HEVC-coded.
pub fn is_heic(head: &[u8]) -> bool {
    head.len() >= 12 && &head[4..8] == b"ftyp" && matches!(&head[8..12], b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1")
}

/// Decodes the primary image of a HEIC/HEIF file to RGB, transforms applied.
pub fn decode(data: &[u8]) -> Result<RgbImage, PhotoError> {
    let ctx = Context::open(data).map_err(reason)?;
    let id = ctx.meta.primary;
    let props = ctx.props(id).map_err(reason)?;
    let info = heic_rs::probe(data).map_err(reason)?;
    if info.width as u64 * info.height as u64 > MAX_PIXELS {
        return Err(PhotoError::TooLarge { w: info.width, h: info.height });
    }
    let _turn = super::photo::decode_turn(info.width, info.height);
    let coded = |item: u32| -> heic_rs::Result<hevc::Frame> {
        let p = ctx.props(item)?;
        let hvcc = p.hvcc.as_ref().ok_or(Error::MissingBox("hvcC"))?;
        let bytes = ctx.item_data(item)?;
        let nals = hvcc.split_nals(&bytes)?;
        let frame = hevc::decode_still(&hvcc.parameter_sets(), &nals)?;
        frame.validate()?;
        Ok(frame)
    };
    let frame = match ctx.grid(id).map_err(reason)? {
        Some((g, tiles)) => {
            use rayon::prelude::*;
            let frames = tiles.par_iter().map(|&t| coded(t)).collect::<heic_rs::Result<Vec<_>>>().map_err(reason)?;
            grid::compose(&g, &frames, MAX_PIXELS).map_err(reason)?
        }
        None => coded(id).map_err(reason)?,
    };
    let img = color::convert(&frame, None, props.nclx.unwrap_or(UNLABELLED), PixelLayout::Rgb8, MAX_PIXELS, None).map_err(reason)?;
    let img = transform::apply_all(img, &props.transforms).map_err(reason)?;
    let (w, h) = (img.width, img.height);
    RgbImage::from_raw(w, h, img.data).ok_or_else(|| PhotoError::Corrupt(format!("HEIF: decoded {w}x{h} image has the wrong number of bytes")))
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

    /// Every committed HEIF file decodes to libheif's size (after `irot`), and its pixels are
    /// within a few levels of libheif's (mean under 4 of 255; chroma upsampling differs a little
    /// at colour edges; tests/data/heif/reference.py wrote the reference);
    /// the truncated one is a clear error, as it is for libheif.
    #[test]
    fn heif_files_decode_like_libheif() {
        let text = std::fs::read_to_string(data_dir().join("reference.json")).unwrap();
        let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
        let files = reference["files"].as_object().unwrap();
        assert!(files.len() >= 8);
        for (name, want) in files {
            let data = std::fs::read(data_dir().join(name)).unwrap();
            assert!(is_heic(&data[..16]), "{name}");
            let got = decode(&data);
            if want.get("error").is_some() {
                let e = got.err().unwrap_or_else(|| panic!("{name} decoded; libheif refused it"));
                assert!(matches!(e, PhotoError::Corrupt(_)), "{name}: {e}");
                continue;
            }
            let img = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((img.width() as u64, img.height() as u64), (want["width"].as_u64().unwrap(), want["height"].as_u64().unwrap()), "{name}");
            let (w, h) = img.dimensions();
            let mut diff = 0f64;
            let mut worst = 0f64;
            for (i, row) in want["samples"].as_array().unwrap().iter().enumerate() {
                for (j, px) in row.as_array().unwrap().iter().enumerate() {
                    let (x, y) = (((j as f64 + 0.5) * w as f64 / 8.0) as u32, ((i as f64 + 0.5) * h as f64 / 8.0) as u32);
                    let ours = img.get_pixel(x, y).0;
                    for c in 0..3 {
                        let d = (ours[c] as f64 - px[c].as_f64().unwrap()).abs();
                        diff += d;
                        worst = worst.max(d);
                    }
                }
            }
            let mean = diff / (64.0 * 3.0);
            eprintln!("{name}: {w}x{h}, mean difference from libheif {mean:.2} levels, worst {worst}");
            assert!(mean < 4.0 && worst < 24.0, "{name}: mean difference {mean:.2} levels, worst {worst} from libheif");
        }
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
        let close = turned.pixels().zip(back.pixels()).filter(|(a, b)| a.0.iter().zip(b.0).all(|(x, y)| (*x as i32 - y as i32).abs() < 40)).count();
        let close270 = turned.pixels().zip(image::imageops::rotate270(&plain).pixels()).filter(|(a, b)| a.0.iter().zip(b.0).all(|(x, y)| (*x as i32 - y as i32).abs() < 40)).count();
        assert!(close.max(close270) > turned.pixels().len() * 9 / 10, "{close} {close270}");
    }
}
