//! `search`: rank every photo of a folder against a face or a person.

use super::*;

/// Embeds face `k` (default: the largest) of the query image.
fn query_embedding(p: &Pipeline, image: &Path, k: Option<usize>) -> anyhow::Result<(usize, Face, Vec<f32>)> {
    let img = photo::load_rgb(image).with_context(|| format!("query image {}", image.display()))?;
    p.query_face(&img, k).with_context(|| format!("query image {}", image.display()))
}

#[derive(Serialize)]
#[serde(untagged)]
enum QueryJson {
    Photo {
        #[serde(flatten)]
        path: PathText,
        face: usize,
        #[serde(rename = "box")]
        bbox: [f32; 4],
    },
    Person(PersonJson),
    /// Several people together.
    People {
        people: Vec<PersonJson>,
    },
}

#[derive(Serialize)]
struct PersonJson {
    person: i64,
    name: Option<String>,
    /// Faces of the person used as the query.
    faces: usize,
}

/// The query, and the people it leaves out.
#[derive(Serialize)]
struct QueryDoc {
    #[serde(flatten)]
    query: QueryJson,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    without: Vec<PersonJson>,
}

/// The face of a result that stands for one wanted person (several-people queries).
#[derive(Serialize)]
struct StandsFor {
    person: i64,
    /// Null where the photo has fewer faces than wanted people.
    face: Option<u32>,
    #[serde(rename = "box")]
    bbox: Option<[f32; 4]>,
    score: Option<f32>,
}

#[derive(Serialize)]
struct ResultJson {
    #[serde(flatten)]
    path: PathText,
    score: f32,
    face: u32,
    #[serde(rename = "box")]
    bbox: [f32; 4],
    #[serde(rename = "match")]
    is_match: bool,
    /// When the photo was taken (`YYYY-MM-DDTHH:MM:SS`, `±HH:MM` appended where the photo
    /// records its offset); null when it records nothing.
    taken: Option<String>,
    /// Several people together: the face that stands for each, in query order.
    #[serde(skip_serializing_if = "Option::is_none")]
    people: Option<Vec<StandsFor>>,
    /// A face of the photo is a person the query leaves out (its index).
    #[serde(skip_serializing_if = "Option::is_none")]
    without: Option<u32>,
}

#[derive(Serialize)]
struct SearchJson {
    query: QueryDoc,
    threshold: f32,
    results: Vec<ResultJson>,
}

/// How `search` orders its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    Score,
    Date,
}

/// Which results `search` lists, in which order.
pub(super) struct Order {
    pub sort: SortBy,
    /// Bounds from `photo::taken::bound`.
    pub from: Option<String>,
    pub to: Option<String>,
}

/// What `search` looks for: a face of a photo, or people of the catalog together; and people
/// it leaves out.
pub(super) struct Query {
    pub photo: Option<(PathBuf, Option<usize>)>,
    pub people: Vec<String>,
    pub without: Vec<String>,
}

/// A person of the catalog as a query: the direction of their exemplars' mean
/// ([`crate::search::PERSON_FUSE`]).
fn person_query(
    cat: &Catalog,
    table: &crate::catalog::FaceTable,
    infos: &[crate::people::FaceInfo],
    who: &str,
) -> anyhow::Result<(PersonJson, Vec<f32>)> {
    let id = cat.find_person(who)?;
    let person = cat.people()?.into_iter().find(|x| x.id == id).context("person vanished")?;
    let rows = crate::people::exemplars(infos, id);
    if rows.is_empty() {
        anyhow::bail!("person {} has no faces to search with", person.label());
    }
    let v = crate::search::mean_direction(table.dim(), rows.iter().map(|&r| table.embedding(r)));
    Ok((PersonJson { person: id, name: person.name, faces: rows.len() }, v))
}

/// One listed photo: its hit, whether it matches, and for several-people queries who stands
/// where.
struct Listed {
    hit: crate::search::Hit,
    is_match: bool,
    people: Option<Vec<Option<(usize, f32)>>>,
    without: Option<usize>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn run_search(
    p: &Pipeline,
    folder: &Path,
    catalog: Option<&Path>,
    query: &Query,
    threshold: f32,
    top: Option<usize>,
    order: &Order,
    json: bool,
    links: ScanOptions,
) -> anyhow::Result<ExitCode> {
    if query.people.len() > crate::search::together::MAX_WANTED {
        anyhow::bail!("at most {} people together in one search", crate::search::together::MAX_WANTED);
    }
    let photo_query = query.photo.as_ref().map(|(path, k)| query_embedding(p, path, *k).map(|e| (path, e))).transpose()?;
    // Bring the catalog up to date first (a progress bar on a terminal, unless --json).
    let (_, cat) = run_index(p, folder, catalog, json, links, false)?;
    let table = cat.face_table()?;
    let photos: std::collections::HashMap<i64, Vec<u8>> = cat.photos()?.into_iter().map(|ph| (ph.id, ph.path)).collect();
    let infos = if query.people.is_empty() && query.without.is_empty() { Vec::new() } else { cat.face_infos(&table)? };
    let mut wanted = Vec::new();
    let mut people = Vec::new();
    for who in &query.people {
        let (pj, v) = person_query(&cat, &table, &infos, who)?;
        if people.iter().any(|w: &PersonJson| w.person == pj.person) {
            anyhow::bail!("person {who} is wanted twice (one face cannot stand for two people)");
        }
        people.push(pj);
        wanted.push(v);
    }
    let mut unwanted = Vec::new();
    let mut without = Vec::new();
    for who in &query.without {
        let (pj, v) = person_query(&cat, &table, &infos, who)?;
        if people.iter().any(|w| w.person == pj.person) {
            anyhow::bail!("person {who} is both wanted and left out");
        }
        without.push(pj);
        unwanted.push(v);
    }
    let qjson = match photo_query {
        Some((path, (qidx, qface, qemb))) => {
            wanted.insert(0, qemb);
            QueryJson::Photo { path: PathText::of_path(path), face: qidx, bbox: qface.bbox }
        }
        None if people.len() == 1 => QueryJson::Person(people.pop().context("one person")?),
        None => QueryJson::People { people },
    };
    let person_ids: Vec<i64> = match &qjson {
        QueryJson::People { people } => people.iter().map(|p| p.person).collect(),
        _ => Vec::new(),
    };
    let mut hits: Vec<Listed> = if wanted.len() == 1 && unwanted.is_empty() {
        crate::search::rank_photos(&table, &wanted[0], threshold)
            .into_iter()
            .map(|hit| Listed { hit, is_match: hit.score >= threshold, people: None, without: None })
            .collect()
    } else {
        crate::search::together::rank_together(&table, &wanted, &unwanted, threshold, threshold)
            .into_iter()
            .map(|m| Listed {
                is_match: m.is_match(threshold),
                hit: m.hit,
                people: (wanted.len() > 1).then_some(m.faces),
                without: m.unwanted.map(|(row, _)| row),
            })
            .collect()
    };
    let dates = cat.dates()?;
    let taken = |h: &crate::search::Hit| dates.get(&h.photo_id).and_then(|t| photo::taken::Taken::parse(t));
    if order.from.is_some() || order.to.is_some() {
        hits.retain(|l| taken(&l.hit).is_some_and(|t| photo::taken::within(&t, order.from.as_deref(), order.to.as_deref())));
    }
    let matches = hits.iter().filter(|l| l.is_match).count();
    if order.sort == SortBy::Date {
        // the matches, then the others, each oldest first with the undated last; ties by
        // score (the sort is stable)
        hits.sort_by_cached_key(|l| (!l.is_match, taken(&l.hit).map(|t| t.local().to_string()).unwrap_or_else(|| "~".into())));
    }
    let n = top.unwrap_or(hits.len()).min(hits.len());
    let results: Vec<ResultJson> = hits[..n]
        .iter()
        .map(|l| ResultJson {
            path: PathText::of_bytes(photos.get(&l.hit.photo_id).map(Vec::as_slice).unwrap_or_default()),
            score: l.hit.score,
            face: table.face_index(l.hit.row),
            bbox: table.bbox(l.hit.row),
            is_match: l.is_match,
            taken: dates.get(&l.hit.photo_id).cloned(),
            people: l.people.as_ref().map(|faces| {
                faces
                    .iter()
                    .zip(&person_ids)
                    .map(|(f, &person)| StandsFor {
                        person,
                        face: f.map(|(r, _)| table.face_index(r)),
                        bbox: f.map(|(r, _)| table.bbox(r)),
                        score: f.map(|(_, s)| s),
                    })
                    .collect()
            }),
            without: l.without.map(|r| table.face_index(r)),
        })
        .collect();
    if json {
        let doc = SearchJson { query: QueryDoc { query: qjson, without }, threshold, results };
        serde_json::to_writer(std::io::stdout().lock(), &doc)?;
        println!();
    } else {
        println!("{matches} of {} photos with faces match at >= {threshold:.2}", hits.len());
        for r in &results {
            let b = r.bbox;
            println!(
                "{} {:.3}  {}  face {} [{:.0}, {:.0}, {:.0}, {:.0}]",
                if r.is_match { "*" } else { " " },
                r.score,
                r.path,
                r.face,
                b[0],
                b[1],
                b[2],
                b[3]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
