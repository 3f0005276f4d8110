//! What an index run writes: the pipeline identity, processed photos with their faces (face
//! ids kept by box overlap), re-embeddings, renames and removals, each in one transaction.

use std::collections::HashMap;

use rusqlite::params;

use super::{blob_f32, f32_blob, match_faces, Catalog, CatalogError, IdentityChange, PendingPhoto, PhotoRecord, PhotoState};
use crate::pipeline::all_finite;

/// What the stored faces and embeddings depend on, as [`Catalog::ensure_identity`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The detector and the settings that move faces.
    pub detection: String,
    /// The embedder and flip fusion.
    pub embedding: String,
    /// The single identity string catalogs of schema 2 kept.
    pub legacy: String,
    /// The detection identity catalogs wrote before the upscale policy, and the photo side
    /// under which their faces must be found again.
    pub before_upscale: Option<(String, u32)>,
}

/// A photo's metadata read again (see [`Catalog::set_metadata`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataRead {
    pub id: i64,
    pub taken: Option<String>,
    pub regions: Vec<crate::photo::regions::Region>,
    pub sidecar_sig: i64,
}

impl Catalog {
    /// Makes sure the stored faces come from `detection` (detector digest + settings) and their
    /// embeddings from `embedding` (embedder digest + flip fusion). A new detection identity
    /// marks every photo changed so it is processed again (its new faces take over the old
    /// faces' ids and people by box overlap); a new embedding identity only queues the
    /// photos with faces for re-embedding from their stored landmarks (see
    /// [`Catalog::pending_embeddings`]): boxes, thumbnails and chips stay. `legacy` is the single
    /// identity string older catalogs kept under `pipeline`; when it matches, nothing changes.
    /// A catalog whose detection identity is `before_upscale.0` (written before the upscale
    /// policy) holds the same faces for every photo of at least `before_upscale.1` pixels: only
    /// smaller photos are detected again, not the whole library.
    pub fn ensure_identity(&mut self, id: &Identity) -> Result<IdentityChange, CatalogError> {
        if let Some((old, below)) = &id.before_upscale {
            if self.meta("detection")?.is_some_and(|d| d == *old) {
                let n = self.redetect_smaller_than(*below, &id.detection)?;
                tracing::info!(photos = n, "small photos queued for detection at their own size");
            }
        }
        let (detection, embedding, legacy) = (id.detection.as_str(), id.embedding.as_str(), id.legacy.as_str());
        let path = self.path.clone();
        let e = |error| CatalogError::Sqlite { path: path.clone(), error };
        let (cur_det, cur_emb) = match (self.meta("detection")?, self.meta("embedding")?) {
            (Some(d), Some(m)) => (Some(d), Some(m)),
            _ if self.meta("pipeline")?.as_deref() == Some(legacy) => (Some(detection.to_string()), Some(embedding.to_string())),
            _ => (None, None),
        };
        let had_photos = self.photo_count()? > 0;
        let tx = self.conn.transaction().map_err(e)?;
        let set = "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value=excluded.value";
        let change = if cur_det.as_deref() != Some(detection) {
            tx.execute_batch("UPDATE photos SET mtime_ns = -1").map_err(e)?;
            if cur_emb.as_deref() != Some(embedding) {
                // hide embeddings of the old embedder from searches until the photo is processed
                tx.execute_batch("INSERT OR IGNORE INTO pending_embed(photo_id) SELECT DISTINCT photo_id FROM faces").map_err(e)?;
            }
            if had_photos {
                IdentityChange::Rebuilt
            } else {
                IdentityChange::Same
            }
        } else if cur_emb.as_deref() != Some(embedding) {
            let n = tx.execute("INSERT OR IGNORE INTO pending_embed(photo_id) SELECT DISTINCT photo_id FROM faces", []).map_err(e)?;
            IdentityChange::Reembed(n)
        } else {
            IdentityChange::Same
        };
        tx.execute(set, ["detection", detection]).map_err(e)?;
        tx.execute(set, ["embedding", embedding]).map_err(e)?;
        tx.execute("DELETE FROM meta WHERE key='pipeline'", []).map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(change)
    }

    /// Marks every photo whose longer side is under `side` pixels (and every photo never read)
    /// changed, so the next run detects it again, and records `detection` as the catalog's
    /// detection identity, in one transaction. Returns the number of photos marked.
    fn redetect_smaller_than(&mut self, side: u32, detection: &str) -> Result<usize, CatalogError> {
        let path = self.path.clone();
        let e = |error| CatalogError::Sqlite { path: path.clone(), error };
        let tx = self.conn.transaction().map_err(e)?;
        let n = tx.execute("UPDATE photos SET mtime_ns = -1 WHERE max(width, height) < ?1", [side as i64]).map_err(e)?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('detection', ?1) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            [detection],
        )
        .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(n)
    }

    /// Photos whose faces wait for new embeddings: (photo id, path, [(face id, landmarks)]).
    /// Photos marked changed are left out: they are processed again from the file anyway.
    pub fn pending_embeddings(&self) -> Result<Vec<PendingPhoto>, CatalogError> {
        let mut st = self
            .conn
            .prepare("SELECT p.id, p.path, f.id, f.landmarks FROM pending_embed q JOIN photos p ON p.id = q.photo_id JOIN faces f ON f.photo_id = p.id
                 WHERE p.mtime_ns != -1 ORDER BY p.path, f.idx")
            .map_err(|e| self.sql_err(e))?;
        let mut out: Vec<PendingPhoto> = Vec::new();
        let mut rows = st.query([]).map_err(|e| self.sql_err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.sql_err(e))? {
            let id: i64 = r.get(0).map_err(|e| self.sql_err(e))?;
            let face: i64 = r.get(2).map_err(|e| self.sql_err(e))?;
            let lm = blob_f32(&r.get::<_, Vec<u8>>(3).map_err(|e| self.sql_err(e))?);
            let mut landmarks = [[0f32; 2]; 5];
            for (i, p) in landmarks.iter_mut().enumerate() {
                *p = [lm.get(2 * i).copied().unwrap_or(0.0), lm.get(2 * i + 1).copied().unwrap_or(0.0)];
            }
            match out.last_mut() {
                Some(last) if last.photo_id == id => last.faces.push((face, landmarks)),
                _ => out.push(PendingPhoto { photo_id: id, path: r.get(1).map_err(|e| self.sql_err(e))?, faces: vec![(face, landmarks)] }),
            }
        }
        Ok(out)
    }

    /// Stores new embeddings for faces of pending photos, and takes those photos off the queue
    /// (one transaction). A photo in `retry` could not be read: it is marked changed, so the
    /// next index processes it again from the file.
    pub fn write_embeddings(&mut self, faces: &[(i64, Vec<f32>)], done: &[i64], retry: &[i64]) -> Result<(), CatalogError> {
        if let Some((id, _)) = faces.iter().find(|(_, e)| !all_finite(e)) {
            return Err(CatalogError::Invalid(format!("face {id}: non-finite embedding")));
        }
        let path = self.path.clone();
        let e = |error| CatalogError::Sqlite { path: path.clone(), error };
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut up = tx.prepare_cached("UPDATE faces SET embedding=?1 WHERE id=?2").map_err(e)?;
            let mut ungrouped = tx
                .prepare_cached("INSERT OR IGNORE INTO ungrouped(face_id) SELECT ?1 WHERE EXISTS (SELECT 1 FROM faces WHERE id=?1)")
                .map_err(e)?;
            for (id, emb) in faces {
                up.execute(params![f32_blob(emb), id]).map_err(e)?;
                // a new embedding is grouped again (where the face is in no person)
                ungrouped.execute([id]).map_err(e)?;
            }
            let mut del = tx.prepare_cached("DELETE FROM pending_embed WHERE photo_id=?1").map_err(e)?;
            let mut changed = tx.prepare_cached("UPDATE photos SET mtime_ns=-1 WHERE id=?1").map_err(e)?;
            for id in done.iter().chain(retry) {
                del.execute([id]).map_err(e)?;
            }
            for id in retry {
                changed.execute([id]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    pub fn photo_count(&self) -> Result<usize, CatalogError> {
        self.conn.query_row("SELECT count(*) FROM photos", [], |r| r.get::<_, i64>(0)).map(|n| n as usize).map_err(|e| self.sql_err(e))
    }

    pub fn face_count(&self) -> Result<usize, CatalogError> {
        self.conn.query_row("SELECT count(*) FROM faces", [], |r| r.get::<_, i64>(0)).map(|n| n as usize).map_err(|e| self.sql_err(e))
    }

    /// Path -> state of every photo row.
    pub fn states(&self) -> Result<HashMap<Vec<u8>, PhotoState>, CatalogError> {
        let mut st = self.conn.prepare("SELECT path, id, size, mtime_ns, fingerprint FROM photos").map_err(|e| self.sql_err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    PhotoState { id: r.get(1)?, size: r.get::<_, i64>(2)? as u64, mtime_ns: r.get(3)?, fingerprint: r.get(4)? },
                ))
            })
            .map_err(|e| self.sql_err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql_err(e))
    }

    /// Writes processed photos in one transaction; a crash before the commit leaves the catalog
    /// as it was. A photo processed again keeps its face ids (and so its people, confirmations
    /// and rejections) where a new face overlaps an old one by IoU > [`KEEP_FACE_IOU`]; old faces
    /// without a match go.
    /// Writes photos with their faces in one transaction. A face whose embedding or box is not
    /// finite is refused (nothing of the batch is written): a NaN must never reach a ranking.
    pub fn write_batch(&mut self, photos: &[PhotoRecord]) -> Result<(), CatalogError> {
        for p in photos {
            for (i, f) in p.faces.iter().enumerate() {
                if !all_finite(&f.embedding) || !all_finite(&f.bbox) {
                    return Err(CatalogError::Invalid(format!(
                        "{}: face {i} has a non-finite embedding or box",
                        String::from_utf8_lossy(&p.path)
                    )));
                }
            }
        }
        let path = self.path.clone();
        let e = |source| CatalogError::Sqlite { path: path.clone(), error: source };
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut up = tx
                .prepare_cached(
                    "INSERT INTO photos(path, size, mtime_ns, fingerprint, width, height, status, reason, thumbnail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns,
                       fingerprint=excluded.fingerprint, width=excluded.width, height=excluded.height,
                       status=excluded.status, reason=excluded.reason, thumbnail=excluded.thumbnail
                     RETURNING id",
                )
                .map_err(e)?;
            let mut old = tx.prepare_cached("SELECT id, x, y, w, h FROM faces WHERE photo_id=?1").map_err(e)?;
            // free the (photo, idx) slots before reusing rows
            let mut park = tx.prepare_cached("UPDATE faces SET idx = -1 - idx WHERE photo_id=?1").map_err(e)?;
            let mut del = tx.prepare_cached("DELETE FROM faces WHERE id=?1").map_err(e)?;
            let mut unqueue = tx.prepare_cached("DELETE FROM pending_embed WHERE photo_id=?1").map_err(e)?;
            let mut ins = tx
                .prepare_cached("INSERT INTO faces(photo_id, idx, x, y, w, h, score, landmarks, embedding, chip) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")
                .map_err(e)?;
            let mut ungrouped = tx.prepare_cached("INSERT OR IGNORE INTO ungrouped(face_id) VALUES (?1)").map_err(e)?;
            let mut taken = tx.prepare_cached("INSERT OR REPLACE INTO taken(photo_id, taken) VALUES (?1, ?2)").map_err(e)?;
            let mut untaken = tx.prepare_cached("DELETE FROM taken WHERE photo_id=?1").map_err(e)?;
            let mut read = tx.prepare_cached("DELETE FROM dates_unread WHERE photo_id=?1").map_err(e)?;
            let mut reuse = tx
                .prepare_cached(
                    "UPDATE faces SET idx=?2, x=?3, y=?4, w=?5, h=?6, score=?7, landmarks=?8, embedding=?9, chip=?10 WHERE id=?1",
                )
                .map_err(e)?;
            for p in photos {
                let id: i64 = up
                    .query_row(
                        params![
                            p.path,
                            p.size as i64,
                            p.mtime_ns,
                            p.fingerprint,
                            p.width,
                            p.height,
                            p.status.as_str(),
                            p.reason,
                            p.thumbnail
                        ],
                        |r| r.get(0),
                    )
                    .map_err(e)?;
                match &p.taken {
                    Some(t) => taken.execute(params![id, t]).map_err(e)?,
                    None => untaken.execute([id]).map_err(e)?,
                };
                read.execute([id]).map_err(e)?;
                super::regions::set_sig(&tx, id, p.sidecar_sig).map_err(e)?;
                let before: Vec<(i64, [f32; 4])> = old
                    .query_map([id], |r| {
                        Ok((
                            r.get(0)?,
                            [
                                r.get::<_, f64>(1)? as f32,
                                r.get::<_, f64>(2)? as f32,
                                r.get::<_, f64>(3)? as f32,
                                r.get::<_, f64>(4)? as f32,
                            ],
                        ))
                    })
                    .map_err(e)?
                    .collect::<Result<_, _>>()
                    .map_err(e)?;
                let new_boxes: Vec<[f32; 4]> = p.faces.iter().map(|f| f.bbox).collect();
                let matched = match_faces(&before.iter().map(|b| b.1).collect::<Vec<_>>(), &new_boxes);
                park.execute([id]).map_err(e)?;
                for (k, (old_id, _)) in before.iter().enumerate() {
                    if !matched.contains(&Some(k)) {
                        del.execute([old_id]).map_err(e)?;
                    }
                }
                unqueue.execute([id]).map_err(e)?;
                for (i, f) in p.faces.iter().enumerate() {
                    let b = f.bbox;
                    let (lm, emb) = (f32_blob(&f.landmarks), f32_blob(&f.embedding));
                    let face = match matched[i] {
                        Some(k) => {
                            reuse.execute(params![before[k].0, i as i64, b[0], b[1], b[2], b[3], f.score, lm, emb, f.chip]).map_err(e)?;
                            before[k].0
                        }
                        None => {
                            ins.execute(params![id, i as i64, b[0], b[1], b[2], b[3], f.score, lm, emb, f.chip]).map_err(e)?;
                            tx.last_insert_rowid()
                        }
                    };
                    // the next grouping looks at it
                    ungrouped.execute([face]).map_err(e)?;
                }
                // after the faces: a region's face may be one kept above
                super::regions::replace_regions(&tx, id, &p.regions, true).map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// Records the metadata read again for photos (when they were taken, `None`: they record
    /// nothing; their named regions; the sidecar signature it was read with): their metadata is
    /// read.
    pub fn set_metadata(&mut self, read: &[MetadataRead]) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let e = |source| CatalogError::Sqlite { path: path.clone(), error: source };
        let tx = self.conn.transaction().map_err(e)?;
        for m in read {
            let exists: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM photos WHERE id=?1)", [m.id], |r| r.get(0)).map_err(e)?;
            if exists {
                match &m.taken {
                    Some(t) => tx.execute("INSERT OR REPLACE INTO taken(photo_id, taken) VALUES (?1, ?2)", params![m.id, t]),
                    None => tx.execute("DELETE FROM taken WHERE photo_id=?1", [m.id]),
                }
                .map_err(e)?;
                super::regions::replace_regions(&tx, m.id, &m.regions, false).map_err(e)?;
                super::regions::set_sig(&tx, m.id, m.sidecar_sig).map_err(e)?;
            }
            tx.execute("DELETE FROM dates_unread WHERE photo_id=?1", [m.id]).map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    /// Records that photo `id` now lives at `path` (a rename or move; faces are kept).
    pub fn rename(&mut self, id: i64, path: &[u8], size: u64, mtime_ns: i64) -> Result<(), CatalogError> {
        self.conn
            .execute("UPDATE photos SET path=?1, size=?2, mtime_ns=?3 WHERE id=?4", params![path, size as i64, mtime_ns, id])
            .map(|_| ())
            .map_err(|e| self.sql_err(e))
    }

    /// Removes photos (and their faces) in one transaction.
    pub fn remove(&mut self, ids: &[i64]) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let e = |source| CatalogError::Sqlite { path: path.clone(), error: source };
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut st = tx.prepare_cached("DELETE FROM photos WHERE id=?1").map_err(e)?;
            for id in ids {
                st.execute([id]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }
}
