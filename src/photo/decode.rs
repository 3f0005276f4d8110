//! What every photo decoder shares (the general one, HEIF/AVIF and RAW previews): the typed
//! error, the pixel limit, the one-big-decode-at-a-time turn, and a JPEG's frame header.

/// Photos above this many pixels are refused (a 100 MP RGB image is 300 MB decoded).
pub const MAX_PIXELS: u64 = 100_000_000;

/// Decodes of more pixels than this run one at a time, whatever the number of threads: a
/// 100 MP PNG or HEIC needs about 0.6-1 GB while it decodes, and indexing must stay within
/// 2 GB whatever the folder holds.
pub const BIG_DECODE_PIXELS: u64 = 24_000_000;

static BIG_DECODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

thread_local! {
    /// This thread holds the big-decode turn. Rayon lets a thread waiting inside a parallel
    /// loop run another queued job, so a decode can start on a thread that is already inside
    /// one: it must go ahead, not wait for itself.
    static HOLDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The big-decode turn while it is held (see [`decode_turn`]). Code holding it must not use
/// rayon: a thread outside the pool (the index's network loop) holding the turn would wait for
/// pool threads that are themselves waiting for the turn.
pub(crate) struct Turn(Option<std::sync::MutexGuard<'static, ()>>);

/// This thread holds the big-decode turn (then it must not use rayon, see [`Turn`]).
pub(crate) fn turn_held_here() -> bool {
    HOLDING.with(|h| h.get())
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.0.is_some() {
            HOLDING.with(|h| h.set(false));
        }
    }
}

/// Waits for the big-decode turn while a large image decodes (nothing for small ones, nor on a
/// thread that already holds it). A poisoned lock (a decoder panicked) is still a lock.
pub(crate) fn decode_turn(w: u32, h: u32) -> Turn {
    if w as u64 * h as u64 <= BIG_DECODE_PIXELS || HOLDING.with(|h| h.get()) {
        return Turn(None);
    }
    let guard = BIG_DECODE.lock().unwrap_or_else(|p| p.into_inner());
    HOLDING.with(|h| h.set(true));
    Turn(Some(guard))
}

/// Why a file could not be read as a photo. Each variant is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    // The cause is part of the message (and deliberately not a `source`, so it is printed once).
    #[error("cannot read file: {0}")]
    Io(std::io::Error),
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("not an image (unrecognised content)")]
    NotAnImage,
    #[error("unsupported format {0}")]
    Unsupported(String),
    #[error("image too large: {w}x{h} pixels ({mp:.0} MP; limit {limit} MP)", mp = *w as f64 * *h as f64 / 1e6, limit = MAX_PIXELS / 1_000_000)]
    TooLarge { w: u32, h: u32 },
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
}

impl PhotoError {
    /// A short stable label for counting skipped files by reason.
    pub fn kind(&self) -> &'static str {
        match self {
            PhotoError::Io(_) => "unreadable",
            PhotoError::Empty => "empty",
            PhotoError::NotAnImage => "not an image",
            PhotoError::Unsupported(_) => "unsupported",
            PhotoError::TooLarge { .. } => "too large",
            PhotoError::Corrupt(_) => "corrupt",
        }
    }
}

impl From<std::io::Error> for PhotoError {
    fn from(e: std::io::Error) -> Self {
        PhotoError::Io(e)
    }
}

/// A JPEG's SOI marker and the first byte of the next.
pub(crate) fn is_jpeg(data: &[u8]) -> bool {
    data.len() > 3 && data[..3] == [0xFF, 0xD8, 0xFF]
}

/// A JPEG's start-of-frame header: its marker (C0 baseline … C3 lossless …), sample precision
/// in bits, width and height.
pub(crate) struct JpegFrame {
    pub marker: u8,
    pub precision: u8,
    pub width: u32,
    pub height: u32,
}

/// One step of [`segments`]: a marker segment of a JPEG header (its marker byte and the offset
/// of its FF), or a byte that is not a marker where one must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Segment {
    Marker { marker: u8, at: usize },
    NotAMarker,
}

/// The one walk over a JPEG's header segments (after SOI), by their lengths, up to and
/// including the start of scan (DA); it ends at a byte that is not a marker (reported once) or
/// where the data ends. Fill bytes (FF FF) are skipped. EXIF is read by the decoder itself
/// (`jpeg_decoder::Decoder::exif_data`).
pub(crate) fn segments(data: &[u8]) -> impl Iterator<Item = Segment> + '_ {
    let mut i = 2;
    let mut done = false;
    std::iter::from_fn(move || {
        while !done && i + 4 <= data.len() {
            if data[i] != 0xFF {
                done = true;
                return Some(Segment::NotAMarker);
            }
            let marker = data[i + 1];
            if marker == 0xFF {
                i += 1;
                continue;
            }
            let at = i;
            done = marker == 0xDA;
            i += 2 + u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
            return Some(Segment::Marker { marker, at });
        }
        None
    })
}

/// A JPEG's start-of-frame header (none when the scan starts first, a marker is missing or the
/// data ends). Shared by the decoder (precision) and the RAW preview search (size and kind).
pub(crate) fn jpeg_frame(data: &[u8]) -> Option<JpegFrame> {
    if !is_jpeg(data) {
        return None;
    }
    segments(data).find_map(|s| match s {
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC)
        Segment::Marker { marker, at } if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
            let h = data.get(at + 4..at + 9)?;
            let be = |k: usize| u16::from_be_bytes([h[k], h[k + 1]]) as u32;
            Some(JpegFrame { marker, precision: h[0], height: be(1), width: be(3) })
        }
        _ => None,
    })
}
