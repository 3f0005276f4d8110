//! One `facefind train` run from options to files: list DATA, crop faces (cached), build the
//! model, train with checkpoints, write `embedder.safetensors` + manifest and `train.csv`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context};
use image::RgbImage;
use serde::Serialize;

use super::data::{self, CropCache};
use super::{holdout, Config, EpochLog, InitFrom, Model, Outcome, Trainer, ValSet};
use crate::pipeline::Pipeline;

/// The command's options beyond the training [`Config`].
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub data: PathBuf,
    pub out: PathBuf,
    pub config: Config,
    pub models: crate::pipeline::ModelSource,
    pub val_pairs: Option<PathBuf>,
    pub val_images: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    pub save_every: usize,
    pub min_images: usize,
    /// Crop cache (default: in the user cache directory).
    pub cache: Option<PathBuf>,
    /// Write the embedder even when validation says it got worse.
    pub keep_worse: bool,
}

/// What the run reports as it goes.
pub enum Event<'a> {
    Cropping { done: usize, total: usize },
    Ready { people: usize, images: usize, skipped: usize, steps_per_epoch: usize },
    Step { epoch: usize, step: usize, steps: usize, loss: f64 },
    Epoch(&'a EpochLog),
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub out: String,
    pub embedder: Option<String>,
    pub people: usize,
    pub people_left_out: usize,
    pub images: usize,
    pub skipped: Vec<Skipped>,
    pub epochs: Vec<EpochLog>,
    pub interrupted: bool,
    /// What the run was checked on, and how it came out.
    pub validation: Option<Validation>,
    /// Why no embedder was written although the run finished (it got worse).
    pub refused: Option<String>,
}

/// The validation of a run: accuracy of the starting weights and of the result, on what.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// "pairs FILE" or "N people held back from training".
    pub source: String,
    pub pairs: usize,
    /// None from scratch (no starting point).
    pub before: Option<f64>,
    pub after: Option<f64>,
    /// How far below `before` counts as worse on this many pairs ([`holdout::worse_margin`]).
    pub margin: Option<f64>,
    pub worse: bool,
}

/// Loads validation pairs and their crops.
fn val_set(p: &Pipeline, cache: &mut CropCache, pairs: &Path, images: &Path) -> anyhow::Result<ValSet> {
    let text = std::fs::read_to_string(pairs).with_context(|| format!("cannot read {}", pairs.display()))?;
    let parsed = crate::eval::pairs::parse_pairs(&text).with_context(|| format!("{}", pairs.display()))?;
    let paths = parsed.image_paths(images);
    let crops = data::crops(p, cache, &paths, &mut |_, _| {})?;
    let mut index = std::collections::HashMap::new();
    let mut kept: Vec<RgbImage> = Vec::new();
    for (path, c) in paths.iter().zip(crops) {
        if let Ok(img) = c {
            index.insert(path.clone(), kept.len());
            kept.push(img);
        }
    }
    let mut out = Vec::new();
    for (pr, fold) in parsed.pairs.iter().zip(&parsed.folds) {
        let (a, b) = pr.paths(images);
        if let (Some(&ia), Some(&ib)) = (index.get(&a), index.get(&b)) {
            out.push((ia, ib, pr.same, *fold));
        }
    }
    if out.is_empty() {
        bail!("no validation pair has faces in both photos (are the images under {}?)", images.display());
    }
    Ok(ValSet { pairs: out, crops: kept, n_folds: parsed.n_folds })
}

/// Runs training; `stop` (Ctrl+C) ends it after the current step with a checkpoint.
pub fn run(o: &RunOptions, p: &Pipeline, stop: &AtomicBool, ui: &mut dyn FnMut(Event)) -> anyhow::Result<Summary> {
    let cfg = &o.config;
    if cfg.batch < 2 {
        bail!("--batch must be at least 2 (batch norm needs two samples)");
    }
    let listing = data::list(&o.data)?;
    if let Some(r) = &o.resume {
        let meta = Trainer::read_meta(r)?;
        if meta.config.arch != cfg.arch {
            bail!("{} is a {} checkpoint; this run trains {} (--arch)", r.display(), meta.config.arch.name(), cfg.arch.name());
        }
    }
    std::fs::create_dir_all(&o.out).with_context(|| format!("cannot create {}", o.out.display()))?;
    let cache_path = match &o.cache {
        Some(c) => c.clone(),
        None => CropCache::default_path()?,
    };
    let mut cache = CropCache::open(&cache_path, &crate::index::detection_identity(p))?;
    let paths: Vec<PathBuf> = listing.items.iter().map(|(p, _)| p.clone()).collect();
    let crops = data::crops(p, &mut cache, &paths, &mut |done, total| ui(Event::Cropping { done, total }))?;
    let mut ds = data::dataset(&listing, crops, o.min_images)?;
    let people_given = ds.people.len();
    // From weights, a run is checked against where it started: on the pairs given, else on
    // people held back from training (photos of people it never trains on, as in a library).
    let val: Option<(ValSet, String)> = match (&o.val_pairs, &o.val_images) {
        (Some(pairs), Some(images)) => Some((val_set(p, &mut cache, pairs, images)?, format!("pairs {}", pairs.display()))),
        // a checkpoint of a run that trained on every person (no people held back) goes on so
        (None, None)
            if cfg.init != InitFrom::Scratch
                && o.resume.as_ref().map(|r| Trainer::read_meta(r)).transpose()?.is_some_and(|m| m.classes == ds.people.len()) =>
        {
            tracing::warn!("the checkpoint trained on every person: no people held back for validation");
            None
        }
        (None, None) if cfg.init != InitFrom::Scratch => match holdout::hold_out_people(&mut ds) {
            Some(v) => Some((v, format!("{} of {people_given} people held back from training", people_given - ds.people.len()))),
            None => {
                tracing::warn!("too few people to hold some back for validation: the result is not checked (give --val-pairs)");
                None
            }
        },
        (None, None) => None,
        _ => bail!("--val-pairs and --val-images go together"),
    };
    let device = p.device().clone();
    // A calibration batch (no augmentation) for inserting batch norm into folded weights.
    let calib_idx: Vec<usize> = data::epoch_order(ds.crops.len(), cfg.seed, usize::MAX).into_iter().take(cfg.batch.clamp(2, 256)).collect();
    let calib_crops: Vec<&RgbImage> = calib_idx.iter().map(|&i| &ds.crops[i]).collect();
    let calib =
        crate::nets::input::batch_tensor(&calib_crops, &vec![crate::nets::input::Augment::centre(); calib_crops.len()], cfg.arch, &device)?;
    let mut model = Model::new(cfg, ds.people.len(), &o.models, &device, Some(&calib))?;
    if cfg.init != super::InitFrom::Scratch && o.resume.is_none() {
        model.imprint_head(&ds.crops, &ds.labels)?;
    }
    let (people, images, people_left_out) = (ds.people.len(), ds.crops.len(), ds.people_left_out);
    let skipped: Vec<Skipped> = ds.skipped.iter().map(|(p, r)| Skipped { path: p.display().to_string(), reason: r.clone() }).collect();
    let mut trainer = Trainer::new(cfg.clone(), model, ds.crops, ds.labels)?;
    if let Some(r) = &o.resume {
        trainer.load_checkpoint(r)?;
    } else if let Some((v, _)) = val.as_ref().filter(|_| cfg.init != InitFrom::Scratch) {
        trainer.progress.val_before = Some(v.accuracy(&trainer.model)?);
    }
    ui(Event::Ready { people, images, skipped: skipped.len(), steps_per_epoch: trainer.steps_per_epoch() });
    let checkpoint = o.out.join("checkpoint.safetensors");
    let csv = o.out.join("train.csv");
    let save_every = o.save_every.max(1);
    let epoch_now = std::cell::Cell::new(trainer.progress.epoch);
    let outcome = {
        let ui = std::cell::RefCell::new(&mut *ui);
        trainer.run(
            val.as_ref().map(|v| &v.0),
            stop,
            &checkpoint,
            &mut |step, steps, loss| (ui.borrow_mut())(Event::Step { epoch: epoch_now.get() + 1, step, steps, loss }),
            &mut |t, row| {
                epoch_now.set(t.progress.epoch);
                super::write_csv(&csv, &t.progress.log)?;
                if t.progress.epoch % save_every == 0 || t.progress.epoch == t.cfg.epochs {
                    t.save_checkpoint(&checkpoint)?;
                }
                (ui.borrow_mut())(Event::Epoch(row));
                Ok(())
            },
        )?
    };
    let interrupted = outcome == Outcome::Interrupted;
    let validation = val.as_ref().map(|(v, source)| {
        let (before, after) = (trainer.progress.val_before, trainer.progress.log.last().and_then(|l| l.val_accuracy));
        let margin = before.map(|b| holdout::worse_margin(b, v.pairs.len()));
        let worse = matches!((before, after), (Some(b), Some(a)) if holdout::is_worse(b, a, v.pairs.len()));
        Validation { source: source.clone(), pairs: v.pairs.len(), before, after, margin, worse }
    });
    let refused = match &validation {
        Some(v) if v.worse && !interrupted && !o.keep_worse => Some(format!(
            "validation accuracy fell from {:.2} % to {:.2} % ({}, {} pairs; more than {:.2} points below the start counts as worse): \
             the embedder was not written. Try a lower --lr or fewer --epochs; --keep-worse writes it anyway",
            v.before.unwrap_or_default() * 100.0,
            v.after.unwrap_or_default() * 100.0,
            v.source,
            v.pairs,
            v.margin.unwrap_or_default() * 100.0
        )),
        _ => None,
    };
    let embedder = if interrupted || refused.is_some() {
        None
    } else {
        let path = o.out.join("embedder.safetensors");
        let last = trainer.progress.log.last();
        let summary = serde_json::json!({
            "data": o.data.display().to_string(),
            "people": people,
            "images": images,
            "epochs": trainer.progress.log.len(),
            "head": cfg.head,
            "loss": cfg.loss,
            "init": cfg.init,
            "optimizer": cfg.optimizer,
            "lr": cfg.lr,
            "batch": cfg.batch,
            "seed": cfg.seed,
            "final_loss": last.map(|l| l.loss),
            "val_accuracy": last.and_then(|l| l.val_accuracy),
            "validation": validation,
        });
        trainer.save_embedder(&path, summary)?;
        Some(path.display().to_string())
    };
    Ok(Summary {
        out: o.out.display().to_string(),
        embedder,
        people,
        people_left_out,
        images,
        skipped,
        epochs: trainer.progress.log.clone(),
        interrupted,
        validation,
        refused,
    })
}
