//! Exactly once, under fire: the real binary ingests a log that is being appended to, rotated by
//! rename and by copytruncate, while it is `kill -9`ed at random moments (at least 20 times) and
//! restarted. At the end the stored counters equal the true counts exactly and the stored HLL is
//! byte-identical to the HLL of an uninterrupted run.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use authstat_config::{BackendConfig, DeriveConfig, SqlServerConfig, SqliteConfig};
use authstat_core::NodeId;
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::HllParams;
use authstat_core::ingest::{Deriver, Frame, Parser};
use authstat_core::stats::MonthlyAggregate;
use authstat_plugins::derive::RulesDeriver;
use authstat_plugins::parse::JanssenAuditParser;

/// A small deterministic generator (no dependency on a random crate).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn record(i: u64, rng: &mut Rng) -> String {
    let actions = [
        "USER_AUTHORIZATION",
        "TOKEN_REQUEST",
        "USER_INFO",
        "SESSION_AUTHENTICATED",
    ];
    let user = if rng.below(4) == 0 {
        "null".to_owned()
    } else {
        format!("\"user{}\"", rng.below(3000))
    };
    // Two months, so that flushes carry more than one.
    let ts = 1706745600000u64 + i * 1_000_000;
    format!(
        "2024-02-01 00:00:03,611 INFO  [02-42-AC-11-00-02] [worker-{}]  [io.jans.as.server.audit.ApplicationAuditLogger] (ApplicationAuditLogger.java:112) - {{\n  \"ip\" : \"10.0.0.{}\",\n  \"action\" : \"{}\",\n  \"timestamp\" : {ts},\n  \"macAddress\" : \"02-42-AC-11-00-02\",\n  \"clientId\" : \"client-{i}\",\n  \"username\" : {user},\n  \"scope\" : \"openid\",\n  \"success\" : {}\n}}\n",
        i % 8,
        i % 250,
        actions[(i % 4) as usize],
        rng.below(5) != 0
    )
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn start(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_authstat"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn soak(backend: BackendConfig, backend_yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let config = dir.path().join("authstat.yaml");
    std::fs::write(
        &config,
        format!(
            "node_id: soak\nlisten_addr: 127.0.0.1:0\nflush_interval_secs: 1\n\
             sources:\n  - {{name: audit, type: janssen_audit, paths: [logs/jans-auth_audit*.log], poll_interval_ms: 100}}\n\
             {backend_yaml}"
        ),
    )
    .unwrap();
    let log = logs.join("jans-auth_audit.log");
    let mut rng = Rng(0x5eed_1234_9876_abcd);
    let mut written = String::new();
    let mut next = 0u64;
    let mut rotations = 0;
    let mut kills = 0;
    let mut agent = start(&config);
    while kills < 24 {
        // Append a burst, sometimes ending in half a record that is completed later.
        let mut burst = String::new();
        for _ in 0..rng.below(40) + 1 {
            burst.push_str(&record(next, &mut rng));
            next += 1;
        }
        let cut = if rng.below(3) == 0 {
            rng.below(burst.len() as u64) as usize
        } else {
            burst.len()
        };
        append(&log, &burst[..cut]);
        std::thread::sleep(Duration::from_millis(rng.below(60)));
        append(&log, &burst[cut..]);
        written.push_str(&burst);
        match rng.below(10) {
            0 => {
                rotations += 1;
                std::fs::rename(
                    &log,
                    logs.join(format!("jans-auth_audit-2024-02-{rotations:02}-1.log")),
                )
                .unwrap();
            }
            1 => {
                rotations += 1;
                std::fs::copy(
                    &log,
                    logs.join(format!("jans-auth_audit-2024-02-{rotations:02}-1.log")),
                )
                .unwrap();
                OpenOptions::new()
                    .write(true)
                    .open(&log)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
            }
            _ => {}
        }
        // Kill at a random moment: while starting, reading, or flushing.
        if rng.below(2) == 0 {
            std::thread::sleep(Duration::from_millis(rng.below(1500)));
            agent.kill().unwrap();
            agent.wait().unwrap();
            kills += 1;
            agent = start(&config);
        }
    }

    // The truth: every record written, derived once, and the HLL of an uninterrupted run.
    let deriver = RulesDeriver::new(&DeriveConfig::default(), HashAlgorithm::Murmur3);
    let mut truth = MonthlyAggregate::new(HllParams::janssen());
    let mut at = 0;
    let bytes = written.as_bytes();
    while at < bytes.len() {
        let Frame::Record { len } = JanssenAuditParser.frame(&bytes[at..]) else {
            panic!("generator wrote a bad record")
        };
        deriver
            .derive(
                &JanssenAuditParser.parse(&bytes[at..at + len]).unwrap(),
                &mut truth,
            )
            .unwrap();
        at += len;
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(authstat_backends::build(&backend)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let state = loop {
        let state = rt
            .block_on(store.load_node(&NodeId::new("soak").unwrap()))
            .unwrap();
        let months: Vec<_> = state
            .months
            .iter()
            .map(|m| (m.month, m.counters.clone()))
            .collect();
        let expected: Vec<_> = truth
            .iter()
            .map(|m| (m.month, m.counters.clone()))
            .collect();
        if months == expected || Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    agent.kill().unwrap();
    agent.wait().unwrap();
    assert!(kills >= 20);
    let expected: Vec<_> = truth.iter().collect();
    assert_eq!(
        state.months.len(),
        expected.len(),
        "{next} records, {rotations} rotations, {kills} kills"
    );
    for (stored, truth) in state.months.iter().zip(expected) {
        assert_eq!(
            stored.counters, truth.counters,
            "{}: counters after {kills} kills",
            stored.month
        );
        assert_eq!(
            stored.users.to_bytes().unwrap(),
            truth.users.to_bytes().unwrap(),
            "{}: HLL bytes",
            stored.month
        );
    }
}

#[test]
fn kill_9_twenty_times_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("soak.db");
    let backend = BackendConfig::Sqlite(SqliteConfig {
        path: db.clone(),
        busy_timeout_ms: 5000,
        pool_size: 2,
    });
    soak(
        backend,
        &format!("backend: {{type: sqlite, path: {}}}\n", db.display()),
    );
}

#[test]
fn kill_9_twenty_times_postgres() {
    let admin = crate::support::required_env("AUTHSTAT_TEST_POSTGRES_URL", "PostgreSQL");
    let db = format!("authstat_soak_{}", std::process::id());
    let created = Command::new("psql")
        .arg(&admin)
        .args(["-qc", &format!("CREATE DATABASE {db}")])
        .status()
        .unwrap();
    assert!(created.success(), "creating the database {db}");
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let backend = BackendConfig::Postgres(SqlServerConfig {
        url: url.clone(),
        pool_size: 2,
        connect_timeout_secs: 5,
    });
    soak(
        backend,
        &format!("backend: {{type: postgres, url: \"{url}\"}}\n"),
    );
}
