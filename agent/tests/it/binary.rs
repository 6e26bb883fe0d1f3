//! The real binary: the README's run command, exit codes, and the other subcommands.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// Runs `command` and fails the test, showing its stderr, unless it succeeds.
fn run_ok(command: &mut Command) -> std::process::Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn authstat() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_authstat"));
    c.env_remove("RUST_LOG").env_remove("AUTHSTAT_CONFIG");
    c
}

/// The README's first command, in a copy of the repository's examples: it starts on the
/// embedded default, ingests the sample logs, and serves the numbers with the example token.
/// SIGTERM stops it with exit code 0 after a final flush.
#[test]
fn the_readme_run_command_serves_the_sample_statistics() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let command = "cargo run --release -p authstat -- run --config examples/authstat.yaml";
    assert!(readme.contains(command), "the README must show: {command}");
    assert!(
        readme.contains("Authorization: Bearer example-token"),
        "the README shows the curl with the token"
    );

    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    std::fs::create_dir_all(dir.path().join("examples/logs")).unwrap();
    std::fs::copy(
        examples.join("authstat.yaml"),
        dir.path().join("examples/authstat.yaml"),
    )
    .unwrap();
    for f in ["jans-auth_audit.log", "token-events.jsonl"] {
        std::fs::copy(
            examples.join("logs").join(f),
            dir.path().join("examples/logs").join(f),
        )
        .unwrap();
    }
    let mut agent = spawn_agent(
        Path::new("examples/authstat.yaml"),
        dir.path(),
        &[("AUTHSTAT_LISTEN_ADDR", "127.0.0.1:0")],
    );
    let addr = agent.addr;
    wait_until("the health check to say running", || {
        get(addr, "/jans-auth/sys/health-check", None).body
            == r#"{"status": "running", "db_status":"online"}"#
    });
    // The example flushes every 5 seconds; local flushes refresh cached answers.
    wait_until("February's statistics", || {
        let r = get(
            addr,
            "/jans-auth/restv1/internal/stat?month=202402",
            Some(TOKEN),
        );
        r.status == 200 && r.json()["response"][0]["monthly_active_users"] == 2
    });
    let r = get(
        addr,
        "/jans-auth/restv1/internal/stat?month=202402",
        Some(TOKEN),
    );
    assert_eq!(
        r.json()["response"][0]["token_count_per_granttype"]["client_credentials"]["access_token"],
        2
    );

    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
    assert!(
        dir.path().join("examples/data/authstat.db").exists(),
        "the SQLite file of the embedded default"
    );

    // What it stored, without a server.
    let out = run_ok(
        authstat()
            .args([
                "query",
                "--config",
                "examples/authstat.yaml",
                "--month",
                "202401 202402",
                "--format",
                "json",
            ])
            .current_dir(dir.path()),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let feb = &json["months"][1];
    assert_eq!(feb["month"], "202402");
    assert_eq!(feb["monthly_active_users"], 2);
    assert_eq!(feb["tokens"]["client_credentials"]["access_token"], 2);
}

#[test]
fn a_bad_configuration_exits_78_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "sources:\n  - name: a\n    type: file\n    format: janssen_audit\n    paths: [x.log]\nflush_interval_secs: never\n").unwrap();
    for args in [vec!["run", "--config"], vec!["check-config"]] {
        let out = authstat().args(&args).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.yaml:6:22: flush_interval_secs: invalid type"),
            "{err}"
        );
    }
    let out = authstat()
        .args([
            "query",
            "--config",
            "/nonexistent.yaml",
            "--month",
            "202402",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "a missing configuration file");
    // Formats and source types come from the plugin registry.
    for (source, says) in [
        (
            "{name: a, type: file, format: syslog, paths: [x.log]}",
            "sources[0].format: unknown format `syslog` (the formats: janssen_audit, token_events)",
        ),
        (
            "{name: a, type: kafka, format: janssen_audit}",
            "sources[0].type: unknown source type `kafka` (the types: file)",
        ),
    ] {
        std::fs::write(&path, format!("sources:\n  - {source}\n")).unwrap();
        let out = authstat().arg("check-config").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(78));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
    // A bad command-line value is a usage error, named as such.
    let fixture = Fixture::new("");
    let out = authstat()
        .args(["query", "--month", "2024-02", "--config"])
        .arg(fixture.config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--month") && !err.contains("bad configuration"),
        "{err}"
    );
}

#[test]
fn check_config_reports_sources_and_backend() {
    let fixture = Fixture::new("");
    let out = run_ok(authstat().arg("check-config").arg(fixture.config_path()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("source audit (file, janssen_audit): 1 input(s) now"),
        "{text}"
    );
    assert!(text.contains("backend sqlite: reachable"), "{text}");
    // A node id copied from an example is called out; a real one is not.
    assert!(
        text.contains("warning: node id 'example-node' looks like a placeholder"),
        "{text}"
    );
    let path = fixture.config_path();
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        config.replace("node_id: example-node", "node_id: auth-7"),
    )
    .unwrap();
    let out = run_ok(authstat().args(["check-config", "--config"]).arg(&path));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("warning"), "{text}");
}

#[test]
fn hll_inspect_decodes_janssen_values() {
    let out = authstat()
        .args(["hll", "inspect", "Eo9/AAAAAAWGA08AAAAABqaNxgAAAAAGpo3H"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "type:               EXPLICIT",
        "log2m:              15 (32768 registers)",
        "cardinality:        3",
    ] {
        assert!(text.contains(line), "{text}");
    }
    let out = authstat()
        .args(["hll", "inspect", "\\x118f7f"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("EMPTY"));
    let out = authstat()
        .args(["hll", "inspect", "not-an-hll!"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("neither Base64 nor hex") && !err.contains("bad configuration"),
        "{err}"
    );
    let out = authstat().arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("authstat "));
}

/// The columns of `authstat query --month 202402`'s February row: month, active users,
/// authentications ok, failed, tokens.
fn february(fixture: &Fixture) -> Vec<String> {
    february_row(fixture).unwrap_or_else(|| panic!("no February row"))
}

fn february_row(fixture: &Fixture) -> Option<Vec<String>> {
    let out = authstat()
        .args(["query", "--month", "202402", "--config"])
        .arg(fixture.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().find(|l| l.starts_with("202402"))?;
    Some(row.split_whitespace().map(str::to_owned).collect())
}

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

/// Renaming a source (its stored positions are keyed by its name) neither loses its files nor
/// reads them twice: the renamed source continues where the old name stood.
#[test]
fn a_renamed_source_continues_where_it_stood() {
    let fixture = Fixture::new("");
    let mut agent = fixture.spawn();
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
    assert_eq!(&february(&fixture)[..4], ["202402", "2", "2", "1"]);

    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("  - name: audit\n", "  - name: audit-renamed\n"),
    )
    .unwrap();
    // One more successful authorization by a new user, in February.
    append(
        &fixture.dir.path().join("logs/jans-auth_audit.log"),
        "2024-02-05 10:00:00,000 INFO  [m] [t]  [c] (A.java:1) - {\n  \"action\" : \"USER_AUTHORIZATION\",\n  \"timestamp\" : 1707127200000,\n  \"username\" : \"newcomer\",\n  \"success\" : true\n}\n",
    );
    let mut agent = fixture.spawn();
    wait_until("the renamed source to continue", || {
        agent.logged(&["a renamed source continues where it stood"])
    });
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
    assert_eq!(&february(&fixture)[..4], ["202402", "3", "3", "1"]);
}
