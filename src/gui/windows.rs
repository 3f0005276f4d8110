//! The floating windows: choosing one of several faces of an outside photo, and Settings.

use super::worker::Pick;
use super::{App, PipelineState, QueryChip};
use crate::pipeline::DeviceChoice;
use eframe::egui::{self, Color32, Role, Vec2};

pub(super) fn face_pick(app: &mut App, ctx: &egui::Context) {
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

pub(super) fn settings(app: &mut App, ctx: &egui::Context) {
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
                ui.label(shown).on_hover_text("A file written by `facefind train`, or an ONNX face-embedding network; changing it re-embeds the folder");
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
        ui.label(egui::RichText::new(format!("models: {}", app.models)).weak());
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
