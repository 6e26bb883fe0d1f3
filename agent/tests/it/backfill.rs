//! `authstat backfill`: old files counted once, whatever else has read them.

use std::path::Path;

use crate::support::*;

/// A directory beside the fixture's logs that no configured source follows, with copies of
/// the sample files: what an operator backfills.
fn old_logs(fixture: &Fixture) -> std::path::PathBuf {
    let old = fixture.dir.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/logs");
    for f in ["jans-auth_audit.log", "token-events.jsonl"] {
        std::fs::copy(examples.join(f), old.join(f)).unwrap();
    }
    old
}

fn backfill(fixture: &Fixture, args: &[&str], files: &[&Path]) -> std::process::Output {
    authstat()
        .arg("backfill")
        .args(args)
        .arg("--config")
        .arg(fixture.config_path())
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn backfill_twice_counts_once() {
    let fixture = Fixture::new("");
    let log = old_logs(&fixture).join("jans-auth_audit.log");
    for _ in 0..2 {
        let out = backfill(&fixture, &[], &[&log]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // admin and jose active; 2 successful and 1 failed authentication, counted once.
    assert_eq!(&february(&fixture)[..4], ["202402", "2", "2", "1"]);
    // The audit log's two clients of successful authorizations and token requests.
    let months = query_json(&fixture)["months"].clone();
    let february = months
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["month"] == "202402")
        .unwrap();
    assert_eq!(february["monthly_active_clients"], 2, "{february}");
}

/// Compressed rotated files are read too, and runs over different sets of files never count a
/// file twice — a `.gz` of a file read before is recognised by its content.
#[test]
fn backfill_reads_gz_and_is_idempotent_across_runs() {
    use std::io::Write;
    let fixture = Fixture::new("");
    let old = old_logs(&fixture);
    let plain = std::fs::read(old.join("jans-auth_audit.log")).unwrap();
    let gz_path = old.join("jans-auth_audit-2024-02-01-1.log.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz_path).unwrap(),
        flate2::Compression::default(),
    );
    encoder.write_all(&plain).unwrap();
    encoder.finish().unwrap();
    let tokens = old.join("token-events.jsonl");
    let ok = |args: &[&str], files: &[&Path]| {
        let out = backfill(&fixture, args, files);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(ok(&[], &[&gz_path]).contains("backfill: 9 records"));
    assert!(
        ok(&[], &[&gz_path]).contains("backfill: 0 records"),
        "read before"
    );
    ok(&["--format", "token-events"], &[&tokens]);
    assert!(ok(&[], &[&gz_path, &old.join("jans-auth_audit.log")]).contains("backfill: 0 records"));
    ok(&["--format", "token-events"], &[&tokens]);
    // The audit log once (2 users, 2 ok, 1 failed), the 6 token events once.
    assert_eq!(&february(&fixture)[..5], ["202402", "2", "2", "1", "6"]);
}

/// A file that a configured source follows is the agent's to count: backfill refuses it,
/// naming the file and the source, and stores nothing of it.
#[test]
fn backfill_refuses_the_files_an_agent_follows() {
    let fixture = Fixture::new("");
    let log = fixture.dir.path().join("logs/jans-auth_audit.log");
    let out = backfill(&fixture, &[], &[&log]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("jans-auth_audit.log: followed by source 'audit'"),
        "{err}"
    );
    assert!(
        february_row(&fixture).is_none(),
        "nothing stored: {:?}",
        february_row(&fixture)
    );
}

/// Backfill beside an agent that has read the same content (here: a copy of its log taken
/// elsewhere): refused, naming the node that counted it. And the other way round: what a
/// backfill read first, an agent that meets the same file later continues after.
#[test]
fn backfill_and_agent_never_count_one_file_twice() {
    let fixture = Fixture::new("");
    let mut agent = fixture.spawn();
    // The pipeline reads before it looks at its commands: the final flush holds the log.
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
    let copy = old_logs(&fixture).join("jans-auth_audit.log");
    let out = backfill(&fixture, &[], &[&copy]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node example-node (source 'audit') read the same content first"),
        "{err}"
    );
    assert_eq!(&february(&fixture)[..4], ["202402", "2", "2", "1"]);

    // A second installation: backfill first, then the file shows up where the agent looks.
    let fixture = Fixture::new("");
    let logs = fixture.dir.path().join("logs");
    let old = old_logs(&fixture);
    std::fs::remove_file(logs.join("jans-auth_audit.log")).unwrap();
    let out = backfill(&fixture, &[], &[&old.join("jans-auth_audit.log")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&february(&fixture)[..4], ["202402", "2", "2", "1"]);
    std::fs::copy(
        old.join("jans-auth_audit.log"),
        logs.join("jans-auth_audit.log"),
    )
    .unwrap();
    let mut agent = fixture.spawn();
    wait_until("the agent to take the file over from the backfill", || {
        agent.logged(&["continuing a file where `authstat backfill` stopped"])
    });
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
    assert_eq!(
        &february(&fixture)[..4],
        ["202402", "2", "2", "1"],
        "counted once"
    );
    // Per node: the backfill node counted the audit log, the agent only the token events.
    let out = run_ok(
        authstat()
            .args([
                "query",
                "--month",
                "202402",
                "--format",
                "json",
                "--by-node",
                "--config",
            ])
            .arg(fixture.config_path()),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = json["nodes"].as_array().unwrap();
    let node = |id: &str| {
        nodes
            .iter()
            .find(|n| n["node"] == id)
            .unwrap_or_else(|| panic!("{json}"))["months"][0]
            .clone()
    };
    assert_eq!(
        node("example-node-backfill")["authentications"]["success"],
        2
    );
    assert_eq!(node("example-node")["authentications"]["success"], 0);
    assert_eq!(
        node("example-node")["tokens"]["client_credentials"]["access_token"],
        2
    );
    assert_eq!(json["months"][0]["authentications"]["success"], 2);
}

/// A backfill into the backend of a running agent shows in the agent's API at once, although
/// the month was cached (past months are cached for an hour).
#[test]
fn the_api_shows_a_backfill_at_once() {
    let fixture = Fixture::new("");
    std::fs::remove_file(fixture.dir.path().join("logs/token-events.jsonl")).unwrap();
    let mut agent = fixture.spawn();
    let tokens = || {
        let r = get(
            agent.addr,
            "/jans-auth/restv1/internal/stat?month=202402",
            Some(TOKEN),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["response"][0]["token_count_per_granttype"]["client_credentials"]["access_token"]
            .clone()
    };
    assert_eq!(
        tokens(),
        serde_json::Value::Null,
        "nothing stored yet: cached"
    );
    let old = old_logs(&fixture);
    let out = backfill(
        &fixture,
        &["--format", "token-events"],
        &[&old.join("token-events.jsonl")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the backfilled tokens in the API", || {
        tokens() == serde_json::json!(2)
    });
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
}

/// Progress when stderr is not a terminal: log lines (files and bytes at the start; bytes,
/// records and rate at the end) instead of a bar; on a terminal (`script` gives one), a bar with
/// the rate and the ETA.
#[test]
fn backfill_progress_on_a_pipe_and_on_a_terminal() {
    let fixture = Fixture::new("");
    let log = old_logs(&fixture).join("jans-auth_audit.log");
    let size = std::fs::metadata(&log).unwrap().len();
    let out = backfill(&fixture, &[], &[&log]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let start = err
        .lines()
        .find(|l| l.contains("backfill: reading"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        start.contains("files=1") && start.contains(&format!("bytes={size}")),
        "{start}"
    );
    let end = err
        .lines()
        .find(|l| l.contains("backfill: read") && !l.contains("reading"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        end.contains(&format!("bytes={size}"))
            && end.contains("records=9")
            && end.contains("bytes_per_sec="),
        "{end}"
    );
    assert!(!err.contains('\r'), "no bar on a pipe");

    // On a terminal: the bar (drawn with carriage returns), no log lines about progress.
    let fixture = Fixture::new("");
    let log = old_logs(&fixture).join("jans-auth_audit.log");
    let command = format!(
        "{} backfill --config {} {}",
        env!("CARGO_BIN_EXE_authstat"),
        fixture.config_path().display(),
        log.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("script (util-linux) gives the backfill a terminal");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("backfill: reading"), "{text}");
    assert!(
        text.contains("9 records") || text.contains("read 9 records"),
        "{text}"
    );
}

/// Writes one audit log per entry of `sizes`, of that many records (Janssen's multi-line form,
/// distinct content per file, spread over January to March 2024) under `dir`; returns their paths and
/// the ground truth: (action, outcome) → records, and per month the distinct users of the
/// successful records of the default active-user actions.
#[allow(clippy::type_complexity)]
fn generated_logs(
    dir: &Path,
    sizes: &[usize],
) -> (
    Vec<std::path::PathBuf>,
    std::collections::BTreeMap<(String, String), u64>,
    std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) {
    use authstat_test_support::janssen::AuditRecord;
    let actions = [
        "USER_AUTHORIZATION",
        "TOKEN_REQUEST",
        "SESSION_AUTHENTICATED",
    ];
    let mut counts = std::collections::BTreeMap::new();
    let mut users = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    let mut paths = Vec::new();
    let start = 1_704_067_200_000i64; // 2024-01-01T00:00:00Z
    let mut n = 0;
    for (f, &size) in sizes.iter().enumerate() {
        let mut text = String::new();
        for i in 0..size {
            n += 1;
            let ts = start + (n as i64) * 7_777_000 % (89 * 86_400_000);
            let action = actions[n % 3];
            let success = !n.is_multiple_of(5);
            let user = format!("user{}", (n * 7919) % 3000);
            let mut record = AuditRecord::new(action, ts, Some(&user), success);
            record.thread = format!("worker-{f}");
            record.ip = format!("10.0.{f}.{}", i % 250);
            text.push_str(&record.text());
            let outcome = if success { "success" } else { "failure" };
            *counts
                .entry((action.to_owned(), outcome.to_owned()))
                .or_insert(0u64) += 1;
            // The default active-user actions: USER_AUTHORIZATION and TOKEN_REQUEST.
            if success && action != "SESSION_AUTHENTICATED" {
                let month = authstat_core::Month::from_epoch_millis(ts)
                    .unwrap()
                    .to_string();
                users.entry(month).or_default().insert(user);
            }
        }
        let path = dir.join(format!("audit-{f}.log"));
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    (paths, counts, users)
}

fn query_json(fixture: &Fixture) -> serde_json::Value {
    let out = run_ok(
        authstat()
            .args([
                "query",
                "--format",
                "json",
                "--month",
                "202401 202402 202403",
                "--config",
            ])
            .arg(fixture.config_path()),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Files read on several threads store exactly what one thread stores, and what the generator
/// wrote (counts by action and outcome; distinct users within the HLL's error). The files are of
/// different sizes, around and above the slice a thread reads of a file before it takes the next
/// (256 KiB, ~600 records), so files end at different times and are handed between threads.
#[test]
fn backfill_on_several_threads_stores_what_one_thread_stores() {
    let data = tempfile::tempdir().unwrap();
    let sizes = [3000, 200, 5000, 1, 3000, 1200, 4000, 600];
    let (paths, counts, users) = generated_logs(data.path(), &sizes);
    let files: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let mut answers = Vec::new();
    for threads in ["1", "4"] {
        let fixture = Fixture::new("");
        let out = backfill(&fixture, &["--threads", threads], &files);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        answers.push(query_json(&fixture));
    }
    assert_eq!(answers[0], answers[1], "one thread and four threads");
    for month in answers[0]["months"].as_array().unwrap() {
        let month_name = month["month"].as_str().unwrap();
        let truth = users.get(month_name).map_or(0, |u| u.len()) as f64;
        let estimate = month["monthly_active_users"].as_f64().unwrap();
        assert!(
            (estimate - truth).abs() <= truth * 0.03 + 2.0,
            "{month_name}: {estimate} users, {truth} in truth"
        );
    }
    assert_eq!(audit_counts(&answers[0]), counts);
}

/// The counts by action and outcome in a `query_json` answer.
fn audit_counts(answer: &serde_json::Value) -> std::collections::BTreeMap<(String, String), u64> {
    let mut stored = std::collections::BTreeMap::new();
    for month in answer["months"].as_array().unwrap() {
        for (action, outcomes) in month["audit"].as_object().unwrap() {
            for (outcome, n) in outcomes.as_object().unwrap() {
                if n.as_u64().unwrap() > 0 {
                    *stored
                        .entry((action.clone(), outcome.clone()))
                        .or_insert(0u64) += n.as_u64().unwrap();
                }
            }
        }
    }
    stored
}

/// A fixture whose backfills flush every second along the way.
fn flushing_every_second() -> Fixture {
    let fixture = Fixture::new("");
    let path = fixture.config_path();
    let config = std::fs::read_to_string(&path).unwrap();
    assert!(config.contains("flush_interval_secs: 3600"));
    std::fs::write(
        &path,
        config.replace("flush_interval_secs: 3600", "flush_interval_secs: 1"),
    )
    .unwrap();
    fixture
}

/// A long backfill flushes along the way (every flush interval), so that it keeps its node and,
/// stopped, goes on from its last flush: here it dies right after its first flush stored, and the
/// second run reads exactly the records after that flush and stores what one uninterrupted run
/// stores.
#[test]
fn a_stopped_backfill_goes_on_from_its_last_flush() {
    use std::os::unix::process::ExitStatusExt;
    // The first flush must come before the end: enough data for more than a second of reading
    // (grown if this machine reads it faster).
    for per_file in [8_000, 32_000, 128_000] {
        let data = tempfile::tempdir().unwrap();
        let (paths, counts, _) = generated_logs(data.path(), &[per_file; 4]);
        let files: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
        let total: u64 = counts.values().sum();
        let fixture = flushing_every_second();
        let died = authstat()
            .args(["backfill", "--threads", "1", "--config"])
            .arg(fixture.config_path())
            .args(&files)
            .env("AUTHSTAT_TEST_ABORT_BEFORE_ACK", "1")
            .output()
            .unwrap();
        assert_eq!(
            died.status.signal(),
            Some(6),
            "aborted by the hook: {died:?}"
        );
        let first: u64 = audit_counts(&query_json(&fixture)).values().sum();
        if first == total {
            continue; // read to the end within a second: more data
        }
        assert!(first > 0, "the first flush stored records");
        let out = backfill(&fixture, &["--threads", "2"], &files);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.starts_with(&format!("backfill: {} records,", total - first)),
            "only what the first run had not stored is read again: {said} ({first} of {total} stored before)"
        );
        let resumed = query_json(&fixture);
        assert_eq!(audit_counts(&resumed), counts);
        let whole = Fixture::new("");
        assert!(backfill(&whole, &[], &files).status.success());
        assert_eq!(resumed, query_json(&whole), "as one uninterrupted run");
        return;
    }
    panic!("every backfill read to its end within its first flush interval");
}
