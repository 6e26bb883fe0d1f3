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
        stats.reading.records.load(Ordering::Relaxed) >= 15
            && stats.reading.skipped.load(Ordering::Relaxed) >= 4
    });
    let by_kind =
        |k: ParseErrorKind| stats.reading.skipped_by_kind[k.index()].load(Ordering::Relaxed);
    assert_eq!(by_kind(ParseErrorKind::Garbage), 1);
    assert_eq!(by_kind(ParseErrorKind::WrongType), 1);
    assert_eq!(by_kind(ParseErrorKind::MalformedJson), 1);
    assert_eq!(by_kind(ParseErrorKind::InvalidUtf8), 1);
    assert_eq!(
        stats.reading.records.load(Ordering::Relaxed),
        15,
        "all good records were read"
    );
    agent.shutdown().await;
}

/// Hundreds of idle files cost a handful of loop turns per scan, not a busy loop (reading a file
/// must not wake the reader up again).
/// One record stamped in year 9999 is skipped as `bad_timestamp` (beyond `max_future_secs`), and
/// never becomes the node's "newest month"; a record a few hours ahead (clock skew) counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_from_the_far_future_are_skipped() {
    let fixture = Fixture::new("");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let record = |ts: i64, user: &str| {
        format!(
            "2024-02-01 00:00:03,611 INFO  [m] [t]  [c] (A.java:1) - {{\n  \"action\" : \"USER_AUTHORIZATION\",\n  \"timestamp\" : {ts},\n  \"username\" : \"{user}\",\n  \"success\" : true\n}}\n"
        )
    };
    let far = 253_402_214_399_000; // 9999-12-31 23:59:59 UTC
    append(
        &fixture.dir.path().join("logs/jans-auth_audit.log"),
        &format!(
            "{}{}",
            record(far, "time-traveller"),
            record(now + 3 * 3_600_000, "early")
        ),
    );
    let agent = start_and_flush_records(&fixture, 16).await;
    let stats = agent.stats.clone();
    assert_eq!(
        stats.reading.skipped_by_kind[ParseErrorKind::BadTimestamp.index()].load(Ordering::Relaxed),
        1
    );
    let addr = agent.addr;
    let metrics = tokio::task::spawn_blocking(move || get(addr, "/metrics", None).body)
        .await
        .unwrap();
    let month_of = |ms: i64| authstat_core::Month::from_epoch_millis(ms).unwrap();
    assert!(
        metrics.contains(&format!(
            "authstat_monthly_active_users{{month=\"{}\"}}",
            month_of(now)
        )),
        "{metrics}"
    );
    assert!(!metrics.contains("month=\"999912\""), "{metrics}");
    agent.shutdown().await;
}

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
        stats.reading.records.load(Ordering::Relaxed) >= 301 * 9 + 6
    });
    let (loops, scans) = (
        stats.reading.loops.load(Ordering::Relaxed),
        stats.reading.scans.load(Ordering::Relaxed),
    );
    wait_until("20 more scans", || {
        stats.reading.scans.load(Ordering::Relaxed) >= scans + 20
    });
    let turns = stats.reading.loops.load(Ordering::Relaxed) - loops;
    let scanned = stats.reading.scans.load(Ordering::Relaxed) - scans;
    assert!(
        turns <= scanned * 4 + 8,
        "{turns} loop turns for {scanned} scans: the pipeline spins"
    );
    agent.shutdown().await;
}

/// 3,000 matched files (started with a soft limit of 1,024 open files): every record stored,
/// flushes keep their pace, and SIGTERM stops the agent within its grace period with exit 0.
#[test]
fn three_thousand_files() {
    use crate::support::{get, spawn_command};
    use authstat_test_support::{rng::Rng, truth::Truth};
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut truth = Truth::default();
    let mut rng = Rng(0x3000_f11e);
    let feb: authstat_core::Month = "202402".parse().unwrap();
    for i in 0..3000 {
        let text = truth.record(feb, &mut rng);
        std::fs::write(logs.join(format!("jans-auth_audit-{i:04}.log")), text).unwrap();
    }
    let config = dir.path().join("authstat.yaml");
    std::fs::write(
        &config,
        format!(
            "node_id: many\nlisten_addr: 127.0.0.1:0\nflush_interval_secs: 1\nshutdown_grace_secs: 5\n\
             sources:\n  - {{name: audit, type: file, format: janssen_audit, paths: [logs/jans-auth_audit*.log]}}\n\
             backend: {{type: sqlite, path: {}}}\n",
            dir.path().join("db.sqlite").display()
        ),
    )
    .unwrap();
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 1024 && exec {} run --config {}",
            env!("CARGO_BIN_EXE_authstat"),
            config.display()
        ))
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped());
    let mut agent = spawn_command(command);
    let metric = |name: &str| -> u64 {
        let body = get(agent.addr, "/metrics", None).body;
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    // What this node stored (its totals are published after each flush).
    let stored = || -> u64 {
        get(agent.addr, "/metrics", None)
            .body
            .lines()
            .filter(|l| l.starts_with("authstat_authorizations_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    };
    wait_until("every record stored", || stored() == 3000);
    assert_eq!(metric("authstat_files_watched "), 3000);
    // New records in one of the files are stored at the next flushes (1 s apart).
    let more = truth.record(feb, &mut rng);
    crate::support::append(&logs.join("jans-auth_audit-1500.log"), &more);
    wait_until("the new record stored", || stored() == 3001);
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
    assert!(agent.logged(&["stopped"]));
    assert!(!agent.logged(&["did not finish in time"]));
    assert!(!agent.logged(&["Too many open files"]));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authstat"))
        .args(["query", "--month", "202402", "--format", "json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stored: u64 = json["months"][0]["audit"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| v.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(stored, 3001);
    assert_eq!(
        json["months"][0]["monthly_active_users"].as_u64().unwrap() as usize,
        truth.distinct_users(feb)
    );
}

/// A final flush that cannot finish (another process holds the database's write lock) ends at
/// `shutdown_grace_secs`, and then the process exits: nothing keeps it running after "stopped".
#[test]
fn a_stuck_final_flush_does_not_keep_the_process_alive() {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let db = dir.path().join("db.sqlite");
    let config = dir.path().join("authstat.yaml");
    std::fs::write(
        &config,
        format!(
            "node_id: stuck\nlisten_addr: 127.0.0.1:0\nflush_interval_secs: 3600\nshutdown_grace_secs: 1\n\
             sources:\n  - {{name: audit, type: file, format: janssen_audit, paths: [logs/*.log]}}\n\
             backend: {{type: sqlite, path: {}, busy_timeout_ms: 600000}}\n",
            db.display()
        ),
    )
    .unwrap();
    let mut agent = crate::support::spawn_agent(&config, dir.path(), &[]);
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/logs/jans-auth_audit.log"
        ),
        logs.join("a.log"),
    )
    .unwrap();
    wait_until("the log to be read", || {
        let body = crate::support::get(agent.addr, "/metrics", None).body;
        body.contains("authstat_records_read_total 9")
    });
    let mut lock = SqliteConnection::establish(db.to_str().unwrap()).unwrap();
    lock.batch_execute("BEGIN IMMEDIATE").unwrap();
    // wait_exit fails the test if the process is still there after 30 s.
    agent.signal("TERM");
    let status = agent.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(agent.logged(&["did not finish in time"]));
    assert!(agent.logged(&["stopped"]));
    lock.batch_execute("ROLLBACK").unwrap();
}
