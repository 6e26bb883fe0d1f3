//! A HyperLogLog that is byte-for-byte compatible with java-hll 1.6.0 and the storage
//! specification v1 shared with postgresql-hll.
//!
//! Compatibility is the point of this module: Janssen stores `Base64(hll.toBytes())` per node and
//! month, and PostgreSQL's `hll` extension reads the same bytes. So the representations
//! (EMPTY, EXPLICIT, SPARSE, FULL), the promotion rules, the estimator (with its floating-point
//! evaluation order) and the serialization all follow java-hll, including its quirks. The few
//! places where authstat deliberately differs are listed on [`Hll`].

mod estimator;
mod params;
mod serial;

use std::collections::BTreeMap;

pub use params::{
    ExplicitThreshold, HllParams, MAX_EXPLICIT_THRESHOLD, MAX_LOG2M, MAX_REGWIDTH, MIN_LOG2M,
    MIN_REGWIDTH,
};

use crate::Error;

/// The representation an [`Hll`] is in; also the type nibble of the serialized form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HllType {
    /// Read from bytes (postgresql-hll can produce it); propagates through union; never written.
    Undefined,
    /// No values yet.
    Empty,
    /// The distinct raw values themselves, exact.
    Explicit,
    /// Only the non-zero registers.
    Sparse,
    /// All `2^log2m` registers.
    Full,
}

impl HllType {
    /// The type ordinal of the storage spec (0 UNDEFINED … 4 FULL).
    pub fn ordinal(self) -> u8 {
        match self {
            HllType::Undefined => 0,
            HllType::Empty => 1,
            HllType::Explicit => 2,
            HllType::Sparse => 3,
            HllType::Full => 4,
        }
    }

    /// The upper-case name java-hll and postgresql-hll use.
    pub fn name(self) -> &'static str {
        match self {
            HllType::Undefined => "UNDEFINED",
            HllType::Empty => "EMPTY",
            HllType::Explicit => "EXPLICIT",
            HllType::Sparse => "SPARSE",
            HllType::Full => "FULL",
        }
    }
}

impl std::fmt::Display for HllType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Storage {
    Undefined,
    Empty,
    /// Sorted ascending as signed values, no duplicates (the order java-hll serializes in).
    Explicit(Vec<i64>),
    /// Register index → value; only non-zero values are kept.
    Sparse(BTreeMap<u32, u8>),
    /// One byte per register (unpacked: `add_raw` and union stay simple and fast).
    Full(Vec<u8>),
}

/// A HyperLogLog multiset of raw 64-bit hash values.
///
/// ```
/// use authstat_core::hll::{Hll, HllParams};
/// use authstat_core::hash::HashAlgorithm;
///
/// let mut hll = Hll::new(HllParams::janssen());
/// for user in ["admin", "user1", "user2", "admin"] {
///     hll.add_raw(HashAlgorithm::JavaStringHashCode.hash(user));
/// }
/// assert_eq!(hll.cardinality(), Some(3));
/// // The value Janssen stores in its `dat` attribute for the same users:
/// assert_eq!(hll.to_base64().unwrap(), "Eo9/AAAAAAWGA08AAAAABqaNxgAAAAAGpo3H");
/// ```
///
/// Where authstat deliberately differs from java-hll 1.6.0:
/// - [`union`](Hll::union) refuses HLLs with a different `log2m` or `regwidth` (java-hll
///   silently produces garbage);
/// - SPARSE words are packed with 64-bit arithmetic as the storage spec says; java-hll shifts the
///   register index in a 32-bit `int` and so writes corrupt words when `log2m + regwidth > 32`;
/// - [`cardinality`](Hll::cardinality) is `None` for UNDEFINED (as postgresql-hll's NULL), and 0
///   where java-hll's estimate is NaN or negative (only reachable from crafted register values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hll {
    params: HllParams,
    storage: Storage,
}

impl Hll {
    /// An EMPTY HLL.
    pub fn new(params: HllParams) -> Self {
        Self {
            params,
            storage: Storage::Empty,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &HllParams {
        &self.params
    }

    /// The current representation.
    pub fn hll_type(&self) -> HllType {
        match self.storage {
            Storage::Undefined => HllType::Undefined,
            Storage::Empty => HllType::Empty,
            Storage::Explicit(_) => HllType::Explicit,
            Storage::Sparse(_) => HllType::Sparse,
            Storage::Full(_) => HllType::Full,
        }
    }

    /// True for EMPTY (no value was ever added).
    pub fn is_empty(&self) -> bool {
        matches!(self.storage, Storage::Empty)
    }

    /// The explicit values (sorted as signed integers) if the HLL is EXPLICIT.
    pub fn explicit_values(&self) -> Option<&[i64]> {
        match &self.storage {
            Storage::Explicit(values) => Some(values),
            _ => None,
        }
    }

    /// The registers this HLL stands for, `2^log2m` of them: those of SPARSE and FULL, the
    /// registers its values would set for EXPLICIT, zeros for EMPTY; `None` for UNDEFINED.
    ///
    /// This allocates `2^log2m` bytes.
    pub fn registers(&self) -> Option<Vec<u8>> {
        let mut registers = vec![0u8; self.params.m()];
        match &self.storage {
            Storage::Undefined => return None,
            Storage::Empty => {}
            Storage::Explicit(values) => {
                for &raw in values {
                    let (j, p) = self.params.index_and_rank(raw);
                    registers[j] = registers[j].max(p);
                }
            }
            Storage::Sparse(map) => {
                for (&j, &value) in map {
                    registers[j as usize] = value;
                }
            }
            Storage::Full(full) => registers.copy_from_slice(full),
        }
        Some(registers)
    }

    /// How many registers are non-zero (for SPARSE and FULL; EXPLICIT and EMPTY give the count
    /// their registers would have); `None` for UNDEFINED.
    pub fn nonzero_registers(&self) -> Option<usize> {
        match &self.storage {
            Storage::Sparse(map) => Some(map.len()),
            Storage::Full(full) => Some(full.iter().filter(|&&r| r != 0).count()),
            _ => self
                .registers()
                .map(|r| r.iter().filter(|&&r| r != 0).count()),
        }
    }

    /// Adds a raw (already hashed) value, exactly as java-hll's `addRaw`.
    ///
    /// Promotion happens as in java-hll: EMPTY becomes EXPLICIT (or SPARSE, or FULL, depending
    /// on the thresholds); EXPLICIT is promoted when it holds *more* values than the explicit
    /// threshold; SPARSE when it has *more* non-zero registers than the sparse threshold. An
    /// UNDEFINED HLL stays UNDEFINED.
    #[inline]
    pub fn add_raw(&mut self, raw: i64) {
        match &mut self.storage {
            Storage::Full(full) => {
                let (j, p) = self.params.index_and_rank(raw);
                let register = &mut full[j];
                *register = (*register).max(p);
            }
            Storage::Sparse(map) => {
                let (j, p) = self.params.index_and_rank(raw);
                sparse_set_max(map, j, p);
                if map.len() > self.params.sparse_threshold() as usize {
                    self.promote_sparse_to_full();
                }
            }
            Storage::Explicit(values) => {
                if let Err(at) = values.binary_search(&raw) {
                    values.insert(at, raw);
                }
                if values.len() > self.params.explicit_threshold() as usize {
                    let values = std::mem::take(values);
                    self.init_probabilistic();
                    for raw in values {
                        self.set_probabilistic(raw);
                    }
                }
            }
            Storage::Empty => {
                if self.params.explicit_threshold() > 0 {
                    self.storage = Storage::Explicit(vec![raw]);
                } else {
                    self.init_probabilistic();
                    self.set_probabilistic(raw);
                }
            }
            Storage::Undefined => {}
        }
    }

    /// Switches to SPARSE if sparse is on, else FULL, with no registers set.
    fn init_probabilistic(&mut self) {
        self.storage = if self.params.sparse() {
            Storage::Sparse(BTreeMap::new())
        } else {
            Storage::Full(vec![0; self.params.m()])
        };
    }

    /// Sets a register of a SPARSE or FULL HLL without a promotion check (java-hll's
    /// `addRawSparseProbabilistic` / `addRawProbabilistic`).
    fn set_probabilistic(&mut self, raw: i64) {
        let (j, p) = self.params.index_and_rank(raw);
        match &mut self.storage {
            Storage::Sparse(map) => sparse_set_max(map, j, p),
            Storage::Full(full) => full[j] = full[j].max(p),
            _ => unreachable!("set_probabilistic on a non-probabilistic HLL"),
        }
    }

    fn promote_sparse_to_full(&mut self) {
        if let Storage::Sparse(map) = &self.storage {
            let mut full = vec![0u8; self.params.m()];
            for (&j, &value) in map {
                full[j as usize] = value;
            }
            self.storage = Storage::Full(full);
        }
    }

    /// Registers of a SPARSE HLL set into this HLL, which becomes (or stays) FULL.
    fn merge_sparse_into_full(full: &mut [u8], map: &BTreeMap<u32, u8>) {
        for (&j, &value) in map {
            let register = &mut full[j as usize];
            *register = (*register).max(value);
        }
    }

    /// The same multiset under `params` (the same `log2m` and `regwidth`): what adding its values
    /// one by one under `params` gives, when this HLL was only ever added to. For HLLs built
    /// without the SPARSE representation (adding to FULL registers is cheaper than to a sorted
    /// map) and stored with it: a FULL HLL with at most `params`' sparse threshold of non-zero
    /// registers becomes SPARSE.
    pub fn with_params(self, params: HllParams) -> Result<Hll, Error> {
        let (a, b) = (&self.params, &params);
        if a.log2m() != b.log2m() || a.regwidth() != b.regwidth() {
            return Err(Error::HllMismatch {
                left: (a.log2m(), a.regwidth()),
                right: (b.log2m(), b.regwidth()),
            });
        }
        let storage = match self.storage {
            Storage::Full(full)
                if params.sparse()
                    && full.iter().filter(|&&r| r != 0).count()
                        <= params.sparse_threshold() as usize =>
            {
                Storage::Sparse(
                    full.iter()
                        .enumerate()
                        .filter(|(_, r)| **r != 0)
                        .map(|(j, &r)| (j as u32, r))
                        .collect(),
                )
            }
            Storage::Explicit(values) if values.len() > params.explicit_threshold() as usize => {
                let mut out = Hll::new(params);
                for raw in values {
                    out.add_raw(raw);
                }
                return Ok(out);
            }
            other => other,
        };
        Ok(Hll { params, storage })
    }

    /// Unions `other` into `self`, as java-hll's `union` does for every pair of representations
    /// (the receiver's thresholds decide promotion).
    ///
    /// Fails when the two differ in `log2m` or `regwidth`. If either is UNDEFINED the result is
    /// UNDEFINED, as in postgresql-hll.
    pub fn union(&mut self, other: &Hll) -> Result<(), Error> {
        let (a, b) = (&self.params, &other.params);
        if a.log2m() != b.log2m() || a.regwidth() != b.regwidth() {
            return Err(Error::HllMismatch {
                left: (a.log2m(), a.regwidth()),
                right: (b.log2m(), b.regwidth()),
            });
        }
        match (&mut self.storage, &other.storage) {
            (Storage::Undefined, _) => {}
            (_, Storage::Undefined) => self.storage = Storage::Undefined,
            (_, Storage::Empty) => {}
            (Storage::Empty, Storage::Explicit(values)) => {
                if values.len() <= self.params.explicit_threshold() as usize {
                    self.storage = Storage::Explicit(values.clone());
                } else {
                    self.init_probabilistic();
                    for &raw in values {
                        self.add_raw(raw);
                    }
                }
            }
            (Storage::Empty | Storage::Explicit(_), Storage::Sparse(map)) => {
                let own = match std::mem::replace(&mut self.storage, Storage::Empty) {
                    Storage::Explicit(values) => values,
                    _ => Vec::new(),
                };
                self.storage = if self.params.sparse() {
                    Storage::Sparse(map.clone())
                } else {
                    let mut full = vec![0u8; self.params.m()];
                    Self::merge_sparse_into_full(&mut full, map);
                    Storage::Full(full)
                };
                for raw in own {
                    self.add_raw(raw);
                }
            }
            (Storage::Empty | Storage::Explicit(_), Storage::Full(full)) => {
                let own = match std::mem::replace(&mut self.storage, Storage::Full(full.clone())) {
                    Storage::Explicit(values) => values,
                    _ => Vec::new(),
                };
                for raw in own {
                    self.add_raw(raw);
                }
            }
            (_, Storage::Explicit(values)) => {
                for &raw in values {
                    self.add_raw(raw);
                }
            }
            (Storage::Sparse(own), Storage::Sparse(map)) => {
                for (&j, &value) in map {
                    sparse_set_max(own, j as usize, value);
                }
                if own.len() > self.params.sparse_threshold() as usize {
                    self.promote_sparse_to_full();
                }
            }
            (Storage::Sparse(own), Storage::Full(full)) => {
                let mut merged = full.clone();
                Self::merge_sparse_into_full(&mut merged, own);
                self.storage = Storage::Full(merged);
            }
            (Storage::Full(own), Storage::Sparse(map)) => Self::merge_sparse_into_full(own, map),
            (Storage::Full(own), Storage::Full(full)) => {
                for (register, &value) in own.iter_mut().zip(full.iter()) {
                    *register = (*register).max(value);
                }
            }
        }
        Ok(())
    }

    /// java-hll's estimate: EMPTY 0, EXPLICIT its exact size, SPARSE and FULL the HyperLogLog
    /// estimator with small- and large-range corrections. `None` for UNDEFINED.
    pub fn estimate(&self) -> Option<f64> {
        match &self.storage {
            Storage::Undefined => None,
            Storage::Empty => Some(0.0),
            Storage::Explicit(values) => Some(values.len() as f64),
            Storage::Sparse(map) => Some(estimator::sparse(&self.params, map)),
            Storage::Full(full) => Some(estimator::full(&self.params, full)),
        }
    }

    /// The cardinality as java-hll's `cardinality()` computes it (`ceil` of the estimate; the
    /// exact size for EXPLICIT). `None` for UNDEFINED.
    pub fn cardinality(&self) -> Option<u64> {
        match &self.storage {
            Storage::Explicit(values) => Some(values.len() as u64),
            _ => self.estimate().map(|e| {
                let c = e.ceil();
                if c.is_nan() || c <= 0.0 { 0 } else { c as u64 }
            }),
        }
    }
}

#[inline]
fn sparse_set_max(map: &mut BTreeMap<u32, u8>, j: usize, p: u8) {
    // java-hll: a zero never enters the sparse map (it would break the estimator).
    if p == 0 {
        return;
    }
    let register = map.entry(j as u32).or_insert(0);
    *register = (*register).max(p);
}
