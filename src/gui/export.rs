//! Exporting a ranking's matches: copies or links into a folder outside the photo folder, and
//! the ranking as CSV.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::query::{Ranking, Verdict};
use crate::util::paths::inside_folder;

/// How matched photos land in an export folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportMode {
    Copy,
    /// Symbolic links to the originals (Unix); copies elsewhere.
    Link,
}

/// Copies (or links) the photos that match at `threshold` into `dest`.
pub fn export_photos(ranking: &Ranking, threshold: f32, dest: &Path, mode: ExportMode) -> std::io::Result<(usize, Vec<String>)> {
    let lib = &ranking.lib;
    if inside_folder(&lib.folder, dest) {
        return Err(std::io::Error::other(format!(
            "{} is inside the photo folder (facefind never writes into your photos)",
            dest.display()
        )));
    }
    std::fs::create_dir_all(dest)?;
    let mut done = 0;
    let mut failed = Vec::new();
    for r in ranking.matches(threshold) {
        let Some(src) = lib.abs_path(r.hit.photo_id) else { continue };
        let name = src.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "photo".into());
        let target = free_name(dest, Path::new(&name));
        let result = match mode {
            #[cfg(unix)]
            ExportMode::Link => std::os::unix::fs::symlink(&src, &target),
            _ => std::fs::copy(&src, &target).map(|_| ()),
        };
        match result {
            Ok(()) => done += 1,
            Err(e) => failed.push(format!("{}: {e}", src.display())),
        }
    }
    Ok((done, failed))
}

fn free_name(dir: &Path, name: &Path) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() && first.symlink_metadata().is_err() {
        return first;
    }
    let stem = name.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = name.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    (2..).map(|i| dir.join(format!("{stem}-{i}{ext}"))).find(|p| p.symlink_metadata().is_err()).unwrap_or(first)
}

/// Writes the ranking as CSV: path, score, face, box, match, verdict — every photo with a face,
/// best first.
pub fn write_csv(ranking: &Ranking, threshold: f32, out: &mut dyn Write) -> std::io::Result<()> {
    let lib = &ranking.lib;
    // `path_hex`: the file name's exact bytes when it is not UTF-8 (see catalog::names), else empty
    writeln!(out, "path,score,face,x,y,w,h,match,verdict,path_hex")?;
    for r in &ranking.results {
        let b = lib.table.bbox(r.hit.row);
        let verdict = match r.verdict {
            Some(Verdict::Yes) => "yes",
            Some(Verdict::No) => "no",
            None => "",
        };
        writeln!(
            out,
            "{},{:.4},{},{:.1},{:.1},{:.1},{:.1},{},{},{}",
            csv_field(&lib.rel(r.hit.photo_id)),
            r.hit.score,
            lib.table.face_index(r.hit.row),
            b[0],
            b[1],
            b[2],
            b[3],
            r.is_match(threshold),
            verdict,
            lib.photo(r.hit.photo_id).and_then(|p| crate::catalog::names::hex_if_not_utf8(&p.path)).unwrap_or_default()
        )?;
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::bytes_path;
    use crate::gui::library::tests::{synthetic, unit};
    use crate::gui::query::Query;
    use std::sync::Arc;

    #[test]
    fn csv_quotes_paths_and_keeps_names_that_are_not_utf8() {
        let mut lib = synthetic(2);
        lib.photos[1].path = b"caf\xe9.jpg".to_vec();
        let lib = Arc::new(lib);
        let q = Query::new("q".into(), None, unit(0));
        let r = Ranking::new(&lib, &q, 0.5);
        let mut out = Vec::new();
        write_csv(&r, 0.5, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "path,score,face,x,y,w,h,match,verdict,path_hex");
        assert!(lines[1].starts_with("\"p000, \"\"x\"\".jpg\",1.0000,0,10.0,20.0,30.0,40.0,true,"), "{}", lines[1]);
        assert!(lines[1].ends_with(','), "{}", lines[1]);
        assert!(lines[2].starts_with("caf\u{fffd}.jpg,") && lines[2].ends_with(",636166e92e6a7067"), "{}", lines[2]);
        assert_eq!(lines.len(), 3);
    }

    /// The export guard sees through links, `..` and relative paths.
    #[cfg(unix)]
    #[test]
    fn export_into_the_photo_folder_is_refused_however_it_is_written() {
        let d = tempfile::tempdir().unwrap();
        let photos = d.path().join("photos");
        std::fs::create_dir_all(photos.join("sub")).unwrap();
        std::os::unix::fs::symlink(&photos, d.path().join("link-to-photos")).unwrap();
        let outside = d.path().join("out");
        for inside in [
            photos.clone(),
            photos.join("new/deeper"),
            d.path().join("link-to-photos/new"),
            d.path().join("out/../photos/sub/x"),
            photos.join("sub/../new"),
        ] {
            assert!(inside_folder(&photos, &inside), "{}", inside.display());
        }
        for out in [outside.clone(), d.path().join("photos-2"), d.path().join("photos/../out")] {
            assert!(!inside_folder(&photos, &out), "{}", out.display());
        }
        let mut lib = synthetic(1);
        lib.folder = photos.clone();
        let lib = Arc::new(lib);
        let r = Ranking::new(&lib, &Query::new("q".into(), None, unit(0)), 0.5);
        let err = export_photos(&r, -1.0, &d.path().join("link-to-photos/exported"), ExportMode::Copy).unwrap_err();
        assert!(err.to_string().contains("inside the photo folder"), "{err}");
        assert!(!photos.join("exported").exists());
    }

    #[test]
    fn export_never_overwrites() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let mut lib = synthetic(2);
        lib.folder = src.path().to_path_buf();
        for p in &lib.photos {
            std::fs::write(src.path().join(bytes_path(&p.path)), &p.path).unwrap();
        }
        std::fs::write(dest.path().join("p000, \"x\".jpg"), b"keep").unwrap();
        let q = Query::new("q".into(), None, unit(0));
        let r = Ranking::new(&Arc::new(lib), &q, 0.5);
        let (n, failed) = export_photos(&r, -1.0, dest.path(), ExportMode::Copy).unwrap();
        assert_eq!((n, failed.len()), (2, 0));
        assert_eq!(std::fs::read(dest.path().join("p000, \"x\".jpg")).unwrap(), b"keep");
        assert!(dest.path().join("p000, \"x\"-2.jpg").exists());
    }
}
