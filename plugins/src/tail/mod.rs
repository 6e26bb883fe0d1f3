//! The file tailer: follows the files of one source through rotation, truncation and restarts,
//! and hands out complete records with the position after each.
//!
//! A file is known by its identity — device and inode, plus a fingerprint (a hash of its first
//! [`FINGERPRINT_BYTES`] bytes) — never by its path, because rotation renames files:
//!
//! - **rename rotation** (log4j: `jans-auth_audit.log` → `jans-auth_audit-2024-02-01-1.log`): the
//!   renamed file keeps its identity and its position; if its new name no longer matches a
//!   configured path it is read to its end and then let go. The new file at the old path is a
//!   new identity, read from its start.
//! - **truncation / copytruncate**: a file shorter than its position, or whose first bytes
//!   changed, is read again from its start. A new file whose first bytes equal those of a file
//!   already read (the copy) continues where that file's reading stood.
//! - **deletion while open**: the open handle is read to its end, then let go.
//! - **inode reuse**: same inode, other first bytes: a new file.
//!
//! This type does no waiting: [`Tailer::scan`] looks at the file system, [`Tailer::read`] reads
//! what is there. The agent calls them when `notify` reports a change and on a timer (the
//! safety net: notifications get lost).
//!
//! The position of a file (its [`Checkpoint`] offset) only ever moves past whole records, so a
//! restart never resumes inside one. A record larger than the limit is skipped; while it is
//! being skipped the position stays at its start.

mod glob;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use authstat_core::event::Event;
use authstat_core::hash::murmur3_x64_128;
use authstat_core::ingest::{Frame, ParseError, ParseErrorKind, Parser};
use authstat_core::store::Checkpoint;

pub use glob::PathPattern;

/// How many leading bytes the fingerprint covers.
pub const FINGERPRINT_BYTES: usize = 256;
const READ_CHUNK: usize = 256 * 1024;

/// What reading produced.
#[derive(Debug)]
pub enum TailEvent<'a> {
    /// A complete record, parsed (or not).
    Record {
        /// The event, or why the record could not be parsed.
        parsed: Result<Event, ParseError>,
        /// The file it came from.
        path: &'a Path,
        /// Its offset in the file.
        offset: u64,
    },
    /// Bytes that were skipped: garbage, a cut-off record, or a record over the size limit.
    Skipped {
        /// Why.
        kind: ParseErrorKind,
        /// The file.
        path: &'a Path,
        /// Where the skipped bytes start.
        offset: u64,
    },
    /// A file's content was replaced (truncated, or rewritten from the start): read again from 0.
    Truncated {
        /// The file.
        path: &'a Path,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileKey {
    device: u64,
    inode: u64,
}

/// Skipping a record over the size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// A single line without its newline yet.
    Line,
    /// A multi-line record without its end yet.
    Record,
}

#[derive(Debug)]
struct Tracked {
    file: File,
    path: PathBuf,
    fingerprint: u64,
    fingerprint_len: u32,
    /// Consumed: the checkpoint. Always at a record boundary.
    offset: u64,
    /// Bytes read after `offset` (not in skip mode).
    buf: Vec<u8>,
    /// Where the next read starts.
    read_pos: u64,
    skip: Option<Skip>,
    /// No configured path names this file any more (renamed away or deleted).
    detached: bool,
}

/// The tailer of one source.
#[derive(Debug)]
pub struct Tailer {
    source: String,
    patterns: Vec<PathPattern>,
    parser: Box<dyn Parser>,
    max_record_bytes: usize,
    start_at_end: bool,
    files: HashMap<FileKey, Tracked>,
    /// Checkpoints loaded at start, for files not seen yet.
    resume: Vec<Checkpoint>,
    /// `(fingerprint, fingerprint_len, offset)` of files just before they were truncated, to
    /// recognise their copies (copytruncate).
    truncated: Vec<(u64, u32, u64)>,
    first_scan: bool,
    /// One read buffer for all files.
    chunk: Vec<u8>,
}

const TRUNCATION_HISTORY: usize = 16;

fn fingerprint_of(file: &mut File, len: usize) -> io::Result<(u64, u32)> {
    let mut head = vec![0u8; len.min(FINGERPRINT_BYTES)];
    file.seek(SeekFrom::Start(0))?;
    let mut filled = 0;
    while filled < head.len() {
        let n = file.read(&mut head[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    head.truncate(filled);
    Ok((murmur3_x64_128(&head, 0).0, filled as u32))
}

/// The fingerprint of the first `len` bytes, if the file has that many.
fn fingerprint_prefix(file: &mut File, len: u32) -> io::Result<Option<u64>> {
    let (fp, got) = fingerprint_of(file, len as usize)?;
    Ok((got == len).then_some(fp))
}

impl Tailer {
    /// A tailer of `patterns` for the source `source`, resuming from `checkpoints` (those of
    /// other sources are ignored).
    pub fn new(
        source: impl Into<String>,
        patterns: Vec<PathPattern>,
        parser: Box<dyn Parser>,
        max_record_bytes: usize,
        start_at_end: bool,
        checkpoints: &[Checkpoint],
    ) -> Self {
        let source = source.into();
        let resume = checkpoints
            .iter()
            .filter(|c| c.source == source)
            .cloned()
            .collect();
        Self {
            source,
            patterns,
            parser,
            max_record_bytes: max_record_bytes.max(1),
            start_at_end,
            files: HashMap::new(),
            resume,
            truncated: Vec::new(),
            first_scan: true,
            chunk: vec![0; READ_CHUNK],
        }
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

    /// How many files are followed.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// The position of every followed file.
    pub fn checkpoints(&self) -> Vec<Checkpoint> {
        let mut out: Vec<Checkpoint> = self
            .files
            .iter()
            .map(|(key, t)| Checkpoint {
                source: self.source.clone(),
                path: t.path.display().to_string(),
                device: key.device,
                inode: key.inode,
                fingerprint: t.fingerprint,
                fingerprint_len: t.fingerprint_len,
                offset: t.offset,
            })
            .collect();
        // Positions loaded at start for files not seen yet are kept until the first scan.
        out.extend(self.resume.iter().cloned());
        out.sort_by(|a, b| a.path.cmp(&b.path).then(a.inode.cmp(&b.inode)));
        out
    }

    /// Bytes written but not consumed yet, over all files.
    pub fn lag_bytes(&self) -> u64 {
        self.files
            .values()
            .map(|t| {
                t.file
                    .metadata()
                    .map(|m| m.len().saturating_sub(t.offset))
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Looks at the file system: new files, renamed, truncated and vanished ones.
    pub fn scan(&mut self) -> io::Result<()> {
        let mut seen = Vec::new();
        for pattern in &self.patterns {
            for path in pattern.matches()? {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                seen.push((
                    FileKey {
                        device: meta.dev(),
                        inode: meta.ino(),
                    },
                    path,
                ));
            }
        }
        for t in self.files.values_mut() {
            t.detached = true;
        }
        for (key, path) in seen {
            match self.files.get_mut(&key) {
                Some(t) => {
                    t.detached = false;
                    t.path = path;
                    if let Some(before) = Self::check_replaced(t)? {
                        self.remember_truncation(before);
                    }
                }
                None => self.start_following(key, path)?,
            }
        }
        // Loaded positions of files that are gone: only their copies may still turn up.
        for c in std::mem::take(&mut self.resume) {
            self.remember_truncation((c.fingerprint, c.fingerprint_len, c.offset));
        }
        self.first_scan = false;
        Ok(())
    }

    /// Resets a file whose content was replaced (truncated, or rewritten from the start), and
    /// returns what it was before: `(fingerprint, fingerprint_len, offset)`.
    fn check_replaced(t: &mut Tracked) -> io::Result<Option<(u64, u32, u64)>> {
        let len = t.file.metadata()?.len();
        let rewritten = fingerprint_prefix(&mut t.file, t.fingerprint_len)? != Some(t.fingerprint);
        if len >= t.offset && !rewritten {
            // A file first seen short gets its full fingerprint once it has the bytes, so that
            // its copies are recognised.
            if (t.fingerprint_len as usize) < FINGERPRINT_BYTES
                && len > u64::from(t.fingerprint_len)
            {
                (t.fingerprint, t.fingerprint_len) = fingerprint_of(&mut t.file, len as usize)?;
            }
            return Ok(None);
        }
        let before = (t.fingerprint, t.fingerprint_len, t.offset);
        (t.fingerprint, t.fingerprint_len) = fingerprint_of(&mut t.file, len as usize)?;
        t.offset = 0;
        t.read_pos = 0;
        t.buf.clear();
        t.skip = None;
        Ok(Some(before))
    }

    fn remember_truncation(&mut self, before: (u64, u32, u64)) {
        if self.truncated.len() == TRUNCATION_HISTORY {
            self.truncated.remove(0);
        }
        self.truncated.push(before);
    }

    fn start_following(&mut self, key: FileKey, path: PathBuf) -> io::Result<()> {
        let Ok(mut file) = File::open(&path) else {
            return Ok(());
        };
        let len = file.metadata()?.len();
        let (fingerprint, fingerprint_len) = fingerprint_of(&mut file, len as usize)?;
        // 1. Our own checkpoint of this very file (same identity, same first bytes).
        let mut offset = None;
        if let Some(i) = self
            .resume
            .iter()
            .position(|c| c.device == key.device && c.inode == key.inode)
        {
            let c = self.resume.remove(i);
            if fingerprint_prefix(&mut file, c.fingerprint_len)? == Some(c.fingerprint)
                && c.offset <= len
            {
                offset = Some(c.offset);
            } else {
                // Replaced while we were away: its copy may still turn up.
                self.remember_truncation((c.fingerprint, c.fingerprint_len, c.offset));
            }
        }
        // 2. A copy of a file we follow or followed before it was truncated (copytruncate):
        //    continue where that one stood.
        if offset.is_none() && fingerprint_len > 0 {
            let known = self
                .files
                .values()
                .map(|t| (t.fingerprint, t.fingerprint_len, t.offset));
            let unseen = self
                .resume
                .iter()
                .map(|c| (c.fingerprint, c.fingerprint_len, c.offset));
            let candidates: Vec<_> = known
                .chain(unseen)
                .chain(self.truncated.iter().copied())
                .collect();
            for (fp, fp_len, at) in candidates {
                if fp_len > 0
                    && fp_len <= fingerprint_len
                    && at <= len
                    && fingerprint_prefix(&mut file, fp_len)? == Some(fp)
                {
                    offset = Some(at);
                    break;
                }
            }
        }
        // 3. A file never seen: its start, or (first scan of a fresh install, if configured)
        //    its end.
        let offset = offset.unwrap_or(if self.first_scan && self.start_at_end {
            len
        } else {
            0
        });
        self.files.insert(
            key,
            Tracked {
                file,
                path,
                fingerprint,
                fingerprint_len,
                offset,
                buf: Vec::new(),
                read_pos: offset,
                skip: None,
                detached: false,
            },
        );
        Ok(())
    }

    /// Reads what the files hold, up to about `budget` bytes, calling `on_event` for each
    /// record. Returns the bytes read; 0 means every file is at its end.
    pub fn read(
        &mut self,
        budget: usize,
        on_event: &mut dyn FnMut(TailEvent<'_>),
    ) -> io::Result<usize> {
        let mut total = 0;
        let mut finished = Vec::new();
        let mut truncations = Vec::new();
        for (key, t) in self.files.iter_mut() {
            if total >= budget {
                break;
            }
            // Reads check only for truncation below the position (cheap); the first bytes are
            // compared on scans.
            let len = t.file.metadata()?.len();
            if !t.detached
                && len < t.offset
                && let Some(before) = Self::check_replaced(t)?
            {
                truncations.push(before);
                on_event(TailEvent::Truncated { path: &t.path });
            }
            if len == t.read_pos {
                if t.detached {
                    finished.push(*key);
                }
                continue;
            }
            let n = Self::read_file(
                t,
                &mut self.chunk,
                self.parser.as_ref(),
                self.max_record_bytes,
                budget - total,
                on_event,
            )?;
            total += n;
            if n == 0 && t.detached {
                finished.push(*key);
            }
        }
        // A vanished file read to its end is let go (its checkpoint with it).
        for key in finished {
            self.files.remove(&key);
        }
        for before in truncations {
            self.remember_truncation(before);
        }
        Ok(total)
    }

    fn read_file(
        t: &mut Tracked,
        chunk: &mut [u8],
        parser: &dyn Parser,
        max: usize,
        budget: usize,
        on_event: &mut dyn FnMut(TailEvent<'_>),
    ) -> io::Result<usize> {
        let mut total = 0;
        while total < budget {
            t.file.seek(SeekFrom::Start(t.read_pos))?;
            let want = chunk.len().min(budget - total).max(1);
            let n = t.file.read(&mut chunk[..want])?;
            if n == 0 {
                break;
            }
            total += n;
            t.read_pos += n as u64;
            let data = &chunk[..n];
            match t.skip {
                Some(skip) => {
                    // The oversized record's end: a newline, or the parser's end of record.
                    let end = match skip {
                        Skip::Line => memchr::memchr(b'\n', data).map(|i| i + 1),
                        Skip::Record => parser.oversized_record_end(data),
                    };
                    match end {
                        None => continue,
                        Some(end) => {
                            t.skip = None;
                            let record_end = t.read_pos - (n - end) as u64;
                            t.offset = record_end;
                            t.buf.clear();
                            t.buf.extend_from_slice(&data[end..]);
                        }
                    }
                }
                None => t.buf.extend_from_slice(data),
            }
            Self::consume(t, parser, max, on_event);
        }
        Ok(total)
    }

    /// Frames and hands out every complete record in the buffer.
    fn consume(
        t: &mut Tracked,
        parser: &dyn Parser,
        max: usize,
        on_event: &mut dyn FnMut(TailEvent<'_>),
    ) {
        let mut at = 0;
        loop {
            let rest = &t.buf[at..];
            match parser.frame(rest) {
                Frame::Record { len } => {
                    let parsed = parser.parse(&rest[..len]);
                    on_event(TailEvent::Record {
                        parsed,
                        path: &t.path,
                        offset: t.offset,
                    });
                    at += len;
                    t.offset += len as u64;
                }
                Frame::Skip { len, kind } => {
                    on_event(TailEvent::Skipped {
                        kind,
                        path: &t.path,
                        offset: t.offset,
                    });
                    at += len;
                    t.offset += len as u64;
                }
                Frame::Blank { len } => {
                    at += len;
                    t.offset += len as u64;
                }
                Frame::Incomplete => {
                    if rest.len() > max {
                        on_event(TailEvent::Skipped {
                            kind: ParseErrorKind::TooLarge,
                            path: &t.path,
                            offset: t.offset,
                        });
                        // Look for the end in what we have after the record's first line.
                        let (skip, search_from) = match memchr::memchr(b'\n', rest) {
                            None => (Skip::Line, rest.len()),
                            Some(nl) => (Skip::Record, nl + 1),
                        };
                        let end = match skip {
                            Skip::Line => None,
                            Skip::Record => parser
                                .oversized_record_end(&rest[search_from..])
                                .map(|e| e + search_from),
                        };
                        match end {
                            Some(end) => {
                                at += end;
                                t.offset += end as u64;
                                continue;
                            }
                            None => {
                                // Skip mode: drop the buffer; the position stays at the record.
                                t.skip = Some(skip);
                                t.buf.clear();
                                return;
                            }
                        }
                    }
                    break;
                }
            }
        }
        t.buf.drain(..at);
    }
}

#[cfg(test)]
mod tests;
