//! Training: a small network overfits 8 images, checkpoints round-trip, a resumed run repeats an
//! uninterrupted one, the trainable graph folds into the shipped inference form, and the CLI's
//! errors for bad input.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor};
use facefind::nets::{Arch, Mode};
use facefind::pipeline::ModelSource;
use facefind::train::heads::HeadKind;
use facefind::train::loss::LossKind;
use facefind::train::optim::{OptimizerKind, Schedule};
use facefind::train::{Config, InitFrom, Model, Outcome, Trainer};
use image::RgbImage;

/// Eight synthetic 112x112 "faces", two per person: a smooth pattern per person plus noise.
fn images() -> (Vec<RgbImage>, Vec<u32>) {
    let mut rng = facefind::util::rng::Rng(42);
    let mut crops = Vec::new();
    let mut labels = Vec::new();
    for i in 0..8u32 {
        let p = i / 2;
        let img = RgbImage::from_fn(112, 112, |x, y| {
            let v = ((x as f32 * (0.05 + 0.03 * p as f32)).sin() * (y as f32 * (0.04 + 0.02 * p as f32)).cos() * 100.0 + 128.0) as i32;
            let n = (rng.next_u64() % 40) as i32 - 20;
            let c = |k: i32| (v + n + k * p as i32 * 10).clamp(0, 255) as u8;
            image::Rgb([c(1), c(-1), c(2)])
        });
        crops.push(img);
        labels.push(p);
    }
    (crops, labels)
}

fn config(head: HeadKind, epochs: usize, batch: usize) -> Config {
    Config {
        arch: Arch::Mobilefacenet,
        head,
        loss: LossKind::Ce,
        init: InitFrom::Scratch,
        epochs,
        batch,
        lr: 2e-3,
        optimizer: OptimizerKind::Adamw,
        weight_decay: 5e-4,
        schedule: Schedule::Step { every: 100, gamma: 0.1 },
        clip_norm: Some(10.0),
        seed: 7,
        max_steps_per_epoch: None,
    }
}

fn trainer(cfg: Config) -> Trainer {
    let (crops, labels) = images();
    let model = Model::new(&cfg, 4, &ModelSource::BuiltIn, &Device::Cpu, None).unwrap();
    Trainer::new(cfg, model, crops, labels).unwrap()
}

#[test]
fn mobilefacenet_overfits_eight_images() {
    let mut cfg = config(HeadKind::Softmax, 30, 8);
    cfg.lr = 1e-2;
    let mut t = trainer(cfg);
    let stop = AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    let mut losses = Vec::new();
    let out = t.run(None, &stop, &dir.path().join("c.safetensors"), &mut |_, _, l| losses.push(l), &mut |_, _| Ok(())).unwrap();
    assert_eq!(out, Outcome::Finished);
    let (first, last) = (losses[0], *losses.last().unwrap());
    eprintln!("loss {first:.3} -> {last:.4}");
    assert!(first > 1.0, "a fresh head starts near ln 4: {first}");
    assert!(last < 0.05, "8 images must be learnt: {first} -> {last}");
    assert_eq!(t.progress.log.last().unwrap().train_accuracy, 1.0);
}

/// Losses of each step, and the final backbone, of a run with `epochs` x 2 steps; when
/// `stop_after` is given the run is interrupted after that many steps and resumed from its
/// checkpoint by a fresh trainer.
fn losses(stop_after: Option<usize>, dir: &Path) -> (Vec<f64>, Tensor) {
    let cfg = config(HeadKind::Arcface { s: 30.0, m: 0.5, easy_margin: false }, 3, 4);
    let ckpt = dir.join("checkpoint.safetensors");
    let mut t = trainer(cfg.clone());
    let mut losses = Vec::new();
    let stop = AtomicBool::new(false);
    let out = t
        .run(
            None,
            &stop,
            &ckpt,
            &mut |_, _, l| {
                losses.push(l);
                if Some(losses.len()) == stop_after {
                    stop.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            },
            &mut |_, _| Ok(()),
        )
        .unwrap();
    if stop_after.is_some() {
        assert_eq!(out, Outcome::Interrupted);
        let mut t2 = trainer(cfg);
        t2.load_checkpoint(&ckpt).unwrap();
        let stop = AtomicBool::new(false);
        assert_eq!(t2.run(None, &stop, &ckpt, &mut |_, _, l| losses.push(l), &mut |_, _| Ok(())).unwrap(), Outcome::Finished);
        t = t2;
    }
    let w = t.model.net.forward(&Tensor::ones((2, 3, 112, 112), candle_core::DType::F32, &Device::Cpu).unwrap(), Mode::Eval).unwrap();
    (losses, w)
}

#[test]
fn resume_repeats_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let (a, wa) = losses(None, dir.path());
    let (b, wb) = losses(Some(3), dir.path());
    assert_eq!(a.len(), 6);
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() < 1e-5, "step {i}: {x} vs resumed {y}");
    }
    let d = (wa - wb).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    assert!(d < 1e-4, "final embeddings differ by {d}");
}

#[test]
fn checkpoint_round_trip_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.safetensors");
    let mut t = trainer(config(HeadKind::Sphereface { m: 4 }, 1, 4));
    t.run(None, &AtomicBool::new(false), &p, &mut |_, _, _| {}, &mut |_, _| Ok(())).unwrap();
    t.save_checkpoint(&p).unwrap();
    let mut u = trainer(config(HeadKind::Sphereface { m: 4 }, 1, 4));
    u.load_checkpoint(&p).unwrap();
    assert_eq!(u.progress, t.progress);
    assert_eq!(u.model.head.iter, 2, "SphereFace's λ counter");
    assert_eq!(u.opt.step, t.opt.step);
    for (a, b) in [(&t.model.net_vars, &u.model.net_vars), (&t.model.head_vars, &u.model.head_vars)] {
        let (a, b) = (a.data().lock().unwrap(), b.data().lock().unwrap());
        assert_eq!(a.len(), b.len());
        for (k, v) in a.iter() {
            let d = (v.as_tensor() - b[k].as_tensor())
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(d, 0.0, "{k}");
        }
    }
    // another arch's checkpoint is refused with a clear message
    let mut cfg = config(HeadKind::Sphereface { m: 4 }, 1, 4);
    cfg.arch = Arch::ResnetFace18NoSe;
    let model = Model::new(&cfg, 4, &ModelSource::BuiltIn, &Device::Cpu, None).unwrap();
    let (crops, labels) = images();
    let mut r = Trainer::new(cfg, model, crops, labels).unwrap();
    let err = r.load_checkpoint(&p).unwrap_err().to_string();
    assert!(err.contains("mobilefacenet checkpoint"), "{err}");
}

/// The trainable graph initialised from the shipped weights, with batch norm calibrated on a
/// batch, gives the CPU kernels' embeddings in eval mode; folded back, it is the shipped file.
#[test]
fn shipped_init_is_the_shipped_network_and_folds_back() {
    let (crops, _) = images();
    let refs: Vec<&RgbImage> = crops.iter().collect();
    let x = facefind::nets::input::batch_tensor(&refs, &[Default::default(); 8], Arch::Mobilefacenet, &Device::Cpu).unwrap();
    let mut cfg = config(HeadKind::Softmax, 1, 8);
    cfg.init = InitFrom::Shipped;
    let m = Model::new(&cfg, 4, &ModelSource::BuiltIn, &Device::Cpu, Some(&x)).unwrap();
    let folded = m.net.inference_tensors(&m.net_vars).unwrap();
    let shipped = candle_core::safetensors::load(common::models_dir().join("mobilefacenet_arcface.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(folded.len(), shipped.len());
    for (k, v) in &shipped {
        let d = (v - &folded[k]).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        let s = v.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(d <= 1e-5 * s.max(1.0), "{k}: {d}");
    }
    let p = common::cpu_pipeline();
    let want = p.embedder().kernels().unwrap().forward_raw(&x).unwrap();
    // eval first: a train-mode pass moves the running statistics
    for mode in [Mode::Eval, Mode::Train] {
        let got = m.net.forward(&x, mode).unwrap();
        let d = (&got - &want).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        let scale = want.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        eprintln!("{mode:?}: max |diff| {d:.2e} (largest value {scale:.2})");
        assert!(d < 1e-3 * scale.max(1.0), "{mode:?}: differs by {d} (scale {scale})");
    }
}

fn facefind() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_facefind"));
    c.env("FACEFIND_MODELS", common::models_dir()).args(["--device", "cpu"]);
    c
}

fn stderr_of(c: &mut Command) -> (Option<i32>, String) {
    let o = c.output().unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn train_cli_rejects_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cache = dir.path().join("cache.sqlite");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, err) = stderr_of(facefind().arg("train").arg(&empty).arg("--out").arg(&out).arg("--cache").arg(&cache));
    assert_eq!(code, Some(2));
    assert!(err.contains("no photos found"), "{err}");

    let list = dir.path().join("list.txt");
    std::fs::write(&list, "a.jpg 0\nb.jpg zero\n").unwrap();
    let (code, err) = stderr_of(facefind().arg("train").arg(&list).arg("--out").arg(&out).arg("--cache").arg(&cache));
    assert_eq!(code, Some(2));
    assert!(err.contains("list.txt:2") && err.contains("b.jpg zero"), "{err}");

    // photos without faces: nobody is left to train on, and each photo's reason is kept
    let data = dir.path().join("data");
    for person in ["ann", "bob"] {
        std::fs::create_dir_all(data.join(person)).unwrap();
        for i in 0..2 {
            RgbImage::from_pixel(64, 64, image::Rgb([i * 40, 90, 90])).save(data.join(person).join(format!("{i}.png"))).unwrap();
        }
    }
    std::fs::write(data.join("bob").join("broken.jpg"), b"not a jpeg").unwrap();
    let (code, err) = stderr_of(facefind().arg("train").arg(&data).arg("--out").arg(&out).arg("--cache").arg(&cache));
    assert_eq!(code, Some(2));
    assert!(err.contains("only 0 people with at least 2 usable photos (of 2 people)"), "{err}");
    assert!(!out.join("embedder.safetensors").exists(), "nothing half-written");

    // an embedder file whose manifest does not match it
    let emb = dir.path().join("embedder.safetensors");
    std::fs::copy(common::models_dir().join("mobilefacenet_arcface.safetensors"), &emb).unwrap();
    std::fs::write(dir.path().join("embedder.json"), r#"{"arch":"mobilefacenet","input_size":112,"channels":3,"mean":127.5,"std":128.0,"embedding_dim":192,"sha256":"00","training":null}"#).unwrap();
    let (code, err) = stderr_of(facefind().arg("--embedder").arg(&emb).args(["detect"]).arg(&emb));
    assert_eq!(code, Some(2));
    assert!(err.contains("does not match its manifest"), "{err}");
    let (code, err) =
        stderr_of(facefind().arg("train").arg(&data).arg("--out").arg(&out).arg("--cache").arg(&cache).arg("--init").arg(&emb));
    assert_eq!(code, Some(2));
    assert!(err.contains("does not match its manifest") || err.contains("only 0 people"), "{err}");

    // --resume from a file that is not a checkpoint
    let (code, err) =
        stderr_of(facefind().arg("train").arg(&data).arg("--out").arg(&out).arg("--cache").arg(&cache).arg("--resume").arg(&emb));
    assert_eq!(code, Some(2));
    assert!(err.contains("not a facefind training checkpoint"), "{err}");
}

/// A run that blows up stops with a clear message after the last good checkpoint instead of
/// training on NaNs.
#[test]
fn an_exploding_loss_stops_the_run_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("c.safetensors");
    let mut cfg = config(HeadKind::Softmax, 20, 4);
    cfg.optimizer = OptimizerKind::Sgd;
    cfg.lr = 1e12;
    cfg.clip_norm = None;
    let mut t = trainer(cfg);
    t.save_checkpoint(&ckpt).unwrap();
    let before = std::fs::read(&ckpt).unwrap();
    let err = t.run(None, &AtomicBool::new(false), &ckpt, &mut |_, _, _| {}, &mut |_, _| Ok(())).unwrap_err().to_string();
    assert!(err.contains("the loss became") && err.contains("last good checkpoint"), "{err}");
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "the checkpoint is not overwritten with a broken model");
}

/// 15 people of lfw-train with 11 photos each (165 photos), as a user's small folder-per-person
/// set: the first 15 people (by name) with at least 10 photos.
fn fifteen_people(dir: &Path) -> std::path::PathBuf {
    let src = common::faces_dir().join("lfw-train");
    let out = dir.join("people");
    let mut people: Vec<_> = std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()).collect();
    people.sort();
    let mut taken = 0;
    for p in people {
        let mut photos: Vec<_> = std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()).collect();
        if photos.len() < 10 {
            continue;
        }
        photos.sort();
        let to = out.join(p.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for f in photos.iter().take(11) {
            std::fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
        }
        taken += 1;
        if taken == 15 {
            break;
        }
    }
    out
}

/// 10-fold accuracy on pairsDevTest (people never in lfw-train) with `embedder`, or the shipped one.
fn unseen_accuracy(embedder: Option<&Path>) -> f64 {
    let view1 = common::faces_dir().join("lfw-view1");
    let mut c = facefind();
    if let Some(e) = embedder {
        c.arg("--embedder").arg(e);
    }
    let out = c
        .arg("verify")
        .arg("--pairs")
        .arg(view1.join("pairsDevTest.txt"))
        .arg("--images")
        .arg(view1.join("images"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["accuracy"].as_f64().unwrap()
}

/// Fine-tuning from the shipped weights with every default on a small set keeps accuracy on
/// people it never saw within 0.3 points of the shipped embedder (0.01, the old default, took
/// it to 70 %); a harmful run (lr 0.1) is checked against people held back from training, says
/// so, exits 1 and writes no embedder; `--keep-worse` writes it.
#[test]
#[ignore = "needs ../shared/faces"]
fn fine_tuning_defaults_do_no_harm_and_a_harmful_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = fifteen_people(dir.path());
    let cache = dir.path().join("crops.sqlite");
    let train = |out: &str, extra: &[&str]| -> (Option<i32>, serde_json::Value, String) {
        let o = facefind()
            .arg("train")
            .arg(&data)
            .arg("--out")
            .arg(dir.path().join(out))
            .arg("--cache")
            .arg(&cache)
            .arg("--json")
            .args(extra)
            .output()
            .unwrap();
        let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
        (o.status.code(), v, String::from_utf8_lossy(&o.stderr).into_owned())
    };

    let (code, v, err) = train("defaults", &[]);
    assert_eq!(code, Some(0), "{err}\n{v}");
    let val = &v["validation"];
    assert!(val["source"].as_str().unwrap().contains("held back"), "{v}");
    let embedder = v["embedder"].as_str().map(std::path::PathBuf::from).expect("the default run writes its embedder");
    let (shipped, tuned) = (unseen_accuracy(None), unseen_accuracy(Some(&embedder)));
    eprintln!(
        "pairsDevTest: shipped {:.2} %, fine-tuned with defaults {:.2} % (held-back people: {} -> {})",
        shipped * 100.0,
        tuned * 100.0,
        val["before"],
        val["after"]
    );
    assert!(tuned >= shipped - 0.003, "shipped {shipped}, fine-tuned {tuned}");

    let (code, v, err) = train("harmful", &["--lr", "0.1"]);
    assert_eq!(code, Some(1), "{err}\n{v}");
    assert!(v["embedder"].is_null() && v["validation"]["worse"] == true, "{v}");
    assert!(err.contains("not written") && err.contains("--keep-worse"), "{err}");
    assert!(!dir.path().join("harmful/embedder.safetensors").exists());
    let (code, v, _) = train("harmful-kept", &["--lr", "0.1", "--keep-worse"]);
    assert_eq!(code, Some(0));
    assert!(v["embedder"].is_string() && dir.path().join("harmful-kept/embedder.safetensors").exists(), "{v}");
}
