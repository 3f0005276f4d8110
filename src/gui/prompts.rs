//! Small windows that ask the user before the app goes on: a path typed where no file dialog
//! can open, a trained embedder's validation numbers before switching to it, and rebuilding a
//! catalog that was refused.

use std::path::PathBuf;

use eframe::egui;

use super::worker::Pick;
use super::App;

fn title(what: Pick) -> &'static str {
    match what {
        Pick::Folder => "Open a photo folder",
        Pick::QueryFile => "Query from a photo",
        Pick::ExportFolder => "Export matches to",
        Pick::CatalogDir => "Keep catalogs in",
        Pick::EmbedderFile => "Face embedder file",
    }
}

/// Draws whichever prompt is open.
pub(super) fn show(app: &mut App, ctx: &egui::Context) {
    path_prompt(app, ctx);
    embedder_offer(app, ctx);
}

/// A text field for the path a file dialog would have given.
fn path_prompt(app: &mut App, ctx: &egui::Context) {
    let focus_once = egui::Id::unique("typed path focused");
    let Some((what, mut text)) = app.path_prompt.take() else {
        ctx.data_mut(|d| d.remove::<bool>(focus_once));
        return;
    };
    let (mut done, mut cancel) = (false, false);
    egui::Window::new(title(what)).collapsible(false).resizable(false).anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0]).show(ctx, |ui| {
        ui.label("No file dialog can open here (no desktop portal or zenity). Type or paste the path:");
        let field = ui.add(egui::TextEdit::singleline(&mut text).desired_width(420.0).hint_text("/home/me/Pictures"));
        field.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, "typed path"));
        // the field takes the keyboard when the prompt opens, once
        if !ctx.data(|d| d.get_temp::<bool>(focus_once).unwrap_or(false)) {
            field.request_focus();
            ctx.data_mut(|d| d.insert_temp(focus_once, true));
        }
        cancel |= ui.input(|i| i.key_pressed(egui::Key::Escape));
        let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        ui.horizontal(|ui| {
            done = ui.add_enabled(!text.trim().is_empty(), egui::Button::new("Open")).clicked() || (entered && !text.trim().is_empty());
            cancel = ui.button("Cancel").clicked();
        });
    });
    if done {
        let path = PathBuf::from(expand_home(text.trim()));
        let fits = match what {
            Pick::Folder | Pick::ExportFolder | Pick::CatalogDir => what == Pick::ExportFolder || path.is_dir(),
            Pick::QueryFile | Pick::EmbedderFile => path.is_file(),
        };
        if fits {
            app.picked(what, path);
        } else {
            let kind = if matches!(what, Pick::QueryFile | Pick::EmbedderFile) { "file" } else { "folder" };
            app.error(format!("{} is not a {kind} that can be read", path.display()));
            app.path_prompt = Some((what, text));
        }
    } else if !cancel {
        app.path_prompt = Some((what, text));
    }
}

/// `~/x` as the home folder's `x` (what a typed path means on a desktop).
fn expand_home(p: &str) -> String {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest).display().to_string(),
        _ => p.to_string(),
    }
}

/// Before switching to a trained embedder: what its training measured, and a choice.
fn embedder_offer(app: &mut App, ctx: &egui::Context) {
    let Some((path, report)) = app.embedder_offer.clone() else { return };
    let (mut accept, mut cancel) = (false, false);
    egui::Window::new("Use this embedder?").collapsible(false).resizable(false).anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0]).show(
        ctx,
        |ui| {
            ui.label(egui::RichText::new(path.display().to_string()).strong());
            ui.label(&report);
            ui.label("Switching embeds every face of the folder again (names and people stay).");
            ui.horizontal(|ui| {
                accept = ui.button("Use it").clicked();
                cancel = ui.button("Keep the current one").clicked();
            });
        },
    );
    if accept {
        app.accept_embedder();
    } else if cancel {
        app.embedder_offer = None;
    }
}

/// Where the catalog was refused for an unreadable version: say so and offer the rebuild.
pub(super) fn rebuild_offer(app: &mut App, ui: &mut egui::Ui) {
    let Some(f) = app.folder.as_ref().filter(|f| f.rebuild_offer) else { return };
    let catalog = f.catalog.display().to_string();
    let why = f.open_error.clone().unwrap_or_default();
    ui.group(|ui| {
        ui.label(format!("The catalog {catalog} could not be used; nothing in it was changed."));
        ui.label(egui::RichText::new(why).weak());
        ui.label("Rebuilding indexes every photo again; people, names and rejections stay with every face found again.");
        if ui.button("Rebuild catalog").clicked() {
            app.rebuild_catalog();
        }
    });
}
