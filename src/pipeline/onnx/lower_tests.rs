//! Small graphs in the spellings of insightface's exports and of tflite2onnx: the mapped network
//! gives the plain evaluation's output; what it cannot map is refused with the op and where.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::lower;
use crate::pipeline::onnx::{eval, Attr, Const, Graph, Node};
use crate::util::rng::Rng;

fn node(op: &str, name: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> Node {
    Node {
        op: op.into(),
        name: name.into(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![name.to_string()],
        attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}

fn random(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut r = Rng::stream(seed, 7, 11);
    (0..n).map(|_| lo + (hi - lo) * r.uniform()).collect()
}

/// Constants by name: random values in [lo, hi) unless given.
struct Consts(HashMap<String, Const>, u64);

impl Consts {
    fn add(&mut self, name: &str, dims: &[usize], lo: f32, hi: f32) -> &mut Self {
        self.1 += 1;
        let data = random(dims.iter().product(), self.1, lo, hi);
        self.0.insert(name.into(), Const { dims: dims.to_vec(), data });
        self
    }
    fn values(&mut self, name: &str, dims: &[usize], data: &[f32]) -> &mut Self {
        self.0.insert(name.into(), Const { dims: dims.to_vec(), data: data.to_vec() });
        self
    }
    fn bn(&mut self, name: &str, c: usize) -> &mut Self {
        self.add(&format!("{name}.s"), &[c], 0.5, 1.5)
            .add(&format!("{name}.b"), &[c], -0.3, 0.3)
            .add(&format!("{name}.m"), &[c], -0.3, 0.3)
            .add(&format!("{name}.v"), &[c], 0.5, 1.5)
    }
}

fn bn(name: &str, x: &str) -> Node {
    let p = |s: &str| format!("{name}.{s}");
    let (s, b, m, v) = (p("s"), p("b"), p("m"), p("v"));
    node("BatchNormalization", name, &[x, &s, &b, &m, &v], vec![("epsilon", Attr::Float(1e-3))])
}

fn graph(nodes: Vec<Node>, consts: Consts, input: Vec<Option<usize>>, output: &str) -> Graph {
    Graph { nodes, consts: consts.0, input: ("x".into(), input), output: output.into() }
}

/// The mapped network against the plain evaluation on random images, (batch, 3, 8, 8).
fn same_as_plain(g: &Graph, layers: usize) {
    let batch = 2;
    let x = Tensor::from_vec(random(batch * 3 * 64, 99, -1.0, 1.0), (batch, 3, 8, 8), &Device::Cpu).unwrap();
    let nhwc = g.input.1.get(3) == Some(&Some(3));
    let graph_x = if nhwc { x.permute((0, 2, 3, 1)).unwrap().contiguous().unwrap() } else { x.clone() };
    let want = eval::run(g, &graph_x).unwrap();
    let plan = lower(g.clone(), 8).unwrap();
    assert_eq!(plan.layers(), layers, "layers");
    let got = plan.run(crate::kernels::to_native(&x).unwrap()).unwrap();
    assert_eq!(got.dims(), want.dims());
    let generic = crate::kernels::with_generic_ops(|| plan.run(crate::kernels::to_native(&x).unwrap()).unwrap());
    let diff = (&generic - &want).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    assert!(diff <= 1e-4, "the GPU path differs by {diff}");
    let diff = (got - &want).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    let size = want.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    assert!(diff <= 1e-4 * (1.0 + size), "differs by {diff} (values up to {size})");
}

fn ints(v: &[i64]) -> Attr {
    Attr::Ints(v.to_vec())
}

/// tflite2onnx: explicit asymmetric padding, PReLU as relu(x) + a·(x − |x|) with its slope
/// reshaped at run time, a depthwise convolution, an NHWC transpose before a flatten and a
/// MatMul (the weights in (H, W, C) order).
#[test]
fn a_tflite2onnx_graph_maps_onto_three_layers() {
    let mut c = Consts(HashMap::new(), 0);
    c.add("w1", &[4, 3, 3, 3], -0.5, 0.5).add("b1", &[4], -0.2, 0.2).add("alpha", &[4], 0.05, 0.2);
    c.values("alpha_shape", &[4], &[1.0, 4.0, 1.0, 1.0]).add("dw", &[4, 1, 3, 3], -0.5, 0.5).add("dwb", &[4], -0.1, 0.1);
    c.values("flat", &[2], &[2.0, -1.0]).add("fc", &[64, 5], -0.3, 0.3);
    let nodes = vec![
        node(
            "Conv",
            "c1",
            &["x", "w1", "b1"],
            vec![("pads", ints(&[0, 0, 1, 1])), ("strides", ints(&[2, 2])), ("kernel_shape", ints(&[3, 3]))],
        ),
        node("Relu", "relu", &["c1"], vec![]),
        node("Abs", "abs", &["c1"], vec![]),
        node("Sub", "sub", &["c1", "abs"], vec![]),
        node("Reshape", "al", &["alpha", "alpha_shape"], vec![]),
        node("Mul", "mul", &["al", "sub"], vec![]),
        node("Add", "prelu", &["relu", "mul"], vec![]),
        node("Conv", "dw1", &["prelu", "dw", "dwb"], vec![("pads", ints(&[1, 1, 1, 1])), ("group", Attr::Int(4))]),
        node("Transpose", "t", &["dw1"], vec![("perm", ints(&[0, 2, 3, 1]))]),
        node("Reshape", "f", &["t", "flat"], vec![]),
        node("MatMul", "emb", &["f", "fc"], vec![]),
    ];
    same_as_plain(&graph(nodes, c, vec![Some(2), Some(3), Some(8), Some(8)], "emb"), 3);
}

/// insightface's exports: an NHWC input behind a transpose, normalisation on the input, a
/// batch norm before a padded convolution, BN + PReLU after one, a strided residual block whose
/// shortcut is computed after its main path, a flatten through Shape/Gather/Concat, Gemm with
/// alpha and beta, and a 1-d batch norm.
#[test]
fn an_insightface_style_graph_maps_with_its_folds() {
    let mut c = Consts(HashMap::new(), 0);
    c.values("mean", &[1, 3, 1, 1], &[0.1, -0.2, 0.3]).values("inv_std", &[], &[1.7]);
    c.bn("bn0", 3).add("w1", &[4, 3, 3, 3], -0.5, 0.5).bn("bn1", 4).add("slope", &[4, 1, 1], 0.1, 0.3);
    c.add("w2", &[4, 4, 3, 3], -0.4, 0.4).bn("bn2", 4).add("wsc", &[4, 3, 1, 1], -0.5, 0.5).bn("bn3", 4);
    c.values("zero", &[], &[0.0]).values("minus1", &[1], &[-1.0]).values("axes", &[1], &[0.0]);
    c.add("fc", &[6, 64], -0.3, 0.3).add("fcb", &[6], -0.2, 0.2).bn("bn4", 6);
    let nodes = vec![
        node("Transpose", "xt", &["x"], vec![("perm", ints(&[0, 3, 1, 2]))]),
        node("Sub", "centred", &["xt", "mean"], vec![]),
        node("Mul", "scaled", &["centred", "inv_std"], vec![]),
        bn("bn0", "scaled"),
        node("Pad", "padded", &["bn0"], vec![("pads", ints(&[0, 0, 1, 1, 0, 0, 1, 1]))]),
        node("Conv", "c1", &["padded", "w1"], vec![]),
        bn("bn1", "c1"),
        node("PRelu", "p1", &["bn1", "slope"], vec![]),
        node("Conv", "c2", &["p1", "w2"], vec![("pads", ints(&[1, 1, 1, 1])), ("strides", ints(&[2, 2]))]),
        bn("bn2", "c2"),
        node("Conv", "sc", &["bn0", "wsc"], vec![("strides", ints(&[2, 2]))]),
        bn("bn3", "sc"),
        node("Add", "sum", &["bn2", "bn3"], vec![]),
        node("Relu", "r", &["sum"], vec![]),
        node("Add", "twice", &["r", "r"], vec![]),
        node("Dropout", "drop", &["twice"], vec![]),
        node("Shape", "shape", &["drop"], vec![]),
        node("Gather", "n", &["shape", "zero"], vec![("axis", Attr::Int(0))]),
        node("Unsqueeze", "n1", &["n", "axes"], vec![]),
        node("Concat", "target", &["n1", "minus1"], vec![("axis", Attr::Int(0))]),
        node("Reshape", "flat", &["drop", "target"], vec![]),
        node(
            "Gemm",
            "fc1",
            &["flat", "fc", "fcb"],
            vec![("transB", Attr::Int(1)), ("alpha", Attr::Float(0.5)), ("beta", Attr::Float(2.0))],
        ),
        bn("bn4", "fc1"),
        node("Identity", "emb", &["bn4"], vec![]),
    ];
    // the input's affine (Sub, Mul and bn0 in one), c1, c2 (with the shortcut added), sc, the
    // relu after the add, fc (with bn4)
    same_as_plain(&graph(nodes, c, vec![None, Some(8), Some(8), Some(3)], "emb"), 6);
}

fn refusal(nodes: Vec<Node>, c: Consts, output: &str) -> String {
    lower(graph(nodes, c, vec![None, Some(3), Some(8), Some(8)], output), 8).expect_err("refused")
}

#[test]
fn what_cannot_be_mapped_is_refused_with_the_op_and_where_it_is() {
    let conv = |name: &str, x: &str, attrs| node("Conv", name, &[x, "w"], attrs);
    let consts = || {
        let mut c = Consts(HashMap::new(), 0);
        c.add("w", &[4, 3, 3, 3], -0.5, 0.5).add("w2", &[4, 2, 3, 3], -0.5, 0.5);
        c
    };
    let e =
        refusal(vec![conv("c", "x", vec![]), node("Abs", "abs", &["c"], vec![]), node("Flatten", "f", &["abs"], vec![])], consts(), "f");
    assert!(e.starts_with("unsupported ONNX op `Abs` (node `abs`, #2 of 3)"), "{e}");
    let e = refusal(vec![conv("c", "x", vec![])], consts(), "c");
    assert!(e.contains("output `c` is not an embedding vector"), "{e}");
    let e = refusal(vec![conv("c", "x", vec![]), node("Conv", "g", &["c", "w2"], vec![("group", Attr::Int(2))])], consts(), "g");
    assert!(e.starts_with("unsupported ONNX op `Conv` (node `g`, #2 of 2)") && e.contains("2 groups"), "{e}");
    let e = refusal(vec![conv("c", "x", vec![]), node("Transpose", "t", &["c"], vec![("perm", ints(&[0, 1, 3, 2]))])], consts(), "t");
    assert!(e.starts_with("unsupported ONNX op `Transpose` (node `t`, #2 of 2)"), "{e}");
    let e = refusal(vec![conv("c", "x", vec![]), node("Mul", "sq", &["c", "c"], vec![])], consts(), "sq");
    assert!(e.contains("`Mul` (node `sq`") && e.contains("two inputs"), "{e}");
    let e = refusal(vec![conv("c", "x", vec![("dilations", ints(&[2, 2]))])], consts(), "c");
    assert!(e.contains("dilated"), "{e}");
}

/// Hostile files are refused, never a panic or an allocation the size of their numbers.
#[test]
fn hostile_graphs_are_refused_without_panics() {
    let conv = |name: &str, x: &str, attrs| node("Conv", name, &[x, "w"], attrs);
    let consts = || {
        let mut c = Consts(HashMap::new(), 0);
        c.add("w", &[4, 3, 3, 3], -0.5, 0.5).values("none", &[0, 3, 3, 3], &[]).values("five", &[5], &[0.0; 5]);
        c.values("huge", &[8], &[0.0, 0.0, 1e6, 1e6, 0.0, 0.0, 1e6, 1e6]);
        c
    };
    let flat = |x: &str| node("Flatten", "f", &[x], vec![]);
    let cases: Vec<(Vec<Node>, &str)> = vec![
        // an add of three inputs, two from the image
        (vec![conv("c", "x", vec![]), node("Add", "a", &["w", "c", "c"], vec![]), flat("a")], "`Add`"),
        // a convolution to no channels
        (vec![node("Conv", "c", &["x", "none"], vec![]), flat("c")], "`Conv`"),
        // a reshape keeping five dimensions of a two-dimensional value
        (vec![conv("c", "x", vec![]), flat("c"), node("Reshape", "r", &["f", "five"], vec![])], "`Reshape`"),
        // padding of a million pixels
        (vec![node("Pad", "p", &["x", "huge"], vec![]), conv("c", "p", vec![]), flat("c")], "`Pad`"),
        (vec![conv("c", "x", vec![("pads", ints(&[1_000_000, 0, 0, 0]))]), flat("c")], "`Conv`"),
    ];
    for (nodes, op) in cases {
        let out = nodes.last().map(|n| n.name.clone()).unwrap();
        let e = refusal(nodes, consts(), &out);
        assert!(e.contains(op), "{e}");
    }
    // a batch norm reads axis 1: on an (N, H, W, C) view that is H, even when H == C
    let mut c = Consts(HashMap::new(), 0);
    c.bn("bn", 8).add("w8", &[8, 3, 1, 1], -0.5, 0.5);
    let nodes = vec![
        node("Conv", "c", &["x", "w8"], vec![]),
        node("Transpose", "t", &["c"], vec![("perm", ints(&[0, 2, 3, 1]))]),
        bn("bn", "t"),
        flat("bn"),
    ];
    let e = refusal(nodes, c, "f");
    assert!(e.contains("`BatchNormalization`"), "{e}");
}
