//! Grouping rules on small hand-made faces: placing, clustering, questions, exemplars.
use super::*;

fn face(id: i64, photo: i64) -> FaceInfo {
    FaceInfo { id, photo, score: 0.99, size_px: 100.0, person: None, rejected: vec![] }
}

/// Unit vectors around axis `a` (dim 4), slightly perturbed towards axis 3.
fn around(a: usize, t: f32) -> Vec<f32> {
    let mut v = vec![0.0; 4];
    v[a] = (1.0 - t * t).sqrt();
    v[3] = t;
    v
}

#[test]
fn plan_assigns_clusters_and_respects_the_rules() {
    // person 10 has faces 0,1 (axis 0); faces 2,3 are also axis 0; face 4 is axis 0 but in
    // photo 100 like face 0; faces 5,6,7 are a new group on axis 1; face 8 is axis 1 but
    // tiny; face 9 is axis 0 but rejected from person 10
    let mut faces: Vec<FaceInfo> = (0..10).map(|i| face(i, i)).collect();
    let mut emb = Vec::new();
    for (i, a) in [0, 0, 0, 0, 0, 1, 1, 1, 1, 0].iter().enumerate() {
        emb.extend(around(*a, 0.1 * (i % 3) as f32));
    }
    faces[0].person = Some((10, Source::User));
    faces[1].person = Some((10, Source::Auto));
    faces[0].photo = 100;
    faces[4].photo = 100;
    faces[8].size_px = 12.0;
    faces[9].rejected = vec![10];
    let plan = plan(&emb, 4, &faces, &Params::default());
    assert_eq!(plan.assign, vec![(2, 10), (3, 10)]);
    // 4 (same photo as a face of person 10) and 9 (rejected) are axis 0 and group together
    assert_eq!(plan.new_people, vec![vec![5, 6, 7], vec![4, 9]]);
}

#[test]
fn two_faces_of_one_new_photo_never_join_the_same_person() {
    let mut faces = vec![face(0, 1), face(1, 2), face(2, 2)];
    faces[0].person = Some((7, Source::User));
    let emb: Vec<f32> = [around(0, 0.0), around(0, 0.1), around(0, 0.2)].concat();
    let stats = person_stats(4, &faces, row_vectors(&emb, 4));
    let new = Rows { rows: &[1, 2], emb: &emb[4..] };
    assert_eq!(assign(&stats, 4, &faces, new, &Params::default()), vec![(1, 7)]);
}

#[test]
fn new_faces_join_people_and_the_earlier_faces_they_meet() {
    // person 1: faces 0, 1 (axis 0); earlier unassigned faces: 2 (axis 1), 6 (axis 2, in
    // photo 50), 7 (axis 1) and 8 (axis 0, tiny);
    // new faces: 3 (axis 0), 4 (axis 1), 5 (axis 2, in photo 50 like 6)
    let mut faces: Vec<FaceInfo> = (0..9).map(|i| face(i, i)).collect();
    faces[0].person = Some((1, Source::User));
    faces[1].person = Some((1, Source::Auto));
    faces[5].photo = 50;
    faces[6].photo = 50;
    faces[8].size_px = 10.0;
    let axes = [0, 0, 1, 0, 1, 2, 2, 1, 0];
    let emb: Vec<f32> = axes.iter().enumerate().flat_map(|(i, &a)| around(a, 0.05 * (i % 4) as f32)).collect();
    let rows = |rs: &[usize]| -> Vec<f32> { rs.iter().flat_map(|&r| emb[r * 4..r * 4 + 4].to_vec()).collect() };
    let people = person_stats(4, &faces, row_vectors(&emb, 4));
    let (new, pool) = ([3, 4, 5], [2, 6, 7, 8]);
    let (ne, pe) = (rows(&new), PackedCodes::quantized(4, &rows(&pool)));
    let pool = Some(Pool { rows: &pool, codes: &pe });
    let grown = plan_new(4, &faces, &people, Rows { rows: &new, emb: &ne }, pool, &Params::default());
    assert_eq!(grown.assign, vec![(3, 1)]);
    // 4 meets 2 and 7; 5 cannot join 6 (one photo); 8 is too small to be grouped
    assert_eq!(grown.new_people, vec![vec![2, 4, 7]]);
    // the same faces grouped whole give the same people
    let whole = plan(&emb, 4, &faces, &Params::default());
    assert_eq!(whole.assign, vec![(3, 1)]);
    assert_eq!(whole.new_people, vec![vec![2, 4, 7]]);
    // with nothing new, nothing happens, however many earlier faces wait
    let none = plan_new(4, &faces, &people, Rows::NONE, pool, &Params::default());
    assert_eq!(none, Plan::default());
}

#[test]
fn an_earlier_face_joins_a_person_that_grew_near_it() {
    // person 1 is face 0; face 1 (earlier, unassigned) is at cosine 0.5 from it; the new
    // face 2 joins person 1 and lies close to face 1, which then matches person 1 too
    let mut faces: Vec<FaceInfo> = (0..3).map(|i| face(i, i)).collect();
    faces[0].person = Some((1, Source::User));
    let n = (0.75f32 * 0.75 + 0.66 * 0.66).sqrt();
    let emb: Vec<f32> = [[1.0, 0.0, 0.0, 0.0], [0.5, 0.75f32.sqrt(), 0.0, 0.0], [0.75 / n, 0.66 / n, 0.0, 0.0]].concat();
    let people = person_stats(4, &faces, row_vectors(&emb, 4));
    let new = Rows { rows: &[2], emb: &emb[8..] };
    let codes = PackedCodes::quantized(4, &emb[4..8]);
    let plan = plan_new(4, &faces, &people, new, Some(Pool { rows: &[1], codes: &codes }), &Params::default());
    assert_eq!(plan.assign, vec![(1, 1), (2, 1)]);
    assert!(plan.new_people.is_empty());
}

#[test]
fn a_face_that_only_its_group_holds_near_a_person_waits() {
    // person 1 is faces 0, 1 (axis 0); new faces 2, 3 lie 30° from it and face 4 85°, 55°
    // from 2 and 3: average linkage groups 2, 3, 4 and the group matches person 1 on average,
    // but face 4 alone does not match the person it would make (mean cosine 0.33)
    let mut faces: Vec<FaceInfo> = (0..5).map(|i| face(i, i)).collect();
    faces[0].person = Some((1, Source::User));
    faces[1].person = Some((1, Source::User));
    let at = |deg: f32| vec![deg.to_radians().cos(), deg.to_radians().sin(), 0.0, 0.0];
    let emb: Vec<f32> = [at(0.0), at(0.0), at(30.0), at(30.0), at(85.0)].concat();
    let people = person_stats(4, &faces, row_vectors(&emb, 4));
    let grown = plan_new(4, &faces, &people, Rows { rows: &[2, 3, 4], emb: &emb[8..] }, None, &Params::default());
    assert_eq!(grown.assign, vec![(2, 1), (3, 1)]);
    assert!(grown.new_people.is_empty());
    assert_eq!(plan(&emb, 4, &faces, &Params::default()), grown);
}

#[test]
fn a_face_may_join_only_people_it_is_allowed_to_among_many() {
    // 40 people, each one face on its own direction (dim 64); the new face matches person 0
    // best but was rejected from it, and person 1 next, whose photo it shares: it joins 2
    let dim = 64;
    let unit = |a: usize, b: usize, t: f32| -> Vec<f32> {
        let mut v = vec![0.0; dim];
        v[a] = (1.0 - t * t).sqrt();
        v[b] += t;
        v
    };
    let mut faces: Vec<FaceInfo> = (0..41).map(|i| face(i, i)).collect();
    let mut emb: Vec<f32> = Vec::new();
    for (p, f) in faces.iter_mut().take(40).enumerate() {
        f.person = Some((100 + p as i64, Source::User));
        emb.extend(unit(p, 63, 0.0));
    }
    // the new face: mostly towards 0, 1 and 2 (in that order)
    let mut v = vec![0.0; dim];
    (v[0], v[1], v[2]) = (0.75, 0.6, 0.27);
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    emb.extend(&v);
    faces[40].rejected = vec![100];
    faces[40].photo = 1; // person 101's photo
    let people = person_stats(dim, &faces, row_vectors(&emb, dim));
    let p = Params { assign: 0.2, margin: 0.0, ..Params::default() };
    let got = assign(&people, dim, &faces, Rows { rows: &[40], emb: &v }, &p);
    assert_eq!(got, vec![(40, 102)]);
}

#[test]
fn ambiguous_faces_wait_for_the_user() {
    // a face halfway between two people is assigned to neither
    let mut faces = vec![face(0, 1), face(1, 2), face(2, 3)];
    faces[0].person = Some((1, Source::User));
    faces[1].person = Some((2, Source::User));
    let mid = {
        let s = std::f32::consts::FRAC_1_SQRT_2;
        vec![s, s, 0.0, 0.0]
    };
    let emb: Vec<f32> = [around(0, 0.0), around(1, 0.0), mid].concat();
    let p = Params { assign: 0.5, ..Params::default() };
    assert!(plan(&emb, 4, &faces, &p).assign.is_empty());
    // both people are named: it is a question for "Who is this?"
    let named: HashSet<i64> = [1, 2].into();
    let q = suggestions(4, &faces, &named, &p, row_vectors(&emb, 4));
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].row, 2);
}

#[test]
fn questions_ask_what_is_uncertain_not_what_is_certain() {
    // person 1 (named): three faces around axis 0; face 3 sits near it (auto, confident),
    // face 4 is auto but far (uncertain), faces 5 and 6 are unassigned at two distances
    let mut faces: Vec<FaceInfo> = (0..7).map(|i| face(i, i)).collect();
    for f in faces.iter_mut().take(3) {
        f.person = Some((1, Source::User));
    }
    faces[3].person = Some((1, Source::Auto));
    faces[4].person = Some((1, Source::Auto));
    let emb: Vec<f32> =
        [around(0, 0.05), around(0, 0.1), around(0, 0.15), around(0, 0.1), around(0, 0.9), around(0, 0.8), around(0, 0.7)].concat();
    let p = Params::default();
    let named: HashSet<i64> = [1].into();
    let q = suggestions(4, &faces, &named, &p, row_vectors(&emb, 4));
    let rows: Vec<usize> = q.iter().map(|s| s.row).collect();
    assert!(!rows.contains(&3), "a confident face is not asked about: {q:?}");
    assert!(rows.contains(&4) && rows.contains(&5), "{q:?}");
    // nearest the decision first
    assert!(q.windows(2).all(|w| (w[0].score - p.assign).abs() <= (w[1].score - p.assign).abs()), "{q:?}");
}

#[test]
fn exemplars_prefer_what_the_user_vouched_for() {
    let mut faces = vec![face(0, 1), face(1, 2), face(2, 3)];
    faces[0].person = Some((5, Source::Auto));
    faces[1].person = Some((5, Source::Confirmed));
    assert_eq!(exemplars(&faces, 5), vec![1]);
    faces[1].person = Some((5, Source::Auto));
    assert_eq!(exemplars(&faces, 5), vec![0, 1]);
    assert!(exemplars(&faces, 6).is_empty());
}
