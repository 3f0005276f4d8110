//! Optimisers and learning-rate schedules: SGD with momentum and weight decay (PyTorch's
//! semantics), AdamW (decoupled decay), gradient-norm clipping; step and warm-up + polynomial
//! schedules. Batch-norm parameters and statistics, biases and PReLU slopes get no weight decay
//! (and running statistics are never touched: they are not trained).

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor, Var};

/// One trained tensor: its checkpoint name, and whether weight decay applies.
pub struct Param {
    pub name: String,
    pub var: Var,
    pub decay: bool,
}

/// Whether a parameter named `name` is trained at all (running statistics are not) and, if so,
/// whether it is decayed (only convolution/linear weights and class centres are).
pub fn classify(name: &str, rank: usize) -> Option<bool> {
    if name.ends_with("running_mean") || name.ends_with("running_var") {
        return None;
    }
    // batch-norm weights, biases and slopes are vectors; convolution/linear weights are not
    Some(name.ends_with("weight") && rank >= 2)
}

/// The trained parameters of a `VarMap`, in name order (so runs are repeatable).
pub fn params(map: &candle_nn::VarMap, prefix: &str) -> Result<Vec<Param>> {
    let data = map.data().lock().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let mut out: Vec<Param> = data
        .iter()
        .filter_map(|(k, v)| classify(k, v.rank()).map(|decay| Param { name: format!("{prefix}{k}"), var: v.clone(), decay }))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Which optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    Adamw,
}

/// SGD (momentum 0.9, decay 5e-4 as the seed) or AdamW (β = (0.9, 0.999), ε = 1e-8).
pub struct Optimizer {
    pub kind: OptimizerKind,
    pub params: Vec<Param>,
    pub weight_decay: f64,
    pub momentum: f64,
    /// Momentum buffers (SGD) or first moments (AdamW), by parameter name.
    m: HashMap<String, Tensor>,
    /// Second moments (AdamW).
    v: HashMap<String, Tensor>,
    pub step: u64,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, params: Vec<Param>, weight_decay: f64) -> Self {
        Self { kind, params, weight_decay, momentum: 0.9, m: HashMap::new(), v: HashMap::new(), step: 0 }
    }

    /// The global L2 norm of the gradients.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut sum = 0.0;
        for p in &self.params {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                sum += g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
            }
        }
        Ok(sum.sqrt())
    }

    /// One update with learning rate `lr`; gradients are scaled by `grad_scale` first (for
    /// clipping). Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        for p in &self.params {
            let Some(g) = grads.get(p.var.as_tensor()) else { continue };
            // Detached: the optimiser's state must not keep the graph (or the previous
            // state it was computed from) alive.
            let g = if grad_scale != 1.0 { (g.detach() * grad_scale)? } else { g.detach() };
            let w = &p.var.as_tensor().detach();
            let wd = if p.decay { self.weight_decay } else { 0.0 };
            match self.kind {
                OptimizerKind::Sgd => {
                    // PyTorch: d = g + wd·w; buf = μ·buf + d (buf = d at first); w -= lr·buf.
                    let d = if wd > 0.0 { (g + (w * wd)?)? } else { g };
                    let buf = match self.m.get(&p.name) {
                        Some(b) => ((b * self.momentum)? + d)?,
                        None => d,
                    };
                    p.var.set(&(w - (&buf * lr)?)?)?;
                    self.m.insert(p.name.clone(), buf.detach());
                }
                OptimizerKind::Adamw => {
                    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
                    let m = match self.m.get(&p.name) {
                        Some(m) => ((m * b1)? + (&g * (1.0 - b1))?)?,
                        None => (&g * (1.0 - b1))?,
                    };
                    let v = match self.v.get(&p.name) {
                        Some(v) => ((v * b2)? + (g.sqr()? * (1.0 - b2))?)?,
                        None => (g.sqr()? * (1.0 - b2))?,
                    };
                    let mhat = (&m / (1.0 - b1.powi(t)))?;
                    let vhat = (&v / (1.0 - b2.powi(t)))?;
                    let upd = (mhat / (vhat.sqrt()? + eps)?)?;
                    let decayed = if wd > 0.0 { (w * (1.0 - lr * wd))? } else { w.clone() };
                    p.var.set(&(decayed - (upd * lr)?)?)?;
                    self.m.insert(p.name.clone(), m.detach());
                    self.v.insert(p.name.clone(), v.detach());
                }
            }
        }
        Ok(())
    }

    /// The optimiser's state as named tensors (for checkpoints).
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (k, t) in &self.m {
            out.insert(format!("m.{k}"), t.clone());
        }
        for (k, t) in &self.v {
            out.insert(format!("v.{k}"), t.clone());
        }
        out
    }

    /// Restores [`Optimizer::state`].
    pub fn load_state(&mut self, state: HashMap<String, Tensor>, step: u64) {
        self.m.clear();
        self.v.clear();
        for (k, t) in state {
            if let Some(name) = k.strip_prefix("m.") {
                self.m.insert(name.to_string(), t);
            } else if let Some(name) = k.strip_prefix("v.") {
                self.v.insert(name.to_string(), t);
            }
        }
        self.step = step;
    }
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Schedule {
    /// lr · gamma^(epoch / every) (the seed: ×0.1 every 10 epochs).
    Step { every: usize, gamma: f64 },
    /// Linear warm-up over `warmup` steps, then lr · (1 − progress)^power to the last step
    /// (insightface's PolyScheduler, power 2).
    WarmupPoly { warmup: u64, total: u64, power: f64 },
}

impl Schedule {
    /// The learning rate at optimiser step `step` (0-based) of epoch `epoch` (0-based).
    pub fn lr(&self, base: f64, epoch: usize, step: u64) -> f64 {
        match *self {
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            Schedule::WarmupPoly { warmup, total, power } => {
                if step < warmup {
                    base * (step + 1) as f64 / warmup as f64
                } else {
                    let span = total.saturating_sub(warmup).max(1) as f64;
                    let done = ((step - warmup) as f64 / span).min(1.0);
                    base * (1.0 - done).powf(power)
                }
            }
        }
    }
}

/// The factor that brings the gradient norm down to `max_norm` (1 when it is below).
pub fn clip_scale(norm: f64, max_norm: Option<f64>) -> f64 {
    match max_norm {
        Some(m) if norm > m && norm.is_finite() => m / norm,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn quadratic_grads(var: &Var, target: &Tensor) -> GradStore {
        let loss = (var.as_tensor() - target).unwrap().sqr().unwrap().sum_all().unwrap().affine(0.5, 0.0).unwrap();
        loss.backward().unwrap()
    }

    /// Two steps of SGD and AdamW against the update rules written out by hand (PyTorch's
    /// torch.optim.SGD(momentum, weight_decay) and torch.optim.AdamW).
    #[test]
    fn sgd_and_adamw_follow_pytorch_update_rules() {
        let dev = Device::Cpu;
        let target = Tensor::new(&[1.0f64, -2.0], &dev).unwrap();
        let (lr, wd) = (0.1, 0.01);
        // SGD: w0 = [0, 0]; g = w - target.
        let var = Var::new(&[0.0f64, 0.0], &dev).unwrap();
        let mut opt = Optimizer::new(OptimizerKind::Sgd, vec![Param { name: "w.weight".into(), var: var.clone(), decay: true }], wd);
        let (mut w, mut buf) = ([0.0f64, 0.0], [0.0f64, 0.0]);
        for step in 0..2 {
            opt.step(&quadratic_grads(&var, &target), lr, 1.0).unwrap();
            for i in 0..2 {
                let d = (w[i] - [1.0, -2.0][i]) + wd * w[i];
                buf[i] = if step == 0 { d } else { 0.9 * buf[i] + d };
                w[i] -= lr * buf[i];
            }
            let got: Vec<f64> = var.as_tensor().to_vec1().unwrap();
            assert!((got[0] - w[0]).abs() < 1e-12 && (got[1] - w[1]).abs() < 1e-12, "sgd step {step}: {got:?} vs {w:?}");
        }
        let var = Var::new(&[0.5f64, 0.5], &dev).unwrap();
        let mut opt = Optimizer::new(OptimizerKind::Adamw, vec![Param { name: "w.weight".into(), var: var.clone(), decay: true }], wd);
        let (mut w, mut m, mut v) = ([0.5f64, 0.5], [0.0f64; 2], [0.0f64; 2]);
        for step in 1..=2 {
            opt.step(&quadratic_grads(&var, &target), lr, 1.0).unwrap();
            for i in 0..2 {
                let g = w[i] - [1.0, -2.0][i];
                w[i] *= 1.0 - lr * wd;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let (mh, vh) = (m[i] / (1.0 - 0.9f64.powi(step)), v[i] / (1.0 - 0.999f64.powi(step)));
                w[i] -= lr * mh / (vh.sqrt() + 1e-8);
            }
            let got: Vec<f64> = var.as_tensor().to_vec1().unwrap();
            assert!((got[0] - w[0]).abs() < 1e-12 && (got[1] - w[1]).abs() < 1e-12, "adamw step {step}: {got:?} vs {w:?}");
        }
    }

    /// Regression: the momentum buffers kept the autograd graph of every earlier step alive
    /// (memory grew with each step until the process was killed).
    #[test]
    fn optimiser_state_holds_no_graph() {
        let dev = Device::Cpu;
        let target = Tensor::new(&[1.0f64, -2.0], &dev).unwrap();
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adamw] {
            let var = Var::new(&[0.5f64, 0.5], &dev).unwrap();
            let mut opt = Optimizer::new(kind, vec![Param { name: "w.weight".into(), var: var.clone(), decay: true }], 0.1);
            for _ in 0..3 {
                opt.step(&quadratic_grads(&var, &target), 0.1, 0.5).unwrap();
            }
            for (k, t) in opt.state() {
                assert!(!t.track_op(), "{kind:?} state {k} keeps a graph");
            }
        }
    }

    #[test]
    fn no_decay_for_batch_norm_biases_and_slopes() {
        assert_eq!(classify("Conv2d_0.weight", 4), Some(true));
        assert_eq!(classify("weight", 2), Some(true), "head class centres");
        assert_eq!(classify("Conv2d_0.bias", 1), Some(false));
        assert_eq!(classify("Conv2d_0.alpha", 1), Some(false));
        assert_eq!(classify("Conv2d_0.bn.weight", 1), Some(false));
        assert_eq!(classify("layer1.0.bn0.weight", 1), Some(false));
        assert_eq!(classify("Conv2d_0.bn.running_var", 1), None);
    }

    #[test]
    fn schedules() {
        let s = Schedule::Step { every: 10, gamma: 0.1 };
        assert_eq!(s.lr(0.1, 9, 0), 0.1);
        assert!((s.lr(0.1, 10, 0) - 0.01).abs() < 1e-12);
        assert!((s.lr(0.1, 25, 0) - 0.001).abs() < 1e-12);
        let p = Schedule::WarmupPoly { warmup: 10, total: 110, power: 2.0 };
        assert!((p.lr(1.0, 0, 0) - 0.1).abs() < 1e-12);
        assert!((p.lr(1.0, 0, 9) - 1.0).abs() < 1e-12);
        assert!((p.lr(1.0, 0, 60) - 0.25).abs() < 1e-12);
        assert_eq!(p.lr(1.0, 0, 110), 0.0);
        assert_eq!(clip_scale(10.0, Some(5.0)), 0.5);
        assert_eq!(clip_scale(1.0, Some(5.0)), 1.0);
        assert_eq!(clip_scale(10.0, None), 1.0);
    }
}
