//! ONNX face-embedding networks (insightface's ArcFace exports, converters' output): the file
//! read into a plain graph of named constants and nodes, checked against the operators facefind
//! maps onto its own layers; anything else is refused with the operator's name and where it is.

pub mod eval;
pub mod lower;
pub mod plan;
pub mod proto;

use std::collections::HashMap;

/// Operators an embedding network may use (after constant folding, converters' spellings
/// included: see the list).
pub const SUPPORTED_OPS: &[&str] = &[
    "Abs",
    "Add",
    "BatchNormalization",
    "Cast",
    "Concat",
    "Constant",
    "Conv",
    "Div",
    "Dropout",
    "Flatten",
    "Gather",
    "Gemm",
    "Identity",
    "LeakyRelu",
    "MatMul",
    "Mul",
    "Neg",
    "Pad",
    "PRelu",
    "Relu",
    "Reshape",
    "Shape",
    "Slice",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Transpose",
    "Unsqueeze",
];

/// How crops become the network's input: the manifest beside an ONNX file (`FILE.json`), or
/// insightface's convention without one (112×112 RGB, (x − 127.5) / 127.5).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Side of the square input; without a manifest, the graph's.
    pub input_size: u32,
    /// "RGB" or "BGR".
    pub channels: String,
    /// Subtracted from each 0–255 value, one for all channels or one per channel.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Checked when given.
    #[serde(default)]
    pub arch: Option<String>,
    #[serde(default)]
    pub embedding_dim: Option<usize>,
    #[serde(default)]
    pub sha256: Option<String>,
    /// What `train` writes; ignored here.
    #[serde(default)]
    pub training: Option<serde_json::Value>,
}

impl Preprocess {
    /// insightface's convention, at `input_size`.
    pub fn insightface(input_size: u32) -> Self {
        Self {
            input_size,
            channels: "RGB".into(),
            mean: vec![127.5],
            std: vec![127.5],
            arch: None,
            embedding_dim: None,
            sha256: None,
            training: None,
        }
    }

    /// What the embeddings depend on besides the weights (for the catalog's embedder digest).
    pub fn key(&self) -> String {
        format!("{} {} {:?} {:?}", self.input_size, self.channels, self.mean, self.std)
    }

    fn check(&self) -> Result<(), String> {
        let per = |v: &[f32]| v.len() == 1 || v.len() == 3;
        if !per(&self.mean) || !per(&self.std) || self.std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            return Err("mean and std need 1 or 3 values, std not 0".into());
        }
        if self.channels != "RGB" && self.channels != "BGR" {
            return Err(format!("channels {:?} is not \"RGB\" or \"BGR\"", self.channels));
        }
        if !(16..=1024).contains(&self.input_size) {
            return Err(format!("input_size {} is not a face crop size", self.input_size));
        }
        Ok(())
    }
}

/// An ONNX embedder ready to run: its network mapped onto facefind's layers and how crops
/// become its input.
#[derive(Debug, Clone)]
pub struct OnnxNet {
    pub plan: plan::Plan,
    pub pre: Preprocess,
}

impl OnnxNet {
    /// Reads the model, maps it onto facefind's layers and checks it against `pre` (from its
    /// manifest, or insightface's convention at the graph's input size) by running one blank crop.
    pub fn load(bytes: Vec<u8>, pre: Option<Preprocess>, device: &candle_core::Device) -> Result<Self, String> {
        // the file, its decoded messages, the weights as floats and the layers are not all held
        // at once (an iresnet-50 is 170 MB)
        let model = proto::decode(&bytes).map_err(|e| OnnxError::Decode(e.to_string()).to_string())?;
        drop(bytes);
        let graph = from_model(model).map_err(|e| e.to_string())?;
        let dims = &graph.input.1;
        if dims.len() != 4 {
            return Err(format!("input `{}` is not an image batch (N, C, H, W)", graph.input.0));
        }
        let (side, other) = if dims[1] == Some(3) { (dims[2], dims[3]) } else { (dims[1], dims[2]) };
        if side.is_some() && other.is_some() && side != other {
            return Err(format!("input `{}` is not square ({} x {})", graph.input.0, side.unwrap_or(0), other.unwrap_or(0)));
        }
        let side = side.or(other);
        let pre = pre.unwrap_or_else(|| Preprocess::insightface(side.unwrap_or(112) as u32));
        pre.check()?;
        if side.is_some_and(|s| s != pre.input_size as usize) {
            return Err(format!("the manifest says input_size {}, the network takes {}", pre.input_size, side.unwrap_or(0)));
        }
        let plan = lower::lower(graph, pre.input_size as usize)?;
        let net = Self { plan, pre };
        let probe = image::RgbImage::new(112, 112);
        let out = net.forward(&[&probe], false, device).map_err(|e| format!("{e}"))?;
        let dim = out.dims().get(1).copied().unwrap_or(0);
        if let Some(want) = net.pre.embedding_dim.filter(|&d| d != dim) {
            return Err(format!("the manifest says embedding_dim {want}, the network gives {dim}"));
        }
        Ok(net)
    }

    /// The network's raw output for aligned 112×112 crops (mirrored when `flip`).
    pub fn forward(
        &self,
        crops: &[&image::RgbImage],
        flip: bool,
        device: &candle_core::Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        let s = self.pre.input_size;
        let bgr = self.pre.channels == "BGR";
        let at = |v: &[f32], c: usize| if v.len() == 3 { v[c] } else { v[0] };
        let (scale, shift): (Vec<f32>, Vec<f32>) =
            (0..3).map(|c| (1.0 / at(&self.pre.std, c), -at(&self.pre.mean, c) / at(&self.pre.std, c))).unzip();
        let plane = (s * s) as usize;
        let last = crate::kernels::channels_last(device);
        let mut data = vec![0f32; crops.len() * 3 * plane];
        for (k, crop) in crops.iter().enumerate() {
            let img = if crop.width() == s && crop.height() == s {
                std::borrow::Cow::Borrowed(*crop)
            } else {
                std::borrow::Cow::Owned(image::imageops::resize(*crop, s, s, image::imageops::FilterType::Triangle))
            };
            let dst = &mut data[k * 3 * plane..(k + 1) * 3 * plane];
            for (x, y, p) in img.enumerate_pixels() {
                let x = if flip { s - 1 - x } else { x };
                let at = (y * s + x) as usize;
                for c in 0..3 {
                    let v = p.0[if bgr { 2 - c } else { c }] as f32 * scale[c] + shift[c];
                    dst[if last { at * 3 + c } else { c * plane + at }] = v;
                }
            }
        }
        let (n, s) = (crops.len(), s as usize);
        let x = if last {
            candle_core::Tensor::from_vec(data, (n, s, s, 3), device)?
        } else {
            candle_core::Tensor::from_vec(data, (n, 3, s, s), device)?
        };
        self.plan.run(x)
    }
}

/// Why an ONNX file cannot be used (shown after the file's name).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OnnxError {
    #[error("not an ONNX model (or cut short): {0}")]
    Decode(String),
    #[error("the model has no graph, or its graph has no nodes")]
    Empty,
    #[error("tensor `{0}` keeps its data in another file (external data), which facefind does not read")]
    ExternalData(String),
    #[error("tensor `{name}` has data type {data_type}, not one facefind reads (float, double, int32, int64)")]
    DataType { name: String, data_type: i32 },
    #[error("tensor `{name}` holds {got} values where its shape {dims:?} says {want}")]
    Size { name: String, dims: Vec<i64>, want: usize, got: usize },
    #[error("unsupported ONNX op `{op}` (node `{node}`, #{index} of {count})")]
    Unsupported { op: String, node: String, index: usize, count: usize },
    #[error("the graph has {0} inputs besides its weights; an embedder takes one image")]
    Inputs(usize),
    #[error("the graph has {0} outputs; an embedder gives one vector")]
    Outputs(usize),
}

/// A constant: its shape and values (integers kept as floats are exact up to 2^24, ample for
/// shapes and indices).
#[derive(Debug, Clone, PartialEq)]
pub struct Const {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// An attribute of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Text(String),
    Tensor(Const),
}

/// One node of the graph, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub op: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: HashMap<String, Attr>,
}

/// A model read from an ONNX file.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub consts: HashMap<String, Const>,
    /// The image input: its name and shape (`None` for a dimension named, not fixed).
    pub input: (String, Vec<Option<usize>>),
    pub output: String,
}

fn tensor(t: &proto::TensorProto) -> Result<Const, OnnxError> {
    use proto::data_type as dt;
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(OnnxError::ExternalData(t.name.clone()));
    }
    let raw = &t.raw_data;
    let width = match t.data_type {
        dt::DOUBLE | dt::INT64 => 8,
        _ => 4,
    };
    if !raw.len().is_multiple_of(width) {
        return Err(OnnxError::Size {
            name: t.name.clone(),
            dims: t.dims.clone(),
            want: raw.len().div_ceil(width),
            got: raw.len() / width,
        });
    }
    let data: Vec<f32> = match t.data_type {
        dt::FLOAT if !raw.is_empty() => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        dt::FLOAT => t.float_data.clone(),
        dt::DOUBLE if !raw.is_empty() => raw.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32).collect(),
        dt::DOUBLE => t.double_data.iter().map(|&v| v as f32).collect(),
        dt::INT64 if !raw.is_empty() => raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32).collect(),
        dt::INT64 => t.int64_data.iter().map(|&v| v as f32).collect(),
        dt::INT32 if !raw.is_empty() => raw.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32).collect(),
        dt::INT32 => t.int32_data.iter().map(|&v| v as f32).collect(),
        other => return Err(OnnxError::DataType { name: t.name.clone(), data_type: other }),
    };
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let want = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
    if want != data.len() {
        return Err(OnnxError::Size { name: t.name.clone(), dims: t.dims.clone(), want, got: data.len() });
    }
    Ok(Const { dims, data })
}

fn attr(a: &proto::AttributeProto) -> Result<Attr, OnnxError> {
    // AttributeProto.type: FLOAT 1, INT 2, STRING 3, TENSOR 4, FLOATS 6, INTS 7; a file without
    // it is read by which field holds a value
    let kind = match a.r#type {
        0 if !a.ints.is_empty() => 7,
        0 if !a.floats.is_empty() => 6,
        0 if a.t.is_some() => 4,
        0 if !a.s.is_empty() => 3,
        0 if a.f != 0.0 => 1,
        k => k,
    };
    Ok(match kind {
        1 => Attr::Float(a.f),
        3 => Attr::Text(String::from_utf8_lossy(&a.s).into_owned()),
        4 => Attr::Tensor(a.t.as_ref().map(tensor).transpose()?.unwrap_or(Const { dims: vec![0], data: Vec::new() })),
        6 => Attr::Floats(a.floats.clone()),
        7 => Attr::Ints(a.ints.clone()),
        _ => Attr::Int(a.i),
    })
}

/// Reads an ONNX model: its weights, nodes, one image input and one output. Every node's
/// operator must be one of [`SUPPORTED_OPS`] (in the default domain).
pub fn read(bytes: &[u8]) -> Result<Graph, OnnxError> {
    from_model(proto::decode(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?)
}

/// The graph of a decoded model, each weight's bytes freed once it is read.
fn from_model(model: proto::ModelProto) -> Result<Graph, OnnxError> {
    let mut g = model.graph.ok_or(OnnxError::Empty)?;
    if g.node.is_empty() {
        return Err(OnnxError::Empty);
    }
    let count = g.node.len();
    for (index, n) in g.node.iter().enumerate() {
        let standard = n.domain.is_empty() || n.domain == "ai.onnx";
        if !standard || !SUPPORTED_OPS.contains(&n.op_type.as_str()) {
            let op = if standard { n.op_type.clone() } else { format!("{}:{}", n.domain, n.op_type) };
            return Err(OnnxError::Unsupported { op, node: n.name.clone(), index: index + 1, count });
        }
    }
    let mut consts = HashMap::new();
    for t in std::mem::take(&mut g.initializer) {
        consts.insert(t.name.clone(), tensor(&t)?);
    }
    let inputs: Vec<&proto::ValueInfoProto> = g.input.iter().filter(|i| !consts.contains_key(&i.name)).collect();
    let [input] = inputs[..] else { return Err(OnnxError::Inputs(inputs.len())) };
    let [output] = &g.output[..] else { return Err(OnnxError::Outputs(g.output.len())) };
    let shape = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| s.dim.iter().map(|d| d.dim_value.filter(|&v| v > 0).map(|v| v as usize)).collect())
        .unwrap_or_default();
    let nodes = g
        .node
        .iter()
        .map(|n| {
            Ok(Node {
                op: n.op_type.clone(),
                name: n.name.clone(),
                inputs: n.input.clone(),
                outputs: n.output.clone(),
                attrs: n.attribute.iter().map(|a| Ok((a.name.clone(), attr(a)?))).collect::<Result<_, OnnxError>>()?,
            })
        })
        .collect::<Result<_, OnnxError>>()?;
    Ok(Graph { nodes, consts, input: (input.name.clone(), shape), output: output.name.clone() })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::proto::*;
    use super::*;
    use prost::Message;

    pub fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
        let dim =
            dims.iter().map(|&d| Dimension { dim_value: (d > 0).then_some(d), dim_param: (d <= 0).then(|| "N".to_string()) }).collect();
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto { tensor_type: Some(TypeTensor { elem_type: 1, shape: Some(TensorShapeProto { dim }) }) }),
        }
    }

    pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    pub fn weights(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: data_type::FLOAT,
            raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    /// A 1x1 convolution and a flatten: the smallest graph of the right shape.
    pub fn tiny() -> ModelProto {
        let mut conv = node("Conv", "conv0", &["x", "w"], &["y"]);
        conv.attribute.push(AttributeProto { name: "kernel_shape".into(), ints: vec![1, 1], r#type: 7, ..Default::default() });
        ModelProto {
            ir_version: 8,
            graph: Some(GraphProto {
                node: vec![conv, node("Flatten", "flat", &["y"], &["emb"])],
                initializer: vec![weights("w", &[2, 3, 1, 1], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0])],
                input: vec![value("x", &[-1, 3, 1, 1]), value("w", &[2, 3, 1, 1])],
                output: vec![value("emb", &[-1, 2])],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_model_reads_with_its_weights_input_and_output() {
        let g = read(&tiny().encode_to_vec()).unwrap();
        assert_eq!(g.nodes.len(), 2);
        assert_eq!(g.nodes[0].attrs["kernel_shape"], Attr::Ints(vec![1, 1]));
        assert_eq!(g.consts["w"].dims, vec![2, 3, 1, 1]);
        assert_eq!(g.consts["w"].data[4], 1.0);
        assert_eq!(g.input, ("x".to_string(), vec![None, Some(3), Some(1), Some(1)]));
        assert_eq!(g.output, "emb");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let bytes = tiny().encode_to_vec();
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(matches!(read(&bytes[..cut]), Err(OnnxError::Decode(_)) | Err(OnnxError::Empty)), "cut at {cut}");
        }
        assert!(read(b"just some text, not a model").is_err());
        let mut m = tiny();
        m.graph.as_mut().unwrap().node[1].op_type = "Softmax".into();
        let e = read(&m.encode_to_vec()).unwrap_err();
        assert_eq!(e.to_string(), "unsupported ONNX op `Softmax` (node `flat`, #2 of 2)");
        let mut m = tiny();
        m.graph.as_mut().unwrap().initializer[0].data_location = 1;
        assert!(matches!(read(&m.encode_to_vec()), Err(OnnxError::ExternalData(n)) if n == "w"));
        let mut m = tiny();
        m.graph.as_mut().unwrap().initializer[0].dims = vec![2, 3, 1, 2];
        assert!(matches!(read(&m.encode_to_vec()), Err(OnnxError::Size { want: 12, got: 6, .. })));
        let mut m = tiny();
        m.graph.as_mut().unwrap().output.push(value("other", &[1, 2]));
        assert_eq!(read(&m.encode_to_vec()), Err(OnnxError::Outputs(2)));
    }
}
