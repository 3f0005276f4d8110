//! Training speed: one SGD step (MobileFaceNet, 112x112, batch 64, ArcFace head over 1,262
//! classes, momentum 0.9, weight decay 5e-4) in images/s, and inference of the trainable graph
//! (batch norm folded) next to the CPU kernels. `tools/bench_train.sh` runs it in the same
//! command as the PyTorch baseline (../shared/tools/torch_mobilefacenet_step.py).
//! `cargo bench --bench train [BATCH] [STEPS]`.

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{DType, Device, Tensor};
use facefind::nets::{Arch, Mode, Net};
use facefind::train::heads::{Head, HeadKind};
use facefind::train::{loss, optim};

fn main() -> anyhow::Result<()> {
    facefind::util::alloc::keep_freed_memory();
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let batch = args.first().copied().unwrap_or(64);
    let steps = args.get(1).copied().unwrap_or(5);
    let classes = 1262;
    let dev = Device::Cpu;
    let net_vars = candle_nn::VarMap::new();
    let net = Net::trainable(Arch::Mobilefacenet, candle_nn::VarBuilder::from_varmap(&net_vars, DType::F32, &dev))?;
    let head_vars = candle_nn::VarMap::new();
    let mut head = Head::new(
        candle_nn::VarBuilder::from_varmap(&head_vars, DType::F32, &dev),
        HeadKind::Arcface { s: 30.0, m: 0.5, easy_margin: false },
        192,
        classes,
    )?;
    let mut params = optim::params(&net_vars, "net.")?;
    params.extend(optim::params(&head_vars, "head.")?);
    let mut opt = optim::Optimizer::new(optim::OptimizerKind::Sgd, params, 5e-4);
    let x = Tensor::randn(0f32, 1f32, (batch, 3, 112, 112), &dev)?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| (i * 7919) % classes as u32).collect();
    let y = Tensor::new(labels.as_slice(), &dev)?;
    let mut step = |head: &mut Head| -> anyhow::Result<f64> {
        let logits = head.forward(&net.forward(&x, Mode::Train)?, &y)?;
        let l = loss::loss(loss::LossKind::Ce, &logits, &y)?;
        let g = l.backward()?;
        opt.step(&g, 0.1, 1.0)?;
        Ok(l.to_scalar::<f32>()? as f64)
    };
    step(&mut head)?;
    let t = Instant::now();
    for _ in 0..steps {
        step(&mut head)?;
    }
    let train_ips = (batch * steps) as f64 / t.elapsed().as_secs_f64();

    // Inference: the graph with batch norm folded vs the CPU kernels, on the same weights.
    let folded = net.inference_tensors(&net_vars)?;
    let vb = candle_nn::VarBuilder::from_tensors(folded, DType::F32, &dev);
    let graph = Net::inference(Arch::Mobilefacenet, vb.clone())?;
    let kernels = facefind::pipeline::embedder::MobileFaceNet::load(vb)?;
    let time = |f: &dyn Fn() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        f()?;
        let t = Instant::now();
        for _ in 0..steps {
            f()?;
        }
        Ok((batch * steps) as f64 / t.elapsed().as_secs_f64())
    };
    let graph_ips = time(&|| {
        graph.forward(&x, Mode::Eval)?;
        Ok(())
    })?;
    let kernel_ips = time(&|| {
        kernels.forward_raw(&x)?;
        Ok(())
    })?;
    println!("facefind candle cpu threads {}: train step batch {batch}: {train_ips:.1} images/s; inference graph {graph_ips:.1} images/s; inference kernels {kernel_ips:.1} images/s", rayon::current_num_threads());
    Ok(())
}
