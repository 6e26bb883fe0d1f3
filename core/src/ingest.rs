//! The ingest seams: a [`Parser`] turns raw bytes from a tailed file into [`Event`]s, and a
//! [`Deriver`] turns events into per-month updates. Implementations live in authstat-plugins.
//!
//! The split keeps the tailer format-agnostic: it owns files, offsets and checkpoints, and asks
//! the parser where a record ends ([`Parser::frame`]) so that a checkpoint never points inside
//! a record.

use std::fmt;

use crate::Error;
use crate::event::Event;
use crate::stats::UpdateSink;

/// How the bytes at the start of a buffer divide into records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete record occupies the first `len` bytes (terminator included).
    Record {
        /// Bytes to consume.
        len: usize,
    },
    /// The first `len` bytes belong to no record: skip them and count them as `kind`.
    Skip {
        /// Bytes to skip.
        len: usize,
        /// Why they are skipped.
        kind: ParseErrorKind,
    },
    /// The first `len` bytes are blank lines: skip them without counting.
    Blank {
        /// Bytes to skip.
        len: usize,
    },
    /// No complete record yet; wait for more bytes. (The tailer enforces the record size limit.)
    Incomplete,
}

/// Why a record (or stretch of bytes) was skipped. Counted per kind in the agent's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// Text that is not JSON.
    MalformedJson,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A timestamp outside the years 0000–9999.
    BadTimestamp,
    /// A record header with no JSON body after it.
    HeaderWithoutBody,
    /// Bytes between records that belong to none.
    Garbage,
    /// A record larger than the configured limit.
    TooLarge,
}

impl ParseErrorKind {
    /// Every kind, in a fixed order ([`index`](ParseErrorKind::index) is the position here).
    pub const ALL: [ParseErrorKind; 8] = [
        ParseErrorKind::InvalidUtf8,
        ParseErrorKind::MalformedJson,
        ParseErrorKind::MissingField,
        ParseErrorKind::WrongType,
        ParseErrorKind::BadTimestamp,
        ParseErrorKind::HeaderWithoutBody,
        ParseErrorKind::Garbage,
        ParseErrorKind::TooLarge,
    ];

    /// The position in [`ALL`](ParseErrorKind::ALL), for arrays of counters.
    pub fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|k| *k == self)
            .expect("every kind is in ALL")
    }

    /// A snake_case name for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ParseErrorKind::InvalidUtf8 => "invalid_utf8",
            ParseErrorKind::MalformedJson => "malformed_json",
            ParseErrorKind::MissingField => "missing_field",
            ParseErrorKind::WrongType => "wrong_type",
            ParseErrorKind::BadTimestamp => "bad_timestamp",
            ParseErrorKind::HeaderWithoutBody => "header_without_body",
            ParseErrorKind::Garbage => "garbage",
            ParseErrorKind::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record that could not be turned into an event. Never fatal: counted, logged, skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ParseError {
    /// The kind, for counting.
    pub kind: ParseErrorKind,
    /// What exactly was wrong (no secrets: records may carry user names, so keep it short).
    pub message: String,
}

/// A record format (`janssen_audit`, `token_events`, …).
///
/// Called from one tailing task at a time per file, but one parser value may serve many files
/// concurrently, so methods take `&self`. Methods are CPU-only and never block.
pub trait Parser: Send + Sync + fmt::Debug {
    /// The format's name in configuration.
    fn format(&self) -> &'static str;

    /// Where the first record in `buf` ends. `buf` always starts at a record boundary (or at
    /// bytes to skip). Must not look past what it needs and must be deterministic: the same
    /// bytes give the same answer after a restart.
    fn frame(&self, buf: &[u8]) -> Frame;

    /// Parses one complete record, exactly the bytes [`frame`](Parser::frame) delimited.
    fn parse<'a>(&self, record: &'a [u8]) -> Result<Event<'a>, ParseError>;

    /// For a record too large to buffer, which started before `buf`: how many bytes at the start
    /// of `buf` still belong to it, if its end is in `buf` (`None`: all of `buf` does).
    fn oversized_record_end(&self, buf: &[u8]) -> Option<usize>;
}

/// Turns events into updates: which users were active and which counters grow, per month
/// (the event's own month, from its timestamp).
///
/// CPU-only, never blocks; `&self` so one deriver serves all sources.
pub trait Deriver: Send + Sync + fmt::Debug {
    /// Records what `event` means in `sink`. Fails only when the event's month cannot be
    /// determined; the caller counts and skips such events.
    fn derive(&self, event: &Event<'_>, sink: &mut dyn UpdateSink) -> Result<(), Error>;
}
