//! An ONNX graph mapped onto facefind's own layers ([`ConvAct`]): every convolution, batch norm,
//! activation and per-channel affine becomes one layer (batch norm, bias, scale and activation
//! folded into the convolution before them), a residual add is fused into the convolution
//! that feeds it, and a fully connected layer after a flatten becomes a convolution over the
//! whole map. What only computes constants (shapes, reshaped slopes) is folded; converters'
//! spellings are read (PReLU as `relu(x) + a·(x − |x|)`, NHWC views behind transposes, explicit
//! padding). Anything else is refused with the op's name and where it is.

use std::collections::{HashMap, HashSet};

use candle_core::{Device, Tensor};

use super::eval::{float, int, ints};
use super::plan::{Plan, Step};
use super::{eval, Attr, Graph, Node};
use crate::kernels::Pad;
use crate::pipeline::ops::{Activation, ConvAct, ConvSpec};

/// How the graph sees a value on the image's path (its storage is always the device's layout).
#[derive(Debug, Clone, Copy, PartialEq)]
enum View {
    /// (N, C, H, W)
    Nchw,
    /// (N, H, W, C)
    Nhwc,
    /// (N, C·H·W), flattened from (C, H, W)
    FlatChw,
    /// (N, H·W·C), flattened from (H, W, C)
    FlatHwc,
}

/// A value computed from the image: its slot, map size, view and padding not yet applied.
#[derive(Debug, Clone, Copy)]
struct Val {
    slot: usize,
    c: usize,
    h: usize,
    w: usize,
    view: View,
    pad: Option<Pad>,
}

impl Val {
    fn shape(&self, n: usize) -> Vec<usize> {
        let Val { c, h, w, .. } = *self;
        match self.view {
            View::Nchw => vec![n, c, h, w],
            View::Nhwc => vec![n, h, w, c],
            View::FlatChw | View::FlatHwc => vec![n, c * h * w],
        }
    }

    /// The axis of the graph's shape that holds the channels.
    fn channel_axis(&self) -> Option<usize> {
        match self.view {
            View::Nchw => Some(1),
            View::Nhwc => Some(3),
            _ if self.h * self.w == 1 => Some(1),
            _ => None,
        }
    }

    /// Whether its values lie in (C, H, W) order (true) or (H, W, C); both when one side is 1.
    fn in_order(&self, chw: bool) -> bool {
        self.h * self.w == 1 || self.c == 1 || chw == matches!(self.view, View::Nchw | View::FlatChw)
    }
}

/// A convolution not yet built, so that what follows it can still be folded in.
struct Layer {
    /// OIHW (depthwise: (C, 1, k, k)).
    weight: Vec<f32>,
    bias: Vec<f32>,
    spec: ConvSpec,
    act: Activation,
    input: usize,
    residual: Option<usize>,
    out: usize,
}

enum Op {
    Conv(Layer),
    Add { a: usize, b: usize, out: usize },
}

struct Lowering {
    nodes: Vec<(usize, Node)>,
    count: usize,
    consts: HashMap<String, Tensor>,
    vals: HashMap<String, Val>,
    /// Readers left for each slot (the graph's output counts as one).
    uses: Vec<usize>,
    name_uses: HashMap<String, usize>,
    producer: HashMap<usize, usize>,
    ops: Vec<Option<Op>>,
    /// The batch size shapes are computed for (the graph's, or 2).
    batch: usize,
}

/// Maps `g` (its image input `size`×`size`) onto facefind's layers.
pub fn lower(mut g: Graph, size: usize) -> Result<Plan, String> {
    let nodes = prelu_spellings(&g);
    let live = live_nodes(&g, &nodes);
    let nodes: Vec<(usize, Node)> = nodes.into_iter().zip(live).filter(|(_, l)| *l).map(|(n, _)| n).collect();
    let mut name_uses: HashMap<String, usize> = HashMap::new();
    for (_, n) in &nodes {
        for i in n.inputs.iter().filter(|i| !i.is_empty()) {
            *name_uses.entry(i.clone()).or_default() += 1;
        }
    }
    *name_uses.entry(g.output.clone()).or_default() += 1;
    let consts = std::mem::take(&mut g.consts)
        .into_iter()
        .map(|(k, c)| Ok((k, Tensor::from_vec(c.data, c.dims, &Device::Cpu)?)))
        .collect::<candle_core::Result<_>>()
        .map_err(|e| e.to_string())?;
    let dims = &g.input.1;
    // shapes are worked out for the graph's batch size (a dynamic one as 3, so that a
    // reshape merging the batch does not pass for a per-face one)
    let batch = dims.first().copied().flatten().unwrap_or(3);
    if batch > 64 || g.input.0.is_empty() {
        return Err(format!("input `{}` of a fixed batch of {batch} (at most 64 are read)", g.input.0));
    }
    let view = match dims.as_slice() {
        [_, Some(3), ..] => View::Nchw,
        [_, _, _, Some(3)] => View::Nhwc,
        _ => return Err(format!("input `{}` is not a batch of RGB images (N, 3, H, W) or (N, H, W, 3)", g.input.0)),
    };
    let mut l = Lowering {
        count: g.nodes.len(),
        nodes,
        consts,
        vals: HashMap::new(),
        uses: Vec::new(),
        name_uses,
        producer: HashMap::new(),
        ops: Vec::new(),
        batch,
    };
    let input = l.new_slot(&g.input.0);
    l.vals.insert(g.input.0.clone(), Val { slot: input, c: 3, h: size, w: size, view, pad: None });
    let nodes = std::mem::take(&mut l.nodes);
    let count = l.count;
    for (index, node) in &nodes {
        l.node(node)
            .map_err(|why| format!("unsupported ONNX op `{}` (node `{}`, #{} of {count}): {why}", node.op, node.name, index + 1))?;
    }
    let out = *l.vals.get(&g.output).ok_or_else(|| format!("output `{}` does not depend on the image", g.output))?;
    if out.h * out.w != 1 || out.pad.is_some() || out.c < 2 {
        return Err(format!("output `{}` is not an embedding vector (shape {:?})", g.output, out.shape(l.batch)));
    }
    let mut steps = Vec::new();
    for op in l.ops.into_iter().flatten() {
        steps.push(match op {
            Op::Add { a, b, out } => Step::Add { a, b, out },
            Op::Conv(c) => {
                let w_in = if c.spec.depthwise { 1 } else { c.spec.c_in };
                let weight = Tensor::from_vec(c.weight, (c.spec.c_out, w_in, c.spec.k, c.spec.k), &Device::Cpu);
                let bias = Tensor::from_vec(c.bias, c.spec.c_out, &Device::Cpu);
                let layer = weight.and_then(|w| ConvAct::new(w, bias?, c.spec, c.act)).map_err(|e| e.to_string())?;
                Step::Conv { layer, input: c.input, residual: c.residual, out: c.out }
            }
        });
    }
    Ok(Plan::new(steps, input, out.slot, out.c, l.uses.len()))
}

/// The nodes with tflite2onnx's PReLU, `Add(Relu(x), Mul(a, Sub(x, Abs(x))))`, written as
/// `PRelu(x, 2a)`; each with its index in the file.
fn prelu_spellings(g: &Graph) -> Vec<(usize, Node)> {
    let made: HashMap<&str, &Node> = g.nodes.iter().flat_map(|n| n.outputs.iter().map(move |o| (o.as_str(), n))).collect();
    let mut constant: HashSet<&str> = g.consts.keys().map(String::as_str).collect();
    for n in &g.nodes {
        if n.inputs.iter().all(|i| i.is_empty() || constant.contains(i.as_str())) {
            constant.extend(n.outputs.iter().map(String::as_str));
        }
    }
    let by = |name: &str, op: &str| made.get(name).filter(|n| n.op == op).copied();
    let prelu = |n: &Node| -> Option<(String, String)> {
        let [p, q] = &n.inputs[..] else { return None };
        let (relu, mul) = match (by(p, "Relu"), by(q, "Mul")) {
            (Some(r), Some(m)) => (r, m),
            _ => (by(q, "Relu")?, by(p, "Mul")?),
        };
        let x = relu.inputs.first()?;
        let [m0, m1] = &mul.inputs[..] else { return None };
        let (a, sub) = if constant.contains(m0.as_str()) { (m0, by(m1, "Sub")?) } else { (m1, by(m0, "Sub")?) };
        let [s0, s1] = &sub.inputs[..] else { return None };
        let abs = by(s1, "Abs")?;
        (constant.contains(a.as_str()) && s0 == x && abs.inputs.first() == Some(x)).then(|| (x.clone(), a.clone()))
    };
    let mut out = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        match (n.op == "Add").then(|| prelu(n)).flatten() {
            Some((x, a)) => {
                let doubled = format!("{}::slope", n.name);
                let two = Node {
                    op: "Constant".into(),
                    name: format!("{}::two", n.name),
                    inputs: vec![],
                    outputs: vec![format!("{}::two", n.name)],
                    attrs: HashMap::from([("value_float".to_string(), Attr::Float(2.0))]),
                };
                let mul = Node {
                    op: "Mul".into(),
                    name: doubled.clone(),
                    inputs: vec![a, two.outputs[0].clone()],
                    outputs: vec![doubled.clone()],
                    attrs: HashMap::new(),
                };
                let prelu = Node { op: "PRelu".into(), inputs: vec![x, doubled], ..n.clone() };
                out.extend([(i, two), (i, mul), (i, prelu)]);
            }
            None => out.push((i, n.clone())),
        }
    }
    out
}

/// Which nodes the output depends on.
fn live_nodes(g: &Graph, nodes: &[(usize, Node)]) -> Vec<bool> {
    let mut wanted: HashSet<&str> = HashSet::from([g.output.as_str()]);
    let mut live = vec![false; nodes.len()];
    for (k, (_, n)) in nodes.iter().enumerate().rev() {
        if n.outputs.iter().any(|o| wanted.contains(o.as_str())) {
            live[k] = true;
            wanted.extend(n.inputs.iter().map(String::as_str));
        }
    }
    live
}

fn values(t: &Tensor) -> Result<Vec<f32>, String> {
    t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(|e| e.to_string())
}

impl Lowering {
    fn new_slot(&mut self, name: &str) -> usize {
        self.uses.push(self.name_uses.get(name).copied().unwrap_or(0));
        self.uses.len() - 1
    }

    /// `name` is `v` seen another way (same slot).
    fn alias(&mut self, name: &str, v: Val) {
        self.uses[v.slot] = (self.uses[v.slot] + self.name_uses.get(name).copied().unwrap_or(0)).saturating_sub(1);
        self.vals.insert(name.to_string(), v);
    }

    fn output_of(&mut self, node: &Node, v: Val) -> Result<(), String> {
        let name = node.outputs.first().ok_or("no output")?;
        self.vals.insert(name.clone(), v);
        Ok(())
    }

    /// The layer that wrote `v`, when `v` is read only by the node at hand and nothing was added
    /// after its activation: what follows may be folded into it.
    fn foldable(&mut self, v: &Val) -> Option<&mut Layer> {
        if self.uses[v.slot] != 1 || v.pad.is_some() {
            return None;
        }
        match self.ops.get_mut(*self.producer.get(&v.slot)?)?.as_mut()? {
            Op::Conv(l) if l.residual.is_none() => Some(l),
            _ => None,
        }
    }

    fn push(&mut self, op: Op, name: &str) -> usize {
        let out = self.new_slot(name);
        let op = match op {
            Op::Conv(l) => Op::Conv(Layer { out, ..l }),
            Op::Add { a, b, .. } => Op::Add { a, b, out },
        };
        self.producer.insert(out, self.ops.len());
        self.ops.push(Some(op));
        out
    }

    fn constant(&self, node: &Node, i: usize) -> Result<&Tensor, String> {
        let name = node.inputs.get(i).filter(|n| !n.is_empty()).ok_or_else(|| format!("input {i} missing"))?;
        self.consts.get(name).ok_or_else(|| format!("input `{name}` must be a constant (weights), not computed from the image"))
    }

    /// A layer's weights as values, dropped from the constants when nothing else reads them
    /// (so a large network's weights are not held twice).
    fn weights(&mut self, node: &Node, i: usize) -> Result<(Vec<usize>, Vec<f32>), String> {
        let t = self.constant(node, i)?;
        let got = (t.dims().to_vec(), values(t)?);
        if self.name_uses.get(&node.inputs[i]) == Some(&1) {
            self.consts.remove(&node.inputs[i]);
        }
        Ok(got)
    }

    fn node(&mut self, node: &Node) -> Result<(), String> {
        let out_name = node.outputs.first().cloned().filter(|n| !n.is_empty()).ok_or("no output")?;
        let dynamic: Vec<Option<Val>> = node.inputs.iter().map(|i| self.vals.get(i).copied()).collect();
        let Some(&Some(x)) = dynamic.iter().find(|v| v.is_some()) else {
            // only constants in: fold
            let ins: Vec<Option<Tensor>> = node.inputs.iter().map(|i| self.consts.get(i).cloned()).collect();
            let t = eval::node_output(node, &ins, &Device::Cpu).map_err(|e| e.to_string())?;
            self.consts.insert(out_name, t);
            return Ok(());
        };
        let both = dynamic.iter().filter(|v| v.is_some()).count() > 1;
        if both && node.op != "Add" {
            return Err("two inputs computed from the image".into());
        }
        if x.pad.is_some() && node.op != "Conv" {
            return Err("padding not followed by a convolution".into());
        }
        match node.op.as_str() {
            "Identity" | "Dropout" | "Cast" => self.alias(&out_name, x),
            "Shape" => {
                let dims = eval::shape_of(node, &x.shape(self.batch));
                self.consts.insert(out_name, Tensor::new(dims, &Device::Cpu).map_err(|e| e.to_string())?);
                // a shape is read without reading the values
                self.uses[x.slot] = self.uses[x.slot].saturating_sub(1);
            }
            "Conv" => self.conv(node, x)?,
            "Gemm" | "MatMul" => self.dense(node, x)?,
            "BatchNormalization" => {
                let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| self.constant(node, i).and_then(values));
                let (scale, bias, mean, var) = (scale?, bias?, mean?, var?);
                let eps = float(node, "epsilon", 1e-5);
                if [&scale, &bias, &mean, &var].iter().any(|v| v.len() != x.c) || x.channel_axis() != Some(1) {
                    return Err(format!("batch norm of {} channels on a value of shape {:?}", scale.len(), x.shape(self.batch)));
                }
                let k: Vec<f32> = scale.iter().zip(&var).map(|(s, v)| s / (v + eps).sqrt()).collect();
                let shift: Vec<f32> = bias.iter().zip(&mean).zip(&k).map(|((b, m), k)| b - m * k).collect();
                self.affine(node, x, &k, &shift)?;
            }
            "Relu" => self.activation(node, x, Activation::Relu)?,
            "LeakyRelu" => self.activation(node, x, Activation::Leaky(float(node, "alpha", 0.01)))?,
            "PRelu" => {
                let slope = self.per_channel(node, x, 1)?;
                self.activation(node, x, Activation::PRelu(slope))?;
            }
            "Neg" => self.affine(node, x, &vec![-1.0; x.c], &vec![0.0; x.c])?,
            "Add" if both => self.residual(node, &dynamic)?,
            "Add" | "Sub" | "Mul" | "Div" => {
                let first = dynamic.first().is_some_and(|v| v.is_some());
                let k = self.per_channel(node, x, if first { 1 } else { 0 })?;
                let (scale, shift): (Vec<f32>, Vec<f32>) = match (node.op.as_str(), first) {
                    ("Add", _) => (vec![1.0; x.c], k),
                    ("Sub", true) => (vec![1.0; x.c], k.iter().map(|v| -v).collect()),
                    ("Sub", false) => (vec![-1.0; x.c], k),
                    ("Mul", _) => (k, vec![0.0; x.c]),
                    ("Div", true) => (k.iter().map(|v| 1.0 / v).collect(), vec![0.0; x.c]),
                    _ => return Err("a constant divided by the image".into()),
                };
                self.affine(node, x, &scale, &shift)?;
            }
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" => {
                let shape = self.shape_after(node, x)?;
                let v = reshape(x, &shape, self.batch).ok_or_else(|| format!("{:?} to {shape:?}", x.shape(self.batch)))?;
                self.alias(&out_name, v);
            }
            "Transpose" => {
                let from = x.shape(self.batch);
                let perm: Vec<usize> =
                    ints(node, "perm").map(|p| p.iter().map(|&v| v as usize).collect()).unwrap_or_else(|| (0..from.len()).rev().collect());
                let to: Vec<usize> = perm.iter().map(|&p| from.get(p).copied().unwrap_or(0)).collect();
                let moved: Vec<usize> = perm.iter().copied().filter(|&p| from.get(p).is_some_and(|&d| d > 1)).collect();
                let v = match (x.view, perm.as_slice()) {
                    _ if moved.windows(2).all(|w| w[0] < w[1]) && to.iter().product::<usize>() == from.iter().product::<usize>() => {
                        reshape(x, &to, self.batch)
                    }
                    (View::Nchw, [0, 2, 3, 1]) => Some(Val { view: View::Nhwc, ..x }),
                    (View::Nhwc, [0, 3, 1, 2]) => Some(Val { view: View::Nchw, ..x }),
                    _ => None,
                };
                self.alias(&out_name, v.ok_or_else(|| format!("permutation {perm:?} of {from:?}"))?);
            }
            "Pad" => {
                let pads: Vec<i64> = match node.inputs.get(1).filter(|n| !n.is_empty()) {
                    Some(_) => values(self.constant(node, 1)?)?.iter().map(|&v| v as i64).collect(),
                    None => ints(node, "pads").unwrap_or_default(),
                };
                let zero = match node.inputs.get(2).filter(|n| !n.is_empty()) {
                    Some(_) => values(self.constant(node, 2)?)?.iter().all(|&v| v == 0.0),
                    None => float(node, "value", 0.0) == 0.0,
                };
                let constant = !matches!(node.attrs.get("mode"), Some(Attr::Text(m)) if m != "constant");
                let [0, 0, t, l, 0, 0, b, r] = pads[..] else { return Err(format!("pads {pads:?} beyond height and width")) };
                if x.view != View::Nchw || !zero || !constant || [t, l, b, r].iter().any(|&p| !(0..=eval::MAX_PAD).contains(&p)) {
                    return Err("only zero padding of an (N, C, H, W) map is read".into());
                }
                let p = x.pad.unwrap_or(Pad::same(0));
                let pad =
                    Pad { top: p.top + t as usize, left: p.left + l as usize, bottom: p.bottom + b as usize, right: p.right + r as usize };
                self.alias(&out_name, Val { pad: Some(pad), ..x });
            }
            _ => return Err("not an operation facefind maps onto its layers when applied to the image".into()),
        }
        Ok(())
    }

    /// The graph's shape of the node's output, worked out on zeros of the input's shape.
    fn shape_after(&self, node: &Node, x: Val) -> Result<Vec<usize>, String> {
        let zeros = Tensor::zeros(x.shape(self.batch), candle_core::DType::F32, &Device::Cpu).map_err(|e| e.to_string())?;
        let ins: Vec<Option<Tensor>> =
            node.inputs.iter().enumerate().map(|(i, n)| if i == 0 { Some(zeros.clone()) } else { self.consts.get(n).cloned() }).collect();
        Ok(eval::node_output(node, &ins, &Device::Cpu).map_err(|e| e.to_string())?.dims().to_vec())
    }

    /// A constant operand as one value per channel of `x` (a single value repeated).
    fn per_channel(&self, node: &Node, x: Val, i: usize) -> Result<Vec<f32>, String> {
        let t = self.constant(node, i)?;
        let v = values(t)?;
        if v.len() == 1 {
            return Ok(vec![v[0]; x.c]);
        }
        let shape = x.shape(self.batch);
        let axis = x.channel_axis();
        // right-aligned broadcasting: only the channel axis may differ from 1
        let dims = t.dims();
        let aligned = dims.len() <= shape.len()
            && dims.iter().rev().enumerate().all(|(k, &d)| d == 1 || (Some(shape.len() - 1 - k) == axis && d == x.c));
        if aligned && v.len() == x.c {
            Ok(v)
        } else {
            Err(format!("a constant of shape {dims:?} on a value of shape {shape:?}"))
        }
    }

    /// `x · scale + shift` per channel: folded into the layer before, or a 1×1 depthwise layer.
    fn affine(&mut self, node: &Node, x: Val, scale: &[f32], shift: &[f32]) -> Result<(), String> {
        if let Some(l) = self.foldable(&x).filter(|l| matches!(l.act, Activation::Linear)) {
            let per = l.weight.len() / l.spec.c_out;
            for (o, w) in l.weight.chunks_exact_mut(per).enumerate() {
                w.iter_mut().for_each(|w| *w *= scale[o]);
                l.bias[o] = l.bias[o] * scale[o] + shift[o];
            }
            self.alias(&node.outputs[0], x);
            return Ok(());
        }
        if x.channel_axis().is_none() && scale.windows(2).any(|w| w[0] != w[1]) {
            return Err("per-channel values on a flattened map".into());
        }
        let layer = Layer {
            weight: scale.to_vec(),
            bias: shift.to_vec(),
            spec: ConvSpec::depthwise(x.c, 1, 1, 0),
            act: Activation::Linear,
            input: x.slot,
            residual: None,
            out: 0,
        };
        let out = self.push(Op::Conv(layer), &node.outputs[0]);
        self.output_of(node, Val { slot: out, ..x })
    }

    fn activation(&mut self, node: &Node, x: Val, act: Activation) -> Result<(), String> {
        if let Some(l) = self.foldable(&x).filter(|l| matches!(l.act, Activation::Linear)) {
            l.act = act;
            self.alias(&node.outputs[0], x);
            return Ok(());
        }
        let layer = Layer {
            weight: vec![1.0; x.c],
            bias: vec![0.0; x.c],
            spec: ConvSpec::depthwise(x.c, 1, 1, 0),
            act,
            input: x.slot,
            residual: None,
            out: 0,
        };
        let out = self.push(Op::Conv(layer), &node.outputs[0]);
        self.output_of(node, Val { slot: out, ..x })
    }

    /// `a + b`, both from the image: added by the layer that wrote one of them (moved here, so
    /// the other is ready), or a plain add.
    fn residual(&mut self, node: &Node, dynamic: &[Option<Val>]) -> Result<(), String> {
        let [Some(a), Some(b)] = dynamic[..] else { return Err("an add of other than two values".into()) };
        if a.shape(self.batch) != b.shape(self.batch) || a.in_order(true) != b.in_order(true) || b.pad.is_some() {
            return Err(format!("adds {:?} and {:?}", a.shape(self.batch), b.shape(self.batch)));
        }
        for (x, r) in [(a, b), (b, a)] {
            if self.foldable(&x).is_some() {
                let at = self.producer[&x.slot];
                let Some(Op::Conv(mut l)) = self.ops[at].take() else { continue };
                l.residual = Some(r.slot);
                self.producer.insert(x.slot, self.ops.len());
                self.ops.push(Some(Op::Conv(l)));
                self.alias(&node.outputs[0], x);
                return Ok(());
            }
        }
        let out = self.push(Op::Add { a: a.slot, b: b.slot, out: 0 }, &node.outputs[0]);
        self.output_of(node, Val { slot: out, ..a })
    }

    fn conv(&mut self, node: &Node, x: Val) -> Result<(), String> {
        let (dims, weight) = self.weights(node, 1)?;
        let [co, ci, kh, kw] = dims[..] else { return Err(format!("weights of shape {dims:?}")) };
        let bias = match node.inputs.get(2).filter(|n| !n.is_empty()) {
            Some(_) => values(self.constant(node, 2)?)?,
            None => vec![0.0; co],
        };
        let group = int(node, "group", 1) as usize;
        let strides = ints(node, "strides").unwrap_or(vec![1, 1]);
        if x.view != View::Nchw {
            return Err(format!("a convolution of a value of shape {:?}", x.shape(self.batch)));
        }
        if ints(node, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
            return Err("dilated convolution".into());
        }
        if kh != kw || kh == 0 || co == 0 || strides.len() != 2 || strides[0] != strides[1] || strides[0] < 1 || bias.len() != co {
            return Err(format!("a {kh}x{kw} kernel with strides {strides:?}"));
        }
        let (k, s) = (kh, strides[0] as usize);
        let depthwise = group == x.c && ci == 1 && co == x.c && group > 1;
        if !(depthwise || group == 1 && ci == x.c) {
            return Err(format!("a convolution of {} channels in {group} groups with weights {dims:?}", x.c));
        }
        let p = x.pad.unwrap_or(Pad::same(0));
        let same = |n: usize, lower: bool| {
            let total = ((n.div_ceil(s).max(1) - 1) * s + k).saturating_sub(n);
            if lower {
                (total - total / 2, total / 2)
            } else {
                (total / 2, total - total / 2)
            }
        };
        let (t, l, b, r) = match (node.attrs.get("auto_pad"), ints(node, "pads")) {
            (Some(Attr::Text(m)), _) if m.starts_with("SAME") => {
                // of the map as a Pad node before it left it
                let lower = m == "SAME_LOWER";
                let ((t, b), (l, r)) = (same(x.h + p.top + p.bottom, lower), same(x.w + p.left + p.right, lower));
                (t, l, b, r)
            }
            (_, Some(q)) if q.len() == 4 && q.iter().all(|&v| (0..=eval::MAX_PAD).contains(&v)) => {
                (q[0] as usize, q[1] as usize, q[2] as usize, q[3] as usize)
            }
            (_, None) => (0, 0, 0, 0),
            (_, Some(q)) => return Err(format!("pads {q:?}")),
        };
        let pad = Pad { top: p.top + t, left: p.left + l, bottom: p.bottom + b, right: p.right + r };
        let (hp, wp) = (x.h + pad.top + pad.bottom, x.w + pad.left + pad.right);
        if hp < k || wp < k {
            return Err(format!("a {k}x{k} kernel on a {}x{} map", x.h, x.w));
        }
        let spec = if depthwise { ConvSpec::depthwise(x.c, k, s, 0) } else { ConvSpec::dense(x.c, co, k, s, 0) }.with_pad(pad);
        let layer = Layer { weight, bias, spec, act: Activation::Linear, input: x.slot, residual: None, out: 0 };
        let out = self.push(Op::Conv(layer), &node.outputs[0]);
        let v = Val { slot: out, c: co, h: (hp - k) / s + 1, w: (wp - k) / s + 1, view: View::Nchw, pad: None };
        self.output_of(node, v)
    }

    /// A fully connected layer (Gemm, or MatMul by a constant) on a flattened map: a
    /// convolution whose kernel covers the whole map.
    fn dense(&mut self, node: &Node, x: Val) -> Result<(), String> {
        if !matches!(x.view, View::FlatChw | View::FlatHwc) || x.h != x.w || !node.inputs.first().is_some_and(|n| self.vals.contains_key(n))
        {
            return Err(format!("a fully connected layer on a value of shape {:?}", x.shape(self.batch)));
        }
        let gemm = node.op == "Gemm";
        if gemm && int(node, "transA", 0) != 0 {
            return Err("transA".into());
        }
        let (dims, bv) = self.weights(node, 1)?;
        let [r, c] = dims[..] else { return Err(format!("weights of shape {dims:?}")) };
        let trans = gemm && int(node, "transB", 0) == 1;
        let (k_in, n_out) = if trans { (c, r) } else { (r, c) };
        let inner = x.c * x.h * x.w;
        if k_in != inner || n_out == 0 {
            return Err(format!("weights of shape {dims:?} for {inner} inputs"));
        }
        let alpha = if gemm { float(node, "alpha", 1.0) } else { 1.0 };
        let at = |o: usize, i: usize| alpha * if trans { bv[o * k_in + i] } else { bv[i * n_out + o] };
        let (hw, chw) = (x.h * x.w, x.in_order(true));
        let mut weight = vec![0f32; n_out * inner];
        for o in 0..n_out {
            for ch in 0..x.c {
                for p in 0..hw {
                    // the input index of (channel, pixel) in the graph's flattened order
                    let i = if chw { ch * hw + p } else { p * x.c + ch };
                    weight[(o * x.c + ch) * hw + p] = at(o, i);
                }
            }
        }
        let bias = match node.inputs.get(2).filter(|n| !n.is_empty() && gemm) {
            Some(_) => {
                let beta = float(node, "beta", 1.0);
                let v = values(self.constant(node, 2)?)?;
                match v.len() {
                    1 => vec![v[0] * beta; n_out],
                    n if n == n_out => v.iter().map(|b| b * beta).collect(),
                    n => return Err(format!("a bias of {n} values for {n_out} outputs")),
                }
            }
            None => vec![0.0; n_out],
        };
        let layer = Layer {
            weight,
            bias,
            spec: ConvSpec::dense(x.c, n_out, x.h, 1, 0),
            act: Activation::Linear,
            input: x.slot,
            residual: None,
            out: 0,
        };
        let out = self.push(Op::Conv(layer), &node.outputs[0]);
        self.output_of(node, Val { slot: out, c: n_out, h: 1, w: 1, view: View::FlatChw, pad: None })
    }
}

/// `x` seen with the graph's shape `to` (batch first), when its values keep their order.
fn reshape(x: Val, to: &[usize], batch: usize) -> Option<Val> {
    let size = x.c * x.h * x.w;
    let (&n, rest) = to.split_first()?;
    if n != batch || rest.iter().product::<usize>() != size {
        return None;
    }
    let Val { c, h, w, .. } = x;
    match rest {
        [_] => Some(Val { view: if x.in_order(true) { View::FlatChw } else { View::FlatHwc }, ..x }),
        [a, b, d] if (*a, *b, *d) == (c, h, w) && x.in_order(true) => Some(Val { view: View::Nchw, ..x }),
        [a, b, d] if (*a, *b, *d) == (h, w, c) && x.in_order(false) => Some(Val { view: View::Nhwc, ..x }),
        // a vector seen as a 1×1 map, channels first or last
        [a, 1, 1] if h * w == 1 && *a == c => Some(Val { view: View::Nchw, ..x }),
        [1, 1, a] if h * w == 1 && *a == c => Some(Val { view: View::Nhwc, ..x }),
        _ => None,
    }
}

#[cfg(test)]
#[path = "lower_tests.rs"]
mod tests;
