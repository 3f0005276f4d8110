//! What the app remembers between runs (eframe persistence).

use std::path::PathBuf;

use eframe::egui;

use crate::pipeline::DeviceChoice;

/// What the app remembers between runs (eframe persistence).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Prefs {
    /// Most recent first.
    pub recent: Vec<PathBuf>,
    /// The threshold a new query starts with.
    pub threshold: f32,
    pub device: DeviceChoice,
    pub flip: bool,
    /// Where catalogs live (default: the user's cache directory).
    pub catalog_dir: Option<PathBuf>,
    pub theme: egui::ThemePreference,
    pub show_below: bool,
    /// A face embedder written by `facefind train` (default: the shipped MobileFaceNet).
    pub embedder: Option<PathBuf>,
    /// Follow symbolic links that lead outside the folder (the command line's `--follow-links`).
    pub follow_links: bool,
    /// Results as a sortable table instead of the thumbnail grid.
    pub results_table: bool,
}

impl Default for Prefs {
    fn default() -> Self {
        Self {
            recent: Vec::new(),
            threshold: crate::search::DEFAULT_THRESHOLD,
            device: DeviceChoice::Auto,
            flip: crate::pipeline::Settings::default().flip,
            catalog_dir: None,
            theme: egui::ThemePreference::System,
            show_below: true,
            embedder: None,
            follow_links: false,
            results_table: false,
        }
    }
}
