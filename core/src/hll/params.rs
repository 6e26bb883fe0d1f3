//! HLL parameters and the thresholds java-hll derives from them.

use crate::Error;

/// Smallest `log2m` java-hll accepts.
pub const MIN_LOG2M: u8 = 4;
/// Largest `log2m` java-hll accepts.
pub const MAX_LOG2M: u8 = 30;
/// Smallest register width in bits.
pub const MIN_REGWIDTH: u8 = 1;
/// Largest register width in bits.
pub const MAX_REGWIDTH: u8 = 8;
/// Largest explicit threshold java-hll allows (`2^17`, i.e. `expthresh` 18).
pub const MAX_EXPLICIT_THRESHOLD: u32 = 1 << 17;

/// How many distinct raw values the EXPLICIT representation holds before it is promoted.
///
/// This is java-hll's `expthresh` constructor argument and the low six bits of the storage
/// spec's cutoff byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExplicitThreshold {
    /// java-hll's default (`expthresh = -1`, cutoff 63): as many 8-byte values as fit in the
    /// size of the FULL representation, at most [`MAX_EXPLICIT_THRESHOLD`].
    Auto,
    /// No EXPLICIT representation (`expthresh = 0`, cutoff 0).
    Off,
    /// A fixed power of two from 1 to `2^17` (`expthresh = log2(n) + 1`).
    Values(u32),
}

impl ExplicitThreshold {
    /// The cutoff value stored in the low six bits of the header's third byte.
    pub(crate) fn cutoff(self) -> u8 {
        match self {
            ExplicitThreshold::Off => 0,
            ExplicitThreshold::Auto => 63,
            ExplicitThreshold::Values(n) => n.trailing_zeros() as u8 + 1,
        }
    }

    /// Reads the cutoff value of a serialized HLL.
    pub(crate) fn from_cutoff(cutoff: u8) -> Result<Self, Error> {
        match cutoff {
            0 => Ok(ExplicitThreshold::Off),
            63 => Ok(ExplicitThreshold::Auto),
            1..=18 => Ok(ExplicitThreshold::Values(1 << (cutoff - 1))),
            _ => Err(Error::InvalidHll(format!(
                "explicit cutoff {cutoff} is not 0 (off), 63 (auto) or 1..=18"
            ))),
        }
    }
}

/// The parameters of an [`Hll`](super::Hll), validated, with the thresholds derived from them.
///
/// The derived fields are kept because `add_raw` consults them on every call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HllParams {
    log2m: u8,
    regwidth: u8,
    explicit: ExplicitThreshold,
    sparse: bool,
    /// `Some` when the sparse→full threshold was fixed by the user (postgresql-hll's
    /// `hll_set_max_sparse`); `None` for java-hll's rule.
    max_sparse: Option<u32>,
    // Derived, not independent: see `derive`.
    explicit_threshold: u32,
    sparse_threshold: u32,
    pw_max_mask: u64,
}

impl HllParams {
    /// Parameters with java-hll's defaults for the rest: explicit threshold auto, sparse on.
    ///
    /// `log2m` must be in 4..=30 and `regwidth` in 1..=8, as in java-hll.
    pub fn new(log2m: u8, regwidth: u8) -> Result<Self, Error> {
        if !(MIN_LOG2M..=MAX_LOG2M).contains(&log2m) {
            return Err(Error::InvalidHllParams(format!(
                "log2m {log2m} is outside {MIN_LOG2M}..={MAX_LOG2M}"
            )));
        }
        if !(MIN_REGWIDTH..=MAX_REGWIDTH).contains(&regwidth) {
            return Err(Error::InvalidHllParams(format!(
                "regwidth {regwidth} is outside {MIN_REGWIDTH}..={MAX_REGWIDTH}"
            )));
        }
        Ok(Self::derive(
            log2m,
            regwidth,
            ExplicitThreshold::Auto,
            true,
            None,
        ))
    }

    /// Janssen's setting: `HLL(log2m = 15, regwidth = 5)`, explicit auto, sparse on.
    pub fn janssen() -> Self {
        Self::derive(15, 5, ExplicitThreshold::Auto, true, None)
    }

    /// The same parameters with another explicit threshold.
    pub fn with_explicit(self, explicit: ExplicitThreshold) -> Result<Self, Error> {
        if let ExplicitThreshold::Values(n) = explicit
            && (!n.is_power_of_two() || n > MAX_EXPLICIT_THRESHOLD)
        {
            return Err(Error::InvalidHllParams(format!(
                "explicit threshold {n} is not a power of two from 1 to {MAX_EXPLICIT_THRESHOLD}"
            )));
        }
        Ok(Self::derive(
            self.log2m,
            self.regwidth,
            explicit,
            self.sparse,
            self.max_sparse,
        ))
    }

    /// The same parameters with the SPARSE representation on or off.
    pub fn with_sparse(self, sparse: bool) -> Self {
        Self::derive(
            self.log2m,
            self.regwidth,
            self.explicit,
            sparse,
            self.max_sparse,
        )
    }

    /// The same parameters with the sparse→full threshold fixed to `max_sparse` registers
    /// (`Some`, like postgresql-hll's `hll_set_max_sparse`) or computed as java-hll does (`None`).
    ///
    /// The threshold is not part of the serialized form, so readers must be told it again.
    pub fn with_max_sparse(self, max_sparse: Option<u32>) -> Self {
        Self::derive(
            self.log2m,
            self.regwidth,
            self.explicit,
            self.sparse,
            max_sparse,
        )
    }

    fn derive(
        log2m: u8,
        regwidth: u8,
        explicit: ExplicitThreshold,
        sparse: bool,
        max_sparse: Option<u32>,
    ) -> Self {
        let m = 1u64 << log2m;
        let explicit_threshold = match explicit {
            ExplicitThreshold::Off => 0,
            ExplicitThreshold::Values(n) => n,
            // java-hll: ((regwidth * m + 7) / 8) / 8 longs, capped.
            ExplicitThreshold::Auto => {
                let full_bytes = (u64::from(regwidth) * m).div_ceil(8);
                (full_bytes / 8).min(u64::from(MAX_EXPLICIT_THRESHOLD)) as u32
            }
        };
        let sparse_threshold = match (sparse, max_sparse) {
            (false, _) => 0,
            (true, Some(fixed)) => fixed,
            (true, None) => java_sparse_threshold(log2m, regwidth),
        };
        // java-hll: ~((1L << (maxRegisterValue - 1)) - 1), where Java masks the shift to 6 bits.
        let max_register = (1u32 << regwidth) - 1;
        let shift = (max_register - 1) & 63;
        let pw_max_mask = !((1u64 << shift) - 1);
        Self {
            log2m,
            regwidth,
            explicit,
            sparse,
            max_sparse,
            explicit_threshold,
            sparse_threshold,
            pw_max_mask,
        }
    }

    /// log2 of the number of registers.
    pub fn log2m(&self) -> u8 {
        self.log2m
    }
    /// Bits per register.
    pub fn regwidth(&self) -> u8 {
        self.regwidth
    }
    /// Number of registers, `2^log2m`.
    pub fn m(&self) -> usize {
        1usize << self.log2m
    }
    /// The explicit threshold setting.
    pub fn explicit(&self) -> ExplicitThreshold {
        self.explicit
    }
    /// Whether the SPARSE representation is used.
    pub fn sparse(&self) -> bool {
        self.sparse
    }
    /// The fixed sparse→full threshold, if one was set.
    pub fn max_sparse(&self) -> Option<u32> {
        self.max_sparse
    }
    /// EXPLICIT is promoted when it holds more distinct values than this (0 = no EXPLICIT).
    pub fn explicit_threshold(&self) -> u32 {
        self.explicit_threshold
    }
    /// SPARSE is promoted when it has more non-zero registers than this (0 when sparse is off).
    pub fn sparse_threshold(&self) -> u32 {
        self.sparse_threshold
    }
    /// Largest value a register can hold, `2^regwidth - 1`.
    pub fn max_register(&self) -> u8 {
        ((1u16 << self.regwidth) - 1) as u8
    }
    /// The register index `j` and the value `p(w)` java-hll derives from a raw value:
    /// `j` = the low `log2m` bits; `p` = 1 + the trailing zeros of the rest, capped, or 0 when
    /// the rest is 0.
    #[inline]
    pub fn index_and_rank(&self, raw: i64) -> (usize, u8) {
        let raw = raw as u64;
        let j = (raw & ((1u64 << self.log2m) - 1)) as usize;
        let w = raw >> self.log2m;
        let p = if w == 0 {
            // java-hll: p(0) is not defined by the paper; 0 leaves the register unchanged.
            0
        } else {
            1 + (w | self.pw_max_mask).trailing_zeros() as u8
        };
        (j, p)
    }
    /// Bits of one SPARSE word: register index and value.
    pub(crate) fn short_word_bits(&self) -> u32 {
        u32::from(self.log2m) + u32::from(self.regwidth)
    }
    /// Bytes of the FULL body: `ceil(m * regwidth / 8)`.
    pub(crate) fn full_body_len(&self) -> usize {
        (self.m() * usize::from(self.regwidth)).div_ceil(8)
    }
}

/// java-hll's sparse threshold, `2^floor(log2((m * regwidth) / (log2m + regwidth)))`.
///
/// java-hll computes the product in a 32-bit `int`; for the large parameter sets where it
/// overflows to zero or a negative number, Java's `(int)` cast of the logarithm and its
/// masked shift give a threshold of 1. This reproduces that, so that authstat promotes
/// exactly when java-hll does.
fn java_sparse_threshold(log2m: u8, regwidth: u8) -> u32 {
    let m = 1i32.wrapping_shl(u32::from(log2m));
    let product = m.wrapping_mul(i32::from(regwidth));
    let quotient = product / (i32::from(log2m) + i32::from(regwidth));
    if quotient <= 0 {
        1
    } else {
        // Checked on this machine against Java's (int)(Math.log(x) / Math.log(2)) for every
        // quotient java-hll can produce: the floating form equals the integer log2.
        1 << quotient.ilog2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn janssen_thresholds_match_java_hll() {
        let p = HllParams::janssen();
        assert_eq!(p.explicit_threshold(), 2560);
        assert_eq!(p.sparse_threshold(), 8192);
        assert_eq!(p.full_body_len(), 20480);
        assert_eq!(p.max_register(), 31);
    }

    #[test]
    fn sparse_threshold_reproduces_java_int_overflow() {
        // Values printed by Java 17 for the overflowing parameter sets (see the function docs).
        assert_eq!(java_sparse_threshold(30, 8), 1);
        assert_eq!(java_sparse_threshold(30, 2), 1);
        assert_eq!(java_sparse_threshold(29, 4), 1);
        assert_eq!(java_sparse_threshold(28, 8), 1);
        // 5 * 2^30 wraps to 2^30; 2^30 / 35 = 30678337; log2 = 24.
        assert_eq!(java_sparse_threshold(30, 5), 1 << 24);
        // js-hll test data: log2m 9, regwidth 5: 2560 / 14 = 182 -> 128.
        assert_eq!(java_sparse_threshold(9, 5), 128);
    }

    #[test]
    fn explicit_auto_is_capped() {
        let p = HllParams::new(30, 8).unwrap();
        assert_eq!(p.explicit_threshold(), MAX_EXPLICIT_THRESHOLD);
        let p = HllParams::new(4, 1).unwrap();
        // (16 + 7) / 8 = 2 bytes, 2 / 8 = 0 longs: EXPLICIT is effectively off.
        assert_eq!(p.explicit_threshold(), 0);
    }

    #[test]
    fn pw_max_mask_follows_java_shift_semantics() {
        assert_eq!(HllParams::new(10, 1).unwrap().pw_max_mask, !0);
        assert_eq!(
            HllParams::new(10, 5).unwrap().pw_max_mask,
            !((1u64 << 30) - 1)
        );
        // 2^8 - 2 = 254, masked to 62 by Java's shift.
        assert_eq!(
            HllParams::new(10, 8).unwrap().pw_max_mask,
            !((1u64 << 62) - 1)
        );
    }

    #[test]
    fn rejects_what_java_hll_rejects() {
        assert!(HllParams::new(3, 5).is_err());
        assert!(HllParams::new(31, 5).is_err());
        assert!(HllParams::new(10, 0).is_err());
        assert!(HllParams::new(10, 9).is_err());
        let p = HllParams::janssen();
        assert!(p.with_explicit(ExplicitThreshold::Values(3)).is_err());
        assert!(p.with_explicit(ExplicitThreshold::Values(1 << 18)).is_err());
        assert!(p.with_explicit(ExplicitThreshold::Values(1 << 17)).is_ok());
    }

    #[test]
    fn cutoff_round_trips() {
        for c in [0u8, 1, 7, 18, 63] {
            assert_eq!(ExplicitThreshold::from_cutoff(c).unwrap().cutoff(), c);
        }
        for c in [19u8, 40, 62] {
            assert!(ExplicitThreshold::from_cutoff(c).is_err());
        }
    }
}
