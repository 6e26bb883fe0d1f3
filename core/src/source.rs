//! The source seam: where records come from ([`Source`]).
//!
//! A source delivers records (parsed by its [`Parser`](crate::ingest::Parser), the format) and
//! owns an **opaque position**: what it has handed out, as [`SourcePosition`]s the store keeps
//! with the statistics those records produced, in the same atomic flush. After a flush is
//! durable the pipeline hands the committed positions back ([`Source::acknowledge`]): a file
//! source has nothing to do then, a queue source acknowledges exactly the messages that are
//! stored. After a restart a source is built from its stored positions and resumes there.
//!
//! The pipeline calls a source from one thread; methods may block on I/O briefly (reading a
//! file, receiving from a socket) but must not wait for input: [`Source::read`] returns what
//! is there now.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::event::Event;
use crate::ingest::{ParseError, ParseErrorKind};
use crate::store::SourcePosition;

/// Where a record came from, for logs: a file and an offset, a queue and a message number.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    /// The file, queue or table.
    pub place: &'a dyn fmt::Display,
    /// The offset (or sequence number) of the record in it.
    pub offset: u64,
}

impl fmt::Debug for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.place, self.offset)
    }
}

/// What reading produced.
#[derive(Debug)]
pub enum SourceEvent<'a> {
    /// A complete record, parsed (or not).
    Record {
        /// The event, or why the record could not be parsed.
        parsed: Result<Event<'a>, ParseError>,
        /// Where it came from.
        origin: Origin<'a>,
    },
    /// An upstream's running totals for one foreign node (a row of Janssen's own statistics),
    /// to store as they are, replacing what was stored before
    /// ([`crate::store::StatStore::put_snapshot`]).
    Snapshot(crate::store::Snapshot),
    /// Input that belongs to no record (garbage, a cut-off record, one over the size limit).
    Skipped {
        /// Why.
        kind: ParseErrorKind,
        /// Where.
        origin: Origin<'a>,
    },
}

/// Something a source cannot read (a directory without permission, a broker that refuses the
/// login): reported on `/readyz` and counted, never fatal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceProblem {
    /// The file, directory or endpoint.
    pub place: String,
    /// A short label for metrics (`permission_denied`, `not_found`, `io_error`, …).
    pub reason: &'static str,
    /// What the system said.
    pub message: String,
}

impl fmt::Display for SourceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// What the owner of a claimed key decided (see [`crate::store::StatStore::claim_keys`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The input is ours: read it from its start.
    Read,
    /// Taken over from another reader (a finished backfill, a renamed source): continue where
    /// its stored position says. The position is opaque to all but the source kind that wrote
    /// it, which decodes it here.
    ContinueFrom(crate::store::SourcePosition),
    /// Another reader has it now: ask again later.
    Wait,
    /// Never read it here.
    Refuse,
}

/// A source's gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStatus {
    /// Inputs open now (files, connections).
    pub open: u64,
    /// Input written but not read yet (bytes, messages).
    pub lag: u64,
}

/// Where records come from. Built by a registered source kind from its configuration and
/// stored positions; driven by the pipeline (see the module docs).
pub trait Source: Send + fmt::Debug {
    /// The configured source's name (it keys the stored positions).
    fn name(&self) -> &str;

    /// How often [`poll`](Source::poll) runs without a wake-up.
    fn poll_interval(&self) -> Duration;

    /// Directories whose changes should wake the pipeline (file sources).
    fn watch_dirs(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// What it reads now (files, a queue), for `check-config` and the startup log.
    fn inputs(&self) -> Vec<String> {
        Vec::new()
    }

    /// Looks for new input (files that appeared, a connection to re-establish). Returns what
    /// cannot be read; an empty list means the source is fine.
    fn poll(&mut self) -> Vec<SourceProblem>;

    /// Reads what is there now, about `budget` bytes at most, handing every record to
    /// `on_event`. Returns the bytes read (0: nothing more now) and what could not be read.
    fn read(
        &mut self,
        budget: usize,
        on_event: &mut dyn FnMut(SourceEvent<'_>),
    ) -> (usize, Vec<SourceProblem>);

    /// Like [`read`](Source::read), but independent inputs may be read on several threads at
    /// once (one thread per sink at most): each input is read in order by one thread at a
    /// time, and each record goes to the sink of the thread that read it. For work that is
    /// finite and order-free across inputs (a backfill). The default reads on the caller's
    /// thread into the first sink.
    fn read_parallel(
        &mut self,
        budget: usize,
        sinks: &mut [&mut (dyn FnMut(SourceEvent<'_>) + Send)],
    ) -> (usize, Vec<SourceProblem>) {
        match sinks.first_mut() {
            Some(first) => self.read(budget, *first),
            None => (0, Vec::new()),
        }
    }

    /// Where the source stands: everything handed out so far, to store with the next flush.
    fn positions(&self) -> Vec<SourcePosition>;

    /// A flush that holds `durable` (this source's positions) is stored. A queue source
    /// acknowledges its messages here; the default does nothing.
    fn acknowledge(&mut self, durable: &[SourcePosition]) {
        let _ = durable;
    }

    /// Keys of new input that must be claimed cluster-wide before it is read.
    fn unclaimed(&self) -> Vec<String> {
        Vec::new()
    }

    /// Keys to claim as well, without waiting for the answer (an identity that grew).
    fn take_regrown(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// Applies the decision about a pending claim; describes the input it concerns.
    fn settle(&mut self, key: &str, decision: Settled) -> Vec<String> {
        let _ = (key, decision);
        Vec::new()
    }

    /// Its gauges.
    fn status(&self) -> SourceStatus;

    /// At a clean stop, after the final flush was acknowledged: waits a little (a bounded
    /// time) for what confirms those acknowledgements, so that the positions stored last keep
    /// nothing that is settled. True if the positions changed (the pipeline stores them once
    /// more). Sources that acknowledge nothing keep the default: nothing to wait for.
    fn await_receipts(&mut self) -> bool {
        false
    }
}
