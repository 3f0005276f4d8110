//! The `facefind` command line: `detect` and `verify` (more subcommands build on these).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::catalog::{self, indexer::Event, names::PathText, scan::ScanOptions, Catalog};
use crate::pipeline::{self, photo, DeviceChoice, Face, Pipeline, Settings};
use crate::verify;

#[derive(Parser, Debug)]
#[command(
    name = "facefind",
    version,
    about = "Find every photo of a person in a photo folder",
    long_about = "Find every photo of a person in a photo folder.\n\nWithout a subcommand, opens the desktop app (on FOLDER if given, otherwise the last folder)."
)]
pub struct Cli {
    /// Open the app on this photo folder.
    pub folder: Option<PathBuf>,
    /// Catalog database for FOLDER in the app (default: in the user cache directory, one per folder).
    #[arg(long, requires = "folder")]
    pub catalog: Option<PathBuf>,
    /// Start the app with a face of this photo as the query (with several faces, you pick one).
    #[arg(long, requires = "folder")]
    pub query: Option<PathBuf>,
    /// Compute device: auto picks CUDA, then Metal, then the CPU.
    #[arg(long, value_enum, global = true, default_value = "auto")]
    pub device: DeviceChoice,
    /// Folder holding the .safetensors weights (default: $FACEFIND_MODELS, next to the binary, or the source tree).
    #[arg(long, global = true)]
    pub models: Option<PathBuf>,
    /// Face embedder written by `facefind train` (its embedder.json must sit beside it); default: the shipped MobileFaceNet.
    #[arg(long, global = true)]
    pub embedder: Option<PathBuf>,
    /// Follow symbolic links that lead outside the photo folder (default: not followed; links
    /// inside it are, and a file reached twice is indexed once).
    #[arg(long, global = true)]
    pub follow_links: bool,
    /// Flip fusion in the commands: add the mirrored face's embedding (about half the embedding
    /// speed for a little accuracy; the app has it in Settings). A catalog indexed with the
    /// other setting is re-embedded from its stored faces.
    #[arg(long, value_enum, global = true, default_value = "on")]
    pub flip: OnOff,
    #[command(subcommand)]
    pub command: Option<Command>,
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
    /// Index a photo folder (incremental: only new or changed photos cost time).
    Index {
        folder: PathBuf,
        /// Catalog database (default: in the user cache directory, one per folder).
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// No progress bar or per-file messages; the summary only.
        #[arg(long)]
        quiet: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Print where the time went: each stage's seconds and share, and how busy the cores
        /// were (the JSON summary always has it under "profile").
        #[arg(long)]
        profile: bool,
        /// Index every photo again, and repair a catalog whose schema version cannot be read.
        /// Faces found again keep their people, names and rejections.
        #[arg(long)]
        rebuild: bool,
    },
    /// Rank every photo of FOLDER by similarity to a face in the query image, or to a person.
    Search {
        folder: PathBuf,
        /// Photo with the person to look for (inside or outside FOLDER).
        #[arg(long, required_unless_present = "person", conflicts_with = "person")]
        query: Option<PathBuf>,
        /// A person of `facefind people` (name or id): their confirmed faces are the query.
        #[arg(long)]
        person: Option<String>,
        /// Which face of the query image (0 = first listed by `detect`; default: the largest).
        #[arg(long)]
        face: Option<usize>,
        /// Cosine similarity at or above which a photo is a match.
        #[arg(long, default_value_t = crate::search::DEFAULT_THRESHOLD)]
        threshold: f32,
        /// Show at most N results (default: all).
        #[arg(long)]
        top: Option<usize>,
        #[arg(long)]
        catalog: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Group the faces of FOLDER into people (indexing first if needed) and list them; or name
    /// or merge people.
    People {
        folder: PathBuf,
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Name person ID (an empty NAME removes the name).
        #[arg(long, num_args = 2, value_names = ["ID", "NAME"], conflicts_with = "merge")]
        name: Option<Vec<String>>,
        /// Merge person ID into person INTO_ID.
        #[arg(long, num_args = 2, value_names = ["ID", "INTO_ID"])]
        merge: Option<Vec<String>>,
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
        /// Also report accuracy at this fixed threshold (e.g. one chosen on another split).
        #[arg(long)]
        threshold: Option<f32>,
        #[arg(long)]
        json: bool,
    },
    /// Train a face embedder with a margin loss (ArcFace, CosFace, SphereFace, combined, softmax).
    Train(Box<TrainArgs>),
}

/// `facefind train`'s options.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// A folder with one sub-folder of photos per person, or a list file of 'path label' lines.
    pub data: PathBuf,
    /// Output folder: embedder.safetensors + embedder.json, train.csv, checkpoint.safetensors.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "mobilefacenet")]
    pub arch: crate::nets::Arch,
    #[arg(long, value_enum, default_value = "arcface")]
    pub head: HeadName,
    /// ArcFace: keep cos θ when it is negative instead of the th/mm fall-back.
    #[arg(long)]
    pub easy_margin: bool,
    #[arg(long, value_enum, default_value = "ce")]
    pub loss: LossName,
    /// shipped (the converted MobileFaceNet), scratch, or an embedder FILE written by `train`.
    #[arg(long, default_value = "shipped")]
    pub init: String,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Base learning rate (default: 0.1 from scratch, 3e-5 from weights; AdamW 1e-3 / 1e-5).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Write the embedder even when it ends worse on validation than it started (from
    /// weights, validation is --val-pairs or, without them, people held back from training).
    #[arg(long)]
    pub keep_worse: bool,
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: crate::train::optim::OptimizerKind,
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// step: x0.1 every --lr-step epochs (the seed); poly: linear warm-up (--warmup epochs), then (1 - t)^2.
    #[arg(long, value_enum, default_value = "step")]
    pub schedule: ScheduleName,
    #[arg(long, default_value_t = 10)]
    pub lr_step: usize,
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Clip the gradient's global L2 norm to this.
    #[arg(long)]
    pub clip: Option<f64>,
    /// LFW-format pairs for validation after each epoch (with --val-images).
    #[arg(long, requires = "val_images")]
    pub val_pairs: Option<PathBuf>,
    #[arg(long, requires = "val_pairs")]
    pub val_images: Option<PathBuf>,
    /// Continue from a checkpoint.safetensors written by an earlier run.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a checkpoint every N epochs (and always at the end and on Ctrl+C).
    #[arg(long, default_value_t = 1)]
    pub save_every: usize,
    /// Leave out people with fewer usable photos than this.
    #[arg(long, default_value_t = 2)]
    pub min_images: usize,
    /// Stop each epoch after N steps (quick runs and benchmarks).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Cache of aligned crops (default: train-crops.sqlite in the user cache directory).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HeadName {
    Softmax,
    Sphereface,
    Cosface,
    Arcface,
    Combined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LossName {
    Ce,
    Focal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleName {
    Step,
    Poly,
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
    if cli.command.is_some() {
        // Like other command-line tools, stop quietly when the reader of stdout goes away
        // (`facefind people DIR | head`); Rust ignores SIGPIPE and `println!` would panic.
        #[cfg(unix)]
        // SAFETY: SIG_DFL is a valid disposition for SIGPIPE, and no other thread exists yet
        // (nothing before this point spawns one), so no handler is being changed under it.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
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
    let settings = Settings { flip: cli.flip == OnOff::On, ..settings };
    let p = Pipeline::load_with_embedder(&dir, cli.embedder.as_deref(), device, settings)?;
    tracing::info!(device = pipeline::device_name(p.device()), models = %dir.display(), "pipeline loaded");
    Ok(p)
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Some(command) = &cli.command else {
        let device = (cli.device != DeviceChoice::Auto).then_some(cli.device);
        crate::gui::run(crate::gui::Options {
            folder: cli.folder.clone(),
            models_dir: cli.models.clone(),
            catalog: cli.catalog.clone(),
            query: cli.query.clone(),
            device,
            prefs: None,
            embedder: cli.embedder.clone(),
        })?;
        return Ok(ExitCode::SUCCESS);
    };
    match command {
        Command::Detect { images, json } => detect(&cli, images, *json),
        Command::Index { folder, catalog, quiet, json, profile, rebuild } => {
            let p = load_pipeline(&cli, Settings::default())?;
            let (sum, _) = run_index(&p, folder, catalog.as_deref(), *quiet || *json, links(&cli), *rebuild)?;
            if *json {
                serde_json::to_writer(std::io::stdout().lock(), &sum)?;
                println!();
            } else {
                print_summary(&sum);
                if *profile {
                    print_profile(&sum.profile, sum.processed);
                }
            }
            let nothing_read = sum.processed > 0 && sum.skipped.values().sum::<usize>() == sum.processed && sum.unchanged == 0;
            Ok(if nothing_read { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Search { folder, query, person, face, threshold, top, catalog, json } => {
            let p = load_pipeline(&cli, Settings::default())?;
            let q = match (query, person) {
                (Some(q), _) => Query::Photo(q.clone(), *face),
                (None, Some(who)) => Query::Person(who.clone()),
                (None, None) => anyhow::bail!("give --query PHOTO or --person NAME"),
            };
            run_search(&p, folder, catalog.as_deref(), &q, *threshold, *top, *json, links(&cli))
        }
        Command::People { folder, catalog, name, merge, json } => {
            run_people(&cli, folder, catalog.as_deref(), name.as_deref(), merge.as_deref(), *json)
        }
        Command::Verify { pairs, images, threshold, json } => {
            let p = load_pipeline(&cli, Settings::default())?;
            run_verify(&p, pairs, images, *threshold, *json)
        }
        Command::Train(args) => run_train(&cli, args),
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
    #[serde(flatten)]
    path: PathText,
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
        let result = photo::load_rgb(path).map_err(anyhow::Error::from).and_then(|img| Ok((img.dimensions(), p.detect(&img)?)));
        match result {
            Ok(((w, h), faces)) => {
                if json {
                    let faces = Some(faces.iter().map(FaceJson::from).collect());
                    docs.push(DetectJson { path: PathText::of_path(path), width: Some(w), height: Some(h), faces, error: None });
                } else {
                    let mut out = stdout.lock();
                    writeln!(out, "{shown}: {w}x{h}, {} face{}", faces.len(), if faces.len() == 1 { "" } else { "s" })?;
                    for (i, f) in faces.iter().enumerate() {
                        let b = f.bbox;
                        let lm: Vec<String> = f.landmarks.iter().map(|q| format!("{:.1},{:.1}", q[0], q[1])).collect();
                        writeln!(
                            out,
                            "  face {i}: box [{:.1}, {:.1}, {:.1}, {:.1}] score {:.3} landmarks {}",
                            b[0],
                            b[1],
                            b[2],
                            b[3],
                            f.score,
                            lm.join(" ")
                        )?;
                    }
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("facefind: {shown}: {e:#}");
                if json {
                    docs.push(DetectJson {
                        path: PathText::of_path(path),
                        width: None,
                        height: None,
                        faces: None,
                        error: Some(format!("{e:#}")),
                    });
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
    let paths = parsed.image_paths(images);
    let t0 = Instant::now();
    let embedded = verify::embed_central_faces(p, &paths)?;
    let secs = t0.elapsed().as_secs_f64();
    for (path, e) in &embedded {
        if let Some(err) = &e.error {
            eprintln!("facefind: {}: {err}", path.display());
        }
    }
    let fallbacks = embedded.values().filter(|e| e.fallback).count();
    let pair_scores = verify::pair_scores(&parsed, images, &embedded);
    let (scores, same, folds) = verify::scored(&parsed, &pair_scores);
    let rows: Vec<PairJson> = parsed
        .pairs
        .iter()
        .zip(&pair_scores)
        .map(|(pr, &score)| {
            let (a, b) = pr.paths(images);
            PairJson { a: a.display().to_string(), b: b.display().to_string(), same: pr.same, score }
        })
        .collect();
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
        println!(
            "pairs:                 {} ({} same, {} different){}",
            rows.len(),
            same.iter().filter(|s| **s).count(),
            same.iter().filter(|s| !**s).count(),
            if unscored > 0 { format!(", {unscored} unscored") } else { String::new() }
        );
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

/// Opens the folder's catalog and brings it up to date. Returns the summary and the catalog.
fn run_index(
    p: &Pipeline,
    folder: &Path,
    catalog: Option<&Path>,
    quiet: bool,
    links: ScanOptions,
    rebuild: bool,
) -> anyhow::Result<(catalog::indexer::Summary, Catalog)> {
    let path = match catalog {
        Some(c) => c.to_path_buf(),
        None => catalog::default_catalog_path(folder)?,
    };
    let mut cat = if rebuild { Catalog::rebuild(&path)? } else { Catalog::open(&path)? };
    if let Some(n) = cat.take_notice() {
        eprintln!("facefind: {n}");
    }
    cat.lock_for_writing()?;
    let bar = if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} photos, {msg} [{elapsed_precise}, ETA {eta}, {per_sec}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let sum = catalog::indexer::index_folder_with(
        folder,
        &mut cat,
        p,
        &cancel,
        &mut |ev| match ev {
            Event::Planned { todo, .. } => bar.set_length(todo as u64),
            Event::Photo { done, faces, .. } => {
                bar.set_position(done as u64);
                bar.set_message(format!("{faces} faces"));
            }
            Event::Skipped { path, reason } => {
                if !quiet {
                    bar.suspend(|| eprintln!("facefind: skipped {path}: {reason}"));
                }
            }
            Event::Committed { .. } => {}
        },
        links,
    )?;
    bar.finish_and_clear();
    tracing::info!(catalog = %path.display(), "index done");
    Ok((sum, cat))
}

fn links(cli: &Cli) -> ScanOptions {
    ScanOptions { follow_outside_links: cli.follow_links }
}

fn print_profile(p: &catalog::indexer::Profile, photos: usize) {
    let stages = [
        ("read files", p.read),
        ("fingerprint", p.fingerprint),
        ("decode + resize", p.decode),
        ("detect", p.detect),
        ("align", p.align),
        ("embed", p.embed),
        ("encode thumbnails and chips", p.encode),
        ("catalog write", p.catalog_write),
        ("group people", p.people),
    ];
    let total: f64 = stages.iter().map(|s| s.1).sum();
    println!("\n| stage | seconds (summed over threads) | share | ms per photo |\n|---|---|---|---|");
    for (name, secs) in stages {
        println!("| {name} | {secs:.2} | {:.1} % | {:.1} |", 100.0 * secs / total.max(1e-9), 1e3 * secs / photos.max(1) as f64);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\nwall {:.1} s, CPU {:.1} s: the {cores} cores were {:.0} % busy; {:.2} photos/s",
        p.wall,
        p.cpu,
        100.0 * p.cpu / (p.wall * cores as f64).max(1e-9),
        photos as f64 / p.wall.max(1e-9)
    );
}

fn print_summary(s: &catalog::indexer::Summary) {
    let skipped: usize = s.skipped.values().sum();
    println!(
        "{} photos: {} indexed, {} unchanged, {} renamed, {} removed; {} faces in the catalog ({} new); {:.1} s{}",
        s.photos,
        s.processed,
        s.unchanged,
        s.renamed,
        s.removed,
        s.faces,
        s.new_faces,
        s.seconds,
        if s.processed > 0 { format!(" ({:.2} photos/s)", s.processed as f64 / s.seconds.max(1e-9)) } else { String::new() }
    );
    if skipped > 0 {
        let parts: Vec<String> = s.skipped.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!("skipped {skipped}: {}", parts.join(", "));
    }
    if s.rebuilt {
        println!("(the detector or its settings changed since the last run: every photo was indexed again)");
    }
    if s.reembedded > 0 {
        println!("(the embedder changed: {} photos re-embedded from their stored faces)", s.reembedded);
    }
    if s.unreadable_folders > 0 {
        println!("{} folders could not be read (see the log)", s.unreadable_folders);
    }
    if s.outside_links > 0 {
        println!("{} symbolic links lead outside the folder and were not followed (--follow-links follows them)", s.outside_links);
    }
    if s.duplicates > 0 {
        println!("{} files are reachable by a second path (a link): each was indexed once", s.duplicates);
    }
}

/// Embeds face `k` (default: the largest) of the query image.
fn query_embedding(p: &Pipeline, image: &Path, k: Option<usize>) -> anyhow::Result<(usize, Face, Vec<f32>)> {
    let img = photo::load_rgb(image).with_context(|| format!("query image {}", image.display()))?;
    p.query_face(&img, k).with_context(|| format!("query image {}", image.display()))
}

#[derive(Serialize)]
#[serde(untagged)]
enum QueryJson {
    Photo {
        #[serde(flatten)]
        path: PathText,
        face: usize,
        #[serde(rename = "box")]
        bbox: [f32; 4],
    },
    Person {
        person: i64,
        name: Option<String>,
        /// Faces of the person used as the query.
        faces: usize,
    },
}

#[derive(Serialize)]
struct ResultJson {
    #[serde(flatten)]
    path: PathText,
    score: f32,
    face: u32,
    #[serde(rename = "box")]
    bbox: [f32; 4],
    #[serde(rename = "match")]
    is_match: bool,
}

#[derive(Serialize)]
struct SearchJson {
    query: QueryJson,
    threshold: f32,
    results: Vec<ResultJson>,
}

/// What `search` looks for: a face of a photo, or a person of the catalog.
enum Query {
    Photo(PathBuf, Option<usize>),
    Person(String),
}

#[allow(clippy::too_many_arguments)]
fn run_search(
    p: &Pipeline,
    folder: &Path,
    catalog: Option<&Path>,
    query: &Query,
    threshold: f32,
    top: Option<usize>,
    json: bool,
    links: ScanOptions,
) -> anyhow::Result<ExitCode> {
    let photo_query = match query {
        Query::Photo(path, k) => Some((path, query_embedding(p, path, *k)?)),
        Query::Person(_) => None,
    };
    // Bring the catalog up to date first (a progress bar on a terminal, unless --json).
    let (_, cat) = run_index(p, folder, catalog, json, links, false)?;
    let table = cat.face_table()?;
    let photos: std::collections::HashMap<i64, Vec<u8>> = cat.photos()?.into_iter().map(|ph| (ph.id, ph.path)).collect();
    let (hits, qjson) = match (photo_query, query) {
        (Some((path, (qidx, qface, qemb))), _) => (
            crate::search::rank_photos(&table, &qemb, threshold),
            QueryJson::Photo { path: PathText::of_path(path), face: qidx, bbox: qface.bbox },
        ),
        (None, Query::Person(who)) => {
            let id = cat.find_person(who)?;
            let person = cat.people()?.into_iter().find(|x| x.id == id).context("person vanished")?;
            let infos = cat.face_infos(&table)?;
            let rows = crate::people::exemplars(&infos, id);
            if rows.is_empty() {
                anyhow::bail!("person {} has no faces to search with", person.label());
            }
            let vectors: Vec<Vec<f32>> = rows.iter().map(|&r| table.embedding(r)).collect();
            let queries: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
            let hits = crate::search::rank_photos_fused(&table, &queries, crate::search::PERSON_FUSE, threshold);
            (hits, QueryJson::Person { person: id, name: person.name, faces: rows.len() })
        }
        (None, Query::Photo(..)) => unreachable!("photo queries are embedded above"),
    };
    let n = top.unwrap_or(hits.len()).min(hits.len());
    let results: Vec<ResultJson> = hits[..n]
        .iter()
        .map(|h| ResultJson {
            path: PathText::of_bytes(photos.get(&h.photo_id).map(Vec::as_slice).unwrap_or_default()),
            score: h.score,
            face: table.face_index(h.row),
            bbox: table.bbox(h.row),
            is_match: h.score >= threshold,
        })
        .collect();
    if json {
        let doc = SearchJson { query: qjson, threshold, results };
        serde_json::to_writer(std::io::stdout().lock(), &doc)?;
        println!();
    } else {
        let matches = crate::search::count_matches(&hits, threshold);
        println!("{matches} of {} photos with faces match at >= {threshold:.2}", hits.len());
        for r in &results {
            let b = r.bbox;
            println!(
                "{} {:.3}  {}  face {} [{:.0}, {:.0}, {:.0}, {:.0}]",
                if r.is_match { "*" } else { " " },
                r.score,
                r.path,
                r.face,
                b[0],
                b[1],
                b[2],
                b[3]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct PeopleFaceJson {
    #[serde(flatten)]
    path: PathText,
    face: u32,
    #[serde(rename = "box")]
    bbox: [f32; 4],
}

#[derive(Serialize)]
struct PersonJson {
    id: i64,
    name: Option<String>,
    hidden: bool,
    faces: Vec<PeopleFaceJson>,
}

#[derive(Serialize)]
struct PeopleJson {
    people: Vec<PersonJson>,
    unassigned: Vec<PeopleFaceJson>,
}

fn run_people(
    cli: &Cli,
    folder: &Path,
    catalog: Option<&Path>,
    name: Option<&[String]>,
    merge: Option<&[String]>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cat = if name.is_some() || merge.is_some() {
        // an edit: no indexing (and no index lock: it may run beside an index)
        let path = match catalog {
            Some(c) => c.to_path_buf(),
            None => catalog::default_catalog_path(folder)?,
        };
        anyhow::ensure!(path.exists(), "no catalog for {} yet: run `facefind people {}` first", folder.display(), folder.display());
        let mut cat = Catalog::open(&path)?;
        if let Some([who, new_name]) = name {
            let id = cat.find_person(who)?;
            cat.name_person(id, Some(new_name))?;
        }
        if let Some([from, into]) = merge {
            let (from, into) = (cat.find_person(from)?, cat.find_person(into)?);
            cat.merge_people(from, into)?;
        }
        cat
    } else {
        let p = load_pipeline(cli, Settings::default())?;
        run_index(&p, folder, catalog, json, links(cli), false)?.1
    };
    let table = cat.face_table()?;
    let photos: HashMap<i64, Vec<u8>> = cat.photos()?.into_iter().map(|ph| (ph.id, ph.path)).collect();
    let links = cat.face_links()?;
    let face_json = |r: usize| PeopleFaceJson {
        path: PathText::of_bytes(photos.get(&table.photo_id(r)).map(Vec::as_slice).unwrap_or_default()),
        face: table.face_index(r),
        bbox: table.bbox(r),
    };
    let mut by_person: HashMap<i64, Vec<usize>> = HashMap::new();
    let mut unassigned = Vec::new();
    for r in 0..table.len() {
        match links.get(&table.face_id(r)) {
            Some((pid, _)) => by_person.entry(*pid).or_default().push(r),
            None => unassigned.push(r),
        }
    }
    let people = cat.people()?;
    if json {
        let doc = PeopleJson {
            people: people
                .iter()
                .map(|x| PersonJson {
                    id: x.id,
                    name: x.name.clone(),
                    hidden: x.hidden,
                    faces: by_person.get(&x.id).map(|rs| rs.iter().map(|&r| face_json(r)).collect()).unwrap_or_default(),
                })
                .collect(),
            unassigned: unassigned.iter().map(|&r| face_json(r)).collect(),
        };
        serde_json::to_writer(std::io::stdout().lock(), &doc)?;
        println!();
    } else {
        let named = people.iter().filter(|x| x.name.is_some()).count();
        println!("{} people ({named} named), {} faces in no person", people.len(), unassigned.len());
        for x in &people {
            let first = by_person.get(&x.id).and_then(|rs| rs.first()).map(|&r| face_json(r).path).unwrap_or_default();
            println!(
                "{:>6}  {:<24} {:>5} faces {:>5} photos{}  e.g. {first}",
                x.id,
                x.label(),
                x.faces,
                x.photos,
                if x.hidden { " (hidden)" } else { "" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_train(cli: &Cli, a: &TrainArgs) -> anyhow::Result<ExitCode> {
    crate::alloc::keep_freed_memory();
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
    let models_dir = cli.models.clone().unwrap_or_else(pipeline::default_models_dir);
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
        models_dir,
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
