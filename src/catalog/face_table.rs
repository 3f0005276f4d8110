//! Every face of a catalog as one table: rows (ids, box, score), 8-bit codes in memory for
//! ranking, and exact f32 embeddings either in memory or in a snapshot file beside the
//! catalog, read by position when needed. The snapshot lets the app open a million photos
//! without stepping through two million SQLite rows.
//!
//! Snapshot layout (little-endian): an 80-byte header (magic, version, dim, rows, the
//! catalog's id and face generation it was made from, faces skipped, largest code error), the
//! exact embeddings (rows × dim f32), then the rows (40 bytes each), the code steps and the
//! codes. It is a cache: written to a temporary name and renamed, never changed in place, and
//! used only while its generation matches the catalog's.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::codes::Int8Index;

const MAGIC: &[u8; 8] = b"FFFACES\0";
const VERSION: u32 = 1;
const HEADER: u64 = 80;
const ROW_BYTES: usize = 40;

/// One face of a [`FaceTable`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceRow {
    pub face_id: i64,
    pub photo_id: i64,
    /// Index of the face within its photo (what `detect` lists; 0 = highest detection score).
    pub index: u32,
    pub bbox: [f32; 4],
    /// Detection score.
    pub score: f32,
}

/// Where a table's exact embeddings are.
#[derive(Debug, Clone)]
enum Exact {
    Memory(Vec<f32>),
    /// A snapshot file (the embeddings start at [`HEADER`]).
    File(Arc<File>),
}

impl Default for Exact {
    fn default() -> Self {
        Exact::Memory(Vec::new())
    }
}

/// All faces of a catalog (the input to [`crate::search`] and [`crate::people`]). Rows are in
/// path order, a photo's faces adjacent and in detection order.
#[derive(Debug, Clone, Default)]
pub struct FaceTable {
    dim: usize,
    rows: Vec<FaceRow>,
    codes: Int8Index,
    exact: Exact,
    pub(super) skipped_non_finite: usize,
}

impl FaceTable {
    /// An empty in-memory table of `dim`-dimensional embeddings.
    pub fn new(dim: usize) -> Self {
        Self { dim, codes: Int8Index::new(dim), ..Self::default() }
    }

    /// Adds a face to an in-memory table; its embedding must have `dim` values.
    pub fn push(&mut self, row: FaceRow, embedding: &[f32]) {
        assert_eq!(embedding.len(), self.dim, "embedding of {} values in a table of dimension {}", embedding.len(), self.dim);
        let Exact::Memory(exact) = &mut self.exact else { panic!("a face table read from a snapshot is not appended to") };
        exact.extend_from_slice(embedding);
        self.rows.push(row);
        self.codes.push(embedding);
    }
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    /// Embedding dimension (192 for the shipped embedder).
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// The 8-bit codes of every face (in memory: what ranking reads).
    pub fn codes(&self) -> &Int8Index {
        &self.codes
    }
    /// Row `i`'s exact embedding. Should the snapshot file fail to read (it was damaged behind
    /// our back), the decoded 8-bit code stands in (within 0.02 of it) and the error is logged.
    pub fn embedding(&self, i: usize) -> Vec<f32> {
        match &self.exact {
            Exact::Memory(v) => v[i * self.dim..(i + 1) * self.dim].to_vec(),
            Exact::File(f) => {
                let mut buf = vec![0u8; self.dim * 4];
                match read_at(f, &mut buf, HEADER + (i * self.dim * 4) as u64) {
                    Ok(()) => le_f32(&buf),
                    Err(error) => {
                        tracing::error!(%error, row = i, "reading an embedding from the face snapshot failed; using its 8-bit code");
                        self.codes.decode(i)
                    }
                }
            }
        }
    }
    /// Every exact embedding, row after row (len × dim values): for clustering, which needs
    /// them all at once.
    pub fn all_embeddings(&self) -> std::io::Result<Vec<f32>> {
        match &self.exact {
            Exact::Memory(v) => Ok(v.clone()),
            Exact::File(f) => {
                let mut buf = vec![0u8; self.len() * self.dim * 4];
                read_at(f, &mut buf, HEADER)?;
                Ok(le_f32(&buf))
            }
        }
    }
    pub fn row(&self, i: usize) -> &FaceRow {
        &self.rows[i]
    }
    pub fn rows(&self) -> &[FaceRow] {
        &self.rows
    }
    pub fn face_id(&self, i: usize) -> i64 {
        self.rows[i].face_id
    }
    pub fn photo_id(&self, i: usize) -> i64 {
        self.rows[i].photo_id
    }
    pub fn face_index(&self, i: usize) -> u32 {
        self.rows[i].index
    }
    pub fn bbox(&self, i: usize) -> [f32; 4] {
        self.rows[i].bbox
    }
    pub fn score(&self, i: usize) -> f32 {
        self.rows[i].score
    }
    /// Faces left out when the table was read because their stored embedding is not finite.
    pub fn skipped_non_finite(&self) -> usize {
        self.skipped_non_finite
    }
    /// Bytes held in memory (rows and codes; exact embeddings only when not in a snapshot).
    pub fn memory_bytes(&self) -> usize {
        let exact = match &self.exact {
            Exact::Memory(v) => v.len() * 4,
            Exact::File(_) => 0,
        };
        self.rows.len() * std::mem::size_of::<FaceRow>() + self.codes.bytes() + exact
    }
}

fn le_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(windows)]
fn read_at(f: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(f, buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// What a snapshot was made from: the catalog's id and its face generation (see
/// [`super::Catalog::face_table`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// 32 ASCII bytes.
    pub catalog_id: String,
    pub generation: u64,
}

/// Writes a snapshot while the faces stream in, exact embeddings straight to the file: a
/// table of two million faces never holds its 1.5 GB of f32 in memory.
pub struct SnapshotWriter {
    path: PathBuf,
    tmp: PathBuf,
    /// `None` once finished (then there is no temporary file to clean up).
    out: Option<BufWriter<File>>,
    stamp: Stamp,
    table: FaceTable,
}

impl SnapshotWriter {
    /// Starts a snapshot for `path` (written under a temporary name until [`Self::finish`]).
    pub fn create(path: &Path, stamp: Stamp, dim: usize) -> std::io::Result<Self> {
        if stamp.catalog_id.len() != 32 || dim == 0 {
            return Err(std::io::Error::other("bad snapshot stamp or dimension"));
        }
        // One temporary name, locked while written: a second writer (another thread or
        // process making the same snapshot) is refused rather than writing over it, and what
        // a killed writer left is locked again, emptied and reused, never left to pile up.
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        let tmp = path.with_file_name(name);
        // read and write: the finished table reads its exact embeddings through this handle
        let file = File::options().read(true).write(true).create(true).truncate(false).open(&tmp)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::new(std::io::ErrorKind::WouldBlock, "another snapshot of this catalog is being written"))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        file.set_len(0)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&[0u8; HEADER as usize])?;
        let table = FaceTable { dim, codes: Int8Index::new(dim), ..FaceTable::default() };
        Ok(Self { path: path.to_path_buf(), tmp, out: Some(out), stamp, table })
    }

    pub fn dim(&self) -> usize {
        self.table.dim
    }

    /// Adds a face (its embedding of `dim` finite values).
    pub fn push(&mut self, row: FaceRow, embedding: &[f32]) -> std::io::Result<()> {
        debug_assert_eq!(embedding.len(), self.table.dim);
        let out = self.out.as_mut().ok_or_else(|| std::io::Error::other("snapshot already finished"))?;
        for x in embedding {
            out.write_all(&x.to_le_bytes())?;
        }
        self.table.rows.push(row);
        self.table.codes.push(embedding);
        Ok(())
    }

    /// Writes the rows, codes and header, flushes to disk and renames the file into place;
    /// returns the table reading its exact embeddings from it.
    pub fn finish(mut self, skipped_non_finite: usize) -> std::io::Result<FaceTable> {
        let mut table = std::mem::take(&mut self.table);
        let (path, tmp, stamp) = (self.path.clone(), self.tmp.clone(), self.stamp.clone());
        let Some(mut out) = self.out.take() else { return Err(std::io::Error::other("snapshot already finished")) };
        let result = (|| {
            for r in &table.rows {
                out.write_all(&row_bytes(r))?;
            }
            for s in table.codes.steps() {
                out.write_all(&s.to_le_bytes())?;
            }
            out.write_all(&table.codes.codes().iter().map(|&c| c as u8).collect::<Vec<u8>>())?;
            let mut file = out.into_inner().map_err(|e| e.into_error())?;
            let header =
                Header { dim: table.dim, rows: table.rows.len(), stamp, skipped: skipped_non_finite, max_error: table.codes.max_error() };
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&header.bytes())?;
            // a cache, but one that must never be half there after a crash
            file.sync_data()?;
            std::fs::rename(&tmp, &path)?;
            Ok(file)
        })();
        match result {
            Ok(file) => {
                table.exact = Exact::File(Arc::new(file));
                table.skipped_non_finite = skipped_non_finite;
                Ok(table)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if self.out.is_some() {
            // dropped unfinished (an error while reading the catalog): no half snapshot stays
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn row_bytes(r: &FaceRow) -> [u8; ROW_BYTES] {
    let mut b = [0u8; ROW_BYTES];
    b[0..8].copy_from_slice(&r.face_id.to_le_bytes());
    b[8..16].copy_from_slice(&r.photo_id.to_le_bytes());
    b[16..20].copy_from_slice(&r.index.to_le_bytes());
    for (k, v) in r.bbox.iter().enumerate() {
        b[20 + 4 * k..24 + 4 * k].copy_from_slice(&v.to_le_bytes());
    }
    b[36..40].copy_from_slice(&r.score.to_le_bytes());
    b
}

fn parse_row(b: &[u8]) -> FaceRow {
    let f = |at: usize| f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    FaceRow {
        face_id: i64::from_le_bytes(b[0..8].try_into().unwrap_or_default()),
        photo_id: i64::from_le_bytes(b[8..16].try_into().unwrap_or_default()),
        index: u32::from_le_bytes(b[16..20].try_into().unwrap_or_default()),
        bbox: [f(20), f(24), f(28), f(32)],
        score: f(36),
    }
}

struct Header {
    dim: usize,
    rows: usize,
    stamp: Stamp,
    skipped: usize,
    max_error: f32,
}

impl Header {
    fn bytes(&self) -> [u8; HEADER as usize] {
        let mut b = [0u8; HEADER as usize];
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(self.dim as u32).to_le_bytes());
        b[16..24].copy_from_slice(&(self.rows as u64).to_le_bytes());
        b[24..32].copy_from_slice(&self.stamp.generation.to_le_bytes());
        b[32..40].copy_from_slice(&(self.skipped as u64).to_le_bytes());
        b[40..44].copy_from_slice(&self.max_error.to_le_bytes());
        b[48..80].copy_from_slice(self.stamp.catalog_id.as_bytes());
        b
    }

    fn parse(b: &[u8; HEADER as usize]) -> Option<Self> {
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
        if &b[0..8] != MAGIC || u32_at(8) != VERSION {
            return None;
        }
        Some(Self {
            dim: u32_at(12) as usize,
            rows: usize::try_from(u64_at(16)).ok()?,
            stamp: Stamp { catalog_id: String::from_utf8(b[48..80].to_vec()).ok()?, generation: u64_at(24) },
            skipped: usize::try_from(u64_at(32)).ok()?,
            max_error: f32::from_le_bytes([b[40], b[41], b[42], b[43]]),
        })
    }

    /// The file length this header implies (`None` on overflow).
    fn file_len(&self) -> Option<u64> {
        let per_row = self.dim.checked_mul(5)?.checked_add(ROW_BYTES + 4)?;
        (self.rows as u64).checked_mul(per_row as u64)?.checked_add(HEADER)
    }
}

/// The snapshot at `path` when it was made from `stamp`: `Ok(None)` when there is none or it is
/// of another generation, catalog or layout (then it is simply made again).
pub fn read_snapshot(path: &Path, stamp: &Stamp) -> std::io::Result<Option<FaceTable>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hb = [0u8; HEADER as usize];
    if file.read_exact(&mut hb).is_err() {
        return Ok(None);
    }
    let Some(h) = Header::parse(&hb) else { return Ok(None) };
    let len = file.metadata()?.len();
    if h.stamp != *stamp || h.dim == 0 || h.file_len() != Some(len) {
        return Ok(None);
    }
    let n = h.rows;
    file.seek(SeekFrom::Start(HEADER + (n * h.dim * 4) as u64))?;
    // a file cut short since its length was checked reads as absent
    let short = |e: std::io::Error| if e.kind() == std::io::ErrorKind::UnexpectedEof { Ok(None) } else { Err(e) };
    let mut rest = vec![0u8; n * (ROW_BYTES + 4)];
    if let Err(e) = file.read_exact(&mut rest) {
        return short(e);
    }
    let mut codes = vec![0i8; n * h.dim];
    // SAFETY: i8 and u8 have one size and alignment and every bit pattern is valid for both,
    // so the codes' buffer may be filled as bytes
    if let Err(e) = file.read_exact(unsafe { std::slice::from_raw_parts_mut(codes.as_mut_ptr().cast::<u8>(), codes.len()) }) {
        return short(e);
    }
    let (rows_b, steps_b) = rest.split_at(n * ROW_BYTES);
    let rows = rows_b.chunks_exact(ROW_BYTES).map(parse_row).collect();
    let steps = le_f32(steps_b);
    let Some(codes) = Int8Index::from_parts(h.dim, codes, steps, h.max_error) else { return Ok(None) };
    Ok(Some(FaceTable { dim: h.dim, rows, codes, exact: Exact::File(Arc::new(file)), skipped_non_finite: h.skipped }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(generation: u64) -> Stamp {
        Stamp { catalog_id: "0123456789abcdef0123456789abcdef".into(), generation }
    }

    /// A snapshot reads back as the table it was written from: rows, codes, exact embeddings
    /// (bit for bit); another generation, a truncated file or a foreign file read as absent.
    #[test]
    fn snapshot_round_trip_and_staleness() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.faces");
        let dim = 8;
        let mut mem = FaceTable::new(dim);
        let mut w = SnapshotWriter::create(&path, stamp(7), dim).unwrap();
        for i in 0..50 {
            let v: Vec<f32> = (0..dim).map(|k| ((i * 7 + k * 3) % 11) as f32 - 5.0 + 0.01 * i as f32).collect();
            let row = FaceRow {
                face_id: 1000 + i as i64,
                photo_id: i as i64 / 2,
                index: i as u32 % 2,
                bbox: [i as f32, 1.5, 2.5, 3.5],
                score: 0.5 + i as f32 / 100.0,
            };
            mem.push(row, &v);
            w.push(row, &v).unwrap();
        }
        let written = w.finish(3).unwrap();
        let read = read_snapshot(&path, &stamp(7)).unwrap().expect("fresh snapshot");
        for t in [&written, &read] {
            assert_eq!(t.rows(), mem.rows());
            assert_eq!(t.codes(), mem.codes());
            assert_eq!(t.skipped_non_finite(), 3);
            for i in 0..mem.len() {
                assert_eq!(t.embedding(i), mem.embedding(i));
            }
            assert_eq!(t.all_embeddings().unwrap(), mem.all_embeddings().unwrap());
            assert!(t.memory_bytes() < mem.memory_bytes());
        }
        assert!(read_snapshot(&path, &stamp(8)).unwrap().is_none(), "another generation");
        assert!(read_snapshot(&dir.path().join("none"), &stamp(7)).unwrap().is_none());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(read_snapshot(&path, &stamp(7)).unwrap().is_none(), "truncated");
        std::fs::write(&path, b"not a snapshot").unwrap();
        assert!(read_snapshot(&path, &stamp(7)).unwrap().is_none(), "foreign file");
        // no temporary files left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A writer dropped before it finishes leaves nothing behind; a second writer of the same
    /// snapshot is refused while the first writes; what a killed writer left is reused.
    #[test]
    fn unfinished_and_concurrent_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.faces");
        let row = FaceRow { face_id: 1, photo_id: 1, index: 0, bbox: [0.0; 4], score: 1.0 };
        let mut w = SnapshotWriter::create(&path, stamp(1), 4).unwrap();
        w.push(row, &[1.0, 0.0, 0.0, 0.0]).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut a = SnapshotWriter::create(&path, stamp(2), 4).unwrap();
        let b = SnapshotWriter::create(&path, stamp(2), 4);
        assert_eq!(b.err().map(|e| e.kind()), Some(std::io::ErrorKind::WouldBlock));
        a.push(row, &[0.0, 1.0, 0.0, 0.0]).unwrap();
        a.finish(0).unwrap();
        // a killed writer's leftovers: taken over and emptied
        std::fs::write(dir.path().join("c.faces.tmp"), vec![7u8; 1000]).unwrap();
        let mut c = SnapshotWriter::create(&path, stamp(3), 4).unwrap();
        c.push(row, &[0.0, 0.0, 1.0, 0.0]).unwrap();
        let t = c.finish(0).unwrap();
        assert_eq!(t.embedding(0), vec![0.0, 0.0, 1.0, 0.0]);
        assert_eq!(read_snapshot(&path, &stamp(3)).unwrap().unwrap().embedding(0), vec![0.0, 0.0, 1.0, 0.0]);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("c.faces")]);
    }
}
