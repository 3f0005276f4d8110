//! The manifest beside an embedder file: its architecture, input and normalisation, embedding
//! size, the weights' sha256, and what its training recorded. Written by `train`, read by the
//! pipeline when it loads `--embedder FILE`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use super::Arch;

/// The manifest beside an embedder file (`embedder.json` for `embedder.safetensors`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub arch: Arch,
    pub input_size: usize,
    /// 3 = RGB, 1 = grayscale (ITU-R 601 luma).
    pub channels: usize,
    /// Input = (pixel − mean) / std.
    pub mean: f32,
    pub std: f32,
    pub embedding_dim: usize,
    /// sha256 of the weight file.
    pub sha256: String,
    pub training: serde_json::Value,
}

impl Manifest {
    pub fn path_for(weights: &Path) -> PathBuf {
        weights.with_extension("json")
    }

    /// Reads the manifest beside `weights` and checks that it describes that file.
    pub fn read_for(weights: &Path) -> anyhow::Result<Manifest> {
        let mpath = Self::path_for(weights);
        let text = std::fs::read_to_string(&mpath)
            .with_context(|| format!("embedder {}: cannot read its manifest {}", weights.display(), mpath.display()))?;
        let m: Manifest = serde_json::from_str(&text).with_context(|| format!("{}: not an embedder manifest", mpath.display()))?;
        let bytes = std::fs::read(weights).with_context(|| format!("cannot read embedder {}", weights.display()))?;
        let sha = crate::util::digest::sha256_hex(&bytes);
        if sha != m.sha256 {
            bail!(
                "embedder {} does not match its manifest {} (sha256 {sha}, manifest says {})",
                weights.display(),
                mpath.display(),
                m.sha256
            );
        }
        let (mean, std) = m.arch.normalisation();
        if m.input_size != m.arch.input_size()
            || m.channels != m.arch.channels()
            || m.embedding_dim != m.arch.embedding_dim()
            || m.mean != mean
            || m.std != std
        {
            bail!(
                "{}: input {}x{}x{}, embedding {} do not match arch {}",
                mpath.display(),
                m.channels,
                m.input_size,
                m.input_size,
                m.embedding_dim,
                m.arch.name()
            );
        }
        Ok(m)
    }
}
