//! sha256 in hex, and file fingerprints (a photo found again after a rename without reading all of it).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

/// sha256 of `bytes`, as 64 lowercase hex digits (how model files and embedders are named).
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

const FINGERPRINT_PART: u64 = 64 * 1024;

/// The fingerprinted byte ranges of a file of `size` bytes: the head, and the start of the
/// tail (the last 64 KiB not already in the head).
fn fingerprint_ranges(size: u64) -> (u64, u64) {
    let head = FINGERPRINT_PART.min(size);
    (head, size - FINGERPRINT_PART.min(size - head))
}

/// sha256 of the size, the head and the tail: finds a renamed or moved photo again without
/// reading all of it.
fn fingerprint_parts(size: u64, head: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(size.to_le_bytes());
    h.update(head);
    h.update(tail);
    h.finalize()[..16].to_vec()
}

/// The fingerprint of a file on disk (reads only its head and tail).
pub fn fingerprint(path: &Path, size: u64) -> std::io::Result<Vec<u8>> {
    let (head_len, tail_start) = fingerprint_ranges(size);
    let mut f = std::fs::File::open(path)?;
    let mut head = vec![0u8; head_len as usize];
    f.read_exact(&mut head)?;
    let mut tail = vec![0u8; (size - tail_start) as usize];
    f.seek(SeekFrom::Start(tail_start))?;
    f.read_exact(&mut tail)?;
    Ok(fingerprint_parts(size, &head, &tail))
}

/// The same fingerprint of a file already read into memory.
pub fn fingerprint_bytes(data: &[u8]) -> Vec<u8> {
    let size = data.len() as u64;
    let (head_len, tail_start) = fingerprint_ranges(size);
    fingerprint_parts(size, &data[..head_len as usize], &data[tail_start as usize..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_from_disk_equals_fingerprint_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 10, 64 * 1024, 64 * 1024 + 7, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            assert_eq!(super::fingerprint(&p, len as u64).unwrap(), super::fingerprint_bytes(&data), "{len}");
        }
    }
}
