//! What the app and the searches read: photos, the faces with their embeddings (through the
//! face snapshot beside the catalog), thumbnails and chips.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::OptionalExtension;

use super::{blob_f32, face_table, Catalog, CatalogError, FaceRow, FaceTable, PhotoInfo, Status};
use crate::pipeline::all_finite;

/// What [`Catalog::photos`] reads: all of it in the `photos_list` index.
const PHOTOS_SQL: &str = "SELECT id, path, width, height, status, reason, mtime_ns FROM photos ORDER BY path";
/// What [`Catalog::face_table`] reads: all of it in the `faces_list` index.
const FACES_SQL: &str =
    "SELECT f.id, f.photo_id, f.idx, f.x, f.y, f.w, f.h, f.embedding, f.score FROM faces f JOIN photos p ON p.id = f.photo_id
                 WHERE f.photo_id NOT IN (SELECT photo_id FROM pending_embed) ORDER BY p.path, f.idx";

impl Catalog {
    /// When each photo that records it was taken, by photo id (`photo::taken::Taken` text).
    pub fn dates(&self) -> Result<HashMap<i64, String>, CatalogError> {
        let e = |source| self.sql_err(source);
        let mut st = self.conn.prepare("SELECT photo_id, taken FROM taken").map_err(e)?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(e)?;
        rows.collect::<Result<_, _>>().map_err(e)
    }

    /// Photos (id, path, (width, height)) whose metadata is still to be read (indexed before
    /// dates or regions were kept, or their sidecars changed).
    #[allow(clippy::type_complexity)]
    pub fn dates_unread(&self) -> Result<Vec<(i64, Vec<u8>, (u32, u32))>, CatalogError> {
        let e = |source| self.sql_err(source);
        let mut st = self
            .conn
            .prepare("SELECT p.id, p.path, p.width, p.height FROM dates_unread d JOIN photos p ON p.id = d.photo_id ORDER BY p.path")
            .map_err(e)?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, (r.get(2)?, r.get(3)?)))).map_err(e)?;
        rows.collect::<Result<_, _>>().map_err(e)
    }

    /// Every photo, ordered by path.
    pub fn photos(&self) -> Result<Vec<PhotoInfo>, CatalogError> {
        let mut st = self.conn.prepare(PHOTOS_SQL).map_err(|e| self.sql_err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(PhotoInfo {
                    id: r.get(0)?,
                    path: r.get(1)?,
                    width: r.get(2)?,
                    height: r.get(3)?,
                    status: Status::parse(&r.get::<_, String>(4)?),
                    reason: r.get(5)?,
                    mtime_ns: r.get(6)?,
                })
            })
            .map_err(|e| self.sql_err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql_err(e))
    }

    /// Where the face snapshot of this catalog lives (beside it).
    pub fn faces_snapshot_path(&self) -> PathBuf {
        self.path.with_extension("faces")
    }

    /// All faces with their embeddings, in (photo path, face index) order. Read from the face
    /// snapshot beside the catalog when it is current (one sequential read of the codes; exact
    /// embeddings stay on disk), otherwise from the catalog, writing a new snapshot on the way
    /// (or, where it cannot be written, holding the embeddings in memory).
    pub fn face_table(&self) -> Result<FaceTable, CatalogError> {
        let e = |source| self.sql_err(source);
        // one read transaction: the generation and the rows come from the same commit
        let tx = if self.conn.is_autocommit() {
            Some(rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Deferred).map_err(e)?)
        } else {
            None
        };
        let stamp = face_table::Stamp {
            catalog_id: self.meta("catalog_id")?.unwrap_or_default(),
            generation: self.meta("faces_generation")?.and_then(|g| g.parse().ok()).unwrap_or_default(),
        };
        let snapshot = self.faces_snapshot_path();
        match face_table::read_snapshot(&snapshot, &stamp) {
            Ok(Some(t)) => return Ok(t),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, snapshot = %snapshot.display(), "face snapshot unreadable; reading the catalog"),
        }
        let t = match self.read_faces(Some((&snapshot, stamp))) {
            Ok(t) => t,
            Err(FacesError::Snapshot(error)) => {
                if error.kind() == std::io::ErrorKind::WouldBlock {
                    tracing::debug!(%error, snapshot = %snapshot.display(), "keeping the faces in memory");
                } else {
                    tracing::warn!(%error, snapshot = %snapshot.display(), "cannot write the face snapshot; keeping the faces in memory");
                }
                self.read_faces(None).map_err(|e| match e {
                    FacesError::Catalog(c) => c,
                    FacesError::Snapshot(error) => CatalogError::Io { path: snapshot.clone(), error },
                })?
            }
            Err(FacesError::Catalog(c)) => return Err(c),
        };
        drop(tx);
        if t.skipped_non_finite() > 0 {
            tracing::warn!(faces = t.skipped_non_finite(), catalog = %self.path.display(), "faces with a non-finite embedding left out");
        }
        Ok(t)
    }

    /// The faces from the catalog's rows, into a snapshot at `snapshot` or into memory.
    fn read_faces(&self, snapshot: Option<(&Path, face_table::Stamp)>) -> Result<FaceTable, FacesError> {
        let c = |source| FacesError::Catalog(self.sql_err(source));
        let mut st = self.conn.prepare(FACES_SQL).map_err(c)?;
        let mut memory: Option<FaceTable> = None;
        let mut writer: Option<face_table::SnapshotWriter> = None;
        let mut skipped = 0;
        let mut rows = st.query([]).map_err(c)?;
        while let Some(r) = rows.next().map_err(c)? {
            let emb: Vec<u8> = r.get(7).map_err(c)?;
            let dim = match (&memory, &writer) {
                (Some(t), _) => t.dim(),
                (_, Some(w)) => w.dim(),
                (None, None) => emb.len() / 4,
            };
            if emb.len() != dim * 4 || dim == 0 {
                continue;
            }
            let v = blob_f32(&emb);
            if !all_finite(&v) {
                // written by an older build or damaged: never rank it
                skipped += 1;
                continue;
            }
            let b: [f64; 4] = [r.get(3).map_err(c)?, r.get(4).map_err(c)?, r.get(5).map_err(c)?, r.get(6).map_err(c)?];
            let row = FaceRow {
                face_id: r.get(0).map_err(c)?,
                photo_id: r.get(1).map_err(c)?,
                index: r.get::<_, i64>(2).map_err(c)? as u32,
                bbox: b.map(|v| v as f32),
                score: r.get::<_, f64>(8).map_err(c)? as f32,
            };
            match (&snapshot, &mut writer, &mut memory) {
                (_, Some(w), _) => w.push(row, &v).map_err(FacesError::Snapshot)?,
                (_, _, Some(t)) => t.push(row, &v),
                (Some((path, stamp)), None, None) => {
                    let mut w = face_table::SnapshotWriter::create(path, stamp.clone(), dim).map_err(FacesError::Snapshot)?;
                    w.push(row, &v).map_err(FacesError::Snapshot)?;
                    writer = Some(w);
                }
                (None, None, None) => {
                    let mut t = FaceTable::new(dim);
                    t.push(row, &v);
                    memory = Some(t);
                }
            }
        }
        match writer {
            Some(w) => w.finish(skipped).map_err(FacesError::Snapshot),
            None => {
                let mut t = memory.unwrap_or_default();
                t.skipped_non_finite = skipped;
                Ok(t)
            }
        }
    }

    pub fn thumbnail(&self, photo_id: i64) -> Result<Option<Vec<u8>>, CatalogError> {
        self.conn
            .query_row("SELECT thumbnail FROM photos WHERE id=?1", [photo_id], |r| r.get(0))
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.sql_err(e))
    }

    /// A photo's path relative to the folder.
    pub fn photo_path(&self, photo_id: i64) -> Result<Option<Vec<u8>>, CatalogError> {
        self.conn.query_row("SELECT path FROM photos WHERE id=?1", [photo_id], |r| r.get(0)).optional().map_err(|e| self.sql_err(e))
    }

    pub fn chip(&self, face_id: i64) -> Result<Option<Vec<u8>>, CatalogError> {
        self.conn
            .query_row("SELECT chip FROM faces WHERE id=?1", [face_id], |r| r.get(0))
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.sql_err(e))
    }
}

/// Why reading the faces failed: the catalog, or only the snapshot being written.
enum FacesError {
    Catalog(CatalogError),
    Snapshot(std::io::Error),
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::catalog::{test_photo, Identity};

    /// The face table comes back in (path, face index) order, whatever order the rows were
    /// written in.
    #[test]
    fn face_table_is_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        // face k of each photo has its box at x = k (and embedding [1, k])
        let photo = |path: &str, faces: usize| test_photo(path, &(0..faces).map(|k| ([k as f32, 0.0, 1.0, 1.0], 0.9)).collect::<Vec<_>>());
        cat.write_batch(&[photo("c/z.jpg", 2), photo("a.jpg", 1)]).unwrap();
        cat.write_batch(&[photo("b/y.jpg", 3), photo("aa.jpg", 0)]).unwrap();
        let t = cat.face_table().unwrap();
        let paths: HashMap<i64, Vec<u8>> = cat.photos().unwrap().into_iter().map(|p| (p.id, p.path)).collect();
        let got: Vec<(String, u32, f32)> = (0..t.len())
            .map(|i| (String::from_utf8_lossy(&paths[&t.photo_id(i)]).into_owned(), t.face_index(i), t.embedding(i)[1]))
            .collect();
        let want: Vec<(String, u32, f32)> = [("a.jpg", 0), ("b/y.jpg", 0), ("b/y.jpg", 1), ("b/y.jpg", 2), ("c/z.jpg", 0), ("c/z.jpg", 1)]
            .iter()
            .map(|&(p, k)| (p.to_string(), k, k as f32))
            .collect();
        assert_eq!(got, want);
    }

    /// The face snapshot is written on the first read and used while nothing changed; every
    /// kind of change (new faces, a rename, a removal, faces queued for new embeddings) moves
    /// the generation on, and the next read equals a read of the catalog's rows.
    #[test]
    fn the_face_snapshot_follows_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        let snapshot = cat.faces_snapshot_path();
        let photo = |path: &str, faces: usize| test_photo(path, &(0..faces).map(|k| ([k as f32, 0.0, 1.0, 1.0], 0.9)).collect::<Vec<_>>());
        cat.write_batch(&[photo("b.jpg", 2), photo("a.jpg", 1)]).unwrap();
        let rows = |t: &FaceTable| -> Vec<(FaceRow, Vec<f32>)> { (0..t.len()).map(|i| (*t.row(i), t.embedding(i))).collect() };
        let check = |cat: &Catalog| {
            let t = cat.face_table().unwrap();
            let truth = cat.read_faces(None).map_err(|_| ()).unwrap();
            assert_eq!(rows(&t), rows(&truth));
            assert!(snapshot.exists());
            cat.meta("faces_generation").unwrap().unwrap()
        };
        let modified = || std::fs::metadata(&snapshot).unwrap().modified().unwrap();
        let g0 = check(&cat);
        let (m0, g) = (modified(), check(&cat));
        assert_eq!((g.as_str(), modified()), (g0.as_str(), m0), "unchanged: the snapshot is read, not written");
        let mut seen = vec![g0];
        let ids: HashMap<Vec<u8>, i64> = cat.photos().unwrap().into_iter().map(|p| (p.path, p.id)).collect();
        cat.write_batch(&[photo("c.jpg", 1)]).unwrap();
        seen.push(check(&cat));
        cat.rename(ids[&b"a.jpg".to_vec()], b"d.jpg", 1, 1).unwrap();
        seen.push(check(&cat));
        cat.remove(&[ids[&b"b.jpg".to_vec()]]).unwrap();
        seen.push(check(&cat));
        let id = |emb: &str| Identity { detection: "det".into(), embedding: emb.into(), legacy: String::new(), before_upscale: None };
        cat.ensure_identity(&id("emb")).unwrap();
        cat.ensure_identity(&id("emb2")).unwrap();
        seen.push(check(&cat));
        assert_eq!(cat.face_table().unwrap().len(), 0, "faces waiting for new embeddings are not searched");
        let mut distinct = seen.clone();
        distinct.dedup();
        assert_eq!(distinct, seen, "every change moved the generation: {seen:?}");
        // another catalog at the same path never takes the old snapshot for its own
        drop(cat);
        std::fs::remove_file(dir.path().join("c.sqlite")).unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        cat.write_batch(&[photo("e.jpg", 3)]).unwrap();
        assert_eq!(cat.face_table().unwrap().len(), 3);
    }

    /// Listing photos and reading faces touch only their covering indexes, never the rows
    /// with thumbnails and chips (a column added to either query without its index fails here).
    #[test]
    fn listings_read_covering_indexes_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        cat.write_batch(&[test_photo("a.jpg", &[([0.0; 4], 0.9)])]).unwrap();
        let plan = |sql: &str| -> String {
            let mut st = cat.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            st.query_map([], |r| r.get::<_, String>(3)).unwrap().map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
        };
        assert!(plan(PHOTOS_SQL).contains("COVERING INDEX photos_list"), "{}", plan(PHOTOS_SQL));
        let faces = plan(FACES_SQL);
        assert!(faces.contains("COVERING INDEX faces_list") && faces.contains("SCAN p USING COVERING INDEX"), "{faces}");
    }
}
