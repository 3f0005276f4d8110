//! The face verification protocol (LFW): pairs files, the face of each image, pair scores.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;

use crate::photo;
use crate::pipeline::{self, align, Pipeline};

/// One line of an LFW pairs file.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub a: (String, u32),
    pub b: (String, u32),
    pub same: bool,
}

impl Pair {
    pub fn paths(&self, images: &Path) -> (PathBuf, PathBuf) {
        let p = |(name, n): &(String, u32)| images.join(name).join(format!("{name}_{n:04}.jpg"));
        (p(&self.a), p(&self.b))
    }
}

/// A parsed pairs file: the pairs and the fold each belongs to.
#[derive(Debug, Clone)]
pub struct Pairs {
    pub pairs: Vec<Pair>,
    pub folds: Vec<usize>,
    pub n_folds: usize,
}

impl Pairs {
    /// Every image the pairs use, sorted, each once.
    pub fn image_paths(&self, images: &Path) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self
            .pairs
            .iter()
            .flat_map(|pr| {
                let (a, b) = pr.paths(images);
                [a, b]
            })
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }
}

/// What verification got from one image.
pub struct Embedded {
    /// `None` when the image could not be read.
    pub embedding: Option<Vec<f32>>,
    /// No face was found: the embedding is of a centre crop.
    pub fallback: bool,
    /// Why the image could not be read.
    pub error: Option<String>,
}

/// Detect -> central face -> align (or centre crop) -> embed, for every path. An unreadable
/// image gets no embedding and its reason; a model failure is an error.
pub fn embed_central_faces(p: &Pipeline, paths: &[PathBuf]) -> candle_core::Result<HashMap<PathBuf, Embedded>> {
    let mut out = HashMap::new();
    const CHUNK: usize = 64;
    for chunk in paths.chunks(CHUNK) {
        // whole images in parallel: at LFW's 250x250 one detection is too small to keep both
        // cores busy by itself
        // (path, (crop, no face found) or why the image could not be read)
        type Found = (PathBuf, Result<(RgbImage, bool), String>);
        let found: Vec<Found> = chunk
            .par_iter()
            .map(|path| {
                let img = match photo::load_rgb(path) {
                    Ok(img) => img,
                    Err(e) => return Ok((path.clone(), Err(e.to_string()))),
                };
                let faces = p.detect(&img)?;
                let crop = match pipeline::central_face(&faces, img.width(), img.height()) {
                    Some(f) => (p.align(&img, std::slice::from_ref(f)).remove(0), false),
                    None => {
                        tracing::info!(path = %path.display(), "no face found, using a centre crop");
                        (align::center_crop(&img, 0.5), true)
                    }
                };
                Ok((path.clone(), Ok(crop)))
            })
            .collect::<candle_core::Result<_>>()?;
        let mut crops = Vec::new();
        let mut owners = Vec::new();
        for (path, r) in found {
            match r {
                Ok((crop, fallback)) => {
                    crops.push(crop);
                    owners.push((path, fallback));
                }
                Err(error) => {
                    out.insert(path, Embedded { embedding: None, fallback: false, error: Some(error) });
                }
            }
        }
        let embs = p.embed(&crops)?;
        for ((path, fallback), e) in owners.into_iter().zip(embs) {
            out.insert(path, Embedded { embedding: Some(e), fallback, error: None });
        }
    }
    Ok(out)
}

/// The pairs that have a score, as (scores, same person, fold) for [`kfold_accuracy`].
pub fn scored(pairs: &Pairs, scores: &[Option<f32>]) -> (Vec<f32>, Vec<bool>, Vec<usize>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for ((pr, score), &fold) in pairs.pairs.iter().zip(scores).zip(&pairs.folds) {
        if let Some(s) = score {
            out.0.push(*s);
            out.1.push(pr.same);
            out.2.push(fold);
        }
    }
    out
}

/// Cosine score of every pair (in file order); `None` where an image has no embedding.
pub fn pair_scores(pairs: &Pairs, images: &Path, embedded: &HashMap<PathBuf, Embedded>) -> Vec<Option<f32>> {
    pairs
        .pairs
        .iter()
        .map(|pr| {
            let (a, b) = pr.paths(images);
            let e = |p: &PathBuf| embedded.get(p).and_then(|e| e.embedding.as_ref());
            Some(pipeline::cosine(e(&a)?, e(&b)?))
        })
        .collect()
}

/// Parses `pairs.txt` (header "folds count") or `pairsDevTrain.txt` (header "count").
/// With folds, fold k is the k-th block of 2*count lines; otherwise pairs are dealt into ten
/// folds round-robin so every fold has both kinds.
pub fn parse_pairs(text: &str) -> anyhow::Result<Pairs> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let header: Vec<usize> = lines
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty pairs file"))?
        .split_whitespace()
        .map(|t| t.parse().map_err(|_| anyhow::anyhow!("header must be a count or 'folds count', got {t:?}")))
        .collect::<anyhow::Result<_>>()?;
    let mut pairs = Vec::new();
    for (i, line) in lines.enumerate() {
        let t: Vec<&str> = line.split_whitespace().collect();
        let num = |s: &str| s.parse::<u32>().map_err(|_| anyhow::anyhow!("line {}: {s:?} is not an image number", i + 2));
        let pair = match t.as_slice() {
            [name, n1, n2] => Pair { a: (name.to_string(), num(n1)?), b: (name.to_string(), num(n2)?), same: true },
            [a, n1, b, n2] => Pair { a: (a.to_string(), num(n1)?), b: (b.to_string(), num(n2)?), same: false },
            _ => anyhow::bail!("line {}: expected 'name n1 n2' or 'name1 n1 name2 n2', got {line:?}", i + 2),
        };
        pairs.push(pair);
    }
    let (folds, n_folds) = match header.as_slice() {
        // checked: a header of huge numbers (found by fuzzing) must not overflow
        [f, c] if *f > 0 && f.checked_mul(2).and_then(|v| v.checked_mul(*c)) == Some(pairs.len()) => {
            ((0..pairs.len()).map(|i| i / (2 * c)).collect(), *f)
        }
        [c] if c.checked_mul(2) == Some(pairs.len()) => ((0..pairs.len()).map(|i| i % 10).collect(), 10),
        _ => anyhow::bail!("header {header:?} does not match {} pairs", pairs.len()),
    };
    Ok(Pairs { pairs, folds, n_folds })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_header_styles() {
        let p = parse_pairs("2\nA 1 2\nB 3 4\nA 1 C 2\nD 5 E 6\n").unwrap();
        assert_eq!(p.pairs.len(), 4);
        assert!(p.pairs[0].same && !p.pairs[2].same);
        assert_eq!(p.pairs[2].b, ("C".to_string(), 2));
        assert_eq!(p.folds, vec![0, 1, 2, 3]);
        let p = parse_pairs("2 1\nA 1 2\nA 1 C 2\nB 3 4\nD 5 E 6\n").unwrap();
        assert_eq!((p.n_folds, p.folds.clone()), (2, vec![0, 0, 1, 1]));
        let (a, _) = p.pairs[0].paths(Path::new("/x"));
        assert_eq!(a, Path::new("/x/A/A_0001.jpg"));
        assert!(parse_pairs("3\nA 1 2\n").is_err());
        assert!(parse_pairs("1\nA 1 two\nB 1 C 2\n").is_err());
        // headers whose counts overflow are errors (the first one found by `fuzz/` pairs)
        assert!(parse_pairs("005500505001100010005 5").is_err());
        assert!(parse_pairs(&format!("{} 2\nA 1 2\nA 1 C 2\n", usize::MAX / 2 + 1)).is_err());
        assert!(parse_pairs(&format!("{}\nA 1 2\nA 1 C 2\n", usize::MAX / 2 + 1)).is_err());
    }
}
