//! The app's textures: thumbnails, face chips and inspector photos by key, least recently
//! used first out. Kept by hand rather than through egui_extras' image loaders, which never
//! evict: a library of a million photos scrolled end to end would keep every thumbnail.

use std::collections::{HashMap, HashSet};

use std::time::{Duration, Instant};

use eframe::egui;

use super::library::Library;
use super::loader::{ImageKey, Loaded, Loader};

/// An image that failed is asked for again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Textures by key with least-recently-used eviction; misses are collected as the frame draws
/// and handed to the [`Loader`] at its end.
pub(super) struct Textures {
    map: HashMap<ImageKey, (egui::TextureHandle, u64)>,
    /// Images that could not be loaded, and when: asked for again after [`RETRY_AFTER`] or
    /// when a new snapshot of the catalog arrives (a photo being indexed has no thumbnail yet).
    failed: HashMap<ImageKey, (String, Instant)>,
    wanted: Vec<ImageKey>,
    frame: u64,
    generation: u64,
}

/// Thumbnails and chips kept as textures (~256 KiB each at most: ≤ 150 MiB).
const TEXTURE_CAP: usize = 600;
/// Full photos kept for the inspector (≤ 16 MiB each).
const PHOTO_CAP: usize = 4;

impl Textures {
    pub(super) fn new() -> Self {
        Self { map: HashMap::new(), failed: HashMap::new(), wanted: Vec::new(), frame: 0, generation: 0 }
    }

    pub(super) fn get(&mut self, key: ImageKey) -> Option<egui::TextureHandle> {
        if let Some(e) = self.map.get_mut(&key) {
            e.1 = self.frame;
            return Some(e.0.clone());
        }
        match self.failed.get(&key) {
            Some((_, at)) if at.elapsed() < RETRY_AFTER => {}
            _ => self.wanted.push(key),
        }
        None
    }

    pub(super) fn insert(&mut self, l: Loaded) {
        if l.generation != self.generation {
            return;
        }
        match l.image {
            Ok(t) => {
                self.failed.remove(&l.key);
                self.map.insert(l.key, (t, self.frame));
            }
            Err(e) => {
                tracing::warn!(key = ?l.key, error = %e, "image not loaded");
                self.failed.insert(l.key, (e, Instant::now()));
            }
        }
    }

    pub(super) fn end_frame(&mut self, loader: &Loader) {
        // Photos for the inspector first, then what is on screen in drawing order.
        self.wanted.sort_by_key(|k| !matches!(k, ImageKey::Photo(_)));
        let mut seen = HashSet::new();
        self.wanted.retain(|k| seen.insert(*k));
        loader.want(&self.wanted);
        self.wanted.clear();
        for (is_photo, cap) in [(false, TEXTURE_CAP), (true, PHOTO_CAP)] {
            let mut entries: Vec<(u64, ImageKey)> =
                self.map.iter().filter(|(k, _)| matches!(k, ImageKey::Photo(_)) == is_photo).map(|(k, v)| (v.1, *k)).collect();
            if entries.len() > cap {
                entries.sort_unstable_by_key(|e| e.0);
                for (used, k) in &entries[..entries.len() - cap] {
                    if *used < self.frame {
                        self.map.remove(k);
                    }
                }
            }
        }
        self.frame += 1;
    }

    pub(super) fn reset(&mut self, generation: u64) {
        self.map.clear();
        self.failed.clear();
        self.wanted.clear();
        self.generation = generation;
    }

    /// A new snapshot of the catalog replaces `old`: the images of photos processed again
    /// since (their file changed: a new thumbnail, new chips) are loaded again, and so is
    /// everything that failed (it may be there now).
    pub(super) fn refresh(&mut self, old: &Library, new: &Library) {
        self.failed.clear();
        // only the images held are looked at (at most the caps), never every photo
        let changed = |photo: i64| match (old.photo(photo), new.photo(photo)) {
            (Some(a), Some(b)) => a.mtime_ns != b.mtime_ns,
            _ => false,
        };
        let photo_of_face = |lib: &Library, face: i64| lib.row_of_face(face).map(|r| lib.table.photo_id(r));
        self.map.retain(|k, _| match *k {
            ImageKey::Thumb(id) | ImageKey::Photo(id) => !changed(id),
            // a face processed again, or an id SQLite gave to a face of another photo
            ImageKey::Chip(face) => {
                let (was, is) = (photo_of_face(old, face), photo_of_face(new, face));
                was == is && !is.is_some_and(changed)
            }
        });
    }

    /// Whether an image is held (tests).
    #[cfg(test)]
    pub(super) fn holds(&self, key: ImageKey) -> bool {
        self.map.contains_key(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::library::tests::synthetic;

    /// A photo processed again (its file changed) gets its thumbnail, photo and chips loaded
    /// again; other images stay; an image that failed is asked for again with a new snapshot.
    #[test]
    fn images_of_a_photo_processed_again_are_loaded_again() {
        let ctx = egui::Context::default();
        let mut t = Textures::new();
        for key in [ImageKey::Thumb(1), ImageKey::Thumb(2), ImageKey::Photo(2), ImageKey::Chip(10), ImageKey::Chip(20), ImageKey::Chip(21)]
        {
            let image = Ok(ctx.load_texture(
                format!("{key:?}"),
                egui::ColorImage::filled([1, 1], egui::Color32::GRAY),
                egui::TextureOptions::LINEAR,
            ));
            t.insert(Loaded { generation: 0, key, image });
        }
        t.insert(Loaded { generation: 0, key: ImageKey::Thumb(3), image: Err("not in the catalog".into()) });
        assert!(t.get(ImageKey::Thumb(3)).is_none() && t.wanted.is_empty(), "a failure is not asked for again at once");
        let old = synthetic(3);
        let mut new = synthetic(3);
        new.photos[1].mtime_ns += 1; // photo 2 (faces 20, 21) was processed again
        t.refresh(&old, &new);
        for (key, kept) in [
            (ImageKey::Thumb(1), true),
            (ImageKey::Chip(10), true),
            (ImageKey::Thumb(2), false),
            (ImageKey::Photo(2), false),
            (ImageKey::Chip(20), false),
            (ImageKey::Chip(21), false),
        ] {
            assert_eq!(t.holds(key), kept, "{key:?}");
        }
        assert!(t.get(ImageKey::Thumb(3)).is_none());
        assert_eq!(t.wanted, vec![ImageKey::Thumb(3)], "asked for again after a new snapshot");
    }
}
