//! `people`: group, list, name and merge people.

use super::*;

#[derive(Serialize)]
struct PeopleFaceJson {
    #[serde(flatten)]
    path: PathText,
    face: u32,
    #[serde(rename = "box")]
    bbox: [f32; 4],
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
}

pub(super) fn run_people(
    cli: &Cli,
    folder: &Path,
    catalog: Option<&Path>,
    name: Option<&[String]>,
    merge: Option<&[String]>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cat = if name.is_some() || merge.is_some() {
        // an edit: no indexing (and no index lock: it may run beside an index)
        let path = match catalog {
            Some(c) => c.to_path_buf(),
            None => catalog::default_catalog_path(folder)?,
        };
        anyhow::ensure!(path.exists(), "no catalog for {} yet: run `facefind people {}` first", folder.display(), folder.display());
        let mut cat = Catalog::open(&path)?;
        if let Some([who, new_name]) = name {
            let id = cat.find_person(who)?;
            cat.name_person(id, Some(new_name))?;
        }
        if let Some([from, into]) = merge {
            let (from, into) = (cat.find_person(from)?, cat.find_person(into)?);
            cat.merge_people(from, into)?;
        }
        cat
    } else {
        let p = load_pipeline(cli, Settings::default())?;
        run_index(&p, folder, catalog, json, links(cli), false)?.1
    };
    let table = cat.face_table()?;
    let photos: HashMap<i64, Vec<u8>> = cat.photos()?.into_iter().map(|ph| (ph.id, ph.path)).collect();
    let links = cat.face_links()?;
    let face_json = |r: usize| PeopleFaceJson {
        path: PathText::of_bytes(photos.get(&table.photo_id(r)).map(Vec::as_slice).unwrap_or_default()),
        face: table.face_index(r),
        bbox: table.bbox(r),
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
        };
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
