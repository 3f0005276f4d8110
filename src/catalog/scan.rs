//! Walking a photo folder: which files are photos, which are skipped, and how they are named.

use std::path::{Path, PathBuf};

/// A candidate photo found by the scan.
#[derive(Debug, Clone, PartialEq)]
pub struct ScannedFile {
    /// Relative to the scanned root.
    pub rel: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    /// False for formats we recognise by name but cannot decode (AVIF, RAW).
    pub supported: bool,
}

const PHOTO_EXT: &[&str] = &["jpg", "jpeg", "jpe", "jfif", "png", "webp", "bmp", "tif", "tiff", "gif", "heic", "heif", "hif"];
const UNSUPPORTED_EXT: &[&str] = &[
    "avif", "cr2", "cr3", "nef", "arw", "dng", "orf", "rw2", "raf", "srw", "pef",
];
/// Folders that hold caches, previews or system data rather than photos.
const SKIP_DIRS: &[&str] = &["@eaDir", "#recycle", "$RECYCLE.BIN", "System Volume Information", "lost+found", "node_modules", "__MACOSX"];

fn skip_dir(name: &str) -> bool {
    name.starts_with('.') || SKIP_DIRS.iter().any(|d| d.eq_ignore_ascii_case(name))
}

/// What the scan found: photos (in path order) and folders it could not read.
#[derive(Debug, Default)]
pub struct Scan {
    pub files: Vec<ScannedFile>,
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Recursively lists photo files under `root`. Symlinks are followed, but a link back into an
/// ancestor (a loop) is reported and not entered; hidden and system folders are skipped.
pub fn scan(root: &Path) -> Scan {
    let mut out = Scan::default();
    let walker = walkdir::WalkDir::new(root).follow_links(true).sort_by_file_name().into_iter();
    let walker = walker.filter_entry(|e| e.depth() == 0 || !(e.file_type().is_dir() && skip_dir(&e.file_name().to_string_lossy())));
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let p = e.path().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
                let why = if e.loop_ancestor().is_some() { "symlink loop, not followed".to_string() } else { e.to_string() };
                tracing::warn!(path = %p.display(), "{why}");
                out.unreadable.push((p, why));
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let ext = Path::new(&*name).extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        let supported = PHOTO_EXT.contains(&ext.as_str());
        if !supported && !UNSUPPORTED_EXT.contains(&ext.as_str()) {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                out.unreadable.push((entry.path().to_path_buf(), e.to_string()));
                continue;
            }
        };
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64);
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path()).to_path_buf();
        out.files.push(ScannedFile { rel, size: meta.len(), mtime_ns, supported });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_photos_skips_hidden_and_system_folders_and_loops() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for p in ["a.jpg", "sub/b.PNG", "sub/deeper/c.webp", ".git/x.jpg", "@eaDir/thumb.jpg", ".hidden.jpg", "notes.txt", "sub/raw.CR2", "phone.heic", "web.avif"] {
            let f = r.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, b"x").unwrap();
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(r, r.join("sub/loop")).unwrap();
        let s = scan(r);
        let names: Vec<String> = s.files.iter().map(|f| f.rel.to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["a.jpg", "phone.heic", "sub/b.PNG", "sub/deeper/c.webp", "sub/raw.CR2", "web.avif"]);
        let supported: Vec<bool> = s.files.iter().map(|f| f.supported).collect();
        assert_eq!(supported, [true, true, true, true, false, false]);
        #[cfg(unix)]
        assert!(s.unreadable.iter().any(|(_, why)| why.contains("loop")), "{:?}", s.unreadable);
    }
}
