//! What "Who is this?" remembers besides face rejections: pairs of people the user said are not
//! the same person. Never asked again, and never merged by anything but the user.

use std::collections::HashSet;

use super::people::Undo;
use super::{Catalog, CatalogError};

impl Catalog {
    /// Every pair of people the user said are two people, as (smaller id, larger id).
    pub fn not_same(&self) -> Result<HashSet<(i64, i64)>, CatalogError> {
        let mut st = self.conn.prepare("SELECT a, b FROM not_same").map_err(|e| self.sql_err(e))?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.sql_err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql_err(e))
    }

    /// Remembers that people `a` and `b` are not the same person (the answer "No" to "Is this
    /// the same person as …?"). Undone by [`Catalog::undo`].
    pub fn mark_not_same(&mut self, a: i64, b: i64) -> Result<Undo, CatalogError> {
        if a == b {
            return Err(CatalogError::Invalid("a person is the same person as themselves".into()));
        }
        let (lo, hi) = (a.min(b), a.max(b));
        let path = self.path.clone();
        let what = format!("{} and {} are two people", self.person_label(a)?, self.person_label(b)?);
        // only the pair changes: undo takes it away and leaves the people as they are then
        let (mut undo, added) = self.edit(what, &[], &[], |tx| {
            tx.execute("INSERT OR IGNORE INTO not_same(a, b) VALUES (?1, ?2)", [lo, hi])
                .map_err(|error| CatalogError::Sqlite { path: path.clone(), error })
        })?;
        if added > 0 {
            undo.not_same.push((lo, hi));
        }
        Ok(undo)
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{test_photo as photo, Catalog};

    #[test]
    fn not_same_is_remembered_undone_and_carried_by_a_merge() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        cat.write_batch(&(0..3).map(|k| photo(&format!("p{k}.jpg"), &[([0.0, 0.0, 10.0, 10.0], 0.9)])).collect::<Vec<_>>()).unwrap();
        let t = cat.face_table().unwrap();
        let p: Vec<i64> = (0..3).map(|k| cat.assign_faces(&[t.face_id(k)], None, None).unwrap().1).collect();
        let u = cat.mark_not_same(p[2], p[0]).unwrap();
        assert_eq!(cat.not_same().unwrap(), [(p[0].min(p[2]), p[0].max(p[2]))].into_iter().collect());
        // asked twice: still one pair, and undoing the second answer keeps the first
        let again = cat.mark_not_same(p[0], p[2]).unwrap();
        cat.undo(&again).unwrap();
        assert_eq!(cat.not_same().unwrap().len(), 1);
        cat.undo(&u).unwrap();
        assert!(cat.not_same().unwrap().is_empty());
        assert!(cat.mark_not_same(p[1], p[1]).is_err());
        // undoing "No" leaves a rename made since
        let no = cat.mark_not_same(p[0], p[2]).unwrap();
        cat.name_person(p[0], Some("Ann")).unwrap();
        cat.undo(&no).unwrap();
        assert!(cat.not_same().unwrap().is_empty());
        assert_eq!(cat.people().unwrap().iter().find(|x| x.id == p[0]).unwrap().name.as_deref(), Some("Ann"));
        // 0 is not 2; 0 merged into 1: 1 is not 2 either, and 0's own pair is gone; undoing the
        // merge puts the pairs back as they were
        cat.mark_not_same(p[0], p[2]).unwrap();
        let before = cat.not_same().unwrap();
        let merge = cat.merge_people(p[0], p[1]).unwrap();
        assert_eq!(cat.not_same().unwrap(), [(p[1].min(p[2]), p[1].max(p[2]))].into_iter().collect());
        cat.undo(&merge).unwrap();
        assert_eq!(cat.not_same().unwrap(), before);
    }
}
