//! ONNX embedders: random-weight networks made by `tests/onnx_reference.py` (PyTorch, exported
//! to ONNX) give onnxruntime's embeddings.

use candle_core::{Device, Tensor};
use facefind::pipeline::onnx;
use std::path::PathBuf;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx")
}

/// The script's images, (x - 127.5) / 127.5, NCHW.
fn images(n: usize) -> Tensor {
    let s = 112;
    let mut v = vec![0f32; n * 3 * s * s];
    for k in 0..n {
        for c in 0..3 {
            for y in 0..s {
                for x in 0..s {
                    let p = ((x * 7 + y * 13 + c * 29 + k * 31) % 256) as f32;
                    v[((k * 3 + c) * s + y) * s + x] = (p - 127.5) / 127.5;
                }
            }
        }
    }
    Tensor::from_vec(v, (n, 3, s, s), &Device::Cpu).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn random_weight_networks_give_onnxruntimes_embeddings() {
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(data().join("reference.json")).unwrap()).unwrap();
    for name in ["iresnet", "mobilefacenet"] {
        let bytes = std::fs::read(data().join(format!("{name}.onnx"))).unwrap();
        let want: Vec<Vec<f32>> = serde_json::from_value(reference[name]["embeddings"].clone()).unwrap();
        let x = images(want.len());
        // the plain evaluation, and the network mapped onto facefind's layers
        let plain = onnx::eval::run(&onnx::read(&bytes).unwrap(), &x).unwrap().to_vec2::<f32>().unwrap();
        let net = onnx::OnnxNet::load(bytes, None, &Device::Cpu).unwrap();
        let mapped = net.plan.run(facefind::kernels::to_native(&x).unwrap()).unwrap().to_vec2::<f32>().unwrap();
        // the path CUDA and Metal take: NCHW, candle's ops
        let generic = facefind::kernels::with_generic_ops(|| net.plan.run(facefind::kernels::to_native(&x).unwrap()).unwrap());
        assert_eq!(generic.dims()[1..], [want[0].len()], "the GPU path ran NCHW");
        let generic = generic.to_vec2::<f32>().unwrap();
        for (how, got) in [("plain", plain), ("mapped", mapped), ("GPU path", generic)] {
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                let c = cosine(g, w);
                assert!(c >= 0.9999, "{name} {how} image {k}: cosine {c}");
            }
        }
    }
}

mod common;

/// `--embedder FILE.onnx` runs the network for every command; a bad file is a one-line error
/// naming it, and nothing is written to the catalog.
#[test]
fn an_onnx_embedder_runs_and_bad_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::write(photos.join("a.png"), common::png_claiming(64, 48)).ok();
    let good = data().join("mobilefacenet.onnx");
    let out = common::facefind()
        .arg("--embedder")
        .arg(&good)
        .arg("index")
        .arg(&photos)
        .arg("--catalog")
        .arg(tmp.path().join("c.sqlite"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.code() != Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&good).unwrap();
    let cut = tmp.path().join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let text = tmp.path().join("text.onnx");
    std::fs::write(&text, b"not a model").unwrap();
    let wrong = tmp.path().join("wrong.onnx");
    std::fs::copy(&good, &wrong).unwrap();
    std::fs::write(
        tmp.path().join("wrong.json"),
        br#"{"input_size": 112, "channels": "RGB", "mean": [127.5], "std": [127.5], "embedding_dim": 512}"#,
    )
    .unwrap();
    // an operator facefind does not read, and an output that is a feature map, not a vector
    let model = onnx::proto::decode(&bytes).unwrap();
    let mut softmax = model.clone();
    softmax.graph.as_mut().unwrap().node[3].op_type = "Softmax".into();
    let unsupported = tmp.path().join("softmax.onnx");
    std::fs::write(&unsupported, prost::Message::encode_to_vec(&softmax)).unwrap();
    let mut map = model.clone();
    let g = map.graph.as_mut().unwrap();
    g.output[0].name = g.node[0].output[0].clone();
    let not_vector = tmp.path().join("map.onnx");
    std::fs::write(&not_vector, prost::Message::encode_to_vec(&map)).unwrap();
    let size = tmp.path().join("size.onnx");
    std::fs::copy(&good, &size).unwrap();
    std::fs::write(tmp.path().join("size.json"), br#"{"input_size": 96, "channels": "RGB", "mean": [127.5], "std": [127.5]}"#).unwrap();
    let reasons = [
        (&cut, "not an ONNX model"),
        (&text, "not an ONNX model"),
        (&wrong, "embedding_dim 512"),
        (&unsupported, "unsupported ONNX op `Softmax`"),
        (&not_vector, "is not an embedding vector"),
        (&size, "input_size 96"),
    ];
    for (bad, reason) in reasons {
        let catalog = tmp.path().join("bad.sqlite");
        let out = common::facefind().arg("--embedder").arg(bad).arg("index").arg(&photos).arg("--catalog").arg(&catalog).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert!(err.contains(&bad.display().to_string()) && err.contains(reason) && err.trim().lines().count() == 1, "{bad:?}: {err}");
        assert!(!catalog.exists(), "{bad:?} wrote a catalog");
    }
}
