//! A plain evaluation of an ONNX graph with candle ops, node by node, NCHW: the reference the
//! mapped network ([`super::lower`]) is checked against, and how it folds constants.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::{Attr, Const, Graph, Node};

fn err(node: &Node, what: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("node `{}` ({}): {what}", node.name, node.op))
}

/// An attribute's value, or `None` / the default when the node does not give it.
pub(super) fn ints(node: &Node, name: &str) -> Option<Vec<i64>> {
    match node.attrs.get(name) {
        Some(Attr::Ints(v)) => Some(v.clone()),
        _ => None,
    }
}

pub(super) fn int(node: &Node, name: &str, default: i64) -> i64 {
    match node.attrs.get(name) {
        Some(Attr::Int(v)) => *v,
        _ => default,
    }
}

fn text<'a>(node: &'a Node, name: &str) -> Option<&'a str> {
    match node.attrs.get(name) {
        Some(Attr::Text(v)) => Some(v),
        _ => None,
    }
}

pub(super) fn float(node: &Node, name: &str, default: f32) -> f32 {
    match node.attrs.get(name) {
        Some(Attr::Float(v)) => *v,
        _ => default,
    }
}

fn constant(c: &Const, device: &Device) -> candle_core::Result<Tensor> {
    Tensor::from_vec(c.data.clone(), c.dims.clone(), device)
}

/// Broadcasts a per-channel vector (any shape holding C values) over an NCHW (or NC) tensor.
fn per_channel(v: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
    let c = v.elem_count();
    let mut shape = vec![1usize; x.rank()];
    if shape.len() > 1 {
        shape[1] = c;
    }
    v.reshape(shape)
}

/// Runs the graph on `x` (N, C, H, W) node by node; returns the graph's output as (N, D).
pub fn run(g: &Graph, x: &Tensor) -> candle_core::Result<Tensor> {
    let device = x.device();
    let mut values: HashMap<&str, Tensor> = HashMap::new();
    values.insert(g.input.0.as_str(), x.clone());
    for (name, c) in &g.consts {
        values.insert(name.as_str(), constant(c, device)?);
    }
    for node in &g.nodes {
        let inputs: Vec<Option<Tensor>> = node.inputs.iter().map(|n| values.get(n.as_str()).cloned()).collect();
        let out = node_output(node, &inputs, device)?;
        let name = node.outputs.first().ok_or_else(|| err(node, "no output"))?;
        values.insert(name.as_str(), out);
    }
    let y = values.remove(g.output.as_str()).ok_or_else(|| candle_core::Error::Msg(format!("output `{}` not computed", g.output)))?;
    // (N, D, 1, 1) is a vector too
    let n = y.dim(0)?;
    y.reshape((n, ()))
}

/// The most padding read on any side (a hostile file could ask for terabytes).
pub const MAX_PAD: i64 = 64;
/// The most values a computed constant may hold.
const MAX_VALUES: usize = 1 << 26;

/// A tensor's values as integers (shapes, axes, indices).
fn int_values(t: &Tensor) -> candle_core::Result<Vec<i64>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?.iter().map(|&v| v as i64).collect())
}

/// An axis counted from the end when negative.
fn axis(a: i64, rank: usize) -> usize {
    if a < 0 {
        (rank as i64 + a).max(0) as usize
    } else {
        a as usize
    }
}

/// What a Shape node gives for a value of shape `dims` (its `start` and `end`, opset 15).
pub fn shape_of(node: &Node, dims: &[usize]) -> Vec<f32> {
    let rank = dims.len();
    let (a, b) = (axis(int(node, "start", 0), rank).min(rank), axis(int(node, "end", rank as i64), rank).min(rank));
    dims[a.min(b)..b].iter().map(|&d| d as f32).collect()
}

/// Axes given as an input (opset 13) or an attribute (before).
fn axes_of(node: &Node, inputs: &[Option<Tensor>]) -> candle_core::Result<Option<Vec<i64>>> {
    match inputs.get(1) {
        Some(Some(t)) => Ok(Some(int_values(t)?)),
        _ => Ok(ints(node, "axes")),
    }
}

/// One node's output from its inputs (`None` for an input left empty or not computed).
pub fn node_output(node: &Node, inputs: &[Option<Tensor>], device: &Device) -> candle_core::Result<Tensor> {
    let input = |i: usize| -> candle_core::Result<Tensor> {
        let name = node.inputs.get(i).ok_or_else(|| err(node, format!("input {i} missing")))?;
        inputs.get(i).cloned().flatten().ok_or_else(|| err(node, format!("input `{name}` not computed")))
    };
    let given = |i: usize| node.inputs.get(i).is_some_and(|n| !n.is_empty());
    Ok(match node.op.as_str() {
        "Identity" | "Dropout" => input(0)?,
        "Conv" => {
            let (xin, w) = (input(0)?, input(1)?);
            let group = int(node, "group", 1).max(0) as usize;
            let strides = ints(node, "strides").unwrap_or(vec![1, 1]);
            let pads = ints(node, "pads").unwrap_or(vec![0, 0, 0, 0]);
            if ints(node, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
                return Err(err(node, "dilated convolutions are not supported"));
            }
            if strides.len() != 2 || strides[0] != strides[1] || strides[0] < 1 || pads.len() != 4 || group < 1 {
                return Err(err(node, "only 2-d convolutions with equal strides"));
            }
            if pads.iter().any(|&p| !(0..=MAX_PAD).contains(&p)) {
                return Err(err(node, format!("pads {pads:?}")));
            }
            let (t, l, b, r) = (pads[0] as usize, pads[1] as usize, pads[2] as usize, pads[3] as usize);
            let (xin, pad) = if t == b && l == r && t == l { (xin, t) } else { (xin.pad_with_zeros(2, t, b)?.pad_with_zeros(3, l, r)?, 0) };
            let mut y = xin.conv2d(&w, pad, strides[0] as usize, 1, group)?;
            if given(2) {
                y = y.broadcast_add(&per_channel(&input(2)?, &y)?)?;
            }
            y
        }
        "BatchNormalization" => {
            let xin = input(0)?;
            let (scale, bias, mean, var) = (input(1)?, input(2)?, input(3)?, input(4)?);
            let eps = float(node, "epsilon", 1e-5) as f64;
            let k = (scale / (var + eps)?.sqrt()?)?;
            let shift = (bias - (&mean * &k)?)?;
            xin.broadcast_mul(&per_channel(&k, &xin)?)?.broadcast_add(&per_channel(&shift, &xin)?)?
        }
        "PRelu" => {
            let xin = input(0)?;
            let slope = input(1)?;
            let slope = if slope.elem_count() == 1 { slope.reshape(())?.broadcast_as(xin.shape())? } else { per_channel(&slope, &xin)? };
            let pos = xin.relu()?;
            let neg = (xin - &pos)?;
            (pos + neg.broadcast_mul(&slope)?)?
        }
        "Relu" => input(0)?.relu()?,
        "LeakyRelu" => {
            let xin = input(0)?;
            let a = float(node, "alpha", 0.01) as f64;
            let pos = xin.relu()?;
            (&pos + ((xin - &pos)? * a)?)?
        }
        "Abs" => input(0)?.abs()?,
        "Neg" => input(0)?.neg()?,
        "Sqrt" => input(0)?.sqrt()?,
        "Add" => input(0)?.broadcast_add(&input(1)?)?,
        "Sub" => input(0)?.broadcast_sub(&input(1)?)?,
        "Mul" => input(0)?.broadcast_mul(&input(1)?)?,
        "Div" => input(0)?.broadcast_div(&input(1)?)?,
        "Flatten" => {
            let xin = input(0)?;
            let axis = axis(int(node, "axis", 1), xin.rank()).min(xin.rank());
            let lead: usize = xin.dims()[..axis].iter().product();
            xin.reshape((lead, ()))?
        }
        "Reshape" => {
            let xin = input(0)?;
            let shape: Vec<i64> = input(1)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?.iter().map(|&v| v as i64).collect();
            if shape.iter().enumerate().any(|(i, &d)| d < -1 || (d == 0 && i >= xin.rank()))
                || shape.iter().filter(|&&d| d == -1).count() > 1
            {
                return Err(err(node, format!("shape {shape:?} for a value of shape {:?}", xin.dims())));
            }
            let mut dims: Vec<usize> =
                shape.iter().enumerate().map(|(i, &d)| if d == 0 { xin.dims()[i] } else { d.max(1) as usize }).collect();
            if let Some(k) = shape.iter().position(|&d| d == -1) {
                let known: usize = dims.iter().enumerate().filter(|(i, _)| *i != k).map(|(_, &d)| d).product();
                dims[k] = xin.elem_count() / known.max(1);
            }
            xin.reshape(dims)?
        }
        "Transpose" => {
            let xin = input(0)?;
            let perm: Vec<usize> =
                ints(node, "perm").map(|p| p.iter().map(|&v| v as usize).collect()).unwrap_or_else(|| (0..xin.rank()).rev().collect());
            xin.permute(perm)?.contiguous()?
        }
        "Gemm" => {
            let (a, b) = (input(0)?, input(1)?);
            let a = if int(node, "transA", 0) == 1 { a.t()? } else { a };
            let b = if int(node, "transB", 0) == 1 { b.t()? } else { b };
            let mut y = (a.contiguous()?.matmul(&b.contiguous()?)? * float(node, "alpha", 1.0) as f64)?;
            if given(2) {
                y = y.broadcast_add(&(input(2)? * float(node, "beta", 1.0) as f64)?)?;
            }
            y
        }
        "MatMul" => {
            let (a, b) = (input(0)?, input(1)?);
            a.contiguous()?.broadcast_matmul(&b.contiguous()?)?
        }
        "Constant" => match node.attrs.get("value") {
            Some(Attr::Tensor(c)) => constant(c, device)?,
            _ => match (
                node.attrs.get("value_float"),
                node.attrs.get("value_floats"),
                node.attrs.get("value_int"),
                node.attrs.get("value_ints"),
            ) {
                (Some(Attr::Float(v)), ..) => Tensor::new(*v, device)?,
                (_, Some(Attr::Floats(v)), ..) => Tensor::new(v.as_slice(), device)?,
                (_, _, Some(Attr::Int(v)), _) => Tensor::new(*v as f32, device)?,
                (.., Some(Attr::Ints(v))) => Tensor::new(v.iter().map(|&v| v as f32).collect::<Vec<_>>(), device)?,
                _ => return Err(err(node, "a constant without a value")),
            },
        },
        "Shape" => Tensor::new(shape_of(node, input(0)?.dims()), device)?,
        "Cast" => input(0)?,
        "Gather" => {
            let (data, idx) = (input(0)?, input(1)?);
            let ax = axis(int(node, "axis", 0), data.rank());
            let n = data.dim(ax)? as i64;
            let flat: Vec<i64> = int_values(&idx)?.iter().map(|&i| if i < 0 { i + n } else { i }).collect();
            if flat.iter().any(|&i| !(0..n).contains(&i)) || flat.len().saturating_mul(data.elem_count() / n.max(1) as usize) > MAX_VALUES {
                return Err(err(node, "indices past the data, or too many"));
            }
            let flat: Vec<u32> = flat.iter().map(|&i| i as u32).collect();
            let picked = data.index_select(&Tensor::new(flat.as_slice(), device)?, ax)?;
            let mut dims = data.dims().to_vec();
            dims.splice(ax..=ax, idx.dims().iter().copied());
            picked.reshape(dims)?
        }
        "Unsqueeze" => {
            let data = input(0)?;
            let mut dims = data.dims().to_vec();
            let rank = dims.len() + axes_of(node, inputs)?.map_or(0, |a| a.len());
            let mut axes: Vec<usize> = axes_of(node, inputs)?.unwrap_or_default().iter().map(|&a| axis(a, rank)).collect();
            axes.sort_unstable();
            for a in axes {
                dims.insert(a.min(dims.len()), 1);
            }
            data.reshape(dims)?
        }
        "Squeeze" => {
            let data = input(0)?;
            let axes: Vec<usize> = match axes_of(node, inputs)? {
                Some(a) => a.iter().map(|&a| axis(a, data.rank())).collect(),
                None => (0..data.rank()).filter(|&i| data.dims()[i] == 1).collect(),
            };
            let dims: Vec<usize> = data.dims().iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
            data.reshape(dims)?
        }
        "Concat" => {
            let parts: Vec<Tensor> = (0..node.inputs.len()).map(input).collect::<candle_core::Result<_>>()?;
            let rank = parts.first().map_or(1, |p| p.rank());
            Tensor::cat(&parts, axis(int(node, "axis", 0), rank))?
        }
        "Slice" => {
            let data = input(0)?;
            let starts = int_values(&input(1)?)?;
            let ends = int_values(&input(2)?)?;
            let axes = if given(3) { int_values(&input(3)?)? } else { (0..starts.len() as i64).collect() };
            if given(4) && int_values(&input(4)?)?.iter().any(|&s| s != 1) {
                return Err(err(node, "slices with a step other than 1"));
            }
            let mut t = data;
            for ((&s, &e), &a) in starts.iter().zip(&ends).zip(&axes) {
                let a = axis(a, t.rank());
                let n = t.dim(a)? as i64;
                let clamp = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(n) };
                let (s, e) = (clamp(s), clamp(e));
                t = t.narrow(a, s as usize, (e - s).max(0) as usize)?;
            }
            t
        }
        "Pad" => {
            let data = input(0)?;
            let pads = if given(1) { int_values(&input(1)?)? } else { ints(node, "pads").unwrap_or_default() };
            let r = data.rank();
            let zero = !given(2) || int_values(&input(2)?)?.iter().all(|&v| v == 0);
            let mode = text(node, "mode").is_none_or(|m| m == "constant");
            if pads.len() != 2 * r || pads.iter().any(|&p| p < 0) || !zero || !mode {
                return Err(err(node, format!("only zero padding of every side is read (pads {pads:?})")));
            }
            if pads.iter().any(|&p| p > MAX_PAD) {
                return Err(err(node, format!("pads {pads:?}")));
            }
            let mut t = data;
            for a in 0..r {
                t = t.pad_with_zeros(a, pads[a] as usize, pads[a + r] as usize)?;
            }
            t
        }
        other => return Err(err(node, format!("`{other}` is not evaluated here"))),
    })
}
