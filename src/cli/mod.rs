//! The `facefind` command line: `detect` and `verify` (more subcommands build on these).

mod detect;
mod export;
mod people;
mod search;
mod train;

use detect::{detect, run_verify};
use people::{run_people, PeopleEdits};
use search::{run_search, Order, Query, SortBy};
use train::run_train;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::catalog::{self, names::PathText, Catalog};
use crate::eval::{metrics, pairs};
use crate::index::{scan::ScanOptions, Event};
use crate::photo;
use crate::pipeline::{self, DeviceChoice, Face, Pipeline, Settings};

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
    /// Folder holding the two shipped .safetensors files, checked against their digests (default: $FACEFIND_MODELS, else the copies built into facefind).
    #[arg(long, global = true)]
    pub models: Option<PathBuf>,
    /// Face embedder: a file written by `facefind train` (its .json manifest beside it), or an ONNX face-embedding network (FILE.onnx, with an optional FILE.json saying its preprocessing); default: the shipped MobileFaceNet.
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
    /// Rank every photo of FOLDER by similarity to a face in the query image, or to a person;
    /// or find photos of several people together (--person A --person B), or without someone
    /// (--without C).
    Search {
        folder: PathBuf,
        /// Photo with the person to look for (inside or outside FOLDER).
        #[arg(long, required_unless_present = "person", conflicts_with = "person")]
        query: Option<PathBuf>,
        /// A person of `facefind people` (name or id): their confirmed faces are the query.
        /// Repeat for photos of several people together: a different face must match each, and
        /// a photo ranks by its weakest match.
        #[arg(long)]
        person: Vec<String>,
        /// Leave out photos where a face matches this person (better than it matches anyone
        /// wanted). Repeatable.
        #[arg(long, value_name = "PERSON")]
        without: Vec<String>,
        /// Which face of the query image (0 = first listed by `detect`; default: the largest).
        #[arg(long)]
        face: Option<usize>,
        /// Cosine similarity at or above which a photo is a match.
        #[arg(long, default_value_t = crate::search::DEFAULT_THRESHOLD)]
        threshold: f32,
        /// Show at most N results (default: all).
        #[arg(long)]
        top: Option<usize>,
        /// Order of the results: by score (highest first) or by when the photo was taken
        /// (the matches oldest first, then the other photos; those without a date last).
        #[arg(long, value_enum, default_value_t = SortBy::Score)]
        sort: SortBy,
        /// Only photos taken on or after DATE (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS).
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Only photos taken on or before DATE (inclusive: --to 2019 takes all of 2019).
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        #[arg(long)]
        catalog: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Group the faces of FOLDER into people (indexing first if needed) and list them; or make one
    /// edit (name, merge, not the same, assign, reject); or list the questions Who is this? asks.
    People {
        folder: PathBuf,
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Name person ID (an empty NAME removes the name).
        #[arg(long, num_args = 2, value_names = ["ID", "NAME"], group = "edit")]
        name: Option<Vec<String>>,
        /// Merge person ID into person INTO_ID.
        #[arg(long, num_args = 2, value_names = ["ID", "INTO_ID"], group = "edit")]
        merge: Option<Vec<String>>,
        /// People ID and OTHER are two people: never suggested as one again.
        #[arg(long, num_args = 2, value_names = ["ID", "OTHER"], group = "edit")]
        not_same: Option<Vec<String>>,
        /// Put face FACE of photo PATH (relative to FOLDER) into PERSON.
        #[arg(long, num_args = 3, value_names = ["PATH", "FACE", "PERSON"], group = "edit")]
        assign: Option<Vec<String>>,
        /// Face FACE of photo PATH is not PERSON (remembered).
        #[arg(long, num_args = 3, value_names = ["PATH", "FACE", "PERSON"], group = "edit")]
        reject: Option<Vec<String>>,
        /// List what "Who is this?" asks (from the catalog as it is, without indexing), most useful
        /// first: people who may be one person, then faces near a named person.
        #[arg(long)]
        suggest: bool,
        /// Write the names of faces as XMP sidecars (MWG regions, `photo.jpg.xmp`) that other
        /// tools read, into DIR mirroring the folder (after indexing). Photos are never changed.
        #[arg(long, value_name = "DIR", num_args = 0..=1, conflicts_with_all = ["edit", "suggest"])]
        export_xmp: Option<Option<PathBuf>>,
        /// With --export-xmp: write each sidecar next to its photo instead (never over a sidecar
        /// another program wrote).
        #[arg(long, requires = "export_xmp")]
        beside: bool,
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
    let models = pipeline::ModelSource::choose(cli.models.as_deref());
    let settings = Settings { flip: cli.flip == OnOff::On, ..settings };
    let p = Pipeline::load_with_embedder(&models, cli.embedder.as_deref(), device, settings)?;
    tracing::info!(device = pipeline::device_name(p.device()), %models, "pipeline loaded");
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
        Command::Search { folder, query, person, without, face, threshold, top, sort, from, to, catalog, json } => {
            let bound = |d: &Option<String>| -> anyhow::Result<Option<String>> {
                d.as_deref()
                    .map(|s| {
                        photo::taken::bound(s)
                            .with_context(|| format!("{s:?} is not a date (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)"))
                    })
                    .transpose()
            };
            let order = Order { sort: *sort, from: bound(from)?, to: bound(to)? };
            let p = load_pipeline(&cli, Settings::default())?;
            if query.is_none() && person.is_empty() {
                anyhow::bail!("give --query PHOTO or --person NAME");
            }
            let q = Query { photo: query.clone().map(|q| (q, *face)), people: person.clone(), without: without.clone() };
            run_search(&p, folder, catalog.as_deref(), &q, *threshold, *top, &order, *json, links(&cli))
        }
        Command::People { folder, catalog, name, merge, not_same, assign, reject, suggest, export_xmp, beside, json } => {
            let edits = PeopleEdits {
                name: name.as_deref(),
                merge: merge.as_deref(),
                not_same: not_same.as_deref(),
                assign: assign.as_deref(),
                reject: reject.as_deref(),
            };
            let export = match (export_xmp, beside) {
                (None, _) => None,
                (Some(Some(_)), true) => anyhow::bail!("give --export-xmp DIR or --export-xmp --beside, not both"),
                (Some(Some(d)), false) => Some(Some(d.as_path())),
                (Some(None), true) => Some(None),
                (Some(None), false) => anyhow::bail!("--export-xmp needs DIR (or --beside to write next to the photos)"),
            };
            run_people(&cli, folder, catalog.as_deref(), edits, *suggest, export, *json)
        }
        Command::Verify { pairs, images, threshold, json } => {
            let p = load_pipeline(&cli, Settings::default())?;
            run_verify(&p, pairs, images, *threshold, *json)
        }
        Command::Train(args) => run_train(&cli, args),
    }
}

/// Opens the folder's catalog and brings it up to date. Returns the summary and the catalog.
fn run_index(
    p: &Pipeline,
    folder: &Path,
    catalog: Option<&Path>,
    quiet: bool,
    links: ScanOptions,
    rebuild: bool,
) -> anyhow::Result<(crate::index::Summary, Catalog)> {
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
    let sum = crate::index::index_folder_with(
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

fn print_profile(p: &crate::index::Profile, photos: usize) {
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

fn print_summary(s: &crate::index::Summary) {
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
    let r = &s.regions;
    if r.linked + r.without_face + r.skipped > 0 {
        println!(
            "names from other tools: {} faces named, {} regions without a face, {} skipped (`people --json` lists them)",
            r.linked, r.without_face, r.skipped
        );
    }
}
