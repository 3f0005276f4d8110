//! The app's long lists as egui_extras tables, laid out one visible row at a time: the files an
//! index run skipped, the hidden people, and the results as a sortable table (score, file,
//! folder) beside the thumbnail grid.

use eframe::egui::{self, Color32, Role, Sense};
use egui_extras::{Column, TableBuilder};

use crate::catalog::names::display_rel;
use crate::catalog::people::Person;

use super::library::Library;
use super::query::{Ranking, Verdict};
use super::widgets::score_color;
use super::{App, Inspect};

const ROW: f32 = 20.0;

/// "N files skipped", opening to a table of file and reason.
pub(super) fn skipped(ui: &mut egui::Ui, skipped: &[(String, String)]) {
    egui::CollapsingHeader::new(format!("{} files skipped", skipped.len())).id_salt("skipped").show(ui, |ui| {
        TableBuilder::new(ui)
            .id_salt("skipped-table")
            .striped(true)
            .max_scroll_height(140.0)
            .column(Column::initial(320.0).at_least(80.0).resizable(true).clip(true))
            .column(Column::remainder().clip(true))
            .header(ROW, |mut h| {
                h.col(|ui| {
                    ui.strong("file");
                });
                h.col(|ui| {
                    ui.strong("reason");
                });
            })
            .body(|body| {
                body.rows(ROW, skipped.len(), |mut row| {
                    let (path, reason) = &skipped[row.index()];
                    row.col(|ui| {
                        ui.label(path).on_hover_text(path);
                    });
                    row.col(|ui| {
                        ui.label(reason);
                    });
                });
            });
    });
}

/// The hidden people, each with **Show**; returns the one to show again.
pub(super) fn hidden_people(ui: &mut egui::Ui, hidden: &[Person]) -> Option<i64> {
    let mut show = None;
    egui::CollapsingHeader::new(format!("Hidden ({})", hidden.len())).default_open(false).show(ui, |ui| {
        TableBuilder::new(ui)
            .id_salt("hidden-people")
            .striped(true)
            .max_scroll_height(240.0)
            .column(Column::initial(220.0).clip(true))
            .column(Column::auto())
            .column(Column::auto())
            .body(|body| {
                body.rows(ROW + 4.0, hidden.len(), |mut row| {
                    let p = &hidden[row.index()];
                    row.col(|ui| {
                        ui.label(p.label());
                    });
                    row.col(|ui| {
                        ui.label(format!("{} photos", p.photos));
                    });
                    row.col(|ui| {
                        if ui.small_button("Show").clicked() {
                            show = Some(p.id);
                        }
                    });
                });
            });
    });
    show
}

/// The column the results table is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum SortBy {
    /// The ranking's own order: confirmed photos first, then by score, rejected last.
    #[default]
    Score,
    Name,
    Folder,
    /// When the photo was taken (the undated after the dated, whichever the direction).
    Taken,
}

/// (ranking serial, sort, descending).
type OrderKey = (u64, SortBy, bool);

/// A year of the year strip: `Some(year)`, or `None` for the photos without a date.
pub(super) type Year = Option<i32>;

/// What a cached list was made for, and the list.
type Cached<K, T> = Option<(K, Vec<T>)>;

/// How the results table is sorted, and its row order for one ranking (made when either
/// changes, never per frame: a ranking can hold a million photos).
#[derive(Default)]
pub(super) struct ResultsTable {
    sort: SortBy,
    descending: bool,
    /// Every result's index into the ranking, in the table's order, and what it was made for
    /// (a threshold move only filters it: the rows shown are always a prefix of the ranking).
    order: Option<(OrderKey, Vec<u32>)>,
    /// That order's indices below `shown` (and of the chosen year), for the `shown` and year
    /// they were filtered for (made again when the slider moves, not every frame).
    shown: Cached<(usize, Option<Year>), u32>,
    /// Only the photos of this year (the year strip), when chosen.
    pub(super) year: Option<Year>,
    /// Photos per year among the first `shown` results, oldest first, the undated last, for
    /// the (ranking serial, shown) they were counted for.
    years: Cached<(u64, usize), (Year, usize)>,
    /// Each result's year (`i32::MAX`: no date), for the ranking serial it was read for.
    result_years: Cached<u64, i32>,
}

impl ResultsTable {
    /// The first `shown` results of the ranking in the table's order (indices into
    /// `ranking.results`).
    pub(super) fn order(&mut self, lib: &Library, ranking: &Ranking, shown: usize) -> &[u32] {
        let key = (ranking.serial, self.sort, self.descending);
        if self.order.as_ref().is_none_or(|(k, _)| *k != key) {
            let mut order: Vec<u32> = (0..ranking.results.len() as u32).collect();
            // catalog paths use '/' on every platform
            let text = |i: u32| {
                let path = lib.photo(ranking.results[i as usize].hit.photo_id).map(|p| display_rel(&p.path)).unwrap_or_default();
                path.rsplit_once('/').map_or((String::new(), path.to_lowercase()), |(d, n)| (d.to_lowercase(), n.to_lowercase()))
            };
            match self.sort {
                SortBy::Score => {}
                SortBy::Name => order.sort_by_cached_key(|&i| {
                    let (folder, name) = text(i);
                    (name, folder)
                }),
                SortBy::Folder => order.sort_by_cached_key(|&i| text(i)),
                // either way the undated last, and photos of one time in the ranking's order
                SortBy::Taken => {
                    let taken = |i: u32| lib.taken(ranking.results[i as usize].hit.photo_id).map(|t| t.local());
                    if self.descending {
                        order.sort_by_key(|&i| (taken(i).is_none(), std::cmp::Reverse(taken(i))));
                    } else {
                        order.sort_by_key(|&i| (taken(i).is_none(), taken(i)));
                    }
                }
            }
            if self.descending && self.sort != SortBy::Taken {
                order.reverse();
            }
            self.order = Some((key, order));
            self.shown = None;
        }
        if self.shown.as_ref().is_none_or(|(k, _)| *k != (shown, self.year)) {
            let all = self.order.as_ref().map_or(&[][..], |(_, o)| o);
            let year = self.year;
            let of_year = |i: u32| year.is_none_or(|y| lib.taken(ranking.results[i as usize].hit.photo_id).map(|t| t.year()) == y);
            self.shown = Some(((shown, year), all.iter().copied().filter(|&i| (i as usize) < shown && of_year(i)).collect()));
        }
        self.shown.as_ref().map_or(&[], |(_, o)| o)
    }

    /// Photos per year among the first `shown` results (the year strip), oldest first, the
    /// undated last. Each result's year is looked up once per ranking; a new `shown` (the
    /// slider moving) only counts again.
    pub(super) fn years(&mut self, lib: &Library, ranking: &Ranking, shown: usize) -> &[(Year, usize)] {
        if self.result_years.as_ref().is_none_or(|(k, _)| *k != ranking.serial) {
            let years = ranking.results.iter().map(|r| lib.taken(r.hit.photo_id).map_or(i32::MAX, |t| t.year())).collect();
            self.result_years = Some((ranking.serial, years));
        }
        let key = (ranking.serial, shown);
        if self.years.as_ref().is_none_or(|(k, _)| *k != key) {
            let all = self.result_years.as_ref().map_or(&[][..], |(_, y)| y);
            let mut count: std::collections::BTreeMap<i32, usize> = Default::default();
            for &y in &all[..shown.min(all.len())] {
                *count.entry(y).or_default() += 1;
            }
            let years = count.into_iter().map(|(y, n)| ((y != i32::MAX).then_some(y), n)).collect();
            self.years = Some((key, years));
        }
        self.years.as_ref().map_or(&[], |(_, y)| y)
    }

    /// The sort and its direction.
    pub(super) fn sorting(&self) -> (SortBy, bool) {
        (self.sort, self.descending)
    }

    /// Sorts by `by` in the given direction.
    pub(super) fn sort_by(&mut self, by: SortBy, descending: bool) {
        (self.sort, self.descending) = (by, descending);
    }

    /// A click on column `by`'s header: the sorted column flips its direction, another becomes
    /// the sort.
    fn click(&mut self, by: SortBy) {
        if self.sort == by {
            self.descending = !self.descending;
        } else {
            self.sort = by;
            self.descending = false;
        }
    }
}

/// A header button; the sorted column has a small triangle (drawn: the fonts have no arrows).
/// Returns whether it was clicked.
fn header(ui: &mut egui::Ui, (sort, descending): (SortBy, bool), by: SortBy, label: &str) -> bool {
    ui.horizontal(|ui| {
        let clicked = ui.add(egui::Button::new(egui::RichText::new(label).strong()).frame(false)).clicked();
        if sort == by {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(9.0, 9.0), Sense::hover());
            let (c, r) = (rect.center(), 4.0);
            // the score's own order is best first: its triangle points down until flipped
            let points = if descending != (by == SortBy::Score) {
                vec![c + egui::vec2(-r, -r / 2.0), c + egui::vec2(r, -r / 2.0), c + egui::vec2(0.0, r)]
            } else {
                vec![c + egui::vec2(-r, r / 2.0), c + egui::vec2(r, r / 2.0), c + egui::vec2(0.0, -r)]
            };
            ui.painter().add(egui::Shape::convex_polygon(points, ui.visuals().strong_text_color(), egui::Stroke::NONE));
        }
        clicked
    })
    .inner
}

/// The results as a table: rank, score, verdict, file name, capture date and folder; click a header to sort,
/// a row to inspect the photo.
pub(super) fn results(app: &mut App, ui: &mut egui::Ui) {
    if app.folder.is_none() {
        return;
    }
    // the ranking's rows are rows of the library it ranked
    let lib = app.ranking.lib.clone();
    let thr = app.threshold;
    let shown = if app.prefs.show_below { app.ranking.results.len() } else { app.ranking.match_count(thr) };
    let mut table = std::mem::take(&mut app.table);
    let sorted = (table.sort, table.descending);
    let order = table.order(&lib, &app.ranking, shown);
    let (mut open, mut sort_by) = (None, None);
    // a click anywhere on a row opens the photo: labels must not take it for text selection
    ui.style_mut().interaction.selectable_labels = false;
    TableBuilder::new(ui)
        .id_salt("results-table")
        .striped(true)
        .sense(Sense::click())
        .column(Column::exact(48.0))
        .column(Column::exact(56.0))
        .column(Column::exact(34.0))
        .column(Column::initial(260.0).at_least(80.0).resizable(true).clip(true))
        .column(Column::exact(150.0))
        .column(Column::remainder().clip(true))
        .header(ROW + 4.0, |mut h| {
            h.col(|ui| {
                ui.strong("#");
            });
            h.col(|ui| {
                if header(ui, sorted, SortBy::Score, "score") {
                    sort_by = Some(SortBy::Score);
                }
            });
            h.col(|ui| {
                ui.strong("");
            });
            h.col(|ui| {
                if header(ui, sorted, SortBy::Name, "file") {
                    sort_by = Some(SortBy::Name);
                }
            });
            h.col(|ui| {
                if header(ui, sorted, SortBy::Taken, "taken") {
                    sort_by = Some(SortBy::Taken);
                }
            });
            h.col(|ui| {
                if header(ui, sorted, SortBy::Folder, "folder") {
                    sort_by = Some(SortBy::Folder);
                }
            });
        })
        .body(|body| {
            body.rows(ROW, order.len(), |mut row| {
                let i = order[row.index()] as usize;
                let r = app.ranking.results[i];
                let Some(photo) = lib.photo(r.hit.photo_id) else { return };
                let path = display_rel(&photo.path);
                let (folder, name) = path.rsplit_once('/').unwrap_or(("", &path));
                let matched = r.is_match(thr);
                let dim = (!matched).then_some(Color32::from_gray(140));
                row.col(|ui| {
                    ui.label(format!("{}", i + 1));
                });
                row.col(|ui| {
                    let color = if r.left_out { Color32::from_gray(140) } else { score_color(r.hit.score, thr) };
                    ui.colored_label(
                        color,
                        if r.left_out { format!("{:.3} left out", r.hit.score) } else { format!("{:.3}", r.hit.score) },
                    );
                });
                row.col(|ui| {
                    ui.label(match r.verdict {
                        Some(Verdict::Yes) => "yes",
                        Some(Verdict::No) => "no",
                        None => "",
                    });
                });
                row.col(|ui| {
                    let l = match dim {
                        Some(c) => ui.colored_label(c, name),
                        None => ui.label(name),
                    };
                    l.widget_info(|| {
                        egui::WidgetInfo::labeled(Role::Button, true, format!("result row {} {path} {:.2}", i + 1, r.hit.score))
                    });
                });
                row.col(|ui| {
                    match lib.taken(photo.id) {
                        Some(t) => ui.label(t.local().replacen('T', " ", 1)),
                        None => ui.weak("no date"),
                    };
                });
                row.col(|ui| {
                    ui.weak(folder);
                });
                if row.response().clicked() {
                    open = Some(photo.id);
                }
            });
        });
    if let Some(by) = sort_by {
        table.click(by);
    }
    app.table = table;
    if let Some(id) = open {
        app.inspect = Some(Inspect { photo_id: id, zoom: 1.0, ..Default::default() });
    }
}
