//! Rotation while the reader lags, copies seen half-written, rapid renames (exactly once must
//! really hold). Each test counts every record id, not only the total.

use super::*;

/// `n` records with ids `from..from + n`.
fn recs(from: u64, n: u64) -> String {
    (from..from + n).map(rec).collect()
}

/// Every id in `expected` exactly once, nothing else.
#[track_caller]
fn assert_exactly(mut got: Vec<u64>, expected: impl IntoIterator<Item = u64>) {
    got.sort_unstable();
    let expected: Vec<u64> = expected.into_iter().collect();
    assert_eq!(got.len(), expected.len(), "count");
    assert_eq!(got, expected);
}

#[test]
fn copytruncate_while_the_reader_lags() {
    for truncate_before_reading in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("tokens.jsonl");
        append(&log, &recs(0, 1000));
        let mut t = tailer(dir.path(), "tokens*.jsonl", &[]);
        let mut read = drain(&mut t).0;
        // Paused: 1,000 more are written, then logrotate copies.
        append(&log, &recs(1000, 1000));
        fs::copy(&log, dir.path().join("tokens-1.jsonl")).unwrap();
        if truncate_before_reading {
            truncate(&log);
        } else {
            // Resumed before the truncate: the original and the copy hold the same records.
            read.extend(drain(&mut t).0);
            truncate(&log);
        }
        append(&log, &recs(2000, 10));
        read.extend(drain(&mut t).0);
        assert_exactly(read, 0..2010);
        let mut again = tailer(dir.path(), "tokens*.jsonl", &t.positions());
        assert_eq!(drain(&mut again).0, Vec::<u64>::new(), "after a restart");
    }
}

#[test]
fn a_copy_seen_half_written_is_neither_read_from_its_start_nor_skipped() {
    for behind in [0, 300] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("tokens.jsonl");
        let copy = dir.path().join("tokens-1.jsonl");
        append(&log, &recs(0, 1000));
        let mut t = tailer(dir.path(), "tokens*.jsonl", &[]);
        let whole = fs::read(&log).unwrap();
        // The reader has all but `behind` records.
        let mut read = read_some(&mut t, whole.len() - behind * rec(0).len());
        // logrotate copies byte by byte: half the copy exists, cut inside a record.
        let half = whole.len() / 2 + 17;
        fs::write(&copy, &whole[..half]).unwrap();
        read.extend(drain(&mut t).0);
        // A restart while the copy is half-written.
        let positions = t.positions();
        t = tailer(dir.path(), "tokens*.jsonl", &positions);
        read.extend(drain(&mut t).0);
        append(&copy, std::str::from_utf8(&whole[half..]).unwrap());
        truncate(&log);
        append(&log, &recs(1000, 5));
        read.extend(drain(&mut t).0);
        assert_exactly(read, 0..1005);
    }
}

#[test]
fn a_copy_shorter_than_the_position_after_a_restart_is_not_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    let copy = dir.path().join("tokens-1.jsonl");
    append(&log, &recs(0, 100));
    let mut t = tailer(dir.path(), "tokens*.jsonl", &[]);
    let mut read = drain(&mut t).0;
    let positions = t.positions();
    drop(t);
    // While the agent is down: copied half-way, the original truncated and written again.
    let whole = fs::read(&log).unwrap();
    fs::write(&copy, &whole[..whole.len() / 3]).unwrap();
    truncate(&log);
    append(&log, &recs(100, 3));
    let mut t = tailer(dir.path(), "tokens*.jsonl", &positions);
    read.extend(drain(&mut t).0);
    append(
        &copy,
        std::str::from_utf8(&whole[whole.len() / 3..]).unwrap(),
    );
    read.extend(drain(&mut t).0);
    assert_exactly(read, 0..103);
}

#[test]
fn hundreds_of_rename_rotations_milliseconds_apart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    let mut t = tailer(dir.path(), "tokens*.jsonl", &[]);
    let mut read = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = 0;
    for r in 0..300u64 {
        // Each file holds its own records; the reader looks at random moments, often not at
        // all between two rotations, and sometimes reads only a little.
        let n = 1 + r % 7;
        append(&log, &recs(next, n));
        next += n;
        fs::rename(&log, dir.path().join(format!("tokens-{r:04}.jsonl"))).unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        match rng % 4 {
            0 => read.extend(read_some(&mut t, 1 + (rng >> 8) as usize % 2000)),
            1 => read.extend(drain(&mut t).0),
            _ => {}
        }
    }
    read.extend(drain(&mut t).0);
    assert_exactly(read, 0..next);
}

#[test]
fn two_rotations_while_the_agent_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    append(&log, &recs(0, 10));
    let mut t = tailer(dir.path(), "tokens*.jsonl", &[]);
    let mut read = drain(&mut t).0;
    let positions = t.positions();
    drop(t);
    append(&log, &recs(10, 5));
    fs::rename(&log, dir.path().join("tokens-1.jsonl")).unwrap();
    append(&log, &recs(15, 5));
    fs::copy(&log, dir.path().join("tokens-2.jsonl")).unwrap();
    truncate(&log);
    append(&log, &recs(20, 5));
    let mut t = tailer(dir.path(), "tokens*.jsonl", &positions);
    read.extend(drain(&mut t).0);
    assert_exactly(read, 0..25);
}

#[test]
fn records_appended_between_the_copy_and_the_truncate() {
    // logrotate loses them unless they were read before the truncate: counted if read, never
    // twice.
    for read_in_between in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("tokens.jsonl");
        append(&log, &recs(0, 10));
        let mut t = tailer(dir.path(), "tokens*.jsonl", &[]);
        let mut read = drain(&mut t).0;
        fs::copy(&log, dir.path().join("tokens-1.jsonl")).unwrap();
        append(&log, &recs(10, 4));
        if read_in_between {
            read.extend(drain(&mut t).0);
        }
        truncate(&log);
        append(&log, &recs(14, 2));
        read.extend(drain(&mut t).0);
        if read_in_between {
            assert_exactly(read, 0..16);
        } else {
            assert_exactly(read, (0..10).chain(14..16));
        }
    }
}

#[test]
fn a_scan_racing_renames_pairs_no_file_with_another_files_identity() {
    // The regression: list, then stat by path, then open by path could each see another file.
    // Here files are renamed under the tailer between every two of its steps.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    let mut t = tailer(dir.path(), "tokens*.jsonl", &[]);
    let mut read = Vec::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (dir, log, stop) = (dir.path().to_path_buf(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 0;
            let mut r = 0;
            // Bounded: the tailer keeps every matching file open.
            while (!stop.load(std::sync::atomic::Ordering::Relaxed) || next == 0) && r < 400 {
                append(&log, &recs(next, 3));
                next += 3;
                fs::rename(&log, dir.join(format!("tokens-{r:05}.jsonl"))).unwrap();
                r += 1;
            }
            next
        })
    };
    for _ in 0..200 {
        read.extend(read_some(&mut t, 1 << 20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    read.extend(drain(&mut t).0);
    assert_exactly(read, 0..written);
}
