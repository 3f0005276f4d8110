//! `train`: the training run's options, progress and summary.

use super::*;

pub(super) fn run_train(cli: &Cli, a: &TrainArgs) -> anyhow::Result<ExitCode> {
    crate::util::alloc::keep_freed_memory();
    use crate::train::{self, heads::HeadKind, loss::LossKind, optim::Schedule, InitFrom};
    let head_name = match a.head {
        HeadName::Softmax => "softmax",
        HeadName::Sphereface => "sphereface",
        HeadName::Cosface => "cosface",
        HeadName::Arcface => "arcface",
        HeadName::Combined => "combined",
    };
    let mut head = HeadKind::defaults(head_name).context("unknown head")?;
    if let HeadKind::Arcface { easy_margin, .. } = &mut head {
        *easy_margin = a.easy_margin;
    }
    let init = match a.init.as_str() {
        "shipped" => InitFrom::Shipped,
        "scratch" => InitFrom::Scratch,
        f if f.to_ascii_lowercase().ends_with(".onnx") => {
            anyhow::bail!("--init {f}: training starts from `shipped`, `scratch` or a .safetensors file written by `facefind train`, not from an ONNX file")
        }
        f => InitFrom::File(PathBuf::from(f)),
    };
    let adam = a.optimizer == train::optim::OptimizerKind::Adamw;
    // From weights, small steps: the network already separates people it never saw, and
    // larger ones trade that for the few people in DATA (0.01 broke it; 1e-3 cost 0.8 points
    // on pairsDevTest, 3e-5 0.2: docs/benchmarks.md "Fine-tuning defaults").
    let lr = a.lr.unwrap_or(match (&init, adam) {
        (InitFrom::Scratch, false) => 0.1,
        (_, false) => 3e-5,
        (InitFrom::Scratch, true) => 1e-3,
        (_, true) => 1e-5,
    });
    let models = pipeline::ModelSource::choose(cli.models.as_deref());
    let p = load_pipeline(cli, Settings::default())?;
    // Steps per epoch are known only after cropping; the poly schedule is set from the data size below.
    let config = train::Config {
        arch: a.arch,
        head,
        loss: match a.loss {
            LossName::Ce => LossKind::Ce,
            LossName::Focal => LossKind::Focal { gamma: 2.0 },
        },
        init,
        epochs: a.epochs,
        batch: a.batch,
        lr,
        optimizer: a.optimizer,
        weight_decay: a.weight_decay,
        schedule: Schedule::Step { every: a.lr_step, gamma: 0.1 },
        clip_norm: a.clip,
        seed: a.seed,
        max_steps_per_epoch: a.max_steps,
    };
    let mut opts = train::run::RunOptions {
        data: a.data.clone(),
        out: a.out.clone(),
        config,
        models,
        val_pairs: a.val_pairs.clone(),
        val_images: a.val_images.clone(),
        resume: a.resume.clone(),
        save_every: a.save_every,
        min_images: a.min_images,
        cache: a.cache.clone(),
        keep_worse: a.keep_worse,
    };
    if a.schedule == ScheduleName::Poly {
        // total steps from the listing size (an upper bound before faces are found)
        let n = train::data::list(&a.data)?.items.len();
        let per_epoch = (n / a.batch.max(1)).max(1);
        let per_epoch = a.max_steps.map_or(per_epoch, |m| m.min(per_epoch)) as f64;
        opts.config.schedule =
            Schedule::WarmupPoly { warmup: (a.warmup * per_epoch) as u64, total: (a.epochs as f64 * per_epoch) as u64, power: 2.0 };
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        if let Err(e) = ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::SeqCst)) {
            tracing::warn!("Ctrl+C will not save a checkpoint: {e}");
        }
    }
    let quiet = a.json || !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = if quiet { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(0) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} {msg} [{elapsed_precise}, ETA {eta}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let json = a.json;
    let sum = train::run::run(&opts, &p, &stop, &mut |ev| match ev {
        train::run::Event::Cropping { done, total } => {
            bar.set_prefix("faces");
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        train::run::Event::Ready { people, images, skipped, steps_per_epoch } => {
            bar.set_prefix("epoch 1");
            bar.set_length(steps_per_epoch as u64);
            bar.set_position(0);
            if !json {
                bar.suspend(|| {
                    eprintln!(
                        "training on {images} photos of {people} people ({skipped} photos skipped), {steps_per_epoch} steps per epoch"
                    )
                });
            }
        }
        train::run::Event::Step { epoch, step, steps, loss } => {
            bar.set_prefix(format!("epoch {epoch}"));
            bar.set_length(steps as u64);
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.3}"));
        }
        train::run::Event::Epoch(r) => {
            if !json {
                let val = r.val_accuracy.map(|v| format!(", val {:.2}%", v * 100.0)).unwrap_or_default();
                bar.suspend(|| {
                    println!(
                        "epoch {}: loss {:.4}, train acc {:.2}%{val}, lr {:.2e}, {:.1} images/s",
                        r.epoch,
                        r.loss,
                        r.train_accuracy * 100.0,
                        r.lr,
                        r.images_per_s
                    )
                });
            }
        }
    })?;
    bar.finish_and_clear();
    if json {
        serde_json::to_writer(std::io::stdout().lock(), &sum)?;
        println!();
    } else {
        for s in &sum.skipped {
            eprintln!("facefind: skipped {}: {}", s.path, s.reason);
        }
        if sum.people_left_out > 0 {
            println!("{} people left out (fewer than {} usable photos)", sum.people_left_out, a.min_images);
        }
        if let Some(v) = &sum.validation {
            let pct = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{:.2} %", x * 100.0));
            println!("validation on {} ({} pairs): {} before, {} after", v.source, v.pairs, pct(v.before), pct(v.after));
        } else if !sum.interrupted {
            println!("not validated: nothing says whether this embedder is better or worse than where it started");
        }
        match (&sum.embedder, &sum.refused) {
            (Some(e), _) => println!("embedder: {e}"),
            (None, Some(_)) => {}
            (None, None) => println!("interrupted: continue with --resume {}", a.out.join("checkpoint.safetensors").display()),
        }
    }
    // said on stderr with or without --json: a script must not miss it
    if let Some(why) = &sum.refused {
        eprintln!("facefind: {why}");
    }
    Ok(if sum.interrupted {
        ExitCode::from(130)
    } else if sum.refused.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
