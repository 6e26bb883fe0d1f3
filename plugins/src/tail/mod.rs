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
mod reader;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::time::Duration;

use authstat_core::ingest::Parser;
pub use authstat_core::source::Settled;
use authstat_core::source::{Source, SourceEvent, SourceProblem, SourceStatus};
use authstat_core::store::SourcePosition;

pub use glob::PathPattern;
pub use head::HEAD_BYTES;
pub use position::PositionError;

use head::{Prints, Relation, read_head};
use index::{StreamId, StreamIndex};
use position::StreamPosition;
use reader::{Framing, ReadState};

/// For how many days a stream without a file is remembered (and stored).
pub const ORPHAN_DAYS: u64 = 30;
/// How many streams without a file are remembered at most, newest first.
pub const MAX_ORPHANS: usize = 10_000;
const READ_CHUNK: usize = 256 * 1024;
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
pub fn io_reason(e: &io::Error) -> &'static str {
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
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
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
            Settled::ReadFrom(offset) => {
                s.claim = Claim::Confirmed;
                s.state = ReadState::at(offset);
            }
            Settled::Wait => {}
            Settled::Refuse => s.claim = Claim::Refused,
        }
        s.carriers
            .iter()
            .map(|k| self.files[k].path.clone())
            .collect()
    }

    /// Looks at the file system: new files, renamed, truncated, rewritten and vanished ones.
    /// Returns what could not be read (the rest is scanned anyway).
    pub fn scan(&mut self) -> Vec<SourceError> {
        let mut errors = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for pattern in self.patterns.clone() {
            let paths = match pattern.matches() {
                Ok(paths) => paths,
                Err(error) => {
                    errors.push(SourceError {
                        path: pattern.dir().to_path_buf(),
                        error,
                    });
                    continue;
                }
            };
            for path in paths {
                match self.find(path) {
                    Ok(Some(key)) => {
                        seen.insert(key);
                    }
                    Ok(None) => {}
                    Err(e) => errors.push(e),
                }
            }
        }
        let keys: Vec<FileKey> = self.files.keys().copied().collect();
        for key in keys {
            let p = self.files.get_mut(&key).expect("listed");
            if seen.contains(&key) {
                p.detached = 0;
            } else {
                p.detached = p.detached.saturating_add(1);
                if p.stream.is_none() && p.detached >= DETACHED_SCANS {
                    self.files.remove(&key);
                    continue;
                }
            }
            if let Err(error) = self.check(key) {
                errors.push(SourceError {
                    path: self.files[&key].path.clone(),
                    error,
                });
            }
        }
        let now = now_secs();
        for s in self.streams.values_mut() {
            if s.carriers.is_empty() && s.orphaned_at.is_none() {
                s.orphaned_at = Some(now);
            }
        }
        self.forget_old_orphans(now);
        self.first_scan = false;
        errors
    }

    /// The key of the file at `path`, opening it if it is new. `None`: not a regular file, or
    /// gone meanwhile.
    fn find(&mut self, path: PathBuf) -> Result<Option<FileKey>, SourceError> {
        let fail = |path: &Path, error| SourceError {
            path: path.to_path_buf(),
            error,
        };
        // A known file: the path names it now (a stat is enough; nothing is paired with it).
        if let Ok(meta) = std::fs::metadata(&path) {
            let key = FileKey {
                device: meta.dev(),
                inode: meta.ino(),
            };
            if let Some(p) = self.files.get_mut(&key) {
                p.path = path;
                return Ok(Some(key));
            }
        }
        // A new one: open it, then identify the handle (the path may name another file by now).
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(&path, e)),
        };
        let meta = file.metadata().map_err(|e| fail(&path, e))?;
        if !meta.is_file() {
            return Ok(None);
        }
        let key = FileKey {
            device: meta.dev(),
            inode: meta.ino(),
        };
        match self.files.get_mut(&key) {
            Some(p) => p.path = path,
            None => {
                self.files.insert(
                    key,
                    Physical {
                        file,
                        path,
                        stream: None,
                        max_len: 0,
                        checked: None,
                        detached: 0,
                    },
                );
            }
        }
        Ok(Some(key))
    }

    /// Checks a file's content if its size or modification time changed: a truncated or
    /// rewritten file leaves its stream; a file without a stream gets one if it can tell.
    fn check(&mut self, key: FileKey) -> io::Result<()> {
        let Some(p) = self.files.get_mut(&key) else {
            return Ok(());
        };
        let meta = p.file.metadata()?;
        let now = (meta.len(), mtime(&meta));
        if p.checked == Some(now) {
            return Ok(());
        }
        p.checked = Some(now);
        let truncated = now.0 < p.max_len;
        p.max_len = now.0;
        if let Some(sid) = p.stream {
            let keep = !truncated && {
                let head = read_head(&p.file)?;
                match self.streams[&sid].prints.relation(&head) {
                    Relation::Same => {
                        // The new prints are this file's: it stays; others may leave.
                        self.grow_prints(sid, &head)?;
                        true
                    }
                    Relation::Prefix => true,
                    Relation::Unknown | Relation::Different => false,
                }
            };
            if keep {
                return Ok(());
            }
            tracing::info!(
                source = %self.source,
                path = %self.files[&key].path.display(),
                "file truncated or rewritten: reading it from its start"
            );
            self.detach(key);
        }
        self.classify(key)
    }

    /// Gives a file without a stream the stream its first bytes belong to, or a new one.
    fn classify(&mut self, key: FileKey) -> io::Result<()> {
        let p = &self.files[&key];
        if p.stream.is_some() {
            return Ok(());
        }
        let head = read_head(&p.file)?;
        if head.is_empty() {
            return Ok(());
        }
        let streams = &self.streams;
        let (found, unknown) = self.index.lookup(&head, |id| streams[&id].prints.len);
        if let Some(&(sid, _)) = found.first() {
            self.attach(key, sid);
            return Ok(());
        }
        if unknown {
            // Too short to tell from a stream we know: look again when it has grown.
            return Ok(());
        }
        let offset = if self.first_scan && self.start_at_end && !self.resumed {
            p.max_len
        } else {
            0
        };
        let claim = if self.claims {
            Claim::Pending
        } else {
            Claim::Confirmed
        };
        let sid = self.add_stream(Prints::of(&head), offset, claim);
        self.attach(key, sid);
        Ok(())
    }

    fn add_stream(&mut self, prints: Prints, offset: u64, claim: Claim) -> StreamId {
        let sid = self.next_id;
        self.next_id += 1;
        self.index.insert(sid, &prints);
        self.streams.insert(
            sid,
            Stream {
                prints,
                path: String::new(),
                carriers: Vec::new(),
                reader: None,
                state: ReadState::at(offset),
                orphaned_at: None,
                claim,
            },
        );
        sid
    }

    fn attach(&mut self, key: FileKey, sid: StreamId) {
        let p = self.files.get_mut(&key).expect("attached files are open");
        p.stream = Some(sid);
        let s = self.streams.get_mut(&sid).expect("streams are known");
        s.carriers.push(key);
        s.orphaned_at = None;
        if s.path.is_empty() {
            s.path = p.path.display().to_string();
        }
    }

    fn detach(&mut self, key: FileKey) {
        let Some(sid) = self.files.get_mut(&key).and_then(|p| p.stream.take()) else {
            return;
        };
        let s = self.streams.get_mut(&sid).expect("streams are known");
        s.carriers.retain(|&k| k != key);
        if s.reader == Some(key) {
            s.reader = None;
            s.state.rewind();
        }
        if s.carriers.is_empty() {
            s.orphaned_at = Some(now_secs());
        }
    }

    /// A stream first seen shorter than [`HEAD_BYTES`] gets longer prints once a file that
    /// carries it has the bytes; carriers that differ in the new bytes leave it.
    fn grow_prints(&mut self, sid: StreamId, head: &[u8]) -> io::Result<()> {
        let s = &self.streams[&sid];
        if s.prints.len as usize >= HEAD_BYTES || head.len() <= s.prints.len as usize {
            return Ok(());
        }
        let prints = Prints::of(head);
        self.index.remove(sid, &s.prints);
        self.index.insert(sid, &prints);
        let s = self.streams.get_mut(&sid).expect("known");
        s.prints = prints;
        if s.claim == Claim::Confirmed && self.claims {
            self.regrown.push(s.prints.key());
        }
        for c in s.carriers.clone() {
            let head = read_head(&self.files[&c].file)?;
            if self.streams[&sid].prints.relation(&head) == Relation::Different {
                self.detach(c);
                self.classify(c)?;
            }
        }
        Ok(())
    }

    fn forget_old_orphans(&mut self, now: u64) {
        if !self.forget_orphans {
            return;
        }
        let mut orphans: Vec<(u64, StreamId)> = self
            .streams
            .iter()
            .filter_map(|(id, s)| Some((s.orphaned_at?, *id)))
            .filter(|(_, id)| self.streams[id].carriers.is_empty())
            .collect();
        orphans.sort_unstable_by(|a, b| b.cmp(a));
        let too_old = orphans
            .iter()
            .position(|(at, _)| at.saturating_add(ORPHAN_DAYS * 86_400) < now)
            .unwrap_or(orphans.len());
        for (_, id) in orphans.split_off(too_old.min(MAX_ORPHANS)) {
            if let Some(s) = self.streams.remove(&id) {
                self.index.remove(id, &s.prints);
            }
        }
    }

    /// Reads what the streams hold, up to about `budget` bytes, calling `on_event` for each
    /// record. Returns the bytes read (0: every stream is at its end) and the files that could
    /// not be read.
    pub fn read(
        &mut self,
        budget: usize,
        on_event: &mut dyn FnMut(SourceEvent<'_>),
    ) -> (usize, Vec<SourceError>) {
        let mut total = 0;
        let mut errors = Vec::new();
        let mut ids: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.carriers.is_empty() && s.claim == Claim::Confirmed)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        for sid in ids {
            if total >= budget {
                break;
            }
            match self.read_stream(sid, budget - total, on_event) {
                Ok(n) => total += n,
                Err(e) => errors.push(e),
            }
        }
        (total, errors)
    }

    fn read_stream(
        &mut self,
        sid: StreamId,
        budget: usize,
        on_event: &mut dyn FnMut(SourceEvent<'_>),
    ) -> Result<usize, SourceError> {
        // Look again at carriers that changed (before trusting their new bytes), then read the
        // longest.
        for c in self.streams[&sid].carriers.clone() {
            self.check(c).map_err(|error| SourceError {
                path: self.files[&c].path.clone(),
                error,
            })?;
        }
        let Some(s) = self.streams.get_mut(&sid) else {
            return Ok(0);
        };
        let files = &self.files;
        let Some(best) = s
            .carriers
            .iter()
            .copied()
            .max_by_key(|k| (files[k].max_len, Some(*k) == s.reader))
        else {
            return Ok(0);
        };
        if s.reader != Some(best) {
            s.reader = Some(best);
            s.state.rewind();
            s.path = files[&best].path.display().to_string();
        }
        let p = &files[&best];
        let mut n = 0;
        if p.max_len > s.state.read_pos {
            let framing = Framing {
                parser: self.parser.as_ref(),
                max: self.max_record_bytes,
            };
            n = framing
                .read(
                    &mut s.state,
                    &p.file,
                    &p.path,
                    &mut self.chunk,
                    budget,
                    on_event,
                )
                .map_err(|error| SourceError {
                    path: p.path.clone(),
                    error,
                })?;
        }
        // Files no configured path names any more are let go once nothing in them is unread.
        let done: Vec<FileKey> = s
            .carriers
            .iter()
            .copied()
            .filter(|k| {
                let p = &files[k];
                p.detached >= DETACHED_SCANS && p.max_len <= s.state.read_pos
            })
            .collect();
        for key in done {
            self.detach(key);
            self.files.remove(&key);
        }
        Ok(n)
    }
}

impl Source for Tailer {
    fn name(&self) -> &str {
        &self.source
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    fn watch_dirs(&self) -> Vec<PathBuf> {
        Tailer::watch_dirs(self)
    }

    fn inputs(&self) -> Vec<String> {
        self.paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }

    fn poll(&mut self) -> Vec<SourceProblem> {
        self.scan().into_iter().map(SourceProblem::from).collect()
    }

    fn read(
        &mut self,
        budget: usize,
        on_event: &mut dyn FnMut(SourceEvent<'_>),
    ) -> (usize, Vec<SourceProblem>) {
        let (n, errors) = Tailer::read(self, budget, on_event);
        (n, errors.into_iter().map(SourceProblem::from).collect())
    }

    fn positions(&self) -> Vec<SourcePosition> {
        Tailer::positions(self)
    }

    fn unclaimed(&self) -> Vec<String> {
        Tailer::unclaimed(self)
    }

    fn take_regrown(&mut self) -> Vec<String> {
        Tailer::take_regrown(self)
    }

    fn settle(&mut self, key: &str, decision: Settled) -> Vec<String> {
        Tailer::settle(self, key, decision)
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }

    fn status(&self) -> SourceStatus {
        SourceStatus {
            open: self.files() as u64,
            lag: self.lag_bytes(),
        }
    }
}

/// The offset stored in a file position (another node's, to continue where it stopped).
pub fn position_offset(position: &SourcePosition) -> Result<u64, PositionError> {
    Ok(StreamPosition::decode(position)?.offset)
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
