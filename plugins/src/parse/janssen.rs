//! `format: janssen_audit`: Janssen's `jans-auth_audit.log`.
//!
//! log4j writes each record as a header line ending in ` - {` followed by pretty-printed JSON
//! closed by a line that is exactly `}`:
//!
//! ```text
//! 2024-02-01 00:00:03,611 INFO  [02-42-AC-11-00-02] [worker-3]  [io.jans.as.server.audit.ApplicationAuditLogger] (ApplicationAuditLogger.java:112) - {
//!   "ip" : "10.0.0.5",
//!   "action" : "USER_AUTHORIZATION",
//!   ...
//! }
//! ```
//!
//! Also accepted: the compact form, one JSON object per line, with or without the header. JSON
//! strings cannot hold raw line breaks, so no line inside a body can end in ` - {`: such a line
//! marks the start of the next record, and the previous one was cut off (counted as
//! `header_without_body`).
//!
//! Bytes glued to the front of a header (a crash left a partial line, a disk returned garbage)
//! are split off and counted as `garbage`: the header starts at its timestamp
//! (`yyyy-MM-dd HH:mm`), or, for a layout without one, after the last byte that cannot be text.

use authstat_core::event::{AuditAction, AuditEvent, Event};
use authstat_core::ingest::{Frame, ParseError, ParseErrorKind, Parser};
use memchr::memmem;

use super::{MAX_KEY_LEN, error, first_line, is_blank, json_error, require_month, require_utf8};

/// The Janssen audit-log format.
#[derive(Debug, Clone, Copy, Default)]
pub struct JanssenAuditParser;

const HEADER_END: &[u8] = b" - {";

/// A searcher for [`HEADER_END`], built once.
fn header_finder() -> &'static memmem::Finder<'static> {
    static FINDER: std::sync::OnceLock<memmem::Finder<'static>> = std::sync::OnceLock::new();
    FINDER.get_or_init(|| memmem::Finder::new(HEADER_END))
}

/// How a pretty-printed body that starts at a line start ends.
enum BodyEnd {
    /// The closing `}` line ends here (terminator included).
    Closed(usize),
    /// A new record's header starts here before any closing line: the body was cut off.
    CutOff(usize),
    /// Neither yet: wait for more bytes.
    Open,
}

fn scan_body(buf: &[u8], from: usize) -> BodyEnd {
    let mut start = from;
    while let Some(nl) = memchr::memchr(b'\n', &buf[start..]) {
        let line = &buf[start..start + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"}" {
            return BodyEnd::Closed(start + nl + 1);
        }
        if line.ends_with(HEADER_END) {
            // The cut record ends where the next header starts (its line may hold the rest).
            return BodyEnd::CutOff(start + header_start(line));
        }
        start += nl + 1;
    }
    BodyEnd::Open
}

/// Whether `b` starts with `dddd-dd-dd?dd:dd` (a log4j timestamp).
fn is_timestamp(b: &[u8]) -> bool {
    const SHAPE: &[u8] = b"dddd-dd-dd?dd:dd";
    b.len() >= SHAPE.len()
        && SHAPE.iter().zip(b).all(|(&s, &c)| match s {
            b'd' => c.is_ascii_digit(),
            b'?' => c == b' ' || c == b'T',
            s => s == c,
        })
}

/// Where the header in a line ending in ` - {` starts: 0 for a clean header line.
fn header_start(line: &[u8]) -> usize {
    if is_timestamp(line) {
        return 0;
    }
    // The last timestamp in the line (the header's), found from its `-`s.
    let dashes = memchr::memrchr_iter(b'-', line);
    for dash in dashes {
        if let Some(start) = dash.checked_sub(4)
            && is_timestamp(&line[start..])
        {
            return start;
        }
    }
    // A layout without a timestamp: after the last byte that is not text (invalid UTF-8, or a
    // control character other than tab).
    let mut start = 0;
    let mut at = 0;
    for chunk in line.utf8_chunks() {
        for (i, c) in chunk.valid().char_indices() {
            if c.is_control() && c != '\t' {
                start = at + i + c.len_utf8();
            }
        }
        at += chunk.valid().len() + chunk.invalid().len();
        if !chunk.invalid().is_empty() {
            start = at;
        }
    }
    start
}

impl Parser for JanssenAuditParser {
    fn format(&self) -> &'static str {
        "janssen_audit"
    }

    fn frame(&self, buf: &[u8]) -> Frame {
        let Some((line, line_len)) = first_line(buf) else {
            return Frame::Incomplete;
        };
        if is_blank(line) {
            return Frame::Blank { len: line_len };
        }
        if line.ends_with(HEADER_END) {
            let start = header_start(line);
            if start > 0 {
                return if is_blank(&line[..start]) {
                    Frame::Blank { len: start }
                } else {
                    Frame::Skip {
                        len: start,
                        kind: ParseErrorKind::Garbage,
                    }
                };
            }
            return match scan_body(buf, line_len) {
                BodyEnd::Closed(end) => Frame::Record { len: end },
                BodyEnd::CutOff(next) => Frame::Skip {
                    len: next,
                    kind: ParseErrorKind::HeaderWithoutBody,
                },
                BodyEnd::Open => Frame::Incomplete,
            };
        }
        if line.ends_with(b"}")
            && (line.trim_ascii_start().starts_with(b"{") || header_finder().find(line).is_some())
        {
            return Frame::Record { len: line_len };
        }
        Frame::Skip {
            len: line_len,
            kind: ParseErrorKind::Garbage,
        }
    }

    fn parse<'a>(&self, record: &'a [u8]) -> Result<Event<'a>, ParseError> {
        // A compact record starts with its JSON; a headed one after the header's ` - `.
        let json = if record.first() == Some(&b'{') {
            record
        } else {
            match header_finder().find(record) {
                Some(at) => &record[at + 3..],
                None => record,
            }
        };
        // Validated once here; serde_json then reads it as text without validating again.
        let text = require_utf8(json)?;
        let event: AuditEvent<'_> = match super::fast::audit_event(text) {
            Some(event) => event,
            None => serde_json::from_str(text).map_err(json_error)?,
        };
        if let AuditAction::Other(name) = &event.action
            && (name.is_empty() || name.len() > MAX_KEY_LEN)
        {
            return Err(error(
                ParseErrorKind::WrongType,
                "action is empty or too long",
            ));
        }
        let event = Event::from(event);
        require_month(&event)?;
        Ok(event)
    }

    fn oversized_record_end(&self, buf: &[u8]) -> Option<usize> {
        match scan_body(buf, 0) {
            BodyEnd::Closed(end) => Some(end),
            BodyEnd::CutOff(next) => Some(next),
            BodyEnd::Open => None,
        }
    }
}
