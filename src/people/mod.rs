//! People: faces grouped into persons. Pure logic over embeddings and the user's decisions
//! (who is whom, who is not whom); the catalog stores the result and the app edits it.
//!
//! After an index run, [`plan_new`] clusters the faces it added, with the unassigned faces of
//! earlier runs near them, by average linkage ([`cluster::average_linkage`]); each group then
//! joins the existing person its faces match on average (clearly better than any other; a face
//! of it that does not match the person it would make waits), and the groups left of at least
//! [`Params::min_faces`] faces become new people ([`plan`]: the same over a whole library). Rules that always hold: two faces of one
//! photo are never one person; a face the user rejected from a person never goes back to it;
//! faces the user put or confirmed somewhere are never moved (only unassigned faces are placed);
//! small or low-score faces (strangers in the background) are left out unless the user assigns
//! them.

pub mod cluster;
pub mod merges;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

pub use crate::kernels::int8::PackedCodes;

/// Thresholds of people grouping (see docs/people.md and docs/benchmarks.md for how they were chosen).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Params {
    /// Average-linkage threshold: two groups merge while the mean cosine of all their pairs of
    /// faces is at least this.
    pub link: f32,
    /// Candidate neighbours per face (the graph average linkage walks).
    pub k: usize,
    /// Neighbours below this cosine are never candidates.
    pub floor: f32,
    /// An unassigned face joins a person when its mean cosine to the person's faces is at least
    /// this …
    pub assign: f32,
    /// … and beats every other person by this much (else it waits in "Who is this?").
    pub margin: f32,
    /// Faces a new group needs to be listed as a person.
    pub min_faces: usize,
    /// Detection score below which a face is not grouped automatically.
    pub min_score: f32,
    /// Shorter box side (original pixels) below which a face is not grouped automatically.
    pub min_face_px: f32,
    /// "Who is this?" lists faces whose mean cosine to a named person is at least this.
    pub suggest: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            link: 0.55,
            k: 16,
            floor: 0.30,
            assign: 0.55,
            margin: 0.05,
            min_faces: 2,
            min_score: 0.80,
            min_face_px: 40.0,
            suggest: 0.40,
        }
    }
}

/// How a face came to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Grouping put it there; it may be wrong.
    Auto,
    /// The user confirmed a suggestion.
    Confirmed,
    /// The user put it there (move, new person, save as person).
    User,
    /// A named region another tool wrote into the photo's metadata put it there.
    Imported,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Auto => "auto",
            Source::Confirmed => "confirmed",
            Source::User => "user",
            Source::Imported => "imported",
        }
    }
    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "auto" => Some(Source::Auto),
            "confirmed" => Some(Source::Confirmed),
            "user" => Some(Source::User),
            "imported" => Some(Source::Imported),
            _ => None,
        }
    }
    /// The user vouched for it (here, or by naming it in another tool).
    pub fn is_user(self) -> bool {
        self != Source::Auto
    }
}

/// One face as grouping sees it (its embedding is row `i` of the matrix passed alongside).
#[derive(Debug, Clone, PartialEq)]
pub struct FaceInfo {
    pub id: i64,
    pub photo: i64,
    pub score: f32,
    /// Shorter side of the face box, original pixels.
    pub size_px: f32,
    pub person: Option<(i64, Source)>,
    /// People this face is not.
    pub rejected: Vec<i64>,
}

impl FaceInfo {
    /// Big and sharp enough to be grouped without the user.
    pub fn eligible(&self, p: &Params) -> bool {
        self.score >= p.min_score && self.size_px >= p.min_face_px
    }

    /// In no person yet, and [`FaceInfo::eligible`]: grouping may place it.
    pub fn waiting(&self, p: &Params) -> bool {
        self.person.is_none() && self.eligible(p)
    }
}

/// A person's faces summarised for matching: sum of unit embeddings, count, photos.
#[derive(Debug, Clone)]
pub struct PersonStats {
    pub id: i64,
    pub sum: Vec<f32>,
    pub count: usize,
    pub photos: HashSet<i64>,
}

impl PersonStats {
    /// Mean cosine of `e` (unit) with this person's faces.
    pub fn mean_cosine(&self, e: &[f32]) -> f32 {
        e.iter().zip(&self.sum).map(|(a, b)| a * b).sum::<f32>() / self.count.max(1) as f32
    }
}

/// Each person's mean vector (their summed unit vectors over their count), row-major: a
/// group's mean cosine with a person is its mean vector's dot product with this.
pub fn person_means(people: &[PersonStats]) -> Vec<f32> {
    people.iter().flat_map(|s| s.sum.iter().map(move |x| x / s.count.max(1) as f32)).collect()
}

/// Row `i` of a row-major matrix of `dim` columns, as [`person_stats`] and [`suggestions`]
/// read their vectors.
pub fn row_vectors<'a>(emb: &'a [f32], dim: usize) -> impl Fn(usize) -> Cow<'a, [f32]> + Sync + 'a {
    move |i| Cow::Borrowed(&emb[i * dim..(i + 1) * dim])
}

/// Per-person sums over `faces` (face `i`'s vector is `vector(i)`), by person id.
pub fn person_stats<'a>(dim: usize, faces: &[FaceInfo], vector: impl Fn(usize) -> Cow<'a, [f32]>) -> Vec<PersonStats> {
    person_sums(dim, faces, |i, sum| sum.iter_mut().zip(vector(i).iter()).for_each(|(a, x)| *a += x))
}

/// [`person_stats`] where `add(i, sum)` adds face `i`'s vector to `sum` (from 8-bit codes,
/// without a vector per face).
pub fn person_sums(dim: usize, faces: &[FaceInfo], add: impl Fn(usize, &mut [f32])) -> Vec<PersonStats> {
    let mut by: HashMap<i64, PersonStats> = HashMap::new();
    for (i, f) in faces.iter().enumerate() {
        if let Some((p, _)) = f.person {
            let s = by.entry(p).or_insert_with(|| PersonStats { id: p, sum: vec![0.0; dim], count: 0, photos: HashSet::new() });
            add(i, &mut s.sum);
            s.count += 1;
            s.photos.insert(f.photo);
        }
    }
    let mut v: Vec<PersonStats> = by.into_values().collect();
    v.sort_by_key(|s| s.id);
    v
}

/// The best person for a face (or a group of faces, `e` their mean): (person, mean cosine,
/// margin over the next best), skipping people it was rejected from and people already in one
/// of its `photos`.
pub fn best_person(people: &[PersonStats], e: &[f32], photos: &[i64], rejected: &[i64]) -> Option<(i64, f32, f32)> {
    let (mut best, mut second): (Option<(i64, f32)>, f32) = (None, f32::NEG_INFINITY);
    for p in people {
        if rejected.contains(&p.id) || photos.iter().any(|ph| p.photos.contains(ph)) {
            continue;
        }
        let s = p.mean_cosine(e);
        match best {
            Some((_, b)) if s <= b => second = second.max(s),
            _ => {
                if let Some((_, b)) = best {
                    second = second.max(b);
                }
                best = Some((p.id, s));
            }
        }
    }
    best.map(|(id, s)| (id, s, s - second))
}

/// Some rows of a face list with their vectors: row `rows[i]` is `emb[i * dim..(i + 1) * dim]`.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub rows: &'a [usize],
    pub emb: &'a [f32],
}

impl Rows<'_> {
    /// No rows.
    pub const NONE: Rows<'static> = Rows { rows: &[], emb: &[] };

    fn vector(&self, i: usize, dim: usize) -> &[f32] {
        &self.emb[i * dim..(i + 1) * dim]
    }
}

/// Unassigned faces of earlier runs as 8-bit codes: row `rows[j]` is vector `j` of `codes`.
#[derive(Debug, Clone, Copy)]
pub struct Pool<'a> {
    pub rows: &'a [usize],
    pub codes: &'a PackedCodes,
}

/// People compared per face or group when placing it: the best of them that it may join wins.
const PEOPLE_COMPARED: usize = 16;

/// Groups of faces (rows of `faces`; `sums` holds each group's summed vectors) placed with
/// existing people (`means`: their [`person_means`]): a group joins the person whose mean cosine with all its faces
/// is at least [`Params::assign`] and beats every other person it may join by
/// [`Params::margin`], never a person that one of its faces was rejected from or that is
/// already in one of its photos, nor one given a face of the same photo in this plan (`taken`:
/// the (photo, person) pairs placed so far). Returns the person of each group, or `None`.
fn place_groups(
    people: &[PersonStats],
    means: &[f32],
    faces: &[FaceInfo],
    groups: &[Vec<usize>],
    sums: &[f32],
    taken: &mut HashSet<(i64, i64)>,
    p: &Params,
) -> Vec<Option<i64>> {
    let mut out = vec![None; groups.len()];
    if people.is_empty() || groups.is_empty() {
        return out;
    }
    // `means` holds one row per person
    let dim = means.len() / people.len();
    // a group's mean cosine with a person is its mean vector's dot product with the person's mean
    let queries: Vec<f32> =
        groups.iter().enumerate().flat_map(|(g, rows)| sums[g * dim..(g + 1) * dim].iter().map(move |x| x / rows.len() as f32)).collect();
    let near = cluster::knn_between(&queries, means, dim, PEOPLE_COMPARED, f32::NEG_INFINITY);
    let mut found: Vec<(usize, i64, f32)> = Vec::new();
    for (g, list) in near.iter().enumerate() {
        let rows = &groups[g];
        let photos: Vec<i64> = rows.iter().map(|&r| faces[r].photo).collect();
        let rejected: Vec<i64> = rows.iter().flat_map(|&r| faces[r].rejected.iter().copied()).collect();
        let may = |s: &PersonStats| !rejected.contains(&s.id) && !photos.iter().any(|ph| s.photos.contains(ph));
        let mut allowed = list.iter().filter(|&&(j, _)| may(&people[j as usize]));
        let truncated = list.len() == PEOPLE_COMPARED && people.len() > PEOPLE_COMPARED;
        let (id, s, margin) = match (allowed.next(), allowed.next()) {
            (Some(&(best, s)), Some(&(_, t))) => (people[best as usize].id, s, s - t),
            // the next person it may join is past the list: no more than the list's last score
            (Some(&(best, s)), None) if truncated => (people[best as usize].id, s, s - list[PEOPLE_COMPARED - 1].1),
            (Some(&(best, s)), None) => (people[best as usize].id, s, f32::INFINITY),
            // every person compared is ruled out (a crowded photo, many rejections): all of them
            (None, _) if truncated => match best_person(people, &queries[g * dim..(g + 1) * dim], &photos, &rejected) {
                Some(b) => b,
                None => continue,
            },
            (None, _) => continue,
        };
        if s >= p.assign && margin >= p.margin {
            found.push((g, id, s));
        }
    }
    // best first; a person takes a photo once
    found.sort_by(|a, b| crate::pipeline::by_score_desc(a.2, b.2).then(a.0.cmp(&b.0)));
    for (g, id, _) in found {
        let photos: Vec<(i64, i64)> = groups[g].iter().map(|&r| (faces[r].photo, id)).collect();
        if photos.iter().all(|k| !taken.contains(k)) {
            taken.extend(photos);
            out[g] = Some(id);
        }
    }
    out
}

/// Faces among `new` that are unassigned and eligible, each placed alone with existing people
/// (see [`place_groups`]). Returns (row, person).
pub fn assign(people: &[PersonStats], dim: usize, faces: &[FaceInfo], new: Rows, p: &Params) -> Vec<(usize, i64)> {
    assert_eq!(new.emb.len(), new.rows.len() * dim);
    let open: Vec<usize> = (0..new.rows.len()).filter(|&i| faces[new.rows[i]].waiting(p)).collect();
    let groups: Vec<Vec<usize>> = open.iter().map(|&i| vec![new.rows[i]]).collect();
    let sums: Vec<f32> = open.iter().flat_map(|&i| new.vector(i, dim).iter().copied()).collect();
    let placed = place_groups(people, &person_means(people), faces, &groups, &sums, &mut HashSet::new(), p);
    let mut v: Vec<(usize, i64)> = groups.iter().zip(placed).filter_map(|(g, id)| Some((g[0], id?))).collect();
    v.sort();
    v
}

/// What grouping proposes after an index run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// (row, existing person) for faces joining a person.
    pub assign: Vec<(usize, i64)>,
    /// Rows of each new person, largest first.
    pub new_people: Vec<Vec<usize>>,
}

/// Places every unassigned eligible face (rows of `emb`, one per `faces` entry): with an
/// existing person when it clearly matches one, else in a new person when it groups with at
/// least `min_faces - 1` other such faces. The whole library's grouping, as
/// [`plan_new`] with every face new.
pub fn plan(emb: &[f32], dim: usize, faces: &[FaceInfo], p: &Params) -> Plan {
    assert_eq!(emb.len(), faces.len() * dim);
    let people = person_stats(dim, faces, row_vectors(emb, dim));
    let rows: Vec<usize> = (0..faces.len()).collect();
    plan_new(dim, faces, &people, Rows { rows: &rows, emb }, None, p)
}

/// Places the unassigned eligible faces among `new` (incremental grouping: only what an index
/// run added is looked at), as average linkage over the whole library would: the new faces
/// and the faces of `pool` (the unassigned faces of earlier runs) within [`Params::floor`] of
/// one of them are clustered with average linkage first; then each group joins the existing
/// person (`people`) that its faces match on average, clearly better than any other (see
/// [`place_groups`]; a lone face the same way), and the groups left of at least `min_faces`
/// become new people. `new` and `pool` hold different rows; the pool is searched by 8-bit dot
/// products ([`cluster::knn_codes`]), its faces near a new one clustered as their codes decode.
pub fn plan_new(dim: usize, faces: &[FaceInfo], people: &[PersonStats], new: Rows, pool: Option<Pool>, p: &Params) -> Plan {
    assert_eq!(new.emb.len(), new.rows.len() * dim);
    if let Some(pool) = pool {
        assert!(pool.codes.len() == pool.rows.len() && pool.codes.dim() == dim, "the pool's codes are not one per row");
    }
    let (mut rest, mut sub) = (Vec::new(), Vec::new());
    for (i, &r) in new.rows.iter().enumerate() {
        if faces[r].waiting(p) {
            rest.push(r);
            sub.extend_from_slice(new.vector(i, dim));
        }
    }
    if rest.is_empty() {
        return Plan::default();
    }
    if let Some(pool) = pool {
        // the earlier faces near a new face get another look
        let mut near: Vec<u32> = cluster::knn_codes(&sub, pool.codes, p.k, p.floor).into_iter().flatten().map(|(j, _)| j).collect();
        near.sort_unstable();
        near.dedup();
        let mut seen: HashSet<usize> = rest.iter().copied().collect();
        for j in near {
            let r = pool.rows[j as usize];
            if faces[r].waiting(p) && seen.insert(r) {
                rest.push(r);
                sub.extend(pool.codes.decode(j as usize));
            }
        }
    }
    let items: Vec<cluster::Item> =
        rest.iter().map(|&r| cluster::Item { photo: faces[r].photo, person: None, rejected: faces[r].rejected.clone() }).collect();
    let nb = cluster::knn_quantized(&sub, dim, p.k, p.floor);
    let labels = cluster::average_linkage(&sub, dim, &items, &nb, p.link);
    let mut by: HashMap<usize, (Vec<usize>, Vec<f32>)> = HashMap::new();
    for (i, l) in labels.into_iter().enumerate() {
        let (rows, sum) = by.entry(l).or_insert_with(|| (Vec::new(), vec![0.0; dim]));
        rows.push(rest[i]);
        sum.iter_mut().zip(&sub[i * dim..(i + 1) * dim]).for_each(|(a, x)| *a += x);
    }
    let mut groups: Vec<(Vec<usize>, Vec<f32>)> = by
        .into_values()
        .map(|(mut rows, sum)| {
            rows.sort_unstable();
            (rows, sum)
        })
        .collect();
    groups.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0[0].cmp(&b.0[0])));
    let rows: Vec<Vec<usize>> = groups.iter().map(|g| g.0.clone()).collect();
    let sums: Vec<f32> = groups.iter().flat_map(|g| g.1.iter().copied()).collect();
    let mut taken: HashSet<(i64, i64)> = HashSet::new();
    let means = person_means(people);
    let placed = place_groups(people, &means, faces, &rows, &sums, &mut taken, p);
    // a group kept from the person it matches best only by some of its faces (one rejected
    // that person, or shares a photo with it) leaves those faces behind and tries again
    let at: HashMap<usize, usize> = rest.iter().enumerate().map(|(i, &r)| (r, i)).collect();
    // the person each group of several faces left unplaced matches best, if any reaches `assign`
    let unplaced: Vec<usize> = (0..rows.len()).filter(|&g| placed[g].is_none() && rows[g].len() > 1).collect();
    let queries: Vec<f32> =
        unplaced.iter().flat_map(|&g| sums[g * dim..(g + 1) * dim].iter().map(|x| x / rows[g].len() as f32).collect::<Vec<_>>()).collect();
    let top: HashMap<usize, u32> = unplaced
        .iter()
        .zip(cluster::knn_between(&queries, &means, dim, 1, p.assign))
        .filter_map(|(&g, best)| Some((g, best.first()?.0)))
        .collect();
    // a face joins with its group only when it matches the person the group makes with it (its
    // mean cosine with the person's faces and the rest of the group that joins at least
    // `assign`), as average linkage over the whole library would need; one that does not waits
    // (dropped until every face left matches, and its photo is free for the person again)
    let index: HashMap<i64, usize> = people.iter().enumerate().map(|(j, s)| (s.id, j)).collect();
    let fitting = |g: &[usize], id: i64, taken: &mut HashSet<(i64, i64)>| -> Vec<(usize, i64)> {
        let s = &people[index[&id]];
        let vector = |r: &usize| &sub[at[r] * dim..(at[r] + 1) * dim];
        let mut kept: Vec<usize> = g.to_vec();
        loop {
            let mut sum = s.sum.clone();
            kept.iter().for_each(|r| sum.iter_mut().zip(vector(r)).for_each(|(a, x)| *a += x));
            let others = (s.count + kept.len()).saturating_sub(1).max(1) as f32;
            let fits = |r: &usize| {
                let e = vector(r);
                let own: f32 = e.iter().map(|x| x * x).sum();
                (e.iter().zip(&sum).map(|(x, a)| x * a).sum::<f32>() - own) / others >= p.assign
            };
            let (stay, out): (Vec<usize>, Vec<usize>) = kept.iter().partition(|r| fits(r));
            out.iter().for_each(|&r| {
                taken.remove(&(faces[r].photo, id));
            });
            kept = stay;
            if out.is_empty() || kept.is_empty() {
                return kept.into_iter().map(|r| (r, id)).collect();
            }
        }
    };
    let mut plan = Plan::default();
    for (i, (g, person)) in rows.into_iter().zip(placed).enumerate() {
        if let Some(id) = person {
            plan.assign.extend(fitting(&g, id, &mut taken));
            continue;
        }
        let (stay, left): (Vec<usize>, Vec<usize>) = match top.get(&i) {
            Some(&j) => {
                let s = &people[j as usize];
                g.iter().partition(|&&r| !faces[r].rejected.contains(&s.id) && !s.photos.contains(&faces[r].photo))
            }
            _ => (Vec::new(), g.clone()),
        };
        let joined = if !stay.is_empty() && !left.is_empty() {
            let sum: Vec<f32> = (0..dim).map(|d| stay.iter().map(|r| sub[at[r] * dim + d]).sum()).collect();
            place_groups(people, &means, faces, std::slice::from_ref(&stay), &sum, &mut taken, p)[0]
        } else {
            None
        };
        match joined {
            Some(id) => {
                plan.assign.extend(fitting(&stay, id, &mut taken));
                if left.len() >= p.min_faces.max(1) {
                    plan.new_people.push(left);
                }
            }
            None if g.len() >= p.min_faces.max(1) => plan.new_people.push(g),
            None => {}
        }
    }
    plan.assign.sort();
    plan.new_people.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    plan
}

/// One "Who is this?" question: is face `row` person `person`?
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Suggestion {
    pub row: usize,
    pub person: i64,
    /// Mean cosine with the person's faces.
    pub score: f32,
}

/// Faces worth asking about, the most uncertain first (score nearest [`Params::assign`], where
/// grouping decides): unassigned faces whose best named person reaches [`Params::suggest`], and
/// faces grouping put with a named person that sit near that boundary. A face placed with a
/// margin (leave-one-out mean cosine at least `assign + margin`) is shown in its person, not
/// asked about. `named` lists the people with a name; face `i`'s vector is `vector(i)` (the app
/// passes the decoded 8-bit codes: a question, not a ranking, needs no more).
pub fn suggestions<'a>(
    dim: usize,
    faces: &[FaceInfo],
    named: &HashSet<i64>,
    p: &Params,
    vector: impl Fn(usize) -> Cow<'a, [f32]> + Sync,
) -> Vec<Suggestion> {
    use rayon::prelude::*;
    if named.is_empty() {
        return Vec::new();
    }
    let people: Vec<PersonStats> = person_stats(dim, faces, &vector).into_iter().filter(|s| named.contains(&s.id)).collect();
    let mut out: Vec<Suggestion> = faces
        .par_iter()
        .enumerate()
        .filter_map(|(r, f)| {
            match f.person {
                Some((id, Source::Auto)) if named.contains(&id) => {
                    let s = people.iter().find(|s| s.id == id)?;
                    let e = vector(r);
                    // its own contribution left out
                    let own: f32 = e.iter().map(|x| x * x).sum();
                    let score = if s.count > 1 { (s.mean_cosine(&e) * s.count as f32 - own) / (s.count - 1) as f32 } else { 0.0 };
                    (score < p.assign + p.margin).then_some(Suggestion { row: r, person: id, score })
                }
                None if f.eligible(p) => {
                    let (id, s, _) = best_person(&people, &vector(r), &[f.photo], &f.rejected)?;
                    (s >= p.suggest).then_some(Suggestion { row: r, person: id, score: s })
                }
                _ => None,
            }
        })
        .collect();
    // a grouped face below the line is the likeliest mistake: first; the rest by their distance to it
    let doubt = |s: &Suggestion| match faces[s.row].person {
        Some(_) => (s.score - p.assign).max(0.0),
        None => (s.score - p.assign).abs(),
    };
    out.sort_by(|a, b| doubt(a).total_cmp(&doubt(b)).then(faces[a.row].id.cmp(&faces[b.row].id)));
    out
}

/// The faces that stand for a person in a search: the ones the user vouched for, or all of
/// them when there are none. Returns rows.
pub fn exemplars(faces: &[FaceInfo], person: i64) -> Vec<usize> {
    let mine: Vec<usize> = (0..faces.len()).filter(|&r| faces[r].person.map(|p| p.0) == Some(person)).collect();
    let vouched: Vec<usize> = mine.iter().copied().filter(|&r| faces[r].person.is_some_and(|p| p.1.is_user())).collect();
    if vouched.is_empty() {
        mine
    } else {
        vouched
    }
}

#[cfg(test)]
mod tests;
