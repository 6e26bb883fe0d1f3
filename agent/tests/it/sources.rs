//! A source that cannot be read is visible: `check-config` fails naming the path and the
//! system's error; a running agent says it on `/readyz` (503) and in
//! `authstat_source_errors_total`, and logs it once, not at every scan.
//!
//! Permissions do not stop root, so when the suite runs as root the agent runs as `nobody`
//! (`setpriv`, util-linux).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::{get, spawn_command, wait_until};

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// `authstat <args>`, as an unprivileged user when we are root.
fn authstat(args: &[&str]) -> Command {
    let bin = env!("CARGO_BIN_EXE_authstat");
    let mut command = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        Command::new(bin)
    };
    command.args(args).env("RUST_LOG", "info");
    command
}

fn open_to_all(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// A configuration whose log directory nobody may read.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    open_to_all(dir.path());
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("jans-auth_audit.log"), "").unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o000)).unwrap();
    let config = dir.path().join("authstat.yaml");
    std::fs::write(
        &config,
        "node_id: sources-test\nlisten_addr: 127.0.0.1:0\n\
         sources:\n  - {name: audit, type: file, format: janssen_audit, paths: [logs/jans-auth_audit*.log], poll_interval_ms: 50}\n\
         backend: {type: memory}\n",
    )
    .unwrap();
    open_to_all(&config);
    (dir, logs, config)
}

#[test]
fn check_config_fails_naming_the_unreadable_path() {
    let (_dir, logs, config) = setup();
    let out = authstat(&["check-config", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("source audit: {}", logs.display()))
            && err.contains("Permission denied"),
        "{err}"
    );
}

#[test]
fn a_running_agent_shows_the_unreadable_source() {
    let (_dir, logs, config) = setup();
    let agent = spawn_command({
        let mut c = authstat(&["run", "--config", config.to_str().unwrap()]);
        c.stderr(std::process::Stdio::piped());
        c
    });
    wait_until("/readyz to name the source", || {
        let r = get(agent.addr, "/readyz", None);
        r.status == 503 && r.body.contains("source audit") && r.body.contains("Permission denied")
    });
    let metrics = get(agent.addr, "/metrics", None).body;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "authstat_source_errors_total{source=\"audit\",reason=\"permission_denied\"}",
            )
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let count: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1, "{line}");
    // Many scans later (one every 50 ms), the warning was said once.
    wait_until("more scans", || {
        let again = get(agent.addr, "/metrics", None).body;
        again
            .lines()
            .find(|l| l.starts_with("authstat_source_errors_total{source=\"audit\""))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .is_some_and(|n| n >= count + 10)
    });
    let warnings = agent
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("cannot read a configured path"))
        .count();
    assert_eq!(warnings, 1);
    // Readable again: ready, and said so.
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).unwrap();
    wait_until("/readyz to be ready", || {
        get(agent.addr, "/readyz", None).status == 200
    });
    assert!(agent.logged(&["the source's paths can be read again"]));
}
