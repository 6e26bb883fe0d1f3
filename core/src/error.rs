//! The one error type of authstat-core.

/// Everything that can go wrong in authstat-core. Messages are lowercase and name the
/// offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A month that is not a valid `yyyyMM`.
    #[error("invalid month '{value}': {reason}")]
    InvalidMonth {
        /// The text (or number) that was rejected.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An inclusive month range whose start is after its end.
    #[error("invalid month range: start {start} is after end {end}")]
    InvalidMonthRange {
        /// The first month asked for.
        start: String,
        /// The last month asked for.
        end: String,
    },
    /// Stats of two different months were to be merged.
    #[error("cannot merge stats of month {right} into month {left}")]
    MonthMismatch {
        /// The receiving month.
        left: String,
        /// The other month.
        right: String,
    },
    /// HLL parameters java-hll would not accept.
    #[error("invalid hll parameters: {0}")]
    InvalidHllParams(String),
    /// Bytes (or Base64) that are not a valid serialized HLL.
    #[error("invalid hll bytes: {0}")]
    InvalidHll(String),
    /// A union of HLLs with different `log2m` or `regwidth`.
    #[error(
        "cannot union hlls with different parameters: log2m {} regwidth {} vs log2m {} regwidth {}",
        left.0, left.1, right.0, right.1
    )]
    HllMismatch {
        /// `(log2m, regwidth)` of the receiver.
        left: (u8, u8),
        /// `(log2m, regwidth)` of the argument.
        right: (u8, u8),
    },
    /// An UNDEFINED HLL cannot be serialized.
    #[error("an undefined hll cannot be serialized")]
    UndefinedHll,
    /// An unknown name of a hash algorithm.
    #[error("unknown hash algorithm '{0}' (expected murmur3 or java_string_hashcode)")]
    UnknownHash(String),
    /// A stored dimension (`c:<client id>`, `r:<realm>`, `c`, `r`) that does not read back.
    #[error("invalid stored dimension {0:?}")]
    InvalidDim(String),
    /// A counter key whose stored form cannot be read back.
    #[error("invalid counter key {kind}/{first}/{second}: {reason}")]
    InvalidCounterKey {
        /// The stored kind.
        kind: String,
        /// The stored first key part.
        first: String,
        /// The stored second key part.
        second: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A node id that is empty, too long, or has characters other than `[A-Za-z0-9._:-]`.
    #[error("invalid node id '{0}': use 1 to 128 characters from A-Z a-z 0-9 . _ : -")]
    InvalidNodeId(String),
    /// A node id starting with `authstat:`, which is reserved for authstat's own rows.
    #[error(
        "node id '{0}' is reserved: ids starting with 'authstat:' name rows authstat writes itself"
    )]
    ReservedNodeId(String),
}
