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
    assert_eq!(json["response"][1]["monthly_active_users"], 2);
}

#[test]
fn a_bad_configuration_exits_64_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "sources:\n  - name: a\n    type: janssen_audit\n    paths: [x.log]\nflush_interval_secs: never\n").unwrap();
    for args in [vec!["run", "--config"], vec!["check-config"]] {
        let out = authstat().args(&args).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.yaml:5:22: flush_interval_secs: invalid type"),
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
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn check_config_reports_sources_and_backend() {
    let fixture = Fixture::new("");
    let out = run_ok(authstat().arg("check-config").arg(fixture.config_path()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("source audit (janssen_audit): 1 file(s) match now"),
        "{text}"
    );
    assert!(text.contains("backend sqlite: reachable"), "{text}");
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
    let out = authstat().arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("authstat "));
}

/// The columns of `authstat query --month 202402`'s February row: month, active users,
/// authentications ok, failed, tokens.
fn february(fixture: &Fixture) -> Vec<String> {
    let out = authstat()
        .args(["query", "--month", "202402", "--config"])
        .arg(fixture.config_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("202402"))
        .unwrap_or_else(|| panic!("{text}"));
    row.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn backfill_twice_counts_once() {
    let fixture = Fixture::new("");
    let log = fixture.dir.path().join("logs/jans-auth_audit.log");
    for _ in 0..2 {
        run_ok(
            authstat()
                .args(["backfill", "--config"])
                .arg(fixture.config_path())
                .arg(&log),
        );
    }
    // admin and jose active; 2 successful and 1 failed authentication, counted once.
    assert_eq!(&february(&fixture)[..4], ["202402", "2", "2", "1"]);
}

/// Compressed rotated files are read too, and runs over different sets of files never count a
/// file twice.
#[test]
fn backfill_reads_gz_and_is_idempotent_across_runs() {
    use std::io::Write;
    let fixture = Fixture::new("");
    let logs = fixture.dir.path().join("logs");
    let plain = std::fs::read(logs.join("jans-auth_audit.log")).unwrap();
    let gz_path = logs.join("jans-auth_audit-2024-02-01-1.log.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz_path).unwrap(),
        flate2::Compression::default(),
    );
    encoder.write_all(&plain).unwrap();
    encoder.finish().unwrap();
    let tokens = logs.join("token-events.jsonl");
    let run = |args: &[&str], files: &[&Path]| {
        let out = run_ok(
            authstat()
                .arg("backfill")
                .args(args)
                .arg("--config")
                .arg(fixture.config_path())
                .args(files),
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    run(&[], &[&gz_path]);
    assert!(run(&[], &[&gz_path]).contains("was read before; skipped"));
    run(&["--format", "token-events"], &[&tokens]);
    run(&[], &[&gz_path]);
    run(&["--format", "token-events"], &[&tokens]);
    // The audit log once (2 users, 2 ok, 1 failed), the 6 token events once.
    assert_eq!(&february(&fixture)[..5], ["202402", "2", "2", "1", "6"]);
}
