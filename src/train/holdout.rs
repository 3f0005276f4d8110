//! The validation a fine-tuning run gets when none is given: people held back from training,
//! so the check asks what matters for a photo library (does the embedder still tell apart
//! people it never trained on?), and the rule that decides whether a run made it worse.

use image::RgbImage;

use super::data::Dataset;
use super::ValSet;
use crate::util::rng::Rng;

/// Pairs of one kind (same person / different people) at most; more are sampled.
const MAX_PAIRS_PER_KIND: usize = 2000;
/// Same-person pairs of one person at most, so one person with many photos does not make the
/// whole check.
const MAX_PAIRS_PER_PERSON: usize = 100;
/// The split does not follow `--seed`: a run resumed with another seed validates (and trains)
/// on the same people.
const SPLIT_SEED: u64 = 0x5EED;
/// Fewer same-person pairs than this say too little to judge a run by.
const MIN_SAME_PAIRS: usize = 20;

/// How many of `people` to hold back: a fifth, at least 2, at most 50, and never so many that
/// fewer than 3 people are left to train on. None when there are too few people to spare.
pub fn people_to_hold(people: usize) -> Option<usize> {
    let h = (people as f64 / 5.0).round().clamp(2.0, 50.0) as usize;
    (people >= h + 3).then_some(h)
}

/// Moves a fixed pseudo-random choice of people (see [`people_to_hold`]) with their photos out
/// of `ds` and makes validation pairs of them: every same-person pair (sampled down to
/// [`MAX_PAIRS_PER_PERSON`] a person and [`MAX_PAIRS_PER_KIND`] in all) and as many
/// different-people pairs, in 10 folds. `ds` keeps the rest, relabelled. None (and `ds`
/// untouched) when there are too few people or pairs.
pub fn hold_out_people(ds: &mut Dataset) -> Option<ValSet> {
    let seed = SPLIT_SEED;
    let h = people_to_hold(ds.people.len())?;
    let mut order: Vec<usize> = (0..ds.people.len()).collect();
    Rng::stream(seed, 7, 0).shuffle(&mut order);
    let mut held = vec![false; ds.people.len()];
    for &p in &order[..h] {
        held[p] = true;
    }
    // same-person pairs among the held-back photos
    let mut photos_of: Vec<Vec<usize>> = vec![Vec::new(); ds.people.len()];
    for (i, &l) in ds.labels.iter().enumerate() {
        if held[l as usize] {
            photos_of[l as usize].push(i);
        }
    }
    let same_total: usize = photos_of.iter().map(|v| (v.len() * v.len().saturating_sub(1) / 2).min(MAX_PAIRS_PER_PERSON)).sum();
    if same_total < MIN_SAME_PAIRS {
        return None;
    }
    // take the held-back photos out, relabel the rest 0..
    let mut rng = Rng::stream(seed, 7, 1);
    let (mut crops, mut labels) = (Vec::new(), Vec::new());
    let mut val_crops: Vec<RgbImage> = Vec::new();
    let mut val_index = vec![usize::MAX; ds.crops.len()];
    let mut new_label = vec![u32::MAX; ds.people.len()];
    let mut people = Vec::new();
    for (p, name) in ds.people.iter().enumerate() {
        if !held[p] {
            new_label[p] = people.len() as u32;
            people.push(name.clone());
        }
    }
    for (i, (c, &l)) in std::mem::take(&mut ds.crops).into_iter().zip(&ds.labels).enumerate() {
        if held[l as usize] {
            val_index[i] = val_crops.len();
            val_crops.push(c);
        } else {
            crops.push(c);
            labels.push(new_label[l as usize]);
        }
    }
    let mut same: Vec<(usize, usize)> = Vec::new();
    for v in &photos_of {
        let n = v.len();
        let mut mine: Vec<(usize, usize)> = Vec::new();
        if n * n.saturating_sub(1) / 2 <= MAX_PAIRS_PER_PERSON {
            for (k, &a) in v.iter().enumerate() {
                for &b in &v[k + 1..] {
                    mine.push((val_index[a], val_index[b]));
                }
            }
        } else {
            // a person with many photos: distinct pairs drawn at random, never all of them built
            let mut drawn = std::collections::HashSet::new();
            while mine.len() < MAX_PAIRS_PER_PERSON {
                let (a, b) = (rng.below(n), rng.below(n));
                if a != b && drawn.insert((a.min(b), a.max(b))) {
                    mine.push((val_index[v[a.min(b)]], val_index[v[a.max(b)]]));
                }
            }
        }
        same.extend(mine);
    }
    rng.shuffle(&mut same);
    same.truncate(MAX_PAIRS_PER_KIND);
    // as many different-people pairs, drawn at random (no pair twice)
    let owner: Vec<usize> = {
        let mut o = vec![0; val_crops.len()];
        for (p, v) in photos_of.iter().enumerate() {
            for &i in v {
                o[val_index[i]] = p;
            }
        }
        o
    };
    let mut seen = std::collections::HashSet::new();
    let mut diff: Vec<(usize, usize)> = Vec::new();
    let n = val_crops.len();
    let mut tries = 0;
    while diff.len() < same.len() && tries < 100 * same.len() {
        tries += 1;
        let (a, b) = (rng.below(n), rng.below(n));
        let key = (a.min(b), a.max(b));
        if owner[a] != owner[b] && seen.insert(key) {
            diff.push(key);
        }
    }
    let mut pairs: Vec<(usize, usize, bool)> =
        same.into_iter().map(|(a, b)| (a, b, true)).chain(diff.into_iter().map(|(a, b)| (a, b, false))).collect();
    rng.shuffle(&mut pairs);
    ds.crops = crops;
    ds.labels = labels;
    ds.people = people;
    Some(ValSet { pairs: pairs.into_iter().enumerate().map(|(i, (a, b, s))| (a, b, s, i % 10)).collect(), crops: val_crops, n_folds: 10 })
}

/// How far below its starting accuracy a run may end before it counts as worse, on `pairs`
/// validation pairs: two binomial standard errors of the accuracy, plus one pair. At 99 %
/// on 300 pairs that is 1.5 points; on 6,000 pairs 0.27.
pub fn worse_margin(before: f64, pairs: usize) -> f64 {
    let n = pairs.max(1) as f64;
    let p = before.clamp(1.0 / n, 1.0 - 1.0 / n);
    2.0 * (p * (1.0 - p) / n).sqrt() + 1.0 / n
}

/// Whether a run that started at `before` and ended at `after` on `pairs` validation pairs
/// made the embedder worse (see [`worse_margin`]).
pub fn is_worse(before: f64, after: f64, pairs: usize) -> bool {
    after < before - worse_margin(before, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(photos_per_person: &[usize]) -> Dataset {
        let (mut crops, mut labels) = (Vec::new(), Vec::new());
        for (p, &n) in photos_per_person.iter().enumerate() {
            for k in 0..n {
                crops.push(RgbImage::from_pixel(2, 2, image::Rgb([p as u8, k as u8, 0])));
                labels.push(p as u32);
            }
        }
        Dataset {
            crops,
            labels,
            people: (0..photos_per_person.len()).map(|p| format!("person{p}")).collect(),
            skipped: Vec::new(),
            people_left_out: 0,
        }
    }

    #[test]
    fn held_back_people_leave_training_and_make_balanced_pairs() {
        let mut ds = dataset(&[11; 15]);
        let val = hold_out_people(&mut ds).expect("15 people: 3 held back");
        assert_eq!((ds.people.len(), ds.crops.len(), val.crops.len()), (12, 132, 33));
        assert_eq!(ds.labels.iter().max(), Some(&11), "relabelled 0..12");
        // no photo of a held-back person is trained on (pixel red = person)
        let held: std::collections::HashSet<u8> = val.crops.iter().map(|c| c.get_pixel(0, 0)[0]).collect();
        assert_eq!(held.len(), 3);
        assert!(ds.crops.iter().all(|c| !held.contains(&c.get_pixel(0, 0)[0])));
        let same = val.pairs.iter().filter(|p| p.2).count();
        assert_eq!((same, val.pairs.len()), (3 * 55, 2 * 3 * 55));
        for &(a, b, s, fold) in &val.pairs {
            assert_eq!(val.crops[a].get_pixel(0, 0)[0] == val.crops[b].get_pixel(0, 0)[0], s);
            assert!(a != b && fold < 10);
        }
        // the same seed, the same split
        let mut again = dataset(&[11; 15]);
        assert_eq!(hold_out_people(&mut again).unwrap().pairs, val.pairs);
        // one person with many photos makes at most a fixed share of the pairs
        let mut lopsided = dataset(&[200, 11, 11, 11, 11, 11, 11, 11, 11, 11]);
        let v = hold_out_people(&mut lopsided).unwrap();
        assert!(v.pairs.iter().filter(|p| p.2).count() <= 2 * MAX_PAIRS_PER_PERSON);
    }

    #[test]
    fn too_few_people_or_pairs_hold_nothing_back() {
        for sizes in [&[11usize; 4][..], &[1; 30][..]] {
            let mut ds = dataset(sizes);
            let before = (ds.crops.len(), ds.people.len());
            assert!(hold_out_people(&mut ds).is_none());
            assert_eq!((ds.crops.len(), ds.people.len()), before);
        }
    }

    #[test]
    fn worse_means_below_the_noise_of_the_validation_set() {
        assert!(!is_worse(0.99, 0.985, 330), "half a point on 330 pairs is noise");
        assert!(is_worse(0.99, 0.70, 330));
        assert!(is_worse(0.99, 0.975, 6000));
        assert!(!is_worse(0.95, 0.99, 30), "better is never worse");
        assert!((worse_margin(0.99, 300) - 0.0148).abs() < 1e-3);
    }
}
