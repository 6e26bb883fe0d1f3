//! The tailer on real files: rotation, truncation, deletion, restarts, oversized records, and a
//! model-based property test.

use std::fs::{self, OpenOptions};
use std::path::Path;

use authstat_core::event::Event;
use authstat_core::ingest::ParseErrorKind;
use authstat_core::source::SourceEvent;
use authstat_core::store::SourcePosition;

use super::*;
use crate::parse::{JanssenAuditParser, TokenEventsParser};

mod lag;

/// A token-event line identified by `id` (in its grant type), padded so that files pass the
/// fingerprint length quickly.
pub(super) fn rec(id: u64) -> String {
    authstat_test_support::janssen::token_event(
        1706745604011,
        &format!("g{id}"),
        "access_token",
        &format!("client-{id:0>40}"),
    )
}

pub(super) use authstat_test_support::files::append;

pub(super) fn tailer(dir: &Path, pattern: &str, positions: &[SourcePosition]) -> Tailer {
    Tailer::new(
        "tokens",
        vec![PathPattern::new(dir, pattern).unwrap()],
        Box::new(TokenEventsParser),
        4096,
        false,
        positions,
    )
    .unwrap()
}

pub(super) fn id_of(e: &SourceEvent<'_>) -> Option<u64> {
    match e {
        SourceEvent::Record {
            parsed: Ok(Event {
                tokens: Some(tok), ..
            }),
            ..
        } => Some(tok.grant_type[1..].parse().unwrap()),
        _ => None,
    }
}

/// Scans and reads until nothing is left; the ids of the records read, and the skips.
pub(super) fn drain(t: &mut Tailer) -> (Vec<u64>, Vec<ParseErrorKind>) {
    let mut ids = Vec::new();
    let mut skipped = Vec::new();
    assert!(t.scan().is_empty());
    loop {
        let (n, errors) = t.read(1 << 20, &mut |e| match e {
            SourceEvent::Record {
                parsed: Ok(Event {
                    tokens: Some(tok), ..
                }),
                ..
            } => ids.push(tok.grant_type[1..].parse().unwrap()),
            SourceEvent::Record { parsed, .. } => skipped.push(parsed.unwrap_err().kind),
            SourceEvent::Skipped { kind, .. } => skipped.push(kind),
            SourceEvent::Snapshot(s) => panic!("a tailer delivers no snapshot: {s:?}"),
        });
        assert!(errors.is_empty(), "{errors:?}");
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
    let cp = t.positions();
    let offset = (rec(1).len() + rec(2).len()) as u64;
    assert!(
        cp[0].data.contains(&format!("\"offset\":{offset},")),
        "not inside record 3: {cp:?}"
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
    let checkpoints = t.positions();
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
    assert_eq!(
        t.files(),
        2,
        "a renamed file is kept for a scan (a writer may still append)"
    );
    drain(&mut t);
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
    let checkpoints = t.positions();
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
    assert!(t.scan().is_empty());
    append(&log, &rec(2));
    fs::remove_file(&log).unwrap();
    assert_eq!(drain(&mut t).0, [1, 2]);
    drain(&mut t);
    assert_eq!(t.files(), 0);
    // A new file at the same path (its inode may be reused) is read from its start.
    append(&log, &rec(3));
    assert_eq!(drain(&mut t).0, [3]);
}

#[test]
fn a_position_of_other_content_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    append(&log, &format!("{}{}", rec(1), rec(2)));
    let mut t = tailer(dir.path(), "tokens.jsonl", &[]);
    drain(&mut t);
    let mut checkpoints = t.positions();
    // As if another file (another content) had been read before.
    let fp = checkpoints[0].key.split(':').nth(1).unwrap().to_owned();
    let other = (fp.parse::<i64>().unwrap() ^ 1).to_string();
    checkpoints[0].data = checkpoints[0]
        .data
        .replace(&format!("\"fp\":{fp}"), &format!("\"fp\":{other}"));
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
    )
    .unwrap();
    let mut events = Vec::new();
    assert!(t.scan().is_empty());
    while t
        .read(1 << 20, &mut |e| {
            events.push(match e {
                SourceEvent::Record { parsed, origin } => (parsed.is_ok(), None, origin.offset),
                SourceEvent::Skipped { kind, origin } => (false, Some(kind), origin.offset),
                SourceEvent::Snapshot(s) => panic!("a tailer delivers no snapshot: {s:?}"),
            })
        })
        .0
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
    )
    .unwrap();
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

pub(super) fn truncate(path: &Path) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// One scan and one read of at most `budget` bytes: a reader that is behind.
pub(super) fn read_some(t: &mut Tailer, budget: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    assert!(t.scan().is_empty());
    let (_, errors) = t.read(budget, &mut |e| ids.extend(id_of(&e)));
    assert!(errors.is_empty(), "{errors:?}");
    ids
}

/// A parallel read hands every record of every file exactly once, each file's records in their
/// order although a file is read in slices by whichever thread takes it next, and reads about
/// its budget: at most one slice more per thread.
#[test]
fn parallel_reads_hand_each_record_once_in_each_files_order() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    // Around and above a slice (~1,000 of these records), and one file of a single record.
    let sizes = [3000u64, 1, 2000, 900, 4500];
    for (f, &size) in sizes.iter().enumerate() {
        let text: String = (0..size).map(|i| rec(f as u64 * 100_000 + i)).collect();
        append(&dir.path().join(format!("tokens-{f}.jsonl")), &text);
    }
    let mut t = tailer(dir.path(), "tokens-*.jsonl", &[]);
    assert!(t.scan().is_empty());
    // Each event stamped with a global sequence number, into its thread's own list.
    let seq = AtomicU64::new(0);
    let mut lists: Vec<Vec<(u64, u64)>> = vec![Vec::new(); 3];
    let budget = 512 << 10;
    let mut reads = 0;
    loop {
        let (n, errors) = {
            let mut sinks: Vec<_> = lists
                .iter_mut()
                .map(|list| {
                    let seq = &seq;
                    move |e: SourceEvent<'_>| {
                        list.push((seq.fetch_add(1, Ordering::SeqCst), id_of(&e).unwrap()))
                    }
                })
                .collect();
            let mut refs: Vec<&mut (dyn FnMut(SourceEvent<'_>) + Send)> = sinks
                .iter_mut()
                .map(|s| s as &mut (dyn FnMut(SourceEvent<'_>) + Send))
                .collect();
            t.read_parallel(budget, &mut refs)
        };
        assert!(errors.is_empty(), "{errors:?}");
        assert!(n <= budget + 3 * READ_SLICE, "{n} bytes read in one call");
        if n == 0 {
            break;
        }
        reads += 1;
    }
    let mut all: Vec<(u64, u64)> = lists.concat();
    all.sort_unstable();
    let mut seen: Vec<Vec<u64>> = vec![Vec::new(); sizes.len()];
    for (_, id) in all {
        seen[(id / 100_000) as usize].push(id % 100_000);
    }
    for (f, &size) in sizes.iter().enumerate() {
        assert_eq!(seen[f], (0..size).collect::<Vec<_>>(), "file {f}");
    }
    assert!(reads > 1, "the budget was not held: {reads} read");
}
