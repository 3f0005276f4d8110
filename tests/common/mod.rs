//! Shared helpers for integration tests: where the test photos and models are.
#![allow(dead_code)]

use std::path::PathBuf;

/// `$FACEFIND_FACES`, default `../shared/faces` beside the repository.
pub fn faces_dir() -> PathBuf {
    std::env::var_os("FACEFIND_FACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/faces"))
}

pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

pub fn cpu_pipeline() -> facefind::pipeline::Pipeline {
    facefind::pipeline::Pipeline::load(&models_dir(), candle_core::Device::Cpu, Default::default()).expect("models load")
}
