//! Walking a photo folder: which files are photos, which are skipped, and how they are named.

use std::path::{Path, PathBuf};

/// A candidate photo found by the scan.
#[derive(Debug, Clone, PartialEq)]
pub struct ScannedFile {
    /// Relative to the scanned root.
    pub rel: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    /// The signature of its XMP sidecars (see [`sidecar_sig`]); 0 when it has none.
    pub sidecar_sig: i64,
}

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
    /// Symbolic links that lead outside the folder and were not followed.
    pub outside_links: usize,
    /// Files reached a second time (through a link, or a hard link): listed once only.
    pub duplicates: usize,
}

/// How the scan treats symbolic links.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// Follow links that lead outside the folder (off by default: a link to `/` or to another
    /// library must not pull thousands of strangers' photos into this one).
    pub follow_outside_links: bool,
}

/// The identity of a file however it is reached: (device, inode) on Unix, else its
/// canonical path.
#[cfg(unix)]
fn file_key(_path: &Path, meta: &std::fs::Metadata) -> (u64, u64, PathBuf) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino(), PathBuf::new())
}
#[cfg(not(unix))]
fn file_key(path: &Path, _meta: &std::fs::Metadata) -> (u64, u64, PathBuf) {
    (0, 0, path.canonicalize().unwrap_or_else(|_| path.to_path_buf()))
}

/// A signature of the XMP sidecars of photo `rel` among `sidecars` (path → size, mtime, keys
/// lowercased by [`sidecar_key`]): the names [`crate::photo::taken::sidecars`] reads, with
/// their sizes and times; 0 when there are none. A sidecar written, replaced or removed changes
/// it. Names are compared without case, as a file system that ignores case finds them.
/// A sidecar path as [`sidecar_sig`] looks it up: lowercased (a name that is not UTF-8 is
/// kept as it is).
pub fn sidecar_key(p: &Path) -> PathBuf {
    match p.to_str() {
        Some(s) => PathBuf::from(s.to_lowercase()),
        None => p.to_path_buf(),
    }
}

pub fn sidecar_sig(rel: &Path, sidecars: &std::collections::HashMap<PathBuf, (u64, i64)>) -> i64 {
    if sidecars.is_empty() {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut any = false;
    let mut mix = |x: u64| {
        for b in x.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (k, candidate) in crate::photo::taken::sidecar_names(rel).into_iter().enumerate() {
        if let Some(&(size, mtime)) = sidecars.get(&sidecar_key(&candidate)) {
            any = true;
            mix(k as u64);
            mix(size);
            mix(mtime as u64);
        }
    }
    match (any, h as i64) {
        (false, _) => 0,
        // 0 means "no sidecar"
        (true, 0) => 1,
        (true, s) => s,
    }
}

/// Recursively lists photo files under `root` (see [`scan_with`]; links leaving the folder are
/// not followed).
pub fn scan(root: &Path) -> Scan {
    scan_with(root, ScanOptions::default())
}

/// Recursively lists photo files under `root`. Symbolic links inside the folder are followed;
/// those that lead outside it only with `follow_outside_links`; a link back into an ancestor
/// (a loop) is reported and not entered; a file reachable by two paths is listed once (the
/// first in path order); hidden and system folders are skipped.
pub fn scan_with(root: &Path, opts: ScanOptions) -> Scan {
    let mut out = Scan::default();
    let canonical_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    // whether a symbolic link's target is outside the folder (decided once per link)
    let leaves = |p: &Path| -> bool { p.canonicalize().map(|t| !t.starts_with(&canonical_root)).unwrap_or(false) };
    let outside = std::cell::Cell::new(0usize);
    let walker = walkdir::WalkDir::new(root).follow_links(true).sort_by_file_name().into_iter();
    let walker = walker.filter_entry(|e| {
        if e.depth() == 0 {
            return true;
        }
        if e.file_type().is_dir() && skip_dir(&e.file_name().to_string_lossy()) {
            return false;
        }
        if e.path_is_symlink() && !opts.follow_outside_links && leaves(e.path()) {
            outside.set(outside.get() + 1);
            return false;
        }
        true
    });
    let mut seen = std::collections::HashSet::new();
    let mut sidecars: std::collections::HashMap<PathBuf, (u64, i64)> = std::collections::HashMap::new();
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
        let sidecar = Path::new(&*name).extension().is_some_and(|e| e.eq_ignore_ascii_case("xmp"));
        if !sidecar && !crate::photo::is_photo_path(Path::new(&*name)) {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                out.unreadable.push((entry.path().to_path_buf(), e.to_string()));
                continue;
            }
        };
        if !seen.insert(file_key(entry.path(), &meta)) {
            out.duplicates += 1;
            continue;
        }
        let mtime_ns = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as i64);
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path()).to_path_buf();
        if sidecar {
            sidecars.insert(sidecar_key(&rel), (meta.len(), mtime_ns));
        } else {
            out.files.push(ScannedFile { rel, size: meta.len(), mtime_ns, sidecar_sig: 0 });
        }
    }
    for f in &mut out.files {
        f.sidecar_sig = sidecar_sig(&f.rel, &sidecars);
    }
    out.outside_links = outside.get();
    if out.outside_links > 0 {
        tracing::info!(links = out.outside_links, "symbolic links leading outside the folder were not followed");
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
        for p in [
            "a.jpg",
            "sub/b.PNG",
            "sub/deeper/c.webp",
            ".git/x.jpg",
            "@eaDir/thumb.jpg",
            ".hidden.jpg",
            "notes.txt",
            "sub/raw.CR2",
            "phone.heic",
            "web.avif",
        ] {
            let f = r.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, b"x").unwrap();
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(r, r.join("sub/loop")).unwrap();
        let s = scan(r);
        let names: Vec<String> = s.files.iter().map(|f| f.rel.to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["a.jpg", "phone.heic", "sub/b.PNG", "sub/deeper/c.webp", "sub/raw.CR2", "web.avif"]);
        #[cfg(unix)]
        assert!(s.unreadable.iter().any(|(_, why)| why.contains("loop")), "{:?}", s.unreadable);
    }

    /// A sidecar's signature changes with its size or time, under either naming; no sidecar
    /// is 0.
    #[test]
    fn sidecar_signatures_change_with_their_files() {
        let rel = Path::new("sub/p.jpg");
        let mut map = std::collections::HashMap::new();
        assert_eq!(sidecar_sig(rel, &map), 0);
        map.insert(sidecar_key(Path::new("other.xmp")), (10, 5));
        assert_eq!(sidecar_sig(rel, &map), 0);
        let mut seen = std::collections::HashSet::new();
        for t in 0..1000i64 {
            map.insert(sidecar_key(Path::new("sub/p.xmp")), (100, 1_700_000_000_000_000_000 + t * 1_000_000));
            let s = sidecar_sig(rel, &map);
            assert!(s != 0 && seen.insert(s), "time {t}: {s}");
        }
        map.insert(sidecar_key(Path::new("sub/p.jpg.xmp")), (7, 1));
        assert!(seen.insert(sidecar_sig(rel, &map)));
        // sidecars named in another case than the photo count (a file system that ignores case
        // finds them), and one written in upper case replaces the same name
        let upper = Path::new("SUB/P.JPG");
        assert_eq!(sidecar_sig(upper, &map), sidecar_sig(rel, &map));
        let before = sidecar_sig(rel, &map);
        map.insert(sidecar_key(Path::new("SUB/P.JPG.XMP")), (8, 2));
        assert_ne!(sidecar_sig(rel, &map), before);
    }

    /// Links inside the folder are followed, a file reached twice is listed once, links that
    /// leave the folder are followed only when asked.
    #[cfg(unix)]
    #[test]
    fn links_that_leave_the_folder_and_files_reached_twice() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let (root, elsewhere) = (d.path().join("photos"), d.path().join("elsewhere"));
        for p in [root.join("a/x.jpg"), root.join("b/y.jpg"), elsewhere.join("z.jpg"), elsewhere.join("w.jpg")] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        symlink(root.join("a"), root.join("c-link-to-a")).unwrap(); // inside: x.jpg again
        symlink(root.join("b/y.jpg"), root.join("y-again.jpg")).unwrap(); // inside: y.jpg again
        std::fs::hard_link(root.join("a/x.jpg"), root.join("x-hard.jpg")).unwrap();
        symlink(&elsewhere, root.join("d-outside")).unwrap();
        symlink(elsewhere.join("w.jpg"), root.join("w-outside.jpg")).unwrap();
        let names = |s: &Scan| s.files.iter().map(|f| f.rel.to_string_lossy().into_owned()).collect::<Vec<_>>();
        let s = scan(&root);
        assert_eq!(names(&s), ["a/x.jpg", "b/y.jpg"]);
        assert_eq!((s.duplicates, s.outside_links), (3, 2));
        let s = scan_with(&root, ScanOptions { follow_outside_links: true });
        assert_eq!(names(&s), ["a/x.jpg", "b/y.jpg", "d-outside/w.jpg", "d-outside/z.jpg"]);
        assert_eq!((s.duplicates, s.outside_links), (4, 0));
    }
}
