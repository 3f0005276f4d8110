//! Named face regions other tools wrote (`photo::regions`) in the catalog: kept as read,
//! matched to detected faces by overlap, the faces joined to the person of that name (source
//! 'imported'), never over what the user did here; every region listed with what came of it.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::people::new_person;
use super::{Catalog, CatalogError};
use crate::people::Source;
use crate::photo::regions::{Region, Scheme};

type Sql<T> = rusqlite::Result<T>;

/// What came of a region (its `outcome`).
pub mod outcome {
    /// Its face is in the person of its name.
    pub const LINKED: &str = "linked";
    /// No detected face lies where it says.
    pub const NO_FACE: &str = "no face";
    /// Two or more people have its name.
    pub const AMBIGUOUS: &str = "the name is several people's";
    /// Another face of the photo is that person already.
    pub const SAME_PHOTO: &str = "another face of this photo is that person";
    /// The user put the face in another person.
    pub const USER_MOVED: &str = "you put this face with someone else";
    /// The user said the face is not that person.
    pub const USER_REJECTED: &str = "you said this face is not that person";
}

/// How much a region and a detected face must overlap (intersection over union) to be one face;
/// a pair whose centres each lie inside the other's box counts too (tools draw faces larger or
/// smaller than the detector does).
pub const MATCH_IOU: f32 = 0.3;

/// One stored region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRegion {
    pub photo_id: i64,
    pub name: String,
    /// Left, top, right, bottom as fractions of the shown photo.
    #[serde(rename = "box")]
    pub rect: [f32; 4],
    pub face_id: Option<i64>,
    /// `None` until the next index run applies it.
    pub outcome: Option<String>,
}

/// What one pass of [`Catalog::import_regions`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub linked: usize,
    pub without_face: usize,
    pub skipped: usize,
}

fn centre_inside(a: [f32; 4], b: [f32; 4]) -> bool {
    let (cx, cy) = ((a[0] + a[2]) / 2.0, (a[1] + a[3]) / 2.0);
    cx >= b[0] && cx <= b[2] && cy >= b[1] && cy <= b[3]
}

/// Regions matched one to one to faces (both as left, top, right, bottom in one frame): the
/// pairs that overlap enough (see [`MATCH_IOU`]), the most overlapping first. Each region's face
/// index, if any.
pub fn match_regions(regions: &[[f32; 4]], faces: &[[f32; 4]]) -> Vec<Option<usize>> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (r, &a) in regions.iter().enumerate() {
        for (f, &b) in faces.iter().enumerate() {
            let o = crate::photo::regions::overlap(a, b);
            if o >= MATCH_IOU || (o > 0.0 && centre_inside(a, b) && centre_inside(b, a)) {
                pairs.push((o, r, f));
            }
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    let mut out = vec![None; regions.len()];
    let mut taken = vec![false; faces.len()];
    for (_, r, f) in pairs {
        if out[r].is_none() && !taken[f] {
            out[r] = Some(f);
            taken[f] = true;
        }
    }
    out
}

fn scheme_str(s: Scheme) -> &'static str {
    match s {
        Scheme::Mwg => "mwg",
        Scheme::Microsoft => "mp",
    }
}

/// A stored region (id, name, box, scheme, face) and whether a region read again is it.
type OldRegion = (i64, String, [f32; 4], String, Option<i64>, bool);

/// Replaces the regions of photo `id` with `regions`: a region read again unchanged keeps its
/// face and outcome (so a person renamed or merged since keeps the face); a region gone takes
/// back the 'imported' link it made (the face waits for grouping again); new regions wait for
/// [`Catalog::import_regions`]. After the photo's faces were detected again (`redetected`),
/// kept regions whose face is gone, or that found none, are tried again.
pub(super) fn replace_regions(tx: &Transaction, id: i64, regions: &[Region], redetected: bool) -> Sql<()> {
    let mut old = tx.prepare_cached("SELECT id, name, x0, y0, x1, y1, scheme, face_id FROM regions WHERE photo_id=?1 ORDER BY id")?;
    let mut before: Vec<OldRegion> = old
        .query_map([id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                [r.get::<_, f64>(2)? as f32, r.get::<_, f64>(3)? as f32, r.get::<_, f64>(4)? as f32, r.get::<_, f64>(5)? as f32],
                r.get(6)?,
                r.get(7)?,
                false,
            ))
        })?
        .collect::<Sql<_>>()?;
    let mut ins = tx.prepare_cached("INSERT INTO regions(photo_id, name, x0, y0, x1, y1, scheme) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
    // the same region as stored, else one of the same name redrawn a little (a tool writing its
    // regions again): kept with its face and outcome, its box brought up to date
    let mut pending: Vec<&Region> = Vec::new();
    for r in regions {
        match before.iter_mut().find(|b| !b.5 && b.1 == r.name && b.2 == r.rect && b.3 == scheme_str(r.scheme)) {
            Some(b) => b.5 = true,
            None => pending.push(r),
        }
    }
    for r in pending {
        let redrawn = before
            .iter_mut()
            .find(|b| !b.5 && b.1.to_lowercase() == r.name.to_lowercase() && crate::photo::regions::overlap(b.2, r.rect) > 0.8);
        match redrawn {
            Some(b) => {
                b.5 = true;
                tx.execute(
                    "UPDATE regions SET name=?2, x0=?3, y0=?4, x1=?5, y1=?6, scheme=?7 WHERE id=?1",
                    params![b.0, r.name, r.rect[0], r.rect[1], r.rect[2], r.rect[3], scheme_str(r.scheme)],
                )?;
            }
            None => {
                ins.execute(params![id, r.name, r.rect[0], r.rect[1], r.rect[2], r.rect[3], scheme_str(r.scheme)])?;
            }
        }
    }
    if redetected {
        // a kept region whose face went (or that found none) looks again among the new faces
        tx.execute("UPDATE regions SET outcome=NULL WHERE photo_id=?1 AND face_id IS NULL", [id])?;
    }
    for (rid, _, _, _, face, _) in before.iter().filter(|b| !b.5) {
        if let Some(face) = face {
            if tx.execute("DELETE FROM face_person WHERE face_id=?1 AND source='imported'", [face])? > 0 {
                tx.execute("INSERT OR IGNORE INTO ungrouped(face_id) VALUES (?1)", [face])?;
            }
        }
        tx.execute("DELETE FROM regions WHERE id=?1", [rid])?;
    }
    Ok(())
}

/// Whether a region already applied holds face `f` (its link stays, whatever its source).
fn held_by_region(tx: &Transaction, f: i64) -> Sql<bool> {
    tx.query_row("SELECT EXISTS (SELECT 1 FROM regions WHERE face_id=?1 AND outcome='linked')", [f], |r| r.get(0))
}

/// What to do with one region matched to `face`, and the person to link it to.
/// (`Ok(None)`: nobody has the name yet; another face of the photo that grouping alone put in
/// that person gives way.)
fn decide(tx: &Transaction, face: i64, photo: i64, name: &str) -> Sql<Result<Option<i64>, &'static str>> {
    let mut st = tx.prepare_cached("SELECT id FROM people WHERE name = ?1 COLLATE NOCASE ORDER BY id")?;
    let ids: Vec<i64> = st.query_map([name], |r| r.get(0))?.collect::<Sql<_>>()?;
    let person = match ids[..] {
        [] => None,
        [id] => Some(id),
        _ => return Ok(Err(outcome::AMBIGUOUS)),
    };
    let now: Option<(i64, String)> =
        tx.query_row("SELECT person_id, source FROM face_person WHERE face_id=?1", [face], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
    if let Some((p, source)) = &now {
        let by_user = Source::parse(source).is_some_and(|s| matches!(s, Source::User | Source::Confirmed));
        if by_user && Some(*p) != person {
            return Ok(Err(outcome::USER_MOVED));
        }
    }
    let Some(person) = person else { return Ok(Ok(None)) };
    let rejected: bool =
        tx.query_row("SELECT EXISTS (SELECT 1 FROM rejections WHERE face_id=?1 AND person_id=?2)", [face, person], |r| r.get(0))?;
    if rejected {
        return Ok(Err(outcome::USER_REJECTED));
    }
    let other: Option<(i64, String)> = tx
        .query_row(
            "SELECT f.id, fp.source FROM faces f JOIN face_person fp ON fp.face_id = f.id WHERE f.photo_id=?1 AND f.id != ?2 AND fp.person_id=?3",
            [photo, face, person],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match other {
        // grouping's guess gives way to a name; the face waits for grouping again
        Some((f, source)) if source == "auto" && !held_by_region(tx, f)? => {
            tx.execute("DELETE FROM face_person WHERE face_id=?1", [f])?;
            tx.execute("INSERT OR IGNORE INTO ungrouped(face_id) VALUES (?1)", [f])?;
        }
        Some(_) => return Ok(Err(outcome::SAME_PHOTO)),
        None => {}
    }
    Ok(Ok(Some(person)))
}

impl Catalog {
    /// Applies every region not applied yet, in one transaction: each is matched to a face of
    /// its photo ([`match_regions`]; faces an applied region holds are not matched again), and
    /// the face joins the person of the region's name (made when nobody has it) as 'imported',
    /// unless the name is several people's, the user put the face elsewhere or said it is not
    /// that person, or another face of the photo is that person (each recorded as its outcome).
    pub fn import_regions(&mut self) -> Result<ImportSummary, CatalogError> {
        let path = self.path.clone();
        let e = |error| CatalogError::Sqlite { path: path.clone(), error };
        let tx = self.conn.transaction().map_err(e)?;
        let mut sum = ImportSummary::default();
        {
            let pending: Vec<(i64, i64, String, [f32; 4])> = tx
                .prepare("SELECT id, photo_id, name, x0, y0, x1, y1 FROM regions WHERE outcome IS NULL ORDER BY photo_id, id")
                .map_err(e)?
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        [r.get::<_, f64>(3)? as f32, r.get::<_, f64>(4)? as f32, r.get::<_, f64>(5)? as f32, r.get::<_, f64>(6)? as f32],
                    ))
                })
                .map_err(e)?
                .collect::<Sql<_>>()
                .map_err(e)?;
            let mut by_photo: HashMap<i64, Vec<(i64, String, [f32; 4])>> = HashMap::new();
            for (id, photo, name, rect) in pending {
                by_photo.entry(photo).or_default().push((id, name, rect));
            }
            let mut photos: Vec<_> = by_photo.into_iter().collect();
            photos.sort_by_key(|p| p.0);
            let mut set = tx.prepare_cached("UPDATE regions SET face_id=?2, outcome=?3 WHERE id=?1").map_err(e)?;
            for (photo, regions) in photos {
                let (w, h): (f64, f64) =
                    tx.query_row("SELECT width, height FROM photos WHERE id=?1", [photo], |r| Ok((r.get(0)?, r.get(1)?))).map_err(e)?;
                let faces: Vec<(i64, [f32; 4])> = tx
                    .prepare_cached(
                        "SELECT id, x, y, w, h FROM faces WHERE photo_id=?1
                         AND id NOT IN (SELECT face_id FROM regions WHERE photo_id=?1 AND outcome IS NOT NULL AND face_id IS NOT NULL) ORDER BY idx",
                    )
                    .map_err(e)?
                    .query_map([photo], |r| {
                        let (x, y, bw, bh): (f64, f64, f64, f64) = (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
                        let (w, h) = (w.max(1.0), h.max(1.0));
                        Ok((r.get(0)?, [(x / w) as f32, (y / h) as f32, ((x + bw) / w) as f32, ((y + bh) / h) as f32]))
                    })
                    .map_err(e)?
                    .collect::<Sql<_>>()
                    .map_err(e)?;
                let rects: Vec<[f32; 4]> = regions.iter().map(|r| r.2).collect();
                let boxes: Vec<[f32; 4]> = faces.iter().map(|f| f.1).collect();
                for ((id, name, _), m) in regions.iter().zip(match_regions(&rects, &boxes)) {
                    let Some(k) = m else {
                        set.execute(params![id, None::<i64>, outcome::NO_FACE]).map_err(e)?;
                        sum.without_face += 1;
                        continue;
                    };
                    let face = faces[k].0;
                    let result = match decide(&tx, face, photo, name).map_err(e)? {
                        Ok(person) => {
                            let person = match person {
                                Some(p) => p,
                                None => new_person(&tx, Some(name)).map_err(e)?,
                            };
                            tx.execute(
                                // a face already in that person keeps how it came there (a
                                // sidecar facefind wrote names grouping's guesses too)
                                "INSERT INTO face_person(face_id, person_id, source) VALUES (?1, ?2, 'imported')
                                 ON CONFLICT(face_id) DO UPDATE SET person_id=excluded.person_id,
                                   source=CASE WHEN face_person.person_id = excluded.person_id THEN face_person.source ELSE 'imported' END",
                                params![face, person],
                            )
                            .map_err(e)?;
                            sum.linked += 1;
                            outcome::LINKED
                        }
                        Err(why) => {
                            sum.skipped += 1;
                            why
                        }
                    };
                    set.execute(params![id, face, result]).map_err(e)?;
                }
            }
        }
        tx.commit().map_err(e)?;
        Ok(sum)
    }

    /// Every stored region, by photo.
    pub fn regions(&self) -> Result<Vec<StoredRegion>, CatalogError> {
        let e = |source| self.sql_err(source);
        // a face linked by a region that the user has since moved elsewhere (or taken out) says so
        let mut st = self
            .conn
            .prepare(
                "SELECT r.photo_id, r.name, r.x0, r.y0, r.x1, r.y1, r.face_id,
                   CASE WHEN r.outcome = 'linked' AND NOT EXISTS (
                     SELECT 1 FROM face_person fp JOIN people p ON p.id = fp.person_id
                     WHERE fp.face_id = r.face_id AND (fp.source = 'imported' OR p.name = r.name COLLATE NOCASE))
                   THEN ?1 ELSE r.outcome END
                 FROM regions r ORDER BY r.photo_id, r.id",
            )
            .map_err(e)?;
        let rows = st
            .query_map([outcome::USER_MOVED], |r| {
                Ok(StoredRegion {
                    photo_id: r.get(0)?,
                    name: r.get(1)?,
                    rect: [r.get::<_, f64>(2)? as f32, r.get::<_, f64>(3)? as f32, r.get::<_, f64>(4)? as f32, r.get::<_, f64>(5)? as f32],
                    face_id: r.get(6)?,
                    outcome: r.get(7)?,
                })
            })
            .map_err(e)?;
        rows.collect::<Result<_, _>>().map_err(e)
    }

    /// The sidecar signature each photo's metadata was last read with (photos without sidecars
    /// have none).
    pub fn sidecar_sigs(&self) -> Result<HashMap<i64, i64>, CatalogError> {
        let e = |source| self.sql_err(source);
        let mut st = self.conn.prepare("SELECT photo_id, sig FROM sidecars").map_err(e)?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(e)?;
        rows.collect::<Result<_, _>>().map_err(e)
    }

    /// Photos whose metadata (date, regions) is read again by the next index run.
    pub fn mark_metadata_unread(&mut self, ids: &[i64]) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let e = |source| CatalogError::Sqlite { path: path.clone(), error: source };
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut st = tx.prepare_cached("INSERT OR IGNORE INTO dates_unread(photo_id) SELECT id FROM photos WHERE id=?1").map_err(e)?;
            for id in ids {
                st.execute([id]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }
}

/// Records the sidecar signature a photo's metadata was read with (0: no sidecar).
pub(super) fn set_sig(tx: &Transaction, id: i64, sig: i64) -> Sql<()> {
    if sig == 0 {
        tx.execute("DELETE FROM sidecars WHERE photo_id=?1", [id])?;
    } else {
        tx.execute("INSERT OR REPLACE INTO sidecars(photo_id, sig) VALUES (?1, ?2)", [id, sig])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_match_faces_one_to_one_by_overlap() {
        let faces = [[0.1, 0.1, 0.3, 0.3], [0.5, 0.1, 0.7, 0.3], [0.8, 0.8, 0.9, 0.9]];
        let regions = [
            [0.52, 0.12, 0.72, 0.32], // face 1, shifted a little
            [0.05, 0.05, 0.35, 0.35], // face 0, drawn larger (IoU 0.44)
            [0.15, 0.15, 0.25, 0.25], // inside face 0 too, but face 0 is taken
            [0.4, 0.6, 0.5, 0.7],     // nobody there
            [0.75, 0.75, 0.95, 0.95], // face 2, drawn twice as large (IoU 0.25; centres inside)
        ];
        assert_eq!(match_regions(&regions, &faces), vec![Some(1), Some(0), None, None, Some(2)]);
        assert_eq!(match_regions(&regions, &[]), vec![None; 5]);
    }

    use crate::catalog::{test_photo, Catalog};
    use crate::photo::regions::{Region, Scheme};

    fn region(name: &str, rect: [f32; 4]) -> Region {
        Region { name: name.into(), rect, scheme: Scheme::Mwg }
    }

    /// The rules of applying regions: a face joins the person of its name (made if needed), a
    /// region with no face waits in the list, the user's moves and rejections stand, a name of
    /// two people is not guessed, one photo never gives a person two faces; a changed region
    /// list takes its old links back.
    #[test]
    fn regions_join_people_and_never_undo_what_the_user_did() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&tmp.path().join("c.sqlite")).unwrap();
        // photo a: two faces (left, right); photo b: one face
        let mut a = test_photo("a.jpg", &[([10.0, 10.0, 20.0, 20.0], 0.9), ([60.0, 10.0, 20.0, 20.0], 0.9)]);
        a.regions = vec![region("Ann", [0.1, 0.1, 0.3, 0.3]), region("Bob", [0.6, 0.1, 0.8, 0.3]), region("Cy", [0.4, 0.7, 0.5, 0.8])];
        let mut b = test_photo("b.jpg", &[([40.0, 40.0, 20.0, 20.0], 0.9)]);
        b.regions = vec![region("ann", [0.38, 0.38, 0.62, 0.62])];
        cat.write_batch(&[a.clone(), b.clone()]).unwrap();
        let sum = cat.import_regions().unwrap();
        assert_eq!(sum, ImportSummary { linked: 3, without_face: 1, skipped: 0 });
        let people = cat.people().unwrap();
        let named = |n: &str| people.iter().filter(|p| p.name.as_deref() == Some(n)).map(|p| (p.id, p.faces)).collect::<Vec<_>>();
        let (ann, bob) = (named("Ann"), named("Bob"));
        assert_eq!((ann.len(), ann[0].1, bob.len(), bob[0].1), (1, 2, 1, 1), "{people:?}");
        let links = cat.face_links().unwrap();
        assert!(links.values().all(|l| l.1 == Source::Imported));
        let regions = cat.regions().unwrap();
        assert_eq!(
            regions.iter().filter(|r| r.outcome.as_deref() == Some(outcome::NO_FACE)).map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["Cy"]
        );
        // applied once: a second pass does nothing
        assert_eq!(cat.import_regions().unwrap(), ImportSummary::default());

        // the user moves b's face to Bob and says a's right face is not Bob; then the sidecars
        // change (b: Ann again but drawn anew; a: the names swapped)
        let face_of = |cat: &Catalog, path: &str, k: u32| {
            let t = cat.face_table().unwrap();
            let photo = cat.photos().unwrap().into_iter().find(|p| p.path == path.as_bytes()).unwrap().id;
            (0..t.len()).find(|&r| t.photo_id(r) == photo && t.face_index(r) == k).map(|r| t.face_id(r)).unwrap()
        };
        let (a0, a1, b0) = (face_of(&cat, "a.jpg", 0), face_of(&cat, "a.jpg", 1), face_of(&cat, "b.jpg", 0));
        cat.assign_faces(&[b0], Some(bob[0].0), None).unwrap();
        cat.reject_face(a1, bob[0].0).unwrap();
        b.regions = vec![region("Ann", [0.39, 0.39, 0.61, 0.61])];
        a.regions = vec![region("Bob", [0.1, 0.1, 0.3, 0.3]), region("Ann", [0.6, 0.1, 0.8, 0.3])];
        cat.write_batch(&[a.clone(), b]).unwrap();
        let sum = cat.import_regions().unwrap();
        let outcome_of = |cat: &Catalog, name: &str, photo: &str| {
            let id = cat.photos().unwrap().into_iter().find(|p| p.path == photo.as_bytes()).unwrap().id;
            cat.regions().unwrap().into_iter().find(|r| r.name == name && r.photo_id == id).and_then(|r| r.outcome).unwrap()
        };
        // b's face stays with Bob, where the user put it
        assert_eq!(outcome_of(&cat, "Ann", "b.jpg"), outcome::USER_MOVED);
        assert_eq!(cat.face_links().unwrap()[&b0], (bob[0].0, Source::User));
        // a's faces follow the new names
        assert_eq!((outcome_of(&cat, "Bob", "a.jpg"), outcome_of(&cat, "Ann", "a.jpg")), (outcome::LINKED.into(), outcome::LINKED.into()));
        assert_eq!(cat.face_links().unwrap()[&a0], (bob[0].0, Source::Imported));
        assert_eq!(cat.face_links().unwrap()[&a1], (ann[0].0, Source::Imported));
        // (b's region, redrawn a little, is the one applied before: not applied again)
        assert_eq!(sum, ImportSummary { linked: 2, without_face: 0, skipped: 0 });
        // back to Bob on the right: the user said that face is not Bob
        a.regions = vec![region("Ann", [0.1, 0.1, 0.3, 0.3]), region("Bob", [0.6, 0.1, 0.8, 0.3])];
        cat.write_batch(&[a]).unwrap();
        assert_eq!(cat.import_regions().unwrap(), ImportSummary { linked: 1, without_face: 0, skipped: 1 });
        assert_eq!(outcome_of(&cat, "Bob", "a.jpg"), outcome::USER_REJECTED);
        assert!(!cat.face_links().unwrap().contains_key(&a1));

        // a name two people have is not guessed
        let mut c = test_photo("c.jpg", &[([10.0, 10.0, 20.0, 20.0], 0.9), ([60.0, 10.0, 20.0, 20.0], 0.9)]);
        cat.write_batch(std::slice::from_ref(&c)).unwrap();
        let c1 = face_of(&cat, "c.jpg", 1);
        let (_, second_bob) = cat.assign_faces(&[c1], None, Some("Bob")).unwrap();
        assert_ne!(second_bob, bob[0].0);
        c.regions = vec![region("Bob", [0.1, 0.1, 0.3, 0.3])];
        cat.write_batch(&[c]).unwrap();
        assert_eq!(cat.import_regions().unwrap(), ImportSummary { linked: 0, without_face: 0, skipped: 1 });
        assert_eq!(outcome_of(&cat, "Bob", "c.jpg"), outcome::AMBIGUOUS);

        // a person renamed here keeps the face when the other tool redraws its region a little
        let mut d = test_photo("d.jpg", &[([40.0, 40.0, 20.0, 20.0], 0.9)]);
        d.regions = vec![region("Dee", [0.4, 0.4, 0.6, 0.6])];
        cat.write_batch(std::slice::from_ref(&d)).unwrap();
        cat.import_regions().unwrap();
        let d0 = face_of(&cat, "d.jpg", 0);
        let dee = cat.face_links().unwrap()[&d0].0;
        cat.name_person(dee, Some("Deirdre")).unwrap();
        d.regions = vec![region("Dee", [0.41, 0.4, 0.61, 0.6])];
        cat.set_metadata(&[crate::catalog::MetadataRead { id: d0_photo(&cat), taken: None, regions: d.regions.clone(), sidecar_sig: 7 }])
            .unwrap();
        cat.import_regions().unwrap();
        assert_eq!(cat.face_links().unwrap()[&d0], (dee, Source::Imported));
        assert!(!cat.people().unwrap().iter().any(|p| p.name.as_deref() == Some("Dee")));
    }

    fn d0_photo(cat: &Catalog) -> i64 {
        cat.photos().unwrap().into_iter().find(|p| p.path == b"d.jpg").unwrap().id
    }
}
