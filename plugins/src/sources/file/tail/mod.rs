//! The file tailer: follows the files of one source through rotation, copies, truncation and
//! restarts, and hands out every complete record exactly once.
//!
//! # Streams, not files
//! What is counted is a **stream** of records, identified by its content: a hash of its first
//! [`HEAD_BYTES`] bytes (see `head.rs`). A stream has one position (the bytes consumed) and is
//! carried by zero, one or more files at a time:
//!
//! - **rename rotation** (log4j: `jans-auth_audit.log` → `jans-auth_audit-2024-02-01-1.log`):
//!   the renamed file is the same open handle; the new file at the old path starts a new stream.
//! - **copytruncate** (logrotate): the copy starts with the same bytes, so it carries the same
//!   stream — one position for both, never read twice. The copy may be seen half-written or
//!   shorter than the position: it is simply a carrier with nothing to read yet. Once the
//!   original is truncated (its size shrinks, or its first bytes change) it leaves the stream
//!   and starts a new one from its start.
//! - **a lagging reader**: whichever carrier is longest is read, from the stream's position;
//!   bytes that are in both the original and the copy are read once.
//! - **deletion or a rename out of the configured paths**: the open handle is read to its end
//!   and then let go; the stream is kept as an *orphan* (its position stored), so a copy that
//!   turns up later continues where it stood, also after a restart. Orphans are forgotten
//!   [`ORPHAN_DAYS`] days after their last file went away (and beyond [`MAX_ORPHANS`], the
//!   oldest first); a copy of such an old file put back later is read again.
//!
//! Identity comes from handles, never from paths: a path is listed, then opened, and the open
//! handle is what is identified (`fstat`) and read, so a rename between listing and opening
//! cannot pair a file with another file's identity.
//!
//! # What cannot be recovered
//! Records written to the original between logrotate's copy and its truncate are in neither
//! file once the truncate has happened; they are counted only if they were read before it.
//! Two different files whose first 256 bytes are equal are taken for one stream (a log that
//! starts with a fixed banner longer than that cannot be followed).
//!
//! This type does no waiting: [`Tailer::scan`] looks at the file system, [`Tailer::read`] reads
//! what is there. The agent calls them when `notify` reports a change and on a timer.

mod glob;
mod head;
mod index;
mod position;
mod read;
mod reader;
mod scan;
mod source;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use std::time::Duration;

use authstat_core::ingest::Parser;
pub use authstat_core::source::Settled;
use authstat_core::source::SourceProblem;
use authstat_core::store::SourcePosition;

pub use glob::PathPattern;
pub use head::HEAD_BYTES;
pub use position::PositionError;

use head::Prints;
use index::{StreamId, StreamIndex};
use position::StreamPosition;
use reader::ReadState;

/// For how many days a stream without a file is remembered (and stored).
pub(crate) const ORPHAN_DAYS: u64 = 30;
/// How many streams without a file are remembered at most, newest first.
pub(crate) const MAX_ORPHANS: usize = 10_000;
const READ_CHUNK: usize = 256 * 1024;
/// What a thread of a parallel read reads of a stream before it takes the next: small, so that
/// no thread waits long for another at the end of a read.
const READ_SLICE: usize = READ_CHUNK;
/// Scans a file must stay unnamed by the configured paths (renamed away, deleted) before it is
/// let go once read to its end: a writer may still append to a file it has just renamed.
const DETACHED_SCANS: u32 = 2;

/// A configured path that cannot be read: reported, never fatal.
#[derive(Debug)]
pub struct SourceError {
    /// The file or directory.
    pub path: PathBuf,
    /// What the operating system said.
    pub error: io::Error,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

impl From<SourceError> for SourceProblem {
    fn from(e: SourceError) -> Self {
        SourceProblem {
            place: e.path.display().to_string(),
            reason: io_reason(&e.error),
            message: e.error.to_string(),
        }
    }
}

/// A metric label for an I/O error.
pub(crate) fn io_reason(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission_denied",
        io::ErrorKind::NotFound => "not_found",
        io::ErrorKind::IsADirectory => "is_a_directory",
        _ => "io_error",
    }
}

/// Whether a stream may be read: new streams of a tailer with claims wait for theirs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claim {
    Confirmed,
    Pending,
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileKey {
    device: u64,
    inode: u64,
}

/// An open file named by a configured path (or that was, until recently).
#[derive(Debug)]
struct Physical {
    file: File,
    path: PathBuf,
    /// The stream it carries; `None` while it is empty or too short to tell.
    stream: Option<StreamId>,
    /// The size at the last check; a smaller size means the file was truncated.
    max_len: u64,
    /// Size and modification time at the last check (a change means: check again).
    checked: Option<(u64, i128)>,
    /// Scans in a row that did not find it under a configured path.
    detached: u32,
}

#[derive(Debug)]
struct Stream {
    prints: Prints,
    /// The path of the file read last (informational).
    path: String,
    carriers: Vec<FileKey>,
    reader: Option<FileKey>,
    state: ReadState,
    /// Since when no file carries it (seconds since the Unix epoch).
    orphaned_at: Option<u64>,
    claim: Claim,
}

/// The tailer of one source.
#[derive(Debug)]
pub struct Tailer {
    source: String,
    poll_interval: Duration,
    patterns: Vec<PathPattern>,
    parser: Box<dyn Parser>,
    max_record_bytes: usize,
    start_at_end: bool,
    /// New streams wait for a claim before they are read.
    claims: bool,
    /// Orphans are forgotten (after [`ORPHAN_DAYS`]); a finite source remembers everything.
    forget_orphans: bool,
    /// Positions were loaded: `start_at_end` does not apply.
    resumed: bool,
    first_scan: bool,
    files: HashMap<FileKey, Physical>,
    streams: HashMap<StreamId, Stream>,
    index: StreamIndex,
    next_id: StreamId,
    /// Keys of streams whose prints grew since they were claimed (claimed too, not waited for).
    regrown: Vec<String>,
    /// One read buffer for all files.
    chunk: Vec<u8>,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn mtime(meta: &std::fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

impl Tailer {
    /// A tailer of `patterns` for the source `source`, resuming from `positions` (those of
    /// other sources are ignored). Fails when a stored position of this source cannot be read
    /// back: guessing would count a file twice or not at all.
    pub fn new(
        source: impl Into<String>,
        patterns: Vec<PathPattern>,
        parser: Box<dyn Parser>,
        max_record_bytes: usize,
        start_at_end: bool,
        positions: &[SourcePosition],
    ) -> Result<Self, PositionError> {
        let source = source.into();
        let mut tailer = Self {
            source,
            poll_interval: Duration::from_secs(1),
            patterns,
            parser,
            max_record_bytes: max_record_bytes.max(1),
            start_at_end,
            claims: false,
            forget_orphans: true,
            resumed: false,
            first_scan: true,
            files: HashMap::new(),
            streams: HashMap::new(),
            index: StreamIndex::default(),
            next_id: 0,
            regrown: Vec::new(),
            chunk: vec![0; READ_CHUNK],
        };
        let source = tailer.source.clone();
        for p in positions.iter().filter(|p| p.source == source) {
            let stored = StreamPosition::decode(p)?;
            tailer.resumed = true;
            let known = tailer
                .streams
                .iter_mut()
                .find(|(_, s)| s.prints == stored.prints);
            match known {
                // Two stored positions of one content (files checkpointed separately before
                // streams existed): the furthest one holds.
                Some((_, s)) => s.state = ReadState::at(s.state.offset.max(stored.offset)),
                None => {
                    tailer.add_stream(stored.prints, stored.offset, Claim::Confirmed);
                    let s = tailer
                        .streams
                        .get_mut(&(tailer.next_id - 1))
                        .expect("added");
                    s.path = stored.path;
                    s.orphaned_at = stored.orphaned_at;
                }
            }
        }
        Ok(tailer)
    }

    /// New streams wait for a claim ([`Tailer::unclaimed`], [`Tailer::settle`]) before they are
    /// read.
    pub fn with_claims(mut self) -> Self {
        self.claims = true;
        self
    }

    /// Scans without a wake-up every `interval` (default one second).
    pub(crate) fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Streams without a file are never forgotten (a finite source such as `backfill`, whose
    /// every file must stay known so that running it again adds nothing).
    pub fn remembering_everything(mut self) -> Self {
        self.forget_orphans = false;
        self
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The directories to watch for changes.
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .patterns
            .iter()
            .map(|p| p.dir().to_path_buf())
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// How many files are open.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// The paths of the open files, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.files.values().map(|p| p.path.clone()).collect();
        paths.sort();
        paths
    }

    /// The position of every stream (also those no file carries now), to store with a flush.
    pub fn positions(&self) -> Vec<SourcePosition> {
        let mut out: Vec<SourcePosition> = self
            .streams
            .values()
            .filter(|s| s.claim == Claim::Confirmed)
            .map(|s| {
                StreamPosition {
                    prints: s.prints.clone(),
                    offset: s.state.offset,
                    path: s.path.clone(),
                    orphaned_at: s.orphaned_at,
                }
                .encode(&self.source)
            })
            .collect();
        out.sort();
        out.dedup_by(|a, b| a.key == b.key);
        out
    }

    /// Bytes written but not consumed yet, over all streams.
    pub fn lag_bytes(&self) -> u64 {
        self.streams
            .values()
            .filter_map(|s| {
                let len = s.carriers.iter().map(|k| self.files[k].max_len).max()?;
                Some(len.saturating_sub(s.state.offset))
            })
            .sum()
    }

    /// Keys of new streams waiting for their claim.
    pub fn unclaimed(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .streams
            .values()
            .filter(|s| s.claim == Claim::Pending)
            .map(|s| s.prints.key())
            .collect();
        keys.sort();
        keys
    }

    /// Keys of streams whose identity grew longer since they were claimed; claim them too.
    pub fn take_regrown(&mut self) -> Vec<String> {
        std::mem::take(&mut self.regrown)
    }

    /// Applies the decision about the pending claim of `key`; the paths of the files that
    /// carry it.
    pub fn settle(&mut self, key: &str, decision: Settled) -> Vec<PathBuf> {
        let Some(s) = self
            .streams
            .values_mut()
            .find(|s| s.claim == Claim::Pending && s.prints.key() == key)
        else {
            return Vec::new();
        };
        match decision {
            Settled::Read => s.claim = Claim::Confirmed,
            Settled::ContinueFrom(position) => {
                s.claim = Claim::Confirmed;
                // A position this tailer cannot read is no position: from the start, as a
                // claim of nobody's.
                s.state = ReadState::at(source::position_offset(&position).unwrap_or(0));
            }
            Settled::Wait => {}
            Settled::Refuse => s.claim = Claim::Refused,
        }
        s.carriers
            .iter()
            .map(|k| self.files[k].path.clone())
            .collect()
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
