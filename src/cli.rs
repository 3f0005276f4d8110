//! The `facefind` command line: `detect` and `verify` (more subcommands build on these).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use image::RgbImage;
use rayon::prelude::*;
use serde::Serialize;

use crate::pipeline::{self, align, photo, DeviceChoice, Face, Pipeline, Settings};
use crate::verify;

#[derive(Parser, Debug)]
#[command(name = "facefind", version, about = "Find every photo of a person in a photo folder")]
pub struct Cli {
    /// Compute device: auto picks CUDA, then Metal, then the CPU.
    #[arg(long, value_enum, global = true, default_value = "auto")]
    pub device: DeviceChoice,
    /// Folder holding the .safetensors weights (default: $FACEFIND_MODELS, next to the binary, or the source tree).
    #[arg(long, global = true)]
    pub models: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Detect faces: box [x, y, w, h], score and 5 landmarks per face, in original pixels.
    Detect {
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Face verification on LFW-format pairs: accuracy, ROC AUC, TAR@FAR.
    Verify {
        /// pairs.txt / pairsDevTrain.txt / pairsDevTest.txt
        #[arg(long)]
        pairs: PathBuf,
        /// Folder with NAME/NAME_NNNN.jpg images.
        #[arg(long)]
        images: PathBuf,
        /// Flip fusion: add the mirrored crop's embedding.
        #[arg(long, value_enum, default_value = "on")]
        flip: OnOff,
        /// Also report accuracy at this fixed threshold (e.g. one chosen on another split).
        #[arg(long)]
        threshold: Option<f32>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("facefind: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load_pipeline(cli: &Cli, settings: Settings) -> anyhow::Result<Pipeline> {
    let device = pipeline::select_device(cli.device).with_context(|| format!("cannot open device {:?}", cli.device))?;
    let dir = cli.models.clone().unwrap_or_else(pipeline::default_models_dir);
    let p = Pipeline::load(&dir, device, settings)?;
    tracing::info!(device = pipeline::device_name(p.device()), models = %dir.display(), "pipeline loaded");
    Ok(p)
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Detect { images, json } => detect(&cli, images, *json),
        Command::Verify { pairs, images, flip, threshold, json } => {
            let settings = Settings { flip: *flip == OnOff::On, ..Settings::default() };
            let p = load_pipeline(&cli, settings)?;
            run_verify(&p, pairs, images, *threshold, *json)
        }
    }
}

#[derive(Serialize)]
struct FaceJson {
    #[serde(rename = "box")]
    bbox: [f32; 4],
    score: f32,
    landmarks: [f32; 10],
}

impl From<&Face> for FaceJson {
    fn from(f: &Face) -> Self {
        let mut landmarks = [0f32; 10];
        for (i, p) in f.landmarks.iter().enumerate() {
            landmarks[2 * i] = p[0];
            landmarks[2 * i + 1] = p[1];
        }
        Self { bbox: f.bbox, score: f.score, landmarks }
    }
}

#[derive(Serialize)]
struct DetectJson {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    faces: Option<Vec<FaceJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn detect(cli: &Cli, images: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let p = load_pipeline(cli, Settings::default())?;
    let mut failed = 0;
    let mut docs = Vec::new();
    let stdout = std::io::stdout();
    for path in images {
        let shown = path.display().to_string();
        let result = photo::load_rgb(path)
            .map_err(anyhow::Error::from)
            .and_then(|img| Ok((img.dimensions(), p.detect(&img)?)));
        match result {
            Ok(((w, h), faces)) => {
                if json {
                    let faces = Some(faces.iter().map(FaceJson::from).collect());
                    docs.push(DetectJson { path: shown, width: Some(w), height: Some(h), faces, error: None });
                } else {
                    let mut out = stdout.lock();
                    writeln!(out, "{shown}: {w}x{h}, {} face{}", faces.len(), if faces.len() == 1 { "" } else { "s" })?;
                    for (i, f) in faces.iter().enumerate() {
                        let b = f.bbox;
                        let lm: Vec<String> = f.landmarks.iter().map(|q| format!("{:.1},{:.1}", q[0], q[1])).collect();
                        writeln!(out, "  face {i}: box [{:.1}, {:.1}, {:.1}, {:.1}] score {:.3} landmarks {}", b[0], b[1], b[2], b[3], f.score, lm.join(" "))?;
                    }
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("facefind: {shown}: {e:#}");
                if json {
                    docs.push(DetectJson { path: shown, width: None, height: None, faces: None, error: Some(format!("{e:#}")) });
                }
            }
        }
    }
    if json {
        serde_json::to_writer_pretty(stdout.lock(), &docs)?;
        println!();
    }
    Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// What verification got from one image.
struct Embedded {
    embedding: Option<Vec<f32>>,
    fallback: bool,
}

/// The face nearest the image centre, or `None`.
pub fn central_face(faces: &[Face], w: u32, h: u32) -> Option<&Face> {
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    faces.iter().min_by(|a, b| {
        let d = |f: &Face| {
            let c = f.center();
            (c[0] - cx).powi(2) + (c[1] - cy).powi(2)
        };
        d(a).total_cmp(&d(b))
    })
}

/// Detect -> central face -> align (or centre crop) -> embed, for every path.
fn embed_central_faces(p: &Pipeline, paths: &[PathBuf]) -> anyhow::Result<HashMap<PathBuf, Embedded>> {
    let mut out = HashMap::new();
    const CHUNK: usize = 64;
    for chunk in paths.chunks(CHUNK) {
        let decoded: Vec<(PathBuf, Result<RgbImage, photo::PhotoError>)> =
            chunk.par_iter().map(|path| (path.clone(), photo::load_rgb(path))).collect();
        let mut crops = Vec::new();
        let mut owners = Vec::new();
        for (path, img) in decoded {
            match img {
                Ok(img) => {
                    let faces = p.detect(&img)?;
                    let (crop, fallback) = match central_face(&faces, img.width(), img.height()) {
                        Some(f) => (p.align(&img, std::slice::from_ref(f)).remove(0), false),
                        None => {
                            tracing::info!(path = %path.display(), "no face found, using a centre crop");
                            (align::center_crop(&img, 0.5), true)
                        }
                    };
                    crops.push(crop);
                    owners.push((path, fallback));
                }
                Err(e) => {
                    eprintln!("facefind: {}: {e}", path.display());
                    out.insert(path, Embedded { embedding: None, fallback: false });
                }
            }
        }
        let embs = p.embed(&crops)?;
        for ((path, fallback), e) in owners.into_iter().zip(embs) {
            out.insert(path, Embedded { embedding: Some(e), fallback });
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct PairJson {
    a: String,
    b: String,
    same: bool,
    score: Option<f32>,
}

#[derive(Serialize)]
struct VerifyJson {
    pairs: Vec<PairJson>,
    accuracy: f64,
    accuracy_std: f64,
    best_threshold_accuracy: f64,
    threshold: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy_at_given_threshold: Option<f64>,
    auc: f64,
    tar_at_far_1e3: f64,
    fallbacks: usize,
    images_per_second: f64,
}

fn run_verify(p: &Pipeline, pairs_path: &Path, images: &Path, threshold: Option<f32>, json: bool) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(pairs_path).with_context(|| format!("cannot read {}", pairs_path.display()))?;
    let parsed = verify::parse_pairs(&text).with_context(|| format!("{}", pairs_path.display()))?;
    let mut paths: Vec<PathBuf> = parsed.pairs.iter().flat_map(|pr| {
        let (a, b) = pr.paths(images);
        [a, b]
    }).collect();
    paths.sort();
    paths.dedup();
    let t0 = Instant::now();
    let embedded = embed_central_faces(p, &paths)?;
    let secs = t0.elapsed().as_secs_f64();
    let fallbacks = embedded.values().filter(|e| e.fallback).count();
    let mut rows = Vec::new();
    let (mut scores, mut same, mut folds) = (Vec::new(), Vec::new(), Vec::new());
    for (i, pr) in parsed.pairs.iter().enumerate() {
        let (a, b) = pr.paths(images);
        let ea = embedded.get(&a).and_then(|e| e.embedding.as_ref());
        let eb = embedded.get(&b).and_then(|e| e.embedding.as_ref());
        let score = match (ea, eb) {
            (Some(x), Some(y)) => Some(pipeline::cosine(x, y)),
            _ => None,
        };
        if let Some(s) = score {
            scores.push(s);
            same.push(pr.same);
            folds.push(parsed.folds[i]);
        }
        rows.push(PairJson { a: a.display().to_string(), b: b.display().to_string(), same: pr.same, score });
    }
    if scores.is_empty() {
        anyhow::bail!("no pair could be scored (are the images under {}?)", images.display());
    }
    let (mean, std, _) = verify::kfold_accuracy(&scores, &same, &folds, parsed.n_folds);
    let (thr, best_acc) = verify::best_threshold(&scores, &same);
    let auc = verify::roc_auc(&scores, &same);
    let (tar, _) = verify::tar_at_far(&scores, &same, 1e-3);
    let at_given = threshold.map(|t| verify::accuracy(&scores, &same, t));
    let ips = paths.len() as f64 / secs;
    let unscored = rows.len() - scores.len();
    if json {
        let doc = VerifyJson {
            pairs: rows,
            accuracy: mean,
            accuracy_std: std,
            best_threshold_accuracy: best_acc,
            threshold: thr,
            accuracy_at_given_threshold: at_given,
            auc,
            tar_at_far_1e3: tar,
            fallbacks,
            images_per_second: ips,
        };
        serde_json::to_writer(std::io::stdout().lock(), &doc)?;
        println!();
    } else {
        println!("pairs:                 {} ({} same, {} different){}", rows.len(), same.iter().filter(|s| **s).count(), same.iter().filter(|s| !**s).count(),
            if unscored > 0 { format!(", {unscored} unscored") } else { String::new() });
        println!("images:                {} ({} without a detected face: centre crop used)", paths.len(), fallbacks);
        println!("flip fusion:           {}", if p.settings.flip { "on" } else { "off" });
        println!("accuracy ({}-fold CV): {:.2}% ± {:.2}", parsed.n_folds, mean * 100.0, std * 100.0);
        println!("best-threshold acc.:   {:.2}% (optimistic: threshold chosen on the same pairs)", best_acc * 100.0);
        println!("threshold:             {thr:.3}");
        if let (Some(t), Some(a)) = (threshold, at_given) {
            println!("accuracy at {t:.3}:     {:.2}%", a * 100.0);
        }
        println!("ROC AUC:               {auc:.4}");
        println!("TAR @ FAR 1e-3:        {:.2}%", tar * 100.0);
        println!("speed:                 {ips:.1} images/s ({} on {})", paths.len(), pipeline::device_name(p.device()));
    }
    Ok(if unscored > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
