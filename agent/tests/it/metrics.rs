//! `/metrics` on a real run over the sample logs: the numbers, promtool for the text form, a
//! strict OpenMetrics parser for the other, and counters that survive a restart.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::*;

fn check_with(program: &str, args: &[&str], input: &str) -> (Option<i32>, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/install-deps installs it)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub(crate) fn sample_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_in_both_formats_and_across_a_restart() {
    let mut fixture = Fixture::new("");
    fixture.add_current_month_users(&["now-user-1", "now-user-2", "now-user-1"]);
    let mau = format!(
        "authstat_monthly_active_users{{month=\"{}\"}}",
        current_month()
    );
    // The users' records name one client.
    let clients = format!(
        "authstat_monthly_active_clients{{month=\"{}\"}}",
        current_month()
    );
    let agent = start_and_flush(&fixture).await;
    let addr = agent.addr;
    let (text, open) = tokio::task::spawn_blocking(move || {
        let _ = get(addr, "/nope", None); // one 404 to count
        let text = get(addr, "/metrics", None);
        let open = request(
            addr,
            "GET",
            "/metrics",
            &[("accept", "application/openmetrics-text; version=1.0.0")],
            "",
        );
        (text, open)
    })
    .await
    .unwrap();
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(
        open.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let body = &text.body;
    for (series, value) in [
        (
            "authstat_tokens_issued_total{grant_type=\"client_credentials\",token_type=\"access_token\"}",
            2.0,
        ),
        ("authstat_authentications_total{outcome=\"failure\"}", 1.0),
        ("authstat_authentications_total{outcome=\"success\"}", 5.0),
        (
            "authstat_authorizations_total{action=\"USER_AUTHORIZATION\",outcome=\"failure\"}",
            2.0,
        ),
        (mau.as_str(), 2.0),
        (clients.as_str(), 1.0),
        ("authstat_records_read_total", 18.0),
        ("authstat_records_skipped_total{reason=\"garbage\"}", 0.0),
        ("authstat_files_watched", 2.0),
        ("authstat_flushes_total{result=\"success\"}", 1.0),
        ("authstat_api_requests_total{code=\"404\"}", 1.0),
    ] {
        assert_eq!(sample_value(body, series), Some(value), "{series}\n{body}");
    }
    // promtool: parses, and no lint findings at all.
    let (code, report) = check_with("promtool", &["check", "metrics"], body);
    assert_eq!((code, report.trim()), (Some(0), ""), "{body}");
    // A strict OpenMetrics parser.
    assert!(open.body.ends_with("# EOF\n"));
    let (code, report) = check_with(
        &crate::support::python(),
        &[
            "-c",
            "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\nprint(len(list(parse(sys.stdin.read()))))",
        ],
        &open.body,
    );
    assert_eq!(code, Some(0), "{report}\n{}", open.body);
    agent.shutdown().await;

    // Counters continue from what the backend holds after a restart.
    let agent = fixture.start().await;
    let addr = agent.addr;
    let again = tokio::task::spawn_blocking(move || get(addr, "/metrics", None).body)
        .await
        .unwrap();
    // Nothing was read again (the positions were stored with the counts), so the values can
    // only have come from the backend.
    assert_eq!(
        sample_value(&again, "authstat_records_read_total"),
        Some(0.0),
        "{again}"
    );
    for series in [
        "authstat_tokens_issued_total{grant_type=\"client_credentials\",token_type=\"access_token\"}",
        "authstat_authentications_total{outcome=\"failure\"}",
        mau.as_str(),
    ] {
        assert!(
            sample_value(body, series).is_some_and(|v| v > 0.0),
            "{series}"
        );
        assert_eq!(
            sample_value(&again, series),
            sample_value(body, series),
            "{series} after a restart:\n{again}"
        );
    }
    agent.shutdown().await;
}
