//! Widgets the album, the results and the People view share: the virtualised grid of cells and
//! a face chip drawn from the texture cache.

use eframe::egui::{self, Color32, FontId, Pos2, Rect, Role, Sense, Stroke, StrokeKind, Vec2};

use crate::catalog::{PhotoInfo, Status};

use super::loader::ImageKey;
use super::{App, QueryChip};

/// A grid cell's image side, and the line of text under it.
pub(super) const CELL: f32 = 164.0;
pub(super) const CELL_TEXT: f32 = 22.0;
/// A whole texture.
pub(super) const UV: Rect = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));

/// A grid of `n` cells, virtualised: only the visible rows are laid out.
pub(super) fn grid(ui: &mut egui::Ui, n: usize, id: &str, mut cell: impl FnMut(&mut egui::Ui, usize, Rect)) {
    let cols = ((ui.available_width() - 12.0) / CELL).floor().max(1.0) as usize;
    let rows = n.div_ceil(cols);
    egui::ScrollArea::vertical().id_salt(id).auto_shrink(false).show_rows(ui, CELL + CELL_TEXT, rows, |ui, range| {
        for r in range {
            ui.horizontal(|ui| {
                for c in 0..cols {
                    let i = r * cols + c;
                    if i >= n {
                        break;
                    }
                    let (rect, _) = ui.allocate_exact_size(Vec2::new(CELL, CELL + CELL_TEXT), Sense::hover());
                    cell(ui, i, rect);
                }
            });
        }
    });
}

/// A face chip (or a placeholder while it loads) in `rect`.
pub(super) fn paint_chip(app: &mut App, ui: &egui::Ui, rect: Rect, key: ImageKey) {
    match app.textures.get(key) {
        Some(t) => {
            ui.painter().image(t.id(), rect, UV, Color32::WHITE);
        }
        None => {
            ui.painter().rect_filled(rect, 3.0, ui.visuals().faint_bg_color);
        }
    }
}

/// Where a `w`×`h` image lands when fitted (centred) into `area`.
pub(super) fn fit(area: Rect, w: f32, h: f32) -> Rect {
    let s = (area.width() / w.max(1.0)).min(area.height() / h.max(1.0));
    Rect::from_center_size(area.center(), Vec2::new(w * s, h * s))
}

/// A photo box (original pixels) inside an image drawn at `rect`.
pub(super) fn box_rect(rect: Rect, photo: &PhotoInfo, b: [f32; 4]) -> Rect {
    let sx = rect.width() / photo.width.max(1) as f32;
    let sy = rect.height() / photo.height.max(1) as f32;
    Rect::from_min_size(rect.min + Vec2::new(b[0] * sx, b[1] * sy), Vec2::new(b[2] * sx, b[3] * sy))
}

/// A result's score as shown: "–" for a photo with fewer faces than the people wanted in it
/// ([`crate::search::together::ABSENT`]).
pub(super) fn score_text(score: f32) -> String {
    if score <= crate::search::together::ABSENT {
        "–".to_string()
    } else {
        format!("{score:.2}")
    }
}

/// Colour for a score: green above the threshold, amber just below, grey far below.
pub(super) fn score_color(score: f32, threshold: f32) -> Color32 {
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
pub(super) fn draw_thumb(app: &mut App, ui: &egui::Ui, photo: &PhotoInfo, rect: Rect, tint: Color32) -> Rect {
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

pub(super) fn file_name(rel: &str) -> &str {
    rel.rsplit(['/', '\\']).next().unwrap_or(rel)
}

/// One face chip as a clickable, labelled widget.
pub(super) fn chip_button(app: &mut App, ui: &mut egui::Ui, face_id: i64, label: &str, size: f32) -> egui::Response {
    let (rect, resp) = ui.allocate_exact_size(Vec2::splat(size), Sense::click());
    resp.widget_info(|| egui::WidgetInfo::labeled(Role::Button, true, label));
    paint_chip(app, ui, rect, ImageKey::Chip(face_id));
    if resp.hovered() {
        ui.painter().rect_stroke(rect, 3.0, Stroke::new(2.0, Color32::YELLOW), StrokeKind::Outside);
    }
    resp.on_hover_text("Click to find this person")
}

pub(super) fn query_chip(app: &mut App, ui: &mut egui::Ui, size: f32) {
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
