//! Margin heads and losses against the seed's PyTorch implementation on the same inputs
//! (tests/data/heads.json, written by tests/heads_reference.py): logits, loss and the gradients
//! with respect to the features, the class weights (and the softmax bias), within 1e-5, for
//! every head and both branches of ArcFace's margin.

use candle_core::{DType, Device, Tensor, Var};
use facefind::train::heads::{Head, HeadKind};
use facefind::train::loss::{self, LossKind};
use serde_json::Value;

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-5, "{what}[{i}]: {g} vs PyTorch {w}");
    }
}

#[test]
fn heads_and_losses_match_pytorch() {
    let r: Value = serde_json::from_str(include_str!("data/heads.json")).unwrap();
    let dev = Device::Cpu;
    let (n, d, c) = (r["n"].as_u64().unwrap() as usize, r["d"].as_u64().unwrap() as usize, r["c"].as_u64().unwrap() as usize);
    let labels: Vec<u32> = r["labels"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let y = Tensor::new(labels.as_slice(), &dev).unwrap();
    // Both ArcFace branches and SphereFace's k > 0 are exercised by these inputs.
    let th = (std::f64::consts::PI - 0.5).cos();
    let label_cos = f64s(&r["label_cos"]);
    assert!(label_cos.iter().any(|c| *c < th) && label_cos.iter().any(|c| *c > th) && label_cos.iter().any(|c| *c < 0.0));
    let mut seen = 0;
    for (name, case) in r["heads"].as_object().unwrap() {
        let kind: HeadKind = serde_json::from_value(case["config"].clone()).unwrap();
        let loss_kind = if case["loss"] == "ce" { LossKind::Ce } else { LossKind::Focal { gamma: 2.0 } };
        let x = Var::from_tensor(&Tensor::from_vec(f64s(&r["x"]), (n, d), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::from_vec(f64s(&r["w"]), (c, d), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::from_vec(f64s(&r["bias"]), c, &dev).unwrap()).unwrap();
        let map = candle_nn::VarMap::new();
        let mut head = Head::new(candle_nn::VarBuilder::from_varmap(&map, DType::F64, &dev), kind, d, c).unwrap();
        head.weight = w.as_tensor().clone();
        if head.bias.is_some() {
            head.bias = Some(b.as_tensor().clone());
        }
        let logits = head.forward(x.as_tensor(), &y).unwrap();
        let l = loss::loss(loss_kind, &logits, &y).unwrap();
        assert_close(&format!("{name} logits"), &logits.flatten_all().unwrap().to_vec1().unwrap(), &f64s(&case["logits"]));
        assert_close(&format!("{name} loss"), &[l.to_scalar::<f64>().unwrap()], &[case["value"].as_f64().unwrap()]);
        let g = l.backward().unwrap();
        assert_close(&format!("{name} d/dx"), &g.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap(), &f64s(&case["dx"]));
        assert_close(&format!("{name} d/dW"), &g.get(w.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap(), &f64s(&case["dw"]));
        if let Some(db) = case["db"].as_array() {
            let want: Vec<f64> = db.iter().map(|v| v.as_f64().unwrap()).collect();
            assert_close(&format!("{name} d/db"), &g.get(b.as_tensor()).unwrap().to_vec1().unwrap(), &want);
        }
        seen += 1;
    }
    assert_eq!(seen, 14, "7 heads x 2 losses");
}
