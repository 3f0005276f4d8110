//! Paths as they will be on disk, and whether one lies inside a folder (facefind never writes
//! into the photo folder unless asked).

use std::path::{Path, PathBuf};

/// The path as it will be on disk: the nearest existing ancestor canonicalised (links and
/// `..` resolved), the rest appended with `.` and `..` applied; relative paths are taken from
/// the current directory.
pub fn resolved(p: &Path) -> PathBuf {
    let abs =
        if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf()) };
    let mut base = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = base.canonicalize() {
            let mut out = c;
            for part in rest.iter().rev() {
                match part {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    std::path::Component::Normal(n) => out.push(n),
                    _ => {}
                }
            }
            return out;
        }
        match (base.parent(), base.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                base = parent;
            }
            _ => return abs,
        }
    }
}

/// True when `dest` is `folder` or inside it, however either is written (links, `..`,
/// relative paths): facefind never writes into the photo folder.
pub fn inside_folder(folder: &Path, dest: &Path) -> bool {
    resolved(dest).starts_with(resolved(folder))
}
