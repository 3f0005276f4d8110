//! When a photo was taken, as the photo (or its XMP sidecar) records it: EXIF DateTimeOriginal
//! with OffsetTimeOriginal (JPEG APP1, PNG eXIf, TIFF and TIFF-based RAW files, HEIF/AVIF Exif
//! items, CR3's CMT2 box, the JPEG previews of other RAW containers), else XMP `exif:DateTimeOriginal`, else XMP `xmp:CreateDate` (embedded, then in a
//! sidecar `photo.xmp` or `photo.jpg.xmp`). Never the file's time: a photo that records none
//! has no date.

use std::path::Path;

use super::tiff::Tiff;

/// A capture time: the local date and time to the second, and the UTC offset where recorded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Taken {
    /// `YYYY-MM-DDTHH:MM:SS`, local time.
    local: String,
    /// `+HH:MM` or `-HH:MM`.
    offset: Option<String>,
}

impl Taken {
    /// From the text [`Taken::to_string`] wrote (`YYYY-MM-DDTHH:MM:SS`, then `±HH:MM` or not).
    pub fn parse(s: &str) -> Option<Taken> {
        let (local, offset) = if s.len() == 25 { (s.get(..19)?, Some(s.get(19..)?)) } else { (s, None) };
        let t = Taken { local: local.to_string(), offset: offset.map(str::to_string) };
        (is_local(local) && offset.is_none_or(is_offset)).then_some(t)
    }

    /// The year.
    pub fn year(&self) -> i32 {
        self.local[..4].parse().unwrap_or_default()
    }

    /// The local date and time, `YYYY-MM-DDTHH:MM:SS`.
    pub fn local(&self) -> &str {
        &self.local
    }
}

impl std::fmt::Display for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.local, self.offset.as_deref().unwrap_or(""))
    }
}

/// A date given to bound a search (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, up to
/// `YYYY-MM-DDTHH:MM:SS`; a space for the `T`), as the prefix of a local time it stands for.
pub fn bound(s: &str) -> Option<String> {
    const SHAPE: &[u8] = b"0000-00-00T00:00:00";
    let s = s.trim().replacen(' ', "T", 1);
    let ok = [4, 7, 10, 13, 16, 19].contains(&s.len())
        && s.bytes().zip(SHAPE).all(|(c, &t)| if t == b'0' { c.is_ascii_digit() } else { c == t });
    ok.then_some(s)
}

/// Whether `t` lies between the bounds (inclusive, each a prefix from [`bound`]: `--to 2019`
/// takes all of 2019).
pub fn within(t: &Taken, from: Option<&str>, to: Option<&str>) -> bool {
    from.is_none_or(|f| t.local.as_str() >= f) && to.is_none_or(|u| &t.local[..u.len().min(19)] <= u)
}

/// `YYYY-MM-DDTHH:MM:SS` with digits where digits go, a month, day, hour, minute and second in
/// range, and a year after 0.
fn is_local(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 19 || [4, 7].iter().any(|&i| b[i] != b'-') || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return false;
    }
    let num =
        |r: std::ops::Range<usize>| -> Option<u32> { b[r.clone()].iter().all(u8::is_ascii_digit).then(|| s[r].parse().ok()).flatten() };
    matches!(
        (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19)),
        (Some(1..), Some(1..=12), Some(1..=31), Some(0..=23), Some(0..=59), Some(0..=60))
    )
}

/// `+HH:MM` or `-HH:MM`, at most 14 hours.
fn is_offset(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 6
        && matches!(b[0], b'+' | b'-')
        && b[3] == b':'
        && [1, 2, 4, 5].iter().all(|&i| b[i].is_ascii_digit())
        && s[1..3].parse::<u32>().is_ok_and(|h| h <= 14)
        && s[4..6].parse::<u32>().is_ok_and(|m| m <= 59)
}

/// An EXIF date (`YYYY:MM:DD HH:MM:SS`, trailing spaces allowed) and offset text.
fn exif_taken(date: &str, offset: Option<&str>) -> Option<Taken> {
    let d = date.trim_end();
    let b = d.as_bytes();
    if b.len() != 19 || b[4] != b':' || b[7] != b':' || b[10] != b' ' {
        return None;
    }
    let local = format!("{}-{}-{}T{}", &d[..4], &d[5..7], &d[8..10], &d[11..]);
    let offset = offset.map(str::trim).filter(|o| is_offset(o)).map(str::to_string);
    is_local(&local).then_some(Taken { local, offset })
}

/// An XMP date (ISO 8601: `YYYY-MM-DD[Thh:mm[:ss[.s…]]][Z|±hh:mm]`; ExifTool's `YYYY:MM:DD
/// hh:mm:ss` too). A missing time reads as midnight, missing seconds as :00.
fn xmp_taken(s: &str) -> Option<Taken> {
    let s = s.trim();
    let date = s.get(..10)?.replace(':', "-");
    let rest = s.get(10..)?;
    let (time, zone) = match rest.strip_prefix(['T', ' ']) {
        None if rest.is_empty() => ("00:00:00".to_string(), ""),
        None => return None,
        Some(t) => {
            let at = t.find(['Z', '+', '-']).unwrap_or(t.len());
            let (clock, zone) = t.split_at(at);
            let clock = clock.split('.').next().unwrap_or(clock);
            let clock = if clock.len() == 5 { format!("{clock}:00") } else { clock.to_string() };
            (clock, zone)
        }
    };
    let offset = match zone {
        "" => None,
        "Z" => Some("+00:00".to_string()),
        z if is_offset(z) => Some(z.to_string()),
        _ => return None,
    };
    let local = format!("{date}T{time}");
    is_local(&local).then_some(Taken { local, offset })
}

/// DateTimeOriginal (+ OffsetTimeOriginal) of an EXIF block (a TIFF structure), found through
/// IFD0's pointer to the EXIF IFD, or in the first IFD itself when `first_is_exif` (Canon
/// CR3's CMT2 box).
fn from_exif(tiff: &[u8], first_is_exif: bool) -> Option<Taken> {
    let t = Tiff::new(tiff)?;
    let first = t.u32_at(4)? as usize;
    let exif = if first_is_exif { first } else { t.entries(first)?.iter().find(|e| e.tag == 0x8769).and_then(|e| t.value(e, 0))? as usize };
    let entries = t.entries(exif)?;
    let text = |tag: u16| entries.iter().find(|e| e.tag == tag).and_then(|e| t.ascii(e));
    exif_taken(text(0x9003)?, text(0x9011))
}

/// The XMP packet stored in a TIFF structure (tag 700, XMLPacket), if any.
fn tiff_xmp(data: &[u8]) -> Option<&[u8]> {
    let t = Tiff::new(data)?;
    let e = t.entries(t.u32_at(4)? as usize)?.into_iter().find(|e| e.tag == 700)?;
    let n = e.count as usize;
    if n <= 4 {
        return None;
    }
    data.get(e.offset_or_value as usize..(e.offset_or_value as usize).checked_add(n)?)
}

/// Where a photo keeps its metadata: EXIF blocks (TIFF structures) and XMP packets.
#[derive(Default)]
pub(super) struct Metadata<'a> {
    pub exif: Vec<&'a [u8]>,
    /// TIFF structures whose first IFD is the EXIF IFD.
    exif_ifds: Vec<&'a [u8]>,
    pub xmp: Vec<&'a [u8]>,
}

/// The EXIF blocks and XMP packets of a JPEG (APP1 segments before the image data).
fn jpeg_metadata(d: &[u8]) -> Metadata<'_> {
    let mut m = Metadata::default();
    let mut i = 2;
    while i + 4 <= d.len() && d[i] == 0xFF {
        let marker = d[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        let len = u16::from_be_bytes([d[i + 2], d[i + 3]]) as usize;
        let Some(body) = d.get(i + 4..i + 2 + len.max(2)) else { break };
        if marker == 0xE1 {
            if let Some(tiff) = body.strip_prefix(b"Exif\0\0") {
                m.exif.push(tiff);
            } else if let Some(x) = body.strip_prefix(b"http://ns.adobe.com/xap/1.0/\0") {
                m.xmp.push(x);
            }
        }
        i += 2 + len;
    }
    m
}

/// The EXIF block (eXIf) and XMP packet (iTXt `XML:com.adobe.xmp`, uncompressed) of a PNG.
fn png_metadata(d: &[u8]) -> Metadata<'_> {
    let mut m = Metadata::default();
    let mut i = 8;
    while let Some(head) = d.get(i..i + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(body) = d.get(i + 8..(i + 8).saturating_add(len)) else { break };
        match &head[4..8] {
            b"eXIf" => m.exif.push(body),
            b"iTXt" => {
                // keyword, NUL, compression flag, method, language NUL, translated keyword NUL, text
                if let Some(rest) = body.strip_prefix(b"XML:com.adobe.xmp\0\0") {
                    m.xmp.push(rest);
                }
            }
            b"IEND" => break,
            _ => {}
        }
        i += 12 + len;
    }
    m
}

/// Every `needle` in `hay`, as the rest of `hay` from it.
fn find_all<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    memchr::memmem::find_iter(hay, needle).map(move |i| &hay[i..])
}

/// Blocks and packets looked at in a file searched whole (a hostile file may repeat the marks).
const MAX_BLOCKS: usize = 8;
/// Bytes of an XMP packet looked at.
pub(super) const MAX_PACKET: usize = 1 << 20;

/// The metadata of a photo file: by its container (JPEG, PNG, TIFF-based) or, for the others
/// (HEIF, AVIF, other RAW containers), the EXIF blocks marked `Exif\0\0` and the XMP packets
/// found in the file.
pub(super) fn metadata(d: &[u8]) -> Metadata<'_> {
    if d.starts_with(&[0xFF, 0xD8]) {
        return jpeg_metadata(d);
    }
    if d.starts_with(b"\x89PNG\r\n\x1a\n") {
        return png_metadata(d);
    }
    if Tiff::new(d).is_some() {
        return Metadata { exif: vec![d], xmp: tiff_xmp(d).into_iter().collect(), ..Metadata::default() };
    }
    Metadata {
        exif: find_all(d, b"Exif\0\0").map(|r| &r[6..]).filter(|t| Tiff::new(t).is_some()).take(MAX_BLOCKS).collect(),
        // Canon CR3 keeps its EXIF IFD as a TIFF structure in a CMT2 box
        exif_ifds: find_all(d, b"CMT2").map(|r| &r[4..]).filter(|t| Tiff::new(t).is_some()).take(MAX_BLOCKS).collect(),
        xmp: find_all(d, b"<x:xmpmeta").take(MAX_BLOCKS).collect(),
    }
}

/// The value of XMP property `name` (`prefix:Name`) in a packet, as an attribute or an element.
fn xmp_property(xmp: &[u8], name: &str) -> Option<String> {
    let xmp = &xmp[..xmp.len().min(MAX_PACKET)];
    let end = find_all(xmp, b"</x:xmpmeta>").next().map_or(xmp.len(), |r| xmp.len() - r.len());
    let text = String::from_utf8_lossy(&xmp[..end]);
    let mut from = 0;
    while let Some(i) = text[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before = text[..at].chars().last();
        let after = &text[from..];
        if before.is_some_and(|c| c.is_whitespace()) {
            if let Some(v) = after.trim_start().strip_prefix('=') {
                let v = v.trim_start();
                if let Some(q) = v.chars().next().filter(|c| *c == '"' || *c == '\'') {
                    return Some(v[1..].split(q).next()?.to_string());
                }
            }
        } else if before == Some('<') {
            if let Some(v) = after.strip_prefix('>') {
                return Some(v.split('<').next()?.to_string());
            }
        }
    }
    None
}

/// The EXIF orientation (1 to 8) the first EXIF block of `m` records; 1 when none does.
pub(super) fn orientation(m: &Metadata) -> u16 {
    let read = |tiff: &[u8]| -> Option<u16> {
        let t = Tiff::new(tiff)?;
        let e = t.entries(t.u32_at(4)? as usize)?.into_iter().find(|e| e.tag == 0x0112)?;
        u16::try_from(t.value(&e, 0)?).ok().filter(|o| (1..=8).contains(o))
    };
    m.exif.iter().find_map(|e| read(e)).unwrap_or(1)
}

/// The names an XMP sidecar of `path` may have: `photo.xmp`, then `photo.jpg.xmp` (either
/// case).
pub fn sidecar_names(path: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for ext in ["xmp", "XMP"] {
        let beside = path.with_extension(ext);
        let mut appended = path.as_os_str().to_owned();
        appended.push(format!(".{ext}"));
        for p in [beside, appended.into()] {
            if p != path && !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// The first [`MAX_PACKET`] bytes of each XMP sidecar of `path` that can be read.
pub(super) fn read_sidecars(path: &Path) -> Vec<Vec<u8>> {
    use std::io::Read;
    let read = |p: &std::path::PathBuf| -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        std::fs::File::open(p)?.take(MAX_PACKET as u64).read_to_end(&mut out)?;
        Ok(out)
    };
    sidecars(path).iter().filter_map(|p| read(p).ok()).collect()
}

/// The XMP sidecars of `path` that exist (see [`sidecar_names`]).
pub fn sidecars(path: &Path) -> Vec<std::path::PathBuf> {
    sidecar_names(path).into_iter().filter(|p| p.is_file()).collect()
}

/// When the photo `data` (read from `path`) was taken; its sidecars are read from disk. `None`
/// when neither records it.
pub fn read(path: &Path, data: &[u8]) -> Option<Taken> {
    from_parts(&metadata(data), &read_sidecars(path))
}

/// [`read`] from a photo's parsed metadata and its sidecars' bytes.
pub(super) fn from_parts(m: &Metadata, sidecars: &[Vec<u8>]) -> Option<Taken> {
    let exif = m.exif.iter().map(|e| (e, false)).chain(m.exif_ifds.iter().map(|e| (e, true)));
    if let Some(t) = exif.into_iter().find_map(|(e, first)| from_exif(e, first)) {
        return Some(t);
    }
    let packets: Vec<&[u8]> = m.xmp.iter().copied().chain(sidecars.iter().map(Vec::as_slice)).collect();
    ["exif:DateTimeOriginal", "xmp:CreateDate"]
        .iter()
        .find_map(|name| packets.iter().find_map(|x| xmp_property(x, name).and_then(|v| xmp_taken(&v))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_written_and_nonsense_reads_as_none() {
        let t = exif_taken("2019:07:14 18:03:12", Some("+02:00")).unwrap();
        assert_eq!((t.to_string(), t.year()), ("2019-07-14T18:03:12+02:00".to_string(), 2019));
        assert_eq!(Taken::parse(&t.to_string()), Some(t));
        assert_eq!(exif_taken("2001:02:03 04:05:06 ", Some("   ")).unwrap().to_string(), "2001-02-03T04:05:06");
        for bad in ["0000:00:00 00:00:00", "    :  :     :  :  ", "2019:13:01 00:00:00", "2019-07-14 18:03:12", ""] {
            assert_eq!(exif_taken(bad, None), None, "{bad:?}");
        }
        for (xmp, want) in [
            ("2015-06-01T10:00:00+01:00", "2015-06-01T10:00:00+01:00"),
            ("2015-06-01T10:00:00.25Z", "2015-06-01T10:00:00+00:00"),
            ("2015-06-01T10:00-05:00", "2015-06-01T10:00:00-05:00"),
            ("2015-06-01", "2015-06-01T00:00:00"),
            ("2012:03:04 05:06:07", "2012-03-04T05:06:07"),
        ] {
            assert_eq!(xmp_taken(xmp).map(|t| t.to_string()).as_deref(), Some(want), "{xmp}");
        }
        assert_eq!(xmp_taken("2015"), None);
        assert_eq!(xmp_taken("2015-06-01T10:00:00+99:00"), None);
        assert_eq!(Taken::parse("2015-06-01T10:00:00+1"), None);
    }

    /// Every fixture ExifTool wrote (tests/data/dates/make.sh) and every camera RAW file of
    /// tests/data/raw reads as ExifTool reads it, to the second, offset included.
    #[test]
    fn capture_dates_read_as_exiftool_reads_them() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dates");
        let expected: std::collections::BTreeMap<String, Option<String>> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
        assert!(expected.len() >= 20, "{} fixtures", expected.len());
        let mut wrong = Vec::new();
        for (file, want) in &expected {
            let path = dir.join(file);
            let got = read(&path, &std::fs::read(&path).unwrap()).map(|t| t.to_string());
            if got != *want {
                wrong.push(format!("{file}: {got:?}, ExifTool {want:?}"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn search_bounds_take_whole_years_and_days() {
        assert_eq!(bound("2019").as_deref(), Some("2019"));
        assert_eq!(bound("2019-07-14 18:03").as_deref(), Some("2019-07-14T18:03"));
        for bad in ["19", "2019-7", "2019/07/14", "2019-07-14T1", "2019-07-14X18", "yesterday"] {
            assert_eq!(bound(bad), None, "{bad}");
        }
        let t = Taken::parse("2019-07-14T18:03:12+02:00").unwrap();
        assert!(within(&t, Some("2019"), Some("2019")));
        assert!(within(&t, Some("2019-07-14"), Some("2019-07-14")));
        assert!(!within(&t, Some("2019-07-15"), None));
        assert!(!within(&t, None, Some("2019-07-13")));
        assert!(within(&t, None, None));
    }

    #[test]
    fn xmp_properties_as_attributes_or_elements() {
        let a = br#"<x:xmpmeta><rdf:Description xmp:CreateDate="2012-03-04T05:06:07" exif:DateTimeOriginal='2010-01-01T00:00:01'/></x:xmpmeta>"#;
        assert_eq!(xmp_property(a, "exif:DateTimeOriginal").as_deref(), Some("2010-01-01T00:00:01"));
        assert_eq!(xmp_property(a, "xmp:CreateDate").as_deref(), Some("2012-03-04T05:06:07"));
        let e = b"<x:xmpmeta><exif:DateTimeOriginal>2008-08-08T08:08:08</exif:DateTimeOriginal></x:xmpmeta>";
        assert_eq!(xmp_property(e, "exif:DateTimeOriginal").as_deref(), Some("2008-08-08T08:08:08"));
        assert_eq!(xmp_property(e, "xmp:CreateDate"), None);
        // a malformed mention does not hide a later value; bytes that are not UTF-8 do not hide it
        let m = b"<x:xmpmeta> exif:DateTimeOriginal=oops \xff exif:DateTimeOriginal=\"2011-02-03T04:05:06\"/></x:xmpmeta>";
        assert_eq!(xmp_property(m, "exif:DateTimeOriginal").as_deref(), Some("2011-02-03T04:05:06"));
    }
}
