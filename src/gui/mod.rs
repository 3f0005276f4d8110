//! The desktop app (eframe/egui): open a folder, watch it index, click a face, see every photo
//! of that person ranked with a live threshold, inspect, refine and export.

pub mod export;
mod inspector;
pub mod library;
mod loader;
mod messages;
mod people_view;
mod prefs;
mod prompts;
pub mod query;
mod ranking;
#[cfg(test)]
mod state_tests;
mod tables;
mod textures;
mod view;
mod widgets;
mod windows;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;

use crate::index::Summary;
use crate::pipeline::DeviceChoice;
use export::ExportMode;
use library::Library;
use loader::Loader;
pub use prefs::Prefs;
use query::{Query, Ranking, Verdict};
use textures::Textures;
use worker::{Msg, Outbox, Pick, PipelineInfo, QueryFace, Tag};

const PREFS_KEY: &str = "facefind";
const MAX_RECENT: usize = 8;

/// How the app is started.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Open this folder (otherwise the last one, if any).
    pub folder: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
    /// Use this catalog file for `folder` (tests, `--catalog`); other folders opened later use
    /// their own.
    pub catalog: Option<PathBuf>,
    /// Start with a face of this photo as the query (with several faces, the user picks one).
    pub query: Option<PathBuf>,
    /// Use this device (the command line's `--device`) instead of the saved choice.
    pub device: Option<DeviceChoice>,
    /// Start from these preferences instead of the saved ones (tests).
    pub prefs: Option<Prefs>,
    /// Use this embedder file (the command line's `--embedder`) instead of the saved choice.
    pub embedder: Option<PathBuf>,
}

/// Opens the window; returns when it is closed.
pub fn run(options: Options) -> anyhow::Result<()> {
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("facefind")
        .with_app_id("facefind")
        .with_inner_size([1280.0, 840.0])
        .with_min_inner_size([720.0, 480.0])
        .with_drag_and_drop(true);
    if let Ok(icon) = image::load_from_memory(include_bytes!("../../assets/icon.png")) {
        let icon = icon.to_rgba8();
        let (width, height) = icon.dimensions();
        viewport = viewport.with_icon(egui::IconData { rgba: icon.into_raw(), width, height });
    }
    let native = eframe::NativeOptions { viewport, ..Default::default() };
    eframe::run_native("facefind", native, Box::new(move |cc| Ok(Box::new(App::new(cc, options)))))
        .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

/// The face pipeline as the app sees it.
enum PipelineState {
    Loading,
    Ready(PipelineInfo),
    Failed(String),
}

/// Indexing progress of the open folder.
struct Indexing {
    /// This run's number (messages of other runs are dropped).
    run: u64,
    cancel: Arc<AtomicBool>,
    planned: Option<(usize, usize)>,
    done: usize,
    faces: usize,
    /// When the first photo finished (rates start there, not at the scan).
    first: Option<(Instant, usize)>,
}

impl Indexing {
    fn rate(&self) -> Option<f64> {
        let (t, n) = self.first?;
        let dt = t.elapsed().as_secs_f64();
        (dt > 0.5 && self.done > n).then(|| (self.done - n) as f64 / dt)
    }
}

/// The folder on screen.
struct Folder {
    /// This opening's number (messages of earlier openings are dropped).
    open: u64,
    path: PathBuf,
    catalog: PathBuf,
    lib: Arc<Library>,
    /// The catalog has been read once.
    loaded: bool,
    /// Indexing was started for this folder in this session (it runs once per open).
    index_started: bool,
    indexing: Option<Indexing>,
    summary: Option<Summary>,
    skipped: Vec<(String, String)>,
    /// The number of the snapshot `lib` is ([`Msg::Library`]): older ones are dropped.
    snapshot: u64,
    /// The catalog was refused for an unreadable version: the window offers to rebuild it.
    rebuild_offer: bool,
    /// Why the catalog could not be opened (shown where the photos would be).
    open_error: Option<String>,
}

/// A query's chip: from the catalog, or decoded from an outside photo.
enum QueryChip {
    Catalog(i64),
    Texture(egui::TextureHandle),
}

/// The outside photo whose faces the user is choosing from.
struct FacePick {
    path: PathBuf,
    faces: Vec<(QueryFace, egui::TextureHandle)>,
}

/// The inspector's view of one photo.
#[derive(Default)]
struct Inspect {
    photo_id: i64,
    zoom: f32,
    pan: egui::Vec2,
}

enum Level {
    Info,
    Error,
}

struct Notice {
    level: Level,
    text: String,
    at: Instant,
}

pub struct App {
    prefs: Prefs,
    options: Options,
    models: crate::pipeline::ModelSource,
    out: Outbox,
    rx: Receiver<Msg>,
    loader: Loader,
    textures: Textures,
    pipeline: PipelineState,
    folder: Option<Folder>,
    /// Photo selected in the album (its faces fill the strip).
    selected: Option<i64>,
    query: Option<(Query, QueryChip)>,
    ranking: Ranking,
    /// The newest ranking asked for, and the one `ranking` is (they differ while one is made).
    rank_seq: u64,
    ranked_seq: u64,
    /// Rankings numbered below this are of an earlier query or folder: dropped when they come.
    rank_floor: u64,
    /// A ranking is being made; `rank_again`: a newer one was asked for meanwhile (one is made
    /// at a time, the newest request next).
    rank_busy: bool,
    rank_again: bool,
    /// The results table's sort and row order.
    table: tables::ResultsTable,
    threshold: f32,
    inspect: Option<Inspect>,
    face_pick: Option<FacePick>,
    notices: Vec<Notice>,
    settings_open: bool,
    export_dir: String,
    export_mode: ExportMode,
    /// A query-from-file waiting for the models to load.
    pending_query_file: Option<PathBuf>,
    /// The People view is on screen (instead of the album).
    show_people: bool,
    /// The last people edit, to undo.
    undo: Option<crate::catalog::people::Undo>,
    /// The name being typed (naming a person, or saving a search as a person).
    name_edit: String,
    /// The last number handed to a folder opening, an index run or a pipeline load.
    serial: u64,
    /// The pipeline load whose result counts.
    pipeline_gen: u64,
    /// The one writer of people edits.
    edits: worker::Edits,
    /// The newest query request: faces of an outside photo for an older one are dropped.
    query_seq: u64,
    /// The outside photo being read for the newest query request, if any.
    awaiting_file: Option<PathBuf>,
    /// What the embeddings of the loaded (or loading) models depend on: (flip, embedder).
    vectors: (bool, Option<PathBuf>),
    /// A file dialog could not open: the path being typed instead, and what it is for.
    path_prompt: Option<(Pick, String)>,
    /// A trained embedder the user picked, with its validation numbers, until they confirm.
    embedder_offer: Option<(PathBuf, String)>,
    /// The embedder in use before the one being loaded, to go back to if it fails to load.
    embedder_before: Option<Option<PathBuf>>,
}

impl App {
    pub fn new(cc: &eframe::CreationContext<'_>, options: Options) -> Self {
        let ctx = cc.egui_ctx.clone();
        let saved: Option<Prefs> = cc.storage.and_then(|s| eframe::get_value(s, PREFS_KEY));
        let mut prefs = options.prefs.clone().or(saved).unwrap_or_default();
        if let Some(d) = options.device {
            prefs.device = d;
        }
        if let Some(e) = &options.embedder {
            prefs.embedder = Some(e.clone());
        }
        ctx.set_theme(prefs.theme);
        let (out, rx) = Outbox::new(ctx.clone());
        let loader = Loader::new(ctx, 2);
        let models = crate::pipeline::ModelSource::choose(options.models_dir.as_deref());
        out.load_pipeline(1, models.clone(), prefs.embedder.clone(), prefs.device, prefs.flip);
        let threshold = prefs.threshold;
        let vectors = (prefs.flip, prefs.embedder.clone());
        let edits = worker::Edits::new(out.clone());
        let mut app = Self {
            prefs,
            options,
            models,
            out,
            rx,
            loader,
            textures: Textures::new(),
            pipeline: PipelineState::Loading,
            folder: None,
            selected: None,
            query: None,
            ranking: Ranking::default(),
            rank_seq: 0,
            ranked_seq: 0,
            rank_floor: 0,
            rank_busy: false,
            rank_again: false,
            table: Default::default(),
            threshold,
            inspect: None,
            face_pick: None,
            notices: Vec::new(),
            settings_open: false,
            export_dir: String::new(),
            export_mode: ExportMode::Copy,
            pending_query_file: None,
            show_people: false,
            undo: None,
            name_edit: String::new(),
            serial: 1,
            pipeline_gen: 1,
            edits,
            query_seq: 0,
            awaiting_file: None,
            vectors,
            path_prompt: None,
            embedder_offer: None,
            embedder_before: None,
        };
        let start = app.options.folder.clone().or_else(|| app.prefs.recent.first().filter(|p| p.is_dir()).cloned());
        if let Some(f) = start {
            app.open_folder(f);
        }
        if let Some(q) = app.options.query.clone() {
            app.query_from_file(q);
        }
        app
    }

    fn error(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::error!("{text}");
        self.notices.push(Notice { level: Level::Error, text, at: Instant::now() });
    }

    fn info(&mut self, text: impl Into<String>) {
        self.notices.push(Notice { level: Level::Info, text: text.into(), at: Instant::now() });
    }

    fn pipeline(&self) -> Option<&PipelineInfo> {
        match &self.pipeline {
            PipelineState::Ready(p) => Some(p),
            _ => None,
        }
    }

    /// Opens `path`: its catalog shows at once, then indexing brings it up to date.
    pub fn open_folder(&mut self, path: PathBuf) {
        if !path.is_dir() {
            self.error(format!("cannot open {}: not a readable folder", path.display()));
            return;
        }
        if let Some(old) = &self.folder {
            if old.path == path.canonicalize().unwrap_or_else(|_| path.clone()) {
                // Already open (and maybe indexing): just go back to its album.
                self.clear_query();
                self.inspect = None;
                return;
            }
            if let Some(ix) = &old.indexing {
                ix.cancel.store(true, Ordering::Relaxed);
            }
        }
        // `--catalog` belongs to the folder it was given with, not to every folder opened later.
        let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let own_catalog =
            self.options.catalog.as_ref().filter(|_| self.options.folder.as_deref().is_some_and(|f| canonical(f) == canonical(&path)));
        let catalog = match (own_catalog, &self.prefs.catalog_dir) {
            (Some(c), _) => Ok(c.clone()),
            (None, Some(dir)) => crate::catalog::catalog_path_in(dir, &path),
            (None, None) => crate::catalog::default_catalog_path(&path),
        };
        let catalog = match catalog {
            Ok(c) => c,
            Err(e) => {
                self.error(format!("cannot open {}: {e}", path.display()));
                return;
            }
        };
        let path = path.canonicalize().unwrap_or(path);
        let open = self.next_serial();
        let generation = self.loader.set_source(&path, Some(&catalog));
        self.textures.reset(generation);
        self.prefs.recent.retain(|p| p != &path);
        self.prefs.recent.insert(0, path.clone());
        self.prefs.recent.truncate(MAX_RECENT);
        self.selected = None;
        self.clear_query();
        self.query_seq += 1;
        self.pending_query_file = None;
        self.awaiting_file = None;
        self.inspect = None;
        self.out.open_library(Tag { open, run: 0 }, path.clone(), catalog.clone());
        self.folder = Some(Folder {
            open,
            lib: Arc::new(Library::new(path.clone(), Vec::new(), Default::default())),
            path,
            catalog,
            loaded: false,
            index_started: false,
            indexing: None,
            summary: None,
            skipped: Vec::new(),
            snapshot: 0,
            rebuild_offer: false,
            open_error: None,
        });
    }

    /// Rebuilds the open folder's catalog (the user's choice after it was refused for an
    /// unreadable version), then indexes it.
    pub(crate) fn rebuild_catalog(&mut self) {
        let Some(f) = &mut self.folder else { return };
        f.rebuild_offer = false;
        f.open_error = None;
        f.index_started = false;
        f.loaded = false;
        // the refusal is answered
        let catalog = f.catalog.display().to_string();
        self.notices.retain(|n| !(matches!(n.level, Level::Error) && n.text.contains(&catalog)));
        self.out.rebuild_library(Tag { open: f.open, run: 0 }, f.path.clone(), f.catalog.clone());
    }

    fn start_indexing_if_ready(&mut self) {
        let Some(p) = self.pipeline().map(|p| p.pipeline.clone()) else { return };
        let run = self.serial + 1;
        let Some(f) = &mut self.folder else { return };
        // A cancelled run still holds the catalog until its batch is committed: wait for it.
        if !f.loaded || f.index_started || f.indexing.is_some() {
            return;
        }
        f.index_started = true;
        let cancel = Arc::new(AtomicBool::new(false));
        f.indexing = Some(Indexing { run, cancel: cancel.clone(), planned: None, done: 0, faces: 0, first: None });
        f.skipped.clear();
        let links = crate::index::scan::ScanOptions { follow_outside_links: self.prefs.follow_links };
        self.out.index(Tag { open: f.open, run }, f.path.clone(), f.catalog.clone(), p, cancel, links);
        self.serial = run;
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Indexing runs now, or will as soon as the models are loaded (not when they failed to
    /// load: then nothing will index).
    pub fn is_indexing(&self) -> bool {
        let waiting = matches!(self.pipeline, PipelineState::Loading);
        self.folder.as_ref().is_some_and(|f| f.indexing.is_some() || (!f.index_started && waiting))
    }

    /// What the last finished index run of the open folder did.
    pub fn index_summary(&self) -> Option<&Summary> {
        self.folder.as_ref().and_then(|f| f.summary.as_ref())
    }

    pub fn library(&self) -> Option<&Library> {
        self.folder.as_ref().map(|f| &*f.lib)
    }

    pub fn ranking(&self) -> &Ranking {
        &self.ranking
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    pub fn query(&self) -> Option<&Query> {
        self.query.as_ref().map(|q| &q.0)
    }

    /// The photo open in the inspector.
    pub fn inspected(&self) -> Option<i64> {
        self.inspect.as_ref().map(|i| i.photo_id)
    }

    /// The user is choosing one of several faces of an outside photo.
    pub fn picking_face(&self) -> bool {
        self.face_pick.is_some()
    }

    /// Errors shown in the window.
    pub fn errors(&self) -> Vec<&str> {
        self.notices.iter().filter(|n| matches!(n.level, Level::Error)).map(|n| n.text.as_str()).collect()
    }

    pub fn infos(&self) -> Vec<&str> {
        self.notices.iter().filter(|n| matches!(n.level, Level::Info)).map(|n| n.text.as_str()).collect()
    }

    /// Makes face `row` of the library the query.
    fn query_face(&mut self, row: usize) {
        let Some(f) = &self.folder else { return };
        let t = &f.lib.table;
        let (face_id, photo_id) = (t.face_id(row), t.photo_id(row));
        let label = format!("face {} in {}", t.face_index(row), f.lib.rel(photo_id));
        let q = Query::new(label, Some(face_id), t.embedding(row));
        self.set_query(q, QueryChip::Catalog(face_id));
    }

    /// Searches for a person (their exemplar faces).
    pub fn query_person(&mut self, id: i64) {
        let Some(f) = &self.folder else { return };
        match Query::person(&f.lib, id) {
            Some(q) => {
                let chip = q.face_id.map(QueryChip::Catalog);
                self.name_edit = f.lib.person(id).and_then(|p| p.name.clone()).unwrap_or_default();
                match chip {
                    Some(c) => self.set_query(q, c),
                    None => self.error("this person has no faces"),
                }
            }
            None => self.error("this person has no faces"),
        }
    }

    /// Runs a people edit on a worker (see [`worker::Outbox::edit_people`]); its undo is kept
    /// when it is done.
    pub fn edit_people(
        &mut self,
        mut f: impl FnMut(&mut crate::catalog::Catalog) -> Result<crate::catalog::people::Undo, crate::catalog::CatalogError> + Send + 'static,
    ) {
        self.run_edit(Box::new(move |c| f(c).map(|u| worker::Edited { info: u.what.clone(), undo: Some(u), person: None })));
    }

    fn run_edit(&mut self, edit: worker::PeopleEdit) {
        let Some(folder) = &self.folder else { return };
        self.edits.push(&self.out, Tag { open: folder.open, run: 0 }, folder.path.clone(), folder.catalog.clone(), edit);
    }

    /// Puts back the last people edit.
    pub fn undo_last(&mut self) {
        let Some(u) = self.undo.take() else { return };
        self.run_edit(Box::new(move |c| {
            c.undo(&u).map(|()| worker::Edited { undo: None, info: format!("Undone: {}", u.what), person: None })
        }));
    }

    /// What the last people edit was, while it can be undone.
    pub fn last_edit(&self) -> Option<&str> {
        self.undo.as_ref().map(|u| u.what.as_str())
    }

    /// An owned handle on the library (views draw from it while changing the app).
    fn library_arc(&self) -> Option<Arc<Library>> {
        self.folder.as_ref().map(|f| f.lib.clone())
    }

    pub fn people_view(&self) -> bool {
        self.show_people
    }

    fn set_query(&mut self, q: Query, chip: QueryChip) {
        // a query chosen now outranks any outside photo still being read (or waiting for the
        // models) for an older one
        self.query_seq += 1;
        self.pending_query_file = None;
        self.awaiting_file = None;
        self.query = Some((q, chip));
        self.threshold = self.prefs.threshold;
        self.inspect = None;
        // a new query shows every year
        self.table.year = None;
        // the last query's results are not this one's
        self.clear_ranking();
        self.rerank();
    }

    fn set_verdict(&mut self, photo_id: i64, verdict: Option<Verdict>) {
        let Some(pos) = self.ranking.position(photo_id) else { return };
        let face_id = self.ranking.lib.table.face_id(self.ranking.results[pos].hit.row);
        if let Some((q, _)) = &mut self.query {
            q.set_verdict(photo_id, face_id, verdict);
        }
        self.rerank();
    }

    fn query_from_file(&mut self, path: PathBuf) {
        match &self.pipeline {
            PipelineState::Ready(p) => {
                self.query_seq += 1;
                self.awaiting_file = Some(path.clone());
                self.out.query_file(p.pipeline.clone(), path, self.query_seq);
            }
            PipelineState::Loading => {
                self.query_seq += 1;
                self.pending_query_file = Some(path);
            }
            PipelineState::Failed(e) => {
                let e = e.clone();
                self.error(format!("cannot query from {}: the face models did not load ({e})", path.display()));
            }
        }
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.handle_messages(&ctx);
        self.handle_drops(&ctx);
        self.start_indexing_if_ready();
        self.notices.retain(|n| matches!(n.level, Level::Error) || n.at.elapsed() < Duration::from_secs(10));
        if self.notices.iter().any(|n| matches!(n.level, Level::Info)) {
            ctx.request_repaint_after(Duration::from_secs(1));
        }
        if ctx.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Q)) {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        view::show(self, ui);
        self.textures.end_frame(&self.loader);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, PREFS_KEY, &self.prefs);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        if let Some(ix) = self.folder.as_ref().and_then(|f| f.indexing.as_ref()) {
            // The batch in flight is committed; the rest is picked up next time.
            ix.cancel.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary::default()
    }

    /// Messages are matched to the opening and the index run that asked for them, not to the
    /// folder's path: after A, B, A the first opening's snapshot, progress and end are dropped,
    /// as are an older run's; an older pipeline load's result does not replace a newer one; a
    /// failed load does not leave the album saying it is looking for photos.
    #[test]
    fn stale_messages_of_an_earlier_opening_run_or_load_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let prefs = Prefs { catalog_dir: Some(tmp.path().join("catalogs")), ..Prefs::default() };
        let options = Options { models_dir: Some(tmp.path().join("no models here")), prefs: Some(prefs), ..Options::default() };
        let mut h = egui_kittest::Harness::builder().build_eframe(move |cc| App::new(cc, options));
        let ctx = h.ctx.clone();
        let app = h.state_mut();
        let lib = |app: &App| app.folder.as_ref().map(|f| f.lib.clone()).unwrap();
        let running = |run| Indexing { run, cancel: Arc::new(AtomicBool::new(false)), planned: None, done: 0, faces: 0, first: None };
        // Building the harness ran frames (the real load may have failed already); from here on
        // no frame runs, so only the messages handed to `handle` below arrive.
        app.notices.clear();
        app.pipeline = PipelineState::Loading;

        app.open_folder(a.clone());
        let first = app.folder.as_ref().unwrap().open;
        app.folder.as_mut().unwrap().indexing = Some(running(100));
        app.open_folder(b);
        app.open_folder(a.clone());
        let f = app.folder.as_mut().unwrap();
        assert_eq!(f.path, a.canonicalize().unwrap());
        let now = f.open;
        assert_ne!(now, first);
        f.indexing = Some(running(200));
        let shown = lib(app);

        // the first opening of A (same path): nothing lands
        let old = Tag { open: first, run: 100 };
        let other = Arc::new(Library::new(a.clone(), Vec::new(), Default::default()));
        app.handle(&ctx, Msg::Library { tag: old, seq: 1000, lib: other.clone() });
        app.handle(&ctx, Msg::Progress { tag: old, done: 7, faces: 9 });
        app.handle(&ctx, Msg::Skipped { tag: old, path: "x.jpg".into(), reason: "bad".into() });
        app.handle(&ctx, Msg::IndexFailed { tag: old, error: "cancelled".into() });
        app.handle(&ctx, Msg::IndexDone { tag: old, summary: summary() });
        // an older run of this opening: nothing lands either
        let older = Tag { open: now, run: 150 };
        app.handle(&ctx, Msg::Progress { tag: older, done: 5, faces: 5 });
        app.handle(&ctx, Msg::IndexDone { tag: older, summary: summary() });
        let f = app.folder.as_ref().unwrap();
        assert!(Arc::ptr_eq(&f.lib, &shown) && !f.loaded && f.skipped.is_empty() && f.summary.is_none());
        assert_eq!(f.indexing.as_ref().map(|ix| (ix.run, ix.done)), Some((200, 0)));
        assert!(app.errors().is_empty(), "{:?}", app.errors());

        // this run's messages do
        let cur = Tag { open: now, run: 200 };
        app.handle(&ctx, Msg::Progress { tag: cur, done: 3, faces: 4 });
        assert_eq!(app.folder.as_ref().unwrap().indexing.as_ref().map(|ix| ix.done), Some(3));
        app.handle(&ctx, Msg::Library { tag: Tag { open: now, run: 0 }, seq: 1000, lib: other.clone() });
        assert!(Arc::ptr_eq(&lib(app), &other));
        app.handle(&ctx, Msg::IndexDone { tag: cur, summary: summary() });
        assert!(app.folder.as_ref().unwrap().indexing.is_none() && app.folder.as_ref().unwrap().summary.is_some());

        // pipeline loads: only the latest request's answer counts
        let first_load = app.pipeline_gen;
        app.reload_pipeline();
        app.handle(&ctx, Msg::Pipeline { gen: first_load, result: Err("old".into()) });
        assert!(matches!(app.pipeline, PipelineState::Loading) && app.errors().is_empty());
        // a folder opened while the models load is "looking for photos"; once the load has
        // failed it is not (nothing will index it)
        app.folder.as_mut().unwrap().index_started = false;
        assert!(app.is_indexing());
        app.handle(&ctx, Msg::Pipeline { gen: app.pipeline_gen, result: Err("no weights".into()) });
        assert!(matches!(app.pipeline, PipelineState::Failed(_)));
        assert!(!app.is_indexing());
        assert!(app.errors().iter().any(|e| e.contains("no weights")));
    }

    /// `--catalog` goes with the folder it was given with: a folder opened later gets its own
    /// catalog, and the first folder gets the given one back.
    #[test]
    fn a_given_catalog_belongs_to_its_folder_only() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let given = tmp.path().join("given.sqlite");
        let prefs = Prefs { catalog_dir: Some(tmp.path().join("catalogs")), ..Prefs::default() };
        let options = Options {
            folder: Some(a.clone()),
            catalog: Some(given.clone()),
            models_dir: Some(tmp.path().join("none")),
            prefs: Some(prefs),
            ..Options::default()
        };
        let mut h = egui_kittest::Harness::builder().build_eframe(move |cc| App::new(cc, options));
        let app = h.state_mut();
        let catalog = |app: &App| app.folder.as_ref().map(|f| f.catalog.clone()).unwrap();
        assert_eq!(catalog(app), given);
        app.open_folder(b.clone());
        let other = catalog(app);
        assert_ne!(other, given);
        assert!(other.starts_with(tmp.path().join("catalogs")), "{}", other.display());
        app.open_folder(a);
        assert_eq!(catalog(app), given);
    }
}
