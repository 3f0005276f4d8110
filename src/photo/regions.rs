//! Named face regions other tools wrote into a photo's XMP: Metadata Working Group regions
//! (`mwg-rs:Regions`: digiKam, Lightroom, Picasa, darktable, exiftool) and Microsoft's
//! (`MP:RegionInfo`: Windows Photo Gallery), embedded in the photo or in its sidecars, turned
//! into the photo's displayed frame.

use std::path::Path;

use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;

use super::taken::{metadata, orientation, read_sidecars, MAX_PACKET};

const MWG_RS: &[u8] = b"http://www.metadataworkinggroup.com/schemas/regions/";
const ST_AREA: &[u8] = b"http://ns.adobe.com/xmp/sType/Area#";
const ST_DIM: &[u8] = b"http://ns.adobe.com/xap/1.0/sType/Dimensions#";
const MP_RI: &[u8] = b"http://ns.microsoft.com/photo/1.2/t/RegionInfo#";
const MP_REG: &[u8] = b"http://ns.microsoft.com/photo/1.2/t/Region#";
const RDF: &[u8] = b"http://www.w3.org/1999/02/22-rdf-syntax-ns#";

/// Regions read from one file at most (a hostile packet may repeat them).
const MAX_REGIONS: usize = 1000;
/// Elements nested deeper than this end the reading of a packet (regions sit at depth ~8).
const MAX_DEPTH: usize = 64;

/// Which standard a region was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Mwg,
    Microsoft,
}

/// A named face region in the photo as it is shown (EXIF orientation applied).
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub name: String,
    /// Left, top, right, bottom, as fractions of the shown photo's width and height.
    pub rect: [f32; 4],
    pub scheme: Scheme,
}

/// A region as written: in the frame of the stored pixels (before orientation), unless the
/// packet's applied-to dimensions say otherwise.
#[derive(Debug, Clone, PartialEq)]
struct Written {
    name: String,
    rect: [f32; 4],
    scheme: Scheme,
}

/// The regions of one XMP packet, and its MWG `AppliedToDimensions` (width, height) if given.
#[derive(Debug, Default, PartialEq)]
struct Packet {
    regions: Vec<Written>,
    dims: Option<(f32, f32)>,
}

/// The region being read.
#[derive(Default)]
struct Open {
    depth: usize,
    scheme: Option<Scheme>,
    name: Option<String>,
    kind: Option<String>,
    area: [Option<f32>; 4],
    unit: Option<String>,
    rectangle: Option<String>,
}

impl Open {
    fn finish(self) -> Option<Written> {
        let name = self.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty())?;
        let finite = |r: [f32; 4]| r.iter().all(|v| v.is_finite()).then_some(r);
        match self.scheme? {
            Scheme::Mwg => {
                // faces only (not pets, focus areas or bar codes); normalised areas only
                if self.kind.as_deref().is_some_and(|k| !k.eq_ignore_ascii_case("face")) {
                    return None;
                }
                if self.unit.as_deref().is_some_and(|u| u != "normalized") {
                    return None;
                }
                let [x, y, w, h] = self.area;
                let (x, y, w, h) = (x?, y?, w?, h?);
                let rect = finite([x - w / 2.0, y - h / 2.0, x + w / 2.0, y + h / 2.0])?;
                (w > 0.0 && h > 0.0).then_some(Written { name, rect, scheme: Scheme::Mwg })
            }
            Scheme::Microsoft => {
                let v: Vec<f32> = self.rectangle?.split(',').map(|p| p.trim().parse::<f32>()).collect::<Result<_, _>>().ok()?;
                let [x, y, w, h] = v[..] else { return None };
                let rect = finite([x, y, x + w, y + h])?;
                (w > 0.0 && h > 0.0).then_some(Written { name, rect, scheme: Scheme::Microsoft })
            }
        }
    }
}

fn ns<'a>(r: &ResolveResult<'a>) -> &'a [u8] {
    match r {
        ResolveResult::Bound(Namespace(n)) => n,
        _ => b"",
    }
}

/// Reads the named face regions of an XMP packet (attributes and elements alike, any prefixes).
/// A packet that is not well-formed gives what was read before the fault.
fn parse(xmp: &[u8]) -> Packet {
    let xmp = &xmp[..xmp.len().min(MAX_PACKET)];
    let mut reader = NsReader::from_reader(xmp);
    let mut out = Packet::default();
    // the open elements (namespace, local name) and the text of the innermost
    let mut stack: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut text = String::new();
    let mut region: Option<Open> = None;
    let (mut dim_w, mut dim_h) = (None, None);
    let within = |stack: &[(Vec<u8>, Vec<u8>)], n: &[u8], l: &[u8]| stack.iter().any(|(a, b)| a == n && b == l);
    // one property of the open region, or of the applied-to dimensions
    let mut property = |stack: &[(Vec<u8>, Vec<u8>)], region: &mut Option<Open>, n: &[u8], l: &[u8], v: String| {
        if let Some(r) = region {
            match (n, l) {
                (MWG_RS, b"Name") | (MP_REG, b"PersonDisplayName") => r.name = Some(v),
                (MWG_RS, b"Type") => r.kind = Some(v),
                (ST_AREA, b"unit") => r.unit = Some(v),
                (ST_AREA, k) => {
                    let i = match k {
                        b"x" => 0,
                        b"y" => 1,
                        b"w" => 2,
                        b"h" => 3,
                        _ => return,
                    };
                    r.area[i] = v.trim().parse().ok();
                }
                (MP_REG, b"Rectangle") => r.rectangle = Some(v),
                _ => {}
            }
        } else if within(stack, MWG_RS, b"AppliedToDimensions") {
            match (n, l) {
                (ST_DIM, b"w") => dim_w = v.trim().parse::<f32>().ok(),
                (ST_DIM, b"h") => dim_h = v.trim().parse::<f32>().ok(),
                _ => {}
            }
        }
    };
    while let Ok((resolved, event)) = reader.read_resolved_event() {
        let element_ns = ns(&resolved).to_vec();
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let local = e.local_name().as_ref().to_vec();
                text.clear();
                // a list item of a region list opens a region
                if region.is_none() && element_ns == RDF && local == b"li" && out.regions.len() < MAX_REGIONS {
                    let scheme = if within(&stack, MWG_RS, b"RegionList") {
                        Some(Scheme::Mwg)
                    } else if within(&stack, MP_RI, b"Regions") {
                        Some(Scheme::Microsoft)
                    } else {
                        None
                    };
                    if scheme.is_some() {
                        region = Some(Open { depth: stack.len(), scheme, ..Open::default() });
                    }
                }
                if stack.len() >= MAX_DEPTH {
                    break;
                }
                stack.push((element_ns, local));
                for a in e.attributes().flatten() {
                    let (rn, local) = reader.resolver().resolve_attribute(a.key);
                    let n = ns(&rn).to_vec();
                    if n.is_empty() {
                        continue;
                    }
                    let Ok(v) = a.decoded_and_normalized_value(quick_xml::XmlVersion::Implicit1_0, reader.decoder()) else { continue };
                    property(&stack, &mut region, &n, local.as_ref(), v.into_owned());
                }
                if empty {
                    stack.pop();
                    if region.as_ref().is_some_and(|r| r.depth == stack.len()) {
                        out.regions.extend(region.take().and_then(Open::finish));
                    }
                }
            }
            Event::Text(t) => {
                if let Ok(s) = t.xml_content(quick_xml::XmlVersion::Implicit1_0) {
                    text.push_str(&s);
                }
            }
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    _ => quick_xml::escape::resolve_predefined_entity(&String::from_utf8_lossy(&r)).map(str::to_string),
                };
                text.push_str(resolved.as_deref().unwrap_or(""));
            }
            Event::End(_) => {
                let Some((n, l)) = stack.pop() else { break };
                let value = std::mem::take(&mut text);
                if !value.trim().is_empty() {
                    property(&stack, &mut region, &n, &l, value);
                }
                if region.as_ref().is_some_and(|r| r.depth == stack.len()) {
                    out.regions.extend(region.take().and_then(Open::finish));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out.dims = dim_w.zip(dim_h).filter(|(w, h)| *w > 0.0 && *h > 0.0);
    out
}

/// Intersection over union of two rectangles (left, top, right, bottom).
pub fn overlap(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - w * h;
    if union > 0.0 {
        w * h / union
    } else {
        0.0
    }
}

/// A normalised rectangle of the stored pixels in the frame shown after EXIF orientation `o`.
pub fn oriented(r: [f32; 4], o: u16) -> [f32; 4] {
    // each corner (x, y) of the stored frame lands at f(x, y) in the shown frame
    let f = |x: f32, y: f32| match o {
        2 => (1.0 - x, y),
        3 => (1.0 - x, 1.0 - y),
        4 => (x, 1.0 - y),
        5 => (y, x),
        6 => (1.0 - y, x),
        7 => (1.0 - y, 1.0 - x),
        8 => (y, 1.0 - x),
        _ => (x, y),
    };
    let (a, b) = (f(r[0], r[1]), f(r[2], r[3]));
    [a.0.min(b.0), a.1.min(b.1), a.0.max(b.0), a.1.max(b.1)]
}

/// A normalised rectangle of the shown frame (after EXIF orientation `o`) in the frame of the
/// stored pixels: the inverse of [`oriented`].
pub fn stored(r: [f32; 4], o: u16) -> [f32; 4] {
    // 6 and 8 turn opposite ways; the others are their own inverses
    oriented(
        r,
        match o {
            6 => 8,
            8 => 6,
            o => o,
        },
    )
}

/// The EXIF orientation photo `data` records (1 when none).
pub fn orientation_of(data: &[u8]) -> u16 {
    orientation(&metadata(data))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// An XMP sidecar naming faces of a photo as MWG regions, the way ExifTool writes them:
/// `faces` (name, left, top, right, bottom as fractions of the photo as shown), written for
/// the stored pixels (the photo's `orientation` turned back, as the MWG guidelines say) with
/// their dimensions as AppliedToDimensions and the orientation beside them. `shown` is the
/// photo's width and height as shown.
pub fn sidecar_xmp(faces: &[(String, [f32; 4])], shown: (u32, u32), orientation: u16) -> String {
    let (w, h) = if (5..=8).contains(&orientation) { (shown.1, shown.0) } else { shown };
    let mut items = String::new();
    for (name, rect) in faces {
        let r = stored(*rect, orientation);
        let (cx, cy, rw, rh) = ((r[0] + r[2]) / 2.0, (r[1] + r[3]) / 2.0, r[2] - r[0], r[3] - r[1]);
        items += &format!(
            "     <rdf:li rdf:parseType='Resource'>\n      <mwg-rs:Area rdf:parseType='Resource'>\n       <stArea:x>{cx:.6}</stArea:x>\n       <stArea:y>{cy:.6}</stArea:y>\n       <stArea:w>{rw:.6}</stArea:w>\n       <stArea:h>{rh:.6}</stArea:h>\n       <stArea:unit>normalized</stArea:unit>\n      </mwg-rs:Area>\n      <mwg-rs:Name>{}</mwg-rs:Name>\n      <mwg-rs:Type>Face</mwg-rs:Type>\n     </rdf:li>\n",
            escape(name)
        );
    }
    format!(
        "<?xpacket begin='\u{feff}' id='W5M0MpCehiHzreSzNTczkc9d'?>\n<x:xmpmeta xmlns:x='adobe:ns:meta/' x:xmptk='facefind {}'>\n<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\n <rdf:Description rdf:about=''\n  xmlns:mwg-rs='http://www.metadataworkinggroup.com/schemas/regions/'\n  xmlns:stArea='http://ns.adobe.com/xmp/sType/Area#'\n  xmlns:stDim='http://ns.adobe.com/xap/1.0/sType/Dimensions#'\n  xmlns:tiff='http://ns.adobe.com/tiff/1.0/'>\n  <tiff:Orientation>{orientation}</tiff:Orientation>\n  <mwg-rs:Regions rdf:parseType='Resource'>\n   <mwg-rs:AppliedToDimensions rdf:parseType='Resource'>\n    <stDim:w>{w}</stDim:w>\n    <stDim:h>{h}</stDim:h>\n    <stDim:unit>pixel</stDim:unit>\n   </mwg-rs:AppliedToDimensions>\n   <mwg-rs:RegionList>\n    <rdf:Bag>\n{items}    </rdf:Bag>\n   </mwg-rs:RegionList>\n  </mwg-rs:Regions>\n </rdf:Description>\n</rdf:RDF>\n</x:xmpmeta>\n<?xpacket end='w'?>\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The named face regions of photo `data` (read from `path`) and of its sidecars, in the
/// frame the photo is shown in (`shown`: its width and height after orientation). Regions are
/// written for the stored pixels, which the photo's EXIF orientation turns (as the MWG
/// guidelines say); a packet whose applied-to dimensions are the shown ones on a turned photo
/// was written for the shown frame and is taken as it is. Sidecars are read after the photo;
/// a region the same as one already read is read once.
pub fn read(path: &Path, data: &[u8], shown: (u32, u32)) -> Vec<Region> {
    from_parts(&metadata(data), &read_sidecars(path), shown)
}

/// When photo `data` (read from `path`) was taken ([`super::taken::read`]) and its named
/// regions ([`read`]), its metadata parsed and its sidecars read once for both.
pub fn read_with_date(path: &Path, data: &[u8], shown: (u32, u32)) -> (Option<super::taken::Taken>, Vec<Region>) {
    let (m, sidecars) = (metadata(data), read_sidecars(path));
    (super::taken::from_parts(&m, &sidecars), from_parts(&m, &sidecars, shown))
}

fn from_parts(m: &super::taken::Metadata, sidecars: &[Vec<u8>], shown: (u32, u32)) -> Vec<Region> {
    let o = orientation(m);
    let mut out: Vec<Region> = Vec::new();
    for packet in m.xmp.iter().copied().chain(sidecars.iter().map(Vec::as_slice)) {
        let p = parse(packet);
        let turned = (5..=8).contains(&o) && shown.0 != shown.1;
        let for_shown = turned && p.dims.is_some_and(|(w, h)| (w - shown.0 as f32).abs() < 1.0 && (h - shown.1 as f32).abs() < 1.0);
        for w in p.regions {
            let rect = if for_shown { w.rect } else { oriented(w.rect, o) };
            let r = Region { name: w.name, rect, scheme: w.scheme };
            // the same face named twice (both standards, or the photo and a sidecar) is read once
            let twice = out.iter().any(|o| o.name == r.name && overlap(o.rect, r.rect) > 0.8);
            if !twice && out.len() < MAX_REGIONS {
                out.push(r);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MWG: &str = r#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
 <rdf:Description rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
   xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#">
  <mwg-rs:Regions rdf:parseType="Resource">
   <mwg-rs:AppliedToDimensions stDim:w="4000" stDim:h="3000" stDim:unit="pixel"/>
   <mwg-rs:RegionList><rdf:Bag>
    <rdf:li><rdf:Description mwg-rs:Name="Ann &amp; co" mwg-rs:Type="Face">
     <mwg-rs:Area stArea:x="0.5" stArea:y="0.25" stArea:w="0.2" stArea:h="0.1" stArea:unit="normalized"/>
    </rdf:Description></rdf:li>
    <rdf:li rdf:parseType="Resource"><mwg-rs:Name>Bob</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type>
     <mwg-rs:Area rdf:parseType="Resource"><stArea:x>0.1</stArea:x><stArea:y>0.5</stArea:y><stArea:w>0.1</stArea:w><stArea:h>0.2</stArea:h></mwg-rs:Area></rdf:li>
    <rdf:li><rdf:Description mwg-rs:Name="Rex" mwg-rs:Type="Pet"><mwg-rs:Area stArea:x="0.5" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1"/></rdf:Description></rdf:li>
    <rdf:li><rdf:Description mwg-rs:Type="Face"><mwg-rs:Area stArea:x="0.5" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1"/></rdf:Description></rdf:li>
   </rdf:Bag></mwg-rs:RegionList>
  </mwg-rs:Regions></rdf:Description></rdf:RDF></x:xmpmeta>"#;

    #[test]
    fn mwg_regions_as_attributes_or_elements_faces_with_names_only() {
        let p = parse(MWG.as_bytes());
        assert_eq!(p.dims, Some((4000.0, 3000.0)));
        let names: Vec<&str> = p.regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Ann & co", "Bob"]);
        let close = |a: [f32; 4], b: [f32; 4]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(p.regions[0].rect, [0.4, 0.2, 0.6, 0.3]), "{:?}", p.regions[0]);
        assert!(close(p.regions[1].rect, [0.05, 0.4, 0.15, 0.6]), "{:?}", p.regions[1]);
        // other prefixes for the same namespaces read the same
        let renamed =
            MWG.replace("mwg-rs:", "r:").replace("xmlns:mwg-rs", "xmlns:r").replace("stArea:", "a:").replace("xmlns:stArea", "xmlns:a");
        assert_eq!(parse(renamed.as_bytes()).regions, p.regions);
        // a packet cut anywhere gives what came before, without a panic
        for cut in (0..MWG.len()).step_by(7) {
            let got = parse(&MWG.as_bytes()[..cut]);
            assert!(got.regions.len() <= 2);
        }
    }

    #[test]
    fn microsoft_regions() {
        let x = r#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
 <rdf:Description xmlns:MP="http://ns.microsoft.com/photo/1.2/" xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#"
   xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#">
  <MP:RegionInfo rdf:parseType="Resource"><MPRI:Regions><rdf:Bag>
   <rdf:li MPReg:Rectangle="0.25, 0.5, 0.125, 0.25" MPReg:PersonDisplayName="Cy"/>
   <rdf:li><rdf:Description><MPReg:PersonDisplayName>Di</MPReg:PersonDisplayName><MPReg:Rectangle>0.1,0.1,0.2,0.2</MPReg:Rectangle></rdf:Description></rdf:li>
   <rdf:li MPReg:Rectangle="0.1, 0.1, nonsense" MPReg:PersonDisplayName="Ed"/>
  </rdf:Bag></MPRI:Regions></MP:RegionInfo></rdf:Description></rdf:RDF></x:xmpmeta>"#;
        let p = parse(x.as_bytes());
        assert_eq!(p.regions.len(), 2, "{p:?}");
        assert_eq!((p.regions[0].name.as_str(), p.regions[0].rect), ("Cy", [0.25, 0.5, 0.375, 0.75]));
        assert_eq!(p.regions[1].name, "Di");
    }

    /// A sidecar written for a turned photo reads back as the regions written, in every
    /// orientation; names with markup characters survive.
    #[test]
    fn a_written_sidecar_reads_back() {
        let faces = vec![("Ann & <Bob>".to_string(), [0.1, 0.2, 0.3, 0.5]), ("Cy".to_string(), [0.6, 0.1, 0.9, 0.4])];
        for o in 1..=8 {
            let p = parse(sidecar_xmp(&faces, (300, 200), o).as_bytes());
            let stored_dims = if o >= 5 { (200.0, 300.0) } else { (300.0, 200.0) };
            assert_eq!(p.dims, Some(stored_dims));
            assert_eq!(p.regions.len(), 2);
            for (w, (name, rect)) in p.regions.iter().zip(&faces) {
                assert_eq!(&w.name, name);
                let back = oriented(w.rect, o);
                assert!(back.iter().zip(rect).all(|(a, b)| (a - b).abs() < 1e-5), "orientation {o}: {back:?} vs {rect:?}");
            }
        }
    }

    /// Each orientation moves a corner region where the turned photo shows it.
    #[test]
    fn orientation_turns_a_region_into_the_shown_frame() {
        // the top-left corner of the stored pixels, 0.2 wide and 0.1 high
        let r = [0.0, 0.0, 0.2, 0.1];
        assert_eq!(oriented(r, 1), r);
        assert_eq!(oriented(r, 2), [0.8, 0.0, 1.0, 0.1]);
        assert_eq!(oriented(r, 3), [0.8, 0.9, 1.0, 1.0]);
        assert_eq!(oriented(r, 4), [0.0, 0.9, 0.2, 1.0]);
        assert_eq!(oriented(r, 5), [0.0, 0.0, 0.1, 0.2]);
        // 90° clockwise: the top-left corner goes to the top right
        assert_eq!(oriented(r, 6), [0.9, 0.0, 1.0, 0.2]);
        assert_eq!(oriented(r, 7), [0.9, 0.8, 1.0, 1.0]);
        // 90° counter-clockwise: to the bottom left
        assert_eq!(oriented(r, 8), [0.0, 0.8, 0.1, 1.0]);
    }
}
