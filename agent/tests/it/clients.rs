//! Statistics per client on a generated corpus whose truth is counted independently
//! (`authstat_test_support::truth`): three nodes on one database, the stat API's `group_by`,
//! `authstat query --group-by`, the cap and hostile client ids.

use std::collections::BTreeMap;

use authstat::RunningAgent;
use authstat_core::Month;
use authstat_test_support::rng::Rng;
use authstat_test_support::truth::{ClientTruth, Truth};
use serde_json::Value;

use crate::support::*;

const STAT: &str = "/jans-auth/restv1/internal/stat";
const MONTHS: [&str; 2] = ["202402", "202403"];

/// Three standard errors of a client's HLL (2,048 registers): 3 × 1.04 / √2048.
const THREE_SIGMA: f64 = 3.0 * 1.04 / 45.254_833_995_939_04;
/// Up to this many users a client's HLL holds them exactly (EXPLICIT).
const EXACT_UP_TO: usize = 160;

fn month(s: &str) -> Month {
    s.parse().unwrap()
}

use crate::support::{node_config as config, start_node as start};

/// `GET` of the stat endpoint with the token, in a blocking task.
async fn stat(agent: &RunningAgent, query: &str) -> Response {
    let (addr, target) = (agent.addr, format!("{STAT}?{query}"));
    tokio::task::spawn_blocking(move || get(addr, &target, Some(TOKEN)))
        .await
        .unwrap()
}

/// The API's figures of one client equal the truth: users exact while few, else within three
/// standard errors; authentications exact.
fn assert_client(id: &str, got: &Value, want: &ClientTruth) {
    let users = got["monthly_active_users"].as_u64().unwrap() as f64;
    let truth = want.users.len() as f64;
    if want.users.len() <= EXACT_UP_TO {
        assert_eq!(users, truth, "{id}: users (exact while few)");
    } else {
        assert!(
            (users - truth).abs() <= THREE_SIGMA * truth,
            "{id}: {users} users, truth {truth}"
        );
    }
    assert_eq!(got["authentications"]["success"], want.success, "{id}");
    assert_eq!(got["authentications"]["failure"], want.failure, "{id}");
}

/// Three nodes read a third of a corpus each (400 clients, most records on a few of them); the
/// merged figures per client equal the independent count, for the whole list and for the top
/// ten with the rest together; `authstat query --group-by client` says the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_figures_of_three_nodes_match_an_independent_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut truth = Truth::default();
    truth.clients = 400;
    let mut rng = Rng(0x0c11_e475);
    let nodes = ["node-a", "node-b", "node-c"];
    let mut texts: BTreeMap<&str, String> = BTreeMap::new();
    for i in 0..24_000 {
        let m = month(MONTHS[i % 2]);
        let text = truth.record(m, &mut rng);
        texts.entry(nodes[i % 3]).or_default().push_str(&text);
    }
    // Token events: 300 a node, over 20 of the clients, counted here.
    const GRANTS: [(&str, &str); 3] = [
        ("authorization_code", "access_token"),
        ("client_credentials", "access_token"),
        ("refresh_token", "refresh_token"),
    ];
    let mut tokens: BTreeMap<(String, String), BTreeMap<(String, String), u64>> = BTreeMap::new();
    let mut agents = Vec::new();
    for node in nodes {
        let path = config(dir.path(), node, "");
        let logs = dir.path().join(format!("logs-{node}"));
        std::fs::write(logs.join("audit.log"), &texts[node]).unwrap();
        let mut events = String::new();
        for i in 0..300u64 {
            let m = month(MONTHS[(i % 2) as usize]);
            let client = format!("app-{:05}", rng.below(20));
            let (grant, kind) = GRANTS[rng.below(3) as usize];
            let ts = m.start_epoch_millis() + i as i64 * 1000;
            events.push_str(&authstat_test_support::janssen::token_event(
                ts, grant, kind, &client,
            ));
            *tokens
                .entry((m.to_string(), client))
                .or_default()
                .entry((grant.to_owned(), kind.to_owned()))
                .or_default() += 1;
        }
        std::fs::write(logs.join("tokens.jsonl"), events).unwrap();
        agents.push(start(&path, 8_300).await);
    }
    let api = &agents[0];
    let months = "month=202402%20202403";
    let all = stat(api, &format!("{months}&group_by=client&top=10000")).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let body = all.json();
    for (i, m) in MONTHS.iter().enumerate() {
        let got = &body["response"][i];
        assert_eq!(got["month"], *m);
        let want = truth.per_client(month(m));
        // Active: named by a successful authorization or token request, or issuing tokens.
        let mut active = truth.active_clients(month(m));
        active.extend(
            tokens
                .keys()
                .filter(|(tm, _)| tm == m)
                .map(|(_, id)| id.clone()),
        );
        assert_eq!(
            got["monthly_active_clients"].as_u64().unwrap() as usize,
            active.len(),
            "{m}: active clients (exact for so few)"
        );
        let clients = got["clients"].as_object().unwrap();
        let counted: Vec<_> = want
            .iter()
            .filter(|(_, t)| !t.users.is_empty() || t.success + t.failure > 0)
            .collect();
        let mut with_figures: std::collections::BTreeSet<&str> =
            counted.iter().map(|(id, _)| id.as_str()).collect();
        with_figures.extend(
            tokens
                .keys()
                .filter(|(tm, _)| tm == m)
                .map(|(_, id)| id.as_str()),
        );
        assert_eq!(
            clients.len(),
            with_figures.len(),
            "{m}: every client with a figure"
        );
        for (id, t) in counted {
            assert_client(id, &clients[id.as_str()], t);
        }
        // Tokens per client: exact.
        for ((of_month, id), by_grant) in tokens.iter().filter(|((tm, _), _)| tm == m) {
            for ((grant, kind), n) in by_grant {
                assert_eq!(
                    clients[id.as_str()]["token_count_per_granttype"][grant][kind],
                    *n,
                    "{of_month} {id} {grant} {kind}"
                );
            }
        }
        assert_eq!(got["other_clients"]["monthly_active_users"], 0);
    }

    // The top ten, most active users first, and the rest together (a union of their users).
    let top = stat(
        api,
        &format!("{months}&group_by=client&top=10&format=jsonmonth"),
    )
    .await;
    let body = top.json();
    for m in MONTHS {
        let got = &body["response"][m];
        let clients = got["clients"].as_object().unwrap();
        assert_eq!(clients.len(), 10);
        let mut want: Vec<(String, ClientTruth)> = truth.per_client(month(m)).into_iter().collect();
        want.sort_by_key(|(_, t)| std::cmp::Reverse(t.users.len()));
        let smallest_top = clients
            .values()
            .map(|c| c["monthly_active_users"].as_u64().unwrap())
            .min()
            .unwrap() as f64;
        // The 10th client by truth is within the HLL's error of the smallest one shown.
        assert!(smallest_top >= want[9].1.users.len() as f64 * (1.0 - THREE_SIGMA));
        let mut rest = ClientTruth::default();
        for (id, t) in &want {
            if let Some(c) = clients.get(id) {
                assert_client(id, c, t);
            } else {
                rest.users.extend(t.users.iter().cloned());
                rest.success += t.success;
                rest.failure += t.failure;
            }
        }
        assert_client("other_clients", &got["other_clients"], &rest);
        assert!(got["token_count_per_granttype"].is_object());
    }

    // Realms: Janssen has none.
    let realms = stat(api, &format!("{months}&group_by=realm")).await.json();
    assert_eq!(realms["response"][0]["realms"], serde_json::json!({}));
    assert_eq!(
        realms["response"][0]["other_realms"]["monthly_active_users"],
        0
    );
    // Without group_by, Janssen's answer: no clients.
    let plain = stat(api, months).await.json();
    assert!(plain["response"][0].get("clients").is_none());

    // authstat query --group-by client answers the same figures.
    let out = crate::support::run_ok(
        crate::support::authstat()
            .args([
                "query",
                "--month",
                "202402",
                "--format",
                "json",
                "--group-by",
                "client",
                "--top",
                "10000",
                "--config",
            ])
            .arg(dir.path().join("node-a.yaml")),
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let api_feb = all.json()["response"][0]["clients"].clone();
    assert_eq!(json["months"][0]["clients"], api_feb);
    for agent in agents {
        agent.shutdown().await;
    }
}

/// Bad requests: a JSON error naming the parameter, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_mistakes_are_400_with_the_parameter_named() {
    let fixture = Fixture::new("");
    let agent = start_and_flush(&fixture).await;
    for (query, names) in [
        ("month=202402&group_by=application", "group_by"),
        ("month=202402&group_by=client&top=0", "top"),
        ("month=202402&group_by=client&top=10001", "top"),
        ("month=202402&group_by=client&top=ten", "top"),
        ("month=202402&top=5", "top"),
        (
            "month=202402&group_by=client&format=openmetrics",
            "group_by",
        ),
    ] {
        let r = stat(&agent, query).await;
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        let description = r.json()["error_description"].as_str().unwrap().to_owned();
        assert!(description.starts_with(names), "{query}: {description}");
    }
    agent.shutdown().await;
}

/// A node keeps at most `max_per_month` clients a month apart (the rest's figures go to
/// `other_clients`, counted and nothing lost); an id over 256 bytes is kept only in the cluster
/// figures (counted); ids with quotes, markup and non-ASCII come back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_and_hostile_client_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        dir.path(),
        "capped",
        "derive:\n  per_client:\n    max_per_month: 20\n",
    );
    let mut truth = Truth::default();
    truth.clients = 100;
    let mut rng = Rng(0xca9);
    let feb = month("202402");
    let hostile = "\"><script>alert('é')</script>\\";
    let long = "x".repeat(300);
    let mut text = String::new();
    // The hostile id first (it is among the 20 kept), then the long one, then the rest.
    for _ in 0..40 {
        text.push_str(&truth.record_of(feb, &mut rng, hostile));
        text.push_str(&truth.record_of(feb, &mut rng, &long));
    }
    for _ in 0..4_000 {
        text.push_str(&truth.record(feb, &mut rng));
    }
    std::fs::write(dir.path().join("logs-capped/audit.log"), text).unwrap();
    let agent = start(&path, 4_080).await;
    let body = stat(&agent, "month=202402&group_by=client&top=10000")
        .await
        .json();
    let got = &body["response"][0];
    let clients = got["clients"].as_object().unwrap();
    assert_eq!(clients.len(), 20, "the cap");
    assert!(!clients.contains_key(&long), "too long to keep apart");
    let want = truth.per_client(feb);
    assert_client(hostile, &clients[hostile], &want[hostile]);
    // Nothing lost: the named clients and the rest add up to the cluster's authentications.
    let auths = |c: &Value| {
        c["authentications"]["success"].as_u64().unwrap()
            + c["authentications"]["failure"].as_u64().unwrap()
    };
    let named: u64 = clients.values().map(auths).sum();
    let all: u64 = want.values().map(|t| t.success + t.failure).sum();
    let long_ones = want[&long].success + want[&long].failure;
    assert_eq!(named + auths(&got["other_clients"]), all - long_ones);
    let metrics = {
        let addr = agent.addr;
        tokio::task::spawn_blocking(move || get(addr, "/metrics", None).body)
            .await
            .unwrap()
    };
    let set_apart = |reason: &str| -> u64 {
        let prefix = format!("authstat_client_figures_set_apart_total{{reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{reason} in {metrics}")) as u64
    };
    assert!(set_apart("too_long") >= long_ones.max(1), "{metrics}");
    assert!(set_apart("over_cap") > 0, "{metrics}");
    // The dashboard's table of the top clients shows the hostile id escaped.
    let page = {
        let addr = agent.addr;
        tokio::task::spawn_blocking(move || {
            dashboard_page(addr, "/dashboard?from=202402&to=202402").body
        })
        .await
        .unwrap()
    };
    assert!(page.contains("<table id=\"clients\">"), "{page}");
    assert!(page.contains("&quot;&gt;&lt;script&gt;"), "escaped: {page}");
    assert!(!page.contains("<script>alert"), "escaped");
    agent.shutdown().await;
}

/// Per-client series on `/metrics` only when enabled, at most `max_metric_clients` clients (the
/// rest under `client=""`), adding up to the node's authentications.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_series_only_when_enabled_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let mut truth = Truth::default();
    truth.clients = 6;
    let mut rng = Rng(0x005e_41e5);
    let mut text = String::new();
    for _ in 0..600 {
        text.push_str(&truth.record(month("202402"), &mut rng));
    }
    let metrics_of = |agent: &RunningAgent| {
        let addr = agent.addr;
        tokio::task::spawn_blocking(move || get(addr, "/metrics", None).body)
    };
    let sum = |metrics: &str, prefix: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    for (node, extra) in [
        (
            "series",
            "derive:\n  per_client:\n    metrics: true\n    max_metric_clients: 3\n",
        ),
        ("plain", ""),
    ] {
        let path = config(dir.path(), node, extra);
        std::fs::write(dir.path().join(format!("logs-{node}/audit.log")), &text).unwrap();
        let agent = start(&path, 600).await;
        let metrics = metrics_of(&agent).await.unwrap();
        let series: std::collections::BTreeSet<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("authstat_client_authentications_total{"))
            .filter_map(|l| l.split("client=\"").nth(1)?.split('"').next())
            .collect();
        if extra.is_empty() {
            assert!(series.is_empty(), "off by default: {metrics}");
        } else {
            assert_eq!(series.len(), 4, "3 clients and the rest: {series:?}");
            assert!(series.contains(""), "{series:?}");
            assert_eq!(
                sum(&metrics, "authstat_client_authentications_total{"),
                sum(&metrics, "authstat_authentications_total{"),
                "nothing lost"
            );
        }
        agent.shutdown().await;
    }
}
