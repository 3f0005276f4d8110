//! The app's model of one opened folder — photos, faces, the current query and its ranking —
//! as plain data with no egui in it, so it is tested like the rest of the library.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::PathBuf;

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalog::FaceRow;
    use crate::catalog::Status;
    use crate::nets::mobilefacenet::EMBEDDING_DIM;

    pub(crate) fn unit(seed: usize) -> Vec<f32> {
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
}
