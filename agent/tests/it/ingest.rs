//! Bad input in a running agent: counted by kind, never fatal, reading goes on.

use std::sync::atomic::Ordering;

use authstat_core::ingest::ParseErrorKind;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_counted_by_kind_and_reading_goes_on() {
    let fixture = Fixture::new("");
    let log = fixture.dir.path().join("logs/jans-auth_audit.log");
    let good = std::fs::read_to_string(&log).unwrap();
    let header = "2024-02-01 00:00:03,611 INFO  [m] [t]  [c] (A.java:1) - {\n";
    let bad = format!(
        "garbage line\n{header}  \"action\" : \"USER_INFO\",\n  \"timestamp\" : \"soon\",\n  \"success\" : true\n}}\n{header}  \"ip\" : \"1\n}}\n"
    );
    std::fs::write(&log, format!("{bad}{good}")).unwrap();
    let tokens = fixture.dir.path().join("logs/token-events.jsonl");
    let mut bytes = std::fs::read(&tokens).unwrap();
    bytes.extend_from_slice(b"\xff\xfe not utf-8\n");
    std::fs::write(&tokens, bytes).unwrap();

    let agent = fixture.start().await;
    let stats = agent.stats.clone();
    wait_until("every record to be read", || {
        stats.records.load(Ordering::Relaxed) >= 15 && stats.skipped.load(Ordering::Relaxed) >= 4
    });
    let by_kind = |k: ParseErrorKind| stats.skipped_by_kind[k.index()].load(Ordering::Relaxed);
    assert_eq!(by_kind(ParseErrorKind::Garbage), 1);
    assert_eq!(by_kind(ParseErrorKind::WrongType), 1);
    assert_eq!(by_kind(ParseErrorKind::MalformedJson), 1);
    assert_eq!(by_kind(ParseErrorKind::InvalidUtf8), 1);
    assert_eq!(
        stats.records.load(Ordering::Relaxed),
        15,
        "all good records were read"
    );
    agent.shutdown().await;
}

/// Hundreds of idle files cost a handful of loop turns per scan, not a busy loop (reading a file
/// must not wake the reader up again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_files_do_not_spin_the_pipeline() {
    let fixture = Fixture::new("");
    let logs = fixture.dir.path().join("logs");
    let sample = std::fs::read_to_string(logs.join("jans-auth_audit.log")).unwrap();
    for i in 0..300 {
        // Files are told apart by their content: each copy's first record differs.
        let copy = sample.replacen(
            "23:59:58,120",
            &format!("23:{:02}:{:02},120", i / 60, i % 60),
            1,
        );
        assert_ne!(copy, sample);
        std::fs::write(logs.join(format!("jans-auth_audit-{i}.log")), copy).unwrap();
    }
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "paths: [logs/jans-auth_audit*.log]",
        "paths: [logs/jans-auth_audit*.log]\n    poll_interval_ms: 50",
    );
    std::fs::write(&path, text).unwrap();
    let agent = fixture.start().await;
    let stats = agent.stats.clone();
    wait_until("every file to be read", || {
        stats.records.load(Ordering::Relaxed) >= 301 * 9 + 6
    });
    let (loops, scans) = (
        stats.loops.load(Ordering::Relaxed),
        stats.scans.load(Ordering::Relaxed),
    );
    wait_until("20 more scans", || {
        stats.scans.load(Ordering::Relaxed) >= scans + 20
    });
    let turns = stats.loops.load(Ordering::Relaxed) - loops;
    let scanned = stats.scans.load(Ordering::Relaxed) - scans;
    assert!(
        turns <= scanned * 4 + 8,
        "{turns} loop turns for {scanned} scans: the pipeline spins"
    );
    agent.shutdown().await;
}
