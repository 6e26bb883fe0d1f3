//! The real tailer against a model of a log being written and rotated, with the reader as it
//! really is: behind, crashing between flushes, looking at files half-copied.
//!
//! The model knows every record it wrote and which file holds it. The property: no record is
//! counted twice, and every record is counted once except those that rotation itself may
//! destroy (appended between logrotate's copy and its truncate, cut by a truncate, or in a file
//! deleted before it was read after a crash); those are counted at most once.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use authstat_core::store::SourcePosition;
use proptest::prelude::*;

use super::tests::{append, drain, read_some, rec, tailer, truncate};
use authstat_test_support::files::append_bytes;

#[derive(Debug, Clone)]
enum Op {
    /// Append records, the last one possibly cut after `partial` bytes.
    Write {
        records: u8,
        partial: Option<u8>,
    },
    /// Finish a cut record.
    Complete,
    /// Scan and read everything.
    Read,
    /// Scan and read at most this many bytes: a reader that is behind.
    ReadSome(u16),
    /// Store the positions (a flush); what was read until now is kept by a crash.
    Flush,
    /// Crash and restart from the last flush: reads since then are lost, and done again.
    Crash,
    /// log4j-style rename rotation (the rotated name still matches the pattern).
    Rename,
    /// logrotate's copytruncate, step by step: snapshot and start the copy, copy more of it,
    /// finish it, truncate the original.
    CopyBegin,
    CopyMore(u8),
    CopyEnd,
    Truncate,
    /// Delete the oldest rotated file.
    DeleteOldest,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..4, prop::option::of(1u8..60)).prop_map(|(records, partial)| Op::Write { records, partial }),
        2 => Just(Op::Complete),
        3 => Just(Op::Read),
        3 => (1u16..600).prop_map(Op::ReadSome),
        2 => Just(Op::Flush),
        1 => Just(Op::Crash),
        1 => Just(Op::Rename),
        1 => Just(Op::CopyBegin),
        1 => (1u8..100).prop_map(Op::CopyMore),
        1 => Just(Op::CopyEnd),
        1 => Just(Op::Truncate),
        1 => Just(Op::DeleteOldest),
    ]
}

/// A copy in progress: where, the snapshot of the original, how much is written.
struct Copy {
    to: PathBuf,
    snapshot: Vec<u8>,
    done: usize,
}

struct Model {
    dir: PathBuf,
    log: PathBuf,
    next: u64,
    /// The records of the active log: id, first byte, byte after the last.
    log_records: Vec<(u64, u64, u64)>,
    log_len: u64,
    pending_tail: Option<String>,
    copy: Option<Copy>,
    /// A finished copy waiting for its truncate: the snapshot's length.
    copied: Option<u64>,
    rotated: Vec<(PathBuf, Vec<u64>)>,
    rotations: u32,
    may_be_lost: BTreeSet<u64>,
}

impl Model {
    fn write(&mut self, text: &str) {
        append(&self.log, text);
        self.log_len += text.len() as u64;
    }

    fn write_records(&mut self, records: u8, partial: Option<u8>) {
        if let Some(rest) = self.pending_tail.take() {
            self.write(&rest);
        }
        for _ in 0..records {
            let r = rec(self.next);
            let start = self.log_len;
            self.write(&r);
            self.log_records.push((self.next, start, self.log_len));
            self.next += 1;
        }
        if let Some(cut) = partial {
            let r = rec(self.next);
            let cut = usize::from(cut).min(r.len() - 1);
            let start = self.log_len;
            self.write(&r[..cut]);
            self.log_records
                .push((self.next, start, start + r.len() as u64));
            self.pending_tail = Some(r[cut..].to_string());
            self.next += 1;
        }
    }

    /// A step of the writer or of logrotate (the reader's steps are `run`'s).
    fn apply(&mut self, op: Op) {
        match op {
            Op::Write { records, partial } => self.write_records(records, partial),
            Op::Complete => {
                if let Some(rest) = self.pending_tail.take() {
                    self.write(&rest);
                }
            }
            Op::Rename
                if self.pending_tail.is_none()
                    && self.copy.is_none()
                    && self.copied.is_none()
                    && self.log.exists() =>
            {
                let to = self.rotated_name();
                fs::rename(&self.log, &to).unwrap();
                let ids = self.log_records.drain(..).map(|r| r.0).collect();
                self.rotated.push((to, ids));
                self.log_len = 0;
            }
            Op::CopyBegin if self.copy.is_none() && self.copied.is_none() && self.log.exists() => {
                let to = self.rotated_name();
                let snapshot = fs::read(&self.log).unwrap();
                fs::write(&to, b"").unwrap();
                self.copy = Some(Copy {
                    to,
                    snapshot,
                    done: 0,
                });
            }
            Op::CopyMore(percent) => {
                if let Some(c) = &mut self.copy {
                    let more = c.snapshot.len() * usize::from(percent) / 100;
                    let until = (c.done + more.max(1)).min(c.snapshot.len());
                    append_bytes(&c.to, &c.snapshot[c.done..until]);
                    c.done = until;
                }
            }
            Op::CopyEnd => {
                if let Some(c) = self.copy.take() {
                    append_bytes(&c.to, &c.snapshot[c.done..]);
                    let len = c.snapshot.len() as u64;
                    let ids = self
                        .log_records
                        .iter()
                        .filter(|r| r.2 <= len)
                        .map(|r| r.0)
                        .collect();
                    self.rotated.push((c.to, ids));
                    self.copied = Some(len);
                }
            }
            Op::Truncate => {
                if let Some(len) = self.copied.take() {
                    truncate(&self.log);
                    // What the copy does not hold is gone, unless it was read already.
                    for &(id, _, end) in &self.log_records {
                        if end > len {
                            self.may_be_lost.insert(id);
                        }
                    }
                    self.log_records.clear();
                    self.log_len = 0;
                    // The rest of a cut record now starts the empty file: garbage.
                }
            }
            Op::DeleteOldest if !self.rotated.is_empty() => {
                let (path, ids) = self.rotated.remove(0);
                fs::remove_file(&path).unwrap();
                self.may_be_lost.extend(ids);
            }
            // A rotation while another is under way, or with nothing to rotate; the reader's
            // steps.
            _ => {}
        }
    }

    fn rotated_name(&mut self) -> PathBuf {
        self.rotations += 1;
        self.dir.join(format!("tokens-{:03}.jsonl", self.rotations))
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let mut m = Model {
        log: dir.join("tokens.jsonl"),
        dir: dir.clone(),
        next: 0,
        log_records: Vec::new(),
        log_len: 0,
        pending_tail: None,
        copy: None,
        copied: None,
        rotated: Vec::new(),
        rotations: 0,
        may_be_lost: BTreeSet::new(),
    };
    let new_tailer = |positions: &[SourcePosition]| tailer(&dir, "tokens*.jsonl", positions);
    let mut t = new_tailer(&[]);
    let mut read: Vec<u64> = Vec::new();
    let mut flushed: (Vec<SourcePosition>, usize) = (Vec::new(), 0);
    for op in ops {
        match op {
            Op::Read => read.extend(drain(&mut t).0),
            Op::ReadSome(budget) => read.extend(read_some(&mut t, usize::from(budget))),
            Op::Flush => flushed = (t.positions(), read.len()),
            Op::Crash => {
                read.truncate(flushed.1);
                t = new_tailer(&flushed.0);
            }
            other => m.apply(other),
        }
    }
    // The end: the writer finishes, any copy is finished, the reader catches up.
    if let Some(c) = m.copy.take() {
        append_bytes(&c.to, &c.snapshot[c.done..]);
    }
    if let Some(rest) = m.pending_tail.take() {
        m.write(&rest);
    }
    read.extend(drain(&mut t).0);
    read.extend(drain(&mut t).0);

    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for id in &read {
        *counts.entry(*id).or_default() += 1;
    }
    for (id, n) in &counts {
        prop_assert!(*n == 1, "record {} counted {} times", id, n);
        prop_assert!(*id < m.next, "record {} was never written", id);
    }
    for id in 0..m.next {
        if !m.may_be_lost.contains(&id) {
            prop_assert!(counts.contains_key(&id), "record {} lost", id);
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("AUTHSTAT_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Every record at most once; every record that rotation cannot destroy exactly once.
    #[test]
    fn every_record_exactly_once(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
