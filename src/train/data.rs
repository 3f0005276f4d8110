//! Training data: a folder with one sub-folder per person (the LFW layout) or an
//! arcface-pytorch list file (`path label` per line); faces detected and aligned once with the
//! pipeline and cached outside DATA, keyed by file fingerprint; shuffling, augmentation and
//! batching from a seeded generator, so a run is repeatable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use image::RgbImage;
use rayon::prelude::*;
use rusqlite::OptionalExtension;

use crate::photo;
use crate::pipeline::{self, align, Pipeline};

/// Why DATA cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: no photos found (expected one sub-folder of photos per person, or a list file of 'path label' lines)")]
    Empty { path: PathBuf },
    #[error("{path}:{line}: expected 'path label' with an integer label, got {text:?}")]
    BadLine { path: PathBuf, line: usize, text: String },
    #[error("only {people} {} with at least {min_images} usable photos (of {total} people): training needs at least two", if *people == 1 { "person" } else { "people" })]
    TooFewPeople { people: usize, min_images: usize, total: usize },
}

/// Photos and their person, before any face is looked for.
#[derive(Debug, Clone)]
pub struct Listing {
    /// (photo, person key) in a stable order.
    pub items: Vec<(PathBuf, String)>,
}

/// Lists DATA: a folder of per-person folders, or a list file.
pub fn list(data: &Path) -> anyhow::Result<Listing> {
    let mut items = Vec::new();
    if data.is_dir() {
        let mut people: Vec<PathBuf> = std::fs::read_dir(data)
            .with_context(|| format!("cannot read {}", data.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        people.sort();
        for dir in people {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir)
                .with_context(|| format!("cannot read {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && crate::photo::is_photo_path(p))
                .collect();
            photos.sort();
            items.extend(photos.into_iter().map(|p| (p, name.clone())));
        }
    } else {
        let text = std::fs::read_to_string(data).with_context(|| format!("cannot read {}", data.display()))?;
        items = parse_list(&text, data)?;
    }
    if items.is_empty() {
        return Err(DataError::Empty { path: data.to_path_buf() }.into());
    }
    Ok(Listing { items })
}

/// Parses an arcface-pytorch list file (`path label` per line; blank lines and `#` comments
/// skipped) read from `file`: relative paths are taken from the file's folder. A line that does
/// not parse is an error naming the file and the line.
pub fn parse_list(text: &str, file: &Path) -> Result<Vec<(PathBuf, String)>, DataError> {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let bad = || DataError::BadLine { path: file.to_path_buf(), line: i + 1, text: line.to_string() };
        let (path, label) = t.rsplit_once(char::is_whitespace).ok_or_else(bad)?;
        let label: i64 = label.trim().parse().map_err(|_| bad())?;
        let path = Path::new(path.trim());
        items.push((if path.is_absolute() { path.to_path_buf() } else { base.join(path) }, label.to_string()));
    }
    Ok(items)
}

/// Aligned 112x112 crops cached in SQLite, keyed by (file fingerprint, pipeline key): a photo is
/// detected and aligned once, and a killed run loses at most the photos in flight.
pub struct CropCache {
    conn: rusqlite::Connection,
    key: String,
}

/// `PRAGMA application_id` of the training crop cache ("FFCC").
const CROP_CACHE_ID: i32 = 0x4646_4343;

/// What the cache knows of one photo: its crop, or why there is none.
pub type Cached = Result<RgbImage, String>;

impl CropCache {
    /// The default location: `<user cache>/facefind/train-crops.sqlite`.
    pub fn default_path() -> anyhow::Result<PathBuf> {
        let dirs = directories::ProjectDirs::from("", "", "facefind").context("no user cache directory")?;
        Ok(dirs.cache_dir().join("train-crops.sqlite"))
    }

    /// `key` names what produced the crops (detector digest and settings): a different key
    /// never reads another's crops.
    pub fn open(path: &Path, key: &str) -> anyhow::Result<Self> {
        use crate::catalog::{schema, CatalogError};
        // never another program's database (a `--cache` typo): refused untouched
        match schema::inspect_as(path, CROP_CACHE_ID, &[("crops", &["fingerprint", "key", "pixels", "reason"])]) {
            Err(CatalogError::NotOurs { path, what }) => {
                anyhow::bail!("{} is not a facefind crop cache ({what}); it was left untouched: choose another --cache", path.display())
            }
            r => {
                r?;
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let conn = rusqlite::Connection::open(path).with_context(|| format!("cannot open crop cache {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // new, or made before the id: marked as ours (checked above), so it is known at once
        conn.pragma_update(None, "application_id", CROP_CACHE_ID)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS crops (fingerprint BLOB NOT NULL, key TEXT NOT NULL, pixels BLOB, reason TEXT,
                 PRIMARY KEY (fingerprint, key));",
        )
        .with_context(|| format!("cannot set up crop cache {}", path.display()))?;
        Ok(Self { conn, key: key.to_string() })
    }

    fn get(&self, fp: &[u8]) -> anyhow::Result<Option<Cached>> {
        let row: Option<(Option<Vec<u8>>, Option<String>)> = self
            .conn
            .query_row("SELECT pixels, reason FROM crops WHERE fingerprint = ?1 AND key = ?2", rusqlite::params![fp, self.key], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        Ok(row.map(|(px, reason)| match px.and_then(|px| RgbImage::from_raw(112, 112, px)) {
            Some(img) => Ok(img),
            None => Err(reason.unwrap_or_else(|| "unreadable cache entry".into())),
        }))
    }

    fn put(&mut self, rows: &[(Vec<u8>, Cached)]) -> anyhow::Result<()> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for (fp, c) in rows {
            let (px, reason) = match c {
                Ok(img) => (Some(img.as_raw().clone()), None),
                Err(r) => (None, Some(r.clone())),
            };
            tx.execute(
                "INSERT OR REPLACE INTO crops(fingerprint, key, pixels, reason) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![fp, self.key, px, reason],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Detect -> the face nearest the centre -> aligned crop, for one decoded photo.
pub fn central_crop(p: &Pipeline, img: &RgbImage) -> Cached {
    let faces = p.detect(img).map_err(|e| format!("detector failed: {e}"))?;
    let face = pipeline::central_face(&faces, img.width(), img.height()).ok_or_else(|| "no face found".to_string())?;
    Ok(align::align(img, &face.landmarks).unwrap_or_else(|| align::center_crop(img, 1.0)))
}

/// Crops for `paths` (cached ones read, the rest detected and written in batches);
/// `progress(done, total)` after each batch.
pub fn crops(
    p: &Pipeline,
    cache: &mut CropCache,
    paths: &[PathBuf],
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<Vec<Cached>> {
    let mut out: Vec<Option<Cached>> = vec![None; paths.len()];
    const CHUNK: usize = 32;
    let total = paths.len();
    for (ci, chunk) in paths.chunks(CHUNK).enumerate() {
        // fingerprints and cache lookups
        let fps: Vec<Result<Vec<u8>, String>> = chunk
            .par_iter()
            .map(|path| {
                let size = std::fs::metadata(path).map_err(|e| format!("cannot read file: {e}"))?.len();
                if size == 0 {
                    return Err("empty file".to_string());
                }
                crate::util::digest::fingerprint(path, size).map_err(|e| format!("cannot read file: {e}"))
            })
            .collect();
        let mut todo = Vec::new();
        for (j, fp) in fps.into_iter().enumerate() {
            let i = ci * CHUNK + j;
            match fp {
                Err(reason) => out[i] = Some(Err(reason)),
                Ok(fp) => match cache.get(&fp)? {
                    Some(c) => out[i] = Some(c),
                    None => todo.push((i, fp)),
                },
            }
        }
        if !todo.is_empty() {
            let decoded: Vec<Result<RgbImage, String>> =
                todo.par_iter().map(|(i, _)| photo::load_rgb(&paths[*i]).map_err(|e| e.to_string())).collect();
            let mut rows = Vec::with_capacity(todo.len());
            for ((i, fp), img) in todo.into_iter().zip(decoded) {
                let c = img.and_then(|img| central_crop(p, &img));
                out[i] = Some(c.clone());
                rows.push((fp, c));
            }
            cache.put(&rows)?;
        }
        progress(((ci + 1) * CHUNK).min(total), total);
    }
    Ok(out.into_iter().map(|c| c.unwrap_or_else(|| Err("not processed".into()))).collect())
}

/// The training set: crops, labels 0..people, and what was left out.
#[derive(Debug)]
pub struct Dataset {
    pub crops: Vec<RgbImage>,
    pub labels: Vec<u32>,
    /// Person keys, by label.
    pub people: Vec<String>,
    pub skipped: Vec<(PathBuf, String)>,
    /// People left out for having fewer than `min_images` usable photos.
    pub people_left_out: usize,
}

/// Builds the training set from a listing and its crops.
pub fn dataset(listing: &Listing, crops: Vec<Cached>, min_images: usize) -> Result<Dataset, DataError> {
    let mut by_person: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut total_people: BTreeMap<&str, ()> = BTreeMap::new();
    for (i, ((path, person), c)) in listing.items.iter().zip(&crops).enumerate() {
        total_people.insert(person, ());
        match c {
            Ok(_) => by_person.entry(person).or_default().push(i),
            Err(reason) => skipped.push((path.clone(), reason.clone())),
        }
    }
    let kept: Vec<(&str, Vec<usize>)> = by_person.into_iter().filter(|(_, v)| v.len() >= min_images.max(1)).collect();
    let people_left_out = total_people.len() - kept.len();
    if kept.len() < 2 {
        return Err(DataError::TooFewPeople { people: kept.len(), min_images, total: total_people.len() });
    }
    let mut crops: Vec<Option<RgbImage>> = crops.into_iter().map(|c| c.ok()).collect();
    let (mut out, mut labels, mut people) = (Vec::new(), Vec::new(), Vec::new());
    for (label, (person, idx)) in kept.into_iter().enumerate() {
        people.push(person.to_string());
        for i in idx {
            if let Some(c) = crops[i].take() {
                out.push(c);
                labels.push(label as u32);
            }
        }
    }
    Ok(Dataset { crops: out, labels, people, skipped, people_left_out })
}

/// The order of epoch `epoch`'s samples.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    crate::util::rng::Rng::stream(seed, 1, epoch as u64).shuffle(&mut order);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_file_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("train.txt");
        std::fs::write(&f, "a/1.jpg 0\na/2.jpg 0\nb/1.jpg x\n").unwrap();
        let err = list(&f).unwrap_err().to_string();
        assert!(err.contains("train.txt:3") && err.contains("b/1.jpg x"), "{err}");
        std::fs::write(&f, "a/1.jpg 0\n\n# comment\nb/1.jpg 1\n").unwrap();
        let l = list(&f).unwrap();
        assert_eq!(l.items.len(), 2);
        assert_eq!(l.items[1], (dir.path().join("b/1.jpg"), "1".to_string()));
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(list(&empty).unwrap_err().to_string().contains("no photos found"));
    }

    #[test]
    fn people_below_min_images_are_left_out_and_one_person_is_an_error() {
        let crop = || Ok(RgbImage::new(112, 112));
        let items = vec![
            (PathBuf::from("a1"), "a".to_string()),
            (PathBuf::from("a2"), "a".to_string()),
            (PathBuf::from("b1"), "b".to_string()),
            (PathBuf::from("b2"), "b".to_string()),
            (PathBuf::from("c1"), "c".to_string()),
            (PathBuf::from("c2"), "c".to_string()),
        ];
        let listing = Listing { items };
        let d = dataset(&listing, vec![crop(), crop(), crop(), Err("no face found".into()), crop(), crop()], 2).unwrap();
        assert_eq!(d.people, vec!["a", "c"]);
        assert_eq!(d.labels, vec![0, 0, 1, 1]);
        assert_eq!(d.people_left_out, 1);
        assert_eq!(d.skipped, vec![(PathBuf::from("b2"), "no face found".to_string())]);
        let err = dataset(&listing, vec![crop(), crop(), crop(), Err("x".into()), Err("x".into()), crop()], 2).unwrap_err();
        assert!(err.to_string().contains("only 1 person"), "{err}");
    }

    #[test]
    fn shuffles_are_repeatable_per_seed_and_epoch() {
        assert_eq!(epoch_order(50, 7, 3), epoch_order(50, 7, 3));
        assert_ne!(epoch_order(50, 7, 3), epoch_order(50, 7, 4));
        assert_ne!(epoch_order(50, 7, 3), epoch_order(50, 8, 3));
        let mut o = epoch_order(50, 7, 3);
        o.sort();
        assert_eq!(o, (0..50).collect::<Vec<_>>());
    }
}
