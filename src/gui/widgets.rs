//! Widgets the album, the results and the People view share: the virtualised grid of cells and
//! a face chip drawn from the texture cache.

use eframe::egui::{self, Color32, Pos2, Rect, Sense, Vec2};

use super::worker::ImageKey;
use super::App;

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
