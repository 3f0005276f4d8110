//! `people`: group, list, name and merge people; the questions "Who is this?" asks, and their answers.

use super::*;

#[derive(Serialize)]
struct PeopleFaceJson {
    #[serde(flatten)]
    path: PathText,
    face: u32,
    #[serde(rename = "box")]
    bbox: [f32; 4],
    /// When the photo was taken (as in `search --json`); null when it records nothing.
    taken: Option<String>,
    /// How the face came to its person ("auto", "confirmed", "user", "imported"); absent for
    /// faces in no person.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<crate::people::Source>,
}

/// A named region another tool wrote that names no face here.
#[derive(Serialize)]
struct RegionJson {
    #[serde(flatten)]
    path: PathText,
    name: String,
    /// Left, top, right, bottom as fractions of the photo as shown.
    #[serde(rename = "box")]
    bbox: [f32; 4],
    /// Why it was not applied (regions skipped only).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize)]
struct PersonJson {
    id: i64,
    name: Option<String>,
    hidden: bool,
    faces: Vec<PeopleFaceJson>,
}

#[derive(Serialize)]
struct PeopleJson {
    people: Vec<PersonJson>,
    unassigned: Vec<PeopleFaceJson>,
    /// Named regions of other tools where no face was found.
    regions_without_a_face: Vec<RegionJson>,
    /// Named regions whose face was found but not put in that person, with why.
    regions_skipped: Vec<RegionJson>,
}

/// The edits `people` makes before listing (no indexing then).
pub(crate) struct PeopleEdits<'a> {
    pub name: Option<&'a [String]>,
    pub merge: Option<&'a [String]>,
    pub not_same: Option<&'a [String]>,
    pub assign: Option<&'a [String]>,
    pub reject: Option<&'a [String]>,
}

impl PeopleEdits<'_> {
    fn any(&self) -> bool {
        self.name.is_some() || self.merge.is_some() || self.not_same.is_some() || self.assign.is_some() || self.reject.is_some()
    }
}

/// Face `index` (as `detect` numbers them) of the photo at `rel` (relative to the folder).
fn face_at(cat: &Catalog, folder: &Path, rel: &str, index: &str) -> anyhow::Result<i64> {
    let index: u32 = index.parse().with_context(|| format!("face {index:?} is not a face number (0, 1, …)"))?;
    // as `people --json` prints it, or with the folder or "./" in front
    let path = Path::new(rel);
    let path = path.strip_prefix(folder).or_else(|_| path.strip_prefix(".")).unwrap_or(path);
    let want = crate::catalog::path_bytes(path);
    let photo = cat.photos()?.into_iter().find(|p| p.path == want).with_context(|| format!("no photo {rel} in the catalog"))?;
    let table = cat.face_table()?;
    (0..table.len())
        .find(|&r| table.photo_id(r) == photo.id && table.face_index(r) == index)
        .map(|r| table.face_id(r))
        .with_context(|| format!("{rel} has no face {index}"))
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum SuggestionJson {
    Merge {
        person: i64,
        into: i64,
        score: f32,
    },
    Face {
        #[serde(flatten)]
        path: PathText,
        face: u32,
        person: i64,
        score: f32,
    },
}

pub(super) fn run_people(
    cli: &Cli,
    folder: &Path,
    catalog: Option<&Path>,
    edits: PeopleEdits,
    suggest: bool,
    export_xmp: Option<Option<&Path>>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cat = if edits.any() || suggest {
        // an edit or the questions: the catalog as it is, no indexing (and no index lock: it may
        // run beside an index; a script asks and answers in a loop)
        let path = match catalog {
            Some(c) => c.to_path_buf(),
            None => catalog::default_catalog_path(folder)?,
        };
        anyhow::ensure!(path.exists(), "no catalog for {} yet: run `facefind people {}` first", folder.display(), folder.display());
        let mut cat = Catalog::open(&path)?;
        if let Some([who, new_name]) = edits.name {
            let id = cat.find_person(who)?;
            cat.name_person(id, Some(new_name))?;
        }
        if let Some([from, into]) = edits.merge {
            let (from, into) = (cat.find_person(from)?, cat.find_person(into)?);
            cat.merge_people(from, into)?;
        }
        if let Some([a, b]) = edits.not_same {
            let (a, b) = (cat.find_person(a)?, cat.find_person(b)?);
            cat.mark_not_same(a, b)?;
        }
        if let Some([rel, index, who]) = edits.assign {
            let (face, person) = (face_at(&cat, folder, rel, index)?, cat.find_person(who)?);
            cat.assign_faces(&[face], Some(person), None)?;
        }
        if let Some([rel, index, who]) = edits.reject {
            let (face, person) = (face_at(&cat, folder, rel, index)?, cat.find_person(who)?);
            cat.reject_face(face, person)?;
        }
        cat
    } else {
        let p = load_pipeline(cli, Settings::default())?;
        run_index(&p, folder, catalog, json, links(cli), false)?.1
    };
    if let Some(dest) = export_xmp {
        return super::export::export_xmp(folder, &cat, dest, json);
    }
    let table = cat.face_table()?;
    let photos: HashMap<i64, Vec<u8>> = cat.photos()?.into_iter().map(|ph| (ph.id, ph.path)).collect();
    let links = cat.face_links()?;
    let dates = cat.dates()?;
    let face_json = |r: usize| PeopleFaceJson {
        path: PathText::of_bytes(photos.get(&table.photo_id(r)).map(Vec::as_slice).unwrap_or_default()),
        face: table.face_index(r),
        bbox: table.bbox(r),
        taken: dates.get(&table.photo_id(r)).cloned(),
        source: links.get(&table.face_id(r)).map(|l| l.1),
    };
    let mut by_person: HashMap<i64, Vec<usize>> = HashMap::new();
    let mut unassigned = Vec::new();
    for r in 0..table.len() {
        match links.get(&table.face_id(r)) {
            Some((pid, _)) => by_person.entry(*pid).or_default().push(r),
            None => unassigned.push(r),
        }
    }
    let people = cat.people()?;
    if suggest {
        let infos = cat.face_infos(&table)?;
        let params = crate::people::Params::default();
        let named: std::collections::HashSet<i64> = people.iter().filter(|x| x.name.is_some()).map(|x| x.id).collect();
        let visible: std::collections::HashSet<i64> = people.iter().filter(|x| !x.hidden).map(|x| x.id).collect();
        let vector = |r: usize| std::borrow::Cow::Owned(table.embedding(r));
        let merges = crate::people::merges::merge_questions(table.dim(), &infos, &visible, &named, &cat.not_same()?, &params, vector);
        let faces = crate::people::suggestions(table.dim(), &infos, &named, &params, vector);
        let all: Vec<SuggestionJson> = merges
            .iter()
            .map(|m| SuggestionJson::Merge { person: m.person, into: m.into, score: m.score })
            .chain(faces.iter().map(|s| {
                let f = face_json(s.row);
                SuggestionJson::Face { path: f.path, face: f.face, person: s.person, score: s.score }
            }))
            .collect();
        if json {
            serde_json::to_writer(std::io::stdout().lock(), &serde_json::json!({ "suggestions": all }))?;
            println!();
        } else {
            let label = |id: i64| people.iter().find(|x| x.id == id).map(|x| format!("{} ({id})", x.label())).unwrap_or(id.to_string());
            for q in &all {
                match q {
                    SuggestionJson::Merge { person, into, score } => {
                        println!("{score:.2}  is {} the same person as {}?  (--merge / --not-same)", label(*person), label(*into))
                    }
                    SuggestionJson::Face { path, face, person, score } => {
                        println!("{score:.2}  is face {face} of {path} {}?  (--assign / --reject)", label(*person))
                    }
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        let doc = PeopleJson {
            people: people
                .iter()
                .map(|x| PersonJson {
                    id: x.id,
                    name: x.name.clone(),
                    hidden: x.hidden,
                    faces: by_person.get(&x.id).map(|rs| rs.iter().map(|&r| face_json(r)).collect()).unwrap_or_default(),
                })
                .collect(),
            unassigned: unassigned.iter().map(|&r| face_json(r)).collect(),
            regions_without_a_face: Vec::new(),
            regions_skipped: Vec::new(),
        };
        let mut doc = doc;
        for r in cat.regions()? {
            let path = PathText::of_bytes(photos.get(&r.photo_id).map(Vec::as_slice).unwrap_or_default());
            match r.outcome.as_deref() {
                Some(crate::catalog::regions::outcome::NO_FACE) => {
                    doc.regions_without_a_face.push(RegionJson { path, name: r.name, bbox: r.rect, reason: None })
                }
                Some(crate::catalog::regions::outcome::LINKED) | None => {}
                Some(why) => doc.regions_skipped.push(RegionJson { path, name: r.name, bbox: r.rect, reason: Some(why.to_string()) }),
            }
        }
        serde_json::to_writer(std::io::stdout().lock(), &doc)?;
        println!();
    } else {
        let named = people.iter().filter(|x| x.name.is_some()).count();
        println!("{} people ({named} named), {} faces in no person", people.len(), unassigned.len());
        for x in &people {
            let first = by_person.get(&x.id).and_then(|rs| rs.first()).map(|&r| face_json(r).path).unwrap_or_default();
            println!(
                "{:>6}  {:<24} {:>5} faces {:>5} photos{}  e.g. {first}",
                x.id,
                x.label(),
                x.faces,
                x.photos,
                if x.hidden { " (hidden)" } else { "" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
