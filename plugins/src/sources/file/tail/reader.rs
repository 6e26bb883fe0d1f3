//! Reading one stream: bytes from the file that carries it, framed into complete records.
//!
//! The position (`offset`) only ever moves past whole records (or skipped bytes), so a restart
//! never resumes inside one. A record larger than the limit is skipped; while it is being
//! skipped the position stays at its start.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use authstat_core::ingest::{Frame, ParseErrorKind, Parser};
use authstat_core::source::{Origin, SourceEvent};

/// Skipping a record over the size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// A single line without its newline yet.
    Line,
    /// A multi-line record without its end yet.
    Record,
}

/// Where the reading of a stream stands.
#[derive(Debug, Default)]
pub(crate) struct ReadState {
    /// Consumed: the position. Always at a record boundary.
    pub offset: u64,
    /// Bytes read after `offset` (not in skip mode).
    pub buf: Vec<u8>,
    /// Where the next read starts.
    pub read_pos: u64,
    pub skip: Option<Skip>,
}

impl ReadState {
    pub fn at(offset: u64) -> Self {
        Self {
            offset,
            buf: Vec::new(),
            read_pos: offset,
            skip: None,
        }
    }

    /// Forgets what was read past the position (the next read starts there again).
    pub(crate) fn rewind(&mut self) {
        self.buf.clear();
        self.read_pos = self.offset;
        self.skip = None;
    }
}

/// The parts of a tailer that reading needs.
pub(crate) struct Framing<'a> {
    pub parser: &'a dyn Parser,
    pub max: usize,
}

impl Framing<'_> {
    /// Reads up to `budget` bytes of `file` after `state.read_pos`, handing out every complete
    /// record. Returns the bytes read.
    pub fn read(
        &self,
        state: &mut ReadState,
        file: &File,
        path: &Path,
        chunk: &mut [u8],
        budget: usize,
        on_event: &mut dyn FnMut(SourceEvent<'_>),
    ) -> io::Result<usize> {
        let mut total = 0;
        while total < budget {
            let want = chunk.len().min(budget - total).max(1);
            let n = match file.read_at(&mut chunk[..want], state.read_pos) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            total += n;
            state.read_pos += n as u64;
            let data = &chunk[..n];
            match state.skip {
                Some(skip) => {
                    // The oversized record's end: a newline, or the parser's end of record.
                    let end = match skip {
                        Skip::Line => memchr::memchr(b'\n', data).map(|i| i + 1),
                        Skip::Record => self.parser.oversized_record_end(data),
                    };
                    match end {
                        None => continue,
                        Some(end) => {
                            state.skip = None;
                            state.offset = state.read_pos - (n - end) as u64;
                            state.buf.clear();
                            state.buf.extend_from_slice(&data[end..]);
                        }
                    }
                }
                None => state.buf.extend_from_slice(data),
            }
            self.consume(state, path, on_event);
        }
        Ok(total)
    }

    /// Frames and hands out every complete record in the buffer.
    fn consume(
        &self,
        state: &mut ReadState,
        path: &Path,
        on_event: &mut dyn FnMut(SourceEvent<'_>),
    ) {
        let mut at = 0;
        loop {
            let rest = &state.buf[at..];
            match self.parser.frame(rest) {
                Frame::Record { len } => {
                    let parsed = self.parser.parse(&rest[..len]);
                    on_event(SourceEvent::Record {
                        parsed,
                        origin: Origin {
                            place: &path.display(),
                            offset: state.offset,
                        },
                    });
                    at += len;
                    state.offset += len as u64;
                }
                Frame::Skip { len, kind } => {
                    on_event(SourceEvent::Skipped {
                        kind,
                        origin: Origin {
                            place: &path.display(),
                            offset: state.offset,
                        },
                    });
                    at += len;
                    state.offset += len as u64;
                }
                Frame::Blank { len } => {
                    at += len;
                    state.offset += len as u64;
                }
                Frame::Incomplete => {
                    if rest.len() > self.max {
                        on_event(SourceEvent::Skipped {
                            kind: ParseErrorKind::TooLarge,
                            origin: Origin {
                                place: &path.display(),
                                offset: state.offset,
                            },
                        });
                        // Look for the end in what we have after the record's first line.
                        let (skip, search_from) = match memchr::memchr(b'\n', rest) {
                            None => (Skip::Line, rest.len()),
                            Some(nl) => (Skip::Record, nl + 1),
                        };
                        let end = match skip {
                            Skip::Line => None,
                            Skip::Record => self
                                .parser
                                .oversized_record_end(&rest[search_from..])
                                .map(|e| e + search_from),
                        };
                        match end {
                            Some(end) => {
                                at += end;
                                state.offset += end as u64;
                                continue;
                            }
                            None => {
                                // Skip mode: drop the buffer; the position stays at the record.
                                state.skip = Some(skip);
                                state.buf.clear();
                                return;
                            }
                        }
                    }
                    break;
                }
            }
        }
        state.buf.drain(..at);
    }
}
