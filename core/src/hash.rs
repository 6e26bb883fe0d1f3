//! The hashes that turn a user identifier into the raw value an [`Hll`](crate::hll::Hll) takes.
//!
//! - [`HashAlgorithm::Murmur3`] (the default): MurmurHash3 x64_128 with seed 0, the first 64-bit
//!   half read as a signed integer. This is Guava's `murmur3_128().hashString(s, UTF_8).asLong()`
//!   and postgresql-hll's `hll_hash_text`, so PostgreSQL can read and extend authstat's HLLs.
//! - [`HashAlgorithm::JavaStringHashCode`]: Java's `String.hashCode()` sign-extended, which is
//!   what Janssen feeds to `addRaw`. Use it only to union with HLLs written by Janssen: it is a
//!   32-bit, poorly mixed hash and under-counts badly (100,000 users `user0..user99999` estimate
//!   as 39,231).

use serde::{Deserialize, Serialize};

use crate::Error;

/// How user identifiers are hashed before they enter an HLL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashAlgorithm {
    /// MurmurHash3 x64_128, seed 0, first half (Guava `asLong()`, postgresql-hll).
    #[default]
    Murmur3,
    /// Java `String.hashCode()`, sign-extended to 64 bits (Janssen's own hash).
    #[serde(rename = "java_string_hashcode")]
    JavaStringHashCode,
}

impl HashAlgorithm {
    /// Hashes a string (its UTF-8 bytes for murmur3, its UTF-16 units for Java's hashCode).
    #[inline]
    pub fn hash(self, s: &str) -> i64 {
        match self {
            HashAlgorithm::Murmur3 => murmur3_x64_128(s.as_bytes(), 0).0 as i64,
            HashAlgorithm::JavaStringHashCode => i64::from(java_string_hashcode(s)),
        }
    }

    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Murmur3 => "murmur3",
            HashAlgorithm::JavaStringHashCode => "java_string_hashcode",
        }
    }
}

impl std::str::FromStr for HashAlgorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "murmur3" => Ok(HashAlgorithm::Murmur3),
            "java_string_hashcode" => Ok(HashAlgorithm::JavaStringHashCode),
            other => Err(Error::UnknownHash(other.to_owned())),
        }
    }
}

impl std::fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Java's `String.hashCode()`: `h = 31 * h + unit` over the UTF-16 code units, wrapping.
#[inline]
pub fn java_string_hashcode(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// MurmurHash3 x64_128 (Austin Appleby's reference, as Guava implements it).
///
/// Returns `(h1, h2)`; Guava's 16 output bytes are `h1` then `h2`, each little-endian, and
/// `asLong()` is `h1`. A Java `int` seed is sign-extended, as Guava does: pass
/// `seed as i32 as i64 as u64` to reproduce that.
pub fn murmur3_x64_128(data: &[u8], seed: u64) -> (u64, u64) {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let mut h1 = seed;
    let mut h2 = seed;
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let k1 = u64::from_le_bytes(block[..8].try_into().expect("8 bytes"));
        let k2 = u64::from_le_bytes(block[8..].try_into().expect("8 bytes"));
        h1 ^= k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        h2 ^= k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    let mut k1 = 0u64;
    let mut k2 = 0u64;
    for (i, &b) in tail.iter().enumerate() {
        if i < 8 {
            k1 |= u64::from(b) << (8 * i);
        } else {
            k2 |= u64::from(b) << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        h2 ^= k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
    }
    if !tail.is_empty() {
        h1 ^= k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}
