//! The storage specification v1 (java-hll `toBytes()` / `fromBytes()`, postgresql-hll `hll`).
//!
//! Three header bytes: `version << 4 | type`, `(regwidth - 1) << 5 | log2m`, and
//! `sparse << 6 | explicit cutoff`; then the body, bit-packed big-endian: EXPLICIT as 8-byte
//! signed values in ascending order, SPARSE as `(index << regwidth | value)` words of
//! `log2m + regwidth` bits in ascending index order, FULL as `regwidth`-bit registers.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{ExplicitThreshold, Hll, HllParams, HllType, Storage};
use crate::Error;

const SCHEMA_VERSION: u8 = 1;
const HEADER_LEN: usize = 3;

impl Hll {
    /// The serialized form, byte-for-byte what java-hll's `toBytes()` writes.
    ///
    /// Fails only for UNDEFINED, which the specification never writes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let p = &self.params;
        let header = |t: HllType| {
            [
                (SCHEMA_VERSION << 4) | t.ordinal(),
                ((p.regwidth() - 1) << 5) | p.log2m(),
                (u8::from(p.sparse()) << 6) | p.explicit().cutoff(),
            ]
        };
        let mut out = Vec::with_capacity(HEADER_LEN + self.body_len());
        out.extend_from_slice(&header(self.hll_type()));
        match &self.storage {
            Storage::Undefined => return Err(Error::UndefinedHll),
            Storage::Empty => {}
            Storage::Explicit(values) => {
                for value in values {
                    out.extend_from_slice(&value.to_be_bytes());
                }
            }
            Storage::Sparse(map) => {
                let bits = p.short_word_bits();
                let mut writer = BitWriter::new(&mut out);
                for (&j, &value) in map {
                    writer.push((u64::from(j) << p.regwidth()) | u64::from(value), bits);
                }
                writer.finish();
            }
            Storage::Full(registers) => pack_registers(registers, p.regwidth(), &mut out),
        }
        Ok(out)
    }

    fn body_len(&self) -> usize {
        match &self.storage {
            Storage::Undefined | Storage::Empty => 0,
            Storage::Explicit(values) => values.len() * 8,
            Storage::Sparse(map) => {
                (map.len() * self.params.short_word_bits() as usize).div_ceil(8)
            }
            Storage::Full(_) => self.params.full_body_len(),
        }
    }

    /// Reads the serialized form, validating it as postgresql-hll does. Never panics.
    ///
    /// The sparse→full threshold is not stored in the bytes; this uses java-hll's rule. Use
    /// [`from_bytes_with_max_sparse`](Hll::from_bytes_with_max_sparse) for data written with a
    /// fixed threshold.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_bytes_with_max_sparse(bytes, None)
    }

    /// Reads the serialized form with the sparse→full threshold fixed to `max_sparse` registers
    /// (`Some`, as postgresql-hll's `hll_set_max_sparse`) or java-hll's rule (`None`).
    pub fn from_bytes_with_max_sparse(
        bytes: &[u8],
        max_sparse: Option<u32>,
    ) -> Result<Self, Error> {
        let (hll_type, params) = read_header(bytes, max_sparse)?;
        let storage = read_body(hll_type, &params, &bytes[HEADER_LEN..])?;
        Ok(Self { params, storage })
    }

    /// Standard Base64 (padded) of [`to_bytes`](Hll::to_bytes): the value Janssen stores in the
    /// `dat` attribute of its stat entries.
    pub fn to_base64(&self) -> Result<String, Error> {
        Ok(STANDARD.encode(self.to_bytes()?))
    }

    /// Reads the Base64 form Janssen stores (surrounding whitespace is ignored).
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| Error::InvalidHll(format!("invalid base64: {e}")))?;
        Self::from_bytes(&bytes)
    }
}

/// Packs registers of `regwidth` bits, big-endian. Eight registers fill exactly `regwidth`
/// bytes, and `m >= 16`, so whole groups of eight need no bit-level carry.
fn pack_registers(registers: &[u8], regwidth: u8, out: &mut Vec<u8>) {
    match regwidth {
        1 => pack_width::<1>(registers, out),
        2 => pack_width::<2>(registers, out),
        3 => pack_width::<3>(registers, out),
        4 => pack_width::<4>(registers, out),
        5 => pack_width::<5>(registers, out),
        6 => pack_width::<6>(registers, out),
        7 => pack_width::<7>(registers, out),
        _ => pack_width::<8>(registers, out),
    }
}

fn pack_width<const W: usize>(registers: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + registers.len() / 8 * W, 0);
    for (group, bytes) in registers
        .chunks_exact(8)
        .zip(out[start..].chunks_exact_mut(W))
    {
        let mut acc = 0u64;
        for &r in group {
            acc = (acc << W) | u64::from(r);
        }
        bytes.copy_from_slice(&acc.to_be_bytes()[8 - W..]);
    }
}

fn unpack_registers(body: &[u8], regwidth: u8, m: usize) -> Vec<u8> {
    // One monomorphic copy per width: the compiler unrolls the group of eight.
    match regwidth {
        1 => unpack_width::<1>(body, m),
        2 => unpack_width::<2>(body, m),
        3 => unpack_width::<3>(body, m),
        4 => unpack_width::<4>(body, m),
        5 => unpack_width::<5>(body, m),
        6 => unpack_width::<6>(body, m),
        7 => unpack_width::<7>(body, m),
        _ => unpack_width::<8>(body, m),
    }
}

/// Eight registers of `W` bits fill exactly `W` bytes.
fn unpack_width<const W: usize>(body: &[u8], m: usize) -> Vec<u8> {
    let mask = (1u64 << W) - 1;
    let mut registers = vec![0u8; m];
    for (group, out) in body.chunks_exact(W).zip(registers.chunks_exact_mut(8)) {
        let mut acc = 0u64;
        for &byte in group {
            acc = (acc << 8) | u64::from(byte);
        }
        for (k, register) in out.iter_mut().enumerate() {
            *register = ((acc >> ((7 - k) * W)) & mask) as u8;
        }
    }
    registers
}

/// Writes words of 1..=64 bits, most significant bit first.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u128,
    pending: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            acc: 0,
            pending: 0,
        }
    }

    fn push(&mut self, word: u64, bits: u32) {
        let word = if bits == 64 {
            word
        } else {
            word & ((1u64 << bits) - 1)
        };
        self.acc = (self.acc << bits) | u128::from(word);
        self.pending += bits;
        while self.pending >= 8 {
            self.pending -= 8;
            self.out.push((self.acc >> self.pending) as u8);
        }
        self.acc &= (1u128 << self.pending) - 1;
    }

    fn finish(self) {
        if self.pending > 0 {
            self.out.push((self.acc << (8 - self.pending)) as u8);
        }
    }
}

/// Reads words of 1..=64 bits, most significant bit first; the caller bounds the count.
struct BitReader<'a> {
    bytes: &'a [u8],
    next: usize,
    acc: u128,
    available: u32,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            next: 0,
            acc: 0,
            available: 0,
        }
    }

    fn read(&mut self, bits: u32) -> u64 {
        while self.available < bits {
            let byte = self.bytes.get(self.next).copied().unwrap_or(0);
            self.next += 1;
            self.acc = (self.acc << 8) | u128::from(byte);
            self.available += 8;
        }
        self.available -= bits;
        let word = (self.acc >> self.available) as u64;
        self.acc &= (1u128 << self.available) - 1;
        if bits == 64 {
            word
        } else {
            word & ((1u64 << bits) - 1)
        }
    }
}

fn invalid(what: String) -> Error {
    Error::InvalidHll(what)
}

/// The three header bytes: schema version, type, and parameters.
fn read_header(bytes: &[u8], max_sparse: Option<u32>) -> Result<(HllType, HllParams), Error> {
    let [b0, b1, b2] = match bytes.get(..HEADER_LEN) {
        Some(&[a, b, c]) => [a, b, c],
        _ => {
            return Err(invalid(format!(
                "{} bytes is shorter than the header",
                bytes.len()
            )));
        }
    };
    if b0 >> 4 != SCHEMA_VERSION {
        return Err(invalid(format!("schema version {} is not 1", b0 >> 4)));
    }
    let hll_type = match b0 & 0x0f {
        0 => HllType::Undefined,
        1 => HllType::Empty,
        2 => HllType::Explicit,
        3 => HllType::Sparse,
        4 => HllType::Full,
        t => return Err(invalid(format!("type {t} is not 0..=4"))),
    };
    if b2 & 0x80 != 0 {
        return Err(invalid(format!(
            "cutoff byte {b2:#04x} has its top bit set"
        )));
    }
    let params = HllParams::new(b1 & 0x1f, (b1 >> 5) + 1)
        .map_err(|e| invalid(e.to_string()))?
        .with_explicit(ExplicitThreshold::from_cutoff(b2 & 0x3f)?)
        .map_err(|e| invalid(e.to_string()))?
        .with_sparse(b2 & 0x40 != 0)
        .with_max_sparse(max_sparse);
    Ok((hll_type, params))
}

/// The registers or values after the header, validated against the header's type and
/// parameters.
fn read_body(hll_type: HllType, params: &HllParams, body: &[u8]) -> Result<Storage, Error> {
    Ok(match hll_type {
        HllType::Undefined | HllType::Empty => {
            if !body.is_empty() {
                return Err(invalid(format!("{hll_type} has {} body bytes", body.len())));
            }
            if hll_type == HllType::Empty {
                Storage::Empty
            } else {
                Storage::Undefined
            }
        }
        HllType::Explicit => {
            if !body.len().is_multiple_of(8) {
                return Err(invalid(format!(
                    "EXPLICIT body of {} bytes is not a multiple of 8",
                    body.len()
                )));
            }
            let mut values: Vec<i64> = body
                .chunks_exact(8)
                .map(|c| i64::from_be_bytes(c.try_into().expect("chunks of 8")))
                .collect();
            values.sort_unstable();
            values.dedup();
            Storage::Explicit(values)
        }
        HllType::Sparse => read_sparse(params, body)?,
        HllType::Full => {
            if body.len() != params.full_body_len() {
                return Err(invalid(format!(
                    "FULL body of {} bytes, expected {} for log2m {} regwidth {}",
                    body.len(),
                    params.full_body_len(),
                    params.log2m(),
                    params.regwidth()
                )));
            }
            Storage::Full(unpack_registers(body, params.regwidth(), params.m()))
        }
    })
}

fn read_sparse(params: &HllParams, body: &[u8]) -> Result<Storage, Error> {
    let bits = params.short_word_bits();
    let total = body.len() as u64 * 8;
    let padding = total % u64::from(bits);
    if padding >= 8 {
        return Err(invalid(format!(
            "SPARSE body of {} bytes leaves {padding} padding bits",
            body.len()
        )));
    }
    let mut map = BTreeMap::new();
    let value_mask = (1u64 << params.regwidth()) - 1;
    let mut reader = BitReader::new(body);
    for _ in 0..total / u64::from(bits) {
        let word = reader.read(bits);
        let value = (word & value_mask) as u8;
        // java-hll keeps only non-zero registers; a later word for the same index replaces an
        // earlier one (`put`).
        if value != 0 {
            map.insert((word >> params.regwidth()) as u32, value);
        }
    }
    Ok(Storage::Sparse(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_writer_and_reader_agree_for_every_width() {
        for bits in 1..=64u32 {
            let mask = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            let words: Vec<u64> = (0..37u64)
                .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & mask)
                .collect();
            let mut out = Vec::new();
            let mut w = BitWriter::new(&mut out);
            for &word in &words {
                w.push(word, bits);
            }
            w.finish();
            assert_eq!(out.len(), (37 * bits as usize).div_ceil(8));
            let mut r = BitReader::new(&out);
            for &word in &words {
                assert_eq!(r.read(bits), word, "width {bits}");
            }
        }
    }

    #[test]
    fn register_packing_matches_the_generic_writer() {
        for regwidth in 1..=8u8 {
            let mask = (1u16 << regwidth) - 1;
            let registers: Vec<u8> = (0..64u16).map(|i| ((i * 7 + 3) & mask) as u8).collect();
            let mut fast = Vec::new();
            pack_registers(&registers, regwidth, &mut fast);
            let mut slow = Vec::new();
            let mut w = BitWriter::new(&mut slow);
            for &r in &registers {
                w.push(u64::from(r), u32::from(regwidth));
            }
            w.finish();
            assert_eq!(fast, slow, "regwidth {regwidth}");
            assert_eq!(unpack_registers(&fast, regwidth, 64), registers);
        }
    }
}
