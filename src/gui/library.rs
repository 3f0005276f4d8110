//! The app's model of one opened folder — photos, faces, the current query and its ranking —
//! as plain data with no egui in it, so it is tested like the rest of the library.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use super::query::{histogram, photo_face_scores, Query, QueryPerson, Ranked, Ranking, Verdict, EXACT_BELOW_THRESHOLD, HISTOGRAM_BIN};
use crate::catalog::names::display_rel;
use crate::catalog::people::Person;
use crate::catalog::{bytes_path, FaceTable, PhotoInfo};
use crate::people::merges::MergeSuggestion;
use crate::people::{FaceInfo, Suggestion};

/// A snapshot of a catalog: every photo and every face embedding.
#[derive(Debug, Default)]
pub struct Library {
    pub folder: PathBuf,
    /// Ordered by path.
    pub photos: Vec<PhotoInfo>,
    pub table: FaceTable,
    /// People, most faces first.
    pub people: Vec<Person>,
    /// Each face (row of the table) as grouping sees it: its person and rejections. Empty
    /// before the people are read.
    pub faces: Vec<FaceInfo>,
    /// "Who is this?": faces to ask about, the most uncertain first (rows of the table).
    pub suggestions: Vec<Suggestion>,
    /// "Who is this?": people who may be one person, most likely first.
    pub merges: Vec<MergeSuggestion>,
    /// When each photo that records it was taken, by photo id.
    pub dates: HashMap<i64, crate::photo::taken::Taken>,
    index_of: HashMap<i64, usize>,
    rows_of: HashMap<i64, Range<usize>>,
    row_of_face: HashMap<i64, usize>,
    /// Photos by status (counted once: the status bar shows it every frame).
    counts: BTreeMap<&'static str, usize>,
}

impl Library {
    pub fn new(folder: PathBuf, photos: Vec<PhotoInfo>, table: FaceTable) -> Self {
        let index_of = photos.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        let mut rows_of: HashMap<i64, Range<usize>> = HashMap::new();
        for (row, f) in table.rows().iter().enumerate() {
            rows_of.entry(f.photo_id).and_modify(|r| r.end = row + 1).or_insert(row..row + 1);
        }
        let row_of_face = table.rows().iter().enumerate().map(|(row, f)| (f.face_id, row)).collect();
        let mut counts = BTreeMap::new();
        for p in &photos {
            *counts.entry(p.status.as_str()).or_default() += 1;
        }
        Self {
            folder,
            photos,
            table,
            people: Vec::new(),
            faces: Vec::new(),
            suggestions: Vec::new(),
            merges: Vec::new(),
            dates: HashMap::new(),
            index_of,
            rows_of,
            row_of_face,
            counts,
        }
    }

    /// The same library with its people.
    pub fn with_people(mut self, people: Vec<Person>, faces: Vec<FaceInfo>, suggestions: Vec<Suggestion>) -> Self {
        self.people = people;
        self.faces = faces;
        self.suggestions = suggestions;
        self
    }

    /// The same library with its photos' capture dates (as the catalog keeps them).
    pub fn with_dates(mut self, dates: HashMap<i64, String>) -> Self {
        self.dates = dates.into_iter().filter_map(|(id, t)| Some((id, crate::photo::taken::Taken::parse(&t)?))).collect();
        self
    }

    /// When photo `id` was taken, if it records it.
    pub fn taken(&self, id: i64) -> Option<&crate::photo::taken::Taken> {
        self.dates.get(&id)
    }

    /// The same library with its merge questions.
    pub fn with_merges(mut self, merges: Vec<MergeSuggestion>) -> Self {
        self.merges = merges;
        self
    }

    pub fn person(&self, id: i64) -> Option<&Person> {
        self.people.iter().find(|p| p.id == id)
    }

    /// The person of the face in table row `row`.
    pub fn person_of_row(&self, row: usize) -> Option<&Person> {
        self.faces.get(row).and_then(|f| f.person).and_then(|(p, _)| self.person(p))
    }

    /// Rows that stand for a person in a search (see [`crate::people::exemplars`]).
    pub fn exemplar_rows(&self, person: i64) -> Vec<usize> {
        crate::people::exemplars(&self.faces, person)
    }

    /// Names in use, sorted, for completion.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.people.iter().filter_map(|p| p.name.clone()).collect();
        v.sort_by_key(|n| n.to_lowercase());
        v.dedup();
        v
    }

    /// The files the catalog could not use, with why: (path, reason). Between index runs the
    /// app lists these; a run lists the ones it meets as it goes.
    pub fn skipped(&self) -> Vec<(String, String)> {
        self.photos
            .iter()
            .filter(|p| matches!(p.status, crate::catalog::Status::Error | crate::catalog::Status::Unsupported))
            .map(|p| (crate::catalog::names::display_rel(&p.path), p.reason.clone().unwrap_or_default()))
            .collect()
    }

    pub fn photo(&self, id: i64) -> Option<&PhotoInfo> {
        self.index_of.get(&id).map(|&i| &self.photos[i])
    }

    /// Rows of the face table that belong to a photo (empty when it has no faces).
    pub fn rows_of(&self, photo_id: i64) -> Range<usize> {
        self.rows_of.get(&photo_id).cloned().unwrap_or(0..0)
    }

    pub fn row_of_face(&self, face_id: i64) -> Option<usize> {
        self.row_of_face.get(&face_id).copied()
    }

    /// The photo's path relative to the folder, for display.
    pub fn rel(&self, photo_id: i64) -> String {
        self.photo(photo_id).map(|p| display_rel(&p.path)).unwrap_or_default()
    }

    pub fn abs_path(&self, photo_id: i64) -> Option<PathBuf> {
        self.photo(photo_id).map(|p| self.folder.join(bytes_path(&p.path)))
    }

    /// Photos by status, for the status bar.
    pub fn counts(&self) -> &BTreeMap<&'static str, usize> {
        &self.counts
    }
}

/// How matched photos land in an export folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportMode {
    Copy,
    /// Symbolic links to the originals (Unix); copies elsewhere.
    Link,
}

pub use crate::util::paths::{inside_folder, resolved};

/// Copies (or links) the photos that match at `threshold` into `dest`.
pub fn export_photos(ranking: &Ranking, threshold: f32, dest: &Path, mode: ExportMode) -> std::io::Result<(usize, Vec<String>)> {
    let lib = &ranking.lib;
    if inside_folder(&lib.folder, dest) {
        return Err(std::io::Error::other(format!(
            "{} is inside the photo folder (facefind never writes into your photos)",
            dest.display()
        )));
    }
    std::fs::create_dir_all(dest)?;
    let mut done = 0;
    let mut failed = Vec::new();
    for r in ranking.matches(threshold) {
        let Some(src) = lib.abs_path(r.hit.photo_id) else { continue };
        let name = src.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "photo".into());
        let target = free_name(dest, Path::new(&name));
        let result = match mode {
            #[cfg(unix)]
            ExportMode::Link => std::os::unix::fs::symlink(&src, &target),
            _ => std::fs::copy(&src, &target).map(|_| ()),
        };
        match result {
            Ok(()) => done += 1,
            Err(e) => failed.push(format!("{}: {e}", src.display())),
        }
    }
    Ok((done, failed))
}

fn free_name(dir: &Path, name: &Path) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() && first.symlink_metadata().is_err() {
        return first;
    }
    let stem = name.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = name.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    (2..).map(|i| dir.join(format!("{stem}-{i}{ext}"))).find(|p| p.symlink_metadata().is_err()).unwrap_or(first)
}

/// Writes the ranking as CSV: path, score, face, box, match, verdict — every photo with a face,
/// best first.
pub fn write_csv(ranking: &Ranking, threshold: f32, out: &mut dyn Write) -> std::io::Result<()> {
    let lib = &ranking.lib;
    // `path_hex`: the file name's exact bytes when it is not UTF-8 (see catalog::names), else empty
    writeln!(out, "path,score,face,x,y,w,h,match,verdict,path_hex")?;
    for r in &ranking.results {
        let b = lib.table.bbox(r.hit.row);
        let verdict = match r.verdict {
            Some(Verdict::Yes) => "yes",
            Some(Verdict::No) => "no",
            None => "",
        };
        writeln!(
            out,
            "{},{:.4},{},{:.1},{:.1},{:.1},{:.1},{},{},{}",
            csv_field(&lib.rel(r.hit.photo_id)),
            r.hit.score,
            lib.table.face_index(r.hit.row),
            b[0],
            b[1],
            b[2],
            b[3],
            r.is_match(threshold),
            verdict,
            lib.photo(r.hit.photo_id).and_then(|p| crate::catalog::names::hex_if_not_utf8(&p.path)).unwrap_or_default()
        )?;
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalog::FaceRow;
    use crate::catalog::Status;
    use crate::nets::mobilefacenet::EMBEDDING_DIM;
    use std::sync::Arc;

    fn unit(seed: usize) -> Vec<f32> {
        let v: Vec<f32> =
            (0..EMBEDDING_DIM).map(|i| (((i * 7 + seed * 13) % 17) as f32 - 8.0) + if i == seed { 40.0 } else { 0.0 }).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    /// A library of `n` photos, photo i has faces with embeddings near direction (i % 3).
    pub(crate) fn synthetic(n: usize) -> Library {
        let mut photos = Vec::new();
        let mut t = FaceTable::new(EMBEDDING_DIM);
        for i in 0..n {
            let id = i as i64 + 1;
            photos.push(PhotoInfo {
                id,
                path: format!("p{i:03}, \"x\".jpg").into_bytes(),
                width: 640,
                height: 480,
                status: Status::Faces,
                reason: None,
                mtime_ns: 0,
            });
            for k in 0..2 {
                let row = FaceRow { face_id: id * 10 + k, photo_id: id, index: k as u32, bbox: [10.0, 20.0, 30.0, 40.0], score: 0.99 };
                t.push(row, &unit(i % 3 + 5 * k as usize));
            }
        }
        Library::new(PathBuf::from("/nonexistent"), photos, t)
    }

    #[test]
    fn ranking_and_threshold() {
        let lib = Arc::new(synthetic(9));
        let q = Query::new("q".into(), Some(10), unit(0));
        let r = Ranking::new(&lib, &q, 0.5);
        assert_eq!(r.results.len(), 9);
        assert!(r.scores.windows(2).all(|w| w[0] >= w[1]));
        // Photos 1, 4, 7 (i % 3 == 0) hold the query direction exactly.
        let top: Vec<i64> = r.results[..3].iter().map(|x| x.hit.photo_id).collect();
        assert_eq!(top, vec![1, 4, 7]);
        assert!((r.results[0].hit.score - 1.0).abs() < 1e-5);
        assert_eq!(r.match_count(0.99), 3);
        assert_eq!(r.match_count(-1.0), 9);
    }

    #[test]
    fn verdicts_move_results_and_change_the_query() {
        let lib = Arc::new(synthetic(9));
        let mut q = Query::new("q".into(), Some(10), unit(0));
        q.set_verdict(4, 40, Some(Verdict::No));
        q.set_verdict(2, 20, Some(Verdict::Yes));
        let r = Ranking::new(&lib, &q, 0.5);
        assert_eq!(r.results[0].hit.photo_id, 2, "confirmed first");
        assert_eq!(r.results.last().map(|x| x.hit.photo_id), Some(4), "rejected last");
        assert!(!r.results.last().is_some_and(|x| x.is_match(-1.0)));
        // The query is now the mean of two directions: photo 7 (direction 0) scores below 1.
        let p7 = r.results.iter().find(|x| x.hit.photo_id == 7).map(|x| x.hit.score).unwrap_or(0.0);
        assert!(p7 < 0.95, "{p7}");
        let v = q.vector(&lib);
        assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
        q.set_verdict(2, 20, None);
        assert_eq!(q.vector(&lib), unit(0));
    }

    #[test]
    fn histogram_bins_cover_every_score() {
        let h = histogram(&[-0.5, -0.2, 0.0, 0.42, 0.999, 1.0, 1.3], 0.05);
        assert_eq!(h.iter().map(|b| b.1).sum::<usize>(), 7);
        assert_eq!(h.len(), 24);
    }

    #[test]
    fn csv_quotes_paths_and_keeps_names_that_are_not_utf8() {
        let mut lib = synthetic(2);
        lib.photos[1].path = b"caf\xe9.jpg".to_vec();
        let lib = Arc::new(lib);
        let q = Query::new("q".into(), None, unit(0));
        let r = Ranking::new(&lib, &q, 0.5);
        let mut out = Vec::new();
        write_csv(&r, 0.5, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "path,score,face,x,y,w,h,match,verdict,path_hex");
        assert!(lines[1].starts_with("\"p000, \"\"x\"\".jpg\",1.0000,0,10.0,20.0,30.0,40.0,true,"), "{}", lines[1]);
        assert!(lines[1].ends_with(','), "{}", lines[1]);
        assert!(lines[2].starts_with("caf\u{fffd}.jpg,") && lines[2].ends_with(",636166e92e6a7067"), "{}", lines[2]);
        assert_eq!(lines.len(), 3);
    }

    /// The export guard sees through links, `..` and relative paths.
    #[cfg(unix)]
    #[test]
    fn export_into_the_photo_folder_is_refused_however_it_is_written() {
        let d = tempfile::tempdir().unwrap();
        let photos = d.path().join("photos");
        std::fs::create_dir_all(photos.join("sub")).unwrap();
        std::os::unix::fs::symlink(&photos, d.path().join("link-to-photos")).unwrap();
        let outside = d.path().join("out");
        for inside in [
            photos.clone(),
            photos.join("new/deeper"),
            d.path().join("link-to-photos/new"),
            d.path().join("out/../photos/sub/x"),
            photos.join("sub/../new"),
        ] {
            assert!(inside_folder(&photos, &inside), "{}", inside.display());
        }
        for out in [outside.clone(), d.path().join("photos-2"), d.path().join("photos/../out")] {
            assert!(!inside_folder(&photos, &out), "{}", out.display());
        }
        let mut lib = synthetic(1);
        lib.folder = photos.clone();
        let lib = Arc::new(lib);
        let r = Ranking::new(&lib, &Query::new("q".into(), None, unit(0)), 0.5);
        let err = export_photos(&r, -1.0, &d.path().join("link-to-photos/exported"), ExportMode::Copy).unwrap_err();
        assert!(err.to_string().contains("inside the photo folder"), "{err}");
        assert!(!photos.join("exported").exists());
    }

    #[test]
    fn export_never_overwrites() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let mut lib = synthetic(2);
        lib.folder = src.path().to_path_buf();
        for p in &lib.photos {
            std::fs::write(src.path().join(bytes_path(&p.path)), &p.path).unwrap();
        }
        std::fs::write(dest.path().join("p000, \"x\".jpg"), b"keep").unwrap();
        let q = Query::new("q".into(), None, unit(0));
        let r = Ranking::new(&Arc::new(lib), &q, 0.5);
        let (n, failed) = export_photos(&r, -1.0, dest.path(), ExportMode::Copy).unwrap();
        assert_eq!((n, failed.len()), (2, 0));
        assert_eq!(std::fs::read(dest.path().join("p000, \"x\".jpg")).unwrap(), b"keep");
        assert!(dest.path().join("p000, \"x\"-2.jpg").exists());
    }
}
