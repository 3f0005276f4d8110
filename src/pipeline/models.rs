//! Where the two shipped networks come from: built into the binary, or a folder the user names.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::util::digest::sha256_hex;

/// A weight file the pipeline needs, with the digest it was converted to and its bytes as built
/// into the binary.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    pub file: &'static str,
    pub sha256: &'static str,
    pub what: &'static str,
    built_in: &'static [u8],
}

pub const DETECTOR_MODEL: ModelFile = ModelFile {
    file: "retinaface_mnet025.safetensors",
    sha256: "f481d012b1914e3f11ec0d1062420e7125c54a123b15c376cef325a8d6d1ee43",
    what: "RetinaFace MobileNet-0.25 detector (tools/convert_models.py)",
    built_in: include_bytes!("../../models/retinaface_mnet025.safetensors"),
};
pub const EMBEDDER_MODEL: ModelFile = ModelFile {
    file: "mobilefacenet_arcface.safetensors",
    sha256: "e1503b56703a661e82bc215373f461054e0afff33cf595612abb626790317a3c",
    what: "MobileFaceNet ArcFace embedder (tools/convert_models.py)",
    built_in: include_bytes!("../../models/mobilefacenet_arcface.safetensors"),
};

/// Why the models could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file {path} is missing: expected the {what} (leave out --models and FACEFIND_MODELS to use the built-in one)")]
    Missing { path: PathBuf, what: &'static str },
    #[error("model file {path} does not match: expected sha256 {expected} ({what}), found {found}")]
    Mismatch { path: PathBuf, what: &'static str, expected: String, found: String },
    #[error("cannot read model file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("model file {path}: {source}")]
    Load { path: PathBuf, source: candle_core::Error },
    #[error("embedder {path}: {reason}")]
    Embedder { path: PathBuf, reason: String },
}

/// Where the shipped networks are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The copies built into this binary (the default: a copied or installed binary needs no
    /// files beside it).
    BuiltIn,
    /// A folder holding files of the same names, checked against the same digests.
    Dir(PathBuf),
}

impl ModelSource {
    /// `--models DIR` when given, else `FACEFIND_MODELS` when set, else the built-in copies.
    pub fn choose(dir: Option<&Path>) -> Self {
        match dir.map(Path::to_path_buf).or_else(|| std::env::var_os("FACEFIND_MODELS").map(PathBuf::from)) {
            Some(d) => ModelSource::Dir(d),
            None => ModelSource::BuiltIn,
        }
    }

    /// Where a model file comes from, for messages.
    pub fn path(&self, m: &ModelFile) -> PathBuf {
        match self {
            ModelSource::BuiltIn => PathBuf::from(format!("(built in) {}", m.file)),
            ModelSource::Dir(d) => d.join(m.file),
        }
    }

    /// The model's bytes, checked against its digest.
    pub fn read(&self, m: &ModelFile) -> Result<Cow<'static, [u8]>, ModelError> {
        match self {
            // checked when built: see the test `built_in_models_match_their_digests`
            ModelSource::BuiltIn => Ok(Cow::Borrowed(m.built_in)),
            ModelSource::Dir(_) => {
                let (bytes, _) = read_verified(&self.path(m), Some(m.sha256), m.what)?;
                Ok(Cow::Owned(bytes))
            }
        }
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::BuiltIn => write!(f, "built into facefind"),
            ModelSource::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

impl From<&Path> for ModelSource {
    fn from(d: &Path) -> Self {
        ModelSource::Dir(d.to_path_buf())
    }
}

impl From<&PathBuf> for ModelSource {
    fn from(d: &PathBuf) -> Self {
        ModelSource::Dir(d.clone())
    }
}

impl From<&ModelSource> for ModelSource {
    fn from(s: &ModelSource) -> Self {
        s.clone()
    }
}

/// Reads a weight file once and checks its digest; returns the bytes and their sha256.
pub(crate) fn read_verified(path: &Path, sha256: Option<&str>, what: &'static str) -> Result<(Vec<u8>, String), ModelError> {
    if !path.is_file() {
        return Err(ModelError::Missing { path: path.to_path_buf(), what });
    }
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
    let found = sha256_hex(&bytes);
    match sha256 {
        Some(expected) if found != expected => {
            Err(ModelError::Mismatch { path: path.to_path_buf(), what, expected: expected.to_string(), found })
        }
        _ => Ok((bytes, found)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_models_match_their_digests() {
        for m in [DETECTOR_MODEL, EMBEDDER_MODEL] {
            assert_eq!(sha256_hex(m.built_in), m.sha256, "{}", m.file);
            let on_disk = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(m.file)).unwrap();
            assert_eq!(on_disk, m.built_in, "{}", m.file);
        }
    }

    #[test]
    fn a_folder_without_the_models_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let e = ModelSource::Dir(tmp.path().to_path_buf()).read(&DETECTOR_MODEL).unwrap_err();
        assert!(matches!(e, ModelError::Missing { .. }), "{e}");
        assert!(e.to_string().contains(DETECTOR_MODEL.file), "{e}");
        std::fs::write(tmp.path().join(DETECTOR_MODEL.file), b"not the model").unwrap();
        let e = ModelSource::Dir(tmp.path().to_path_buf()).read(&DETECTOR_MODEL).unwrap_err();
        assert!(matches!(e, ModelError::Mismatch { .. }), "{e}");
        assert!(ModelSource::BuiltIn.read(&DETECTOR_MODEL).is_ok());
    }
}
