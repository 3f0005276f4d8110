//! Drawing: welcome panel, album grid and faces strip, results with threshold and histogram,
//! inspector, settings and status bar. Reads and changes [`App`] state; never blocks.

use eframe::egui::{self, Align2, Color32, FontId, Pos2, Rect, Role, Sense, Stroke, StrokeKind, Vec2};
use egui_extras::{Size, StripBuilder};

use super::export::ExportMode;
use super::inspector::inspector;
use super::library::Library;
use super::query::{self, Verdict};
use super::tables::SortBy;
use super::widgets::*;
use super::windows::{face_pick, settings};
use super::worker::Pick;
use super::{App, Inspect, Level, PipelineState};

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
                let lib = app.ranking.lib.clone();
                let shown = if app.prefs.show_below { app.ranking.results.len() } else { app.ranking.match_count(app.threshold) };
                year_strip(app, ui, &lib, shown);
                if app.prefs.results_table {
                    super::tables::results(app, ui);
                } else {
                    results_grid(app, ui);
                }
            }
        });
    } else if app.show_people {
        egui::CentralPanel::default_margins().show(ui, |ui| super::people_view::people(app, ui));
    } else {
        // the album (or the inspector) above, the faces strip of fixed height below
        egui::CentralPanel::default_margins().show(ui, |ui| {
            StripBuilder::new(ui).size(Size::remainder().at_least(120.0)).size(Size::exact(CHIP + 48.0)).vertical(|mut strip| {
                strip.cell(|ui| {
                    if app.inspect.is_some() {
                        inspector(app, ui);
                    } else {
                        album(app, ui);
                    }
                });
                strip.cell(|ui| {
                    ui.separator();
                    faces_strip(app, ui);
                });
            });
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
                app.clear_query();
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
        } else if !f.skipped.is_empty() {
            // the last run's skipped files stay listed until the next run
            egui::Panel::top("progress").show(ui, |ui| super::tables::skipped(ui, &f.skipped));
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
            super::tables::skipped(ui, &f.skipped);
        }
    });
    if cancel {
        ix.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    ui.ctx().request_repaint_after(std::time::Duration::from_millis(250));
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
                    ui.label(&p.models).on_hover_text(format!("models: {}", app.models));
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
                    let r = &s.regions;
                    if r.linked + r.without_face + r.skipped > 0 {
                        ui.separator();
                        ui.label(format!("names from other tools: {} faces named", r.linked)).on_hover_text(format!(
                            "Face regions with names in the photos' XMP or their sidecars: {} joined their person, {} have no face detected where they say, {} were skipped (a name of two people, another face of the photo already that person, or a face you moved or said is not them). `facefind people FOLDER --json` lists them.",
                            r.linked, r.without_face, r.skipped
                        ));
                    }
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

fn results_side(app: &mut App, ui: &mut egui::Ui) {
    let Some((q, _)) = &app.query else { return };
    let label = q.title();
    let together = q.is_together();
    let (yes, no) = q.verdicts.values().fold((0, 0), |(y, n), v| if v.1 == Verdict::Yes { (y + 1, n) } else { (y, n + 1) });
    if ui.button(if app.show_people { "Back to people" } else { "Back to album" }).clicked() {
        app.clear_query();
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
    super::people_view::together_panel(app, ui);
    match app.query.as_ref().and_then(|q| q.0.person) {
        Some(id) => super::people_view::person_panel(app, ui, id),
        None => super::people_view::save_as_person(app, ui),
    }
    ui.separator();
    let total = app.ranking.results.len();
    ui.add(egui::Slider::new(&mut app.threshold, -0.2..=1.0).step_by(0.01).fixed_decimals(2).text("threshold"))
        .on_hover_text("Cosine similarity of a photo's best face to the query at or above which it counts as a match");
    let left_out_moved = app.ranking.left_out_at.is_some_and(|t| t != app.threshold);
    if (app.threshold < app.ranking.exact_from || left_out_moved) && !app.ranking_pending() {
        // scores this low were approximate, or who is left out depends on the threshold: rank
        // again
        app.rerank();
    }
    if app.ranking_pending() {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("Ranking…");
        });
    }
    let n = app.ranking.match_count(app.threshold);
    ui.label(egui::RichText::new(format!("{n} photo{} ≥ {:.2}", if n == 1 { "" } else { "s" }, app.threshold)).size(18.0).strong());
    ui.label(format!("of {total} photos with faces"));
    if let Some((more, low)) = app.ranking.near_misses(app.threshold).filter(|_| !together) {
        let who = app.query.as_ref().map(|q| q.0.label.clone()).unwrap_or_default();
        let text = format!("{more} more photo{} may be {who} (from {low:.2})", if more == 1 { "" } else { "s" });
        if ui.button(text).on_hover_text("Just below the threshold and well above the rest: lower the threshold to them").clicked() {
            app.threshold = low;
        }
    }
    ui.checkbox(&mut app.prefs.show_below, "Show photos below the threshold (dimmed)");
    ui.horizontal(|ui| {
        ui.label("View:");
        ui.selectable_value(&mut app.prefs.results_table, false, "Thumbnails");
        ui.selectable_value(&mut app.prefs.results_table, true, "Table");
    });
    ui.horizontal(|ui| {
        ui.label("Sort:");
        let (by, descending) = app.table.sorting();
        if ui.selectable_label(by == SortBy::Score && !descending, "score").clicked() {
            app.table.sort_by(SortBy::Score, false);
        }
        if ui.selectable_label(by == SortBy::Taken && descending, "newest").clicked() {
            app.table.sort_by(SortBy::Taken, true);
        }
        if ui.selectable_label(by == SortBy::Taken && !descending, "oldest").clicked() {
            app.table.sort_by(SortBy::Taken, false);
        }
    });
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
            Bar::new(x as f64, c as f64).width(0.9 * query::HISTOGRAM_BIN as f64).fill(if x >= thr {
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

/// Photos per year among the results shown, as buttons: a click shows only that year's photos,
/// a second click all of them again.
fn year_strip(app: &mut App, ui: &mut egui::Ui, lib: &Library, shown: usize) {
    let mut years = app.table.years(lib, &app.ranking, shown).to_vec();
    let chosen = app.table.year;
    if years.iter().all(|(y, _)| y.is_none()) && chosen.is_none() {
        return;
    }
    // the chosen year stays on the strip (to be clicked off) when no result is of it any more
    if let Some(c) = chosen.filter(|c| !years.iter().any(|(y, _)| y == c)) {
        years.push((c, 0));
    }
    egui::ScrollArea::horizontal().id_salt("year-strip").show(ui, |ui| {
        ui.horizontal(|ui| {
            for (y, n) in years {
                let label = match y {
                    Some(y) => format!("{y} · {n}"),
                    None => format!("no date · {n}"),
                };
                if ui.selectable_label(chosen == Some(y), label).clicked() {
                    app.table.year = if chosen == Some(y) { None } else { Some(y) };
                }
            }
        });
    });
}

fn results_grid(app: &mut App, ui: &mut egui::Ui) {
    if app.folder.is_none() {
        return;
    }
    // the ranking's rows are rows of the library it ranked
    let lib = app.ranking.lib.clone();
    let thr = app.threshold;
    let shown = if app.prefs.show_below { app.ranking.results.len() } else { app.ranking.match_count(thr) };
    if shown == 0 {
        ui.centered_and_justified(|ui| {
            ui.label(if app.ranking_pending() {
                "Ranking…"
            } else if app.ranking.results.is_empty() {
                "No faces indexed yet."
            } else {
                "No photo reaches this threshold: lower it to see more."
            });
        });
        return;
    }
    // the table's order, borrowed while drawing (no copy per frame)
    let mut table = std::mem::take(&mut app.table);
    let order = table.order(&lib, &app.ranking, shown);
    let mut open = None;
    grid(ui, order.len(), "results", |ui, k, rect| {
        let i = order[k] as usize;
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
        // a photo that holds someone left out is no match, however well the rest scores
        let color = if r.left_out { Color32::from_gray(140) } else { score_color(r.hit.score, thr) };
        ui.painter_at(img).rect_stroke(b, 1.0, Stroke::new(2.0, color), StrokeKind::Outside);
        for &row in app.ranking.others.get(&photo.id).into_iter().flatten() {
            ui.painter_at(img).rect_stroke(box_rect(img, photo, lib.table.bbox(row)), 1.0, Stroke::new(2.0, color), StrokeKind::Outside);
        }
        let mark = match (r.verdict, r.left_out) {
            (Some(Verdict::Yes), _) => "yes · ",
            (Some(Verdict::No), _) => "no · ",
            (None, true) => "left out · ",
            (None, false) => "",
        };
        let text_pos = Pos2::new(rect.min.x + 6.0, rect.max.y - CELL_TEXT / 2.0);
        ui.painter_at(rect).text(
            text_pos,
            Align2::LEFT_CENTER,
            format!("{mark}{}", score_text(r.hit.score)),
            FontId::proportional(15.0),
            color,
        );
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
    app.table = table;
    if let Some(id) = open {
        app.inspect = Some(Inspect { photo_id: id, zoom: 1.0, ..Default::default() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::inspector::format_time;

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
