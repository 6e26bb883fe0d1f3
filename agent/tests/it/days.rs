//! Active users over ranges of UTC days (`GET /authstat/v1/active-users`, `authstat query
//! --from --to`), against a generated corpus whose per-day user sets are known: days of
//! different sizes, weekends, users coming back, records at the edges of days, month ends and a
//! leap day, two nodes merged; the retention; the errors.

use std::collections::{BTreeMap, BTreeSet};

use authstat::RunningAgent;
use authstat_test_support::janssen::AuditRecord;
use authstat_test_support::rng::Rng;
use serde_json::Value;

use crate::support::*;

const PATH: &str = "/authstat/v1/active-users";
const DAY_MS: i64 = 86_400_000;
/// Three standard errors of a day's HLL (8,192 registers).
const THREE_SIGMA: f64 = 3.0 * 1.04 / 90.509_667_991_878_08;
/// Up to this many users a day's HLL holds them exactly (EXPLICIT).
const EXACT_UP_TO: usize = 640;

/// Days since 1970-01-01 of a date.
fn day(y: i64, m: u32, d: u32) -> i64 {
    authstat_core::month::days_from_civil(y, m, d)
}

fn text(day: i64) -> String {
    authstat_api::active::day_text(day)
}

use crate::support::{node_config as config, start_node as start};

async fn ask(agent: &RunningAgent, query: &str, token: Option<&'static str>) -> Response {
    let (addr, target) = (agent.addr, format!("{PATH}?{query}"));
    tokio::task::spawn_blocking(move || get(addr, &target, token))
        .await
        .unwrap()
}

/// `got` users against the truth: exact while few, else within three standard errors.
fn assert_users(what: &str, got: &Value, truth: usize) {
    let got = got.as_u64().unwrap_or_else(|| panic!("{what}: {got}")) as f64;
    if truth <= EXACT_UP_TO {
        assert_eq!(got, truth as f64, "{what} (exact while few)");
    } else {
        let t = truth as f64;
        assert!(
            (got - t).abs() <= THREE_SIGMA * t,
            "{what}: {got}, truth {t}"
        );
    }
}

/// A client's users (an HLL of 2,048 registers): exact up to 160, else within three standard
/// errors.
fn assert_client_users(what: &str, got: &Value, truth: usize) {
    let got = got.as_u64().unwrap_or_else(|| panic!("{what}: {got}")) as f64;
    if truth <= 160 {
        assert_eq!(got, truth as f64, "{what} (exact while few)");
    } else {
        let t = truth as f64;
        assert!(
            (got - t).abs() <= 3.0 * 1.04 / 45.25 * t,
            "{what}: {got}, truth {t}"
        );
    }
}

/// The distinct users of `days` (inclusive) in the truth.
fn union(truth: &BTreeMap<i64, BTreeSet<String>>, from: i64, to: i64) -> usize {
    truth
        .range(from..=to)
        .flat_map(|(_, users)| users.iter())
        .collect::<BTreeSet<_>>()
        .len()
}

/// 2024-01-20 to 2024-03-05 on two nodes: each day's users, every ISO week, every month and
/// rolling 7- and 30-day windows equal the independent count (within the HLL's error); records
/// at 23:59:59.999 and 00:00:00.000 fall on their own days; `authstat query --from --to`
/// answers the same as the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_users_of_days_weeks_and_rolling_ranges_match_an_independent_count() {
    let dir = tempfile::tempdir().unwrap();
    let (first, last) = (day(2024, 1, 20), day(2024, 3, 5));
    let mut rng = Rng(0x0da9_5eed);
    let mut truth: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    let mut logs = [String::new(), String::new()];
    let mut records = [0u64; 2];
    // Each client's users of each day (`derive.per_client.daily`).
    let mut by_client: BTreeMap<String, BTreeMap<i64, BTreeSet<String>>> = BTreeMap::new();
    let mut write = |node: usize, ts: i64, user: &str, success: bool, logs: &mut [String; 2]| {
        let mut record = AuditRecord::new("USER_AUTHORIZATION", ts, Some(user), success);
        // Twelve clients, the first ones busier; a user keeps to a few of them.
        let hash = user.bytes().fold(ts as u64 % 3, |h, b| {
            h.wrapping_mul(31).wrapping_add(u64::from(b))
        });
        record.client_id = format!("app-{}", (hash % 12).min(hash % 7));
        if success {
            by_client
                .entry(record.client_id.clone())
                .or_default()
                .entry(ts.div_euclid(DAY_MS))
                .or_default()
                .insert(user.to_owned());
        }
        logs[node].push_str(&record.text());
        records[node] += 1;
    };
    for d in first..=last {
        // Weekdays (Monday to Friday) are busier; some days much more than others.
        let weekday = (d + 3).rem_euclid(7);
        let size = if weekday < 5 {
            400 + rng.below(1400)
        } else {
            50 + rng.below(150)
        };
        for i in 0..size {
            // Users come back: most draws fall on a core of regulars.
            let user = if rng.below(4) == 0 {
                format!("u{}", rng.below(20_000))
            } else {
                format!("u{}", rng.below(1_500))
            };
            let ts = d * DAY_MS + rng.below(DAY_MS as u64) as i64;
            let success = rng.below(10) != 0;
            if success {
                truth.entry(d).or_default().insert(user.clone());
            }
            write((i % 2) as usize, ts, &user, success, &mut logs);
        }
    }
    // The edges of a day, a month end and the leap day: exact sets.
    for (d, user) in [
        (day(2024, 1, 31), "edge-jan31"),
        (day(2024, 2, 29), "edge-feb29"),
        (day(2024, 3, 1), "edge-mar1"),
    ] {
        write(
            0,
            d * DAY_MS + DAY_MS - 1,
            &format!("{user}-late"),
            true,
            &mut logs,
        );
        write(
            1,
            (d + 1) * DAY_MS,
            &format!("{user}-early-next"),
            true,
            &mut logs,
        );
        truth.entry(d).or_default().insert(format!("{user}-late"));
        truth
            .entry(d + 1)
            .or_default()
            .insert(format!("{user}-early-next"));
    }
    let mut agents = Vec::new();
    for (node, log) in ["day-a", "day-b"].into_iter().zip(&logs) {
        // 2024 is kept: the longest retention.
        let path = config(
            dir.path(),
            node,
            "daily_retention_days: 3660\nderive:\n  per_client:\n    daily: true\n",
        );
        std::fs::write(dir.path().join(format!("logs-{node}/audit.log")), log).unwrap();
        let n = records[agents.len()];
        agents.push(start(&path, n).await);
    }
    let api = &agents[0];
    let range = format!("from={}&to={}", text(first), text(last));

    let by_day = ask(api, &format!("{range}&by=day"), Some(TOKEN)).await;
    assert_eq!(by_day.status, 200, "{}", by_day.body);
    let body = by_day.json();
    assert_eq!(body["from"], text(first));
    assert_eq!(body["to"], text(last));
    assert_users(
        "the whole range",
        &body["active_users"],
        union(&truth, first, last),
    );
    let periods = body["periods"].as_array().unwrap();
    assert_eq!(periods.len() as i64, last - first + 1);
    for (p, d) in periods.iter().zip(first..) {
        assert_eq!(p["from"], text(d));
        assert_eq!(p["to"], text(d));
        assert_users(&text(d), &p["active_users"], union(&truth, d, d));
    }

    let weeks = ask(api, &format!("{range}&by=week"), Some(TOKEN))
        .await
        .json();
    let weeks = weeks["periods"].as_array().unwrap();
    // 2024-01-20 is a Saturday: the first week is cut to the weekend.
    assert_eq!(weeks[0]["to"], "2024-01-21");
    assert_eq!(weeks[1]["from"], "2024-01-22");
    for w in weeks {
        let from = authstat_api::active::parse_day("from", w["from"].as_str().unwrap()).unwrap();
        let to = authstat_api::active::parse_day("to", w["to"].as_str().unwrap()).unwrap();
        assert_users(
            &format!("week from {}", text(from)),
            &w["active_users"],
            union(&truth, from, to),
        );
    }
    let months = ask(api, &format!("{range}&by=month"), Some(TOKEN))
        .await
        .json();
    let months = months["periods"].as_array().unwrap();
    assert_eq!(months.len(), 3);
    assert_eq!(months[1]["from"], "2024-02-01");
    assert_eq!(months[1]["to"], "2024-02-29");
    assert_users(
        "February",
        &months[1]["active_users"],
        union(&truth, day(2024, 2, 1), day(2024, 2, 29)),
    );

    // Rolling windows: every 7th day, the 7 and 30 days up to it.
    for end in (first + 29..=last).step_by(7) {
        for days in [7, 30] {
            let from = end - days + 1;
            let r = ask(
                api,
                &format!("from={}&to={}", text(from), text(end)),
                Some(TOKEN),
            )
            .await;
            assert_users(
                &format!("{days} days to {}", text(end)),
                &r.json()["active_users"],
                union(&truth, from, end),
            );
        }
    }

    // Per client over a range of days (derive.per_client.daily): the top 3 and the rest.
    for (from, to) in [(first, last), (day(2024, 2, 26), day(2024, 3, 3))] {
        let r = ask(
            api,
            &format!("from={}&to={}&group_by=client&top=3", text(from), text(to)),
            Some(TOKEN),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let body = r.json();
        let clients = body["clients"].as_object().unwrap();
        assert_eq!(clients.len(), 3, "{body}");
        let users_of = |id: &str| -> BTreeSet<String> {
            by_client[id]
                .range(from..=to)
                .flat_map(|(_, u)| u.iter().cloned())
                .collect()
        };
        let mut rest = BTreeSet::new();
        for id in by_client.keys() {
            let truth = users_of(id);
            match clients.get(id.as_str()) {
                Some(got) => assert_client_users(id, &got["active_users"], truth.len()),
                None => rest.extend(truth),
            }
        }
        assert_client_users(
            "other_clients",
            &body["other_clients"]["active_users"],
            rest.len(),
        );
    }

    // authstat query --from --to --by week answers the same.
    let out = crate::support::run_ok(
        crate::support::authstat()
            .args([
                "query",
                "--from",
                &text(first),
                "--to",
                &text(last),
                "--by",
                "week",
            ])
            .args(["--format", "json", "--config"])
            .arg(dir.path().join("day-a.yaml")),
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    let api_weeks = ask(api, &format!("{range}&by=week"), Some(TOKEN))
        .await
        .json();
    assert_eq!(cli, api_weeks);
    for agent in agents {
        agent.shutdown().await;
    }
}

/// Errors name the parameter; no token is 401; a range before the retention is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_mistakes_and_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), "ret", "daily_retention_days: 31\n");
    let now = authstat_core::month::now_ms();
    std::fs::write(
        dir.path().join("logs-ret/audit.log"),
        AuditRecord::new("USER_AUTHORIZATION", now, Some("today"), true).text(),
    )
    .unwrap();
    let agent = start(&path, 1).await;
    let today = now.div_euclid(DAY_MS);
    let r = ask(&agent, &format!("from={0}&to={0}", text(today)), None).await;
    assert_eq!(r.status, 401);
    let ok = ask(
        &agent,
        &format!("from={0}&to={0}", text(today)),
        Some(TOKEN),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["active_users"], 1);
    assert!(ok.json().get("periods").is_none(), "periods only with by");
    // The dashboard: daily active users of the last 30 days (a line), this week's and the 30
    // days' users, stickiness (one user, active today only: 1/30 of a day on average).
    let page = {
        let addr = agent.addr;
        tokio::task::spawn_blocking(move || dashboard_page(addr, "/dashboard").body)
            .await
            .unwrap()
    };
    assert!(page.contains("<polyline class=\"line\""), "{page}");
    assert_eq!(
        page.matches("<circle class=\"dot s0\"").count(),
        30,
        "{page}"
    );
    for tile in ["tile-week", "tile-30d"] {
        let at = page
            .find(&format!("id=\"{tile}\""))
            .unwrap_or_else(|| panic!("{tile}: {page}"));
        assert!(
            page[at..].contains("<p class=\"value\">1</p>"),
            "{tile}: {page}"
        );
    }
    assert!(page.contains("stickiness 3.3 %"), "{page}");
    for (query, parameter) in [
        (format!("from={}&to=2024-02-30", text(today)), "to"),
        ("from=2024-1-01&to=2024-01-02".to_owned(), "from"),
        (
            format!("from={}&to={}", text(today), text(today - 1)),
            "from",
        ),
        (
            format!("from={}&to={}", text(today - 400), text(today)),
            "to",
        ),
        (
            format!("from={}&to={}", text(today - 70), text(today)),
            "from",
        ),
        (format!("from={0}&to={0}&by=year", text(today)), "by"),
        (
            format!("from={0}&to={0}&group_by=client", text(today)),
            "group_by",
        ),
        ("to=2024-01-01".to_owned(), "from"),
    ] {
        let r = ask(&agent, &query, Some(TOKEN)).await;
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        let description = r.json()["error_description"].as_str().unwrap().to_owned();
        assert!(description.starts_with(parameter), "{query}: {description}");
    }
    agent.shutdown().await;
}
