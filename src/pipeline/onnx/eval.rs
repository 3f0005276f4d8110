//! A plain evaluation of an ONNX graph with candle ops, node by node, NCHW: the reference the
//! mapped network is checked against, and what runs where the mapping does not reach.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::{Attr, Const, Graph, Node};

fn err(node: &Node, what: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("node `{}` ({}): {what}", node.name, node.op))
}

fn ints(node: &Node, name: &str) -> Option<Vec<i64>> {
    match node.attrs.get(name) {
        Some(Attr::Ints(v)) => Some(v.clone()),
        _ => None,
    }
}

fn int(node: &Node, name: &str, default: i64) -> i64 {
    match node.attrs.get(name) {
        Some(Attr::Int(v)) => *v,
        _ => default,
    }
}

fn float(node: &Node, name: &str, default: f32) -> f32 {
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

/// Runs the graph on `x` (N, C, H, W); returns the graph's output.
pub fn run(g: &Graph, x: &Tensor) -> candle_core::Result<Tensor> {
    let device = x.device();
    let mut values: HashMap<&str, Tensor> = HashMap::new();
    values.insert(g.input.0.as_str(), x.clone());
    for (name, c) in &g.consts {
        values.insert(name.as_str(), constant(c, device)?);
    }
    for node in &g.nodes {
        let input = |i: usize| -> candle_core::Result<Tensor> {
            let name = node.inputs.get(i).ok_or_else(|| err(node, format!("input {i} missing")))?;
            values.get(name.as_str()).cloned().ok_or_else(|| err(node, format!("input `{name}` not computed")))
        };
        let out = match node.op.as_str() {
            "Identity" | "Dropout" => input(0)?,
            "Conv" => {
                let (xin, w) = (input(0)?, input(1)?);
                let group = int(node, "group", 1) as usize;
                let strides = ints(node, "strides").unwrap_or(vec![1, 1]);
                let pads = ints(node, "pads").unwrap_or(vec![0, 0, 0, 0]);
                if ints(node, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
                    return Err(err(node, "dilated convolutions are not supported"));
                }
                if strides.len() != 2 || strides[0] != strides[1] || pads.len() != 4 {
                    return Err(err(node, "only 2-d convolutions with equal strides"));
                }
                let (t, l, b, r) = (pads[0] as usize, pads[1] as usize, pads[2] as usize, pads[3] as usize);
                let (xin, pad) =
                    if t == b && l == r && t == l { (xin, t) } else { (xin.pad_with_zeros(2, t, b)?.pad_with_zeros(3, l, r)?, 0) };
                let mut y = xin.conv2d(&w, pad, strides[0] as usize, 1, group)?;
                if node.inputs.len() > 2 && !node.inputs[2].is_empty() {
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
                let slope =
                    if slope.elem_count() == 1 { slope.reshape(())?.broadcast_as(xin.shape())? } else { per_channel(&slope, &xin)? };
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
                let axis = int(node, "axis", 1).clamp(0, xin.rank() as i64) as usize;
                let lead: usize = xin.dims()[..axis].iter().product();
                xin.reshape((lead, ()))?
            }
            "Reshape" => {
                let xin = input(0)?;
                let shape: Vec<i64> = input(1)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?.iter().map(|&v| v as i64).collect();
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
                if node.inputs.len() > 2 && !node.inputs[2].is_empty() {
                    y = y.broadcast_add(&(input(2)? * float(node, "beta", 1.0) as f64)?)?;
                }
                y
            }
            "MatMul" => {
                let (a, b) = (input(0)?, input(1)?);
                a.contiguous()?.broadcast_matmul(&b.contiguous()?)?
            }
            other => return Err(err(node, format!("`{other}` is not evaluated here"))),
        };
        let name = node.outputs.first().ok_or_else(|| err(node, "no output"))?;
        values.insert(name.as_str(), out);
    }
    let y = values.remove(g.output.as_str()).ok_or_else(|| candle_core::Error::Msg(format!("output `{}` not computed", g.output)))?;
    // (N, D, 1, 1) is a vector too
    let n = y.dim(0)?;
    let y = y.reshape((n, ()))?;
    Ok(y)
}
