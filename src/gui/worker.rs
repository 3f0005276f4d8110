//! Background work for the app — loading the models, reading catalogs, indexing, queries from
//! outside photos, exports, file dialogs and image decoding — so the UI thread never decodes,
//! runs a network or waits on SQLite. Results come back as [`Msg`]s with a repaint request.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use eframe::egui;

use super::export::{self, ExportMode};
use super::library::Library;
use super::query::{Query, Ranking};
use crate::catalog::people::Undo;
use crate::catalog::{Catalog, CatalogError};
use crate::index::{self, Event, Summary};
use crate::photo;
use crate::pipeline::{self, DeviceChoice, Pipeline, Settings};

/// The loaded face pipeline and how to describe it in the status bar.
#[derive(Clone)]
pub struct PipelineInfo {
    pub pipeline: Arc<Pipeline>,
    pub device: String,
    pub models: String,
}

/// A face found in a photo from outside the folder.
pub struct QueryFace {
    pub bbox: [f32; 4],
    pub embedding: Vec<f32>,
    pub chip: egui::ColorImage,
}

/// What a file dialog was opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Folder,
    QueryFile,
    ExportFolder,
    CatalogDir,
    EmbedderFile,
}

pub enum Msg {
    /// The face models, loaded for the app's pipeline request `gen`.
    Pipeline {
        gen: u64,
        result: Result<PipelineInfo, String>,
    },
    /// A fresh snapshot of an opened folder's catalog; `seq` numbers snapshots in the order
    /// their reads began, so an older one arriving late never replaces a newer one.
    Library {
        tag: Tag,
        seq: u64,
        lib: Arc<Library>,
    },
    /// The catalog could not be opened; `rebuildable` when the user can choose to rebuild it
    /// (a facefind catalog whose version cannot be read).
    OpenFailed {
        tag: Tag,
        seq: u64,
        error: String,
        rebuildable: bool,
    },
    Planned {
        tag: Tag,
        todo: usize,
        total: usize,
    },
    Progress {
        tag: Tag,
        done: usize,
        faces: usize,
    },
    Skipped {
        tag: Tag,
        path: String,
        reason: String,
    },
    IndexDone {
        tag: Tag,
        summary: Summary,
    },
    IndexFailed {
        tag: Tag,
        error: String,
    },
    /// The faces of an outside photo for query request `seq` (only the newest request counts).
    QueryFaces {
        seq: u64,
        path: PathBuf,
        faces: Vec<QueryFace>,
    },
    QueryFailed {
        seq: u64,
        path: PathBuf,
        error: String,
    },
    /// The ranking asked for as request `seq` ([`Outbox::rank`]); `None` when making it failed.
    Ranked {
        seq: u64,
        ranking: Option<Box<Ranking>>,
    },
    Picked(Pick, PathBuf),
    /// No file dialog could be shown (no desktop portal, no zenity): ask for a typed path.
    DialogUnavailable(Pick),
    /// A people edit (or an undo) is in the catalog; a new library snapshot follows.
    PeopleEdited {
        tag: Tag,
        result: Result<Edited, String>,
    },
    Info(String),
    Error(String),
}

/// Which opening of a folder (and which index run of it) a message belongs to. Every opening
/// and every run gets a new number, so a cancelled run's last messages, or those of a folder
/// opened again (A, B, A), are recognised as stale and dropped, whatever the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tag {
    pub open: u64,
    /// The index run (0 for messages that are not about a run).
    pub run: u64,
}

/// What a people edit did.
#[derive(Debug, Clone)]
pub struct Edited {
    /// To undo it (`None` for an undo itself).
    pub undo: Option<Undo>,
    /// For the window ("Merged Ann into Bob").
    pub info: String,
    /// The person it created, when it made one.
    pub person: Option<i64>,
}

/// A people edit to run on the edit worker against the folder's catalog (again, if the
/// catalog stayed busy: it must be repeatable until it commits).
pub type PeopleEdit = Box<dyn FnMut(&mut Catalog) -> Result<Edited, CatalogError> + Send>;

/// Snapshot numbers, taken as a read begins: a read that begins later sees every commit an
/// earlier one saw (WAL), so the highest number is the newest state.
static SNAPSHOTS: AtomicU64 = AtomicU64::new(0);

fn next_snapshot() -> u64 {
    SNAPSHOTS.fetch_add(1, Ordering::SeqCst) + 1
}

/// A people edit waiting for the edit worker.
struct EditJob {
    tag: Tag,
    folder: PathBuf,
    catalog: PathBuf,
    edit: PeopleEdit,
}

/// The one writer of people edits: a thread that runs them in the order they were made (two
/// quick clicks are two edits, one after the other, never racing for the catalog), then sends
/// one snapshot after the last of a burst.
pub struct Edits {
    tx: Sender<EditJob>,
}

/// Tries an edit makes while the catalog stays busy (each waits up to the busy timeout).
const EDIT_TRIES: usize = 3;

/// The snapshot the edit worker wants read next (only the latest counts).
type SnapshotSlot = Arc<(Mutex<Option<(Tag, PathBuf, PathBuf)>>, Condvar)>;

impl Edits {
    pub fn new(out: Outbox) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<EditJob>();
        let slot: SnapshotSlot = Arc::new((Mutex::new(None), Condvar::new()));
        let editor = std::thread::Builder::new().name("people".into()).spawn({
            let (out, slot) = (out.clone(), slot.clone());
            move || edit_thread(&out, &rx, &slot)
        });
        // one reader beside the editor: edits never wait for a snapshot, and a burst of them
        // is read once
        let reader = std::thread::Builder::new().name("people-snapshot".into()).spawn({
            let out = out.clone();
            move || loop {
                let (tag, folder, catalog) = {
                    let mut s = slot.0.lock().unwrap_or_else(|e| e.into_inner());
                    loop {
                        if let Some(job) = s.take() {
                            break job;
                        }
                        s = slot.1.wait(s).unwrap_or_else(|e| e.into_inner());
                    }
                };
                send_library(&out, tag, folder, &catalog);
            }
        });
        if let Some(e) = editor.err().or(reader.err()) {
            out.send(Msg::Error(format!("cannot start the people editor: {e}")));
        }
        Self { tx }
    }

    /// Queues an edit of `catalog` (the folder's opening `tag`).
    pub fn push(&self, out: &Outbox, tag: Tag, folder: PathBuf, catalog: PathBuf, edit: PeopleEdit) {
        if self.tx.send(EditJob { tag, folder, catalog, edit }).is_err() {
            out.send(Msg::PeopleEdited { tag, result: Err("the people editor stopped: the edit was not saved".into()) });
        }
    }
}

fn edit_thread(out: &Outbox, rx: &Receiver<EditJob>, snapshots: &SnapshotSlot) {
    let mut conn: Option<Catalog> = None;
    let mut queue: VecDeque<EditJob> = VecDeque::new();
    while let Some(mut job) = queue.pop_front().or_else(|| rx.recv().ok()) {
        let mut result = Err(String::new());
        for attempt in 1..=EDIT_TRIES {
            if conn.as_ref().is_none_or(|c| c.path() != job.catalog) {
                conn = None;
            }
            let r = match &mut conn {
                Some(c) => (job.edit)(c),
                None => Catalog::open(&job.catalog).and_then(|mut c| {
                    let r = (job.edit)(&mut c);
                    conn = Some(c);
                    r
                }),
            };
            let busy = matches!(&r, Err(CatalogError::Sqlite { error, .. })
                if matches!(error.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)));
            result = r.map_err(|e| {
                if busy {
                    format!("the catalog stayed busy after {attempt} tries; the edit was not saved: {e}")
                } else {
                    e.to_string()
                }
            });
            if !busy {
                break;
            }
            tracing::warn!(attempt, "people edit: catalog busy, trying again");
        }
        out.send(Msg::PeopleEdited { tag: job.tag, result });
        queue.extend(rx.try_iter());
        if queue.is_empty() {
            *snapshots.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((job.tag, job.folder, job.catalog));
            snapshots.1.notify_one();
        }
    }
}

/// The sending half: every message also asks egui for a repaint.
#[derive(Clone)]
pub struct Outbox {
    tx: Sender<Msg>,
    ctx: egui::Context,
}

impl Outbox {
    pub fn new(ctx: egui::Context) -> (Self, Receiver<Msg>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (Self { tx, ctx }, rx)
    }

    pub fn send(&self, m: Msg) {
        // The receiver only goes away when the app closes.
        let _ = self.tx.send(m);
        self.ctx.request_repaint();
    }

    fn spawn(&self, name: &str, f: impl FnOnce(Outbox) + Send + 'static) {
        let out = self.clone();
        let spawned = std::thread::Builder::new().name(name.into()).spawn(move || f(out));
        if let Err(e) = spawned {
            self.send(Msg::Error(format!("cannot start a {name} thread: {e}")));
        }
    }

    pub fn load_pipeline(
        &self,
        gen: u64,
        models: crate::pipeline::ModelSource,
        embedder: Option<PathBuf>,
        device: DeviceChoice,
        flip: bool,
    ) {
        self.spawn("pipeline", move |out| {
            let result = (|| -> anyhow::Result<PipelineInfo> {
                let dev = pipeline::select_device(device).map_err(|e| anyhow::anyhow!("cannot open device {device:?}: {e}"))?;
                let settings = Settings { flip, ..Settings::default() };
                let p = Pipeline::load_with_embedder(&models, embedder.as_deref(), dev, settings)?;
                let device = pipeline::device_name(p.device()).to_string();
                let models = format!(
                    "RetinaFace {} · {} {}",
                    &pipeline::DETECTOR_MODEL.sha256[..8],
                    if embedder.is_some() { "embedder" } else { "MobileFaceNet" },
                    &p.embedder_sha256()[..8]
                );
                Ok(PipelineInfo { pipeline: Arc::new(p), device, models })
            })();
            out.send(Msg::Pipeline { gen, result: result.map_err(|e| format!("{e:#}")) });
        });
    }

    /// Reads the folder's catalog as it is (no indexing).
    pub fn open_library(&self, tag: Tag, folder: PathBuf, catalog: PathBuf) {
        self.spawn("open", move |out| send_library(&out, tag, folder, &catalog));
    }

    /// Rebuilds the folder's catalog (the user asked: see [`Catalog::rebuild`]), then reads it.
    pub fn rebuild_library(&self, tag: Tag, folder: PathBuf, catalog: PathBuf) {
        self.spawn("rebuild", move |out| match Catalog::rebuild(&catalog) {
            Ok(mut c) => {
                if let Some(n) = c.take_notice() {
                    out.send(Msg::Info(n));
                }
                drop(c);
                send_library(&out, tag, folder, &catalog);
            }
            Err(e) => {
                let rebuildable = matches!(e, CatalogError::Busy { .. });
                out.send(Msg::OpenFailed { tag, seq: next_snapshot(), error: e.to_string(), rebuildable })
            }
        });
    }

    /// Brings the catalog up to date, sending progress and a new snapshot about once a second.
    /// When another run holds the catalog (a cancelled run of this app finishing its batch, or
    /// another facefind process), waits for it, saying so once, until it ends or this run is
    /// cancelled.
    pub fn index(
        &self,
        tag: Tag,
        folder: PathBuf,
        catalog: PathBuf,
        p: Arc<Pipeline>,
        cancel: Arc<AtomicBool>,
        links: crate::index::scan::ScanOptions,
    ) {
        self.spawn("index", move |out| {
            // One reading connection for the snapshots (WAL: it sees each committed batch).
            let reader = Catalog::open(&catalog).ok();
            let send_library = || {
                let seq = next_snapshot();
                if let Some(lib) = reader.as_ref().and_then(|r| read_library(&folder, r).ok()) {
                    out.send(Msg::Library { tag, seq, lib: Arc::new(lib) });
                }
            };
            let result = (|| -> anyhow::Result<Summary> {
                let mut cat = Catalog::open(&catalog)?;
                let mut said = false;
                loop {
                    match cat.lock_for_writing() {
                        Ok(()) => break,
                        Err(CatalogError::Busy { .. }) if !cancel.load(Ordering::Relaxed) => {
                            if !said {
                                out.send(Msg::Info(format!("waiting for another indexing run of {} to finish", folder.display())));
                                said = true;
                            }
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                let mut last = Instant::now();
                let summary = index::index_folder_with(
                    &folder,
                    &mut cat,
                    &p,
                    &cancel,
                    &mut |ev| match ev {
                        Event::Planned { todo, total } => out.send(Msg::Planned { tag, todo, total }),
                        Event::Photo { done, faces, .. } => out.send(Msg::Progress { tag, done, faces }),
                        Event::Skipped { path, reason } => out.send(Msg::Skipped { tag, path, reason }),
                        Event::Committed { .. } => {
                            if last.elapsed() > Duration::from_millis(1000) {
                                send_library();
                                last = Instant::now();
                            }
                        }
                    },
                    links,
                )?;
                Ok(summary)
            })();
            // The final state, whatever happened (a cancelled or failed run still committed batches).
            send_library();
            match result {
                Ok(summary) => out.send(Msg::IndexDone { tag, summary }),
                Err(e) => out.send(Msg::IndexFailed { tag, error: format!("{e:#}") }),
            }
        });
    }

    /// Ranks `lib` for `query` at `threshold` (see [`Ranking::new`]) off the UI thread, as
    /// ranking request `seq`: a million photos take longer than a frame.
    pub fn rank(&self, lib: Arc<Library>, query: Query, threshold: f32, seq: u64) {
        // every request is answered (a panic or a thread that cannot start included), or the
        // app would wait for this ranking for good
        let out = self.clone();
        let spawned = std::thread::Builder::new().name("rank".into()).spawn(move || {
            let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Box::new(Ranking::new(&lib, &query, threshold))));
            if made.is_err() {
                tracing::error!(seq, "ranking the search panicked");
            }
            out.send(Msg::Ranked { seq, ranking: made.ok() });
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a ranking thread");
            self.send(Msg::Ranked { seq, ranking: None });
        }
    }

    /// Detects and embeds every face of a photo from anywhere on disk, for query request `seq`.
    pub fn query_file(&self, p: Arc<Pipeline>, path: PathBuf, seq: u64) {
        self.spawn("query", move |out| {
            let result = (|| -> anyhow::Result<Vec<QueryFace>> {
                let img = photo::load_rgb(&path)?;
                Ok(p.faces_and_embeddings(&img)?
                    .into_iter()
                    .map(|(f, embedding)| QueryFace {
                        bbox: f.bbox,
                        embedding,
                        chip: super::loader::color_image(&pipeline::face_chip(&img, f.bbox)),
                    })
                    .collect())
            })();
            match result {
                Ok(faces) if faces.is_empty() => out.send(Msg::QueryFailed { seq, path, error: "no face found in this photo".into() }),
                Ok(faces) => out.send(Msg::QueryFaces { seq, path, faces }),
                Err(e) => out.send(Msg::QueryFailed { seq, path, error: format!("{e:#}") }),
            }
        });
    }

    /// Copies or links the matches into `dest` and writes a CSV of the ranking beside them.
    pub fn export(&self, ranking: Ranking, threshold: f32, dest: PathBuf, mode: ExportMode, photos: bool) {
        self.spawn("export", move |out| {
            let result = (|| -> anyhow::Result<String> {
                if photos {
                    let (n, failed) = export::export_photos(&ranking, threshold, &dest, mode)?;
                    for f in &failed {
                        out.send(Msg::Error(format!("export: {f}")));
                    }
                    let verb = if mode == ExportMode::Link { "linked" } else { "copied" };
                    Ok(format!("{n} photos {verb} to {}", dest.display()))
                } else {
                    std::fs::create_dir_all(&dest)?;
                    let file = (1..)
                        .map(|i| dest.join(if i == 1 { "facefind-results.csv".to_string() } else { format!("facefind-results-{i}.csv") }))
                        .find(|p| !p.exists())
                        .unwrap_or_else(|| dest.join("facefind-results.csv"));
                    let mut w = std::io::BufWriter::new(std::fs::File::create(&file)?);
                    export::write_csv(&ranking, threshold, &mut w)?;
                    std::io::Write::flush(&mut w)?;
                    Ok(format!("saved {}", file.display()))
                }
            })();
            match result {
                Ok(msg) => out.send(Msg::Info(msg)),
                Err(e) => out.send(Msg::Error(format!("export to {}: {e:#}", dest.display()))),
            }
        });
    }

    /// Opens a native dialog off the UI thread (on macOS dialogs must run on the main thread,
    /// where they are modal anyway). Where no dialog can be shown — on Linux without a desktop
    /// portal and without zenity, rfd gives up and returns nothing, as for a cancel — the app
    /// is told ([`Msg::DialogUnavailable`]) so it can ask for a typed path instead.
    pub fn pick(&self, what: Pick) {
        if !dialog_possible() {
            self.send(Msg::DialogUnavailable(what));
            return;
        }
        let run = move |out: Outbox| {
            let t0 = Instant::now();
            let dialog = rfd::FileDialog::new();
            let picked = match what {
                Pick::Folder => dialog.set_title("Open a photo folder").pick_folder(),
                Pick::ExportFolder => dialog.set_title("Export matches to").pick_folder(),
                Pick::CatalogDir => dialog.set_title("Keep catalogs in").pick_folder(),
                Pick::EmbedderFile => dialog
                    .set_title("Face embedder (from facefind train, or ONNX)")
                    .add_filter("Embedder", &["safetensors", "onnx"])
                    .pick_file(),
                Pick::QueryFile => dialog
                    .set_title("Query from a photo")
                    .add_filter("Photos", &crate::photo::photo_extensions().collect::<Vec<_>>())
                    .pick_file(),
            };
            match picked {
                Some(p) => out.send(Msg::Picked(what, p)),
                // nobody cancels a dialog within a fraction of a second: it never opened
                None if t0.elapsed() < DIALOG_FAILED_WITHIN => out.send(Msg::DialogUnavailable(what)),
                None => {}
            }
        };
        if cfg!(target_os = "macos") {
            run(self.clone());
        } else {
            self.spawn("dialog", run);
        }
    }
}

/// A dialog that returns nothing this soon was never shown.
const DIALOG_FAILED_WITHIN: Duration = Duration::from_millis(400);

/// Whether a native file dialog can be shown at all: on Linux and the BSDs rfd needs a desktop
/// portal (over the D-Bus session bus) or zenity.
fn dialog_possible() -> bool {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return true;
    }
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty());
    let zenity = std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join("zenity").is_file()));
    bus || zenity
}

fn send_library(out: &Outbox, tag: Tag, folder: PathBuf, catalog: &Path) {
    let seq = next_snapshot();
    let opened = Catalog::open(catalog).map(|mut c| {
        // e.g. a slow migration: the catalog prints nothing, the window says it
        if let Some(n) = c.take_notice() {
            out.send(Msg::Info(n));
        }
        c
    });
    let rebuildable = matches!(opened, Err(CatalogError::UnreadableVersion { .. }));
    match opened.map_err(anyhow::Error::from).and_then(|c| read_library(&folder, &c)) {
        Ok(lib) => out.send(Msg::Library { tag, seq, lib: Arc::new(lib) }),
        Err(e) => out.send(Msg::OpenFailed { tag, seq, error: format!("{e:#}"), rebuildable }),
    }
}

/// Photos and faces of a catalog as they are now. Photos and people are read on a second
/// connection while this one reads the faces (0.83 -> ~0.45 s for 100,000 photos on 2 cores).
/// Like the separate queries before, the two reads need not see the same commit of a running
/// index: the next commit's refresh brings them together, and the library tolerates a face
/// whose photo it does not list.
fn read_library(folder: &Path, cat: &Catalog) -> anyhow::Result<Library> {
    let t0 = std::time::Instant::now();
    let path = cat.path().to_path_buf();
    let (others, faces) = std::thread::scope(|s| {
        let others = s.spawn(move || -> anyhow::Result<_> {
            let second = Catalog::open(&path)?;
            let photos = second.photos()?;
            let photos_s = t0.elapsed().as_secs_f64();
            Ok((photos, second.people()?, second.not_same()?, second.dates()?, photos_s))
        });
        let faces = cat.face_table().and_then(|table| {
            let table_s = t0.elapsed().as_secs_f64();
            Ok((cat.face_infos(&table)?, table, table_s))
        });
        (others.join(), faces)
    });
    let (photos, people, not_same, dates, photos_s) = others.map_err(|_| anyhow::anyhow!("reading the catalog's photos failed"))??;
    let (infos, table, table_s) = faces?;
    let read_s = t0.elapsed().as_secs_f64();
    let named: std::collections::HashSet<i64> = people.iter().filter(|p| p.name.is_some()).map(|p| p.id).collect();
    let suggestions = crate::people::suggestions(table.dim(), &infos, &named, &crate::people::Params::default(), |r| {
        std::borrow::Cow::Owned(table.codes().decode(r))
    });
    let visible: std::collections::HashSet<i64> = people.iter().filter(|p| !p.hidden).map(|p| p.id).collect();
    let merges =
        crate::people::merges::merge_questions(table.dim(), &infos, &visible, &named, &not_same, &crate::people::Params::default(), |r| {
            std::borrow::Cow::Owned(table.codes().decode(r))
        });
    let suggest_s = t0.elapsed().as_secs_f64();
    let lib =
        Library::new(folder.to_path_buf(), photos, table).with_people(people, infos, suggestions).with_merges(merges).with_dates(dates);
    tracing::info!(
        photos = lib.photos.len(),
        faces = lib.table.len(),
        photos_s,
        table_s,
        read_s,
        suggest_s,
        total_s = t0.elapsed().as_secs_f64(),
        "library read"
    );
    Ok(lib)
}
