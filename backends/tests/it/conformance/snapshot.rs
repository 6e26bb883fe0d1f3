//! Snapshots of foreign nodes (`StatStore::put_snapshot`): replaced, never added; merged with
//! authstat's counters; their users kept apart; a stale version changes nothing; never folded.

use std::sync::Arc;

use authstat_core::counters::{CounterKey, Counters, Outcome};
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{FlushOutcome, Snapshot, SnapshotOutcome, StatStore};
use authstat_core::{MonthStats, NodeId};

use crate::support::*;

pub const MONTH: &str = "202401";

fn janssen_node(doc_id: &str) -> NodeId {
    NodeId::foreign("janssen", doc_id).unwrap()
}

/// Users as Janssen hashes them (Java's `String.hashCode`).
fn janssen_users(names: impl IntoIterator<Item = String>) -> Hll {
    let mut hll = Hll::new(HllParams::janssen());
    for name in names {
        hll.add_raw(HashAlgorithm::JavaStringHashCode.hash(&name));
    }
    hll
}

fn tokens(grant: &str, access: u64, id: u64) -> Counters {
    let mut c = Counters::default();
    c.add(&token(grant, "access_token"), access);
    if id > 0 {
        c.add(&token(grant, "id_token"), id);
    }
    c
}

pub fn snapshot(doc_id: &str, version: i64, users: usize, counters: Counters) -> Snapshot {
    Snapshot {
        node: janssen_node(doc_id),
        version,
        months: vec![MonthStats {
            month: month(MONTH),
            users: janssen_users((0..users).map(|i| format!("{doc_id}-user{i}"))),
            counters,
            foreign_users: None,
            clients: None,
        }],
    }
}

async fn read(store: &dyn StatStore) -> MonthStats {
    let mut read = store.read_months(&[month(MONTH)]).await.unwrap();
    assert_eq!(read.len(), 1, "{read:?}");
    read.remove(0)
}

fn sum(a: &Counters, b: &Counters) -> Counters {
    let mut c = a.clone();
    c.merge(b);
    c
}

pub async fn snapshots_replace_and_merge_apart(h: &dyn Harness) {
    let store = h.open().await.store;
    own(store.as_ref(), "node-a").await;
    let ours = batch("node-a", 1, &[MONTH], 0, 200, 1);
    assert_eq!(store.flush(&ours).await.unwrap(), FlushOutcome::Applied);
    let ours = &ours.months[0];

    // A row with a counter that disappears later, and one that grows.
    let mut first_counters = tokens("authorization_code", 12, 12);
    first_counters.add(&CounterKey::Authentication(Outcome::Success), 5);
    let first = snapshot("02-42-AC-11-00-02_202401", 100, 50, first_counters.clone());
    let version = store.data_version().await.unwrap();
    assert_eq!(
        store.put_snapshot(&first).await.unwrap(),
        SnapshotOutcome::Applied
    );
    let after_first = store.data_version().await.unwrap();
    assert_ne!(
        after_first, version,
        "an applied snapshot changes the data version"
    );
    let stats = read(store.as_ref()).await;
    assert_eq!(stats.counters, sum(&ours.counter_deltas, &first_counters));
    assert_eq!(stats.users, ours.users, "authstat's users are not mixed");
    assert_eq!(stats.foreign_users.as_ref(), Some(&first.months[0].users));

    // The same row read again: the same values, not twice.
    assert_eq!(
        store.put_snapshot(&first).await.unwrap(),
        SnapshotOutcome::Applied
    );
    assert_eq!(
        read(store.as_ref()).await.counters,
        sum(&ours.counter_deltas, &first_counters)
    );

    // The row grew: exactly the new values (the counter it no longer has is gone).
    let grown_counters = tokens("authorization_code", 30, 0);
    let grown = snapshot("02-42-AC-11-00-02_202401", 200, 80, grown_counters.clone());
    assert_eq!(
        store.put_snapshot(&grown).await.unwrap(),
        SnapshotOutcome::Applied
    );
    let stats = read(store.as_ref()).await;
    assert_eq!(stats.counters, sum(&ours.counter_deltas, &grown_counters));
    assert_eq!(stats.foreign_users.as_ref(), Some(&grown.months[0].users));

    // An older version (another agent read the row earlier) changes nothing.
    let version = store.data_version().await.unwrap();
    let stale = snapshot(
        "02-42-AC-11-00-02_202401",
        150,
        10,
        tokens("password", 99, 0),
    );
    assert_eq!(
        store.put_snapshot(&stale).await.unwrap(),
        SnapshotOutcome::Stale
    );
    assert_eq!(store.data_version().await.unwrap(), version);
    assert_eq!(
        read(store.as_ref()).await.counters,
        sum(&ours.counter_deltas, &grown_counters)
    );

    // A second server node's row: counters add, users union apart.
    let other = snapshot(
        "02-42-AC-11-00-03_202401",
        7,
        30,
        tokens("client_credentials", 4, 0),
    );
    store.put_snapshot(&other).await.unwrap();
    let stats = read(store.as_ref()).await;
    assert_eq!(
        stats.counters,
        sum(
            &sum(&ours.counter_deltas, &grown_counters),
            &other.months[0].counters
        )
    );
    let mut both = grown.months[0].users.clone();
    both.union(&other.months[0].users).unwrap();
    assert_eq!(stats.foreign_users, Some(both));
    assert_eq!(stats.users, ours.users);

    // Listed as nodes, and their own state is the snapshot.
    let listed: Vec<NodeId> = store
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.node)
        .collect();
    assert!(
        listed.contains(&janssen_node("02-42-AC-11-00-03_202401")),
        "{listed:?}"
    );
    let state = store
        .load_node(&janssen_node("02-42-AC-11-00-03_202401"))
        .await
        .unwrap();
    assert_eq!(state.months.len(), 1);
    assert_eq!(state.months[0].counters, other.months[0].counters);
}

pub async fn snapshots_are_only_for_foreign_nodes(h: &dyn Harness) {
    let store = h.open().await.store;
    let mut wrong = snapshot("x_202401", 1, 1, tokens("password", 1, 0));
    wrong.node = node("node-a");
    let err = store.put_snapshot(&wrong).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("foreign"), "{err}");
    assert!(store.read_months(&[month(MONTH)]).await.unwrap().is_empty());
}

pub async fn foreign_nodes_are_never_folded(h: &dyn Harness) {
    let store = h.open().await.store;
    let epoch = own(store.as_ref(), "node-a").await;
    let mut ours = batch("node-a", 1, &[MONTH], 0, 100, 1);
    ours.epoch = epoch;
    store.flush(&ours).await.unwrap();
    store.release_node(&node("node-a"), epoch).await.unwrap();
    let theirs = snapshot("null_202401", 5, 40, tokens("implicit", 3, 3));
    store.put_snapshot(&theirs).await.unwrap();
    let before = read(store.as_ref()).await;
    let report = store
        .fold_silent(&super::fold::everything_silent())
        .await
        .unwrap();
    assert_eq!(
        report.nodes,
        vec![node("node-a")],
        "only authstat's node folds"
    );
    assert_eq!(read(store.as_ref()).await, before);
    // A later snapshot of the row still replaces it.
    let grown = snapshot("null_202401", 6, 60, tokens("implicit", 9, 9));
    store.put_snapshot(&grown).await.unwrap();
    let stats = read(store.as_ref()).await;
    assert_eq!(
        stats.counters,
        sum(&ours.months[0].counter_deltas, &grown.months[0].counters)
    );
    assert_eq!(stats.foreign_users.as_ref(), Some(&grown.months[0].users));
}

pub async fn concurrent_snapshots_keep_the_newest(h: &dyn Harness) {
    let store: Arc<dyn StatStore> = h.open().await.store;
    // Eight agents store eight versions of one row at once, in no particular order.
    let tasks: Vec<_> = (1..=8u64)
        .rev()
        .map(|v| {
            let store = store.clone();
            tokio::spawn(async move {
                let s = snapshot(
                    "02-42-AC-11-00-09_202401",
                    v as i64,
                    10 * v as usize,
                    tokens("password", v, 0),
                );
                store.put_snapshot(&s).await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let stats = read(store.as_ref()).await;
    assert_eq!(stats.counters, tokens("password", 8, 0));
    assert_eq!(
        stats.foreign_users,
        Some(
            snapshot("02-42-AC-11-00-09_202401", 8, 80, Counters::default()).months[0]
                .users
                .clone()
        )
    );
}

pub async fn daily_users_keep_the_largest_figure(h: &dyn Harness) {
    let store: Arc<dyn StatStore> = h.open().await.store;
    let (jan, feb) = (month("202401"), month("202402"));
    assert!(store.daily_users(jan).await.unwrap().is_empty());
    store.record_daily_users(jan, 1, 10).await.unwrap();
    store.record_daily_users(jan, 1, 7).await.unwrap();
    store.record_daily_users(jan, 31, 400).await.unwrap();
    store.record_daily_users(feb, 1, 3).await.unwrap();
    assert_eq!(
        store.daily_users(jan).await.unwrap(),
        [(1, 10), (31, 400)].into_iter().collect()
    );
    assert_eq!(
        store.daily_users(feb).await.unwrap(),
        [(1, 3)].into_iter().collect()
    );
    assert!(
        !store
            .record_daily_users(jan, 32, 1)
            .await
            .unwrap_err()
            .is_retryable()
    );
    // Agents recording the same day at once: the largest wins.
    let tasks: Vec<_> = (1..=8u64)
        .map(|v| {
            let store = store.clone();
            tokio::spawn(async move { store.record_daily_users(feb, 2, v * 100).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.daily_users(feb).await.unwrap()[&2], 800);
}
