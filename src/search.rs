//! Ranking: cosine similarity of a query embedding against every face of a catalog, one
//! result per photo (its best face). A pure function over an in-memory matrix, shared by the
//! command line and the app.

use crate::catalog::FaceTable;
use crate::pipeline::by_score_desc;

/// Default decision threshold on cosine similarity (see README "Threshold").
pub const DEFAULT_THRESHOLD: f32 = 0.50;

/// One photo in a ranking: its best-matching face and that face's score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub photo_id: i64,
    /// Row of the best face in the [`FaceTable`].
    pub row: usize,
    pub score: f32,
}

/// Cosine similarity of `query` (unit vector) with every face (unit vectors). A query from
/// another embedder (another dimension) scores nothing.
pub fn face_scores(table: &FaceTable, query: &[f32]) -> Vec<f32> {
    if table.is_empty() {
        return Vec::new();
    }
    if query.len() != table.dim() {
        tracing::error!(query = query.len(), catalog = table.dim(), "query and catalog come from different embedders");
        return Vec::new();
    }
    use rayon::prelude::*;
    table
        .embeddings()
        .par_chunks_exact(table.dim())
        .map(|e| e.iter().zip(query).map(|(a, b)| a * b).sum())
        .collect()
}

/// How a person's faces are fused in a search: the mean ranks as well as the max on the
/// album and LFW (README "People") and costs one pass.
pub const PERSON_FUSE: Fuse = Fuse::Mean;

/// How several query faces (a person's exemplars) score one face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fuse {
    /// The best cosine over the queries.
    Max,
    /// The cosine with the normalised mean of the queries (ranks as the mean cosine does, on
    /// the scale of a single face's scores, so one threshold fits both).
    Mean,
}

/// The unit vector along the sum of `vectors` (the direction of their mean): a person's, or a
/// refined query's, single vector.
pub fn mean_direction<'a>(dim: usize, vectors: impl IntoIterator<Item = &'a [f32]>) -> Vec<f32> {
    let mut mean = vec![0f32; dim];
    for v in vectors {
        mean.iter_mut().zip(v).for_each(|(m, x)| *m += x);
    }
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    mean.iter_mut().for_each(|x| *x /= norm);
    mean
}

/// Scores of every face against several queries, fused.
pub fn face_scores_fused(table: &FaceTable, queries: &[&[f32]], fuse: Fuse) -> Vec<f32> {
    match (queries, fuse) {
        ([], _) => Vec::new(),
        ([q], _) => face_scores(table, q),
        (qs, Fuse::Mean) => face_scores(table, &mean_direction(qs[0].len(), qs.iter().copied())),
        (qs, Fuse::Max) => {
            let mut best = face_scores(table, qs[0]);
            for q in &qs[1..] {
                best.iter_mut().zip(face_scores(table, q)).for_each(|(b, s)| *b = b.max(s));
            }
            best
        }
    }
}

/// Photos ranked by their best face's similarity to `query`, highest first. Faces of a
/// photo must be adjacent in the table (as [`crate::catalog::Catalog::face_table`] returns them).
pub fn rank_photos(table: &FaceTable, query: &[f32]) -> Vec<Hit> {
    rank_scores(table, &face_scores(table, query))
}

/// [`rank_photos`] for several query faces (a person), fused per face.
pub fn rank_photos_fused(table: &FaceTable, queries: &[&[f32]], fuse: Fuse) -> Vec<Hit> {
    rank_scores(table, &face_scores_fused(table, queries, fuse))
}

/// Photos ranked by their best face's score.
pub fn rank_scores(table: &FaceTable, scores: &[f32]) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    for (row, &score) in scores.iter().enumerate() {
        let photo_id = table.photo_id(row);
        match hits.last_mut() {
            Some(h) if h.photo_id == photo_id => {
                if score > h.score || h.score.is_nan() {
                    h.score = score;
                    h.row = row;
                }
            }
            _ => hits.push(Hit { photo_id, row, score }),
        }
    }
    hits.sort_by(|a, b| by_score_desc(a.score, b.score).then(a.photo_id.cmp(&b.photo_id)));
    hits
}

/// Number of hits at or above `threshold` (hits are sorted, so this is a binary search).
pub fn count_matches(hits: &[Hit], threshold: f32) -> usize {
    hits.partition_point(|h| h.score >= threshold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::FaceRow;
    use crate::pipeline::embedder::EMBEDDING_DIM;

    fn unit(i: usize, j: usize, c: f32) -> Vec<f32> {
        let mut v = vec![0.0; EMBEDDING_DIM];
        v[i] = c;
        v[j] = (1.0 - c * c).sqrt();
        v
    }

    #[test]
    fn best_face_per_photo_sorted_descending() {
        let mut t = FaceTable::new(EMBEDDING_DIM);
        for (photo, emb) in [(1, unit(0, 1, 0.2)), (1, unit(0, 1, 0.9)), (2, unit(0, 2, 0.5)), (3, unit(1, 2, 1.0))] {
            let row = FaceRow { face_id: t.len() as i64, photo_id: photo, index: 0, bbox: [0.0; 4], score: 0.99 };
            t.push(row, &emb);
        }
        let q = unit(0, 3, 1.0);
        let hits = rank_photos(&t, &q);
        assert_eq!(hits.iter().map(|h| h.photo_id).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(hits[0].row, 1);
        assert!((hits[0].score - 0.9).abs() < 1e-6);
        assert_eq!(count_matches(&hits, 0.5), 2);
        assert_eq!(count_matches(&hits, 0.95), 0);
        assert_eq!(count_matches(&hits, -1.0), 3);
    }

    /// A NaN score (an embedding that slipped past the checks) ranks last, and a photo's NaN
    /// face does not hide its other faces.
    #[test]
    fn a_nan_never_ranks_first() {
        let mut t = FaceTable::new(EMBEDDING_DIM);
        let nan = vec![f32::NAN; EMBEDDING_DIM];
        for (photo, emb) in [(1, nan.clone()), (1, unit(0, 1, 0.6)), (2, nan.clone()), (3, unit(0, 2, 0.3))] {
            let row = FaceRow { face_id: t.len() as i64, photo_id: photo, index: 0, bbox: [0.0; 4], score: 0.99 };
            t.push(row, &emb);
        }
        let hits = rank_photos(&t, &unit(0, 3, 1.0));
        assert_eq!(hits.iter().map(|h| h.photo_id).collect::<Vec<_>>(), vec![1, 3, 2]);
        assert!((hits[0].score - 0.6).abs() < 1e-6 && hits[2].score.is_nan());
        assert_eq!(count_matches(&hits, 0.0), 2);
    }
}
