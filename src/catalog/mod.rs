//! The photo catalog: one SQLite database per indexed folder holding photos, faces,
//! embeddings and thumbnails, updated incrementally and crash-safely.

pub mod codes;
pub mod face_table;
pub mod grouping;
pub mod names;
pub mod people;
mod questions;
mod reads;
pub mod regions;
pub mod schema;
mod undo;
mod writes;

pub use face_table::{FaceRow, FaceTable};

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use writes::{Identity, MetadataRead};

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
        taken: None,
        regions: Vec::new(),
        sidecar_sig: 0,
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
    /// When it was taken, as `photo::taken::Taken` writes it; `None` when the photo records nothing.
    pub taken: Option<String>,
    /// Named face regions other tools wrote into its metadata (`photo::regions`).
    pub regions: Vec<crate::photo::regions::Region>,
    /// The signature of the sidecars its metadata was read with (0: none; see
    /// `index::sidecar_sig`).
    pub sidecar_sig: i64,
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

pub(crate) fn f32_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn blob_f32(b: &[u8]) -> Vec<f32> {
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
    let canon = folder.canonicalize().map_err(|error| CatalogError::Folder { path: folder.to_path_buf(), error })?;
    let hash = crate::util::digest::sha256_hex(&path_bytes(&canon));
    Ok(dir.join(&hash[..16]).join("catalog.sqlite"))
}

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
}
