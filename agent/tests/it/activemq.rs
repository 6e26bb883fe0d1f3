//! `type: activemq` against a real ActiveMQ 5.17 (Debian's package, started by scripts/test with
//! a STOMP connector and a login): Janssen-shaped messages on a queue, the real agent killed
//! between the commit of a flush and the acknowledgement of its messages many times (a test
//! hook aborts it there), killed with SIGKILL at random moments, the broker stopped and started
//! under a running agent, the first configured broker down (failover), a file source beside the
//! queue: every
//! record counted exactly once, and the queue empty at the end. A wrong password shows on
//! `/readyz` without the password. Over TLS (`stomp+ssl`), with the broker's certificate
//! trusted through `SSL_CERT_FILE`, and refused when it is not trusted.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use authstat_plugins::sources::activemq::stomp::{Connection, encode};
use authstat_test_support::janssen::AuditRecord;
use authstat_test_support::rng::Rng;

use crate::support::*;

fn broker() -> String {
    required_env("AUTHSTAT_TEST_STOMP_ADDR", "ActiveMQ")
}

fn broker_script(name: &str) {
    let dir = PathBuf::from(required_env("AUTHSTAT_TEST_ACTIVEMQ_DIR", "ActiveMQ"));
    let status = std::process::Command::new(dir.join(name)).status().unwrap();
    assert!(status.success(), "{name}");
}

fn connect() -> Connection {
    Connection::open(
        &broker(),
        None,
        Some(("authstat", "authstat-test")),
        Duration::from_secs(10),
    )
    .unwrap()
}

/// 1 March 2024, plus `i` seconds.
fn march(i: usize) -> i64 {
    1_709_251_200_000 + i as i64 * 1000
}

/// Sends `users` Janssen-shaped records (one user each) as TextMessages.
fn publish(queue: &str, users: std::ops::Range<usize>) {
    let mut conn = connect();
    for i in users {
        let body = AuditRecord::new(
            "USER_AUTHORIZATION",
            march(i),
            Some(&format!("mq-user{i}")),
            true,
        )
        .body();
        conn.send(&encode(
            "SEND",
            &[
                ("destination", &format!("/queue/{queue}")),
                ("persistent", "true"),
            ],
            &body,
        ))
        .unwrap();
    }
    // A receipt: everything before it was accepted.
    conn.send(&encode("DISCONNECT", &[("receipt", "bye")], ""))
        .unwrap();
    while conn.receive(Duration::from_secs(5)).unwrap().is_none() {}
}

/// How many messages the queue holds (a browsing subscription: nothing is consumed).
fn queued(queue: &str) -> usize {
    let mut conn = connect();
    conn.send(&encode(
        "SUBSCRIBE",
        &[
            ("id", "browse"),
            ("destination", &format!("/queue/{queue}")),
            ("browser", "true"),
        ],
        "",
    ))
    .unwrap();
    // `receive` answers None when what arrived is not a whole frame yet (a frame split over
    // two reads, a heart-beat): only the deadline ends the wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        match conn.receive(Duration::from_millis(200)).unwrap() {
            Some(frame) if frame.header("browser") == Some("end") => return n,
            Some(_) => n += 1,
            None => assert!(
                std::time::Instant::now() < deadline,
                "the browse ends with browser:end"
            ),
        }
    }
}

fn write_config(dir: &Path, queue: &str) -> PathBuf {
    write_config_for(dir, queue, &format!("127.0.0.1:1, stomp://{}", broker()))
}

/// The agent's configuration: the queue on `brokers`, and a file source.
fn write_config_for(dir: &Path, queue: &str, brokers: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let path = dir.join("authstat.yaml");
    std::fs::write(
        &path,
        format!(
            "node_id: mq-node\nlisten_addr: 127.0.0.1:0\nflush_interval_secs: 1\n\
             sources:\n\
             \x20 - name: queue\n    type: activemq\n    format: janssen_audit\n\
             \x20   brokers: [{brokers}]\n    queue: {queue}\n\
             \x20   username: ${{MQ_USER}}\n    password: ${{MQ_PASSWORD}}\n\
             \x20   prefetch: 25\n    poll_interval_ms: 100\n\
             \x20 - name: audit\n    type: file\n    format: janssen_audit\n    paths: [logs/audit*.log]\n\
             backend:\n  type: sqlite\n  path: data/authstat.db\n\
             api:\n  auth:\n    type: static\n    tokens:\n\
             \x20     - name: t\n        sha256: 4d1566a1d7df42a8517456d60ea06ed284e535cfe4c956aa6ee172dbcdf945f7\n\
             \x20       scopes: [jans_stat]\n",
        ),
    )
    .unwrap();
    path
}

const CREDENTIALS: [(&str, &str); 2] = [("MQ_USER", "authstat"), ("MQ_PASSWORD", "authstat-test")];

fn stored(config: &Path) -> (u64, u64) {
    let out = run_ok(
        authstat()
            .args(["query", "--format", "json", "--month", "202403", "--config"])
            .arg(config)
            .envs(CREDENTIALS),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let month = &json["months"][0];
    (
        month["audit"]["USER_AUTHORIZATION"]["success"]
            .as_u64()
            .unwrap_or(0),
        month["monthly_active_users"].as_u64().unwrap_or(0),
    )
}

/// The message ids in the queue source's stored position (counted, not known acknowledged).
fn stored_queue_ids(dir: &Path) -> usize {
    let (rt, store) = crate::support::sqlite_store_blocking(&dir.join("data/authstat.db"));
    let node = authstat_core::NodeId::new("mq-node").unwrap();
    let state = rt.block_on(store.load_node(&node)).unwrap();
    state
        .positions
        .iter()
        .find(|p| p.source == "queue")
        .map_or(0, |p| {
            let data: serde_json::Value = serde_json::from_str(&p.data).unwrap();
            data["counted"].as_array().map_or(0, Vec::len)
        })
}

#[test]
fn queue_records_are_counted_once_through_crashes_and_broker_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let queue = authstat_test_support::env::unique_name("authstat_test_audit");
    let config = write_config(dir.path(), &queue);
    // Janssen writes the file only when sending fails: these records are not on the queue.
    let mut file_records = String::new();
    for i in 0..5 {
        file_records.push_str(
            &AuditRecord::new(
                "USER_AUTHORIZATION",
                march(i),
                Some(&format!("file-user{i}")),
                true,
            )
            .text(),
        );
    }
    append(&dir.path().join("logs/audit.log"), &file_records);
    let mut published = 0;
    publish(&queue, 0..100);
    published += 100;
    let mut rng = Rng(0x05ee_da11);
    let mut aborted = 0;
    for round in 0..12 {
        publish(&queue, published..published + 30);
        published += 30;
        let mut envs = CREDENTIALS.to_vec();
        if round % 2 == 0 {
            // Dies right after a flush is stored, before its messages are acknowledged.
            envs.push(("AUTHSTAT_TEST_ABORT_BEFORE_ACK", "1"));
            let mut agent = spawn_agent(&config, dir.path(), &envs);
            let status = agent.wait_exit();
            assert_eq!(status.signal(), Some(6), "aborted by the hook: {status:?}");
            aborted += 1;
        } else if round == 5 {
            // The broker stops and starts again under a running agent, which reconnects.
            let mut agent = spawn_agent(&config, dir.path(), &envs);
            let addr = agent.addr;
            let connected = |n: u8| {
                get(addr, "/metrics", None)
                    .body
                    .contains(&format!("authstat_source_inputs{{source=\"queue\"}} {n}"))
            };
            wait_until("connected", || connected(1));
            broker_script("stop.sh");
            wait_until("the lost connection noticed", || connected(0));
            broker_script("start.sh");
            wait_until("connected again", || connected(1));
            agent.signal("KILL");
            agent.wait_exit();
        } else {
            // SIGKILL at a random moment of its work.
            let mut agent = spawn_agent(&config, dir.path(), &envs);
            std::thread::sleep(Duration::from_millis(rng.below(1500)));
            agent.signal("KILL");
            agent.wait_exit();
        }
        let (counted, _) = stored(&config);
        assert!(
            counted <= published as u64 + 5,
            "round {round}: {counted} counted of {published} sent"
        );
    }
    assert_eq!(aborted, 6);
    // The last agent runs to the end of the queue and stops cleanly.
    let total = published as u64 + 5;
    let mut agent = spawn_agent(&config, dir.path(), &CREDENTIALS);
    let addr = agent.addr;
    wait_until("every record stored", || {
        let metrics = get(addr, "/metrics", None).body;
        metrics.contains(&format!(
            "authstat_authorizations_total{{action=\"USER_AUTHORIZATION\",outcome=\"success\"}} {total}"
        ))
    });
    wait_until("the queue emptied", || queued(&queue) == 0);
    let metrics = get(addr, "/metrics", None).body;
    assert!(
        metrics.contains("authstat_source_inputs{source=\"queue\"} 1"),
        "connected: {metrics}"
    );
    assert_eq!(get(addr, "/readyz", None).status, 200);
    // The ids of messages acknowledged before the crashes (their receipts lost) are forgotten
    // once the broker has had the chance to deliver them again, and the stored position holds
    // nothing of an empty queue.
    wait_until("the stored position to hold no settled id", || {
        stored_queue_ids(dir.path()) == 0
    });
    agent.signal("TERM");
    assert!(agent.wait_exit().success());
    assert_eq!(stored_queue_ids(dir.path()), 0, "after a clean stop");
    assert_eq!(
        stored(&config),
        (total, total),
        "each record once, each user once"
    );
    assert_eq!(queued(&queue), 0);
}

/// `/readyz` once it names the queue source: not ready (503).
fn unready_queue(addr: std::net::SocketAddr) -> Response {
    let mut ready = get(addr, "/readyz", None);
    wait_until("/readyz to name the queue", || {
        ready = get(addr, "/readyz", None);
        ready.body.contains("source queue")
    });
    assert_eq!(ready.status, 503, "{}", ready.body);
    ready
}

#[test]
fn a_refused_login_shows_on_readyz_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let queue = authstat_test_support::env::unique_name("authstat_test_refused");
    let config = write_config(dir.path(), &queue);
    let agent = spawn_agent(
        &config,
        dir.path(),
        &[("MQ_USER", "authstat"), ("MQ_PASSWORD", "not-the-password")],
    );
    let addr = agent.addr;
    let ready = unready_queue(addr);
    assert!(ready.body.contains("invalid"), "{}", ready.body);
    assert!(!ready.body.contains("not-the-password"), "{}", ready.body);
    let metrics = get(addr, "/metrics", None).body;
    assert!(
        metrics.contains("authstat_source_errors_total{source=\"queue\",reason=\"unavailable\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("authstat_source_inputs{source=\"queue\"} 0"),
        "{metrics}"
    );
}

/// `stomp+ssl://` (spelt `ssl://` here): the records come over TLS when the broker's certificate
/// is trusted (`SSL_CERT_FILE`: the test broker's self-signed one), and nothing is read, with
/// the reason on `/readyz`, when it is not (the system's CAs: Debian's ca-certificates, which
/// scripts/install-deps installs) or when no certificate at all can be loaded.
#[test]
fn a_broker_over_tls_is_read_when_its_certificate_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let queue = authstat_test_support::env::unique_name("authstat_test_tls");
    let tls = required_env("AUTHSTAT_TEST_STOMP_SSL_ADDR", "ActiveMQ");
    let cert = PathBuf::from(required_env("AUTHSTAT_TEST_ACTIVEMQ_DIR", "ActiveMQ"))
        .join("conf/broker.pem");
    let config = write_config_for(dir.path(), &queue, &format!("ssl://{tls}"));
    publish(&queue, 0..40);
    for (trusted, problem) in [
        (
            "/etc/ssl/certs/ca-certificates.crt",
            "invalid peer certificate: UnknownIssuer",
        ),
        ("/nonexistent/ca.pem", "no trusted certificate"),
    ] {
        let mut envs = CREDENTIALS.to_vec();
        envs.push(("SSL_CERT_FILE", trusted));
        envs.push(("SSL_CERT_DIR", "/nonexistent"));
        let mut agent = spawn_agent(&config, dir.path(), &envs);
        let ready = unready_queue(agent.addr);
        assert!(ready.body.contains(problem), "{}", ready.body);
        agent.signal("TERM");
        agent.wait_exit();
        assert_eq!(
            stored(&config),
            (0, 0),
            "nothing read from an untrusted broker"
        );
    }
    let mut envs = CREDENTIALS.to_vec();
    let cert = cert.to_str().unwrap().to_owned();
    envs.push(("SSL_CERT_FILE", &cert));
    let mut agent = spawn_agent(&config, dir.path(), &envs);
    wait_until("every record stored", || stored(&config) == (40, 40));
    wait_until("the queue emptied", || queued(&queue) == 0);
    let addr = agent.addr;
    assert_eq!(get(addr, "/readyz", None).status, 200);
    agent.signal("TERM");
    agent.wait_exit();
}

/// A broker that requires a client certificate (`needClientAuth=true`): nothing is read
/// without one (the reason on `/readyz`), everything with the source's `tls.cert_file` and
/// `tls.key_file` (the test CA's client certificate); the broker's own certificate is trusted
/// through `tls.ca_file`, not the environment.
#[test]
fn a_broker_that_requires_a_client_certificate_gets_the_sources() {
    let dir = tempfile::tempdir().unwrap();
    let queue = authstat_test_support::env::unique_name("authstat_test_mtls");
    let mutual = required_env("AUTHSTAT_TEST_STOMP_MTLS_ADDR", "ActiveMQ");
    let broker = PathBuf::from(required_env("AUTHSTAT_TEST_ACTIVEMQ_DIR", "ActiveMQ"))
        .join("conf/broker.pem");
    let ca = PathBuf::from(required_env("AUTHSTAT_TEST_TLS_DIR", "TLS"));
    let config = write_config_for(dir.path(), &queue, &format!("stomp+ssl://{mutual}"));
    let text = std::fs::read_to_string(&config).unwrap();
    let with_tls = |client: bool| {
        let mut tls = format!("    tls:\n      ca_file: {}\n", broker.display());
        if client {
            tls.push_str(&format!(
                "      cert_file: {}\n      key_file: {}\n",
                ca.join("client.pem").display(),
                ca.join("client.key").display()
            ));
        }
        std::fs::write(
            &config,
            text.replace("    prefetch: 25\n", &format!("{tls}    prefetch: 25\n")),
        )
        .unwrap();
    };
    publish(&queue, 0..30);
    with_tls(false);
    let mut agent = spawn_agent(&config, dir.path(), &CREDENTIALS);
    let ready = unready_queue(agent.addr);
    // The broker ends the handshake without one (Java's alert: bad_certificate).
    assert!(
        ready.body.contains("received fatal alert"),
        "{}",
        ready.body
    );
    agent.signal("TERM");
    agent.wait_exit();
    assert_eq!(
        stored(&config),
        (0, 0),
        "nothing read without a client certificate"
    );

    with_tls(true);
    let mut agent = spawn_agent(&config, dir.path(), &CREDENTIALS);
    wait_until("every record stored", || stored(&config) == (30, 30));
    wait_until("the queue emptied", || queued(&queue) == 0);
    assert_eq!(get(agent.addr, "/readyz", None).status, 200);
    agent.signal("TERM");
    agent.wait_exit();
}
