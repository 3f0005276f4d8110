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
    Person {
        person: i64,
        name: Option<String>,
        /// Faces of the person used as the query.
        faces: usize,
    },
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
}

#[derive(Serialize)]
struct SearchJson {
    query: QueryJson,
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

/// What `search` looks for: a face of a photo, or a person of the catalog.
pub(super) enum Query {
    Photo(PathBuf, Option<usize>),
    Person(String),
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
    let photo_query = match query {
        Query::Photo(path, k) => Some((path, query_embedding(p, path, *k)?)),
        Query::Person(_) => None,
    };
    // Bring the catalog up to date first (a progress bar on a terminal, unless --json).
    let (_, cat) = run_index(p, folder, catalog, json, links, false)?;
    let table = cat.face_table()?;
    let photos: std::collections::HashMap<i64, Vec<u8>> = cat.photos()?.into_iter().map(|ph| (ph.id, ph.path)).collect();
    let (hits, qjson) = match (photo_query, query) {
        (Some((path, (qidx, qface, qemb))), _) => (
            crate::search::rank_photos(&table, &qemb, threshold),
            QueryJson::Photo { path: PathText::of_path(path), face: qidx, bbox: qface.bbox },
        ),
        (None, Query::Person(who)) => {
            let id = cat.find_person(who)?;
            let person = cat.people()?.into_iter().find(|x| x.id == id).context("person vanished")?;
            let infos = cat.face_infos(&table)?;
            let rows = crate::people::exemplars(&infos, id);
            if rows.is_empty() {
                anyhow::bail!("person {} has no faces to search with", person.label());
            }
            let vectors: Vec<Vec<f32>> = rows.iter().map(|&r| table.embedding(r)).collect();
            let queries: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
            let hits = crate::search::rank_photos_fused(&table, &queries, crate::search::PERSON_FUSE, threshold);
            (hits, QueryJson::Person { person: id, name: person.name, faces: rows.len() })
        }
        (None, Query::Photo(..)) => unreachable!("photo queries are embedded above"),
    };
    let dates = cat.dates()?;
    let taken = |h: &crate::search::Hit| dates.get(&h.photo_id).and_then(|t| photo::taken::Taken::parse(t));
    let mut hits = hits;
    if order.from.is_some() || order.to.is_some() {
        hits.retain(|h| taken(h).is_some_and(|t| photo::taken::within(&t, order.from.as_deref(), order.to.as_deref())));
    }
    let matches = crate::search::count_matches(&hits, threshold);
    if order.sort == SortBy::Date {
        // the matches, then the others, each oldest first with the undated last; ties by
        // score (the sort is stable)
        hits.sort_by_cached_key(|h| (h.score < threshold, taken(h).map(|t| t.local().to_string()).unwrap_or_else(|| "~".into())));
    }
    let n = top.unwrap_or(hits.len()).min(hits.len());
    let results: Vec<ResultJson> = hits[..n]
        .iter()
        .map(|h| ResultJson {
            path: PathText::of_bytes(photos.get(&h.photo_id).map(Vec::as_slice).unwrap_or_default()),
            score: h.score,
            face: table.face_index(h.row),
            bbox: table.bbox(h.row),
            is_match: h.score >= threshold,
            taken: dates.get(&h.photo_id).cloned(),
        })
        .collect();
    if json {
        let doc = SearchJson { query: qjson, threshold, results };
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
