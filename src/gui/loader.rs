//! Loading the images the app shows — catalog thumbnails and face chips, photos for the
//! inspector — on worker threads, most recently wanted first.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};

use eframe::egui;

use crate::catalog::Catalog;
use crate::photo;

/// An RGB image as egui takes it.
pub fn color_image(img: &image::RgbImage) -> egui::ColorImage {
    egui::ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw())
}

/// An image the grid, the strip or the inspector shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageKey {
    /// A photo's catalog thumbnail (~256 px).
    Thumb(i64),
    /// A face's catalog chip (~96 px).
    Chip(i64),
    /// A photo decoded from its file for the inspector (long side ≤ 2048).
    Photo(i64),
}

const PHOTO_LONG_SIDE: u32 = 2048;

struct LoaderState {
    folder: PathBuf,
    catalog: Option<PathBuf>,
    /// Bumped when the source changes; results of an older generation are dropped.
    generation: u64,
    queue: VecDeque<ImageKey>,
    in_flight: HashSet<ImageKey>,
    shutdown: bool,
}

struct LoaderShared {
    state: Mutex<LoaderState>,
    wake: Condvar,
}

/// A loaded texture (or why it could not be loaded).
pub struct Loaded {
    pub generation: u64,
    pub key: ImageKey,
    pub image: Result<egui::TextureHandle, String>,
}

/// Decodes thumbnails, chips and photos on worker threads. The UI says each frame which images
/// it is missing ([`Loader::want`]); only those are loaded, most recently wanted first, so a
/// fast scroll does not queue work for rows already gone.
pub struct Loader {
    shared: Arc<LoaderShared>,
    pub rx: Receiver<Loaded>,
}

impl Loader {
    pub fn new(ctx: egui::Context, threads: usize) -> Self {
        let shared = Arc::new(LoaderShared {
            state: Mutex::new(LoaderState {
                folder: PathBuf::new(),
                catalog: None,
                generation: 0,
                queue: VecDeque::new(),
                in_flight: HashSet::new(),
                shutdown: false,
            }),
            wake: Condvar::new(),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..threads {
            let shared = shared.clone();
            let tx = tx.clone();
            let ctx = ctx.clone();
            let _ = std::thread::Builder::new().name(format!("loader-{i}")).spawn(move || loader_thread(&shared, &tx, &ctx));
        }
        Self { shared, rx }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoaderState> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Switches to another folder's catalog; returns the new generation.
    pub fn set_source(&self, folder: &Path, catalog: Option<&Path>) -> u64 {
        let mut s = self.lock();
        s.folder = folder.to_path_buf();
        s.catalog = catalog.map(Path::to_path_buf);
        s.generation += 1;
        s.queue.clear();
        s.generation
    }

    /// Replaces the queue with `keys` (in priority order), minus those already being loaded.
    pub fn want(&self, keys: &[ImageKey]) {
        let mut s = self.lock();
        let queue: VecDeque<ImageKey> = keys.iter().filter(|k| !s.in_flight.contains(k)).copied().collect();
        let any = !queue.is_empty();
        s.queue = queue;
        drop(s);
        if any {
            self.shared.wake.notify_all();
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.lock().shutdown = true;
        self.shared.wake.notify_all();
    }
}

fn loader_thread(shared: &LoaderShared, tx: &Sender<Loaded>, ctx: &egui::Context) {
    let mut conn: Option<(u64, Catalog)> = None;
    loop {
        let (key, generation, folder, catalog) = {
            let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if s.shutdown {
                    return;
                }
                if let Some(k) = s.queue.pop_front() {
                    s.in_flight.insert(k);
                    break (k, s.generation, s.folder.clone(), s.catalog.clone());
                }
                s = shared.wake.wait(s).unwrap_or_else(|e| e.into_inner());
            }
        };
        if conn.as_ref().is_none_or(|(g, _)| *g != generation) {
            conn = catalog.as_ref().and_then(|c| Catalog::open(c).ok()).map(|c| (generation, c));
        }
        let image = load(key, conn.as_ref().map(|c| &c.1), &folder)
            .map(|img| ctx.load_texture(format!("{key:?}@{generation}"), img, egui::TextureOptions::LINEAR));
        shared.state.lock().unwrap_or_else(|e| e.into_inner()).in_flight.remove(&key);
        if tx.send(Loaded { generation, key, image }).is_err() {
            return;
        }
        ctx.request_repaint();
    }
}

fn load(key: ImageKey, cat: Option<&Catalog>, folder: &Path) -> Result<egui::ColorImage, String> {
    let blob = |b: Result<Option<Vec<u8>>, crate::catalog::CatalogError>| -> Result<egui::ColorImage, String> {
        let bytes = b.map_err(|e| e.to_string())?.ok_or("not in the catalog")?;
        let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).map_err(|e| e.to_string())?;
        Ok(color_image(&img.to_rgb8()))
    };
    match key {
        ImageKey::Thumb(id) => blob(cat.ok_or("no catalog")?.thumbnail(id)),
        ImageKey::Chip(id) => blob(cat.ok_or("no catalog")?.chip(id)),
        ImageKey::Photo(id) => {
            let cat = cat.ok_or("no catalog")?;
            let rel = cat.photo_path(id).map_err(|e| e.to_string())?.ok_or("not in the catalog")?;
            let path = folder.join(crate::catalog::bytes_path(&rel));
            let img = photo::load_rgb(&path).map_err(|e| e.to_string())?;
            let (w, h) = img.dimensions();
            let s = (PHOTO_LONG_SIDE as f32 / w.max(h) as f32).min(1.0);
            let img = if s < 1.0 {
                photo::resize(&img, ((w as f32 * s).round() as u32).max(1), ((h as f32 * s).round() as u32).max(1))
            } else {
                img
            };
            Ok(color_image(&img))
        }
    }
}
