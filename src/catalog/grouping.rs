//! Grouping faces into people after an index run ([`Catalog::group_people`]): the faces the
//! run wrote (the `ungrouped` table) are placed by [`crate::people::plan_new`] and linked in
//! one transaction.

use std::collections::HashSet;

use rusqlite::params;
use serde::Serialize;

use super::people::new_person;
use super::{Catalog, CatalogError};
use crate::people::{self, Params};

type Sql<T> = Result<T, rusqlite::Error>;

/// What [`Catalog::group_people`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupSummary {
    /// Faces that joined an existing person.
    pub assigned: usize,
    /// People created.
    pub new_people: usize,
    /// Unnamed people left without faces, removed.
    pub removed_empty: usize,
    /// Faces in no person after grouping.
    pub unassigned: usize,
}

impl Catalog {
    /// Groups faces into people after an index run that `changed` the catalog, when faces wait
    /// to be grouped (a run cut short before grouping) or when the catalog was never grouped;
    /// `None` when none of these.
    pub fn group_people_if_needed(&mut self, changed: bool, params: &Params) -> Result<Option<GroupSummary>, CatalogError> {
        let waiting: bool = self.conn.query_row("SELECT EXISTS (SELECT 1 FROM ungrouped)", [], |r| r.get(0)).map_err(self.tx_err())?;
        if !changed && !waiting && self.meta("people_grouped")?.is_some() {
            return Ok(None);
        }
        Ok(Some(self.group_people(params)?))
    }

    /// Faces written since people were last grouped.
    fn ungrouped_faces(&self) -> Result<HashSet<i64>, CatalogError> {
        let e = self.tx_err();
        let mut st = self.conn.prepare("SELECT face_id FROM ungrouped").map_err(&e)?;
        let ids = st.query_map([], |r| r.get(0)).map_err(&e)?.collect::<Sql<_>>().map_err(&e)?;
        Ok(ids)
    }

    /// Groups faces into people (see [`crate::people::plan_new`]), in one transaction: the
    /// faces written since the last grouping join existing people or form new ones, with each
    /// other and with the unassigned faces of earlier runs they come close to; a catalog never
    /// grouped is grouped whole. Faces the user placed since the plan was made keep their place.
    /// Unnamed people left with no faces are removed.
    ///
    /// The work is the new faces against the people and against the unassigned faces: people
    /// are compared by their means (summed from the face table's 8-bit codes, in memory),
    /// earlier faces by their codes; only the new faces' exact embeddings are read, and nothing
    /// is clustered but the new faces and the earlier faces near them.
    pub fn group_people(&mut self, params: &Params) -> Result<GroupSummary, CatalogError> {
        let whole = self.meta("people_grouped")?.is_none();
        let fresh = self.ungrouped_faces()?;
        let t = self.face_table()?;
        let plan = if whole || !fresh.is_empty() {
            let infos = self.face_infos(&t)?;
            let (new, pool): (Vec<usize>, Vec<usize>) =
                (0..t.len()).filter(|&r| infos[r].waiting(params)).partition(|&r| whole || fresh.contains(&t.face_id(r)));
            let codes = t.codes();
            let people = people::person_sums(t.dim(), &infos, |r, sum| codes.add_to(r, sum));
            let new_emb: Vec<f32> = new.iter().flat_map(|&r| t.embedding(r)).collect();
            let (dim, err) = (t.dim(), codes.max_error());
            let pool_codes = people::PackedCodes::pack(dim, pool.len(), |j| {
                (&codes.codes()[pool[j] * dim..(pool[j] + 1) * dim], codes.steps()[pool[j]], err)
            });
            people::plan_new(
                t.dim(),
                &infos,
                &people,
                people::Rows { rows: &new, emb: &new_emb },
                (!pool.is_empty()).then_some(people::Pool { rows: &pool, codes: &pool_codes }),
                params,
            )
        } else {
            people::Plan::default()
        };
        let path = self.path.clone();
        let e = |error| CatalogError::Sqlite { path: path.clone(), error };
        let tx = self.conn.transaction().map_err(e)?;
        let mut sum = GroupSummary::default();
        {
            let mut add = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO face_person(face_id, person_id, source)
                     SELECT ?1, ?2, 'auto' WHERE EXISTS (SELECT 1 FROM people WHERE id=?2) AND EXISTS (SELECT 1 FROM faces WHERE id=?1)
                     AND NOT EXISTS (SELECT 1 FROM rejections WHERE face_id=?1 AND person_id=?2)
                     AND NOT EXISTS (SELECT 1 FROM faces f JOIN face_person fp ON fp.face_id = f.id
                                     WHERE f.photo_id = (SELECT photo_id FROM faces WHERE id=?1) AND f.id != ?1 AND fp.person_id=?2)",
                )
                .map_err(e)?;
            for &(r, person) in &plan.assign {
                sum.assigned += add.execute(params![t.face_id(r), person]).map_err(e)?;
            }
            for group in &plan.new_people {
                let id = new_person(&tx, None).map_err(e)?;
                let mut n = 0;
                for &r in group {
                    n += add.execute(params![t.face_id(r), id]).map_err(e)?;
                }
                if n >= params.min_faces.max(1) {
                    sum.new_people += 1;
                } else {
                    tx.execute("DELETE FROM people WHERE id=?1", [id]).map_err(e)?;
                }
            }
            sum.removed_empty = tx
                .execute(
                    "DELETE FROM people WHERE name IS NULL AND NOT EXISTS (SELECT 1 FROM face_person WHERE person_id = people.id)
                     AND NOT EXISTS (SELECT 1 FROM rejections WHERE person_id = people.id)",
                    [],
                )
                .map_err(e)?;
            sum.unassigned = tx
                // a face is in one person at most (face_person's key), and every link has its face
                .query_row("SELECT (SELECT count(*) FROM faces) - (SELECT count(*) FROM face_person)", [], |r| r.get::<_, i64>(0))
                .map_err(e)? as usize;
            // the faces looked at here are grouped (one written meanwhile, or not in the table
            // yet, waits for the next run)
            let mut done = tx.prepare_cached("DELETE FROM ungrouped WHERE face_id = ?1").map_err(e)?;
            for id in t.rows().iter().map(|r| r.face_id).filter(|id| fresh.contains(id)) {
                done.execute([id]).map_err(e)?;
            }
            tx.execute("INSERT INTO meta(key, value) VALUES ('people_grouped', '1') ON CONFLICT(key) DO NOTHING", []).map_err(e)?;
        }
        tx.commit().map_err(e)?;
        Ok(sum)
    }
}
