//! The catalog's schema: what makes a SQLite file facefind's, creating one, migrating older
//! layouts in place (migrations only add: they never drop what the user told us), and
//! rebuilding on the user's request.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{path_bytes, CatalogError};

/// Current schema. Versions 1–6 are migrated in place (1: no face chips, 2: no re-embedding
/// queue, 3: no people, 4: no face generation, 5: no application id and no storage rule for
/// people, 6: no "not the same person" pairs, 7: no grouping queue, 8: no capture dates, 9: no face regions from other tools). A catalog whose version cannot be read is refused, never dropped.
pub const SCHEMA_VERSION: i64 = 10;

/// `PRAGMA application_id` of every facefind catalog ("FFND"), written when it is created (and
/// into older catalogs when they are migrated): the mark that a SQLite file is ours to change.
pub const APPLICATION_ID: i32 = 0x4646_4e44;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    fingerprint BLOB NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    thumbnail BLOB
);
CREATE INDEX IF NOT EXISTS photos_fingerprint ON photos(fingerprint);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY,
    photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL,
    score REAL NOT NULL,
    landmarks BLOB NOT NULL,
    embedding BLOB NOT NULL,
    chip BLOB,
    UNIQUE(photo_id, idx)
);
CREATE INDEX IF NOT EXISTS faces_photo ON faces(photo_id);
CREATE TABLE IF NOT EXISTS pending_embed (photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE);
";

/// Schema 4: people, which face is whom (and who put it there), and who a face is not.
const PEOPLE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY,
    name TEXT,
    hidden INTEGER NOT NULL DEFAULT 0,
    cover_face INTEGER REFERENCES faces(id) ON DELETE SET NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS face_person (
    face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT NOT NULL CHECK (source IN ('auto', 'confirmed', 'user', 'imported'))
);
CREATE INDEX IF NOT EXISTS face_person_person ON face_person(person_id);
CREATE TABLE IF NOT EXISTS rejections (
    face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    PRIMARY KEY (face_id, person_id)
);
CREATE INDEX IF NOT EXISTS rejections_person ON rejections(person_id);
";

/// Schema 5: a random id for the catalog and a face generation that every change to what
/// [`super::Catalog::face_table`] reads moves on (triggers, so no write path can forget it): the face
/// snapshot beside the catalog is valid while both match. And indexes that hold everything
/// [`super::Catalog::photos`] and [`super::Catalog::face_table`] read, so listing a million photos or reading
/// their faces reads the index, not the rows with their thumbnails and chips (at 1,000,000
/// photos: photos 9 s -> 0.4 s, faces 30 s -> 11 s from a cold cache; the faces index costs
/// ~0.85 KB per face on disk).
const SCHEMA_5: &str = "
CREATE INDEX IF NOT EXISTS photos_list ON photos(path, id, width, height, status, reason, mtime_ns);
CREATE INDEX IF NOT EXISTS faces_list ON faces(photo_id, idx, id, x, y, w, h, score, embedding);
INSERT OR IGNORE INTO meta(key, value) VALUES ('faces_generation', '0');
CREATE TRIGGER IF NOT EXISTS faces_generation_insert AFTER INSERT ON faces BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'faces_generation'; END;
CREATE TRIGGER IF NOT EXISTS faces_generation_update AFTER UPDATE ON faces BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'faces_generation'; END;
CREATE TRIGGER IF NOT EXISTS faces_generation_delete AFTER DELETE ON faces BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'faces_generation'; END;
CREATE TRIGGER IF NOT EXISTS photos_generation_path AFTER UPDATE OF path ON photos BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'faces_generation'; END;
CREATE TRIGGER IF NOT EXISTS photos_generation_delete AFTER DELETE ON photos BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'faces_generation'; END;
CREATE TRIGGER IF NOT EXISTS pending_generation_insert AFTER INSERT ON pending_embed BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'faces_generation'; END;
CREATE TRIGGER IF NOT EXISTS pending_generation_delete AFTER DELETE ON pending_embed BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'faces_generation'; END;
";

/// What the storage refuses when a face would join a person who already has another face of
/// the same photo (the rule "one photo shows a person once", kept by the database itself, so
/// two writers racing cannot break it).
pub const ONE_FACE_PER_PHOTO: &str = "two faces of one photo cannot be one person";

/// Before the rule was kept by storage, two faces of one photo could end up in one person (a
/// plan made before another writer's commit). Keeps one link per (photo, person): the user's
/// over a confirmation over grouping's, then the lowest face id; the others leave the person
/// (grouping may place them elsewhere).
const ONE_FACE_PER_PHOTO_REPAIR: &str = "
DELETE FROM face_person WHERE face_id IN (
  SELECT face_id FROM (
    SELECT fp.face_id, row_number() OVER (
      PARTITION BY fp.person_id, f.photo_id
      ORDER BY CASE fp.source WHEN 'user' THEN 2 WHEN 'confirmed' THEN 1 WHEN 'imported' THEN 1 ELSE 0 END DESC, fp.face_id) AS k
    FROM face_person fp JOIN faces f ON f.id = fp.face_id)
  WHERE k > 1)";

/// Schema 6: the rule above as triggers on every write of a face's person.
const SCHEMA_6: &str = "
CREATE TRIGGER IF NOT EXISTS face_person_one_per_photo_insert BEFORE INSERT ON face_person
WHEN EXISTS (SELECT 1 FROM faces f JOIN face_person fp ON fp.face_id = f.id
             WHERE f.photo_id = (SELECT photo_id FROM faces WHERE id = NEW.face_id) AND f.id != NEW.face_id AND fp.person_id = NEW.person_id)
BEGIN SELECT RAISE(ABORT, 'two faces of one photo cannot be one person'); END;
CREATE TRIGGER IF NOT EXISTS face_person_one_per_photo_update BEFORE UPDATE OF person_id, face_id ON face_person
WHEN EXISTS (SELECT 1 FROM faces f JOIN face_person fp ON fp.face_id = f.id
             WHERE f.photo_id = (SELECT photo_id FROM faces WHERE id = NEW.face_id) AND f.id != NEW.face_id AND fp.person_id = NEW.person_id)
BEGIN SELECT RAISE(ABORT, 'two faces of one photo cannot be one person'); END;
";

/// Schema 7: pairs of people the user said are not the same person (a < b), never asked again.
const SCHEMA_7: &str = "
CREATE TABLE IF NOT EXISTS not_same (
    a INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    b INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    PRIMARY KEY (a, b),
    CHECK (a < b)
);
CREATE INDEX IF NOT EXISTS not_same_b ON not_same(b);
";

/// Schema 8: faces written since people were last grouped (grouping looks at these only; a
/// table of its own, so marking faces grouped leaves the face snapshot valid). The faces of an
/// older catalog count as grouped; a catalog never grouped is grouped whole.
const SCHEMA_8: &str = "
CREATE TABLE IF NOT EXISTS ungrouped (face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE);
";

/// Schema 9: when each photo was taken, as it records it (`photo::taken`; a photo that records
/// nothing has no row), in a table of its own (reading a million dates reads no thumbnail), and
/// the photos of an older catalog whose date is still to be read (the next index run reads them
/// once, from the head of each file).
const SCHEMA_9: &str = "
CREATE TABLE IF NOT EXISTS taken (photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE, taken TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dates_unread (photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE);
";

/// Schema 10: named face regions other tools wrote (`photo::regions`), each with the face it
/// was matched to and what came of it (`outcome` NULL: not applied yet); the sidecars each
/// photo's metadata was read with (a signature of their sizes and times: a changed sidecar is
/// read again). Faces may join a person with source 'imported' (see `FACE_PERSON_10`).
const SCHEMA_10: &str = "
CREATE TABLE IF NOT EXISTS regions (
    id INTEGER PRIMARY KEY,
    photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
    scheme TEXT NOT NULL,
    face_id INTEGER REFERENCES faces(id) ON DELETE SET NULL,
    outcome TEXT
);
CREATE INDEX IF NOT EXISTS regions_photo ON regions(photo_id);
CREATE INDEX IF NOT EXISTS regions_face ON regions(face_id);
CREATE INDEX IF NOT EXISTS regions_pending ON regions(photo_id) WHERE outcome IS NULL;
CREATE TABLE IF NOT EXISTS sidecars (photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE, sig INTEGER NOT NULL);
";

/// Before schema 10 a face's source could not be 'imported': the table is made again with the
/// wider check and every link copied (its triggers are made again after).
const FACE_PERSON_10: &str = "
CREATE TABLE face_person_10 (
    face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT NOT NULL CHECK (source IN ('auto', 'confirmed', 'user', 'imported'))
);
INSERT INTO face_person_10(face_id, person_id, source) SELECT face_id, person_id, source FROM face_person
    WHERE face_id IN (SELECT id FROM faces) AND person_id IN (SELECT id FROM people);
DROP TABLE face_person;
ALTER TABLE face_person_10 RENAME TO face_person;
CREATE INDEX IF NOT EXISTS face_person_person ON face_person(person_id);
";

/// The tables and columns by which a catalog written before the application id is known as
/// facefind's.
const OUR_COLUMNS: &[(&str, &[&str])] = &[
    ("meta", &["key", "value"]),
    ("photos", &["id", "path", "size", "mtime_ns", "fingerprint", "width", "height", "status", "thumbnail"]),
    ("faces", &["id", "photo_id", "idx", "x", "y", "w", "h", "score", "landmarks", "embedding"]),
];

/// What is at a catalog path before it is opened for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing (or an empty file): a catalog is created.
    New,
    /// A facefind catalog.
    Ours,
}

fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}

/// Decides whether the file at `path` is a facefind catalog without writing anything there
/// (no journal, WAL or shared-memory file is created): its header's application id, and for
/// catalogs made before the id, its tables. Anything else that is not empty is refused.
pub(super) fn inspect(path: &Path) -> Result<Found, CatalogError> {
    inspect_as(path, APPLICATION_ID, OUR_COLUMNS)
}

/// [`inspect`] for any of facefind's databases: `app_id` in the header, or (written before
/// the id) tables with at least `columns`.
pub fn inspect_as(path: &Path, app_id_ours: i32, columns: &[(&str, &[&str])]) -> Result<Found, CatalogError> {
    let not_ours = |what: String| CatalogError::NotOurs { path: path.to_path_buf(), what };
    let io = |error| CatalogError::Io { path: path.to_path_buf(), error };
    let meta = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::New),
        Err(e) => return Err(io(e)),
        Ok(m) => m,
    };
    if !meta.is_file() {
        return Err(not_ours("not a file".into()));
    }
    let wal_len = std::fs::metadata(wal_path(path)).map(|m| m.len()).unwrap_or(0);
    if meta.len() == 0 && wal_len == 0 {
        return Ok(Found::New);
    }
    let mut header = [0u8; 100];
    if meta.len() > 0 {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(io)?;
        if meta.len() < 100 || f.read_exact(&mut header).is_err() || &header[..16] != b"SQLite format 3\0" {
            return Err(not_ours("not a SQLite database".into()));
        }
        let app_id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
        if app_id == app_id_ours {
            return Ok(Found::Ours);
        }
        if app_id != 0 {
            return Err(not_ours(format!("a SQLite database of another program (application id {app_id:#010x})")));
        }
    }
    let shape = if wal_path(path).exists() {
        // in use (or left by a crash): look at a private copy, so not even a shared-memory
        // file is made beside it
        inspect_copy(path, columns)?
    } else {
        legacy_shape(path, columns)
    };
    match shape {
        Ok(None) => Ok(Found::Ours),
        Ok(Some(why)) => Err(not_ours(why)),
        // a copy taken while another program wrote may be torn: try again, never judge it
        Err(error)
            if matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked | rusqlite::ErrorCode::DatabaseCorrupt)
            ) =>
        {
            Err(CatalogError::Sqlite { path: path.to_path_buf(), error })
        }
        Err(error) => Err(not_ours(format!("unreadable as SQLite: {error}"))),
    }
}

/// [`legacy_shape`] of a copy of the database and its WAL in a new private temporary folder
/// (mode 0700, a random name; removed when done).
fn inspect_copy(path: &Path, columns: &[(&str, &[&str])]) -> Result<Result<Option<String>, rusqlite::Error>, CatalogError> {
    let io = |error| CatalogError::Io { path: path.to_path_buf(), error };
    let dir = tempfile::Builder::new().prefix("facefind-inspect-").tempdir().map_err(io)?;
    let copy = dir.path().join("db.sqlite");
    std::fs::copy(path, &copy).map_err(io)?;
    if let Err(error) = std::fs::copy(wal_path(path), wal_path(&copy)) {
        // the WAL went away between the look and the copy (its writer closed): the file alone
        if error.kind() != std::io::ErrorKind::NotFound {
            return Err(io(error));
        }
    }
    Ok(legacy_shape(&copy, columns))
}

/// `None` when the database at `path` has facefind's tables, else what it has instead. Opened
/// read-only and immutable (no WAL beside it to read), so SQLite creates no file at all.
fn legacy_shape(path: &Path, columns: &[(&str, &[&str])]) -> Result<Option<String>, rusqlite::Error> {
    let mut uri = String::from("file:");
    for &b in &path_bytes(path) {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str(if wal_path(path).exists() { "?mode=ro" } else { "?mode=ro&immutable=1" });
    let conn =
        Connection::open_with_flags(&uri, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let mut st = conn.prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")?;
    let tables: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    if tables.is_empty() {
        return Ok(Some("a SQLite database with no tables".into()));
    }
    for (table, columns) in columns {
        let mut st = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
        let have: Vec<String> = st.query_map([table], |r| r.get(0))?.collect::<Result<_, _>>()?;
        if let Some(c) = columns.iter().find(|c| !have.iter().any(|h| h == *c)) {
            let shown: Vec<&str> = tables.iter().take(6).map(String::as_str).collect();
            let what = if have.is_empty() { format!("no table `{table}`") } else { format!("table `{table}` has no column `{c}`") };
            return Ok(Some(format!(
                "a SQLite database of another program: {what}; its tables: {}{}",
                shown.join(", "),
                if tables.len() > 6 { ", …" } else { "" }
            )));
        }
    }
    Ok(None)
}

/// Marks a database being created as facefind's, before anything else is written to it.
pub(super) fn claim_new(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "application_id", APPLICATION_ID)
}

/// Brings the schema of a facefind catalog to [`SCHEMA_VERSION`] in one immediate transaction
/// (a second process opening it at the same time waits, then finds it done). With `rebuild`,
/// also repairs a catalog whose version is unreadable and marks every photo to be processed
/// again: faces found again keep their ids, so people, names and rejections stay. Returns a
/// message for the user about anything slow or drastic it did.
pub(super) fn migrate(conn: &mut Connection, path: &Path, rebuild: bool) -> Result<Option<String>, CatalogError> {
    let e = |error| CatalogError::Sqlite { path: path.to_path_buf(), error };
    let version_sql = "SELECT value FROM meta WHERE key='schema_version'";
    // the common case without taking the write lock: already current
    let app_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).map_err(e)?;
    let current: Option<String> = conn.query_row(version_sql, [], |r| r.get(0)).optional().unwrap_or(None);
    if !rebuild && app_id == APPLICATION_ID && current.as_deref() == Some(SCHEMA_VERSION.to_string().as_str()) {
        return Ok(None);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(e)?;
    let tables: i64 = tx.query_row("SELECT count(*) FROM sqlite_master WHERE type='table'", [], |r| r.get(0)).map_err(e)?;
    let has_meta: bool =
        tx.query_row("SELECT count(*) > 0 FROM sqlite_master WHERE type='table' AND name='meta'", [], |r| r.get(0)).map_err(e)?;
    let found: Option<String> = if has_meta { tx.query_row(version_sql, [], |r| r.get(0)).optional().map_err(e)? } else { None };
    let version: Option<i64> = found.as_deref().and_then(|v| v.trim().parse().ok());
    let mut notice = None;
    match version {
        _ if tables == 0 => {
            add_missing(&tx).map_err(e)?;
        }
        Some(v) if v > SCHEMA_VERSION => return Err(CatalogError::TooNew { path: path.to_path_buf(), found: v }),
        Some(v) if (1..=SCHEMA_VERSION).contains(&v) => {
            if v < SCHEMA_VERSION {
                tracing::warn!(catalog = %path.display(), "migrating catalog schema {v} -> {SCHEMA_VERSION}");
            }
            let t0 = std::time::Instant::now();
            let repaired = add_missing(&tx).map_err(e)?;
            if repaired > 0 {
                notice = Some(format!(
                    "catalog {}: {repaired} face(s) shared a photo with another face of the same person and left that person",
                    path.display()
                ));
            }
            // building the covering indexes reads every row once: minutes for a big library
            let secs = t0.elapsed().as_secs_f64();
            if secs > 2.0 && notice.is_none() {
                notice = Some(format!(
                    "catalog {} updated to schema {SCHEMA_VERSION} in {secs:.0} s (once: indexes that make a large library open fast)",
                    path.display()
                ));
            }
        }
        _ if !rebuild => {
            let found = match &found {
                None if !has_meta => "no meta table (where the schema version is kept)".to_string(),
                None => "no schema version".to_string(),
                Some(v) => format!("schema version {v:?}"),
            };
            return Err(CatalogError::UnreadableVersion { path: path.to_path_buf(), found });
        }
        _ => {
            // a facefind catalog whose version is gone: the tables that are missing are added
            // (the faces' chip column included), nothing is dropped
            add_missing(&tx).map_err(e)?;
        }
    }
    if rebuild {
        // every photo is processed again from its file; until then its faces are not searched
        let n = tx.execute("UPDATE photos SET mtime_ns = -1", []).map_err(e)?;
        tx.execute_batch("INSERT OR IGNORE INTO pending_embed(photo_id) SELECT DISTINCT photo_id FROM faces").map_err(e)?;
        let msg = format!(
            "catalog {} rebuilt: its {n} photos will be indexed again; people, names and rejections stay with every face that is found again",
            path.display()
        );
        tracing::warn!("{msg}");
        notice = Some(match notice {
            Some(earlier) => format!("{earlier}; {msg}"),
            None => msg,
        });
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(e)?;
    tx.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('catalog_id', ?1)", [new_catalog_id(path)]).map_err(e)?;
    tx.execute(
        "INSERT INTO meta(key, value) VALUES ('schema_version', ?1) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        [SCHEMA_VERSION.to_string()],
    )
    .map_err(e)?;
    tx.commit().map_err(e)?;
    Ok(notice)
}

/// Every table, column, index and trigger of the current schema that is not there yet, after
/// taking out what the schema-6 rule forbids. Returns the number of links taken out.
fn add_missing(tx: &rusqlite::Transaction) -> rusqlite::Result<usize> {
    tx.execute_batch(SCHEMA)?;
    // schema 1 had no chips
    let has_chip: bool = tx.query_row("SELECT count(*) > 0 FROM pragma_table_info('faces') WHERE name='chip'", [], |r| r.get(0))?;
    if !has_chip {
        tx.execute_batch("ALTER TABLE faces ADD COLUMN chip BLOB;")?;
    }
    tx.execute_batch(PEOPLE_SCHEMA)?;
    let wide: bool = tx.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type='table' AND name='face_person' AND sql LIKE '%imported%'",
        [],
        |r| r.get(0),
    )?;
    if !wide {
        tx.execute_batch(FACE_PERSON_10)?;
    }
    tx.execute_batch(SCHEMA_5)?;
    let repaired = tx.execute(ONE_FACE_PER_PHOTO_REPAIR, [])?;
    tx.execute_batch(SCHEMA_6)?;
    tx.execute_batch(SCHEMA_7)?;
    tx.execute_batch(SCHEMA_8)?;
    let had_dates: bool = tx.query_row("SELECT count(*) > 0 FROM sqlite_master WHERE type='table' AND name='taken'", [], |r| r.get(0))?;
    tx.execute_batch(SCHEMA_9)?;
    let had_regions: bool =
        tx.query_row("SELECT count(*) > 0 FROM sqlite_master WHERE type='table' AND name='regions'", [], |r| r.get(0))?;
    tx.execute_batch(SCHEMA_10)?;
    // photos indexed before read their metadata (date, regions) once on the next run
    if !had_dates || !had_regions {
        tx.execute_batch("INSERT OR IGNORE INTO dates_unread(photo_id) SELECT id FROM photos")?;
    }
    Ok(repaired)
}

/// 32 hex digits that name one catalog (a catalog deleted and made again at the same path
/// gets another, so an old face snapshot never passes for the new one).
fn new_catalog_id(path: &Path) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let seed = format!("{}|{}|{:?}|{:?}", now.as_nanos(), std::process::id(), std::thread::current().id(), path);
    crate::util::digest::sha256_hex(seed.as_bytes())[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{test_photo, Catalog};

    fn sha256(path: &Path) -> String {
        crate::util::digest::sha256_hex(&std::fs::read(path).unwrap())
    }

    /// The files SQLite (or facefind) could have left beside `path`.
    fn companions(path: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            out.push(p.into());
        }
        out.push(path.with_extension("lock"));
        out.push(path.with_extension("faces"));
        out.into_iter().filter(|p: &std::path::PathBuf| p.exists()).collect()
    }

    /// Another program's database with tables called `photos` and `meta`, in either journal
    /// mode, and files that are not SQLite at all: refused, byte for byte as they were, with
    /// nothing left beside them.
    #[test]
    fn a_database_that_is_not_ours_is_refused_and_never_written() {
        let dir = tempfile::tempdir().unwrap();
        for (name, wal) in [("other.sqlite", false), ("other-wal.sqlite", true)] {
            let path = dir.path().join(name);
            {
                let db = Connection::open(&path).unwrap();
                if wal {
                    db.pragma_update(None, "journal_mode", "WAL").unwrap();
                }
                db.execute_batch(
                    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('owner', 'someone else');
                     CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT, rating INTEGER); INSERT INTO photos VALUES (1, 'x.jpg', 5);",
                )
                .unwrap();
            }
            let before = sha256(&path);
            for attempt in [Catalog::open(&path).err(), Catalog::rebuild(&path).err()] {
                let err = attempt.expect("refused");
                assert!(matches!(err, CatalogError::NotOurs { .. }), "{err}");
                assert!(err.to_string().contains("not a facefind catalog"), "{err}");
            }
            assert_eq!(sha256(&path), before, "{name} untouched");
            assert_eq!(companions(&path), Vec::<std::path::PathBuf>::new(), "{name}: nothing left beside it");
        }
        // another program's application id, and files that are not SQLite
        let tagged = dir.path().join("tagged.sqlite");
        Connection::open(&tagged).unwrap().execute_batch("PRAGMA application_id = 1234; CREATE TABLE t (x);").unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "my notes, not a database\n".repeat(20)).unwrap();
        let empty_db = dir.path().join("empty.sqlite");
        Connection::open(&empty_db).unwrap().execute_batch("PRAGMA user_version = 3;").unwrap();
        for path in [&tagged, &text, &empty_db] {
            let before = sha256(path);
            assert!(matches!(Catalog::open(path), Err(CatalogError::NotOurs { .. })), "{}", path.display());
            assert_eq!(sha256(path), before);
            assert!(companions(path).is_empty());
        }
        // a folder where the file should be
        assert!(matches!(Catalog::open(dir.path()), Err(CatalogError::NotOurs { .. })));
    }

    /// A new catalog carries the application id; an empty file becomes a catalog; a catalog
    /// written before the id (schema 5, no id) is known by its tables, migrated and marked.
    #[test]
    fn new_and_older_catalogs_are_ours() {
        let dir = tempfile::tempdir().unwrap();
        let app_id = |p: &Path| -> i32 { Connection::open(p).unwrap().pragma_query_value(None, "application_id", |r| r.get(0)).unwrap() };
        let new = dir.path().join("sub/new.sqlite");
        drop(Catalog::open(&new).unwrap());
        assert_eq!(app_id(&new), APPLICATION_ID);
        let empty = dir.path().join("empty.sqlite");
        std::fs::write(&empty, b"").unwrap();
        drop(Catalog::open(&empty).unwrap());
        assert_eq!(app_id(&empty), APPLICATION_ID);
        // an older catalog: made now, then its mark taken away and its version set back
        let old = dir.path().join("old.sqlite");
        {
            let mut cat = Catalog::open(&old).unwrap();
            cat.write_batch(&[test_photo("a.jpg", &[([0.0, 0.0, 10.0, 10.0], 0.9)])]).unwrap();
            let face = cat.face_table().unwrap().face_id(0);
            let (_, ann) = cat.assign_faces(&[face], None, Some("Ann")).unwrap();
            assert_eq!(cat.people().unwrap()[0].id, ann);
        }
        Connection::open(&old)
            .unwrap()
            .execute_batch("PRAGMA application_id = 0; UPDATE meta SET value = '5' WHERE key = 'schema_version'; DROP TRIGGER face_person_one_per_photo_insert;")
            .unwrap();
        let cat = Catalog::open(&old).unwrap();
        assert_eq!(cat.people().unwrap()[0].name.as_deref(), Some("Ann"));
        let trigger: i64 = cat
            .conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'face_person_one_per_photo_insert'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(trigger, 1, "the storage rule is back");
        assert_eq!(cat.meta("schema_version").unwrap().as_deref(), Some(SCHEMA_VERSION.to_string().as_str()));
        drop(cat);
        assert_eq!(app_id(&old), APPLICATION_ID);
    }

    /// A facefind catalog whose version is garbage or gone is refused with the path and what
    /// was found (the named person stays); `rebuild` opens it, keeps the person and marks
    /// every photo to be indexed again.
    #[test]
    fn an_unreadable_version_is_refused_and_rebuilt_only_on_request() {
        let dir = tempfile::tempdir().unwrap();
        for (k, damage) in [
            "UPDATE meta SET value = 'garbage' WHERE key = 'schema_version'",
            "DELETE FROM meta WHERE key = 'schema_version'",
            "UPDATE meta SET value = '0' WHERE key = 'schema_version'",
        ]
        .iter()
        .enumerate()
        {
            let path = dir.path().join(format!("c{k}.sqlite"));
            {
                let mut cat = Catalog::open(&path).unwrap();
                cat.write_batch(&[test_photo("a.jpg", &[([0.0, 0.0, 10.0, 10.0], 0.9)])]).unwrap();
                let face = cat.face_table().unwrap().face_id(0);
                cat.assign_faces(&[face], None, Some("Ann")).unwrap();
            }
            Connection::open(&path).unwrap().execute_batch(damage).unwrap();
            let before = sha256(&path);
            let err = Catalog::open(&path).err().expect("refused");
            assert!(matches!(err, CatalogError::UnreadableVersion { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()) && msg.contains("--rebuild"), "{msg}");
            assert!(k != 0 || msg.contains("garbage"), "{msg}");
            assert_eq!(sha256(&path), before, "refusing writes nothing");
            let mut cat = Catalog::rebuild(&path).unwrap();
            assert!(cat.take_notice().is_some_and(|n| n.contains("rebuilt")));
            let people = cat.people().unwrap();
            assert_eq!((people.len(), people[0].name.as_deref(), people[0].faces), (1, Some("Ann"), 1));
            assert!(cat.states().unwrap().values().all(|s| s.mtime_ns == -1), "every photo is indexed again");
            drop(cat);
            assert!(Catalog::open(&path).is_ok(), "rebuilt: opens as usual");
        }
    }

    /// "Two faces of one photo are never one person" holds in storage: a write from anywhere
    /// (another connection, a plan made before the other face was placed) is refused.
    #[test]
    fn storage_refuses_two_faces_of_one_photo_in_one_person() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let mut cat = Catalog::open(&path).unwrap();
        cat.write_batch(&[
            test_photo("a.jpg", &[([0.0, 0.0, 10.0, 10.0], 0.9), ([50.0, 0.0, 10.0, 10.0], 0.9)]),
            test_photo("b.jpg", &[([0.0, 0.0, 10.0, 10.0], 0.9)]),
        ])
        .unwrap();
        let t = cat.face_table().unwrap();
        let (a0, a1, b0) = (t.face_id(0), t.face_id(1), t.face_id(2));
        let (_, ann) = cat.assign_faces(&[a0, b0], None, Some("Ann")).unwrap();
        let raw = Connection::open(&path).unwrap();
        let err = raw.execute("INSERT INTO face_person(face_id, person_id, source) VALUES (?1, ?2, 'user')", [a1, ann]).unwrap_err();
        assert!(err.to_string().contains(ONE_FACE_PER_PHOTO), "{err}");
        let (_, bob) = cat.assign_faces(&[a1], None, Some("Bob")).unwrap();
        let err = raw.execute("UPDATE face_person SET person_id = ?1 WHERE face_id = ?2", [ann, a1]).unwrap_err();
        assert!(err.to_string().contains(ONE_FACE_PER_PHOTO), "{err}");
        // merging Bob into Ann would put both faces of a.jpg in one person
        assert!(cat.merge_people(bob, ann).is_err());
        assert!(matches!(cat.confirm_face(a1, ann), Err(CatalogError::Invalid(_))));
        assert_eq!(cat.people().unwrap().iter().map(|p| p.faces).sum::<usize>(), 3);
        // an undo made before the other face came: storage refuses it as the user's error, and
        // nothing of it is applied
        let undo = cat.reject_face(a0, ann).unwrap();
        cat.assign_faces(&[a1], Some(ann), None).unwrap();
        let err = cat.undo(&undo).unwrap_err();
        assert!(matches!(&err, CatalogError::Invalid(m) if m == ONE_FACE_PER_PHOTO), "{err}");
        assert_eq!(cat.person_faces(ann).unwrap().iter().map(|f| f.0).collect::<Vec<_>>(), vec![a1, b0]);
    }

    /// A catalog written before the rule with two faces of one photo in one person: the
    /// migration keeps the user's link (then the confirmed, then the lower id), says how many
    /// left, and the rule holds from then on.
    #[test]
    fn a_migration_repairs_what_the_rule_forbids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let (a0, a1, a2) = {
            let mut cat = Catalog::open(&path).unwrap();
            cat.write_batch(&[test_photo(
                "a.jpg",
                &[([0.0, 0.0, 10.0, 10.0], 0.9), ([50.0, 0.0, 10.0, 10.0], 0.9), ([100.0, 0.0, 10.0, 10.0], 0.9)],
            )])
            .unwrap();
            let t = cat.face_table().unwrap();
            (t.face_id(0), t.face_id(1), t.face_id(2))
        };
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "DROP TRIGGER face_person_one_per_photo_insert; UPDATE meta SET value = '5' WHERE key = 'schema_version';
                 INSERT INTO people(id, name, created) VALUES (1, 'Ann', 0);
                 INSERT INTO face_person VALUES ({a0}, 1, 'auto'), ({a1}, 1, 'confirmed'), ({a2}, 1, 'auto');"
            ))
            .unwrap();
        let mut cat = Catalog::open(&path).unwrap();
        assert!(cat.take_notice().is_some_and(|n| n.contains("2 face(s)")));
        assert_eq!(cat.person_faces(1).unwrap().iter().map(|f| f.0).collect::<Vec<_>>(), vec![a1]);
    }
}
