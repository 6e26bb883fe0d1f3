//! One node id, one agent, with the real binary: a second agent with the same node id is refused
//! (exit 78, naming both instances); when the first stops renewing its lease (it hangs), another
//! one takes the node over, and the first one, when it comes back, is fenced: its flushes are
//! refused, it says so at ERROR and on `/readyz`, and stops reading. Both read the same files
//! (a replacement on the same host), and every record is counted exactly once.

use std::path::Path;
use std::process::Command;

use crate::support::{Spawned, append, get, spawn_agent, wait_until};
use authstat_test_support::{rng::Rng, truth::Truth};

pub fn instance_of(agent: &Spawned) -> String {
    let log = agent.log.lock().unwrap();
    let line = log
        .iter()
        .find(|l| l.contains("node id claimed") || l.contains("took the node id over"))
        .unwrap_or_else(|| panic!("no claim logged:\n{}", log.join("\n")));
    let at = line.find("instance=").expect("instance=") + "instance=".len();
    line[at..].split_whitespace().next().unwrap().to_owned()
}

pub fn query_authentications(config: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_authstat"))
        .args(["query", "--month", "202402", "--format", "json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["months"][0]["audit"].clone()
}

/// A second agent with the node id of a live one: exit 78, naming both instances.
fn assert_second_agent_refused(config: &Path, first_id: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_authstat"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node id same-node is in use by another agent")
            && err.contains(&format!("instance {first_id}"))
            && err.contains("this is instance ")
            && err.contains("--take-over"),
        "{err}"
    );
}

/// Every audit record stored, whatever its action and outcome.
pub fn stored_records(audit: &serde_json::Value) -> u64 {
    audit
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| v.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum()
}

fn scenario(backend_yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("jans-auth_audit.log");
    let config = dir.path().join("authstat.yaml");
    std::fs::write(
        &config,
        format!(
            "node_id: same-node\nlisten_addr: 127.0.0.1:0\nflush_interval_secs: 1\nnode_lease_secs: 3\n\
             sources:\n  - {{name: audit, type: file, format: janssen_audit, paths: [logs/jans-auth_audit*.log], poll_interval_ms: 100}}\n\
             {backend_yaml}"
        ),
    )
    .unwrap();
    let mut rng = Rng(0x00de_ad0f_0000_0001);
    let mut truth = Truth::default();
    let feb: authstat_core::Month = "202402".parse().unwrap();
    let mut write = |n: u64, truth: &mut Truth| {
        let text: String = (0..n).map(|_| truth.record(feb, &mut rng)).collect();
        append(&log, &text);
    };
    write(500, &mut truth);
    let first = spawn_agent(&config, dir.path(), &[]);
    let first_id = instance_of(&first);

    // A second agent with the same node id: refused, naming both instances, exit 78.
    assert_second_agent_refused(&config, &first_id);

    // The first agent hangs (SIGSTOP) with records it may not have flushed; its lease expires
    // and a replacement takes the node over by itself.
    // Where the STOP lands does not matter (every outcome must count each record once); the
    // pause only makes "some read, some flushed, some not" likely.
    write(300, &mut truth);
    std::thread::sleep(std::time::Duration::from_millis(300));
    first.signal("STOP");
    write(200, &mut truth);
    // Not a hope but a bound: a stopped agent renews nothing, so its 3 s lease has expired
    // 3 s after the STOP at the latest.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let second = spawn_agent(&config, dir.path(), &[]);
    let second_id = instance_of(&second);
    assert_ne!(first_id, second_id);
    assert!(
        second.logged(&["took the node id over from an expired claim"]),
        "{:?}",
        second.log.lock().unwrap()
    );
    write(100, &mut truth);

    // The first one comes back: fenced, loudly, and it stops reading.
    first.signal("CONT");
    wait_until("the first agent to be fenced", || {
        first.logged(&["ERROR", "fenced"])
    });
    let ready = get(first.addr, "/readyz", None);
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("fenced") && ready.body.contains(&second_id),
        "{}",
        ready.body
    );
    let metrics = get(first.addr, "/metrics", None).body;
    assert!(metrics.contains("authstat_node_fenced 1"), "{metrics}");
    assert!(
        !metrics.contains("authstat_flushes_total{result=\"fenced\"} 0"),
        "{metrics}"
    );
    write(100, &mut truth);

    // Every record exactly once: the replacement read what the first one did not store.
    let expected = &truth.expected()[0].counters;
    let want = serde_json::json!({
        "USER_AUTHORIZATION": {
            "success": expected.audit.get(&(authstat_core::event::AuditAction::UserAuthorization, authstat_core::counters::Outcome::Success)).copied().unwrap_or(0),
            "failure": expected.audit.get(&(authstat_core::event::AuditAction::UserAuthorization, authstat_core::counters::Outcome::Failure)).copied().unwrap_or(0),
        }
    });
    wait_until("every record stored once", || {
        query_authentications(&config)["USER_AUTHORIZATION"] == want["USER_AUTHORIZATION"]
    });
    let audit = query_authentications(&config);
    assert_eq!(stored_records(&audit), truth.records, "{audit}");
    let mut first = first;
    first.signal("TERM");
    assert_eq!(first.wait_exit().code(), Some(0));

    // kill -9 of the owner: its replacement on the same host sees that process gone and takes
    // over at once, without waiting for the lease.
    let mut second = second;
    second.signal("KILL");
    second.wait_exit();
    let third = spawn_agent(&config, dir.path(), &[]);
    assert!(
        third.logged(&["previous agent is not running any more"]),
        "{:?}",
        third.log.lock().unwrap()
    );
    // What really happened, not an operator's --take-over that nobody gave.
    assert!(
        third.logged(&["took the node id over from a crashed predecessor on this host"])
            && !third.logged(&["--take-over"]),
        "{:?}",
        third.log.lock().unwrap()
    );
    write(50, &mut truth);
    let all = truth.records;
    wait_until("every record stored once, after the kill", || {
        stored_records(&query_authentications(&config)) == all
    });
    let mut third = third;
    third.signal("TERM");
    assert_eq!(third.wait_exit().code(), Some(0));
}

#[test]
fn two_agents_one_node_id_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&format!(
        "backend: {{type: sqlite, path: {}}}\n",
        dir.path().join("shared.db").display()
    ));
}

#[cfg(feature = "postgres")]
#[test]
fn two_agents_one_node_id_postgres() {
    let url = authstat_test_support::db::postgres("authstat_owner");
    scenario(&format!("backend: {{type: postgres, url: \"{url}\"}}\n"));
}

/// `--take-over` from a live agent: the operator's decision; the old agent is fenced.
#[test]
fn take_over_from_a_live_agent() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("authstat.yaml");
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    std::fs::write(
        &config,
        format!(
            "node_id: same-node\nlisten_addr: 127.0.0.1:0\nflush_interval_secs: 1\n\
             sources:\n  - {{name: audit, type: file, format: janssen_audit, paths: [logs/*.log]}}\n\
             backend: {{type: sqlite, path: {}}}\n",
            dir.path().join("db.sqlite").display()
        ),
    )
    .unwrap();
    let first = spawn_agent(&config, dir.path(), &[]);
    let mut command = Command::new(env!("CARGO_BIN_EXE_authstat"));
    command
        .args(["run", "--take-over", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped());
    let second = crate::support::spawn_command(command);
    assert!(second.logged(&["took the node id over from a live claim"]));
    wait_until("the first agent to be fenced", || {
        first.logged(&["ERROR", "fenced"])
    });
    for mut agent in [first, second] {
        agent.signal("TERM");
        assert_eq!(agent.wait_exit().code(), Some(0));
    }
}

/// The node's last holder ran elsewhere (another container or host) and is gone without
/// releasing its claim: nothing can prove it dead, so the new agent waits — answering its
/// probes, `/readyz` saying what it waits for — and takes the node over when the lease runs out.
/// It never exits (a supervisor that does not restart on exit code 78 would leave it down).
#[test]
fn a_holder_that_cannot_be_proven_dead_is_waited_for() {
    use authstat_core::store::{ClaimRequest, Instance, NodeClaim, TakeOver};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let config = dir.path().join("authstat.yaml");
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    std::fs::write(
        &config,
        format!(
            "node_id: same-node\nlisten_addr: 127.0.0.1:0\nflush_interval_secs: 1\n\
             sources:\n  - {{name: audit, type: file, format: janssen_audit, paths: [logs/*.log]}}\n\
             backend: {{type: sqlite, path: {}}}\n",
            db.display()
        ),
    )
    .unwrap();
    // The vanished holder: another host, a lease of 4 s from now.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(authstat_backends::build(
            &authstat_backends::options::SqliteConfig::backend(
                &authstat_backends::options::SqliteConfig {
                    path: db.clone(),
                    busy_timeout_ms: 5000,
                    pool_size: 1,
                },
            ),
        ))
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let claim = rt
        .block_on(store.claim_node(&ClaimRequest {
            node: authstat_core::NodeId::new("same-node").unwrap(),
            instance: Instance {
                id: "vanished".into(),
                host: "another-host".into(),
                pid: 1,
                started_at_ms: now - 60_000,
                locality: "another-boot/pid:[1]".into(),
            },
            until_ms: now + 4_000,
            now_ms: now,
            take_over: TakeOver::Never,
        }))
        .unwrap();
    assert!(matches!(claim, NodeClaim::Granted { .. }));
    drop(store);

    let mut command = Command::new(env!("CARGO_BIN_EXE_authstat"));
    command
        .args(["run", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped());
    let mut agent = crate::support::spawn_until(command, "backend is ready) addr=");
    wait_until("the wait in the log", || {
        agent.logged(&["the node id is held by another agent: waiting"])
    });
    let ready = get(agent.addr, "/readyz", None);
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("held by") && ready.body.contains("another-host"),
        "{}",
        ready.body
    );
    assert_eq!(get(agent.addr, "/livez", None).status, 200);
    wait_until("the take-over once the lease ran out", || {
        agent.logged(&["took the node id over from an expired claim"])
    });
    wait_until("ready", || get(agent.addr, "/readyz", None).status == 200);
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
}
