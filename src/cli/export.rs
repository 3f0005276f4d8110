//! `people --export-xmp`: the names of faces written as XMP sidecars (MWG regions) that other
//! tools read, into a folder of their own or, when asked, beside the photos. Never a photo file,
//! never a sidecar another program wrote.

use super::*;

/// How much of a JPEG is read for its orientation (its EXIF comes before the image data;
/// other files are read whole: their EXIF may sit anywhere).
const HEAD: u64 = 256 * 1024;

/// The mark of a sidecar facefind wrote (the XMP toolkit it names).
const OURS: &str = "x:xmptk='facefind ";

#[derive(Serialize)]
struct Skipped {
    #[serde(flatten)]
    path: PathText,
    reason: String,
}

#[derive(Serialize)]
struct ExportJson {
    /// Sidecars written.
    written: usize,
    /// Named faces in them.
    faces: usize,
    skipped: Vec<Skipped>,
}

/// A face's name and box (left, top, right, bottom as fractions of the photo as shown).
type NamedFace = (String, [f32; 4]);

/// The EXIF orientation of the photo at `path`, from its head.
fn orientation(path: &Path) -> std::io::Result<u16> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut head = Vec::new();
    (&mut file).take(HEAD).read_to_end(&mut head)?;
    if !head.starts_with(&[0xFF, 0xD8]) {
        file.read_to_end(&mut head)?;
    }
    Ok(photo::regions::orientation_of(&head))
}

/// Writes a sidecar (`photo.jpg.xmp`) for every photo of `folder` with a face in a named person,
/// into `dest` mirroring the folder's tree, or beside each photo when `dest` is `None`. A
/// sidecar that exists and was not written by facefind is left alone (the photo is skipped and
/// listed, as is one beside the photo under the other naming).
pub(super) fn export_xmp(folder: &Path, cat: &Catalog, dest: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    if let Some(d) = dest {
        if crate::util::paths::inside_folder(folder, d) {
            anyhow::bail!("{} is inside the photo folder: give a folder outside it, or --beside to write next to the photos", d.display());
        }
    }
    let table = cat.face_table()?;
    // hidden people stay out of what other tools see
    let names: HashMap<i64, String> = cat.people()?.into_iter().filter(|p| !p.hidden).filter_map(|p| Some((p.id, p.name?))).collect();
    let links = cat.face_links()?;
    let photos: HashMap<i64, crate::catalog::PhotoInfo> = cat.photos()?.into_iter().map(|p| (p.id, p)).collect();
    let mut by_photo: std::collections::BTreeMap<Vec<u8>, (i64, Vec<NamedFace>)> = std::collections::BTreeMap::new();
    for r in 0..table.len() {
        let Some(name) = links.get(&table.face_id(r)).and_then(|l| names.get(&l.0)) else { continue };
        let Some(p) = photos.get(&table.photo_id(r)) else { continue };
        let (w, h) = (p.width.max(1) as f32, p.height.max(1) as f32);
        let b = table.bbox(r);
        let rect = [b[0] / w, b[1] / h, (b[0] + b[2]) / w, (b[1] + b[3]) / h].map(|v| v.clamp(0.0, 1.0));
        by_photo.entry(p.path.clone()).or_insert((p.id, Vec::new())).1.push((name.clone(), rect));
    }
    let mut sum = ExportJson { written: 0, faces: 0, skipped: Vec::new() };
    for (rel_bytes, (id, faces)) in &by_photo {
        let rel = catalog::bytes_path(rel_bytes);
        let photo_path = folder.join(&rel);
        let skip = |why: String| Skipped { path: PathText::of_bytes(rel_bytes), reason: why };
        let o = match orientation(&photo_path) {
            Ok(o) => o,
            Err(e) => {
                sum.skipped.push(skip(format!("cannot read the photo: {e}")));
                continue;
            }
        };
        let mut name = rel.as_os_str().to_owned();
        name.push(".xmp");
        let target = match dest {
            Some(d) => d.join(std::path::PathBuf::from(name)),
            None => folder.join(std::path::PathBuf::from(name)),
        };
        // another program's sidecar is never replaced, nor written beside under the other name
        let theirs = |p: &Path| p.is_file() && !std::fs::read_to_string(p).is_ok_and(|s| s.contains(OURS));
        let others: Vec<std::path::PathBuf> = match dest {
            None => photo::taken::sidecar_names(&photo_path),
            Some(_) => vec![target.clone()],
        };
        // a folder that holds the photo folder could mirror a sidecar into it
        if dest.is_some() && crate::util::paths::inside_folder(folder, &target) {
            sum.skipped.push(skip(format!("{} would be inside the photo folder", target.display())));
            continue;
        }
        if let Some(p) = others.iter().find(|p| theirs(p)) {
            sum.skipped.push(skip(format!("{} exists and was not written by facefind", p.display())));
            continue;
        }
        let Some(p) = photos.get(id) else { continue };
        let xmp = photo::regions::sidecar_xmp(faces, (p.width, p.height), o);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut tmp = target.as_os_str().to_owned();
            tmp.push(".facefind-tmp");
            std::fs::write(&tmp, &xmp)?;
            std::fs::rename(&tmp, &target)
        };
        match write() {
            Ok(()) => {
                sum.written += 1;
                sum.faces += faces.len();
            }
            Err(e) => sum.skipped.push(skip(format!("cannot write {}: {e}", target.display()))),
        }
    }
    if json {
        serde_json::to_writer(std::io::stdout().lock(), &sum)?;
        println!();
    } else {
        let place = dest.map_or_else(|| "beside the photos".to_string(), |d| format!("into {}", d.display()));
        println!("wrote {} sidecars naming {} faces {place}", sum.written, sum.faces);
        for s in &sum.skipped {
            println!("skipped {}: {}", s.path, s.reason);
        }
    }
    Ok(if sum.written == 0 && !sum.skipped.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
