//! File names as people and programs see them. A catalog stores paths as raw bytes (on Unix a
//! file name need not be UTF-8); text shows them lossily (U+FFFD for bytes that are not UTF-8),
//! and JSON and CSV carry the exact bytes as lowercase hex in `path_hex` whenever the name is
//! not UTF-8, so a script can still open the file (Python: `os.fsdecode(bytes.fromhex(h))`).

use std::path::Path;

use serde::Serialize;

/// A catalog path as the user wrote it, for messages and the app.
pub fn display_rel(b: &[u8]) -> String {
    super::bytes_path(b).to_string_lossy().into_owned()
}

/// The bytes as lowercase hex when they are not UTF-8 (`None` for ordinary names).
pub fn hex_if_not_utf8(b: &[u8]) -> Option<String> {
    std::str::from_utf8(b).is_err().then(|| b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A path in JSON: `{"path": text, "path_hex": exact bytes}`, the second only when needed.
/// Flatten it into a record with `#[serde(flatten)]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PathText {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
}

impl PathText {
    pub fn of_bytes(b: &[u8]) -> Self {
        Self { path: display_rel(b), path_hex: hex_if_not_utf8(b) }
    }

    /// A path given on the command line or found on disk.
    pub fn of_path(p: &Path) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            Self::of_bytes(p.as_os_str().as_bytes())
        }
        #[cfg(not(unix))]
        {
            Self { path: p.display().to_string(), path_hex: None }
        }
    }
}

/// Text output shows the lossy name.
impl std::fmt::Display for PathText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_utf8_keep_their_bytes() {
        let ok = PathText::of_bytes("Zoë/ok.jpg".as_bytes());
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"path":"Zoë/ok.jpg"}"#);
        let latin1 = PathText::of_bytes(b"caf\xe9.jpg");
        assert_eq!(latin1.path, "caf\u{fffd}.jpg");
        assert_eq!(latin1.path_hex.as_deref(), Some("636166e92e6a7067"));
        assert_eq!(
            serde_json::to_string(&latin1).unwrap(),
            r#"{"path":"caf\ufffd.jpg","path_hex":"636166e92e6a7067"}"#.replace("\\ufffd", "\u{fffd}")
        );
    }
}
