//! The stat API under less friendly conditions: slow clients, random input, a strict metrics
//! checker, and the cache's promise for the current month.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use authstat_backends::options::SqliteConfig;
use authstat_core::counters::{CounterKey, Counters};
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{FlushBatch, MonthFlush};
use authstat_core::{Month, NodeId};
use proptest::prelude::*;

use crate::support::*;

const STAT: &str = "/jans-auth/restv1/internal/stat";

fn with_api_option(fixture: &Fixture, option: &str) {
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("api:\n", &format!("api:\n  {option}\n"));
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let fixture = Fixture::new("");
    with_api_option(&fixture, "request_timeout_secs: 1");
    let agent = fixture.start().await;
    let addr = agent.addr;
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(8)))
            .unwrap();
        // Headers that never end.
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n")
            .unwrap();
        let mut buf = [0u8; 256];
        match stream.read(&mut buf) {
            // Closed, or answered with an error: either way, not left hanging.
            Ok(n) => n == 0 || buf[..n].starts_with(b"HTTP/1.1 4"),
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    })
    .await
    .unwrap();
    // Within the client's 8 s read timeout, or `closed` would be false.
    assert!(closed, "the connection was left open");
    // Normal clients are served as before.
    let r = tokio::task::spawn_blocking(move || get(addr, "/livez", None))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    agent.shutdown().await;
}

/// Prometheus' own checker parses the openmetrics format without error; its only lint findings
/// are the two Janssen's names imply (counters without `_total`, the camelCase `grantType`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_passes_promtool_with_only_janssens_lint_findings() {
    let promtool = std::process::Command::new("promtool")
        .arg("--version")
        .output();
    assert!(
        promtool.is_ok(),
        "promtool is missing: scripts/install-deps installs the Debian package prometheus"
    );
    let fixture = Fixture::new("");
    let agent = start_and_flush(&fixture).await;
    let addr = agent.addr;
    let body = tokio::task::spawn_blocking(move || {
        get(
            addr,
            &format!("{STAT}?start-month=202401&end-month=202402&format=openmetrics"),
            Some(TOKEN),
        )
        .body
    })
    .await
    .unwrap();
    assert!(body.contains("grantType=\"client_credentials\""), "{body}");
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        out.status.code(),
        Some(1),
        "promtool could not parse it:\n{report}\n{body}"
    );
    assert_eq!(out.status.code(), Some(3), "{report}");
    let families = [
        "monthly_active_users",
        "access_token",
        "id_token",
        "refresh_token",
        "uma_token",
    ];
    let mut kinds = std::collections::BTreeSet::new();
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        let (family, finding) = line.split_once(' ').unwrap();
        assert!(families.contains(&family), "{line}");
        kinds.insert(finding.to_owned());
    }
    let expected: std::collections::BTreeSet<String> = [
        "counter metrics should have \"_total\" suffix",
        "label names should be written in 'snake_case' not 'camelCase'",
    ]
    .map(String::from)
    .into();
    assert_eq!(kinds, expected, "{report}");
    agent.shutdown().await;
}

/// Cached answers follow the backend: what another node (or a backfill) stores shows within the
/// data-version check, for the current month and past months alike (past months' cache TTL is
/// an hour, so a TTL alone would serve the old figures that long).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_writes_refresh_cached_answers() {
    let fixture = Fixture::new("");
    with_api_option(&fixture, "current_month_ttl_secs: 0");
    let agent = fixture.start().await;
    let addr = agent.addr;
    let now = Month::from_epoch_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
    .unwrap();
    let past: Month = "202001".parse().unwrap();
    let tokens = move |month: Month| {
        let r = get(addr, &format!("{STAT}?month={month}"), Some(TOKEN));
        r.json()["response"]
            .as_array()
            .unwrap()
            .first()
            .map(|m| m["token_count_per_granttype"]["password"]["access_token"].clone())
    };
    let before = tokio::task::spawn_blocking(move || (tokens(now), tokens(past)))
        .await
        .unwrap();
    assert_eq!(before, (None, None));

    // Another node writes both months into the same SQLite file.
    let other = authstat_backends::sql::SqliteStore::open(&SqliteConfig {
        path: fixture.dir.path().join("data/authstat.db"),
        busy_timeout_ms: 5000,
        pool_size: 1,
    })
    .await
    .unwrap();
    let mut counters = Counters::default();
    counters.add(
        &CounterKey::Token {
            grant_type: "password".into(),
            token_type: "access_token".into(),
        },
        5,
    );
    let month = |m| MonthFlush {
        month: m,
        users: Hll::new(HllParams::janssen()),
        counter_deltas: counters.clone(),
        clients: None,
        dims: Vec::new(),
    };
    use authstat_core::store::StatStore;
    let owner = authstat::own::claim(
        &other,
        &NodeId::new("other").unwrap(),
        std::time::Duration::from_secs(60),
        false,
    )
    .await
    .unwrap();
    let batch = FlushBatch {
        node: NodeId::new("other").unwrap(),
        epoch: owner.epoch,
        lease_until_ms: owner.lease_until_ms(),
        seq: 1,
        months: vec![month(now), month(past)],
        positions: None,
    };
    other.flush(&batch).await.unwrap();

    tokio::task::spawn_blocking(move || {
        wait_until("both months to show the other node's tokens", || {
            (tokens(now), tokens(past)) == (Some(serde_json::json!(5)), Some(serde_json::json!(5)))
        })
    })
    .await
    .unwrap();
    agent.shutdown().await;
}

fn query_text() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        "[0-9]{0,8}",
        "[0-9 +,%2A-Za-z]{0,20}",
        any::<String>().prop_map(|s| s.chars().take(30).collect()),
        Just("202402%20202401".to_string()),
        Just("%ZZ".to_string()),
    ];
    let name = prop_oneof![
        Just("month"),
        Just("start-month"),
        Just("end-month"),
        Just("format"),
        Just("x"),
        Just(""),
    ];
    prop::collection::vec((name, value), 0..5).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(n, v)| format!("{n}={}", v.replace(['&', '#', ' ', '\r', '\n'], "+")))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// A request line that is not HTTP (a raw `<` in the target) is refused by the HTTP layer itself
/// with a bare 400, before any handler; still never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_is_not_http_gets_a_bare_400() {
    let fixture = Fixture::new("");
    let agent = fixture.start().await;
    let addr = agent.addr;
    let r = tokio::task::spawn_blocking(move || {
        request(addr, "GET", &format!("{STAT}?month=<"), &[], "")
    })
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    agent.shutdown().await;
}

/// Random query strings and form bodies, with and without a valid token: never a 5xx, never a
/// dropped connection.
#[test]
fn random_requests_never_get_a_server_error() {
    let fixture = Fixture::new("");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let agent = rt.block_on(fixture.start());
    let addr = agent.addr;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(query_text(), any::<bool>(), any::<bool>()),
            |(query, post, authorized)| {
                let auth = "Bearer example-token";
                let mut headers: Vec<(&str, &str)> = Vec::new();
                if authorized {
                    headers.push(("authorization", auth));
                }
                let r = if post {
                    headers.push(("content-type", "application/x-www-form-urlencoded"));
                    request(addr, "POST", STAT, &headers, &query)
                } else {
                    // As a client would send it: characters a URI cannot hold percent-encoded (a raw
                    // `%` stays, so malformed escapes get through).
                    let encoded: String = query
                        .bytes()
                        .map(|b| {
                            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
                                (b as char).to_string()
                            } else {
                                format!("%{b:02X}")
                            }
                        })
                        .collect();
                    request(addr, "GET", &format!("{STAT}?{encoded}"), &headers, "")
                };
                prop_assert!(
                    r.status < 500,
                    "{} for {query:?} (post {post}): {}",
                    r.status,
                    r.body
                );
                if r.status >= 400 {
                    let json: Option<serde_json::Value> = serde_json::from_str(&r.body).ok();
                    prop_assert!(
                        json.is_some_and(|j| j["error"].is_string()),
                        "{} without a JSON error for {query:?} (post {post}): {:?} {:?}",
                        r.status,
                        r.headers,
                        r.body
                    );
                }
                Ok(())
            },
        )
        .unwrap();
    rt.block_on(agent.shutdown());
}

/// The backend goes away: the Janssen health check says `offline` (still HTTP 200, as Janssen
/// does) and `/readyz` answers 503; `/livez` stays 200.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_a_backend_that_went_away() {
    let admin = required_env("AUTHSTAT_TEST_POSTGRES_URL", "PostgreSQL");
    let url = authstat_test_support::db::postgres("authstat_health");
    let db = url.rsplit_once('/').unwrap().1.to_owned();
    let psql = |sql: &str| {
        let status = std::process::Command::new("psql")
            .arg(&admin)
            .args(["-qc", sql])
            .status()
            .unwrap();
        assert!(status.success(), "{sql}");
    };
    let fixture = Fixture::new("");
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "backend:\n  type: sqlite\n  path: data/authstat.db",
        &format!("backend:\n  type: postgres\n  url: \"{url}\"\n  connect_timeout_secs: 1"),
    );
    assert!(text.contains("type: postgres"));
    std::fs::write(&path, text).unwrap();
    let agent = fixture.start().await;
    let addr = agent.addr;
    let health = move || get(addr, "/jans-auth/sys/health-check", None);
    tokio::task::spawn_blocking(move || {
        wait_until("the pipeline to start", || {
            health().body == r#"{"status": "running", "db_status":"online"}"#
        })
    })
    .await
    .unwrap();

    psql(&format!("DROP DATABASE {db} WITH (FORCE)"));
    let (r, ready, live) = tokio::task::spawn_blocking(move || {
        (
            health(),
            get(addr, "/readyz", None),
            get(addr, "/livez", None),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"{"status": "running", "db_status":"offline"}"#)
    );
    assert_eq!(ready.status, 503);
    assert_eq!(live.status, 200);
    agent.shutdown().await;
}
