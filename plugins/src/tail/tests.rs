//! The tailer on real files: rotation, truncation, deletion, restarts, oversized records, and a
//! model-based property test.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use authstat_core::event::Event;
use authstat_core::ingest::ParseErrorKind;
use authstat_core::store::Checkpoint;
use proptest::prelude::*;

use super::*;
use crate::parse::{JanssenAuditParser, TokenEventsParser};

/// A token-event line identified by `id` (in its grant type), padded so that files pass the
/// fingerprint length quickly.
fn rec(id: u64) -> String {
    format!(
        "{{\"timestamp\":1706745604011,\"grant_type\":\"g{id}\",\"token_type\":\"access_token\",\"client_id\":\"client-{id:0>40}\"}}\n"
    )
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn tailer(dir: &Path, pattern: &str, checkpoints: &[Checkpoint]) -> Tailer {
    Tailer::new(
        "tokens",
        vec![PathPattern::new(dir, pattern).unwrap()],
        Box::new(TokenEventsParser),
        4096,
        false,
        checkpoints,
    )
}

/// Scans and reads until nothing is left; the ids of the records read, and the skips.
fn drain(t: &mut Tailer) -> (Vec<u64>, Vec<ParseErrorKind>) {
    let mut ids = Vec::new();
    let mut skipped = Vec::new();
    t.scan().unwrap();
    loop {
        let n = t
            .read(1 << 20, &mut |e| match e {
                TailEvent::Record {
                    parsed: Ok(Event::Token(tok)),
                    ..
                } => ids.push(tok.grant_type[1..].parse().unwrap()),
                TailEvent::Record { parsed, .. } => skipped.push(parsed.unwrap_err().kind),
                TailEvent::Skipped { kind, .. } => skipped.push(kind),
                TailEvent::Truncated { .. } => {}
            })
            .unwrap();
        if n == 0 {
            break;
        }
    }
    (ids, skipped)
}

#[test]
fn partial_records_wait_and_checkpoints_sit_at_record_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    append(&log, &format!("{}{}", rec(1), rec(2)));
    let mut t = tailer(dir.path(), "tokens*.jsonl", &[]);
    assert_eq!(drain(&mut t).0, [1, 2]);
    let whole = rec(3);
    append(&log, &whole[..20]);
    assert_eq!(drain(&mut t).0, Vec::<u64>::new());
    let cp = t.checkpoints();
    assert_eq!(
        cp[0].offset,
        (rec(1).len() + rec(2).len()) as u64,
        "not inside record 3"
    );
    append(&log, &whole[20..]);
    assert_eq!(drain(&mut t).0, [3]);
}

#[test]
fn restart_resumes_at_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    append(&log, &format!("{}{}", rec(1), rec(2)));
    let mut t = tailer(dir.path(), "tokens.jsonl", &[]);
    assert_eq!(drain(&mut t).0, [1, 2]);
    let checkpoints = t.checkpoints();
    drop(t);
    append(&log, &rec(3));
    let mut t = tailer(dir.path(), "tokens.jsonl", &checkpoints);
    assert_eq!(drain(&mut t).0, [3]);
}

#[test]
fn rename_rotation_reads_the_old_file_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    append(&log, &rec(1));
    let mut t = tailer(dir.path(), "tokens.jsonl", &[]);
    assert_eq!(drain(&mut t).0, [1]);
    // Written just before the rotation, not read yet.
    append(&log, &rec(2));
    fs::rename(&log, dir.path().join("tokens-2024-02-01-1.jsonl")).unwrap();
    append(&log, &format!("{}{}", rec(3), rec(4)));
    let (mut ids, _) = drain(&mut t);
    ids.sort();
    assert_eq!(ids, [2, 3, 4]);
    assert_eq!(t.files(), 1, "the rotated file was let go after its end");
    append(&log, &rec(5));
    assert_eq!(drain(&mut t).0, [5]);
}

#[test]
fn rotated_files_that_still_match_are_not_read_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    append(&log, &rec(1));
    let mut t = tailer(dir.path(), "tokens*.jsonl", &[]);
    assert_eq!(drain(&mut t).0, [1]);
    fs::rename(&log, dir.path().join("tokens-1.jsonl")).unwrap();
    append(&log, &rec(2));
    assert_eq!(drain(&mut t).0, [2]);
    assert_eq!(t.files(), 2);
    // After a restart too: the rotated file is recognised by its identity.
    let checkpoints = t.checkpoints();
    let mut t = tailer(dir.path(), "tokens*.jsonl", &checkpoints);
    assert_eq!(drain(&mut t).0, Vec::<u64>::new());
}

#[test]
fn copytruncate_is_not_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    append(&log, &format!("{}{}", rec(1), rec(2)));
    let mut t = tailer(dir.path(), "tokens*.jsonl", &[]);
    assert_eq!(drain(&mut t).0, [1, 2]);
    append(&log, &rec(3)); // not read before the copy
    fs::copy(&log, dir.path().join("tokens.jsonl.1.jsonl")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &rec(4));
    let (mut ids, _) = drain(&mut t);
    ids.sort();
    assert_eq!(ids, [3, 4]);
}

#[test]
fn truncation_restarts_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    append(&log, &format!("{}{}", rec(1), rec(2)));
    let mut t = tailer(dir.path(), "tokens.jsonl", &[]);
    assert_eq!(drain(&mut t).0, [1, 2]);
    fs::write(&log, rec(7)).unwrap(); // truncate and rewrite, shorter than before
    assert_eq!(drain(&mut t).0, [7]);
    // Rewritten from the start but longer than what was read: the first bytes tell.
    fs::write(&log, format!("{}{}{}", rec(8), rec(9), rec(10))).unwrap();
    assert_eq!(drain(&mut t).0, [8, 9, 10]);
}

#[test]
fn a_file_deleted_while_open_is_read_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    append(&log, &rec(1));
    let mut t = tailer(dir.path(), "tokens.jsonl", &[]);
    t.scan().unwrap();
    append(&log, &rec(2));
    fs::remove_file(&log).unwrap();
    assert_eq!(drain(&mut t).0, [1, 2]);
    assert_eq!(t.files(), 0);
    // A new file at the same path (its inode may be reused) is read from its start.
    append(&log, &rec(3));
    assert_eq!(drain(&mut t).0, [3]);
}

#[test]
fn a_checkpoint_of_a_reused_inode_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    append(&log, &format!("{}{}", rec(1), rec(2)));
    let mut t = tailer(dir.path(), "tokens.jsonl", &[]);
    drain(&mut t);
    let mut checkpoints = t.checkpoints();
    checkpoints[0].fingerprint ^= 1; // as if another file had had this inode
    let mut t = tailer(dir.path(), "tokens.jsonl", &checkpoints);
    assert_eq!(drain(&mut t).0, [1, 2]);
}

#[test]
fn oversized_records_are_skipped_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    let huge = format!("{{\"x\":\"{}\"}}\n", "y".repeat(3 * READ_CHUNK));
    append(&log, &format!("{}{huge}{}", rec(1), rec(2)));
    let mut t = tailer(dir.path(), "tokens.jsonl", &[]);
    let (ids, skipped) = drain(&mut t);
    assert_eq!(ids, [1, 2]);
    assert_eq!(skipped, [ParseErrorKind::TooLarge]);

    // Multi-line: a Janssen record over the limit.
    let audit = dir.path().join("audit.log");
    let body = format!("  \"ip\" : \"{}\",\n", "z".repeat(9000)).repeat(40);
    let header = "2024-02-01 00:00:03,611 INFO  [m] [t]  [c] (A.java:1) - {\n";
    let good = format!(
        "{header}  \"action\" : \"USER_INFO\",\n  \"timestamp\" : 1706745603590,\n  \"success\" : true\n}}\n"
    );
    append(&audit, &format!("{header}{body}}}\n{good}"));
    let mut t = Tailer::new(
        "audit",
        vec![PathPattern::new(dir.path(), "audit.log").unwrap()],
        Box::new(JanssenAuditParser),
        64 * 1024,
        false,
        &[],
    );
    let mut events = Vec::new();
    t.scan().unwrap();
    while t
        .read(1 << 20, &mut |e| {
            events.push(match e {
                TailEvent::Record { parsed, offset, .. } => (parsed.is_ok(), None, offset),
                TailEvent::Skipped { kind, offset, .. } => (false, Some(kind), offset),
                TailEvent::Truncated { .. } => unreachable!(),
            })
        })
        .unwrap()
        > 0
    {}
    assert_eq!(
        events,
        [
            (false, Some(ParseErrorKind::TooLarge), 0),
            (true, None, (header.len() + body.len() + 2) as u64)
        ]
    );
}

#[test]
fn start_at_end_skips_what_existed_on_first_sight() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    append(&log, &rec(1));
    let mut t = Tailer::new(
        "tokens",
        vec![PathPattern::new(dir.path(), "tokens*.jsonl").unwrap()],
        Box::new(TokenEventsParser),
        4096,
        true,
        &[],
    );
    assert_eq!(drain(&mut t).0, Vec::<u64>::new());
    append(&log, &rec(2));
    append(&dir.path().join("tokens-new.jsonl"), &rec(3));
    let (mut ids, _) = drain(&mut t);
    ids.sort();
    assert_eq!(
        ids,
        [2, 3],
        "files appearing later are read from their start"
    );
}

#[derive(Debug, Clone)]
enum Op {
    /// Append records, the last one possibly cut after `partial` bytes.
    Write { records: u8, partial: Option<u8> },
    /// Finish a cut record.
    Complete,
    /// Scan and read.
    Read,
    /// log4j-style rename rotation (the rotated name still matches the pattern).
    Rotate,
    /// Copy then truncate in place.
    CopyTruncate,
    /// Crash and restart from the last checkpoints.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..4, prop::option::of(1u8..60)).prop_map(|(records, partial)| Op::Write { records, partial }),
        2 => Just(Op::Complete),
        4 => Just(Op::Read),
        1 => Just(Op::Rotate),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The real tailer against a model: every record written is read exactly once, in order,
    /// whatever the rotations, copytruncates, partial writes and restarts in between (the
    /// tailer reads before destructive steps, as a running agent keeps up with its logs).
    #[test]
    fn every_record_exactly_once(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("tokens.jsonl");
        let mut t = tailer(dir.path(), "tokens*.jsonl", &[]);
        let mut next = 0u64;
        let mut pending_tail: Option<String> = None;
        let mut read = Vec::new();
        let mut rotations = 0;
        for op in ops {
            match op {
                Op::Write { records, partial } => {
                    if let Some(rest) = pending_tail.take() {
                        append(&log, &rest);
                    }
                    for _ in 0..records {
                        let r = rec(next);
                        next += 1;
                        append(&log, &r);
                    }
                    if let Some(cut) = partial {
                        let r = rec(next);
                        next += 1;
                        let cut = usize::from(cut).min(r.len() - 1);
                        append(&log, &r[..cut]);
                        pending_tail = Some(r[cut..].to_string());
                    }
                }
                Op::Complete => {
                    if let Some(rest) = pending_tail.take() {
                        append(&log, &rest);
                    }
                }
                Op::Read => read.extend(drain(&mut t).0),
                Op::Rotate if pending_tail.is_none() && log.exists() => {
                    read.extend(drain(&mut t).0);
                    rotations += 1;
                    fs::rename(&log, dir.path().join(format!("tokens-{rotations}.jsonl"))).unwrap();
                }
                Op::CopyTruncate if pending_tail.is_none() && log.exists() => {
                    read.extend(drain(&mut t).0);
                    rotations += 1;
                    fs::copy(&log, dir.path().join(format!("tokens-{rotations}.jsonl"))).unwrap();
                    OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
                }
                Op::Restart => {
                    let checkpoints = t.checkpoints();
                    t = tailer(dir.path(), "tokens*.jsonl", &checkpoints);
                }
                Op::Rotate | Op::CopyTruncate => {}
            }
        }
        if let Some(rest) = pending_tail.take() {
            append(&log, &rest);
        }
        read.extend(drain(&mut t).0);
        let expected: Vec<u64> = (0..next).collect();
        prop_assert_eq!(read, expected);
    }
}
