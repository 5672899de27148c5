//! Compression and chunking: stored objects are deflated and packed into chunks that each
//! fit one Secret with room to spare, named after their contents.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use sha2::{Digest as _, Sha256};

/// What one chunk's data may take: under the 1 MiB limit of a Secret, with room for its
/// metadata.
pub(crate) const CHUNK_LIMIT: usize = 900 * 1024;

/// Deflated `bytes`.
pub(crate) fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// Inflated `bytes`.
///
/// # Errors
///
/// A message when they are not deflate data.
pub(crate) fn inflate(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    DeflateDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|error| format!("bad compressed data ({error})"))?;
    Ok(out)
}

/// Compressed objects that go into one Secret, by digest.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    pub(crate) entries: BTreeMap<String, Vec<u8>>,
    pub(crate) bytes: usize,
}

impl Chunk {
    /// A name part from the contents, so that writing the same chunk twice is one Secret.
    pub(crate) fn address(&self) -> String {
        let mut hash = Sha256::new();
        for key in self.entries.keys() {
            hash.update(key.as_bytes());
        }
        hash.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Packs `(digest, compressed)` into chunks of at most `limit` bytes (keys included), in
/// order; an entry larger than `limit` alone is handed back as the error.
pub(crate) fn pack(
    items: Vec<(String, Vec<u8>)>,
    limit: usize,
) -> Result<Vec<Chunk>, (String, usize)> {
    let mut chunks = Vec::new();
    let mut current = Chunk::default();
    for (digest, bytes) in items {
        let size = digest.len() + bytes.len();
        if size > limit {
            return Err((digest, bytes.len()));
        }
        if current.bytes + size > limit {
            chunks.push(std::mem::take(&mut current));
        }
        current.bytes += size;
        current.entries.insert(digest, bytes);
    }
    if !current.entries.is_empty() {
        chunks.push(current);
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflate_round_trips() {
        let text = b"apiVersion: v1\nkind: ConfigMap\n".repeat(100);
        let packed = deflate(&text);
        assert!(packed.len() < text.len() / 10);
        assert_eq!(inflate(&packed).unwrap(), text);
        assert!(inflate(b"not deflate at all").is_err());
    }

    #[test]
    fn chunks_stay_under_their_limit_and_keep_every_entry() {
        let items: Vec<(String, Vec<u8>)> = (0..100)
            .map(|i| (format!("{i:032}"), vec![7u8; 968]))
            .collect();
        let chunks = pack(items, 10_000).unwrap();
        assert_eq!(chunks.len(), 10);
        assert!(
            chunks
                .iter()
                .all(|c| c.bytes <= 10_000 && c.entries.len() == 10)
        );
        assert_ne!(chunks[0].address(), chunks[1].address());
    }

    #[test]
    fn an_entry_larger_than_a_chunk_is_refused() {
        let items = vec![("a".repeat(32), vec![0u8; 2_000])];
        assert_eq!(pack(items, 1_000).unwrap_err(), ("a".repeat(32), 2_000));
    }
}
