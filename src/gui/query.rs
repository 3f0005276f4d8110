//! What the user asked for (a face, a person, people together or left out, and the verdicts
//! on results) and its ranking over a library: plain data, no egui.

use std::collections::HashMap;
use std::sync::Arc;

use super::library::Library;
use crate::search::{self, Hit};

/// The user's verdict on a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Yes,
    No,
}

/// What the user asked for: a face (from the catalog or an outside photo) and their
/// corrections. Verdicts are kept by face id so they survive a library reload.
#[derive(Debug, Clone)]
pub struct Query {
    /// What to call the query in the window.
    pub label: String,
    /// The face in the catalog, when the query came from it.
    pub face_id: Option<i64>,
    /// The query face's own embedding (unit length).
    pub embedding: Vec<f32>,
    /// Photo id → (the face the verdict is about, verdict).
    pub verdicts: HashMap<i64, (i64, Verdict)>,
    /// The person searched for, when the query is a person.
    pub person: Option<i64>,
    /// People wanted in the same photos (a different face for each).
    pub with: Vec<QueryPerson>,
    /// People whose photos are left out.
    pub without: Vec<QueryPerson>,
}

/// A person added to a query (with or without).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPerson {
    pub id: i64,
    pub label: String,
    /// The direction of their exemplars' mean, as [`Query::person`].
    pub vector: Vec<f32>,
}

impl QueryPerson {
    /// `None` when the person has no faces.
    pub fn new(lib: &Library, id: i64) -> Option<Self> {
        let rows = lib.exemplar_rows(id);
        if rows.is_empty() {
            return None;
        }
        let vector = search::mean_direction(lib.table.dim(), rows.iter().map(|&r| lib.table.embedding(r)));
        Some(Self { id, label: lib.person(id).map(|p| p.label()).unwrap_or_default(), vector })
    }
}

impl Query {
    pub fn new(label: String, face_id: Option<i64>, embedding: Vec<f32>) -> Self {
        Self { label, face_id, embedding, verdicts: HashMap::new(), person: None, with: Vec::new(), without: Vec::new() }
    }

    /// Other people added to the query: its ranking is then one of photos (see
    /// [`search::together::rank_together`]).
    pub fn is_together(&self) -> bool {
        !self.with.is_empty() || !self.without.is_empty()
    }

    /// Whether person `id` is in the query already (as its subject, with, or without).
    pub fn has_person(&self, id: i64) -> bool {
        self.person == Some(id) || self.with.iter().chain(&self.without).any(|p| p.id == id)
    }

    /// The query in words: "Ann with Bob, without Cy".
    pub fn title(&self) -> String {
        let mut t = self.label.clone();
        let names = |v: &[QueryPerson]| v.iter().map(|p| p.label.as_str()).collect::<Vec<_>>().join(" and ");
        if !self.with.is_empty() {
            t += &format!(" with {}", names(&self.with));
        }
        if !self.without.is_empty() {
            t += &format!("{} without {}", if self.with.is_empty() { "" } else { "," }, names(&self.without));
        }
        t
    }

    /// A person as the query: the normalised mean of their exemplar faces (see
    /// [`crate::search::PERSON_FUSE`]). `None` when the person has no faces.
    pub fn person(lib: &Library, id: i64) -> Option<Self> {
        let rows = lib.exemplar_rows(id);
        if rows.is_empty() {
            return None;
        }
        let v = search::mean_direction(lib.table.dim(), rows.iter().map(|&r| lib.table.embedding(r)));
        let label = lib.person(id).map(|p| p.label()).unwrap_or_default();
        let face_id = lib.person(id).and_then(|p| p.cover_face);
        Some(Self { person: Some(id), ..Self::new(label, face_id, v) })
    }

    /// Faces the user confirmed in this search (for "Save as person").
    pub fn confirmed_faces(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.face_id.into_iter().collect();
        v.extend(self.verdicts.values().filter(|v| v.1 == Verdict::Yes).map(|v| v.0));
        v.sort();
        v.dedup();
        v
    }

    pub fn verdict(&self, photo_id: i64) -> Option<Verdict> {
        self.verdicts.get(&photo_id).map(|v| v.1)
    }

    /// Sets (or with `None` clears) the verdict on a photo, about its face `face_id`.
    pub fn set_verdict(&mut self, photo_id: i64, face_id: i64, verdict: Option<Verdict>) {
        match verdict {
            Some(v) => {
                self.verdicts.insert(photo_id, (face_id, v));
            }
            None => {
                self.verdicts.remove(&photo_id);
            }
        }
    }

    /// The vector to rank with: the normalised mean of the query face and every confirmed face.
    pub fn vector(&self, lib: &Library) -> Vec<f32> {
        let confirmed: Vec<Vec<f32>> = self
            .verdicts
            .values()
            .filter(|v| v.1 == Verdict::Yes)
            .filter_map(|&(face_id, _)| lib.row_of_face(face_id))
            .map(|row| lib.table.embedding(row))
            .collect();
        if confirmed.is_empty() {
            return self.embedding.clone();
        }
        search::mean_direction(self.embedding.len(), std::iter::once(self.embedding.clone()).chain(confirmed))
    }
}

/// One ranked photo and the verdict on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub hit: Hit,
    pub verdict: Option<Verdict>,
    /// A face of the photo is a person the query leaves out (at the ranking's threshold).
    pub left_out: bool,
}

impl Ranked {
    /// Confirmed photos always match, rejected and left-out ones never; the rest by score.
    pub fn is_match(&self, threshold: f32) -> bool {
        match self.verdict {
            Some(Verdict::Yes) => true,
            Some(Verdict::No) => false,
            None => !self.left_out && self.hit.score >= threshold,
        }
    }
}

/// How far below the threshold a ranking's scores are exact (see [`Ranking::exact_from`]): the
/// slider moves that far down before the ranking is made again.
pub const EXACT_BELOW_THRESHOLD: f32 = 0.1;

/// A query's ranking over a library. Similarities are computed once here; the threshold only
/// filters, down to [`Ranking::exact_from`].
#[derive(Debug, Clone)]
pub struct Ranking {
    /// The library ranked (`Hit::row` is a row of its table; the app's may be newer).
    pub lib: Arc<Library>,
    /// Confirmed photos first, then by score, then rejected photos.
    pub results: Vec<Ranked>,
    /// Every photo's best score, in `results` order (for the histogram).
    pub scores: Vec<f32>,
    /// The vector ranked with ([`Query::vector`]), for scoring every face of a photo.
    pub vector: Vec<f32>,
    /// Scores at or above this are exact and in exact order; below it they come from the
    /// 8-bit codes (within ~0.02, see [`search::face_scores`]). A threshold below it needs a
    /// new ranking.
    pub exact_from: f32,
    /// [`histogram`] of `scores` in [`HISTOGRAM_BIN`] bins (made once, drawn every frame).
    pub histogram: Vec<(f32, usize)>,
    /// The threshold at which faces were taken for people the query leaves out (they depend on
    /// it): another threshold needs a new ranking. `None` when nobody is left out.
    pub left_out_at: Option<f32>,
    /// With other people in the query: the faces that stand for them in each photo that could
    /// match (rows of `lib`'s table), beside the one of `Hit::row`.
    pub others: HashMap<i64, Vec<usize>>,
    /// `results[..confirmed]` are confirmed, `results[rejected..]` rejected or left out; the rest is by
    /// score, so a match count is a binary search.
    confirmed: usize,
    rejected: usize,
    /// Different for every ranking made (views keep per-ranking state by it).
    pub serial: u64,
}

fn next_serial() -> u64 {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Width of the score histogram's bins.
pub const HISTOGRAM_BIN: f32 = 0.02;

impl Default for Ranking {
    fn default() -> Self {
        Self {
            lib: Arc::default(),
            results: Vec::new(),
            scores: Vec::new(),
            vector: Vec::new(),
            exact_from: f32::NEG_INFINITY,
            left_out_at: None,
            others: HashMap::new(),
            histogram: Vec::new(),
            confirmed: 0,
            rejected: 0,
            serial: next_serial(),
        }
    }
}

impl Ranking {
    /// The ranking for a threshold of `threshold` (exact down to [`EXACT_BELOW_THRESHOLD`]
    /// below it).
    pub fn new(lib: &Arc<Library>, query: &Query, threshold: f32) -> Self {
        debug_assert!(lib.table.is_empty() || query.embedding.len() == lib.table.dim());
        let vector = query.vector(lib);
        let exact_from = threshold - EXACT_BELOW_THRESHOLD;
        // with other people in the query, photos are matched to all of them (ranked by the
        // weakest match); the ones holding someone left out go last
        let mut others = HashMap::new();
        let ranked: Vec<Ranked> = if query.is_together() {
            let wanted: Vec<Vec<f32>> = std::iter::once(vector.clone()).chain(query.with.iter().map(|p| p.vector.clone())).collect();
            let unwanted: Vec<Vec<f32>> = query.without.iter().map(|p| p.vector.clone()).collect();
            search::together::rank_together(&lib.table, &wanted, &unwanted, threshold, exact_from)
                .into_iter()
                .map(|m| {
                    let rows: Vec<usize> = m.faces.iter().skip(1).flatten().map(|f| f.0).collect();
                    if !rows.is_empty() && m.hit.score >= exact_from {
                        others.insert(m.hit.photo_id, rows);
                    }
                    Ranked { left_out: m.unwanted.is_some(), hit: m.hit, verdict: None }
                })
                .collect()
        } else {
            search::rank_photos(&lib.table, &vector, exact_from)
                .into_iter()
                .map(|hit| Ranked { hit, verdict: None, left_out: false })
                .collect()
        };
        // Confirmed, then the rest, then rejected and left out; scores stay descending inside
        // each (one pass: a million photos are ranked while a frame waits).
        let (mut results, mut rest, mut rejected) = (Vec::new(), Vec::with_capacity(ranked.len()), Vec::new());
        for mut r in ranked {
            r.verdict = if query.verdicts.is_empty() { None } else { query.verdict(r.hit.photo_id) };
            match r.verdict {
                Some(Verdict::Yes) => results.push(r),
                None if !r.left_out => rest.push(r),
                _ => rejected.push(r),
            }
        }
        results.append(&mut rest);
        results.append(&mut rejected);
        let scores: Vec<f32> = results.iter().map(|r| r.hit.score).collect();
        let confirmed = results.partition_point(|r| r.verdict == Some(Verdict::Yes));
        let rejected = confirmed + results[confirmed..].partition_point(|r| r.verdict.is_none() && !r.left_out);
        let histogram = histogram(&scores, HISTOGRAM_BIN);
        let left_out_at = (!query.without.is_empty()).then_some(threshold);
        Self {
            lib: lib.clone(),
            results,
            scores,
            vector,
            exact_from,
            left_out_at,
            others,
            histogram,
            confirmed,
            rejected,
            serial: next_serial(),
        }
    }

    /// Photos just below `threshold` that stand apart from the rest (see
    /// [`search::near_misses`]; confirmed and rejected photos are not among them): how many, and
    /// the threshold that takes them in.
    pub fn near_misses(&self, threshold: f32) -> Option<(usize, f32)> {
        search::near_misses(&self.scores[self.confirmed..self.rejected], threshold)
    }

    /// Photos that match at `threshold` (confirmed ones always, rejected ones never).
    pub fn match_count(&self, threshold: f32) -> usize {
        self.confirmed + self.results[self.confirmed..self.rejected].partition_point(|r| r.hit.score >= threshold)
    }

    pub fn matches(&self, threshold: f32) -> impl Iterator<Item = &Ranked> {
        self.results.iter().filter(move |r| r.is_match(threshold))
    }

    pub fn position(&self, photo_id: i64) -> Option<usize> {
        self.results.iter().position(|r| r.hit.photo_id == photo_id)
    }
}

/// Similarity of every face of `photo_id` to `vector` (for the inspector), in face order.
pub fn photo_face_scores(lib: &Library, photo_id: i64, vector: &[f32]) -> Vec<(usize, f32)> {
    lib.rows_of(photo_id).map(|row| (row, crate::pipeline::cosine(&lib.table.embedding(row), vector))).collect()
}

/// Histogram of scores in fixed bins over [-0.2, 1.0]: (bin centres, counts).
pub fn histogram(scores: &[f32], bin: f32) -> Vec<(f32, usize)> {
    let lo = -0.2f32;
    let n = ((1.0 - lo) / bin).ceil() as usize;
    let mut counts = vec![0usize; n];
    for &s in scores {
        let i = (((s - lo) / bin).floor().max(0.0) as usize).min(n - 1);
        counts[i] += 1;
    }
    counts.into_iter().enumerate().map(|(i, c)| (lo + (i as f32 + 0.5) * bin, c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::library::tests::{synthetic, unit};

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
}
