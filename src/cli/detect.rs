//! `detect` and `verify`: faces of photos as text or JSON, and the LFW pairs protocol.

use super::*;

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

pub(super) fn detect(cli: &Cli, images: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
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

pub(super) fn run_verify(p: &Pipeline, pairs_path: &Path, images: &Path, threshold: Option<f32>, json: bool) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(pairs_path).with_context(|| format!("cannot read {}", pairs_path.display()))?;
    let parsed = pairs::parse_pairs(&text).with_context(|| format!("{}", pairs_path.display()))?;
    let paths = parsed.image_paths(images);
    let t0 = Instant::now();
    let embedded = pairs::embed_central_faces(p, &paths)?;
    let secs = t0.elapsed().as_secs_f64();
    for (path, e) in &embedded {
        if let Some(err) = &e.error {
            eprintln!("facefind: {}: {err}", path.display());
        }
    }
    let fallbacks = embedded.values().filter(|e| e.fallback).count();
    let pair_scores = pairs::pair_scores(&parsed, images, &embedded);
    let (scores, same, folds) = pairs::scored(&parsed, &pair_scores);
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
    let (mean, std, _) = metrics::kfold_accuracy(&scores, &same, &folds, parsed.n_folds);
    let (thr, best_acc) = metrics::best_threshold(&scores, &same);
    let auc = metrics::roc_auc(&scores, &same);
    let (tar, _) = metrics::tar_at_far(&scores, &same, 1e-3);
    let at_given = threshold.map(|t| metrics::accuracy(&scores, &same, t));
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
