//! Folding silent nodes with real agents on SQLite: an agent that stopped is folded by another
//! one after `fold_silent_nodes_after_secs`; the statistics stay the same, `query --by-node`
//! shows the folded row, the metrics count the fold, and the folded agent, started again,
//! continues from its positions (nothing read twice) and adds what it reads since.

use std::sync::atomic::Ordering;

use crate::support::*;

/// `authstat query --by-node --format json` for the sample months.
fn query(fixture: &Fixture) -> serde_json::Value {
    let out = run_ok(
        authstat()
            .args(["query", "--month", "202401", "--month", "202402"])
            .args(["--by-node", "--format", "json", "--config"])
            .arg(fixture.config_path()),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn node_months(query: &serde_json::Value, node: &str) -> usize {
    query["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .map_or(0, |n| n["months"].as_array().unwrap().len())
}

fn set_config(fixture: &Fixture, from: &str, to: &str) {
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} not in the configuration");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_is_folded_by_another_and_resumes_without_double_counting() {
    let mut fixture = Fixture::new("fold_silent_nodes_after_secs: 1\n");
    let first = start_and_flush(&fixture).await;
    first.shutdown().await;
    let before = query(&fixture);
    assert_eq!(node_months(&before, "example-node"), 2);

    // Another node, reading other files, folds the silent one after a second.
    std::fs::create_dir(fixture.dir.path().join("other-logs")).unwrap();
    set_config(&fixture, "node_id: example-node", "node_id: other-node");
    set_config(&fixture, "paths: [logs/", "paths: [other-logs/");
    let other = fixture.start().await;
    let stats = other.stats.clone();
    wait_until("a fold", || {
        stats.folding.folded.load(Ordering::Relaxed) > 0
    });
    let addr = other.addr;
    let metrics = tokio::task::spawn_blocking(move || get(addr, "/metrics", None).body)
        .await
        .unwrap();
    assert!(
        metrics.contains("authstat_folds_total{result=\"folded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("authstat_folded_nodes_total 1"),
        "{metrics}"
    );
    other.shutdown().await;
    let after = query(&fixture);
    assert_eq!(
        after["months"], before["months"],
        "the statistics did not change"
    );
    assert_eq!(node_months(&after, "example-node"), 0, "{after:#}");
    assert_eq!(node_months(&after, "authstat:folded"), 2, "{after:#}");

    // The folded agent comes back: it continues where it stopped and counts only the new
    // records.
    set_config(&fixture, "node_id: other-node", "node_id: example-node");
    set_config(&fixture, "paths: [other-logs/", "paths: [logs/");
    set_config(&fixture, "fold_silent_nodes_after_secs: 1", "");
    let old_records = fixture.records;
    fixture.add_current_month_users(&["back-1", "back-2"]);
    let back = fixture.start().await;
    let stats = back.stats.clone();
    wait_until("the new records", || {
        stats.reading.records.load(Ordering::Relaxed) >= 2
    });
    back.flush_now();
    wait_until("a flush", || {
        stats.flushing.applied.load(Ordering::Acquire) >= 1
    });
    back.shutdown().await;
    assert_eq!(
        stats.reading.records.load(Ordering::Relaxed),
        fixture.records - old_records,
        "only the records written since: its positions survived the fold"
    );
    let last = query(&fixture);
    assert_eq!(
        last["months"], before["months"],
        "the sample months unchanged"
    );
}
