//! An ONNX embedder mapped onto facefind's layers: its embeddings next to onnxruntime's and its
//! speed, for `tools/bench_onnx.sh` (which makes the network and times onnxruntime on the same
//! images): `cargo bench --bench onnx -- NET.onnx NET.json [BATCH]` (`-` for no reference).

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{Device, Tensor};
use facefind::pipeline::onnx::OnnxNet;

/// Image k of `tests/onnx_reference.py`, (v - 127.5) / 127.5, NCHW.
fn images(n: usize) -> anyhow::Result<Tensor> {
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
    Ok(Tensor::from_vec(v, (n, 3, s, s), &Device::Cpu)?)
}

fn main() -> anyhow::Result<()> {
    facefind::util::alloc::reuse_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let [net, reference, rest @ ..] = &args[..] else {
        anyhow::bail!("usage: cargo bench --bench onnx -- NET.onnx NET.json|- [BATCH]");
    };
    let batch: usize = rest.first().map(|b| b.parse()).transpose()?.unwrap_or(8);
    let t = Instant::now();
    let net = OnnxNet::load(std::fs::read(net)?, None, &Device::Cpu).map_err(anyhow::Error::msg)?;
    println!("loaded in {:.2} s: {} layers, {} adds of their own", t.elapsed().as_secs_f64(), net.plan.layers(), net.plan.plain_adds());
    if reference != "-" {
        let want: serde_json::Value = serde_json::from_slice(&std::fs::read(reference)?)?;
        let want = want.as_object().and_then(|o| o.values().find_map(|v| v.get("embeddings"))).cloned().unwrap_or_default();
        let want: Vec<Vec<f32>> = serde_json::from_value(want)?;
        let got = net.plan.run(facefind::kernels::to_native(&images(want.len())?)?)?.to_vec2::<f32>()?;
        let cos = |a: &[f32], b: &[f32]| {
            let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (n(a) * n(b))
        };
        let worst = got.iter().zip(&want).map(|(g, w)| cos(g, w)).fold(f32::INFINITY, f32::min);
        println!("embeddings vs onnxruntime: worst cosine {worst:.6} over {} images", want.len());
    }
    let x = facefind::kernels::to_native(&images(batch)?)?;
    net.plan.run(x.clone())?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        net.plan.run(x.clone())?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("facefind {:.2} faces/s (batch {batch}, best of 5)", batch as f64 / best);
    Ok(())
}
