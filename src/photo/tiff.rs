//! TIFF structures (the layout of TIFF files, of most camera RAW files and of EXIF blocks),
//! read with bounds checks only: IFD entries, numbers and text.

pub struct Entry {
    pub tag: u16,
    pub kind: u16,
    pub count: u32,
    pub offset_or_value: u32,
    /// Where the 4-byte value/offset field is.
    at: usize,
}

/// A TIFF structure (either byte order), read with bounds checks only.
pub struct Tiff<'a> {
    d: &'a [u8],
    le: bool,
}

impl<'a> Tiff<'a> {
    pub fn new(d: &'a [u8]) -> Option<Self> {
        let le = match d.get(..2)? {
            b"II" => true,
            b"MM" => false,
            _ => return None,
        };
        // 42 for TIFF; Olympus (0x4F52, 0x5352) and Panasonic (0x55) use their own numbers
        let magic = if le { u16::from_le_bytes([*d.get(2)?, *d.get(3)?]) } else { u16::from_be_bytes([*d.get(2)?, *d.get(3)?]) };
        matches!(magic, 42 | 0x4F52 | 0x5352 | 0x55).then_some(Self { d, le })
    }
    pub fn u16_at(&self, i: usize) -> Option<u16> {
        let b = self.d.get(i..i + 2)?;
        Some(if self.le { u16::from_le_bytes([b[0], b[1]]) } else { u16::from_be_bytes([b[0], b[1]]) })
    }
    pub fn u32_at(&self, i: usize) -> Option<u32> {
        let b = self.d.get(i..i + 4)?;
        Some(if self.le { u32::from_le_bytes([b[0], b[1], b[2], b[3]]) } else { u32::from_be_bytes([b[0], b[1], b[2], b[3]]) })
    }
    pub fn entries(&self, ifd: usize) -> Option<Vec<Entry>> {
        let n = self.u16_at(ifd)? as usize;
        (0..n.min(512))
            .map(|k| {
                let e = ifd + 2 + 12 * k;
                Some(Entry {
                    tag: self.u16_at(e)?,
                    kind: self.u16_at(e + 2)?,
                    count: self.u32_at(e + 4)?,
                    offset_or_value: self.u32_at(e + 8)?,
                    at: e + 8,
                })
            })
            .collect()
    }
    pub fn next_ifd(&self, ifd: usize) -> Option<usize> {
        let n = self.u16_at(ifd)? as usize;
        Some(self.u32_at(ifd + 2 + 12 * n)? as usize)
    }
    /// Value `i` of a SHORT or LONG (or IFD) entry.
    pub fn value(&self, e: &Entry, i: usize) -> Option<u32> {
        let (size, read): (usize, &dyn Fn(usize) -> Option<u32>) = match e.kind {
            3 => (2, &|p| self.u16_at(p).map(u32::from)),
            4 | 13 => (4, &|p| self.u32_at(p)),
            _ => return None,
        };
        if i >= e.count as usize {
            return None;
        }
        let base = if size * e.count as usize <= 4 { e.at } else { e.offset_or_value as usize };
        read(base.checked_add(size * i)?)
    }

    /// An ASCII entry's text (up to its first NUL), when it is valid UTF-8.
    pub fn ascii(&self, e: &Entry) -> Option<&'a str> {
        if e.kind != 2 {
            return None;
        }
        let n = e.count as usize;
        let base = if n <= 4 { e.at } else { e.offset_or_value as usize };
        let bytes = self.d.get(base..base.checked_add(n)?)?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        std::str::from_utf8(&bytes[..end]).ok()
    }
}
