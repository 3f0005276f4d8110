//! Face alignment: least-squares similarity transform from five landmarks to the ArcFace
//! 112x112 template, and a bilinear warp sampled from the full-resolution photo.

use image::{imageops, RgbImage};

/// ArcFace reference landmarks in a 112x112 crop (insightface `arcface_dst`).
pub const ARCFACE_TEMPLATE: [[f32; 2]; 5] =
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]];

/// A similarity transform `p' = s R p + t`, stored as the 2x3 matrix [[a, -b, tx], [b, a, ty]].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Similarity {
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        [self.a * p[0] - self.b * p[1] + self.tx, self.b * p[0] + self.a * p[1] + self.ty]
    }

    pub fn scale(&self) -> f64 {
        self.a.hypot(self.b)
    }

    pub fn inverse(&self) -> Similarity {
        let d = self.a * self.a + self.b * self.b;
        let (a, b) = (self.a / d, -self.b / d);
        Similarity { a, b, tx: -(a * self.tx - b * self.ty), ty: -(b * self.tx + a * self.ty) }
    }

    /// `self` after `other` (first `other`, then `self`).
    pub fn after(&self, other: &Similarity) -> Similarity {
        let t = self.apply([other.tx, other.ty]);
        Similarity { a: self.a * other.a - self.b * other.b, b: self.b * other.a + self.a * other.b, tx: t[0], ty: t[1] }
    }

    /// Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping
    /// `src` onto `dst`: Umeyama's solution, which in 2-D has this closed form.
    pub fn estimate(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Similarity> {
        let n = src.len().min(dst.len());
        if n < 2 {
            return None;
        }
        let mean = |p: &[[f32; 2]]| {
            let (sx, sy) = p[..n].iter().fold((0.0, 0.0), |(x, y), q| (x + q[0] as f64, y + q[1] as f64));
            (sx / n as f64, sy / n as f64)
        };
        let (msx, msy) = mean(src);
        let (mdx, mdy) = mean(dst);
        let (mut num_a, mut num_b, mut den) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let (x, y) = (src[i][0] as f64 - msx, src[i][1] as f64 - msy);
            let (u, v) = (dst[i][0] as f64 - mdx, dst[i][1] as f64 - mdy);
            num_a += x * u + y * v;
            num_b += x * v - y * u;
            den += x * x + y * y;
        }
        if den <= f64::EPSILON || !den.is_finite() {
            return None;
        }
        let (a, b) = (num_a / den, num_b / den);
        Some(Similarity { a, b, tx: mdx - (a * msx - b * msy), ty: mdy - (b * msx + a * msy) })
    }
}

/// Bilinear sample with zero outside the image (OpenCV's BORDER_CONSTANT).
fn sample(img: &RgbImage, x: f64, y: f64) -> [u8; 3] {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x0, y0) = (x.floor() as i64, y.floor() as i64);
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let px = |xx: i64, yy: i64| -> [f64; 3] {
        if xx < 0 || yy < 0 || xx >= w || yy >= h {
            [0.0; 3]
        } else {
            let p = img.get_pixel(xx as u32, yy as u32).0;
            [p[0] as f64, p[1] as f64, p[2] as f64]
        }
    };
    let (p00, p10, p01, p11) = (px(x0, y0), px(x0 + 1, y0), px(x0, y0 + 1), px(x0 + 1, y0 + 1));
    let mut out = [0u8; 3];
    for c in 0..3 {
        let top = p00[c] * (1.0 - fx) + p10[c] * fx;
        let bottom = p01[c] * (1.0 - fx) + p11[c] * fx;
        out[c] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// Warps `img` by `m` (source -> crop coordinates) into a `size` x `size` crop.
pub fn warp(img: &RgbImage, m: &Similarity, size: u32) -> RgbImage {
    let inv = m.inverse();
    RgbImage::from_fn(size, size, |u, v| {
        let [x, y] = inv.apply([u as f64, v as f64]);
        image::Rgb(sample(img, x, y))
    })
}

/// Aligns the face with `landmarks` (in `img` pixels) to a 112x112 ArcFace crop. When the face
/// is much larger than the crop, the region around it is first downscaled with an area filter
/// so that bilinear sampling does not alias.
pub fn align(img: &RgbImage, landmarks: &[[f32; 2]; 5]) -> Option<RgbImage> {
    const SIZE: u32 = 112;
    let m = Similarity::estimate(landmarks, &ARCFACE_TEMPLATE)?;
    let scale = m.scale();
    if scale >= 0.5 {
        return Some(warp(img, &m, SIZE));
    }
    // Source region covering the crop, with a margin for the bilinear footprint.
    let inv = m.inverse();
    let corners = [[0.0, 0.0], [SIZE as f64, 0.0], [0.0, SIZE as f64], [SIZE as f64, SIZE as f64]].map(|p| inv.apply(p));
    let x0 = corners.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min).floor() - 2.0;
    let y0 = corners.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min).floor() - 2.0;
    let x1 = corners.iter().map(|p| p[0]).fold(f64::NEG_INFINITY, f64::max).ceil() + 2.0;
    let y1 = corners.iter().map(|p| p[1]).fold(f64::NEG_INFINITY, f64::max).ceil() + 2.0;
    let cx0 = x0.clamp(0.0, img.width() as f64) as u32;
    let cy0 = y0.clamp(0.0, img.height() as f64) as u32;
    let cx1 = x1.clamp(0.0, img.width() as f64) as u32;
    let cy1 = y1.clamp(0.0, img.height() as f64) as u32;
    if cx1 <= cx0 || cy1 <= cy0 {
        return Some(warp(img, &m, SIZE));
    }
    let region = imageops::crop_imm(img, cx0, cy0, cx1 - cx0, cy1 - cy0).to_image();
    // Resize the region so that the remaining warp scale is about 1.
    let nw = ((region.width() as f64 * scale).round() as u32).max(1);
    let nh = ((region.height() as f64 * scale).round() as u32).max(1);
    let small = crate::photo::resize(&region, nw, nh);
    let (sx, sy) = (nw as f64 / region.width() as f64, nh as f64 / region.height() as f64);
    // crop coords = m(p); p = (q / s_xy) + offset, q in `small`; approximate sx ~ sy.
    let s = (sx + sy) / 2.0;
    let to_full = Similarity { a: 1.0 / s, b: 0.0, tx: cx0 as f64, ty: cy0 as f64 };
    Some(warp(&small, &m.after(&to_full), SIZE))
}

/// Centre crop resized to 112x112: the fallback when no face is found in a face-centred image.
pub fn center_crop(img: &RgbImage, fraction: f32) -> RgbImage {
    let side = ((img.width().min(img.height()) as f32) * fraction).round().max(1.0) as u32;
    let x = (img.width() - side) / 2;
    let y = (img.height() - side) / 2;
    let region = imageops::crop_imm(img, x, y, side, side).to_image();
    crate::photo::resize(&region, 112, 112)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Similarity {
        let (s, th) = (0.7f64, 0.3f64);
        Similarity { a: s * th.cos(), b: s * th.sin(), tx: 12.5, ty: -4.0 }
    }

    #[test]
    fn estimate_recovers_a_known_transform() {
        let m = known();
        let src: Vec<[f32; 2]> = ARCFACE_TEMPLATE.iter().map(|p| [p[0] * 3.0 + 100.0, p[1] * 2.5 + 40.0]).collect();
        let dst: Vec<[f32; 2]> = src
            .iter()
            .map(|p| {
                let q = m.apply([p[0] as f64, p[1] as f64]);
                [q[0] as f32, q[1] as f32]
            })
            .collect();
        let e = Similarity::estimate(&src, &dst).unwrap();
        assert!((e.a - m.a).abs() < 1e-5 && (e.b - m.b).abs() < 1e-5, "{e:?}");
        assert!((e.tx - m.tx).abs() < 1e-3 && (e.ty - m.ty).abs() < 1e-3, "{e:?}");
    }

    #[test]
    fn estimate_is_least_squares_and_never_reflects() {
        // Mirrored points: the best similarity without reflection has zero scale gain in one axis.
        let src = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        let dst = [[0.0, 0.0], [-1.0, 0.0], [0.0, 1.0]];
        let e = Similarity::estimate(&src, &dst).unwrap();
        let residual = |m: &Similarity| -> f64 {
            src.iter()
                .zip(&dst)
                .map(|(p, q)| {
                    let r = m.apply([p[0] as f64, p[1] as f64]);
                    (r[0] - q[0] as f64).powi(2) + (r[1] - q[1] as f64).powi(2)
                })
                .sum()
        };
        // worked by hand: centred, Σ(x x' + y y') = 0 and Σ(x y' − y x') = −6/9 over Σ|p|² = 12/9
        assert!(e.a.abs() < 1e-6 && (e.b + 0.5).abs() < 1e-6, "{e:?}");
        // least squares: no small change of any parameter does better
        let best = residual(&e);
        for d in [[1e-3, 0.0, 0.0, 0.0], [0.0, 1e-3, 0.0, 0.0], [0.0, 0.0, 1e-3, 0.0], [0.0, 0.0, 0.0, 1e-3]] {
            for sign in [1.0, -1.0] {
                let m = Similarity { a: e.a + sign * d[0], b: e.b + sign * d[1], tx: e.tx + sign * d[2], ty: e.ty + sign * d[3] };
                assert!(residual(&m) >= best, "{m:?} beats {e:?}");
            }
        }
        // a reflection would fit these points exactly; a similarity cannot, so a zero residual
        // would mean it reflected
        assert!(best > 0.5, "residual {best}");
        assert!(Similarity::estimate(&[[1.0, 1.0]; 5], &ARCFACE_TEMPLATE).is_none());
    }

    #[test]
    fn inverse_and_composition() {
        let m = known();
        let p = [3.0, 7.0];
        let q = m.inverse().apply(m.apply(p));
        assert!((q[0] - p[0]).abs() < 1e-9 && (q[1] - p[1]).abs() < 1e-9);
        let twice = m.after(&m);
        let r = twice.apply(p);
        let r2 = m.apply(m.apply(p));
        assert!((r[0] - r2[0]).abs() < 1e-9 && (r[1] - r2[1]).abs() < 1e-9);
    }

    #[test]
    fn warp_moves_a_dot_where_the_transform_says() {
        let mut img = RgbImage::new(300, 200);
        let (x, y) = (150u32, 80u32);
        img.put_pixel(x, y, image::Rgb([255, 255, 255]));
        let m = Similarity { a: 1.0, b: 0.0, tx: 56.0 - x as f64, ty: 56.0 - y as f64 };
        let crop = warp(&img, &m, 112);
        assert_eq!(crop.get_pixel(56, 56).0, [255, 255, 255]);
        assert_eq!(crop.get_pixel(57, 56).0, [0, 0, 0]);
        // half-pixel shift: bilinear gives half intensity to both neighbours
        let m = Similarity { a: 1.0, b: 0.0, tx: 56.5 - x as f64, ty: 56.0 - y as f64 };
        let crop = warp(&img, &m, 112);
        assert_eq!(crop.get_pixel(56, 56).0[0], 128);
        assert_eq!(crop.get_pixel(57, 56).0[0], 128);
    }

    #[test]
    fn aligning_the_template_scaled_up_recovers_the_template_layout() {
        // A big synthetic "face": landmarks at 10x the template, in a 2000 px image with a
        // bright square around the nose. The aligned crop puts that square at the template nose.
        let mut img = RgbImage::new(2000, 2000);
        let lm = ARCFACE_TEMPLATE.map(|p| [p[0] * 10.0 + 100.0, p[1] * 10.0 + 50.0]);
        let (nx, ny) = (lm[2][0] as u32, lm[2][1] as u32);
        for yy in ny - 30..ny + 30 {
            for xx in nx - 30..nx + 30 {
                img.put_pixel(xx, yy, image::Rgb([200, 100, 50]));
            }
        }
        let crop = align(&img, &lm).unwrap();
        assert_eq!(crop.dimensions(), (112, 112));
        let p = crop.get_pixel(56, 72).0;
        assert!(p[0] > 190 && p[1] > 90 && p[2] > 40, "{p:?}");
        assert_eq!(crop.get_pixel(20, 20).0, [0, 0, 0]);
    }
}
