//! The HTTP server under a flood of idle connections, with few descriptors: connections are
//! capped, the health check keeps answering, new log files are still picked up, nothing runs out
//! of descriptors. And requests that hyper refuses before the router are counted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::*;

fn metric(addr: SocketAddr, series: &str) -> f64 {
    let body = get(addr, "/metrics", None).body;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// 600 idle connections against a cap of 50, the agent limited to 512 descriptors (as a
/// default soft limit of 1024 would, with room for the test): health checks answer within their
/// 5 s, a log file created during the flood is read, the agent's descriptors stay bounded, and
/// nothing logs "Too many open files".
#[test]
fn a_flood_of_idle_connections() {
    // The test itself holds 600 connections.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
    let fixture = Fixture::new("");
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("api:\n", "api:\n  max_connections: 50\n")
            .replace("flush_interval_secs: 3600", "flush_interval_secs: 1"),
    )
    .unwrap();
    let mut command = std::process::Command::new("prlimit");
    command
        .args(["--nofile=512:512", "--"])
        .arg(env!("CARGO_BIN_EXE_authstat"))
        .args(["run", "--config"])
        .arg(&path)
        .current_dir(fixture.dir.path())
        .env("RUST_LOG", "info");
    let agent = spawn_command(command);
    let addr = agent.addr;
    let read_before = metric(addr, "authstat_records_read_total");

    let mut idle = Vec::new();
    for _ in 0..600 {
        idle.push(TcpStream::connect(addr).unwrap());
    }
    // A new log file while the flood holds.
    append(
        &fixture.dir.path().join("logs/token-events-new.jsonl"),
        "{\"timestamp\":1706780000000,\"grant_type\":\"client_credentials\",\"token_type\":\"access_token\",\"client_id\":\"flood\"}\n",
    );
    for i in 0..20 {
        let started = Instant::now();
        let health = get(addr, "/jans-auth/sys/health-check", None);
        assert_eq!(health.status, 200, "health check {i}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "health check {i} took {:?}",
            started.elapsed()
        );
    }
    wait_until("the new file's record to be read", || {
        metric(addr, "authstat_records_read_total") > read_before
    });
    let open = metric(addr, "authstat_api_connections");
    assert!(open <= 50.0, "{open} connections open");
    assert!(
        metric(
            addr,
            "authstat_api_connection_events_total{event=\"evicted\"}"
        ) >= 500.0
    );
    let fds = open_files(agent.child.id());
    assert!(fds < 50 + 64, "{fds} descriptors open");
    assert!(!agent.logged(&["Too many open files"]));
    drop(idle);
}

/// What hyper answers by itself (a malformed request, a URI too long, too many headers) shows
/// in `authstat_api_requests_total` with the router's answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_before_the_router_are_counted() {
    let fixture = Fixture::new("");
    let agent = fixture.start().await;
    let addr = agent.addr;
    let huge_uri = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
    let many_headers = format!(
        "GET /livez HTTP/1.1\r\nhost: x\r\n{}\r\n",
        (0..120)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    let cases = [
        ("HELLO THERE\r\n\r\n".to_owned(), 400),
        (huge_uri, 414),
        (many_headers, 431),
    ];
    let before = tokio::task::spawn_blocking(move || get(addr, "/metrics", None).body)
        .await
        .unwrap();
    let count = |body: &str, code: u16| -> u64 {
        let series = format!("authstat_api_requests_total{{code=\"{code}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&series)?.parse().ok())
            .unwrap_or(0)
    };
    for (raw, code) in cases.clone() {
        let answer = tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let _ = stream.write_all(raw.as_bytes());
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        })
        .await
        .unwrap();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {code}")),
            "{code}: {answer}"
        );
    }
    let after = tokio::task::spawn_blocking(move || get(addr, "/metrics", None).body)
        .await
        .unwrap();
    for (_, code) in cases {
        assert_eq!(count(&after, code), count(&before, code) + 1, "{code}");
    }
    agent.shutdown().await;
}
