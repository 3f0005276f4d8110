//! The inspector: one photo with every face boxed and scored against the query, zoom and
//! pan, the matched face, refine, the file's place on disk.

use super::loader::ImageKey;
use super::query::{self, Verdict};
use super::widgets::*;
use super::{App, Inspect};
use eframe::egui::{self, Align2, Color32, FontId, Key, Modifiers, Rect, Sense, Stroke, StrokeKind, Vec2};
use std::path::Path;

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

pub(super) fn open_in_file_manager(path: &Path) -> std::io::Result<()> {
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

pub(super) fn inspector(app: &mut App, ui: &mut egui::Ui) {
    let Some(lib) = app.folder.as_ref().map(|f| f.lib.clone()) else { return };
    let Some(ins) = &app.inspect else { return };
    let photo_id = ins.photo_id;
    let Some(photo) = lib.photo(photo_id).cloned() else {
        app.inspect = None;
        return;
    };
    // The list ←/→ move through: the results as shown (their order and year), or the album;
    // read in place (a million photos are not copied every frame). (position, length, the
    // photos before and after.)
    let around = |n: usize, id_at: &dyn Fn(usize) -> i64| {
        let pos = (0..n).position(|k| id_at(k) == photo_id);
        let prev = pos.and_then(|p| p.checked_sub(1)).map(id_at);
        let next = pos.map(|p| p + 1).filter(|&k| k < n).map(id_at);
        (pos, n, prev, next)
    };
    let (pos, len, prev, next) = if app.query.is_some() {
        let n = if app.prefs.show_below { app.ranking.results.len() } else { app.ranking.match_count(app.threshold) };
        let order = app.table.order(&lib, &app.ranking, n);
        let results = &app.ranking.results;
        around(order.len(), &|k| results[order[k] as usize].hit.photo_id)
    } else {
        around(lib.photos.len(), &|k| lib.photos[k].id)
    };
    let mut go: Option<i64> = None;
    let typing = ui.ctx().memory(|m| m.focused().is_some());
    if !typing {
        if ui.input_mut(|i| i.consume_key(Modifiers::NONE, Key::Escape)) {
            app.inspect = None;
            return;
        }
        if ui.input_mut(|i| i.consume_key(Modifiers::NONE, Key::ArrowRight)) {
            go = next;
        }
        if ui.input_mut(|i| i.consume_key(Modifiers::NONE, Key::ArrowLeft)) {
            go = prev;
        }
    }
    let rel = crate::catalog::names::display_rel(&photo.path);
    let abs = lib.abs_path(photo_id).unwrap_or_default();
    let scores: Vec<(usize, Option<f32>)> = if app.query.is_some() {
        query::photo_face_scores(&lib, photo_id, &app.ranking.vector).into_iter().map(|(r, s)| (r, Some(s))).collect()
    } else {
        lib.rows_of(photo_id).map(|r| (r, None)).collect()
    };
    let best = scores.iter().filter_map(|(r, s)| s.map(|s| (*r, s))).max_by(|a, b| a.1.total_cmp(&b.1));
    let verdict = app.query.as_ref().and_then(|(q, _)| q.verdict(photo_id));

    ui.horizontal(|ui| {
        if ui.button("Back").on_hover_text("Esc").clicked() {
            app.inspect = None;
        }
        if ui.add_enabled(prev.is_some(), egui::Button::new("Previous")).on_hover_text("Left arrow key").clicked() {
            go = prev;
        }
        if ui.add_enabled(next.is_some(), egui::Button::new("Next")).on_hover_text("Right arrow key").clicked() {
            go = next;
        }
        if let Some(p) = pos {
            ui.label(format!("{} / {len}", p + 1));
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
        // the capture date as the photo records it; the file's time only as what it is
        match lib.taken(photo_id) {
            Some(t) => ui.label(format!("taken {}", t.to_string().replacen('T', " ", 1))),
            None => ui.weak("no capture date").on_hover_text(format!("file modified {}", format_time(photo.mtime_ns))),
        };
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
