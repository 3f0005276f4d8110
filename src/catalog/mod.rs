//! The photo catalog: one SQLite database per indexed folder holding photos, faces,
//! embeddings and thumbnails, updated incrementally and crash-safely.

pub mod codes;
pub mod face_table;
pub mod indexer;
pub mod names;
pub mod people;
pub mod scan;
pub mod schema;

pub use face_table::{FaceRow, FaceTable};

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::pipeline::all_finite;

pub use schema::{APPLICATION_ID, SCHEMA_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog {path} is busy: another `facefind index` is writing to it; wait for it to finish")]
    Busy { path: PathBuf },
    // The cause is part of the message (and deliberately not a `source`, so it is printed once).
    #[error("catalog {path}: {error}")]
    Sqlite { path: PathBuf, error: rusqlite::Error },
    #[error("catalog {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("cannot read folder {path}: {error}")]
    Folder { path: PathBuf, error: std::io::Error },
    #[error("catalog {path} was written by a newer facefind (schema {found}, this build knows {SCHEMA_VERSION})")]
    TooNew { path: PathBuf, found: i64 },
    #[error("{path} is not a facefind catalog ({what}); it was left untouched: choose another catalog path")]
    NotOurs { path: PathBuf, what: String },
    #[error("catalog {path} has {found}; nothing was changed. `facefind index FOLDER --catalog {path} --rebuild` rebuilds it, keeping people, names and rejections wherever their faces are found again")]
    UnreadableVersion { path: PathBuf, found: String },
    #[error("no cache directory on this system; pass --catalog PATH")]
    NoCacheDir,
    #[error("no person {0:?} in this catalog (see `facefind people FOLDER`)")]
    NoPerson(String),
    #[error("no face {0} in this catalog (it may have gone in a re-index)")]
    NoFace(i64),
    #[error("{0}")]
    Invalid(String),
}

/// What a photo row says about its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Faces,
    NoFace,
    Unsupported,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Faces => "faces",
            Status::NoFace => "no face",
            Status::Unsupported => "unsupported",
            Status::Error => "error",
        }
    }
    fn parse(s: &str) -> Status {
        match s {
            "faces" => Status::Faces,
            "no face" => Status::NoFace,
            "unsupported" => Status::Unsupported,
            _ => Status::Error,
        }
    }
}

/// One face as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceRecord {
    pub bbox: [f32; 4],
    pub score: f32,
    pub landmarks: [f32; 10],
    pub embedding: Vec<f32>,
    /// ~96 px JPEG of the face.
    pub chip: Vec<u8>,
}

/// A stored photo for unit tests: `path`, 100x100, one face per (box, score), 2-d embeddings.
#[cfg(test)]
pub(crate) fn test_photo(path: &str, faces: &[([f32; 4], f32)]) -> PhotoRecord {
    PhotoRecord {
        path: path.as_bytes().to_vec(),
        size: 1,
        mtime_ns: 1,
        fingerprint: path.as_bytes().to_vec(),
        width: 100,
        height: 100,
        status: Status::Faces,
        reason: None,
        thumbnail: Vec::new(),
        faces: faces
            .iter()
            .map(|&(bbox, score)| FaceRecord { bbox, score, landmarks: [0.0; 10], embedding: vec![1.0, bbox[0]], chip: Vec::new() })
            .collect(),
    }
}

/// One photo as stored (faces included) — what the indexer writes.
#[derive(Debug, Clone)]
pub struct PhotoRecord {
    /// Path relative to the indexed folder, as raw bytes (file names need not be UTF-8).
    pub path: Vec<u8>,
    pub size: u64,
    pub mtime_ns: i64,
    pub fingerprint: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub status: Status,
    pub reason: Option<String>,
    /// ~256 px JPEG.
    pub thumbnail: Vec<u8>,
    pub faces: Vec<FaceRecord>,
}

/// The part of a photo row that decides whether a file must be processed again.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoState {
    pub id: i64,
    pub size: u64,
    pub mtime_ns: i64,
    pub fingerprint: Vec<u8>,
}

/// A photo without its faces, for listing.
#[derive(Debug, Clone)]
pub struct PhotoInfo {
    pub id: i64,
    pub path: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub status: Status,
    pub reason: Option<String>,
    pub mtime_ns: i64,
}

/// How [`Catalog::ensure_identity`] found the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityChange {
    Same,
    /// The detector or its settings changed: every photo will be indexed again.
    Rebuilt,
    /// The embedder changed: this many photos wait for new embeddings.
    Reembed(usize),
}

/// A face found again when its photo is processed again keeps its id above this box overlap.
pub const KEEP_FACE_IOU: f32 = 0.5;

/// For each new box, the old box it takes over (greedy by overlap, IoU > [`KEEP_FACE_IOU`],
/// each old box at most once).
pub fn match_faces(old: &[[f32; 4]], new: &[[f32; 4]]) -> Vec<Option<usize>> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, n) in new.iter().enumerate() {
        for (k, o) in old.iter().enumerate() {
            let v = crate::pipeline::detector::iou(o, n);
            if v > KEEP_FACE_IOU {
                pairs.push((v, i, k));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut out = vec![None; new.len()];
    let mut used = vec![false; old.len()];
    for (_, i, k) in pairs {
        if out[i].is_none() && !used[k] {
            out[i] = Some(k);
            used[k] = true;
        }
    }
    out
}

/// A photo whose faces wait for new embeddings.
#[derive(Debug, Clone)]
pub struct PendingPhoto {
    pub photo_id: i64,
    pub path: Vec<u8>,
    pub faces: Vec<(i64, [[f32; 2]; 5])>,
}

pub struct Catalog {
    conn: Connection,
    path: PathBuf,
    lock: Option<File>,
    /// What opening did that the user should hear about (a rebuilt catalog).
    notice: Option<String>,
}

/// Relative path bytes <-> OS path.
pub fn path_bytes(p: &Path) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        p.as_os_str().as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        p.to_string_lossy().replace('\\', "/").into_bytes()
    }
}

pub fn bytes_path(b: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(b))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(b).into_owned())
    }
}

fn f32_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn blob_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// `~/.cache/facefind/<16 hex of sha256(canonical folder)>/catalog.sqlite` (per platform).
pub fn default_catalog_path(folder: &Path) -> Result<PathBuf, CatalogError> {
    let dirs = directories::ProjectDirs::from("", "", "facefind").ok_or(CatalogError::NoCacheDir)?;
    catalog_path_in(dirs.cache_dir(), folder)
}

/// `<dir>/<16 hex of sha256(canonical folder)>/catalog.sqlite`: one catalog per folder under a
/// chosen catalog location.
pub fn catalog_path_in(dir: &Path, folder: &Path) -> Result<PathBuf, CatalogError> {
    use sha2::{Digest, Sha256};
    let canon = folder.canonicalize().map_err(|error| CatalogError::Folder { path: folder.to_path_buf(), error })?;
    let hash = format!("{:x}", Sha256::digest(path_bytes(&canon)));
    Ok(dir.join(&hash[..16]).join("catalog.sqlite"))
}

/// What [`Catalog::photos`] reads: all of it in the `photos_list` index.
const PHOTOS_SQL: &str = "SELECT id, path, width, height, status, reason, mtime_ns FROM photos ORDER BY path";
/// What [`Catalog::face_table`] reads: all of it in the `faces_list` index.
const FACES_SQL: &str =
    "SELECT f.id, f.photo_id, f.idx, f.x, f.y, f.w, f.h, f.embedding, f.score FROM faces f JOIN photos p ON p.id = f.photo_id
                 WHERE f.photo_id NOT IN (SELECT photo_id FROM pending_embed) ORDER BY p.path, f.idx";

impl Catalog {
    /// Opens (creating if needed) the catalog at `path`, migrating old schemas. A file that
    /// is not facefind's is refused without writing anything ([`CatalogError::NotOurs`]), and
    /// so is a catalog whose schema version cannot be read ([`CatalogError::UnreadableVersion`]).
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        Self::open_with(path, false)
    }

    /// Opens the catalog at `path` and rebuilds it: repairs a catalog whose version cannot be
    /// read and marks every photo to be indexed again; faces found again keep their ids, so
    /// people, names and rejections stay. The user's explicit choice (`index --rebuild`, the
    /// window's Rebuild button), never a side effect of opening.
    pub fn rebuild(path: &Path) -> Result<Self, CatalogError> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, rebuild: bool) -> Result<Self, CatalogError> {
        // Switching a new database to WAL takes an exclusive lock that SQLite does not wait for:
        // a second process creating the same catalog at that moment gets "database is locked".
        // Waiting a little and trying again is all it needs.
        let mut attempt = 0;
        loop {
            match Self::open_once(path, rebuild) {
                Err(CatalogError::Sqlite { error, .. })
                    if attempt < 50
                        && matches!(
                            error.sqlite_error_code(),
                            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                        ) =>
                {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                r => return r,
            }
        }
    }

    fn open_once(path: &Path, rebuild: bool) -> Result<Self, CatalogError> {
        let sql = |source| CatalogError::Sqlite { path: path.to_path_buf(), error: source };
        let found = schema::inspect(path)?;
        if let Some(dir) = path.parent().filter(|_| found == schema::Found::New) {
            std::fs::create_dir_all(dir).map_err(|error| CatalogError::Io { path: path.to_path_buf(), error })?;
        }
        let mut conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(sql)?;
        if found == schema::Found::New {
            // the mark goes first: a creation cut short leaves a file that is known as ours
            schema::claim_new(&conn).map_err(sql)?;
        }
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sql)?;
        // Every write transaction takes the write lock when it begins, where SQLite waits for
        // it (busy timeout); a deferred one that reads first and then writes is refused at once
        // ("database is locked") when another writer got in between.
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        let mut cat = Self { conn, path: path.to_path_buf(), lock: None, notice: None };
        if rebuild {
            // marking every photo while another run indexes would leave its faces unsearched
            cat.lock_for_writing()?;
        }
        cat.notice = schema::migrate(&mut cat.conn, path, rebuild)?;
        Ok(cat)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A message for the user about what opening did (the catalog had an unknown layout and was
    /// rebuilt), once: the catalog prints nothing itself, so the command line and the app say it.
    pub fn take_notice(&mut self) -> Option<String> {
        self.notice.take()
    }

    fn sql_err(&self, source: rusqlite::Error) -> CatalogError {
        CatalogError::Sqlite { path: self.path.clone(), error: source }
    }

    /// Takes the writer lock (a file beside the database). Fails with [`CatalogError::Busy`]
    /// when another process holds it.
    pub fn lock_for_writing(&mut self) -> Result<(), CatalogError> {
        if self.lock.is_some() {
            return Ok(());
        }
        let lock_path = self.path.with_extension("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| CatalogError::Io { path: lock_path.clone(), error: source })?;
        match f.try_lock() {
            Ok(()) => {
                self.lock = Some(f);
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(CatalogError::Busy { path: self.path.clone() }),
            Err(std::fs::TryLockError::Error(source)) => Err(CatalogError::Io { path: lock_path, error: source }),
        }
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, CatalogError> {
        self.conn.query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0)).optional().map_err(|e| self.sql_err(e))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), CatalogError> {
        self.conn
            .execute("INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value=excluded.value", [key, value])
            .map(|_| ())
            .map_err(|e| self.sql_err(e))
    }

    /// Makes sure the stored faces come from `detection` (detector digest + settings) and their
    /// embeddings from `embedding` (embedder digest + flip fusion). A new detection identity
    /// marks every photo changed so it is processed again (its new faces take over the old
    /// faces' ids and people by box overlap); a new embedding identity only queues the
    /// photos with faces for re-embedding from their stored landmarks (see
    /// [`Catalog::pending_embeddings`]): boxes, thumbnails and chips stay. `legacy` is the single
    /// identity string older catalogs kept under `pipeline`; when it matches, nothing changes.
    pub fn ensure_identity(&mut self, detection: &str, embedding: &str, legacy: &str) -> Result<IdentityChange, CatalogError> {
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
    pub fn redetect_smaller_than(&mut self, side: u32, detection: &str) -> Result<usize, CatalogError> {
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
            for (id, emb) in faces {
                up.execute(params![f32_blob(emb), id]).map_err(e)?;
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
                    match matched[i] {
                        Some(k) => {
                            reuse.execute(params![before[k].0, i as i64, b[0], b[1], b[2], b[3], f.score, lm, emb, f.chip]).map_err(e)?
                        }
                        None => ins.execute(params![id, i as i64, b[0], b[1], b[2], b[3], f.score, lm, emb, f.chip]).map_err(e)?,
                    };
                }
            }
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
    use super::*;

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
        cat.ensure_identity("det", "emb", "").unwrap();
        cat.ensure_identity("det", "emb2", "").unwrap();
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
