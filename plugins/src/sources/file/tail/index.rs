//! Finds the streams a file's head belongs to without comparing it with every stream: the
//! streams are indexed by `(length, hash)` of their full prints and of their prefixes.

use std::collections::{BTreeMap, HashMap};

use authstat_core::hash::murmur3_x64_128;

use super::head::{HEAD_BYTES, Prints, Relation};

/// Identifies a stream inside one tailer.
pub(crate) type StreamId = u64;

#[derive(Debug, Default)]
pub(crate) struct StreamIndex {
    full: HashMap<(u32, u64), Vec<StreamId>>,
    prefix: HashMap<(u32, u64), Vec<StreamId>>,
    /// How many streams have prints of each length.
    lens: BTreeMap<u32, usize>,
}

fn hash(bytes: &[u8]) -> u64 {
    murmur3_x64_128(bytes, 0).0
}

impl StreamIndex {
    pub fn insert(&mut self, id: StreamId, prints: &Prints) {
        self.full
            .entry((prints.len, prints.fp))
            .or_default()
            .push(id);
        for &p in &prints.prefixes {
            self.prefix.entry(p).or_default().push(id);
        }
        *self.lens.entry(prints.len).or_default() += 1;
    }

    pub fn remove(&mut self, id: StreamId, prints: &Prints) {
        fn take(map: &mut HashMap<(u32, u64), Vec<StreamId>>, key: (u32, u64), id: StreamId) {
            if let Some(ids) = map.get_mut(&key) {
                ids.retain(|&i| i != id);
                if ids.is_empty() {
                    map.remove(&key);
                }
            }
        }
        take(&mut self.full, (prints.len, prints.fp), id);
        for &p in &prints.prefixes {
            take(&mut self.prefix, p, id);
        }
        if let Some(n) = self.lens.get_mut(&prints.len) {
            *n -= 1;
            if *n == 0 {
                self.lens.remove(&prints.len);
            }
        }
    }

    /// The streams `head` belongs to, with how ([`Relation::Same`] or [`Relation::Prefix`]),
    /// longest prints first; and whether some stream could not be told apart because `head` is
    /// too short ([`Relation::Unknown`]).
    pub(crate) fn lookup(
        &self,
        head: &[u8],
        prints_of: impl Fn(StreamId) -> u32,
    ) -> (Vec<(StreamId, Relation)>, bool) {
        let have = head.len().min(HEAD_BYTES) as u32;
        let mut found = Vec::new();
        for (&len, _) in self.lens.range(..=have).rev() {
            if let Some(ids) = self.full.get(&(len, hash(&head[..len as usize]))) {
                found.extend(ids.iter().map(|&id| (id, Relation::Same)));
            }
        }
        // Streams longer than the head, compared on their longest prefix the head covers.
        let longer = self.lens.range(have + 1..).next().is_some();
        let mut unknown = false;
        if longer {
            match [128u32, 64, 32].into_iter().find(|&p| p <= have) {
                None => unknown = true,
                Some(p) => {
                    if let Some(ids) = self.prefix.get(&(p, hash(&head[..p as usize]))) {
                        found.extend(
                            ids.iter()
                                .filter(|&&id| prints_of(id) > have)
                                .map(|&id| (id, Relation::Prefix)),
                        );
                    }
                    // Streams longer than the head with no prefix at p (prints shorter than
                    // p + 1 bytes cannot be longer than the head here) are all indexed.
                }
            }
        }
        (found, unknown)
    }
}
