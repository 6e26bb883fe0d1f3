//! The stat and health API of an agent started in-process over the sample logs, through a real
//! socket: the numbers, the formats, and every status code of the compat table.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use authstat_test_support::janssen::AuditRecord;

use crate::support::*;

/// A token with another scope (its SHA-256 is below) to test the exact scope check.
const WEAK_TOKEN: &str = "weak-token";

fn weak_token_hash() -> String {
    authstat_test_support::token::sha256_hex(WEAK_TOKEN)
}

async fn started(fixture: &Fixture) -> (authstat::RunningAgent, SocketAddr) {
    let agent = start_and_flush(fixture).await;
    let addr = agent.addr;
    (agent, addr)
}

fn fixture_with_weak_token() -> Fixture {
    let f = Fixture::new("");
    let hash = weak_token_hash();
    let path = f.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "        scopes: [jans_stat]",
        &format!("        scopes: [jans_stat]\n      - name: weak\n        sha256: {hash}\n        scopes: [openid, my_jans_stat_x]"),
    );
    std::fs::write(path, text).unwrap();
    f
}

const STAT: &str = "/jans-auth/restv1/internal/stat";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_numbers_match_the_sample_logs_in_every_format() {
    let fixture = Fixture::new("");
    let (agent, addr) = started(&fixture).await;
    let r = tokio::task::spawn_blocking(move || {
        let json = get(addr, &format!("{STAT}?month=202401%20202402"), Some(TOKEN));
        let month = get(
            addr,
            &format!("{STAT}?month=202402+202401&format=jsonmonth"),
            Some(TOKEN),
        );
        let metrics = get(
            addr,
            &format!("{STAT}?start-month=202312&end-month=202403&format=openmetrics"),
            Some(TOKEN),
        );
        let post = request(
            addr,
            "POST",
            STAT,
            &[
                ("authorization", "Bearer example-token"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "start-month=202402&end-month=202402",
        );
        (json, month, metrics, post)
    })
    .await
    .unwrap();
    let (json, month, metrics, post) = r;
    assert_eq!(json.status, 200, "{}", json.body);
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(
        json.json(),
        serde_json::json!({"response": [
            {"month": "202401", "monthly_active_users": 0, "monthly_active_clients": 0,
             "token_count_per_granttype": {}},
            {"month": "202402", "monthly_active_users": 2, "monthly_active_clients": 2,
             "token_count_per_granttype": {
                "authorization_code": {"access_token": 1, "id_token": 1, "refresh_token": 1},
                "client_credentials": {"access_token": 2},
                "refresh_token": {"access_token": 1}}}
        ]})
    );
    let keyed = month.json();
    assert_eq!(keyed["response"]["202402"]["monthly_active_users"], 2);
    assert_eq!(keyed["response"]["202402"]["monthly_active_clients"], 2);
    assert_eq!(keyed["response"]["202401"]["month"], "202401");
    assert_eq!(post.json()["response"].as_array().unwrap().len(), 1);
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    for line in [
        "# TYPE monthly_active_users counter",
        "monthly_active_users{month=\"202402\"} 2",
        "# TYPE monthly_active_clients gauge",
        "monthly_active_clients{month=\"202402\"} 2",
        "monthly_active_clients{month=\"202401\"} 0",
        "access_token{month=\"202402\",grantType=\"client_credentials\"} 2",
        "id_token{month=\"202402\",grantType=\"client_credentials\"} 0",
        "# HELP uma_token UMA Token",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "missing {line}:\n{}",
            metrics.body
        );
    }
    assert!(
        !metrics.body.contains("202312"),
        "months without data are omitted"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_of_the_compat_table() {
    let fixture = fixture_with_weak_token();
    let (agent, addr) = started(&fixture).await;
    tokio::task::spawn_blocking(move || {
        let status = |target: &str, token: Option<&str>| get(addr, target, token);
        // 401, and before any 400 (Janssen's order).
        for (target, token) in [
            (format!("{STAT}?month=202402"), None),
            (format!("{STAT}?month=202402"), Some("wrong")),
            (format!("{STAT}?month=202402"), Some(WEAK_TOKEN)),
            (format!("{STAT}?month=bogus"), None),
        ] {
            let r = status(&target, token);
            assert_eq!(r.status, 401, "{target} {token:?}");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
            assert_eq!(r.json()["error"], "access_denied");
        }
        let basic = request(
            addr,
            "GET",
            &format!("{STAT}?month=202402"),
            &[("authorization", "Basic eDp5")],
            "",
        );
        assert_eq!(basic.status, 401);
        // 400 with a JSON error naming the problem.
        for (query, needle) in [
            ("month=202413", "202413"),
            ("month=202401,202402", "202401,202402"),
            (
                "month=202401&start-month=202401&end-month=202402",
                "not both",
            ),
            ("start-month=202402", "end-month"),
            ("end-month=202402", "start-month"),
            ("start-month=202403&end-month=202402", "after end"),
            ("start-month=2024-01&end-month=202402", "start-month"),
            ("start-month=200001&end-month=202402", "maximum"),
            ("", "month"),
        ] {
            let r = status(&format!("{STAT}?{query}"), Some(TOKEN));
            assert_eq!(r.status, 400, "{query}: {}", r.body);
            assert_eq!(r.json()["error"], "invalid_request");
            assert!(
                r.json()["error_description"]
                    .as_str()
                    .unwrap()
                    .contains(needle),
                "{query}: {}",
                r.body
            );
        }
        // Unknown paths, wrong methods, oversized bodies.
        assert_eq!(status("/nope", None).status, 404);
        assert_eq!(request(addr, "PUT", STAT, &[], "").status, 405);
        let big = "month=202402&x=".to_owned() + &"a".repeat(64 * 1024);
        let r = request(
            addr,
            "POST",
            STAT,
            &[
                ("authorization", "Bearer example-token"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &big,
        );
        assert_eq!(r.status, 413);
        // Health and probes.
        let health = status("/jans-auth/sys/health-check", None);
        assert_eq!(
            (health.status, health.body.as_str()),
            (200, r#"{"status": "running", "db_status":"online"}"#)
        );
        let post_health = request(addr, "POST", "/jans-auth/sys/health-check", &[], "");
        assert_eq!(post_health.status, 200);
        assert_eq!(status("/livez", None).status, 200);
        assert_eq!(status("/readyz", None).status, 200);
    })
    .await
    .unwrap();
    agent.shutdown().await;
}

/// Janssen's lenient edges: `format` ignoring case, a repeated parameter counting with its first
/// value (JAX-RS), unknown parameters ignored; a POST that is not a form gets our words, not a
/// library's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_case_repeated_and_unknown_parameters() {
    let fixture = Fixture::new("");
    let (agent, addr) = started(&fixture).await;
    tokio::task::spawn_blocking(move || {
        let months = |r: &Response| -> Vec<String> {
            r.json()["response"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["month"].as_str().unwrap().to_owned())
                .collect()
        };
        let r = get(
            addr,
            &format!("{STAT}?month=202402&month=202401&format=json&format=openmetrics&x=1"),
            Some(TOKEN),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(months(&r), ["202402"]);
        let r = request(
            addr,
            "POST",
            STAT,
            &[
                ("authorization", "Bearer example-token"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "month=202401&month=202402",
        );
        assert_eq!(months(&r), ["202401"]);
        for format in ["OpenMetrics", "OPENMETRICS", " openmetrics "] {
            let r = get(
                addr,
                &format!("{STAT}?month=202402&format={}", format.replace(' ', "%20")),
                Some(TOKEN),
            );
            assert_eq!(
                r.header("content-type"),
                Some("text/plain; version=0.0.4; charset=utf-8"),
                "{format}"
            );
        }
        let r = get(
            addr,
            &format!("{STAT}?month=202402&format=JsonMonth"),
            Some(TOKEN),
        );
        assert!(r.json()["response"]["202402"].is_object(), "{}", r.body);
        let r = request(
            addr,
            "POST",
            STAT,
            &[
                ("authorization", "Bearer example-token"),
                ("content-type", "text/plain"),
            ],
            "month=202402",
        );
        assert_eq!(r.status, 400);
        let description = r.json()["error_description"].as_str().unwrap().to_owned();
        assert!(description.contains("must be a form"), "{description}");
    })
    .await
    .unwrap();
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_stat_endpoint_answers_403() {
    let fixture = Fixture::new("");
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("api:\n", "api:\n  stat_enabled: false\n");
    std::fs::write(&path, text).unwrap();
    let agent = fixture.start().await;
    let addr = agent.addr;
    let r = tokio::task::spawn_blocking(move || {
        get(addr, &format!("{STAT}?month=202402"), Some(TOKEN))
    })
    .await
    .unwrap();
    assert_eq!(r.status, 403);
    agent.shutdown().await;
}

/// A local flush makes cached answers stale at once: data read after a first (empty) answer
/// shows without waiting for the cache TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_refreshes_cached_answers() {
    let fixture = Fixture::new("");
    let logs = fixture.dir.path().join("logs");
    let audit = std::fs::read(logs.join("jans-auth_audit.log")).unwrap();
    std::fs::write(logs.join("jans-auth_audit.log"), b"").unwrap();
    let agent = fixture.start().await;
    let addr = agent.addr;
    let target = format!("{STAT}?month=202402");
    let first = tokio::task::spawn_blocking({
        let target = target.clone();
        move || get(addr, &target, Some(TOKEN))
    })
    .await
    .unwrap();
    assert_eq!(
        first.json()["response"][0]["monthly_active_users"],
        serde_json::Value::Null,
        "{}",
        first.body
    );
    std::fs::write(logs.join("jans-auth_audit.log"), audit).unwrap();
    let stats = agent.stats.clone();
    let flushes = stats.flushing.applied.load(Ordering::Acquire);
    wait_until("the audit log to be read", || {
        stats.reading.records.load(Ordering::Relaxed) >= 15
    });
    agent.flush_now();
    wait_until("a flush", || {
        stats.flushing.applied.load(Ordering::Acquire) > flushes
    });
    let second = tokio::task::spawn_blocking(move || get(addr, &target, Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(
        second.json()["response"][0]["monthly_active_users"],
        2,
        "{}",
        second.body
    );
    agent.shutdown().await;
}

/// Cached by month: a flush of the current month makes the answers with that month stale at
/// once, and leaves the cached answers of past months (their versions did not change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_of_this_month_keeps_past_months_cached() {
    let mut fixture = Fixture::new("");
    fixture.add_current_month_users(&["now-1"]);
    let agent = start_and_flush(&fixture).await;
    let addr = agent.addr;
    let now = current_month();
    let hits = move || {
        let metrics = get(addr, "/metrics", None).body;
        crate::metrics::sample_value(
            &metrics,
            "authstat_api_cache_requests_total{result=\"hit\"}",
        )
        .unwrap_or(0.0)
    };
    let past = format!("{STAT}?month=202402");
    let current = format!("{STAT}?month={now}");
    let (hits_before, users_before) = tokio::task::spawn_blocking({
        let (past, current) = (past.clone(), current.clone());
        move || {
            // Both answers cached: asked until the answer is a hit (the months' versions are
            // polled every second; an answer made before the first poll is made once more).
            for target in [&past, &current] {
                wait_until("the answer cached", || {
                    let before = hits();
                    assert_eq!(get(addr, target, Some(TOKEN)).status, 200);
                    hits() > before
                });
            }
            let users =
                get(addr, &current, Some(TOKEN)).json()["response"][0]["monthly_active_users"]
                    .clone();
            (hits(), users)
        }
    })
    .await
    .unwrap();
    assert_eq!(users_before, 1);
    // A new user this month, flushed.
    let log = fixture.dir.path().join("logs/jans-auth_audit.log");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    append(
        &log,
        &AuditRecord::new("USER_AUTHORIZATION", now_ms, Some("now-2"), true).text(),
    );
    let stats = agent.stats.clone();
    let flushes = stats.flushing.applied.load(Ordering::Acquire);
    wait_until("the new record to be read", || {
        stats.reading.records.load(Ordering::Relaxed) > fixture.records
    });
    agent.flush_now();
    wait_until("a flush", || {
        stats.flushing.applied.load(Ordering::Acquire) > flushes
    });
    let (hits_after_past, users_after, hits_after_current) =
        tokio::task::spawn_blocking(move || {
            assert_eq!(get(addr, &past, Some(TOKEN)).status, 200);
            let hits_after_past = hits();
            let users =
                get(addr, &current, Some(TOKEN)).json()["response"][0]["monthly_active_users"]
                    .clone();
            (hits_after_past, users, hits())
        })
        .await
        .unwrap();
    assert_eq!(
        hits_after_past,
        hits_before + 1.0,
        "the past month stayed cached"
    );
    assert_eq!(users_after, 2, "this month was read again");
    assert_eq!(hits_after_current, hits_after_past, "a miss for this month");
    agent.shutdown().await;
}
