//! A frozen owner (SIGSTOP inside its flush transaction, as a paused VM or a process stuck in
//! the kernel would be) does not block its replacement: the server ends the frozen session's
//! transaction (the session limits derived from the lease), a `--take-over` replacement stores
//! every record within the lease and a few seconds, and the owner, thawed, is fenced and stops
//! reading. PostgreSQL and MariaDB, with the real binary.
//!
//! The freeze is the `test-hooks` feature's `AUTHSTAT_TEST_FREEZE_IN_FLUSH`: the agent stops
//! itself before its first flush's commit, holding its node's row. The test checks that the
//! process really is stopped before it goes on (the fault fired).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::ownership::{
    Setup, instance_of, query_authentications, stored_records, thaw_and_expect_fenced,
};
use crate::support::{Spawned, get, spawn_agent, wait_until};

/// The lease of the test's agents, in seconds.
const LEASE_SECS: u64 = 3;

/// Every record stored so far (none while nothing was stored for the month).
fn stored(config: &std::path::Path) -> u64 {
    let audit = query_authentications(config);
    if audit.is_object() {
        stored_records(&audit)
    } else {
        0
    }
}

/// Whether `agent`'s process is stopped (state `T` in `/proc/<pid>/stat`).
fn stopped(agent: &Spawned) -> bool {
    let stat =
        std::fs::read_to_string(format!("/proc/{}/stat", agent.child.id())).unwrap_or_default();
    // "pid (comm) S ...": the state follows the last ')'.
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('T'))
}

fn frozen_owner(backend_yaml: &str) {
    let mut s = Setup::new(
        "frozen-node",
        &format!("node_lease_secs: {LEASE_SECS}\n{backend_yaml}"),
        0x00f0_02e0_0000_0001,
    );
    let (dir, config) = (&s.dir.path().to_path_buf(), &s.config.clone());
    s.write(500);
    let owner = spawn_agent(config, dir, &[("AUTHSTAT_TEST_FREEZE_IN_FLUSH", "1")]);
    let owner_id = instance_of(&owner);
    // The fault fired: the owner stopped itself inside its first flush's transaction.
    wait_until("the owner to freeze inside its flush", || stopped(&owner));

    // Records keep arriving; the replacement, started by the operator with --take-over, must
    // not wait on the frozen transaction for longer than the lease and a few seconds.
    s.write(300);
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_authstat"));
    command
        .args(["run", "--take-over", "--config"])
        .arg(config)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped());
    let replacement = crate::support::spawn_command(command);
    let replacement_id = instance_of(&replacement);
    assert_ne!(owner_id, replacement_id);
    let written = s.truth.records;
    wait_until("the replacement to store every record", || {
        stored(config) == written
    });
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(LEASE_SECS + 8),
        "the replacement stored every record after {took:?} (lease {LEASE_SECS} s); its log:\n{}",
        replacement.log.lock().unwrap().join("\n")
    );
    assert!(stopped(&owner), "the owner stayed frozen meanwhile");

    // The owner thaws: its transaction is gone, its next flush is refused (fenced), loudly,
    // and it stops reading.
    thaw_and_expect_fenced(&owner, &replacement_id);
    s.write(100);
    let all = s.truth.records;
    wait_until("every record stored once", || stored(config) == all);
    for mut agent in [owner, replacement] {
        agent.signal("TERM");
        assert_eq!(agent.wait_exit().code(), Some(0));
    }
    // Both stopped (the fenced owner's final flush refused too): still every record once.
    assert_eq!(stored(config), all);
}

#[cfg(feature = "postgres")]
#[test]
fn a_frozen_owner_does_not_block_its_replacement_postgres() {
    let url = authstat_test_support::db::postgres("authstat_frozen");
    frozen_owner(&format!("backend: {{type: postgres, url: \"{url}\"}}\n"));
}

#[cfg(feature = "mysql")]
#[test]
fn a_frozen_owner_does_not_block_its_replacement_mariadb() {
    let url = authstat_test_support::db::mysql("authstat_frozen");
    frozen_owner(&format!("backend: {{type: mysql, url: \"{url}\"}}\n"));
}

/// Flushes that keep failing while the database still answers (a full disk, a revoked
/// privilege; here a table renamed away): `/readyz` says so (503, how many in a row, the
/// error), `authstat_flush_failures_in_a_row` counts them, nothing is lost, and once the
/// writes work again `/readyz` is 200 and every record is stored once.
#[cfg(feature = "postgres")]
#[test]
fn failing_flushes_show_on_readyz_and_nothing_is_lost() {
    use authstat_test_support::db::psql;
    let url = authstat_test_support::db::postgres("authstat_failing");
    let mut s = Setup::new(
        "failing",
        &format!("backend: {{type: postgres, url: \"{url}\"}}\n"),
        0x00fa_11ed_0000_0001,
    );
    let (dir, config) = (&s.dir.path().to_path_buf(), &s.config.clone());
    s.write(100);
    let mut agent = spawn_agent(config, dir, &[]);
    let first = s.truth.records;
    wait_until("the first records stored", || stored(config) == first);
    assert_eq!(get(agent.addr, "/readyz", None).status, 200);

    psql(&url, "ALTER TABLE authstat_hll RENAME TO authstat_hll_away");
    s.write(200);
    wait_until("/readyz to show the failing flushes", || {
        let ready = get(agent.addr, "/readyz", None);
        ready.status == 503 && ready.body.contains("flushes failing: ")
    });
    let ready = get(agent.addr, "/readyz", None);
    assert!(ready.body.contains("authstat_hll"), "{}", ready.body);
    let metrics = get(agent.addr, "/metrics", None).body;
    let in_a_row: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("authstat_flush_failures_in_a_row "))
        .expect("the gauge")
        .trim()
        .parse()
        .unwrap();
    assert!(in_a_row >= 1, "{metrics}");

    psql(&url, "ALTER TABLE authstat_hll_away RENAME TO authstat_hll");
    let all = s.truth.records;
    wait_until("every record stored once", || stored(config) == all);
    wait_until("/readyz to be 200 again", || {
        get(agent.addr, "/readyz", None).status == 200
    });
    assert!(agent.logged(&["flushing works again"]));
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
}
