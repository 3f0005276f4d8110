//! People in the catalog: every edit the user makes (name, hide, merge, move, confirm,
//! reject, new person), each in one short transaction that returns an [`Undo`]. Links and rejections hang off face ids, which
//! survive re-processing (see [`Catalog::write_batch`]).

use std::collections::{HashMap, HashSet};

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::{schema::ONE_FACE_PER_PHOTO, Catalog, CatalogError, FaceTable};
use crate::people::{FaceInfo, Source};

pub use super::grouping::GroupSummary;

/// A person as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Person {
    pub id: i64,
    pub name: Option<String>,
    pub hidden: bool,
    /// The face shown for the person: the one the user chose, else the largest face the user
    /// vouched for, else the largest.
    pub cover_face: Option<i64>,
    /// Unix seconds.
    pub created: i64,
    pub faces: usize,
    pub photos: usize,
}

impl Person {
    /// The name, or "Unnamed".
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| "Unnamed".into())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct PersonRow {
    pub(super) name: Option<String>,
    pub(super) hidden: bool,
    pub(super) cover_face: Option<i64>,
    pub(super) created: i64,
}

/// What an edit changed, to put it back ([`Catalog::undo`]): the previous rows of the people
/// and faces it touched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Undo {
    /// What the edit did, for the Undo button ("Merged Ann into Bob").
    pub what: String,
    pub(super) people: Vec<(i64, Option<PersonRow>)>,
    pub(super) faces: Vec<i64>,
    pub(super) links: Vec<(i64, i64, Source)>,
    pub(super) rejections: Vec<(i64, i64)>,
    /// "Not the same person" pairs the edit added (removed again by undo).
    pub(super) not_same: Vec<(i64, i64)>,
    /// Every "not the same person" pair of the people above, as it was (a merge moves them).
    pub(super) not_same_rows: Vec<(i64, i64)>,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

type Sql<T> = Result<T, rusqlite::Error>;

/// Order of cover candidates (vouched for, size × score, -face id): the greater is the cover.
fn cover_order(a: (bool, f64, i64), b: (bool, f64, i64)) -> std::cmp::Ordering {
    a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2))
}

fn person_row(tx: &Transaction, id: i64) -> Sql<Option<PersonRow>> {
    tx.query_row("SELECT name, hidden, cover_face, created FROM people WHERE id=?1", [id], |r| {
        Ok(PersonRow { name: r.get(0)?, hidden: r.get::<_, i64>(1)? != 0, cover_face: r.get(2)?, created: r.get(3)? })
    })
    .optional()
}

/// The rows an edit of `people` and `faces` may change, as they are now.
fn snapshot(tx: &Transaction, what: String, people: &[i64], faces: &[i64]) -> Sql<Undo> {
    let mut u = Undo { what, ..Undo::default() };
    let mut seen = HashSet::new();
    for &p in people {
        if seen.insert(p) {
            u.people.push((p, person_row(tx, p)?));
            let mut st = tx.prepare_cached("SELECT a, b FROM not_same WHERE a=?1 OR b=?1")?;
            for pair in st.query_map([p], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
                u.not_same_rows.push(pair?);
            }
        }
    }
    let mut faces: Vec<i64> = faces.to_vec();
    // faces rejected from these people are touched too when a person goes (merge)
    for &p in people {
        let mut st = tx.prepare_cached("SELECT face_id FROM rejections WHERE person_id=?1")?;
        faces.extend(st.query_map([p], |r| r.get::<_, i64>(0))?.collect::<Sql<Vec<_>>>()?);
    }
    faces.sort();
    faces.dedup();
    for &f in &faces {
        let mut st = tx.prepare_cached("SELECT person_id, source FROM face_person WHERE face_id=?1")?;
        if let Some((p, s)) = st.query_row([f], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))).optional()? {
            u.links.push((f, p, Source::parse(&s).unwrap_or(Source::Auto)));
        }
        let mut st = tx.prepare_cached("SELECT person_id FROM rejections WHERE face_id=?1")?;
        for p in st.query_map([f], |r| r.get::<_, i64>(0))? {
            u.rejections.push((f, p?));
        }
    }
    u.faces = faces;
    Ok(u)
}

fn link(tx: &Transaction, face: i64, person: i64, source: Source) -> Sql<()> {
    tx.execute(
        "INSERT INTO face_person(face_id, person_id, source) VALUES (?1, ?2, ?3)
         ON CONFLICT(face_id) DO UPDATE SET person_id=excluded.person_id, source=excluded.source",
        params![face, person, source.as_str()],
    )?;
    tx.execute("DELETE FROM rejections WHERE face_id=?1 AND person_id=?2", [face, person])?;
    Ok(())
}

/// A write the storage refused by the people rule ([`ONE_FACE_PER_PHOTO`]) as the user's
/// error it is; anything else as it came.
pub(super) fn storage_rule(e: CatalogError) -> CatalogError {
    match e {
        CatalogError::Sqlite { error, .. } if error.to_string().contains(ONE_FACE_PER_PHOTO) => {
            CatalogError::Invalid(ONE_FACE_PER_PHOTO.into())
        }
        e => e,
    }
}

pub(super) fn new_person(tx: &Transaction, name: Option<&str>) -> Sql<i64> {
    tx.query_row("INSERT INTO people(name, created) VALUES (?1, ?2) RETURNING id", params![name, now()], |r| r.get(0))
}

impl Catalog {
    pub(super) fn tx_err(&self) -> impl Fn(rusqlite::Error) -> CatalogError + '_ {
        move |error| CatalogError::Sqlite { path: self.path.clone(), error }
    }

    /// Every person, most faces first (hidden ones included; see [`Person::hidden`]). One pass
    /// over the person links, counted here (SQL window functions and DISTINCT counts took
    /// 0.75 s for 150,000 faces).
    pub fn people(&self) -> Result<Vec<Person>, CatalogError> {
        let e = self.tx_err();
        /// Faces, photos, and the best cover candidate: (vouched for, size × score, -face id).
        #[derive(Default)]
        struct Acc {
            faces: usize,
            photos: std::collections::HashSet<i64>,
            cover: Option<(bool, f64, i64)>,
        }
        let mut acc: HashMap<i64, Acc> = HashMap::new();
        let mut st = self
            .conn
            .prepare("SELECT fp.person_id, fp.face_id, fp.source != 'auto', f.photo_id, f.w * f.h * f.score FROM face_person fp JOIN faces f ON f.id = fp.face_id")
            .map_err(&e)?;
        let mut rows = st.query([]).map_err(&e)?;
        while let Some(r) = rows.next().map_err(&e)? {
            let a = acc.entry(r.get(0).map_err(&e)?).or_default();
            let face: i64 = r.get(1).map_err(&e)?;
            a.faces += 1;
            a.photos.insert(r.get(3).map_err(&e)?);
            let key = (r.get::<_, bool>(2).map_err(&e)?, r.get::<_, f64>(4).map_err(&e)?, -face);
            if a.cover.is_none_or(|best| cover_order(key, best).is_gt()) {
                a.cover = Some(key);
            }
        }
        let mut st = self.conn.prepare("SELECT id, name, hidden, cover_face, created FROM people").map_err(&e)?;
        let rows = st
            .query_map([], |r| {
                let id: i64 = r.get(0)?;
                let a = acc.get(&id);
                Ok(Person {
                    id,
                    name: r.get(1)?,
                    hidden: r.get::<_, i64>(2)? != 0,
                    cover_face: r.get::<_, Option<i64>>(3)?.or(a.and_then(|a| a.cover).map(|(_, _, f)| -f)),
                    created: r.get(4)?,
                    faces: a.map_or(0, |a| a.faces),
                    photos: a.map_or(0, |a| a.photos.len()),
                })
            })
            .map_err(&e)?;
        let mut v: Vec<Person> = rows.collect::<Sql<_>>().map_err(&e)?;
        v.sort_by(|a, b| b.faces.cmp(&a.faces).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    /// Face id → (person, how it got there).
    pub fn face_links(&self) -> Result<HashMap<i64, (i64, Source)>, CatalogError> {
        let e = self.tx_err();
        let mut st = self.conn.prepare("SELECT face_id, person_id, source FROM face_person").map_err(&e)?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, (r.get::<_, i64>(1)?, Source::parse(&r.get::<_, String>(2)?).unwrap_or(Source::Auto))))
            })
            .map_err(&e)?;
        rows.collect::<Sql<_>>().map_err(&e)
    }

    /// Face id → the people it is not.
    pub fn rejections(&self) -> Result<HashMap<i64, Vec<i64>>, CatalogError> {
        let e = self.tx_err();
        let mut st = self.conn.prepare("SELECT face_id, person_id FROM rejections ORDER BY face_id, person_id").map_err(&e)?;
        let mut out: HashMap<i64, Vec<i64>> = HashMap::new();
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))).map_err(&e)?;
        for row in rows {
            let (f, p) = row.map_err(&e)?;
            out.entry(f).or_default().push(p);
        }
        Ok(out)
    }

    /// The faces of `t` as grouping sees them (links and rejections included), row for row.
    pub fn face_infos(&self, t: &FaceTable) -> Result<Vec<FaceInfo>, CatalogError> {
        let links = self.face_links()?;
        let mut rej = self.rejections()?;
        Ok((0..t.len())
            .map(|r| {
                let id = t.face_id(r);
                FaceInfo {
                    id,
                    photo: t.photo_id(r),
                    score: t.score(r),
                    size_px: t.bbox(r)[2].min(t.bbox(r)[3]),
                    person: links.get(&id).copied(),
                    rejected: rej.remove(&id).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// A person by id or by name (case-insensitive; an ambiguous name is an error).
    pub fn find_person(&self, key: &str) -> Result<i64, CatalogError> {
        let e = self.tx_err();
        if let Ok(id) = key.parse::<i64>() {
            if self.conn.query_row("SELECT count(*) FROM people WHERE id=?1", [id], |r| r.get::<_, i64>(0)).map_err(&e)? > 0 {
                return Ok(id);
            }
        }
        let mut st = self.conn.prepare("SELECT id FROM people WHERE name = ?1 COLLATE NOCASE ORDER BY id").map_err(&e)?;
        let ids: Vec<i64> = st.query_map([key], |r| r.get(0)).map_err(&e)?.collect::<Sql<_>>().map_err(&e)?;
        match ids.as_slice() {
            [id] => Ok(*id),
            [] => Err(CatalogError::NoPerson(key.to_string())),
            _ => Err(CatalogError::Invalid(format!(
                "{} people are called {key:?}; use an id ({})",
                ids.len(),
                ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The faces of a person (face ids).
    pub fn person_faces(&self, person: i64) -> Result<Vec<(i64, Source)>, CatalogError> {
        let e = self.tx_err();
        let mut st = self.conn.prepare("SELECT face_id, source FROM face_person WHERE person_id=?1 ORDER BY face_id").map_err(&e)?;
        let rows =
            st.query_map([person], |r| Ok((r.get(0)?, Source::parse(&r.get::<_, String>(1)?).unwrap_or(Source::Auto)))).map_err(&e)?;
        rows.collect::<Sql<_>>().map_err(&e)
    }

    /// Runs one edit in a transaction, after snapshotting what it may touch.
    pub(super) fn edit<T>(
        &mut self,
        what: String,
        people: &[i64],
        faces: &[i64],
        f: impl FnOnce(&Transaction) -> Result<T, CatalogError>,
    ) -> Result<(Undo, T), CatalogError> {
        let path = self.path.clone();
        let e = |error| CatalogError::Sqlite { path: path.clone(), error };
        let tx = self.conn.transaction().map_err(e)?;
        for &p in people {
            if person_row(&tx, p).map_err(e)?.is_none() {
                return Err(CatalogError::NoPerson(p.to_string()));
            }
        }
        for &f in faces {
            if tx.query_row("SELECT count(*) FROM faces WHERE id=?1", [f], |r| r.get::<_, i64>(0)).map_err(e)? == 0 {
                return Err(CatalogError::NoFace(f));
            }
        }
        let undo = snapshot(&tx, what, people, faces).map_err(e)?;
        let out = f(&tx).map_err(storage_rule)?;
        tx.commit().map_err(e)?;
        Ok((undo, out))
    }

    fn person_of(&self, face: i64) -> Result<Option<(i64, Source)>, CatalogError> {
        self.conn
            .query_row("SELECT person_id, source FROM face_person WHERE face_id=?1", [face], |r| {
                Ok((r.get(0)?, Source::parse(&r.get::<_, String>(1)?).unwrap_or(Source::Auto)))
            })
            .optional()
            .map_err(self.tx_err())
    }

    /// Names (or with `None` un-names) a person.
    pub fn name_person(&mut self, person: i64, name: Option<&str>) -> Result<Undo, CatalogError> {
        let name = name.map(str::trim).filter(|n| !n.is_empty()).map(str::to_string);
        let what = format!("Named {}", name.as_deref().unwrap_or("Unnamed"));
        let path = self.path.clone();
        self.edit(what, &[person], &[], |tx| {
            tx.execute("UPDATE people SET name=?1 WHERE id=?2", params![name, person])
                .map_err(|error| CatalogError::Sqlite { path, error })?;
            Ok(())
        })
        .map(|r| r.0)
    }

    /// Hides or shows a person (hidden people stay grouped but out of the list).
    pub fn hide_person(&mut self, person: i64, hidden: bool) -> Result<Undo, CatalogError> {
        let path = self.path.clone();
        self.edit(if hidden { "Hid a person".into() } else { "Showed a person".into() }, &[person], &[], |tx| {
            tx.execute("UPDATE people SET hidden=?1 WHERE id=?2", params![hidden as i64, person])
                .map_err(|error| CatalogError::Sqlite { path, error })?;
            Ok(())
        })
        .map(|r| r.0)
    }

    /// Chooses the face shown for a person.
    pub fn set_cover(&mut self, person: i64, face: i64) -> Result<Undo, CatalogError> {
        let path = self.path.clone();
        self.edit("Changed the cover".into(), &[person], &[face], |tx| {
            tx.execute("UPDATE people SET cover_face=?1 WHERE id=?2", params![face, person])
                .map_err(|error| CatalogError::Sqlite { path, error })?;
            Ok(())
        })
        .map(|r| r.0)
    }

    /// A person's name, or "Unnamed", for edit descriptions; [`CatalogError::NoPerson`] when
    /// there is no such person.
    pub(super) fn person_label(&self, id: i64) -> Result<String, CatalogError> {
        let name: Option<Option<String>> =
            self.conn.query_row("SELECT name FROM people WHERE id=?1", [id], |r| r.get(0)).optional().map_err(self.tx_err())?;
        name.map(|n| n.unwrap_or_else(|| "Unnamed".into())).ok_or_else(|| CatalogError::NoPerson(id.to_string()))
    }

    /// Merges person `from` into `into`: its faces (keeping how they got there) and rejections
    /// move; `into` keeps its name, or takes `from`'s if it has none. Refused when the two
    /// share a photo (one photo shows a person once).
    pub fn merge_people(&mut self, from: i64, into: i64) -> Result<Undo, CatalogError> {
        if from == into {
            return Err(CatalogError::Invalid("cannot merge a person into itself".into()));
        }
        let e = self.tx_err();
        let shared: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM (SELECT f.photo_id FROM face_person fp JOIN faces f ON f.id=fp.face_id WHERE fp.person_id=?1
                 INTERSECT SELECT f.photo_id FROM face_person fp JOIN faces f ON f.id=fp.face_id WHERE fp.person_id=?2)",
                [from, into],
                |r| r.get(0),
            )
            .map_err(&e)?;
        drop(e);
        if shared > 0 {
            return Err(CatalogError::Invalid(format!(
                "people {from} and {into} appear together in {shared} photo(s): they are two people"
            )));
        }
        let faces: Vec<i64> = self.person_faces(from)?.into_iter().map(|f| f.0).collect();
        let path = self.path.clone();
        let what = format!("Merged {} into {}", self.person_label(from)?, self.person_label(into)?);
        self.edit(what, &[from, into], &faces, |tx| {
            let e = |error| CatalogError::Sqlite { path: path.clone(), error };
            tx.execute("UPDATE face_person SET person_id=?2 WHERE person_id=?1", [from, into]).map_err(e)?;
            tx.execute(
                "INSERT OR IGNORE INTO rejections(face_id, person_id) SELECT face_id, ?2 FROM rejections WHERE person_id=?1",
                [from, into],
            )
            .map_err(e)?;
            // a face of the merged person rejected from the other: the user's link wins
            tx.execute(
                "DELETE FROM rejections WHERE person_id=?1 AND face_id IN (SELECT face_id FROM face_person WHERE person_id=?1)",
                [into],
            )
            .map_err(e)?;
            tx.execute("UPDATE people SET name=coalesce(name, (SELECT name FROM people WHERE id=?1)) WHERE id=?2", [from, into])
                .map_err(e)?;
            // who `from` was not, `into` is not either (`from`'s own pairs go with it)
            tx.execute(
                "INSERT OR IGNORE INTO not_same(a, b) SELECT min(?2, o), max(?2, o) FROM
                 (SELECT CASE WHEN a=?1 THEN b ELSE a END AS o FROM not_same WHERE a=?1 OR b=?1) WHERE o != ?2",
                [from, into],
            )
            .map_err(e)?;
            tx.execute("DELETE FROM people WHERE id=?1", [from]).map_err(e)?;
            Ok(())
        })
        .map(|r| r.0)
    }

    /// Puts faces into person `to` (`None`: a new person, named `name`), as the user's choice.
    /// Returns the person. A face from the same photo as another face of `to` is refused.
    pub fn assign_faces(&mut self, faces: &[i64], to: Option<i64>, name: Option<&str>) -> Result<(Undo, i64), CatalogError> {
        self.place(faces, to, name, Source::User)
    }

    fn place(&mut self, faces: &[i64], to: Option<i64>, name: Option<&str>, source: Source) -> Result<(Undo, i64), CatalogError> {
        if faces.is_empty() {
            return Err(CatalogError::Invalid("no faces given".into()));
        }
        let e = self.tx_err();
        let mut photos = HashSet::new();
        for &f in faces {
            let ph: Option<i64> =
                self.conn.query_row("SELECT photo_id FROM faces WHERE id=?1", [f], |r| r.get(0)).optional().map_err(&e)?;
            let ph = ph.ok_or(CatalogError::NoFace(f))?;
            if !photos.insert(ph) {
                return Err(CatalogError::Invalid("two faces of one photo cannot be one person".into()));
            }
        }
        if let Some(to) = to {
            let clash: i64 = self
                .conn
                .query_row(
                    &format!(
                        "SELECT count(*) FROM face_person fp JOIN faces f ON f.id = fp.face_id WHERE fp.person_id=?1 AND f.photo_id IN ({}) AND fp.face_id NOT IN ({})",
                        photos.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","),
                        faces.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")
                    ),
                    [to],
                    |r| r.get(0),
                )
                .map_err(&e)?;
            if clash > 0 {
                return Err(CatalogError::Invalid("this person is already in that photo".into()));
            }
        }
        drop(e);
        let path = self.path.clone();
        let name = name.map(str::trim).filter(|n| !n.is_empty()).map(str::to_string);
        let what = match (to, &name) {
            (None, Some(n)) => format!("Saved {} face(s) as {n}", faces.len()),
            (None, None) => format!("Made a new person of {} face(s)", faces.len()),
            (Some(_), _) => format!("Moved {} face(s)", faces.len()),
        };
        let people: Vec<i64> = to.into_iter().collect();
        let (mut undo, id) = self.edit(what, &people, faces, |tx| {
            let e = |error| CatalogError::Sqlite { path: path.clone(), error };
            let id = match to {
                Some(id) => id,
                None => new_person(tx, name.as_deref()).map_err(e)?,
            };
            for &f in faces {
                link(tx, f, id, source).map_err(e)?;
            }
            Ok(id)
        })?;
        if to.is_none() {
            undo.people.push((id, None)); // undo removes the new person
        }
        Ok((undo, id))
    }

    /// "Yes, this is them": links the face to the person as confirmed (moving it there if it
    /// was elsewhere or nowhere).
    pub fn confirm_face(&mut self, face: i64, person: i64) -> Result<Undo, CatalogError> {
        let (mut u, _) = self.place(&[face], Some(person), None, Source::Confirmed)?;
        u.what = "Confirmed a face".into();
        Ok(u)
    }

    /// "Not them": takes the face out of the person if it is there, and remembers.
    pub fn reject_face(&mut self, face: i64, person: i64) -> Result<Undo, CatalogError> {
        let path = self.path.clone();
        self.edit("Said a face is not this person".into(), &[person], &[face], |tx| {
            let e = |error| CatalogError::Sqlite { path: path.clone(), error };
            tx.execute("DELETE FROM face_person WHERE face_id=?1 AND person_id=?2", [face, person]).map_err(e)?;
            tx.execute("INSERT OR IGNORE INTO rejections(face_id, person_id) VALUES (?1, ?2)", [face, person]).map_err(e)?;
            tx.execute("UPDATE people SET cover_face=NULL WHERE id=?1 AND cover_face=?2", [person, face]).map_err(e)?;
            Ok(())
        })
        .map(|r| r.0)
    }

    /// Takes a face out of its person ("not X", remembered).
    pub fn remove_face(&mut self, face: i64) -> Result<Undo, CatalogError> {
        match self.person_of(face)? {
            Some((p, _)) => self.reject_face(face, p),
            None => Err(CatalogError::Invalid(format!("face {face} is in no person"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::test_photo as photo;

    /// Counts of faces and distinct photos, and the cover: the one set, else the largest
    /// (size × score) face the user vouched for, else the largest, the lowest id on a tie.
    #[test]
    fn people_counts_and_covers() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        let s = 0.9;
        cat.write_batch(&[
            photo("a.jpg", &[([0.0, 0.0, 10.0, 10.0], s)]),
            photo("b.jpg", &[([0.0, 0.0, 20.0, 20.0], 0.99)]),
            photo("c.jpg", &[([0.0, 0.0, 30.0, 30.0], s), ([40.0, 0.0, 30.0, 30.0], s)]),
            photo("d.jpg", &[([0.0, 0.0, 5.0, 5.0], s)]),
            photo("e.jpg", &[([0.0, 0.0, 90.0, 90.0], s)]),
            photo("f.jpg", &[([0.0, 0.0, 30.0, 30.0], s)]),
            photo("g.jpg", &[([0.0, 0.0, 50.0, 50.0], s)]),
        ])
        .unwrap();
        let ids: Vec<i64> = cat
            .conn
            .prepare("SELECT f.id FROM faces f JOIN photos p ON p.id = f.photo_id ORDER BY p.path, f.idx")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        cat.conn
            .execute_batch(&format!(
                "INSERT INTO people(id, created) VALUES (1, 0), (2, 0), (3, 0), (4, 0);
                 UPDATE people SET cover_face = {f4} WHERE id = 4;
                 INSERT INTO face_person(face_id, person_id, source) VALUES
                   ({f0}, 1, 'confirmed'), ({f7}, 1, 'auto'), ({f1}, 1, 'auto'), ({f2}, 2, 'auto'), ({f6}, 2, 'auto'), ({f5}, 4, 'auto'), ({f4}, 4, 'auto');",
                f0 = ids[0], f1 = ids[1], f2 = ids[2], f4 = ids[4], f5 = ids[5], f6 = ids[6], f7 = ids[7]
            ))
            .unwrap();
        let people: HashMap<i64, Person> = cat.people().unwrap().into_iter().map(|p| (p.id, p)).collect();
        let got = |id: i64| (people[&id].faces, people[&id].photos, people[&id].cover_face);
        assert_eq!(got(1), (3, 3, Some(ids[0])), "the vouched-for face, though the smallest");
        assert_eq!(got(2), (2, 2, Some(ids[2])), "a tie in size: the lower id");
        assert_eq!(got(3), (0, 0, None));
        assert_eq!(got(4), (2, 2, Some(ids[4])), "the cover that was set, though the smaller");
        assert_eq!(cat.people().unwrap().iter().map(|p| p.id).collect::<Vec<_>>(), vec![1, 2, 4, 3], "most faces first, then by id");
    }

    /// Writers wait for each other instead of failing: three connections naming people 25
    /// times each while a fourth writes batches of photos (an index run) — no edit fails with
    /// "database is locked", and every person ends with the last name given.
    #[test]
    fn edits_beside_an_index_run_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let mut cat = Catalog::open(&path).unwrap();
        cat.write_batch(&(0..3).map(|k| photo(&format!("p{k}.jpg"), &[([0.0, 0.0, 10.0, 10.0], 0.9)])).collect::<Vec<_>>()).unwrap();
        let t = cat.face_table().unwrap();
        let people: Vec<i64> = (0..3).map(|k| cat.assign_faces(&[t.face_id(k)], None, None).unwrap().1).collect();
        drop(cat);
        let done = std::sync::atomic::AtomicBool::new(false);
        let (path, done) = (&path, &done);
        let failures: Vec<String> = std::thread::scope(|s| {
            let indexer = s.spawn(move || {
                let mut cat = Catalog::open(path).unwrap();
                let mut batches = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || batches < 5 {
                    let batch: Vec<_> = (0..40)
                        .map(|i| photo(&format!("new/{batches}/{i}.jpg"), &[([0.0, 0.0, 10.0, 10.0], 0.9), ([20.0, 0.0, 10.0, 10.0], 0.8)]))
                        .collect();
                    cat.write_batch(&batch).unwrap();
                    batches += 1;
                    // a real run decodes and embeds between its commits
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            });
            let editors: Vec<_> = people
                .iter()
                .map(|&person| {
                    s.spawn(move || {
                        let mut cat = Catalog::open(path).unwrap();
                        (0..25)
                            .filter_map(|i| cat.name_person(person, Some(&format!("person {person} #{i}"))).err().map(|e| e.to_string()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let failures = editors.into_iter().flat_map(|h| h.join().unwrap()).collect();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            indexer.join().unwrap();
            failures
        });
        assert_eq!(failures, Vec::<String>::new());
        let cat = Catalog::open(path).unwrap();
        let names: HashMap<i64, Option<String>> = cat.people().unwrap().into_iter().map(|p| (p.id, p.name)).collect();
        for p in people {
            assert_eq!(names[&p].as_deref(), Some(format!("person {p} #24").as_str()));
        }
    }
}
