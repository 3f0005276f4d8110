//! A mapped ONNX network ready to run: a list of facefind layers over numbered slots, each
//! slot dropped after its last use.

use candle_core::{Module, Result, Tensor};

use crate::pipeline::ops::ConvAct;

/// One step of the network.
#[derive(Debug, Clone)]
pub enum Step {
    /// A convolution (with batch norm, bias and activation folded in), plus a residual added
    /// after the activation when given.
    Conv { layer: ConvAct, input: usize, residual: Option<usize>, out: usize },
    /// Two values added where no convolution could take the add.
    Add { a: usize, b: usize, out: usize },
}

impl Step {
    fn reads(&self) -> Vec<usize> {
        match self {
            Step::Conv { input, residual, .. } => std::iter::once(*input).chain(*residual).collect(),
            Step::Add { a, b, .. } => vec![*a, *b],
        }
    }
}

/// The network: its steps, where the image goes in and the embedding comes out.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(super) steps: Vec<Step>,
    /// Slots to drop after each step (their last reader).
    frees: Vec<Vec<usize>>,
    pub(super) input: usize,
    pub(super) output: usize,
    /// Length of the embedding.
    pub dim: usize,
    slots: usize,
}

impl Plan {
    pub(super) fn new(steps: Vec<Step>, input: usize, output: usize, dim: usize, slots: usize) -> Self {
        let mut last = vec![None; slots];
        for (i, s) in steps.iter().enumerate() {
            for r in s.reads() {
                last[r] = Some(i);
            }
        }
        let mut frees = vec![Vec::new(); steps.len()];
        for (slot, at) in last.iter().enumerate() {
            if let Some(i) = *at {
                if slot != output {
                    frees[i].push(slot);
                }
            }
        }
        Self { steps, frees, input, output, dim, slots }
    }

    /// How many layers the network became (for logs and tests).
    pub fn layers(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s, Step::Conv { .. })).count()
    }

    /// How many adds no layer could take (for logs and tests).
    pub fn plain_adds(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s, Step::Add { .. })).count()
    }

    /// Runs on `x`, an image batch in the device's layout ([`crate::kernels::to_native`]);
    /// returns (N, dim).
    pub fn run(&self, x: Tensor) -> Result<Tensor> {
        let n = x.dim(0)?;
        let mut slots: Vec<Option<Tensor>> = vec![None; self.slots];
        slots[self.input] = Some(x);
        let get = |slots: &[Option<Tensor>], i: usize| -> Result<Tensor> {
            slots[i].clone().ok_or_else(|| candle_core::Error::Msg(format!("slot {i} read before it was written")))
        };
        for (step, frees) in self.steps.iter().zip(&self.frees) {
            let (y, out) = match step {
                Step::Conv { layer, input, residual: None, out } => (layer.forward(&get(&slots, *input)?)?, *out),
                Step::Conv { layer, input, residual: Some(r), out } => (layer.forward_add(&get(&slots, *input)?, &get(&slots, *r)?)?, *out),
                Step::Add { a, b, out } => ((get(&slots, *a)? + get(&slots, *b)?)?, *out),
            };
            for &f in frees {
                slots[f] = None;
            }
            slots[out] = Some(y);
        }
        get(&slots, self.output)?.reshape((n, self.dim))
    }
}
