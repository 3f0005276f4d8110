//! Putting a people edit back: the rows of the people and faces it touched, as they were.

use rusqlite::params;

use super::people::{storage_rule, Undo};
use super::{Catalog, CatalogError};

impl Catalog {
    /// Puts back what an edit changed. Refused (nothing changes) where that would put two
    /// faces of one photo in one person again.
    pub fn undo(&mut self, u: &Undo) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let e = |error| storage_rule(CatalogError::Sqlite { path: path.clone(), error });
        let tx = self.conn.transaction().map_err(e)?;
        for (id, row) in &u.people {
            match row {
                Some(r) => {
                    tx.execute(
                        "INSERT INTO people(id, name, hidden, cover_face, created) VALUES (?1, ?2, ?3, (SELECT id FROM faces WHERE id=?4), ?5)
                         ON CONFLICT(id) DO UPDATE SET name=excluded.name, hidden=excluded.hidden, cover_face=excluded.cover_face, created=excluded.created",
                        params![id, r.name, r.hidden as i64, r.cover_face, r.created],
                    )
                    .map_err(e)?;
                }
                None => {
                    tx.execute("DELETE FROM people WHERE id=?1", [id]).map_err(e)?;
                }
            }
        }
        for f in &u.faces {
            tx.execute("DELETE FROM face_person WHERE face_id=?1", [f]).map_err(e)?;
            tx.execute("DELETE FROM rejections WHERE face_id=?1", [f]).map_err(e)?;
        }
        // faces or people deleted since (a re-index) are skipped
        for (f, p, s) in &u.links {
            tx.execute(
                "INSERT OR REPLACE INTO face_person(face_id, person_id, source) SELECT ?1, ?2, ?3
                 WHERE EXISTS (SELECT 1 FROM faces WHERE id=?1) AND EXISTS (SELECT 1 FROM people WHERE id=?2)",
                params![f, p, s.as_str()],
            )
            .map_err(e)?;
        }
        // rows whose face or people are gone since (a re-index) are skipped
        let restore = |sql: &str, rows: &[(i64, i64)]| -> Result<(), CatalogError> {
            rows.iter().try_for_each(|(x, y)| tx.execute(sql, [x, y]).map(|_| ()).map_err(e))
        };
        restore(
            "INSERT OR IGNORE INTO rejections(face_id, person_id) SELECT ?1, ?2
             WHERE EXISTS (SELECT 1 FROM faces WHERE id=?1) AND EXISTS (SELECT 1 FROM people WHERE id=?2)",
            &u.rejections,
        )?;
        // the people's "not the same" pairs as they were (a merge moved them to the one kept)
        for (id, _) in &u.people {
            tx.execute("DELETE FROM not_same WHERE a=?1 OR b=?1", [id]).map_err(e)?;
        }
        restore(
            "INSERT OR IGNORE INTO not_same(a, b) SELECT ?1, ?2
             WHERE EXISTS (SELECT 1 FROM people WHERE id=?1) AND EXISTS (SELECT 1 FROM people WHERE id=?2)",
            &u.not_same_rows,
        )?;
        for (a, b) in &u.not_same {
            tx.execute("DELETE FROM not_same WHERE a=?1 AND b=?2", [a, b]).map_err(e)?;
        }
        tx.commit().map_err(e)
    }
}
