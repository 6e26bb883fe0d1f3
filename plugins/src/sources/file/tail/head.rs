//! A file's content identity: hashes of its first bytes.
//!
//! Two files whose first [`HEAD_BYTES`] bytes are equal hold the same stream of records (one is
//! the other renamed, or a copy of it). A file shorter than that is compared on what it has:
//! the stream keeps hashes of a few shorter prefixes too, so that a copy still being written
//! (or a file truncated and rewritten) can be told from the file it copies while it is short.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use authstat_core::hash::murmur3_x64_128;
use serde::{Deserialize, Serialize};

/// How many leading bytes identify a file's content.
pub const HEAD_BYTES: usize = 256;

/// The shorter prefixes whose hashes are kept as well.
const PREFIXES: [u32; 3] = [32, 64, 128];

fn hash(bytes: &[u8]) -> u64 {
    murmur3_x64_128(bytes, 0).0
}

/// The first bytes of `file` (up to [`HEAD_BYTES`]), read through the handle.
pub(crate) fn read_head(file: &File) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; HEAD_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(filled);
    Ok(head)
}

/// What identifies a stream: the hash of its first `len` bytes, and of shorter prefixes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Prints {
    /// How many leading bytes `fp` covers: [`HEAD_BYTES`], or less for a stream first seen
    /// shorter.
    pub len: u32,
    /// The hash (murmur3 x64 128, first half, seed 0) of the first `len` bytes.
    pub fp: u64,
    /// `(length, hash)` of the prefixes in [`PREFIXES`] shorter than `len`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<(u32, u64)>,
}

/// How a file's head relates to a stream's prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Relation {
    /// The file starts with the stream's first `len` bytes: it carries the stream.
    Same,
    /// The file is shorter than `len` but starts like the stream: a copy still being written
    /// (or a truncated file that starts the same way; see the module docs).
    Prefix,
    /// The file is too short to tell.
    Unknown,
    /// Another stream.
    Different,
}

impl Prints {
    /// The prints of a head (the first bytes of a file, at least one).
    pub fn of(head: &[u8]) -> Self {
        let len = head.len().min(HEAD_BYTES);
        Self {
            len: len as u32,
            fp: hash(&head[..len]),
            prefixes: PREFIXES
                .iter()
                .filter(|&&p| (p as usize) < len)
                .map(|&p| (p, hash(&head[..p as usize])))
                .collect(),
        }
    }

    /// How a file whose head is `head` relates to this stream.
    pub(crate) fn relation(&self, head: &[u8]) -> Relation {
        let have = head.len() as u32;
        if have >= self.len {
            return if hash(&head[..self.len as usize]) == self.fp {
                Relation::Same
            } else {
                Relation::Different
            };
        }
        match self.prefixes.iter().rev().find(|(p, _)| *p <= have) {
            Some(&(p, h)) if hash(&head[..p as usize]) == h => Relation::Prefix,
            Some(_) => Relation::Different,
            None => Relation::Unknown,
        }
    }

    /// The key of the stream's content, the same on every node: `file:<fp>:<len>` (the hash as a
    /// signed 64-bit number).
    pub fn key(&self) -> String {
        format!("file:{}:{}", self.fp as i64, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relations() {
        let content: Vec<u8> = (0..400u32).map(|i| (i * 7 % 251) as u8).collect();
        let prints = Prints::of(&content[..HEAD_BYTES]);
        assert_eq!(prints.len as usize, HEAD_BYTES);
        assert_eq!(prints.relation(&content[..HEAD_BYTES]), Relation::Same);
        assert_eq!(prints.relation(&content[..100]), Relation::Prefix);
        assert_eq!(prints.relation(&content[..32]), Relation::Prefix);
        assert_eq!(prints.relation(&content[..31]), Relation::Unknown);
        let mut other = content.clone();
        other[40] ^= 1;
        assert_eq!(prints.relation(&other[..HEAD_BYTES]), Relation::Different);
        assert_eq!(prints.relation(&other[..100]), Relation::Different);
        assert_eq!(
            prints.relation(&other[..33]),
            Relation::Prefix,
            "only 32 bytes are compared"
        );
        // A stream first seen short: longer files that start the same carry it.
        let short = Prints::of(&content[..50]);
        assert_eq!(short.prefixes, vec![(32, hash(&content[..32]))]);
        assert_eq!(short.relation(&content[..HEAD_BYTES]), Relation::Same);
        assert_eq!(short.relation(&content[..40]), Relation::Prefix);
        assert_eq!(
            short.key(),
            format!("file:{}:50", hash(&content[..50]) as i64)
        );
    }
}
