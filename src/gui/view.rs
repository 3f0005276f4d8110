//! Drawing: welcome panel, album grid and faces strip, results with threshold and histogram,
//! inspector, settings and status bar. Reads and changes [`App`] state; never blocks.

use std::path::Path;

use eframe::egui::{self, Align2, Color32, FontId, Key, Modifiers, Pos2, Rect, Role, Sense, Stroke, StrokeKind, Vec2};

use super::library::{self, ExportMode, Verdict};
use super::widgets::{grid, paint_chip, CELL, CELL_TEXT, UV};
use super::worker::{ImageKey, Pick};
use super::{App, Inspect, Level, PipelineState, QueryChip};
use crate::catalog::{PhotoInfo, Status};
use crate::pipeline::DeviceChoice;

const CHIP: f32 = 72.0;

pub(super) fn show(app: &mut App, ui: &mut egui::Ui) {
    let ctx = ui.ctx().clone();
    top_bar(app, ui);
    progress(app, ui);
    status_bar(app, ui);
    if app.folder.is_none() {
        egui::CentralPanel::default_margins().show(ui, |ui| welcome(app, ui));
    } else if app.query.is_some() {
        egui::Panel::left("results-side").resizable(true).default_size(300.0).min_size(240.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| results_side(app, ui));
        });
        egui::CentralPanel::default_margins().show(ui, |ui| {
            if app.inspect.is_some() {
                inspector(app, ui);
            } else {
                results_grid(app, ui);
            }
        });
    } else if app.show_people {
        egui::CentralPanel::default_margins().show(ui, |ui| super::people_view::people(app, ui));
    } else {
        egui::Panel::bottom("faces-strip").resizable(false).exact_size(CHIP + 48.0).show(ui, |ui| faces_strip(app, ui));
        egui::CentralPanel::default_margins().show(ui, |ui| {
            if app.inspect.is_some() {
                inspector(app, ui);
            } else {
                album(app, ui);
            }
        });
    }
    notices(app, &ctx);
    super::prompts::show(app, &ctx);
    face_pick(app, &ctx);
    settings(app, &ctx);
    drop_hint(&ctx);
}

fn top_bar(app: &mut App, ui: &mut egui::Ui) {
    egui::Panel::top("top").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading("facefind");
            ui.separator();
            if ui.button("Open folder…").clicked() {
                app.out.pick(Pick::Folder);
            }
            let recent: Vec<_> = app.prefs.recent.clone();
            ui.add_enabled_ui(!recent.is_empty(), |ui| {
                ui.menu_button("Recent", |ui| {
                    for p in recent {
                        if ui.button(p.display().to_string()).clicked() {
                            app.open_folder(p);
                        }
                    }
                });
            });
            let can_query = app.folder.is_some() && !matches!(app.pipeline, PipelineState::Failed(_));
            if ui
                .add_enabled(can_query, egui::Button::new("Query from file…"))
                .on_hover_text("Find the person in a photo from anywhere on disk")
                .clicked()
            {
                app.out.pick(Pick::QueryFile);
            }
            if ui
                .add_enabled(app.folder.is_some(), egui::Button::new("People").selected(app.show_people))
                .on_hover_text("Faces grouped into people")
                .clicked()
            {
                app.show_people = !app.show_people;
                app.query = None;
                app.inspect = None;
            }
            if let Some(what) = app.last_edit().map(str::to_string) {
                if ui.button("Undo").on_hover_text(format!("Undo: {what}")).clicked() {
                    app.undo_last();
                }
            }
            if ui.button("Settings").clicked() {
                app.settings_open = !app.settings_open;
            }
            if let Some(f) = &app.folder {
                ui.separator();
                ui.label(egui::RichText::new(f.path.display().to_string()).strong())
                    .on_hover_text(format!("catalog: {}", f.catalog.display()));
            }
        });
    });
}

/// Errors and confirmations as a stack floating above the bottom-right corner: they never move
/// the rest of the window (a click aimed at a button lands on it even as a message appears).
fn notices(app: &mut App, ctx: &egui::Context) {
    if app.notices.is_empty() {
        return;
    }
    let mut close = None;
    egui::Area::new(egui::Id::unique("notices")).anchor(Align2::RIGHT_BOTTOM, Vec2::new(-12.0, -40.0)).order(egui::Order::Foreground).show(
        ctx,
        |ui| {
            ui.set_max_width(560.0);
            for (i, n) in app.notices.iter().enumerate().rev().take(4) {
                let (fill, icon) = match n.level {
                    Level::Error => (Color32::from_rgb(150, 40, 40), "Error:"),
                    Level::Info => (Color32::from_rgb(40, 110, 60), ""),
                };
                egui::Frame::new().fill(fill).inner_margin(6.0).corner_radius(4.0).show(ui, |ui| {
                    ui.horizontal(|ui| {
                        if ui.small_button("×").on_hover_text("Dismiss").clicked() {
                            close = Some(i);
                        }
                        ui.add(
                            egui::Label::new(egui::RichText::new(format!("{icon} {}", n.text).trim().to_string()).color(Color32::WHITE))
                                .wrap(),
                        );
                    });
                });
            }
            if app.notices.len() > 4 {
                ui.label(format!("… and {} more", app.notices.len() - 4));
            }
        },
    );
    if let Some(i) = close {
        app.notices.remove(i);
    }
}

fn progress(app: &mut App, ui: &mut egui::Ui) {
    let Some(f) = &app.folder else { return };
    let waiting_models = !f.index_started && matches!(app.pipeline, PipelineState::Loading);
    let Some(ix) = &f.indexing else {
        if waiting_models {
            egui::Panel::top("progress").show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Loading the face models…");
                });
            });
        }
        return;
    };
    let mut cancel = false;
    egui::Panel::top("progress").show(ui, |ui| {
        ui.horizontal(|ui| {
            let (text, frac) = match ix.planned {
                None => ("Scanning the folder…".to_string(), None),
                Some((0, total)) => (format!("All {total} photos are up to date"), Some(1.0)),
                Some((todo, _)) => {
                    let mut t = format!("Indexing {} / {todo} photos · {} faces", ix.done, ix.faces);
                    if let Some(r) = ix.rate() {
                        let eta = ((todo - ix.done.min(todo)) as f64 / r).round() as u64;
                        t += &format!(" · {r:.1} photos/s · ETA {}:{:02}", eta / 60, eta % 60);
                    }
                    (t, Some(ix.done as f32 / todo.max(1) as f32))
                }
            };
            let bar = match frac {
                Some(fr) => egui::ProgressBar::new(fr).text(text),
                None => egui::ProgressBar::new(0.0).text(text).animate(true),
            };
            ui.add_sized([ui.available_width() - 90.0, 20.0], bar);
            if ix.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                ui.label("Stopping…");
            } else if ui.button("Cancel").on_hover_text("Stop after the current batch; the rest is indexed next time").clicked() {
                cancel = true;
            }
        });
        if !f.skipped.is_empty() {
            skipped_list(ui, &f.skipped);
        }
    });
    if cancel {
        ix.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    ui.ctx().request_repaint_after(std::time::Duration::from_millis(250));
}

fn skipped_list(ui: &mut egui::Ui, skipped: &[(String, String)]) {
    egui::CollapsingHeader::new(format!("{} files skipped", skipped.len())).id_salt("skipped").show(ui, |ui| {
        egui::ScrollArea::vertical().max_height(120.0).show(ui, |ui| {
            for (p, r) in skipped {
                ui.label(format!("{p}: {r}"));
            }
        });
    });
}

fn status_bar(app: &mut App, ui: &mut egui::Ui) {
    egui::Panel::bottom("status").show(ui, |ui| {
        ui.horizontal(|ui| {
            match &app.pipeline {
                PipelineState::Loading => {
                    ui.spinner();
                    ui.label("loading models…");
                }
                PipelineState::Ready(p) => {
                    ui.label(format!("device: {}", p.device));
                    ui.separator();
                    ui.label(&p.models).on_hover_text(format!("models: {}", app.models_dir.display()));
                }
                PipelineState::Failed(_) => {
                    ui.colored_label(Color32::from_rgb(220, 80, 80), "face models not loaded (see the message)");
                }
            }
            if let Some(f) = &app.folder {
                ui.separator();
                let lib = &f.lib;
                let counts = lib.counts();
                let mut t = format!("{} photos, {} faces", lib.photos.len(), lib.table.len());
                let other: Vec<String> = counts.iter().filter(|(k, _)| **k != "faces").map(|(k, v)| format!("{v} {k}")).collect();
                if !other.is_empty() {
                    t += &format!(" ({})", other.join(", "));
                }
                ui.label(t);
                if let Some(s) = &f.summary {
                    ui.separator();
                    let skipped: usize = s.skipped.values().sum();
                    ui.label(format!(
                        "last index: {} new, {} skipped, {:.1} s{}",
                        s.processed - skipped.min(s.processed),
                        skipped,
                        s.seconds,
                        if s.cancelled { " (cancelled)" } else { "" }
                    ));
                }
                ui.separator();
                ui.label(format!("catalog: {}", f.catalog.display()));
            }
        });
    });
}

fn welcome(app: &mut App, ui: &mut egui::Ui) {
    ui.vertical_centered(|ui| {
        ui.add_space(ui.available_height() * 0.2);
        ui.heading(egui::RichText::new("Find every photo of a person").size(28.0));
        ui.add_space(8.0);
        ui.label("Open a photo folder. facefind indexes the faces in it (your photos are only read, never changed), then click any face to see every photo of that person.");
        ui.add_space(16.0);
        if ui.add(egui::Button::new(egui::RichText::new("Open a photo folder…").size(20.0)).min_size(Vec2::new(200.0, 44.0))).clicked() {
            app.out.pick(Pick::Folder);
        }
        ui.label("or drop a folder onto this window");
        if ui.link("or type its path").clicked() {
            app.path_prompt = Some((Pick::Folder, String::new()));
        }
        if !app.prefs.recent.is_empty() {
            ui.add_space(24.0);
            ui.label(egui::RichText::new("Recent folders").strong());
            for p in app.prefs.recent.clone() {
                if ui.link(p.display().to_string()).clicked() {
                    app.open_folder(p);
                }
            }
        }
    });
}

fn drop_hint(ctx: &egui::Context) {
    let hovering = ctx.input(|i| !i.raw.hovered_files.is_empty());
    if !hovering {
        return;
    }
    let painter = ctx.layer_painter(egui::LayerId::new(egui::Order::Foreground, egui::Id::unique("drop")));
    let rect = ctx.content_rect();
    painter.rect_filled(rect, 0.0, Color32::from_black_alpha(160));
    painter.text(
        rect.center(),
        Align2::CENTER_CENTER,
        "Drop a folder to open it, or a photo to search for its face",
        FontId::proportional(22.0),
        Color32::WHITE,
    );
}

/// Where a `w`×`h` image lands when fitted (centred) into `area`.
fn fit(area: Rect, w: f32, h: f32) -> Rect {
    let s = (area.width() / w.max(1.0)).min(area.height() / h.max(1.0));
    Rect::from_center_size(area.center(), Vec2::new(w * s, h * s))
}

/// A photo box (original pixels) inside an image drawn at `rect`.
fn box_rect(rect: Rect, photo: &PhotoInfo, b: [f32; 4]) -> Rect {
    let sx = rect.width() / photo.width.max(1) as f32;
    let sy = rect.height() / photo.height.max(1) as f32;
    Rect::from_min_size(rect.min + Vec2::new(b[0] * sx, b[1] * sy), Vec2::new(b[2] * sx, b[3] * sy))
}

/// Colour for a score: green above the threshold, amber just below, grey far below.
fn score_color(score: f32, threshold: f32) -> Color32 {
    if score >= threshold {
        let t = ((score - threshold) / 0.3).clamp(0.0, 1.0);
        Color32::from_rgb((90.0 - 60.0 * t) as u8, (170.0 + 40.0 * t) as u8, 80)
    } else if score >= threshold - 0.1 {
        Color32::from_rgb(230, 160, 40)
    } else {
        Color32::from_gray(140)
    }
}

/// Draws a photo thumbnail (or a placeholder while it loads) into `rect`; returns where the
/// image landed.
fn draw_thumb(app: &mut App, ui: &egui::Ui, photo: &PhotoInfo, rect: Rect, tint: Color32) -> Rect {
    let img = fit(rect, photo.width as f32, photo.height as f32);
    let painter = ui.painter_at(rect);
    match photo.status {
        Status::Faces | Status::NoFace => match app.textures.get(ImageKey::Thumb(photo.id)) {
            Some(t) => {
                painter.image(t.id(), img, UV, tint);
            }
            None => {
                painter.rect_filled(img, 2.0, ui.visuals().faint_bg_color);
            }
        },
        Status::Unsupported | Status::Error => {
            painter.rect_filled(rect.shrink(8.0), 4.0, ui.visuals().faint_bg_color);
            let reason = photo.reason.as_deref().unwrap_or(photo.status.as_str());
            let galley =
                ui.painter().layout(reason.to_string(), FontId::proportional(11.0), ui.visuals().weak_text_color(), rect.width() - 24.0);
            painter.galley(rect.center() - galley.size() / 2.0, galley, ui.visuals().weak_text_color());
            return rect.shrink(8.0);
        }
    }
    img
}

fn file_name(rel: &str) -> &str {
    rel.rsplit(['/', '\\']).next().unwrap_or(rel)
}

fn album(app: &mut App, ui: &mut egui::Ui) {
    let lib = match &app.folder {
        Some(f) => f.lib.clone(),
        None => return,
    };
    if app.folder.as_ref().is_some_and(|f| f.rebuild_offer) {
        super::prompts::rebuild_offer(app, ui);
        return;
    }
    if lib.photos.is_empty() {
        ui.centered_and_justified(|ui| {
            let open_error = app.folder.as_ref().and_then(|f| f.open_error.clone());
            let loaded = app.folder.as_ref().is_some_and(|f| f.loaded);
            let text = match &app.pipeline {
                _ if open_error.is_some() => {
                    let e = open_error.unwrap_or_default();
                    let hint = if e.contains("not a facefind catalog") {
                        "\n\nChoose where catalogs are kept in Settings, or pass another --catalog."
                    } else {
                        ""
                    };
                    format!("This folder's catalog cannot be used: {e}{hint}")
                }
                _ if !loaded => "Reading the catalog…".to_string(),
                PipelineState::Failed(e) => format!("This folder cannot be indexed: the face models did not load ({e}). See Settings."),
                _ if app.is_indexing() => "Looking for photos… they appear here as they are indexed.".to_string(),
                _ => "No photos in this folder.".to_string(),
            };
            ui.label(text);
        });
        return;
    }
    ui.label(format!(
        "{} photos · {} faces — hover a photo to see its faces, click a face to find that person",
        lib.photos.len(),
        lib.table.len()
    ));
    let mut clicked_face = None;
    let mut clicked_photo = None;
    let mut open = None;
    grid(ui, lib.photos.len(), "album", |ui, i, rect| {
        let photo = &lib.photos[i];
        let rel = crate::catalog::names::display_rel(&photo.path);
        let resp = ui.interact(rect, ui.scope_id().with(("album", photo.id)), Sense::click());
        resp.widget_info(|| egui::WidgetInfo::labeled(Role::Button, true, format!("photo {rel}")));
        let selected = app.selected == Some(photo.id);
        if selected || resp.hovered() {
            ui.painter().rect_filled(rect, 4.0, ui.visuals().widgets.hovered.weak_bg_fill);
        }
        let img = draw_thumb(app, ui, photo, Rect::from_min_size(rect.min, Vec2::splat(CELL)).shrink(4.0), Color32::WHITE);
        let mut over_face = None;
        if resp.hovered() || selected {
            for row in lib.rows_of(photo.id) {
                let b = box_rect(img, photo, lib.table.bbox(row));
                let hot = resp.hover_pos().is_some_and(|p| b.contains(p));
                if hot {
                    over_face = Some(row);
                }
                ui.painter().rect_stroke(
                    b,
                    1.0,
                    Stroke::new(if hot { 2.5 } else { 1.5 }, if hot { Color32::YELLOW } else { Color32::LIGHT_GREEN }),
                    StrokeKind::Outside,
                );
            }
        }
        let text_pos = Pos2::new(rect.center().x, rect.max.y - CELL_TEXT / 2.0);
        ui.painter_at(rect).text(text_pos, Align2::CENTER_CENTER, file_name(&rel), FontId::proportional(12.0), ui.visuals().text_color());
        if resp.clicked() {
            match over_face {
                Some(row) => clicked_face = Some(row),
                None => clicked_photo = Some(photo.id),
            }
        }
        if resp.double_clicked() {
            open = Some(photo.id);
        }
        if over_face.is_some() {
            resp.on_hover_text("Click to find this person");
        }
    });
    if let Some(row) = clicked_face {
        app.query_face(row);
    } else if let Some(id) = clicked_photo {
        app.selected = if app.selected == Some(id) { None } else { Some(id) };
    }
    if let Some(id) = open {
        app.inspect = Some(Inspect { photo_id: id, zoom: 1.0, ..Default::default() });
    }
}

/// One face chip as a clickable, labelled widget.
fn chip_button(app: &mut App, ui: &mut egui::Ui, face_id: i64, label: &str, size: f32) -> egui::Response {
    let (rect, resp) = ui.allocate_exact_size(Vec2::splat(size), Sense::click());
    resp.widget_info(|| egui::WidgetInfo::labeled(Role::Button, true, label));
    paint_chip(app, ui, rect, ImageKey::Chip(face_id));
    if resp.hovered() {
        ui.painter().rect_stroke(rect, 3.0, Stroke::new(2.0, Color32::YELLOW), StrokeKind::Outside);
    }
    resp.on_hover_text("Click to find this person")
}

fn faces_strip(app: &mut App, ui: &mut egui::Ui) {
    let lib = match &app.folder {
        Some(f) => f.lib.clone(),
        None => return,
    };
    // a range either way: nothing per face is built per frame (a library can have millions)
    let rows = match app.selected {
        Some(id) => lib.rows_of(id),
        None => 0..lib.table.len(),
    };
    ui.horizontal(|ui| {
        match app.selected {
            Some(id) => ui.label(format!("{} faces in {} — click one to find that person", rows.len(), lib.rel(id))),
            None => ui.label(format!("All {} faces — click one to find that person (click a photo to see only its faces)", rows.len())),
        };
        if app.selected.is_some() && ui.small_button("Show all faces").clicked() {
            app.selected = None;
        }
    });
    let mut clicked = None;
    let step = CHIP + 6.0;
    egui::ScrollArea::horizontal().id_salt(("strip", app.selected)).auto_shrink(false).show_viewport(ui, |ui, viewport| {
        ui.set_width(step * rows.len() as f32);
        let first = (viewport.min.x / step).floor().max(0.0) as usize;
        let last = ((viewport.max.x / step).ceil() as usize + 1).min(rows.len());
        let origin = ui.min_rect().min;
        for (k, row) in rows.clone().enumerate().take(last).skip(first) {
            let rect = Rect::from_min_size(origin + Vec2::new(k as f32 * step, 0.0), Vec2::splat(CHIP));
            let face_id = lib.table.face_id(row);
            let label = format!("face {} in {}", lib.table.face_index(row), lib.rel(lib.table.photo_id(row)));
            let resp = ui.put(rect, |ui: &mut egui::Ui| chip_button(app, ui, face_id, &label, CHIP));
            if resp.clicked() {
                clicked = Some(row);
            }
        }
    });
    if let Some(row) = clicked {
        app.query_face(row);
    }
}

fn query_chip(app: &mut App, ui: &mut egui::Ui, size: f32) {
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(size), Sense::hover());
    match &app.query {
        Some((_, QueryChip::Catalog(id))) => {
            let id = *id;
            paint_chip(app, ui, rect, ImageKey::Chip(id));
        }
        Some((_, QueryChip::Texture(t))) => {
            ui.painter().image(t.id(), rect, UV, Color32::WHITE);
        }
        None => {}
    }
}

fn results_side(app: &mut App, ui: &mut egui::Ui) {
    let Some((q, _)) = &app.query else { return };
    let label = q.label.clone();
    let (yes, no) = q.verdicts.values().fold((0, 0), |(y, n), v| if v.1 == Verdict::Yes { (y + 1, n) } else { (y, n + 1) });
    if ui.button(if app.show_people { "Back to people" } else { "Back to album" }).clicked() {
        app.query = None;
        app.inspect = None;
        return;
    }
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        query_chip(app, ui, 96.0);
        ui.vertical(|ui| {
            ui.label(egui::RichText::new("Looking for").weak());
            ui.label(egui::RichText::new(&label).strong());
            if yes + no > 0 {
                ui.label(format!("refined: {yes} confirmed, {no} rejected"));
                if ui.small_button("Clear verdicts").clicked() {
                    if let Some((q, _)) = &mut app.query {
                        q.verdicts.clear();
                    }
                    app.rerank();
                }
            }
        });
    });
    match app.query.as_ref().and_then(|q| q.0.person) {
        Some(id) => super::people_view::person_panel(app, ui, id),
        None => super::people_view::save_as_person(app, ui),
    }
    ui.separator();
    let total = app.ranking.results.len();
    ui.add(egui::Slider::new(&mut app.threshold, -0.2..=1.0).step_by(0.01).fixed_decimals(2).text("threshold"))
        .on_hover_text("Cosine similarity of a photo's best face to the query at or above which it counts as a match");
    if app.threshold < app.ranking.exact_from {
        // scores this low were approximate: rank again, exact down to the new threshold
        app.rerank();
    }
    let n = app.ranking.match_count(app.threshold);
    ui.label(egui::RichText::new(format!("{n} photo{} ≥ {:.2}", if n == 1 { "" } else { "s" }, app.threshold)).size(18.0).strong());
    ui.label(format!("of {total} photos with faces"));
    ui.checkbox(&mut app.prefs.show_below, "Show photos below the threshold (dimmed)");
    histogram(app, ui);
    ui.separator();
    ui.label(egui::RichText::new("Export matches").strong());
    ui.horizontal(|ui| {
        ui.add(egui::TextEdit::singleline(&mut app.export_dir).hint_text("export folder").desired_width(180.0))
            .widget_info(|| egui::WidgetInfo::labeled(Role::TextInput, true, "export folder"));
        if ui.button("Choose…").clicked() {
            app.out.pick(Pick::ExportFolder);
        }
    });
    ui.horizontal(|ui| {
        ui.radio_value(&mut app.export_mode, ExportMode::Copy, "copy");
        if cfg!(unix) {
            ui.radio_value(&mut app.export_mode, ExportMode::Link, "link");
        }
    });
    ui.horizontal(|ui| {
        if ui.add_enabled(n > 0, egui::Button::new(format!("Export {n} photos"))).clicked() {
            app.export(true);
        }
        if ui.button("Save CSV").on_hover_text("facefind-results.csv in the export folder: path, score, box, match").clicked() {
            app.export(false);
        }
    });
}

fn histogram(app: &mut App, ui: &mut egui::Ui) {
    use egui_plot::{Bar, BarChart, Plot, VLine};
    let thr = app.threshold;
    let bars: Vec<Bar> = app
        .ranking
        .histogram
        .iter()
        .filter(|b| b.1 > 0)
        .map(|&(x, c)| {
            Bar::new(x as f64, c as f64).width(0.9 * library::HISTOGRAM_BIN as f64).fill(if x >= thr {
                Color32::from_rgb(70, 180, 90)
            } else {
                Color32::from_gray(130)
            })
        })
        .collect();
    Plot::new("score-histogram")
        .height(150.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .allow_boxed_zoom(false)
        .show_grid([false, true])
        .x_axis_label("similarity")
        .include_x(-0.2)
        .include_x(1.0)
        .include_y(0.0)
        .show(ui, |p| {
            p.bar_chart(BarChart::new("photos", bars));
            p.vline(VLine::new("threshold", thr as f64).color(Color32::from_rgb(230, 160, 40)).width(2.0));
        });
}

fn results_grid(app: &mut App, ui: &mut egui::Ui) {
    let lib = match &app.folder {
        Some(f) => f.lib.clone(),
        None => return,
    };
    let thr = app.threshold;
    let shown = if app.prefs.show_below { app.ranking.results.len() } else { app.ranking.match_count(thr) };
    if shown == 0 {
        ui.centered_and_justified(|ui| {
            ui.label(if app.ranking.results.is_empty() {
                "No faces indexed yet."
            } else {
                "No photo reaches this threshold: lower it to see more."
            });
        });
        return;
    }
    let mut open = None;
    grid(ui, shown, "results", |ui, i, rect| {
        let r = app.ranking.results[i];
        let Some(photo) = lib.photo(r.hit.photo_id) else { return };
        let rel = crate::catalog::names::display_rel(&photo.path);
        let matched = r.is_match(thr);
        let resp = ui.interact(rect, ui.scope_id().with(("result", photo.id)), Sense::click());
        resp.widget_info(|| egui::WidgetInfo::labeled(Role::Button, true, format!("result {} {rel} {:.2}", i + 1, r.hit.score)));
        if resp.hovered() {
            ui.painter().rect_filled(rect, 4.0, ui.visuals().widgets.hovered.weak_bg_fill);
        }
        let tint = if matched { Color32::WHITE } else { Color32::from_white_alpha(70) };
        let img = draw_thumb(app, ui, photo, Rect::from_min_size(rect.min, Vec2::splat(CELL)).shrink(4.0), tint);
        let b = box_rect(img, photo, lib.table.bbox(r.hit.row));
        let color = score_color(r.hit.score, thr);
        ui.painter_at(img).rect_stroke(b, 1.0, Stroke::new(2.0, color), StrokeKind::Outside);
        let mark = match r.verdict {
            Some(Verdict::Yes) => "yes · ",
            Some(Verdict::No) => "no · ",
            None => "",
        };
        let text_pos = Pos2::new(rect.min.x + 6.0, rect.max.y - CELL_TEXT / 2.0);
        ui.painter_at(rect).text(text_pos, Align2::LEFT_CENTER, format!("{mark}{:.2}", r.hit.score), FontId::proportional(15.0), color);
        ui.painter_at(rect.with_min_x(rect.min.x + 62.0)).text(
            Pos2::new(rect.min.x + 62.0, text_pos.y),
            Align2::LEFT_CENTER,
            file_name(&rel),
            FontId::proportional(11.0),
            ui.visuals().weak_text_color(),
        );
        if resp.clicked() {
            open = Some(photo.id);
        }
    });
    if let Some(id) = open {
        app.inspect = Some(Inspect { photo_id: id, zoom: 1.0, ..Default::default() });
    }
}

/// `YYYY-MM-DD HH:MM` (UTC) from nanoseconds since 1970.
pub(super) fn format_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

fn open_in_file_manager(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(path);
    let mut cmd = if cfg!(target_os = "macos") {
        let mut c = std::process::Command::new("open");
        c.arg("-R").arg(path);
        c
    } else if cfg!(windows) {
        let mut c = std::process::Command::new("explorer");
        c.arg(format!("/select,{}", path.display()));
        c
    } else {
        let mut c = std::process::Command::new("xdg-open");
        c.arg(dir);
        c
    };
    let mut child = cmd.spawn()?;
    // Reap it without making the UI wait.
    std::thread::spawn(move || child.wait());
    Ok(())
}

fn inspector(app: &mut App, ui: &mut egui::Ui) {
    let Some(lib) = app.folder.as_ref().map(|f| f.lib.clone()) else { return };
    let Some(ins) = &app.inspect else { return };
    let photo_id = ins.photo_id;
    let Some(photo) = lib.photo(photo_id).cloned() else {
        app.inspect = None;
        return;
    };
    // The list ←/→ move through: the results (as shown), or the album.
    let list: Vec<i64> = if app.query.is_some() {
        let n = if app.prefs.show_below { app.ranking.results.len() } else { app.ranking.match_count(app.threshold) };
        app.ranking.results[..n].iter().map(|r| r.hit.photo_id).collect()
    } else {
        lib.photos.iter().map(|p| p.id).collect()
    };
    let pos = list.iter().position(|&id| id == photo_id);
    let mut go: Option<i64> = None;
    let typing = ui.ctx().memory(|m| m.focused().is_some());
    if !typing {
        if ui.input_mut(|i| i.consume_key(Modifiers::NONE, Key::Escape)) {
            app.inspect = None;
            return;
        }
        if ui.input_mut(|i| i.consume_key(Modifiers::NONE, Key::ArrowRight)) {
            go = pos.and_then(|p| list.get(p + 1)).copied();
        }
        if ui.input_mut(|i| i.consume_key(Modifiers::NONE, Key::ArrowLeft)) {
            go = pos.and_then(|p| p.checked_sub(1)).and_then(|p| list.get(p)).copied();
        }
    }
    let rel = crate::catalog::names::display_rel(&photo.path);
    let abs = lib.abs_path(photo_id).unwrap_or_default();
    let scores: Vec<(usize, Option<f32>)> = if app.query.is_some() {
        library::photo_face_scores(&lib, photo_id, &app.ranking.vector).into_iter().map(|(r, s)| (r, Some(s))).collect()
    } else {
        lib.rows_of(photo_id).map(|r| (r, None)).collect()
    };
    let best = scores.iter().filter_map(|(r, s)| s.map(|s| (*r, s))).max_by(|a, b| a.1.total_cmp(&b.1));
    let verdict = app.query.as_ref().and_then(|(q, _)| q.verdict(photo_id));

    ui.horizontal(|ui| {
        if ui.button("Back").on_hover_text("Esc").clicked() {
            app.inspect = None;
        }
        if ui.add_enabled(pos.is_some_and(|p| p > 0), egui::Button::new("Previous")).on_hover_text("Left arrow key").clicked() {
            go = pos.and_then(|p| p.checked_sub(1)).and_then(|p| list.get(p)).copied();
        }
        if ui.add_enabled(pos.is_some_and(|p| p + 1 < list.len()), egui::Button::new("Next")).on_hover_text("Right arrow key").clicked() {
            go = pos.and_then(|p| list.get(p + 1)).copied();
        }
        if let Some(p) = pos {
            ui.label(format!("{} / {}", p + 1, list.len()));
        }
        ui.separator();
        if app.query.is_some() && best.is_some() {
            let yes = verdict == Some(Verdict::Yes);
            let no = verdict == Some(Verdict::No);
            if ui.selectable_label(yes, "Yes, this person").clicked() {
                app.set_verdict(photo_id, if yes { None } else { Some(Verdict::Yes) });
            }
            if ui.selectable_label(no, "Not this person").clicked() {
                app.set_verdict(photo_id, if no { None } else { Some(Verdict::No) });
            }
            ui.separator();
        }
        if ui.button("Open containing folder").clicked() {
            if let Err(e) = open_in_file_manager(&abs) {
                app.error(format!("cannot open the file manager: {e}"));
            }
        }
        if ui.button("Copy path").clicked() {
            ui.ctx().copy_text(abs.display().to_string());
            app.info(format!("copied {}", abs.display()));
        }
    });
    ui.horizontal(|ui| {
        ui.label(egui::RichText::new(&rel).strong());
        ui.label(format!("{} × {}", photo.width, photo.height));
        ui.label(format_time(photo.mtime_ns));
        if let Some(r) = &photo.reason {
            ui.label(r);
        }
    });
    for row in lib.rows_of(photo_id) {
        super::people_view::face_person_row(app, ui, row);
    }
    if let (Some((row, s)), true) = (best, app.query.is_some()) {
        ui.horizontal(|ui| {
            query_chip(app, ui, 88.0);
            ui.label(egui::RichText::new(format!("{s:.2}")).size(22.0).color(score_color(s, app.threshold)));
            let (rect, _) = ui.allocate_exact_size(Vec2::splat(88.0), Sense::hover());
            paint_chip(app, ui, rect, ImageKey::Chip(lib.table.face_id(row)));
            ui.label(egui::RichText::new("query · best face in this photo").weak());
        });
    }
    // The photo, fitted; scroll zooms at the pointer, drag pans, double-click resets.
    let (area, resp) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
    let Some(ins) = &mut app.inspect else { return };
    if resp.double_clicked() {
        ins.zoom = 1.0;
        ins.pan = Vec2::ZERO;
    }
    if resp.dragged() {
        ins.pan += resp.drag_delta();
    }
    if let Some(p) = resp.hover_pos() {
        let scroll = ui.input(|i| i.smooth_scroll_delta.y);
        if scroll != 0.0 {
            let old = ins.zoom;
            ins.zoom = (ins.zoom * (scroll / 200.0).exp()).clamp(1.0, 20.0);
            // Keep the point under the pointer fixed.
            let c = area.center() + ins.pan;
            ins.pan += (p - c) * (1.0 - ins.zoom / old);
        }
    }
    if ins.zoom <= 1.0 {
        ins.pan = Vec2::ZERO;
    }
    let (zoom, pan) = (ins.zoom, ins.pan);
    let base = fit(area, photo.width as f32, photo.height as f32);
    let img = Rect::from_center_size(area.center() + pan, base.size() * zoom);
    let painter = ui.painter_at(area);
    let tex = app.textures.get(ImageKey::Photo(photo_id)).or_else(|| app.textures.get(ImageKey::Thumb(photo_id)));
    match tex {
        Some(t) => {
            painter.image(t.id(), img, UV, Color32::WHITE);
        }
        None => {
            painter.rect_filled(img, 0.0, ui.visuals().faint_bg_color);
            painter.text(img.center(), Align2::CENTER_CENTER, "loading…", FontId::proportional(14.0), ui.visuals().weak_text_color());
        }
    }
    for (row, score) in &scores {
        let b = box_rect(img, &photo, lib.table.bbox(*row));
        let is_best = best.is_some_and(|(r, _)| r == *row);
        let color = match score {
            Some(s) => score_color(*s, app.threshold),
            None => Color32::LIGHT_GREEN,
        };
        painter.rect_stroke(b, 1.0, Stroke::new(if is_best { 3.5 } else { 1.5 }, color), StrokeKind::Outside);
        let text = match score {
            Some(s) => format!("{s:.2}"),
            None => format!("face {}", lib.table.face_index(*row)),
        };
        let galley = painter.layout_no_wrap(text, FontId::proportional(if is_best { 16.0 } else { 13.0 }), Color32::WHITE);
        let at = Rect::from_min_size(b.left_top() - Vec2::new(0.0, galley.size().y + 4.0), galley.size() + Vec2::new(6.0, 2.0));
        painter.rect_filled(at, 2.0, color.gamma_multiply(0.85));
        painter.galley(at.min + Vec2::new(3.0, 1.0), galley, Color32::BLACK);
    }
    if let Some(id) = go {
        app.inspect = Some(Inspect { photo_id: id, zoom: 1.0, ..Default::default() });
    }
}

fn face_pick(app: &mut App, ctx: &egui::Context) {
    let Some(pick) = &app.face_pick else { return };
    let mut chosen = None;
    let mut cancel = false;
    let name = pick.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    egui::Modal::new(egui::Id::unique("face-pick")).show(ctx, |ui| {
        ui.heading(format!("{} faces in {name}", pick.faces.len()));
        ui.label("Which person are you looking for?");
        ui.horizontal_wrapped(|ui| {
            for (i, (_, t)) in pick.faces.iter().enumerate() {
                let resp = ui.add(egui::Button::image(egui::Image::new(t).fit_to_exact_size(Vec2::splat(96.0))));
                resp.widget_info(|| egui::WidgetInfo::labeled(Role::Button, true, format!("pick face {i}")));
                if resp.clicked() {
                    chosen = Some(i);
                }
            }
        });
        if ui.button("Cancel").clicked() {
            cancel = true;
        }
    });
    if let Some(i) = chosen {
        if let Some(mut pick) = app.face_pick.take() {
            let (f, tex) = pick.faces.swap_remove(i);
            let name = pick.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            app.set_query(
                super::Query::new(format!("face {i} in {name} (outside the folder)"), None, f.embedding),
                QueryChip::Texture(tex),
            );
        }
    } else if cancel {
        app.face_pick = None;
    }
}

fn settings(app: &mut App, ctx: &egui::Context) {
    if !app.settings_open {
        return;
    }
    let mut open = true;
    let mut reload = false;
    let mut reopen = false;
    let mut reindex = false;
    egui::Window::new("Settings").open(&mut open).resizable(false).collapsible(false).show(ctx, |ui| {
        egui::Grid::new("settings-grid").num_columns(2).spacing([12.0, 8.0]).show(ui, |ui| {
            ui.label("Default threshold");
            ui.horizontal(|ui| {
                ui.add(egui::Slider::new(&mut app.prefs.threshold, 0.0..=1.0).step_by(0.01).fixed_decimals(2));
                if ui.small_button("Reset").on_hover_text(format!("{:.2}, chosen on the album and LFW measurements (README)", crate::search::DEFAULT_THRESHOLD)).clicked() {
                    app.prefs.threshold = crate::search::DEFAULT_THRESHOLD;
                }
            });
            ui.end_row();
            ui.label("Device");
            let before = app.prefs.device;
            egui::ComboBox::from_id_salt("device").selected_text(format!("{:?}", app.prefs.device).to_lowercase()).show_ui(ui, |ui| {
                for d in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda, DeviceChoice::Metal] {
                    ui.selectable_value(&mut app.prefs.device, d, format!("{d:?}").to_lowercase());
                }
            });
            reload |= before != app.prefs.device;
            ui.end_row();
            ui.label("Flip fusion");
            reload |= ui
                .checkbox(&mut app.prefs.flip, "embed each face and its mirror image")
                .on_hover_text("Changing this re-indexes the folder (embeddings are never mixed)")
                .changed();
            ui.end_row();
            ui.label("Embedder");
            ui.vertical(|ui| {
                let shown = app.prefs.embedder.as_ref().map(|d| d.display().to_string()).unwrap_or_else(|| "shipped MobileFaceNet (default)".into());
                ui.label(shown).on_hover_text("A file written by `facefind train`; changing it re-embeds the folder");
                ui.horizontal(|ui| {
                    if ui.button("Choose…").clicked() {
                        app.out.pick(Pick::EmbedderFile);
                    }
                    if app.prefs.embedder.is_some() && ui.button("Use default").clicked() {
                        app.prefs.embedder = None;
                        reload = true;
                    }
                });
            });
            ui.end_row();
            ui.label("Links");
            reindex = ui
                .checkbox(&mut app.prefs.follow_links, "follow links that lead outside the folder")
                .on_hover_text("Links inside the folder are always followed; a file reached twice is indexed once. Changing this indexes the folder again")
                .changed();
            ui.end_row();
            ui.label("Catalogs");
            ui.vertical(|ui| {
                let shown = app.prefs.catalog_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_else(|| "user cache folder (default)".into());
                ui.label(shown);
                ui.horizontal(|ui| {
                    if ui.button("Choose…").clicked() {
                        app.out.pick(Pick::CatalogDir);
                    }
                    if app.prefs.catalog_dir.is_some() && ui.button("Use default").clicked() {
                        app.prefs.catalog_dir = None;
                        reopen = true;
                    }
                });
            });
            ui.end_row();
            ui.label("Theme");
            ui.horizontal(|ui| {
                let before = app.prefs.theme;
                ui.radio_value(&mut app.prefs.theme, egui::ThemePreference::System, "system");
                ui.radio_value(&mut app.prefs.theme, egui::ThemePreference::Light, "light");
                ui.radio_value(&mut app.prefs.theme, egui::ThemePreference::Dark, "dark");
                if before != app.prefs.theme {
                    ui.ctx().set_theme(app.prefs.theme);
                }
            });
            ui.end_row();
        });
        ui.separator();
        ui.label(egui::RichText::new(format!("models: {}", app.models_dir.display())).weak());
        if let PipelineState::Failed(e) = &app.pipeline {
            ui.colored_label(Color32::from_rgb(220, 80, 80), e);
        }
    });
    app.settings_open = open;
    if reindex {
        app.reindex();
    }
    if reload {
        app.reload_pipeline();
    }
    if reopen {
        app.reopen();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(1_700_000_000 * 1_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(format_time(951_782_400 * 1_000_000_000), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn fit_keeps_aspect() {
        let r = fit(Rect::from_min_size(Pos2::ZERO, Vec2::new(200.0, 100.0)), 400.0, 400.0);
        assert_eq!(r, Rect::from_min_size(Pos2::new(50.0, 0.0), Vec2::new(100.0, 100.0)));
    }
}
