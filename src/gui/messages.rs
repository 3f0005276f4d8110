//! The app's reducer: every message from the background threads, dropped when it belongs to
//! an earlier opening, run, load or query; and the choices that reload, reopen or re-index.

use super::query::Query;
use eframe::egui;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;
use worker::{Msg, Pick, Tag};

use super::*;

impl App {
    pub(super) fn handle_messages(&mut self, ctx: &egui::Context) {
        while let Ok(m) = self.rx.try_recv() {
            self.handle(ctx, m);
        }
        while let Ok(l) = self.loader.rx.try_recv() {
            self.textures.insert(l);
        }
    }

    /// The message belongs to the folder on screen (this opening of it).
    pub(super) fn is_current(&self, tag: Tag) -> bool {
        self.folder.as_ref().is_some_and(|f| f.open == tag.open)
    }

    /// The message belongs to the index run in progress.
    pub(super) fn is_current_run(&self, tag: Tag) -> bool {
        self.folder.as_ref().and_then(|f| f.indexing.as_ref().map(|ix| f.open == tag.open && ix.run == tag.run)).unwrap_or(false)
    }

    pub(super) fn handle(&mut self, ctx: &egui::Context, m: Msg) {
        match m {
            Msg::Pipeline { gen, result: Ok(p) } if gen == self.pipeline_gen => {
                self.pipeline = PipelineState::Ready(p);
                self.embedder_before = None;
                if let Some(path) = self.pending_query_file.take() {
                    self.query_from_file(path);
                }
            }
            Msg::Pipeline { gen, result: Err(e) } if gen == self.pipeline_gen && self.embedder_before.is_some() => {
                // a newly chosen embedder that does not load: the one before it stays
                let bad = std::mem::replace(&mut self.prefs.embedder, self.embedder_before.take().flatten());
                let bad = bad.map(|p| p.display().to_string()).unwrap_or_default();
                self.error(format!("cannot use {bad} as the embedder ({e}); the one before stays"));
                self.reload_pipeline();
            }
            Msg::Pipeline { gen, result: Err(e) } if gen == self.pipeline_gen => {
                self.error(format!("the face models did not load: {e}"));
                self.pipeline = PipelineState::Failed(e);
                if let Some(path) = self.pending_query_file.take() {
                    self.query_from_file(path);
                }
            }
            Msg::Library { tag, seq, lib } if self.is_current(tag) && self.folder.as_ref().is_some_and(|f| seq > f.snapshot) => {
                if let Some(f) = &mut self.folder {
                    self.textures.refresh(&f.lib, &lib);
                    f.lib = lib;
                    if f.indexing.is_none() {
                        f.skipped = f.lib.skipped();
                    }
                    f.snapshot = seq;
                    f.loaded = true;
                    f.open_error = None;
                    f.rebuild_offer = false;
                }
                if let Some(id) = self.query.as_ref().and_then(|q| q.0.person) {
                    let verdicts = self.query.as_ref().map(|q| q.0.verdicts.clone()).unwrap_or_default();
                    match self.folder.as_ref().and_then(|f| Query::person(&f.lib, id)) {
                        Some(mut q) => {
                            q.verdicts = verdicts;
                            if let Some((old, _)) = &mut self.query {
                                *old = q;
                            }
                        }
                        None => self.clear_query(), // merged away or emptied
                    }
                }
                if self.query.is_some() {
                    self.rerank();
                }
            }
            Msg::OpenFailed { tag, seq, error, rebuildable }
                if self.is_current(tag) && self.folder.as_ref().is_some_and(|f| seq > f.snapshot) =>
            {
                if let Some(f) = &mut self.folder {
                    // Nothing to show and nothing to index into.
                    f.index_started = true;
                    f.rebuild_offer = rebuildable;
                    f.open_error = Some(error.clone());
                    let shown = f.path.display().to_string();
                    self.error(format!("cannot open the catalog of {shown}: {error}"));
                }
            }
            Msg::Planned { tag, todo, total } if self.is_current_run(tag) => {
                if let Some(ix) = self.folder.as_mut().and_then(|f| f.indexing.as_mut()) {
                    ix.planned = Some((todo, total));
                }
            }
            Msg::Progress { tag, done, faces } if self.is_current_run(tag) => {
                if let Some(ix) = self.folder.as_mut().and_then(|f| f.indexing.as_mut()) {
                    ix.done = done;
                    ix.faces = faces;
                    if ix.first.is_none() {
                        ix.first = Some((Instant::now(), done));
                    }
                }
            }
            Msg::Skipped { tag, path, reason } if self.is_current_run(tag) => {
                if let Some(f) = &mut self.folder {
                    f.skipped.push((path, reason));
                }
            }
            Msg::IndexDone { tag, summary } if self.is_current_run(tag) => {
                if let Some(f) = &mut self.folder {
                    f.indexing = None;
                    f.summary = Some(summary);
                    f.skipped = f.lib.skipped();
                }
            }
            Msg::IndexFailed { tag, error } if self.is_current_run(tag) => {
                if let Some(f) = &mut self.folder {
                    f.indexing = None;
                    f.skipped = f.lib.skipped();
                    let shown = f.path.display().to_string();
                    self.error(format!("indexing {shown} stopped: {error}"));
                }
            }
            Msg::QueryFaces { seq, path, mut faces } if seq == self.query_seq => {
                self.awaiting_file = None;
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if faces.len() == 1 {
                    let f = faces.remove(0);
                    let tex = ctx.load_texture("query-chip", f.chip.clone(), egui::TextureOptions::LINEAR);
                    self.set_query(Query::new(format!("{name} (outside the folder)"), None, f.embedding), QueryChip::Texture(tex));
                } else {
                    let faces = faces
                        .into_iter()
                        .enumerate()
                        .map(|(i, f)| {
                            let t = ctx.load_texture(format!("pick-{i}"), f.chip.clone(), egui::TextureOptions::LINEAR);
                            (f, t)
                        })
                        .collect();
                    self.face_pick = Some(FacePick { path, faces });
                }
            }
            Msg::Ranked { seq, ranking } => self.ranked(seq, ranking),
            Msg::QueryFailed { seq, path, error } if seq == self.query_seq => {
                self.awaiting_file = None;
                self.error(format!("query from {}: {error}", path.display()));
            }
            Msg::DialogUnavailable(what) => {
                self.info("no file dialog is available here (no desktop portal or zenity): type or paste the path");
                self.path_prompt = Some((what, String::new()));
            }
            Msg::Picked(what, p) => self.picked(what, p),
            Msg::PeopleEdited { tag, result: Ok(e) } if self.is_current(tag) => {
                self.info(e.info);
                self.undo = e.undo;
                // a search saved as a person becomes that person's search
                if let (Some(id), Some((q, _))) = (e.person, &mut self.query) {
                    q.person = Some(id);
                }
            }
            // an edit that could not be saved is said, whichever folder is open now
            Msg::PeopleEdited { result: Err(e), .. } => self.error(format!("a people edit was not saved: {e}")),
            Msg::Info(s) => self.info(s),
            Msg::Error(s) => self.error(s),
            // Messages of a folder opening, index run or pipeline load that is no longer current.
            _ => {}
        }
    }

    /// A path chosen in a file dialog, or typed where none could open.
    pub(crate) fn picked(&mut self, what: Pick, p: PathBuf) {
        match what {
            Pick::Folder => self.open_folder(p),
            Pick::QueryFile => self.query_from_file(p),
            Pick::ExportFolder => self.export_dir = p.display().to_string(),
            Pick::CatalogDir => {
                self.prefs.catalog_dir = Some(p);
                self.reopen();
            }
            Pick::EmbedderFile => match embedder_report(&p) {
                Ok(report) => self.embedder_offer = Some((p, report)),
                Err(e) => self.error(format!("cannot use {} as the embedder: {e}", p.display())),
            },
        }
    }

    /// Switches to the embedder offered (after the user saw its validation numbers).
    pub(crate) fn accept_embedder(&mut self) {
        if let Some((p, _)) = self.embedder_offer.take() {
            // the last embedder known to load: the one in use, or the one before a choice still loading
            let before = match self.embedder_before.take() {
                Some(b) => b,
                None => self.prefs.embedder.clone(),
            };
            self.prefs.embedder = Some(p);
            self.reload_pipeline();
            self.embedder_before = Some(before);
        }
    }

    /// Opens the current folder again (its catalog location changed).
    pub(super) fn reopen(&mut self) {
        if let Some(f) = self.folder.take() {
            if let Some(ix) = &f.indexing {
                ix.cancel.store(true, Ordering::Relaxed);
            }
            // the old catalog's results go, whether or not the folder opens again
            self.clear_query();
            self.open_folder(f.path);
        }
    }

    /// A changed scan setting: index the open folder again (after the current run ends).
    pub(crate) fn reindex(&mut self) {
        if let Some(f) = &mut self.folder {
            if let Some(ix) = &f.indexing {
                ix.cancel.store(true, Ordering::Relaxed);
            }
            f.index_started = false;
        }
    }

    /// A changed device, flip setting or embedder: reload the models (and, for flip or the
    /// embedder, re-index). Face vectors of the old models are never ranked against the new
    /// ones: outside photos still being read are dropped, and a face search is cleared with a
    /// word (a person's search is rebuilt from the re-embedded catalog as it comes).
    pub(super) fn reload_pipeline(&mut self) {
        // a reload for another reason (device, flip, the default embedder) is no new choice to undo
        self.embedder_before = None;
        let vectors = (self.prefs.flip, self.prefs.embedder.clone());
        if vectors != self.vectors {
            self.vectors = vectors;
            self.query_seq += 1;
            self.face_pick = None;
            // an outside photo being read with the old models is read again with the new ones
            if let Some(p) = self.awaiting_file.take() {
                self.pending_query_file = Some(p);
            }
            if self.query.as_ref().is_some_and(|q| q.0.person.is_none()) {
                self.clear_query();
                self.inspect = None;
                self.info("the search was cleared: the face embedder changed, so its faces are embedded again; click the face again");
            }
        }
        self.pipeline = PipelineState::Loading;
        self.pipeline_gen = self.next_serial();
        self.out.load_pipeline(self.pipeline_gen, self.models.clone(), self.prefs.embedder.clone(), self.prefs.device, self.prefs.flip);
        if let Some(f) = &mut self.folder {
            if let Some(ix) = &f.indexing {
                ix.cancel.store(true, Ordering::Relaxed);
            }
            f.index_started = false;
        }
    }

    pub(super) fn handle_drops(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect());
        for p in dropped {
            if p.is_dir() {
                self.open_folder(p);
            } else {
                self.query_from_file(p);
            }
        }
    }

    pub(super) fn export(&mut self, photos: bool) {
        let dest = self.export_dir.trim();
        if dest.is_empty() {
            self.error("choose a folder to export to first");
            return;
        }
        if self.ranking_pending() {
            self.error("the results are still being ranked: export again in a moment");
            return;
        }
        let dest = PathBuf::from(dest);
        if let Some(f) = &self.folder {
            if crate::util::paths::inside_folder(&f.path, &dest) {
                self.error("export into a folder outside the photo folder (facefind never writes into your photos)");
                return;
            }
            self.out.export(self.ranking.clone(), self.threshold, dest, self.export_mode, photos);
        }
    }
}

/// What the window shows before switching to an embedder file: the validation numbers its
/// training recorded in the manifest beside it (`facefind train`), or that it has none.
fn embedder_report(path: &Path) -> Result<String, String> {
    if !path.is_file() {
        return Err("not a file".into());
    }
    let manifest = path.with_extension("json");
    let onnx = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    let Ok(text) = std::fs::read_to_string(&manifest) else {
        return Ok(if onnx {
            format!(
                "No manifest ({}) beside it: its faces go in as insightface's networks take them (RGB, (x − 127.5) / 127.5, the size the network says). Nothing says how well it works.",
                manifest.display()
            )
        } else {
            format!("No manifest ({}) beside it: nothing says how well it works.", manifest.display())
        });
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
    if onnx && !v["training"].is_object() {
        let list = |x: &serde_json::Value| {
            x.as_array().map(|a| a.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")).unwrap_or_default()
        };
        return Ok(format!(
            "Its manifest says: {} px {}, (x − {}) / {}. Nothing says how well it works.",
            v["input_size"],
            v["channels"].as_str().unwrap_or("?"),
            list(&v["mean"]),
            list(&v["std"])
        ));
    }
    let val = &v["training"]["validation"];
    let pct = |x: &serde_json::Value| x.as_f64().map_or("-".to_string(), |x| format!("{:.2} %", x * 100.0));
    Ok(if val.is_object() {
        let mut s = format!(
            "Validation on {} ({} pairs): {} before training, {} after.",
            val["source"].as_str().unwrap_or("?"),
            val["pairs"].as_u64().unwrap_or(0),
            pct(&val["before"]),
            pct(&val["after"])
        );
        if val["worse"].as_bool() == Some(true) {
            s.push_str(" It got WORSE than the weights it started from (written with --keep-worse).");
        }
        s
    } else {
        match v["training"]["val_accuracy"].as_f64() {
            Some(a) => format!("Validation accuracy {:.2} % (no starting value recorded).", a * 100.0),
            None => "Its training recorded no validation: nothing says how well it works.".into(),
        }
    })
}
