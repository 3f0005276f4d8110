//! Indexing a folder into its catalog: scan, skip what is unchanged, recognise renames by
//! fingerprint, process the rest in batches (decode in parallel, detect, align, embed) and
//! commit each batch in one transaction.

pub mod scan;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use image::RgbImage;
use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::{bytes_path, path_bytes, Catalog, CatalogError, FaceRecord, Identity, PhotoRecord, Status};
use crate::photo;
use crate::pipeline::{Pipeline, DETECTOR_MODEL};
use crate::util::digest::{fingerprint, fingerprint_bytes};
use scan::{scan_with, ScanOptions, ScannedFile};

/// Photos per transaction: a killed run loses at most this many photos of work.
pub const BATCH: usize = 8;
/// Decode JPEGs at a DCT scale keeping at least this long side (detection works at <= 1280).
const DECODE_LONG_SIDE: u32 = 1600;
/// Eye distance (decoded pixels) below which a scaled-down decode is not enough to align from
/// (the ArcFace template puts the eyes 35 px apart).
const MIN_EYE_DISTANCE: f32 = 32.0;
const THUMBNAIL: u32 = 256;

/// What happened in one indexing run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Photo files found in the folder.
    pub photos: usize,
    /// Processed this run (new or modified).
    pub processed: usize,
    pub unchanged: usize,
    pub renamed: usize,
    pub removed: usize,
    /// Faces found in the photos processed this run.
    pub new_faces: usize,
    /// Faces in the whole catalog after the run.
    pub faces: usize,
    /// Files processed this run that could not be used, by reason.
    pub skipped: BTreeMap<String, usize>,
    /// Folders the scan could not enter (unreadable, symlink loops).
    pub unreadable_folders: usize,
    /// Symbolic links leading outside the folder, not followed (see `--follow-links`).
    pub outside_links: usize,
    /// Files reachable by a second path (a link, a hard link), indexed once.
    pub duplicates: usize,
    /// The detector or its settings changed, so every photo was processed again.
    pub rebuilt: bool,
    /// The embedder (or flip fusion) changed: photos re-embedded from their stored landmarks.
    pub reembedded: usize,
    pub cancelled: bool,
    /// Named regions of other tools applied this run.
    pub regions: crate::catalog::regions::ImportSummary,
    /// Grouping into people after the run (absent when nothing changed).
    pub people: Option<crate::catalog::people::GroupSummary>,
    pub seconds: f64,
    /// Where the time went.
    pub profile: Profile,
}

/// Where an index run's time went (`facefind index --profile`): seconds per stage summed over
/// the threads that ran it (so stages that overlap add up to more than the wall time), the
/// wall time, and the CPU time of the whole process (its ratio to wall × cores says how busy
/// the cores were).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Profile {
    pub read: f64,
    pub fingerprint: f64,
    pub decode: f64,
    pub detect: f64,
    pub align: f64,
    pub embed: f64,
    /// JPEG encoding of thumbnails and face chips.
    pub encode: f64,
    pub catalog_write: f64,
    pub people: f64,
    pub wall: f64,
    pub cpu: f64,
}

/// Per-stage clocks shared by the decoding threads and the network loop.
#[derive(Default)]
struct Clocks([std::sync::atomic::AtomicU64; 9]);

#[derive(Clone, Copy)]
enum Stage {
    Read,
    Fingerprint,
    Decode,
    Detect,
    Align,
    Embed,
    Encode,
    Write,
    People,
}

impl Clocks {
    /// Runs `f`, adding its duration to `stage`.
    fn time<T>(&self, stage: Stage, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.0[stage as usize].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
    fn profile(&self, wall: f64, cpu: f64) -> Profile {
        let s = |st: Stage| self.0[st as usize].load(Ordering::Relaxed) as f64 * 1e-9;
        Profile {
            read: s(Stage::Read),
            fingerprint: s(Stage::Fingerprint),
            decode: s(Stage::Decode),
            detect: s(Stage::Detect),
            align: s(Stage::Align),
            embed: s(Stage::Embed),
            encode: s(Stage::Encode),
            catalog_write: s(Stage::Write),
            people: s(Stage::People),
            wall,
            cpu,
        }
    }
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    #[cfg(unix)]
    {
        let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes one `rusage` into the pointer, which points at enough
        // zero-initialised memory for it; the return value is checked before it is read.
        let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) } == 0;
        if ok {
            // SAFETY: getrusage succeeded, so the struct is initialised (and was zeroed anyway).
            let u = unsafe { u.assume_init() };
            let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
            return t(u.ru_utime) + t(u.ru_stime);
        }
    }
    0.0
}

/// Progress events, for a terminal bar or the app.
#[derive(Debug, Clone)]
pub enum Event {
    /// Scan finished: `todo` photos of `total` need processing.
    Planned { todo: usize, total: usize },
    /// One more photo processed.
    Photo { done: usize, todo: usize, faces: usize },
    /// A file could not be used (path relative to the folder, reason).
    Skipped { path: String, reason: String },
    /// A batch was committed: these photo paths are now in the catalog.
    Committed { done: usize },
}

/// What decides the faces a catalog holds: the detector and the settings that move faces.
pub fn detection_identity(p: &Pipeline) -> String {
    let s = &p.settings;
    format!("{} upscale={:?}", detection_identity_v3(p), s.upscale)
}

/// [`detection_identity`] as catalogs before [`crate::pipeline::Upscale`] wrote it (every small
/// photo upscaled).
fn detection_identity_v3(p: &Pipeline) -> String {
    let s = &p.settings;
    format!(
        "detector={} score={} nms={} max_side={} min_side={}",
        DETECTOR_MODEL.sha256, s.score_threshold, s.nms_iou, s.detect_max_side, s.detect_min_side
    )
}

/// What decides their embeddings: the embedder file and flip fusion.
pub fn embedding_identity(p: &Pipeline) -> String {
    format!("embedder={} flip={}", p.embedder_sha256(), p.settings.flip)
}

/// The single identity string catalogs of schema 2 kept (both digests and the settings).
fn legacy_identity(p: &Pipeline) -> String {
    format!(
        "detector={} embedder={} settings={}",
        DETECTOR_MODEL.sha256,
        p.embedder_sha256(),
        serde_json::to_string(&p.settings).unwrap_or_default()
    )
}

/// What the pipeline's faces and embeddings depend on, for [`Catalog::ensure_identity`].
pub fn identity(p: &Pipeline) -> Identity {
    // before the upscale policy every small photo was upscaled (what `Always` does): with
    // `Always` nothing changes, otherwise photos under `detect_min_side` are detected again
    let below = if p.settings.upscale == crate::pipeline::Upscale::Always { 0 } else { p.settings.detect_min_side };
    Identity {
        detection: detection_identity(p),
        embedding: embedding_identity(p),
        legacy: legacy_identity(p),
        before_upscale: Some((detection_identity_v3(p), below)),
    }
}

/// Checks the catalog against the pipeline (see [`Catalog::ensure_identity`]).
pub fn ensure_identity(cat: &mut Catalog, p: &Pipeline) -> Result<crate::catalog::IdentityChange, CatalogError> {
    cat.ensure_identity(&identity(p))
}

/// Re-embeds the faces of photos queued by an embedder change, from their stored landmarks
/// (no detection), in committed batches; a photo that cannot be read any more is marked
/// changed so the next run processes it from the file.
fn reembed(
    root: &Path,
    cat: &mut Catalog,
    p: &Pipeline,
    cancel: &AtomicBool,
    sum: &mut Summary,
    on: &mut dyn FnMut(Event),
) -> Result<(), IndexError> {
    let pending = cat.pending_embeddings()?;
    if pending.is_empty() {
        return Ok(());
    }
    on(Event::Planned { todo: pending.len(), total: sum.photos });
    let mut done = 0;
    for batch in pending.chunks(BATCH) {
        if cancel.load(Ordering::Relaxed) {
            sum.cancelled = true;
            break;
        }
        let decoded: Vec<Result<RgbImage, photo::PhotoError>> =
            batch.par_iter().map(|ph| photo::load_rgb(&root.join(bytes_path(&ph.path)))).collect();
        let (mut crops, mut ids, mut ok, mut retry) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (ph, img) in batch.iter().zip(decoded) {
            match img {
                Ok(img) => {
                    for (face_id, lm) in &ph.faces {
                        crops.push(
                            crate::pipeline::align::align(&img, lm).unwrap_or_else(|| crate::pipeline::align::center_crop(&img, 1.0)),
                        );
                        ids.push(*face_id);
                    }
                    ok.push(ph.photo_id);
                }
                Err(e) => {
                    tracing::info!(path = %crate::catalog::names::display_rel(&ph.path), "cannot re-embed ({e}); it will be indexed again");
                    retry.push(ph.photo_id);
                }
            }
            done += 1;
            on(Event::Photo { done, todo: pending.len(), faces: ids.len() });
        }
        let embs = p.embed(&crops).map_err(|e| IndexError::Pipeline(e.into()))?;
        let faces: Vec<(i64, Vec<f32>)> = ids.into_iter().zip(embs).collect();
        cat.write_embeddings(&faces, &ok, &retry)?;
        sum.reembedded += ok.len();
        on(Event::Committed { done });
    }
    Ok(())
}

fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    if img.write_with_encoder(enc).is_err() {
        out.clear();
    }
    out
}

fn fit(img: &RgbImage, side: u32) -> RgbImage {
    let s = side as f32 / img.width().max(img.height()) as f32;
    if s >= 1.0 {
        return img.clone();
    }
    let w = ((img.width() as f32 * s).round() as u32).max(1);
    let h = ((img.height() as f32 * s).round() as u32).max(1);
    photo::resize(img, w, h)
}

/// A file read and decoded (in parallel), waiting for the networks. The file's bytes are not
/// kept (a 100 MP PNG is hundreds of MB): the rare full-resolution re-decode reads it again.
struct Prepared {
    file: ScannedFile,
    fingerprint: Vec<u8>,
    decoded: Result<photo::Decoded, photo::PhotoError>,
    /// When it was taken (`photo::taken`).
    taken: Option<String>,
    /// Named face regions of other tools (`photo::regions`).
    regions: Vec<photo::regions::Region>,
}

fn prepare(root: &Path, file: &ScannedFile, clocks: &Clocks) -> Option<Prepared> {
    let path = root.join(&file.rel);
    let data = match clocks.time(Stage::Read, || std::fs::read(&path)) {
        Ok(d) => d,
        // gone since the scan: nothing to record
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            return Some(Prepared { file: file.clone(), fingerprint: Vec::new(), decoded: Err(e.into()), taken: None, regions: Vec::new() })
        }
    };
    let fp = clocks.time(Stage::Fingerprint, || fingerprint_bytes(&data));
    let decoded = clocks.time(Stage::Decode, || {
        if photo::is_raw_path(&file.rel) {
            photo::decode_raw_scaled(&data, DECODE_LONG_SIDE)
        } else {
            photo::decode_scaled(&data, DECODE_LONG_SIDE)
        }
    });
    let (taken, regions) = match &decoded {
        Ok(d) => photo::regions::read_with_date(&path, &data, (d.full_width, d.full_height)),
        Err(_) => (photo::taken::read(&path, &data), Vec::new()),
    };
    let taken = taken.map(|t| t.to_string());
    drop(data);
    Some(Prepared { file: file.clone(), fingerprint: fp, decoded, taken, regions })
}

/// A photo's record (embeddings still empty) and its faces' aligned crops.
type Analysed = (PhotoRecord, Vec<RgbImage>);

/// Detects, aligns and describes one decoded photo; embeddings are filled in by the caller.
fn analyse(p: &Pipeline, root: &Path, prep: &Prepared, dec: &photo::Decoded, clocks: &Clocks) -> anyhow::Result<Analysed> {
    let faces = clocks.time(Stage::Detect, || p.detect(&dec.rgb))?;
    let s = dec.scale_to_full();
    let small_face = faces.iter().any(|f| {
        let [l, r] = [f.landmarks[0], f.landmarks[1]];
        (l[0] - r[0]).hypot(l[1] - r[1]) < MIN_EYE_DISTANCE
    });
    // Align from full-resolution pixels when the scaled decode is too coarse for a face.
    let full = if s >= 1.5 && small_face { clocks.time(Stage::Decode, || photo::load_rgb(&root.join(&prep.file.rel)).ok()) } else { None };
    let crops = clocks.time(Stage::Align, || match &full {
        Some(full) => {
            let scaled: Vec<_> = faces.iter().map(|f| f.scaled(s)).collect();
            p.align(full, &scaled)
        }
        None => p.align(&dec.rgb, &faces),
    });
    drop(full);
    let t_encode = Instant::now();
    let records: Vec<FaceRecord> = faces
        .par_iter()
        .map(|f| {
            let full = f.scaled(s);
            let mut landmarks = [0f32; 10];
            for (i, q) in full.landmarks.iter().enumerate() {
                landmarks[2 * i] = q[0];
                landmarks[2 * i + 1] = q[1];
            }
            FaceRecord {
                bbox: full.bbox,
                score: f.score,
                landmarks,
                embedding: Vec::new(),
                chip: jpeg(&crate::pipeline::face_chip(&dec.rgb, f.bbox), 85),
            }
        })
        .collect();
    let record = PhotoRecord {
        path: path_bytes(&prep.file.rel),
        size: prep.file.size,
        mtime_ns: prep.file.mtime_ns,
        fingerprint: prep.fingerprint.clone(),
        width: dec.full_width,
        height: dec.full_height,
        status: if records.is_empty() { Status::NoFace } else { Status::Faces },
        reason: None,
        thumbnail: jpeg(&fit(&dec.rgb, THUMBNAIL), 80),
        faces: records,
        taken: prep.taken.clone(),
        regions: prep.regions.clone(),
        sidecar_sig: prep.file.sidecar_sig,
    };
    clocks.0[Stage::Encode as usize].fetch_add(t_encode.elapsed().as_nanos() as u64, Ordering::Relaxed);
    Ok((record, crops))
}

/// Detect, align and embed one decoded batch; bad files become records with their reason.
#[allow(clippy::too_many_arguments)]
fn process_batch(
    p: &Pipeline,
    root: &Path,
    clocks: &Clocks,
    prepared: &[Prepared],
    sum: &mut Summary,
    done: &mut usize,
    todo: usize,
    on: &mut dyn FnMut(Event),
) -> Result<Vec<PhotoRecord>, IndexError> {
    let mut records = Vec::with_capacity(prepared.len());
    let mut crops: Vec<RgbImage> = Vec::new();
    let mut owners: Vec<(usize, usize)> = Vec::new();
    // whole photos in parallel: a small photo's detection is too small to keep both cores busy
    let analysed: Vec<Result<anyhow::Result<Analysed>, &photo::PhotoError>> =
        prepared.par_iter().map(|prep| prep.decoded.as_ref().map(|dec| analyse(p, root, prep, dec, clocks))).collect();
    for (prep, analysed) in prepared.iter().zip(analysed) {
        let (rec, cs) = match analysed {
            Ok(r) => r.map_err(IndexError::Pipeline)?,
            Err(e) => {
                let status = if matches!(e, photo::PhotoError::Unsupported(_)) { Status::Unsupported } else { Status::Error };
                *sum.skipped.entry(e.kind().to_string()).or_default() += 1;
                on(Event::Skipped { path: prep.file.rel.to_string_lossy().into_owned(), reason: e.to_string() });
                let rec = PhotoRecord {
                    path: path_bytes(&prep.file.rel),
                    size: prep.file.size,
                    mtime_ns: prep.file.mtime_ns,
                    fingerprint: prep.fingerprint.clone(),
                    width: 0,
                    height: 0,
                    status,
                    reason: Some(e.to_string()),
                    thumbnail: Vec::new(),
                    faces: Vec::new(),
                    taken: prep.taken.clone(),
                    regions: Vec::new(),
                    sidecar_sig: prep.file.sidecar_sig,
                };
                (rec, Vec::new())
            }
        };
        for (i, c) in cs.into_iter().enumerate() {
            owners.push((records.len(), i));
            crops.push(c);
        }
        sum.new_faces += rec.faces.len();
        records.push(rec);
        *done += 1;
        on(Event::Photo { done: *done, todo, faces: sum.new_faces });
    }
    let embeddings = clocks.time(Stage::Embed, || p.embed(&crops)).map_err(|e| IndexError::Pipeline(e.into()))?;
    for ((r, i), e) in owners.into_iter().zip(embeddings) {
        records[r].faces[i].embedding = e;
    }
    Ok(records)
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("cannot read folder {0}")]
    Folder(String),
    #[error("face pipeline failed: {0:#}")]
    Pipeline(anyhow::Error),
}

/// Bytes of a file's head read first for a date the catalog does not have yet: EXIF and XMP
/// sit at the start of a JPEG (APP1 segments of at most 64 KB each); a file whose head holds
/// none is read whole (TIFF may keep its directory after the image, HEIF its Exif item in the
/// media data).
const DATE_HEAD: u64 = 256 * 1024;

/// When the photo at `path` was taken (`None`: it records nothing) and its named regions, for
/// a photo `shown` (width, height) as shown.
fn metadata_of(path: &Path, shown: (u32, u32)) -> std::io::Result<(Option<String>, Vec<photo::regions::Region>)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut head = Vec::new();
    (&mut file).take(DATE_HEAD).read_to_end(&mut head)?;
    // a JPEG's metadata comes before its image data; other files (TIFF, RAW, HEIF) may keep
    // their EXIF or XMP anywhere
    if !head.starts_with(&[0xFF, 0xD8]) && head.len() as u64 == DATE_HEAD {
        file.read_to_end(&mut head)?;
    }
    let (taken, regions) = photo::regions::read_with_date(path, &head, shown);
    Ok((taken.map(|t| t.to_string()), regions))
}

/// Reads the metadata (date, named regions) of photos indexed before the catalog kept it, or
/// whose sidecars changed (once per photo; a photo that cannot be read now is tried again by
/// the next run). Stops between chunks on `cancel`.
fn read_unread_metadata(root: &Path, cat: &mut Catalog, sigs: &HashMap<Vec<u8>, i64>, cancel: &AtomicBool) -> Result<(), IndexError> {
    let unread = cat.dates_unread()?;
    for chunk in unread.chunks(BATCH * 8) {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        let read: Vec<crate::catalog::MetadataRead> = chunk
            .par_iter()
            .filter_map(|(id, rel, shown)| {
                let (taken, regions) = metadata_of(&root.join(crate::catalog::bytes_path(rel)), *shown).ok()?;
                Some(crate::catalog::MetadataRead { id: *id, taken, regions, sidecar_sig: sigs.get(rel).copied().unwrap_or(0) })
            })
            .collect();
        cat.set_metadata(&read)?;
    }
    Ok(())
}

/// Brings the catalog up to date with `root`. Calls `on` with progress; stops after the
/// current batch when `cancel` is set. Links leading outside `root` are not followed.
pub fn index_folder(
    root: &Path,
    cat: &mut Catalog,
    p: &Pipeline,
    cancel: &AtomicBool,
    on: &mut dyn FnMut(Event),
) -> Result<Summary, IndexError> {
    index_folder_with(root, cat, p, cancel, on, ScanOptions::default())
}

/// [`index_folder`] with a choice of how links are followed.
pub fn index_folder_with(
    root: &Path,
    cat: &mut Catalog,
    p: &Pipeline,
    cancel: &AtomicBool,
    on: &mut dyn FnMut(Event),
    links: ScanOptions,
) -> Result<Summary, IndexError> {
    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    let clocks = &Clocks::default();
    if !root.is_dir() {
        return Err(IndexError::Folder(root.display().to_string()));
    }
    let change = ensure_identity(cat, p)?;
    let mut sum = Summary { rebuilt: change == crate::catalog::IdentityChange::Rebuilt, ..Summary::default() };
    let scanned = scan_with(root, links);
    sum.unreadable_folders = scanned.unreadable.len();
    sum.outside_links = scanned.outside_links;
    sum.duplicates = scanned.duplicates;
    sum.photos = scanned.files.len();
    let mut states = cat.states()?;
    let seen: HashSet<Vec<u8>> = scanned.files.iter().map(|f| path_bytes(&f.rel)).collect();
    // Rows whose file is gone: deleted, or renamed/moved (matched below by fingerprint). Two
    // gone files may share a fingerprint (copies): each row is matched at most once, and every
    // row left unmatched is removed.
    let mut missing: HashMap<Vec<u8>, Vec<(i64, u64)>> = HashMap::new();
    states.retain(|path, st| {
        if seen.contains(path) {
            true
        } else {
            missing.entry(st.fingerprint.clone()).or_default().push((st.id, st.size));
            false
        }
    });
    let mut todo: Vec<ScannedFile> = Vec::new();
    let mut new_files: Vec<ScannedFile> = Vec::new();
    // an unchanged photo whose sidecars changed has its metadata read again
    let stored_sigs = cat.sidecar_sigs()?;
    let sigs: HashMap<Vec<u8>, i64> =
        scanned.files.iter().filter(|f| f.sidecar_sig != 0).map(|f| (path_bytes(&f.rel), f.sidecar_sig)).collect();
    let mut reread = Vec::new();
    for f in scanned.files {
        match states.get(&path_bytes(&f.rel)) {
            Some(st) if st.size == f.size && st.mtime_ns == f.mtime_ns => {
                sum.unchanged += 1;
                if stored_sigs.get(&st.id).copied().unwrap_or(0) != f.sidecar_sig {
                    reread.push(st.id);
                }
            }
            Some(_) => todo.push(f),
            None => new_files.push(f),
        }
    }
    if !missing.is_empty() && !new_files.is_empty() {
        let fps: Vec<Option<Vec<u8>>> = new_files.par_iter().map(|f| fingerprint(&root.join(&f.rel), f.size).ok()).collect();
        for (f, fp) in new_files.into_iter().zip(fps) {
            let row = fp.and_then(|fp| {
                let rows = missing.get_mut(&fp)?;
                let k = rows.iter().position(|&(_, size)| size == f.size)?;
                Some(rows.swap_remove(k))
            });
            match row {
                Some((id, _)) => {
                    cat.rename(id, &path_bytes(&f.rel), f.size, f.mtime_ns)?;
                    sum.renamed += 1;
                    // moved with sidecars of its own (or away from them)
                    if stored_sigs.get(&id).copied().unwrap_or(0) != f.sidecar_sig {
                        reread.push(id);
                    }
                }
                _ => todo.push(f),
            }
        }
    } else {
        todo.extend(new_files);
    }
    cat.mark_metadata_unread(&reread)?;
    let gone: Vec<i64> = missing.values().flatten().map(|&(id, _)| id).collect();
    cat.remove(&gone)?;
    sum.removed = gone.len();
    reembed(root, cat, p, cancel, &mut sum, on)?;
    if sum.cancelled {
        sum.faces = cat.face_count()?;
        sum.seconds = t0.elapsed().as_secs_f64();
        sum.profile = clocks.profile(sum.seconds, cpu_seconds() - cpu0);
        return Ok(sum);
    }
    on(Event::Planned { todo: todo.len(), total: sum.photos });

    // Decoding of the next batch (rayon, in a producer thread) overlaps the networks on this one.
    let mut done = 0;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Prepared>>(1);
    std::thread::scope(|scope| -> Result<(), IndexError> {
        let todo_ref = &todo;
        let clocks: &Clocks = clocks;
        scope.spawn(move || {
            for batch in todo_ref.chunks(BATCH) {
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
                let prepared: Vec<Prepared> = batch.par_iter().filter_map(|f| prepare(root, f, clocks)).collect();
                if tx.send(prepared).is_err() {
                    break; // the consumer stopped (error)
                }
            }
        });
        for prepared in rx {
            if cancel.load(Ordering::Relaxed) {
                sum.cancelled = true;
                break;
            }
            let records = process_batch(p, root, clocks, &prepared, &mut sum, &mut done, todo.len(), on)?;
            clocks.time(Stage::Write, || cat.write_batch(&records))?;
            sum.processed += records.len();
            on(Event::Committed { done });
        }
        Ok(())
    })?;
    if !sum.cancelled {
        clocks.time(Stage::Read, || read_unread_metadata(root, cat, &sigs, cancel))?;
        // names other tools gave faces, before grouping places the rest around them
        sum.regions = cat.import_regions()?;
    }
    // Group new faces into people (one transaction; skipped when nothing changed).
    let changed = sum.processed + sum.removed + sum.reembedded + sum.regions.linked > 0 || sum.rebuilt;
    if !sum.cancelled {
        sum.people = clocks.time(Stage::People, || cat.group_people_if_needed(changed, &crate::people::Params::default()))?;
    }
    sum.faces = cat.face_count()?;
    sum.seconds = t0.elapsed().as_secs_f64();
    sum.profile = clocks.profile(sum.seconds, cpu_seconds() - cpu0);
    Ok(sum)
}
