//! Training face embedders (`facefind train`): a backbone from [`crate::nets`], a margin head
//! ([`heads`]), a loss ([`loss`]), an optimiser and schedule ([`optim`]) and the data
//! ([`data`]), tied together by a thin loop with repeatable shuffles, checkpoints that resume
//! exactly, and an inference file plus manifest at the end.

pub mod data;
pub mod heads;
pub mod holdout;
pub mod loss;
pub mod optim;
pub mod run;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::nets::input::{batch_tensor, Augment};
use crate::nets::manifest::Manifest;
use crate::nets::{Arch, Mode, Net};
use crate::util::rng::Rng;
use heads::{Head, HeadKind};
use loss::LossKind;
use optim::{Optimizer, OptimizerKind, Schedule};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitFrom {
    /// The shipped MobileFaceNet (batch norm inserted and calibrated to the identity).
    Shipped,
    /// Random (Kaiming-normal convolutions, identity batch norm).
    Scratch,
    /// An embedder file written by `facefind train` (its manifest must name the same arch).
    File(PathBuf),
}

/// Everything that decides a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub arch: Arch,
    pub head: HeadKind,
    pub loss: LossKind,
    pub init: InitFrom,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub optimizer: OptimizerKind,
    pub weight_decay: f64,
    pub schedule: Schedule,
    pub clip_norm: Option<f64>,
    pub seed: u64,
    /// Stop each epoch after this many steps (benchmarks, smoke runs).
    pub max_steps_per_epoch: Option<usize>,
}

/// Backbone + head, each with its own `VarMap`.
pub struct Model {
    pub arch: Arch,
    pub net: Net,
    pub net_vars: VarMap,
    pub head: Head,
    pub head_vars: VarMap,
    pub device: Device,
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("the loss became {value} at epoch {epoch}, step {step}: training stopped; the last good checkpoint is kept. Try a lower --lr or --clip")]
    Diverged { epoch: usize, step: usize, value: f64 },
}

/// Loss above which a run counts as exploding (a margin head's starting loss is below ~100).
pub const EXPLODED_LOSS: f64 = 1e4;

fn load_tensors(path: &Path, device: &Device) -> anyhow::Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device).with_context(|| format!("cannot read weights {}", path.display()))
}

impl Model {
    /// Builds the model for `classes` people with the backbone initialised from `init`.
    /// `calibration` (a batch of inputs) is used when batch norm is inserted into a network
    /// trained without it.
    pub fn new(
        cfg: &Config,
        classes: usize,
        models: &crate::pipeline::ModelSource,
        device: &Device,
        calibration: Option<&Tensor>,
    ) -> anyhow::Result<Self> {
        let arch = cfg.arch;
        let net_vars = VarMap::new();
        let net = Net::trainable(arch, crate::nets::seeded_builder(&net_vars, cfg.seed, DType::F32, device))?;
        let head_vars = VarMap::new();
        let head = Head::new(
            crate::nets::seeded_builder(&head_vars, cfg.seed ^ 0x4845_4144, DType::F32, device),
            cfg.head,
            arch.embedding_dim(),
            classes,
        )?;
        let mut m = Self { arch, net, net_vars, head, head_vars, device: device.clone() };
        let weights = match &cfg.init {
            InitFrom::Scratch => None,
            InitFrom::Shipped => {
                if arch != Arch::Mobilefacenet {
                    bail!("there are no shipped weights for {}: use --init scratch or --init FILE", arch.name());
                }
                let bytes = models.read(&crate::pipeline::EMBEDDER_MODEL)?;
                Some(candle_core::safetensors::load_buffer(&bytes, device).context("cannot read the shipped embedder")?)
            }
            InitFrom::File(path) => {
                let manifest = Manifest::read_for(path)?;
                if manifest.arch != arch {
                    bail!("{} holds a {} embedder, not {}", path.display(), manifest.arch.name(), arch.name());
                }
                Some(load_tensors(path, device)?)
            }
        };
        if let Some(w) = weights {
            m.set_backbone(&w)?;
            if let (Net::MobileFaceNet(_), Some(x)) = (&m.net, calibration) {
                m.net.forward(x, Mode::Calibrate)?;
            }
        }
        Ok(m)
    }

    /// Copies the tensors of `w` present in the backbone. A folded file has no batch norm:
    /// its convolution biases become batch norm's shift (`<layer>.bias` -> `<layer>.bn.bias`),
    /// so batch norm starts as the identity plus that bias.
    fn set_backbone(&mut self, w: &HashMap<String, Tensor>) -> anyhow::Result<()> {
        let names: std::collections::HashSet<String> =
            self.net_vars.data().lock().map_err(|e| anyhow::anyhow!("{e}"))?.keys().cloned().collect();
        let mut n = 0;
        for (name, t) in w {
            let target = match name.strip_suffix(".bias") {
                Some(layer) if !names.contains(name) && names.contains(&format!("{layer}.bn.bias")) => format!("{layer}.bn.bias"),
                _ => name.clone(),
            };
            if names.contains(&target) {
                self.net_vars.set_one(&target, t).with_context(|| format!("tensor {name}"))?;
                n += 1;
            }
        }
        if n == 0 {
            bail!("the weights share no tensor with {}", self.arch.name());
        }
        Ok(())
    }

    /// Sets each class centre of a margin head to the normalised mean embedding of that
    /// person's crops ("weight imprinting"), so that fine-tuning a trained backbone starts from
    /// a head that already agrees with it instead of random centres whose large first gradients
    /// would wreck the features. The softmax head keeps its random start.
    pub fn imprint_head(&mut self, crops: &[RgbImage], labels: &[u32]) -> anyhow::Result<()> {
        if matches!(self.head.kind, HeadKind::Softmax) {
            return Ok(());
        }
        let refs: Vec<&RgbImage> = crops.iter().collect();
        let e = self.embed(&refs)?;
        let (c, d) = (self.head.classes(), self.arch.embedding_dim());
        let mut centres = vec![0f32; c * d];
        for (v, &l) in e.iter().zip(labels) {
            for (a, b) in centres[l as usize * d..(l as usize + 1) * d].iter_mut().zip(v) {
                *a += b;
            }
        }
        let t = crate::nets::layers::l2_normalize(&Tensor::from_vec(centres, (c, d), &self.device)?)?;
        self.head_vars.set_one("weight", &t)?;
        Ok(())
    }

    /// Unit embeddings of aligned crops (eval mode, flip fusion as at inference), batched.
    pub fn embed(&self, crops: &[&RgbImage]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(crops.len());
        for chunk in crops.chunks(64) {
            let plain = vec![Augment::centre(); chunk.len()];
            let flipped = vec![Augment { flip: true, ..Augment::centre() }; chunk.len()];
            let a = self.net.forward(&batch_tensor(chunk, &plain, self.arch, &self.device)?, Mode::Eval)?;
            let b = self.net.forward(&batch_tensor(chunk, &flipped, self.arch, &self.device)?, Mode::Eval)?;
            out.extend(crate::nets::layers::l2_normalize(&(a + b)?)?.to_vec2::<f32>()?);
        }
        Ok(out)
    }
}

/// One epoch's numbers (a row of train.csv and of `--json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochLog {
    pub epoch: usize,
    pub loss: f64,
    pub train_accuracy: f64,
    pub val_accuracy: Option<f64>,
    pub lr: f64,
    pub images_per_s: f64,
}

/// Validation pairs with their crops (pairs whose crops are missing are left out).
pub struct ValSet {
    pub pairs: Vec<(usize, usize, bool, usize)>,
    pub crops: Vec<RgbImage>,
    pub n_folds: usize,
}

impl ValSet {
    /// 10-fold accuracy of the model on these pairs (the `verify` protocol).
    pub fn accuracy(&self, m: &Model) -> anyhow::Result<f64> {
        let refs: Vec<&RgbImage> = self.crops.iter().collect();
        let e = m.embed(&refs)?;
        let scores: Vec<f32> = self.pairs.iter().map(|(a, b, _, _)| crate::pipeline::cosine(&e[*a], &e[*b])).collect();
        let same: Vec<bool> = self.pairs.iter().map(|p| p.2).collect();
        let folds: Vec<usize> = self.pairs.iter().map(|p| p.3).collect();
        Ok(crate::eval::metrics::kfold_accuracy(&scores, &same, &folds, self.n_folds).0)
    }
}

/// Where a run is: the next step to take and the running sums of the epoch in progress.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    pub epoch: usize,
    pub step_in_epoch: usize,
    pub global_step: u64,
    pub loss_sum: f64,
    pub correct: usize,
    pub seen: usize,
    pub seconds: f64,
    pub log: Vec<EpochLog>,
    /// Validation accuracy of the starting weights (kept across `--resume`); None from
    /// scratch or without validation.
    #[serde(default)]
    pub val_before: Option<f64>,
}

/// What a checkpoint records besides tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub config: Config,
    pub classes: usize,
    pub images: usize,
    pub progress: Progress,
    pub optimizer_step: u64,
    pub head_iter: u64,
}

/// A run in progress.
pub struct Trainer {
    pub cfg: Config,
    pub model: Model,
    pub opt: Optimizer,
    pub progress: Progress,
    crops: Vec<RgbImage>,
    labels: Vec<u32>,
}

/// How a call to [`Trainer::run`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// Stopped by the flag (Ctrl+C) after a step; a checkpoint was written.
    Interrupted,
}

impl Trainer {
    pub fn new(cfg: Config, model: Model, crops: Vec<RgbImage>, labels: Vec<u32>) -> anyhow::Result<Self> {
        let mut params = optim::params(&model.net_vars, "net.")?;
        params.extend(optim::params(&model.head_vars, "head.")?);
        let opt = Optimizer::new(cfg.optimizer, params, cfg.weight_decay);
        Ok(Self { cfg, model, opt, progress: Progress::default(), crops, labels })
    }

    pub fn steps_per_epoch(&self) -> usize {
        let full = (self.crops.len() / self.cfg.batch.max(1)).max(1);
        self.cfg.max_steps_per_epoch.map_or(full, |m| m.min(full))
    }

    pub fn total_steps(&self) -> u64 {
        (self.steps_per_epoch() * self.cfg.epochs) as u64
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        self.cfg.schedule.lr(self.cfg.lr, self.progress.epoch, self.progress.global_step)
    }

    /// One optimiser step on the given sample indices; returns (loss, correct).
    pub fn step(&mut self, idx: &[usize], aug_seed: u64) -> anyhow::Result<(f64, usize)> {
        let mut rng = Rng::stream(self.cfg.seed, 2, aug_seed);
        let augs: Vec<Augment> = idx.iter().map(|_| Augment::random(&mut rng, self.cfg.arch)).collect();
        let crops: Vec<&RgbImage> = idx.iter().map(|&i| &self.crops[i]).collect();
        let x = batch_tensor(&crops, &augs, self.cfg.arch, &self.model.device)?;
        let labels: Vec<u32> = idx.iter().map(|&i| self.labels[i]).collect();
        let y = Tensor::new(labels.as_slice(), &self.model.device)?;
        if let Net::ResNetFace(r) = &self.model.net {
            r.dropout_seed.store(aug_seed ^ self.cfg.seed.rotate_left(17), Ordering::Relaxed);
        }
        let emb = self.model.net.forward(&x, Mode::Train)?;
        let logits = self.model.head.forward(&emb, &y)?;
        let l = loss::loss(self.cfg.loss, &logits, &y)?;
        let value = l.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !value.is_finite() || value > EXPLODED_LOSS {
            return Err(TrainError::Diverged { epoch: self.progress.epoch + 1, step: self.progress.step_in_epoch + 1, value }.into());
        }
        let correct = loss::correct(&logits, &y)?;
        let grads = l.backward()?;
        let norm = self.opt.grad_norm(&grads)?;
        if !norm.is_finite() {
            return Err(TrainError::Diverged { epoch: self.progress.epoch + 1, step: self.progress.step_in_epoch + 1, value: norm }.into());
        }
        let lr = self.lr();
        self.opt.step(&grads, lr, optim::clip_scale(norm, self.cfg.clip_norm))?;
        Ok((value, correct))
    }

    /// Trains until the last epoch or until `stop` is set (checked after every step, then a
    /// checkpoint is written to `checkpoint`). `on_step(step, steps, loss)` reports progress;
    /// `on_epoch` sees each finished epoch and may save.
    pub fn run(
        &mut self,
        val: Option<&ValSet>,
        stop: &AtomicBool,
        checkpoint: &Path,
        on_step: &mut dyn FnMut(usize, usize, f64),
        on_epoch: &mut dyn FnMut(&Trainer, &EpochLog) -> anyhow::Result<()>,
    ) -> anyhow::Result<Outcome> {
        let steps = self.steps_per_epoch();
        let b = self.cfg.batch.min(self.crops.len());
        while self.progress.epoch < self.cfg.epochs {
            let epoch = self.progress.epoch;
            let order = data::epoch_order(self.crops.len(), self.cfg.seed, epoch);
            while self.progress.step_in_epoch < steps {
                let s = self.progress.step_in_epoch;
                let t0 = Instant::now();
                let idx = &order[s * b..(s + 1) * b];
                let (l, c) = self.step(idx, (epoch as u64) << 32 | s as u64)?;
                let p = &mut self.progress;
                p.seconds += t0.elapsed().as_secs_f64();
                p.loss_sum += l;
                p.correct += c;
                p.seen += idx.len();
                p.step_in_epoch += 1;
                p.global_step += 1;
                on_step(p.step_in_epoch, steps, l);
                if stop.load(Ordering::SeqCst) {
                    self.save_checkpoint(checkpoint)?;
                    return Ok(Outcome::Interrupted);
                }
            }
            let p = &self.progress;
            let mut row = EpochLog {
                epoch: epoch + 1,
                loss: p.loss_sum / steps as f64,
                train_accuracy: p.correct as f64 / p.seen.max(1) as f64,
                val_accuracy: None,
                lr: self.cfg.schedule.lr(self.cfg.lr, epoch, p.global_step.saturating_sub(1)),
                images_per_s: p.seen as f64 / p.seconds.max(1e-9),
            };
            if let Some(v) = val {
                row.val_accuracy = Some(v.accuracy(&self.model)?);
            }
            let p = &mut self.progress;
            p.log.push(row.clone());
            p.epoch += 1;
            (p.step_in_epoch, p.loss_sum, p.correct, p.seen, p.seconds) = (0, 0.0, 0, 0, 0.0);
            on_epoch(self, &row)?;
        }
        Ok(Outcome::Finished)
    }

    /// Writes model, head, optimiser state and progress to one safetensors file (atomically:
    /// a temporary file renamed over the old one).
    pub fn save_checkpoint(&self, path: &Path) -> anyhow::Result<()> {
        let mut t: HashMap<String, Tensor> = HashMap::new();
        for (prefix, map) in [("net.", &self.model.net_vars), ("head.", &self.model.head_vars)] {
            for (k, v) in map.data().lock().map_err(|e| anyhow::anyhow!("{e}"))?.iter() {
                t.insert(format!("{prefix}{k}"), v.as_tensor().clone());
            }
        }
        for (k, v) in self.opt.state() {
            t.insert(format!("opt.{k}"), v);
        }
        let meta = CheckpointMeta {
            config: self.cfg.clone(),
            classes: self.model.head.classes(),
            images: self.crops.len(),
            progress: self.progress.clone(),
            optimizer_step: self.opt.step,
            head_iter: self.model.head.iter,
        };
        let json = serde_json::to_vec(&meta)?;
        let n = json.len();
        t.insert("meta.json".into(), Tensor::from_vec(json, n, &Device::Cpu)?);
        let tmp = path.with_extension("tmp");
        candle_core::safetensors::save(&t, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// Reads a checkpoint's metadata.
    pub fn read_meta(path: &Path) -> anyhow::Result<CheckpointMeta> {
        let t = load_tensors(path, &Device::Cpu)?;
        let meta = t.get("meta.json").with_context(|| format!("{} is not a facefind training checkpoint", path.display()))?;
        serde_json::from_slice(&meta.to_vec1::<u8>()?).with_context(|| format!("{}: unreadable checkpoint metadata", path.display()))
    }

    /// Restores a checkpoint written by [`Trainer::save_checkpoint`] into this trainer, which
    /// must have the same arch, head and data size.
    pub fn load_checkpoint(&mut self, path: &Path) -> anyhow::Result<()> {
        let meta = Self::read_meta(path)?;
        if meta.config.arch != self.cfg.arch {
            bail!("{} is a {} checkpoint; this run trains {}", path.display(), meta.config.arch.name(), self.cfg.arch.name());
        }
        if meta.config.head.name() != self.cfg.head.name() {
            bail!("{} was trained with the {} head; this run uses {}", path.display(), meta.config.head.name(), self.cfg.head.name());
        }
        if meta.classes != self.model.head.classes() || meta.images != self.crops.len() {
            bail!(
                "{} was trained on {} people / {} images; DATA now has {} / {}",
                path.display(),
                meta.classes,
                meta.images,
                self.model.head.classes(),
                self.crops.len()
            );
        }
        let t = load_tensors(path, &self.model.device)?;
        for (prefix, map) in [("net.", &mut self.model.net_vars), ("head.", &mut self.model.head_vars)] {
            let names: Vec<String> = map.data().lock().map_err(|e| anyhow::anyhow!("{e}"))?.keys().cloned().collect();
            for name in names {
                let v = t.get(&format!("{prefix}{name}")).with_context(|| format!("{}: missing tensor {prefix}{name}", path.display()))?;
                map.set_one(&name, v).with_context(|| format!("{}: tensor {prefix}{name}", path.display()))?;
            }
        }
        let state = t.iter().filter_map(|(k, v)| k.strip_prefix("opt.").map(|k| (k.to_string(), v.clone()))).collect();
        self.opt.load_state(state, meta.optimizer_step);
        self.model.head.iter = meta.head_iter;
        self.progress = meta.progress;
        self.cfg.epochs = self.cfg.epochs.max(self.progress.epoch);
        Ok(())
    }

    /// Writes the inference file and its manifest; returns the file's sha256.
    pub fn save_embedder(&self, path: &Path, summary: serde_json::Value) -> anyhow::Result<String> {
        let t = self.model.net.inference_tensors(&self.model.net_vars)?;
        let tmp = path.with_extension("tmp");
        candle_core::safetensors::save(&t, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        let bytes = std::fs::read(&tmp)?;
        let sha = crate::util::digest::sha256_hex(&bytes);
        let arch = self.cfg.arch;
        let (mean, std) = arch.normalisation();
        let manifest = Manifest {
            arch,
            input_size: arch.input_size(),
            channels: arch.channels(),
            mean,
            std,
            embedding_dim: arch.embedding_dim(),
            sha256: sha.clone(),
            training: summary,
        };
        std::fs::rename(&tmp, path)?;
        std::fs::write(Manifest::path_for(path), serde_json::to_string_pretty(&manifest)?)?;
        Ok(sha)
    }
}

/// Writes `DIR/train.csv` from the epoch log.
pub fn write_csv(path: &Path, log: &[EpochLog]) -> anyhow::Result<()> {
    let mut s = String::from("epoch,loss,train_accuracy,val_accuracy,lr,images_per_s\n");
    for r in log {
        let val = r.val_accuracy.map(|v| format!("{v:.6}")).unwrap_or_default();
        s.push_str(&format!("{},{:.6},{:.6},{},{:.6e},{:.2}\n", r.epoch, r.loss, r.train_accuracy, val, r.lr, r.images_per_s));
    }
    std::fs::write(path, s).with_context(|| format!("cannot write {}", path.display()))
}
