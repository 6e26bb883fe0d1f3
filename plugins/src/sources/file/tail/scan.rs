//! Looking at the file system: files found by path, opened, identified by their handle, and
//! given the stream their first bytes belong to.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::head::{HEAD_BYTES, Prints, Relation, read_head};
use super::index::StreamId;
use super::reader::ReadState;
use super::{
    Claim, DETACHED_SCANS, FileKey, MAX_ORPHANS, ORPHAN_DAYS, Physical, SourceError, Stream,
    Tailer, mtime, now_secs,
};

impl Tailer {
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
    pub(super) fn find(&mut self, path: PathBuf) -> Result<Option<FileKey>, SourceError> {
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
    pub(super) fn check(&mut self, key: FileKey) -> io::Result<()> {
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
    pub(super) fn classify(&mut self, key: FileKey) -> io::Result<()> {
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

    pub(super) fn add_stream(&mut self, prints: Prints, offset: u64, claim: Claim) -> StreamId {
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

    pub(super) fn attach(&mut self, key: FileKey, sid: StreamId) {
        let p = self.files.get_mut(&key).expect("attached files are open");
        p.stream = Some(sid);
        let s = self.streams.get_mut(&sid).expect("streams are known");
        s.carriers.push(key);
        s.orphaned_at = None;
        if s.path.is_empty() {
            s.path = p.path.display().to_string();
        }
    }

    pub(super) fn detach(&mut self, key: FileKey) {
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
    pub(super) fn grow_prints(&mut self, sid: StreamId, head: &[u8]) -> io::Result<()> {
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

    pub(super) fn forget_old_orphans(&mut self, now: u64) {
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
}
