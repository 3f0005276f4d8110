//! The People parts of the window: the people grid with the "Who is this?" queue, the panel of
//! a person being searched for (name, hide, merge, undo), "Save as person" for a search, and
//! each face's person in the inspector.

use eframe::egui::{self, Rect, Sense, Vec2};

use super::loader::ImageKey;
use super::widgets::{grid, paint_chip};
use super::App;

const PERSON_CHIP: f32 = 112.0;

/// Completion for the name field: existing names starting with what is typed.
fn name_field(app: &mut App, ui: &mut egui::Ui, label: &str) {
    ui.add(egui::TextEdit::singleline(&mut app.name_edit).hint_text("name").desired_width(180.0))
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, label));
    let typed = app.name_edit.trim().to_lowercase();
    if typed.is_empty() {
        return;
    }
    let names: Vec<String> = app.library().map(|l| l.names()).unwrap_or_default();
    let close: Vec<String> =
        names.into_iter().filter(|n| n.to_lowercase().starts_with(&typed) && n.to_lowercase() != typed).take(5).collect();
    if !close.is_empty() {
        ui.horizontal_wrapped(|ui| {
            for n in close {
                if ui.small_button(&n).clicked() {
                    app.name_edit = n;
                }
            }
        });
    }
}

/// The People view: "Who is this?" questions, the hidden people in a closed section, then every
/// person as a chip, most faces first (the grid takes the rest of the height).
pub(super) fn people(app: &mut App, ui: &mut egui::Ui) {
    let Some(lib) = app.library_arc() else { return };
    if !lib.suggestions.is_empty() || !lib.merges.is_empty() {
        ui.label(egui::RichText::new("Who is this?").strong());
        egui::ScrollArea::horizontal().id_salt("who").show(ui, |ui| {
            ui.horizontal(|ui| {
                // one answer to a person question settles a whole group: those first
                for m in lib.merges.iter().take(6) {
                    merge_question(app, ui, &lib, *m);
                }
                for s in lib.suggestions.iter().take(12) {
                    let face = lib.table.face_id(s.row);
                    let name = lib.person(s.person).map(|p| p.label()).unwrap_or_default();
                    ui.vertical(|ui| {
                        let (rect, _) = ui.allocate_exact_size(Vec2::splat(72.0), Sense::hover());
                        paint_chip(app, ui, rect, ImageKey::Chip(face));
                        ui.label(format!("{name}?"));
                        ui.horizontal(|ui| {
                            let person = s.person;
                            if ui.small_button("Yes").on_hover_text(format!("This is {name}")).clicked() {
                                app.edit_people(move |c| c.confirm_face(face, person));
                            }
                            if ui.small_button("No").on_hover_text(format!("Not {name}: never suggested again")).clicked() {
                                app.edit_people(move |c| c.reject_face(face, person));
                            }
                        });
                    });
                }
            });
        });
        ui.separator();
    }
    let shown: Vec<_> = lib.people.iter().filter(|p| !p.hidden && p.faces > 0).cloned().collect();
    let hidden: Vec<_> = lib.people.iter().filter(|p| p.hidden).cloned().collect();
    if shown.is_empty() && hidden.is_empty() {
        ui.label("No people yet: they appear when indexing finds the same face in two photos.");
        return;
    }
    let mut open = None;
    let mut show_again = None;
    if !hidden.is_empty() {
        show_again = super::tables::hidden_people(ui, &hidden);
        ui.separator();
    }
    grid(ui, shown.len(), "people", |ui, i, rect| {
        let p = &shown[i];
        let chip = Rect::from_min_size(rect.min, Vec2::splat(rect.width().min(PERSON_CHIP)));
        if let Some(face) = p.cover_face {
            paint_chip(app, ui, chip, ImageKey::Chip(face));
        }
        let resp = ui.interact(rect, ui.scope_id().with(("person", p.id)), Sense::click());
        let resp = resp.on_hover_text(format!("{} faces in {} photos", p.faces, p.photos));
        ui.painter().text(
            chip.left_bottom() + Vec2::new(2.0, 4.0),
            egui::Align2::LEFT_TOP,
            format!("{} · {}", p.label(), p.photos),
            egui::FontId::proportional(13.0),
            ui.visuals().strong_text_color(),
        );
        resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, format!("person {} · {}", p.label(), p.photos)));
        if resp.clicked() {
            open = Some(p.id);
        }
    });
    if let Some(id) = open {
        app.query_person(id);
    }
    if let Some(id) = show_again {
        app.edit_people(move |c| c.hide_person(id, false));
    }
}

/// The side panel of a person search: name (with completion), hide, merge into another person.
pub(super) fn person_panel(app: &mut App, ui: &mut egui::Ui, person: i64) {
    let Some(lib) = app.library_arc() else { return };
    let Some(p) = lib.person(person).cloned() else { return };
    ui.label(egui::RichText::new(format!("{} faces in {} photos", p.faces, p.photos)).weak());
    name_field(app, ui, "person name");
    ui.horizontal(|ui| {
        let name = app.name_edit.trim().to_string();
        if ui
            .add_enabled(
                !name.is_empty() && Some(&name) != p.name.as_ref(),
                egui::Button::new(if p.name.is_some() { "Rename" } else { "Name" }),
            )
            .clicked()
        {
            app.edit_people(move |c| c.name_person(person, Some(&name)));
        }
        if ui.button(if p.hidden { "Show" } else { "Hide" }).on_hover_text("Hidden people stay grouped but leave the list").clicked() {
            let hidden = !p.hidden;
            app.edit_people(move |c| c.hide_person(person, hidden));
        }
    });
    let others: Vec<_> = lib.people.iter().filter(|o| o.id != person && !o.hidden).cloned().collect();
    if !others.is_empty() {
        let mut into = None;
        ui.menu_button("Merge into…", |ui| {
            for o in &others {
                if ui.button(format!("{} ({} photos)", o.label(), o.photos)).clicked() {
                    into = Some(o.id);
                }
            }
        });
        if let Some(into) = into {
            app.edit_people(move |c| c.merge_people(person, into));
        }
    }
}

/// People added to the query: a chip for each ("with Bob ×", "without Cy ×": a click takes
/// it off), and menus to add more.
pub(super) fn together_panel(app: &mut App, ui: &mut egui::Ui) {
    let Some(lib) = app.library_arc() else { return };
    let Some((q, _)) = &app.query else { return };
    let (with, without) = (q.with.clone(), q.without.clone());
    let mut changed = false;
    if !with.is_empty() || !without.is_empty() {
        ui.horizontal_wrapped(|ui| {
            for (kind, list) in [("with", &with), ("without", &without)] {
                for p in list {
                    if ui.button(format!("{kind} {} ×", p.label)).on_hover_text("Take this person off the query").clicked() {
                        if let Some((q, _)) = &mut app.query {
                            q.with.retain(|x| x.id != p.id);
                            q.without.retain(|x| x.id != p.id);
                        }
                        changed = true;
                    }
                }
            }
        });
    }
    let Some((q, _)) = &app.query else { return };
    let others: Vec<_> = lib.people.iter().filter(|o| !o.hidden && !q.has_person(o.id)).collect();
    let full = with.len() + 1 >= crate::search::together::MAX_WANTED;
    if !others.is_empty() {
        let mut add = None;
        ui.horizontal(|ui| {
            for (kind, together) in [("With…", true), ("Without…", false)] {
                let hover =
                    if together { "Only photos where this person is too (a different face)" } else { "Leave out photos of this person" };
                ui.add_enabled_ui(!together || !full, |ui| {
                    ui.menu_button(kind, |ui| {
                        for o in &others {
                            let name = o.name.clone().unwrap_or_else(|| format!("Unnamed #{}", o.id));
                            if ui.button(format!("{name} ({} photos)", o.photos)).clicked() {
                                add = Some((o.id, together));
                            }
                        }
                    })
                    .response
                    .on_hover_text(hover);
                });
            }
        });
        if let Some((id, together)) = add {
            match super::query::QueryPerson::new(&lib, id) {
                Some(p) => {
                    if let Some((q, _)) = &mut app.query {
                        if together {
                            q.with.push(p)
                        } else {
                            q.without.push(p)
                        }
                    }
                    changed = true;
                }
                None => app.error("this person has no faces"),
            }
        }
    }
    if changed {
        app.rerank();
    }
}

/// "Save as person…": the query face and every face marked Yes become a person.
pub(super) fn save_as_person(app: &mut App, ui: &mut egui::Ui) {
    let Some((q, _)) = &app.query else { return };
    let faces = q.confirmed_faces();
    if faces.is_empty() {
        return;
    }
    ui.label(egui::RichText::new("Save as person").strong());
    name_field(app, ui, "new person name");
    let name = app.name_edit.trim().to_string();
    if ui
        .add_enabled(
            !name.is_empty(),
            egui::Button::new(format!("Save {} face{} as {name}", faces.len(), if faces.len() == 1 { "" } else { "s" })),
        )
        .clicked()
    {
        app.run_edit(Box::new(move |c| {
            let (u, id) = c.assign_faces(&faces, None, Some(&name))?;
            Ok(super::worker::Edited { info: u.what.clone(), undo: Some(u), person: Some(id) })
        }));
    }
}

/// In the inspector: the face's person, and moving or removing it.
pub(super) fn face_person_row(app: &mut App, ui: &mut egui::Ui, row: usize) {
    let Some(lib) = app.library_arc() else { return };
    let face = lib.table.face_id(row);
    let current = lib.person_of_row(row).cloned();
    ui.horizontal(|ui| {
        ui.label(format!("face {}:", lib.table.face_index(row)));
        ui.label(egui::RichText::new(current.as_ref().map(|p| p.label()).unwrap_or_else(|| "in no person".into())).strong());
        let mut to: Option<Option<i64>> = None;
        ui.menu_button("Move to…", |ui| {
            if ui.button("New person").clicked() {
                to = Some(None);
            }
            for o in lib.people.iter().filter(|o| Some(o.id) != current.as_ref().map(|c| c.id)) {
                if ui.button(o.label()).clicked() {
                    to = Some(Some(o.id));
                }
            }
        });
        if let Some(to) = to {
            app.edit_people(move |c| c.assign_faces(&[face], to, None).map(|r| r.0));
        }
        if let Some(p) = &current {
            if ui
                .small_button(format!("Not {}", p.label()))
                .on_hover_text("Remove this face from the person; it is never put back")
                .clicked()
            {
                app.edit_people(move |c| c.remove_face(face));
            }
        }
    });
}

/// "Is this the same person as …?": the two people's covers side by side; Yes merges `person`
/// into `into`, No remembers that they are two people.
fn merge_question(app: &mut App, ui: &mut egui::Ui, lib: &super::library::Library, m: crate::people::merges::MergeSuggestion) {
    let (Some(a), Some(b)) = (lib.person(m.person).cloned(), lib.person(m.into).cloned()) else { return };
    ui.vertical(|ui| {
        ui.horizontal(|ui| {
            for p in [&a, &b] {
                let (rect, _) = ui.allocate_exact_size(Vec2::splat(56.0), Sense::hover());
                if let Some(face) = p.cover_face {
                    paint_chip(app, ui, rect, ImageKey::Chip(face));
                }
            }
        });
        let (from, into) = (a.label(), b.label());
        ui.label(format!("{from} ({}) the same as {into}?", a.photos)).on_hover_text(format!("score {:.2}", m.score));
        ui.horizontal(|ui| {
            let (person, target) = (m.person, m.into);
            let yes = ui.small_button("Yes").on_hover_text(format!("One person: {from} joins {into}"));
            yes.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, format!("Yes, {from} is {into}")));
            if yes.clicked() {
                app.edit_people(move |c| c.merge_people(person, target));
            }
            let no = ui.small_button("No").on_hover_text("Two people: never asked again");
            no.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, format!("No, {from} is not {into}")));
            if no.clicked() {
                app.edit_people(move |c| c.mark_not_same(person, target));
            }
        });
    });
    ui.separator();
}
