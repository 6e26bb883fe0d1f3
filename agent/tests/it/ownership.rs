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
        "{:?}: {}",
        out.status,
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

/// A stopped agent continues (SIGCONT) and finds its node taken over by `new_owner`: it says so
/// at ERROR and on `/readyz` (503, naming the new owner).
pub fn thaw_and_expect_fenced(agent: &Spawned, new_owner: &str) {
    agent.signal("CONT");
    wait_until("the thawed agent to be fenced", || {
        agent.logged(&["ERROR", "fenced"])
    });
    let ready = get(agent.addr, "/readyz", None);
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("fenced") && ready.body.contains(new_owner),
        "{}",
        ready.body
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

/// A node's test setup: a directory with `logs/`, a configuration for `node_id` (1 s flushes,
/// the audit log polled every 100 ms, then `extra`: lease, backend), and a February audit log
/// written from a seeded ground truth.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: std::path::PathBuf,
    log: std::path::PathBuf,
    rng: Rng,
    pub truth: Truth,
}

impl Setup {
    pub fn new(node_id: &str, extra: &str, seed: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        let config = dir.path().join("authstat.yaml");
        std::fs::write(
            &config,
            format!(
                "node_id: {node_id}\nlisten_addr: 127.0.0.1:0\nflush_interval_secs: 1\n\
                 sources:\n  - {{name: audit, type: file, format: janssen_audit, paths: [logs/jans-auth_audit*.log], poll_interval_ms: 100}}\n\
                 {extra}"
            ),
        )
        .unwrap();
        Self {
            log: dir.path().join("logs/jans-auth_audit.log"),
            dir,
            config,
            rng: Rng(seed),
            truth: Truth::default(),
        }
    }

    /// Appends `n` February records (known to the truth).
    pub fn write(&mut self, n: u64) {
        let feb: authstat_core::Month = "202402".parse().unwrap();
        let text: String = (0..n)
            .map(|_| self.truth.record(feb, &mut self.rng))
            .collect();
        append(&self.log, &text);
    }
}

fn scenario(backend_yaml: &str) {
    let mut s = Setup::new(
        "same-node",
        &format!("node_lease_secs: 3\n{backend_yaml}"),
        0x00de_ad0f_0000_0001,
    );
    let (dir, config) = (&s.dir.path().to_path_buf(), &s.config.clone());
    s.write(500);
    let first = spawn_agent(config, dir, &[]);
    let first_id = instance_of(&first);

    // A second agent with the same node id: refused, naming both instances, exit 78.
    assert_second_agent_refused(config, &first_id);

    // The first agent hangs (SIGSTOP) with records it may not have flushed; its lease expires
    // and a replacement takes the node over by itself.
    // Where the STOP lands does not matter (every outcome must count each record once); the
    // pause only makes "some read, some flushed, some not" likely.
    s.write(300);
    std::thread::sleep(std::time::Duration::from_millis(300));
    first.signal("STOP");
    s.write(200);
    // Not a hope but a bound: a stopped agent renews nothing, so its 3 s lease has expired
    // 3 s after the STOP at the latest.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let second = spawn_agent(config, dir, &[]);
    let second_id = instance_of(&second);
    assert_ne!(first_id, second_id);
    assert!(
        second.logged(&["took the node id over from an expired claim"]),
        "{:?}",
        second.log.lock().unwrap()
    );
    s.write(100);

    // The first one comes back: fenced, loudly, and it stops reading.
    thaw_and_expect_fenced(&first, &second_id);
    let metrics = get(first.addr, "/metrics", None).body;
    assert!(metrics.contains("authstat_node_fenced 1"), "{metrics}");
    assert!(
        !metrics.contains("authstat_flushes_total{result=\"fenced\"} 0"),
        "{metrics}"
    );
    s.write(100);

    // Every record exactly once: the replacement read what the first one did not store.
    let expected = &s.truth.expected()[0].counters;
    let want = serde_json::json!({
        "USER_AUTHORIZATION": {
            "success": expected.audit.get(&(authstat_core::event::AuditAction::UserAuthorization, authstat_core::counters::Outcome::Success)).copied().unwrap_or(0),
            "failure": expected.audit.get(&(authstat_core::event::AuditAction::UserAuthorization, authstat_core::counters::Outcome::Failure)).copied().unwrap_or(0),
        }
    });
    wait_until("every record stored once", || {
        query_authentications(config)["USER_AUTHORIZATION"] == want["USER_AUTHORIZATION"]
    });
    let audit = query_authentications(config);
    assert_eq!(stored_records(&audit), s.truth.records, "{audit}");
    let mut first = first;
    first.signal("TERM");
    assert_eq!(first.wait_exit().code(), Some(0));

    // kill -9 of the owner: its replacement on the same host sees that process gone and takes
    // over at once, without waiting for the lease.
    let mut second = second;
    second.signal("KILL");
    second.wait_exit();
    let third = spawn_agent(config, dir, &[]);
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
    s.write(50);
    let all = s.truth.records;
    wait_until("every record stored once, after the kill", || {
        stored_records(&query_authentications(config)) == all
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
    let (rt, store) = crate::support::sqlite_store_blocking(&db);
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
