//! What every backend must do, written once (see `authstat_core::store`).

use std::sync::Arc;

use authstat_core::counters::Counters;
use authstat_core::store::{FlushOutcome, NodeState, StatStore, StoreError};

use crate::support::*;

mod dims;
mod fold;
mod ownership;
mod rollup;
pub mod snapshot;
pub use dims::*;
pub use fold::*;
pub use ownership::*;
pub use rollup::*;
pub use snapshot::*;

/// Instantiates every conformance test for one backend; `$harness` is an async fn returning a
/// fresh `impl Harness`.
macro_rules! conformance_tests {
    ($harness:path) => {
        conformance_tests!(@each $harness,
            round_trip, counters_accumulate_and_hll_is_replaced, merge_of_three_nodes,
            months_without_data_are_absent, resume_after_reopening, retried_batch_is_applied_once,
            concurrent_flushes_from_two_nodes, failed_flush_leaves_no_partial_state,
            positions_are_replaced_or_kept, agents_starting_at_once_on_an_empty_database,
            a_lost_answer_is_retried_and_applied_once,
            a_failure_at_any_write_of_a_large_flush_changes_nothing,
            one_instance_owns_a_node, expired_and_released_leases_are_taken_over,
            two_instances_of_one_node_flushing_at_once, keys_are_claimed_once_cluster_wide,
            data_version_and_nodes, silent_nodes_are_folded_and_reads_stay_the_same,
            a_folded_node_that_comes_back_is_counted_once, concurrent_folds_fold_each_node_once,
            flushes_racing_a_fold_are_counted_once,
            an_interrupted_fold_changes_no_read_and_is_finished_later,
            snapshots_replace_and_merge_apart, snapshots_are_only_for_foreign_nodes,
            foreign_nodes_are_never_folded, concurrent_snapshots_keep_the_newest,
            daily_users_keep_the_largest_figure, the_rollup_equals_the_merge_of_the_node_rows,
            a_write_changes_only_its_months_versions,
            clients_and_realms_merge_over_nodes_and_survive_retries_and_folds,
            days_merge_and_are_dropped_before_the_retention);
    };
    (@each $harness:path, $($test:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let harness = $harness().await;
                crate::conformance::$test(&harness).await;
            }
        )*
    };
}
pub(crate) use conformance_tests;

fn counters_of(stats: &authstat_core::MonthStats) -> &Counters {
    &stats.counters
}

pub async fn round_trip(h: &dyn Harness) {
    let store = h.open().await.store;
    own(store.as_ref(), "node-a").await;
    let b = batch("node-a", 1, &["202401", "202402"], 0, 3000, 1);
    assert_eq!(store.flush(&b).await.unwrap(), FlushOutcome::Applied);
    let read = store
        .read_months(&[month("202402"), month("202401")])
        .await
        .unwrap();
    assert_eq!(read.len(), 2);
    for (stats, flushed) in read.iter().zip(&b.months) {
        assert_eq!(stats.month, flushed.month, "ascending order");
        assert_eq!(stats.users, flushed.users, "HLL bytes round trip");
        assert_eq!(counters_of(stats), &flushed.counter_deltas);
    }
}

pub async fn counters_accumulate_and_hll_is_replaced(h: &dyn Harness) {
    let store = h.open().await.store;
    own(store.as_ref(), "node-a").await;
    store
        .flush(&batch("node-a", 1, &["202402"], 0, 10, 1))
        .await
        .unwrap();
    // The node's whole HLL grows; counters are deltas.
    let second = batch("node-a", 2, &["202402"], 0, 50, 2);
    store.flush(&second).await.unwrap();
    let read = store.read_months(&[month("202402")]).await.unwrap();
    assert_eq!(read[0].users, second.months[0].users);
    let mut expected = counters(1);
    expected.merge(&counters(2));
    assert_eq!(read[0].counters, expected);
}

pub async fn merge_of_three_nodes(h: &dyn Harness) {
    let store = h.open().await.store;
    // Overlapping users across nodes; one node has only one of the months.
    let batches = [
        batch("node-a", 1, &["202401", "202402"], 0, 4000, 1),
        batch("node-b", 1, &["202401", "202402"], 2000, 4000, 2),
        batch("node-c", 7, &["202402"], 5000, 100, 3),
    ];
    for b in &batches {
        own(store.as_ref(), b.node.as_str()).await;
        store.flush(b).await.unwrap();
    }
    let read = store
        .read_months(&[month("202401"), month("202402")])
        .await
        .unwrap();
    assert_eq!(read.len(), 2);
    for stats in &read {
        let mut hll = authstat_core::hll::Hll::new(authstat_core::hll::HllParams::janssen());
        let mut sums = Counters::default();
        for m in batches
            .iter()
            .flat_map(|b| &b.months)
            .filter(|m| m.month == stats.month)
        {
            hll.union(&m.users).unwrap();
            sums.merge(&m.counter_deltas);
        }
        assert_eq!(stats.users, hll, "{}: union over nodes", stats.month);
        assert_eq!(stats.counters, sums, "{}: sums over nodes", stats.month);
    }
    // 6000 distinct users in January (0..6000), within HLL error.
    let jan = read[0].monthly_active_users() as f64;
    assert!((jan - 6000.0).abs() / 6000.0 < 0.03, "{jan}");
}

pub async fn months_without_data_are_absent(h: &dyn Harness) {
    let store = h.open().await.store;
    assert!(
        store
            .read_months(&[month("202402")])
            .await
            .unwrap()
            .is_empty(),
        "empty store"
    );
    own(store.as_ref(), "node-a").await;
    store
        .flush(&batch("node-a", 1, &["202402", "202312"], 0, 5, 1))
        .await
        .unwrap();
    let asked = [
        month("202401"),
        month("202402"),
        month("202402"),
        month("202312"),
        month("203001"),
    ];
    let read: Vec<String> = store
        .read_months(&asked)
        .await
        .unwrap()
        .iter()
        .map(|s| s.month.to_string())
        .collect();
    assert_eq!(read, ["202312", "202402"]);
    assert!(store.read_months(&[]).await.unwrap().is_empty());
}

pub async fn resume_after_reopening(h: &dyn Harness) {
    let first = h.open().await.store;
    assert_eq!(
        first.load_node(&node("node-a")).await.unwrap(),
        NodeState::default()
    );
    let b1 = batch("node-a", 1, &["202401"], 0, 100, 1);
    let b2 = batch("node-a", 2, &["202401", "202402"], 0, 200, 1);
    own(first.as_ref(), "node-a").await;
    own(first.as_ref(), "node-b").await;
    first.flush(&b1).await.unwrap();
    first.flush(&b2).await.unwrap();
    first
        .flush(&batch("node-b", 1, &["202401"], 9000, 100, 5))
        .await
        .unwrap();
    drop(first);

    // Reopening runs the migrations a second time.
    let store = h.open().await.store;
    let state = store.load_node(&node("node-a")).await.unwrap();
    assert_eq!(state.seq, 2);
    assert_eq!(
        Some(state.positions.clone()),
        b2.positions,
        "kept exactly, ordered"
    );
    assert_eq!(state.months.len(), 2, "only node-a's months");
    assert_eq!(state.months[0].users, b2.months[0].users);
    let mut jan = counters(1);
    jan.merge(&counters(1));
    assert_eq!(state.months[0].counters, jan);
    assert_eq!(state.months[1].counters, counters(1));
}

pub async fn retried_batch_is_applied_once(h: &dyn Harness) {
    let store = h.open().await.store;
    own(store.as_ref(), "node-a").await;
    let b = batch("node-a", 5, &["202402"], 0, 10, 1);
    assert_eq!(store.flush(&b).await.unwrap(), FlushOutcome::Applied);
    assert_eq!(store.flush(&b).await.unwrap(), FlushOutcome::AlreadyApplied);
    let older = batch("node-a", 4, &["202402"], 0, 10, 9);
    assert_eq!(
        store.flush(&older).await.unwrap(),
        FlushOutcome::AlreadyApplied
    );
    let read = store.read_months(&[month("202402")]).await.unwrap();
    assert_eq!(read[0].counters, counters(1), "counted once");
    assert_eq!(store.load_node(&node("node-a")).await.unwrap().seq, 5);
}

pub async fn concurrent_flushes_from_two_nodes(h: &dyn Harness) {
    let store: Arc<dyn StatStore> = h.open().await.store;
    let tasks: Vec<_> = ["node-a", "node-b"]
        .into_iter()
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                own(store.as_ref(), n).await;
                for seq in 1..=15 {
                    let b = batch(n, seq, &["202401", "202402"], seq as usize * 10, 10, 1);
                    assert_eq!(store.flush(&b).await.unwrap(), FlushOutcome::Applied);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let read = store
        .read_months(&[month("202401"), month("202402")])
        .await
        .unwrap();
    let mut expected = Counters::default();
    for _ in 0..30 {
        expected.merge(&counters(1));
    }
    for stats in read {
        assert_eq!(stats.counters, expected, "{}", stats.month);
    }
}

pub async fn failed_flush_leaves_no_partial_state(h: &dyn Harness) {
    let opened = h.open().await;
    let store = opened.store;
    own(store.as_ref(), "node-a").await;
    store
        .flush(&batch("node-a", 1, &["202401", "202402"], 0, 100, 1))
        .await
        .unwrap();
    let before = store.load_node(&node("node-a")).await.unwrap();
    let before_read = store
        .read_months(&[month("202401"), month("202402")])
        .await
        .unwrap();

    let b = batch("node-a", 2, &["202401", "202402"], 0, 500, 3);
    (opened.fail_next_flush)(Fail::Before(1));
    let err = store.flush(&b).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    assert!(injected(&err), "the injected fault fired: {err}");
    assert!(err.is_retryable());
    assert_eq!(
        store.load_node(&node("node-a")).await.unwrap(),
        before,
        "nothing of it kept"
    );
    assert_eq!(
        store
            .read_months(&[month("202401"), month("202402")])
            .await
            .unwrap(),
        before_read
    );
    // The caller retries the same batch later: applied exactly once.
    assert_eq!(store.flush(&b).await.unwrap(), FlushOutcome::Applied);
    let read = store.read_months(&[month("202402")]).await.unwrap();
    let mut expected = counters(1);
    expected.merge(&counters(3));
    assert_eq!(read[0].counters, expected);
    assert_eq!(read[0].users, b.months[1].users);
}

pub async fn positions_are_replaced_or_kept(h: &dyn Harness) {
    let store = h.open().await.store;
    own(store.as_ref(), "node-a").await;
    store
        .flush(&batch("node-a", 1, &["202402"], 0, 1, 1))
        .await
        .unwrap();
    let mut b = batch("node-a", 2, &[], 0, 0, 0);
    b.positions = Some(vec![position("audit", 99, 12345)]);
    store.flush(&b).await.unwrap();
    let state = store.load_node(&node("node-a")).await.unwrap();
    assert_eq!(Some(state.positions), b.positions);
    assert_eq!(
        state.months.len(),
        1,
        "a positions-only flush keeps the months"
    );
    // None: unchanged.
    b.seq = 3;
    b.positions = None;
    store.flush(&b).await.unwrap();
    let state = store.load_node(&node("node-a")).await.unwrap();
    assert_eq!(state.positions, vec![position("audit", 99, 12345)]);
    assert_eq!(state.seq, 3);
    b.seq = 4;
    b.positions = Some(Vec::new());
    store.flush(&b).await.unwrap();
    assert!(
        store
            .load_node(&node("node-a"))
            .await
            .unwrap()
            .positions
            .is_empty()
    );
}

pub async fn agents_starting_at_once_on_an_empty_database(h: &dyn Harness) {
    let (a, b, c) = tokio::join!(h.open(), h.open(), h.open());
    for (i, opened) in [a, b, c].into_iter().enumerate() {
        let b = batch(&format!("node-{i}"), 1, &["202402"], 0, 10, 1);
        own(opened.store.as_ref(), b.node.as_str()).await;
        opened.store.flush(&b).await.unwrap();
    }
}

/// The flush was committed, but its answer was lost (a connection dropped after the commit):
/// the caller retries the same batch, which is recognised.
pub async fn a_lost_answer_is_retried_and_applied_once(h: &dyn Harness) {
    let opened = h.open().await;
    let store = opened.store;
    own(store.as_ref(), "node-a").await;
    let mut b = batch("node-a", 1, &["202401", "202402"], 0, 100, 2);
    for m in &mut b.months {
        m.dims = dims::some_clients(5, 2);
    }
    let months = [month("202401"), month("202402")];
    let kind = authstat_core::dims::DimKind::Client;
    let authentications = |read: Vec<authstat_core::dims::MonthDims>| -> u64 {
        read.iter()
            .flat_map(|m| m.dims.values())
            .map(|d| d.counters.authentications.values().sum::<u64>())
            .sum()
    };
    (opened.fail_next_flush)(Fail::AfterCommit);
    let err = store.flush(&b).await.unwrap_err();
    assert!(
        err.is_retryable() && injected(&err),
        "the injected fault fired: {err}"
    );
    // (MongoDB: the clients' counters wait in the node's document; readers add them.)
    let once = 2 * 5 * (2 + 1);
    let read = store.read_dims(&months, kind).await.unwrap();
    assert_eq!(authentications(read), once, "stored once before the retry");
    assert_eq!(store.flush(&b).await.unwrap(), FlushOutcome::AlreadyApplied);
    let read = store.read_dims(&months, kind).await.unwrap();
    assert_eq!(authentications(read), once, "and once after it");
    let state = store.load_node(&node("node-a")).await.unwrap();
    assert_eq!(state.seq, 1);
    assert_eq!(Some(state.positions), b.positions);
    for stats in store
        .read_months(&[month("202401"), month("202402")])
        .await
        .unwrap()
    {
        assert_eq!(stats.counters, counters(2), "{}: counted once", stats.month);
    }
}

/// A batch large enough that every kind of write takes several statements (SQL writes at most
/// 500 rows per statement): a failure before any one of them leaves nothing, and the retry
/// applies the batch once.
pub async fn a_failure_at_any_write_of_a_large_flush_changes_nothing(h: &dyn Harness) {
    let opened = h.open().await;
    let store = opened.store;
    own(store.as_ref(), "node-a").await;
    let large = |seq: u64| {
        let mut b = batch("node-a", seq, &["202401", "202402"], 0, 50, 1);
        for m in &mut b.months {
            for g in 0..600 {
                m.counter_deltas
                    .add(&token(&format!("grant-{g}"), "access_token"), 1);
            }
            m.dims = dims::some_clients(10, seq);
        }
        let mut positions: Vec<_> = (0..1100)
            .map(|k| position("audit", k, seq * 10 + k))
            .collect();
        positions.sort();
        b.positions = Some(positions);
        b
    };
    let mut expected = Counters::default();
    // SQL: update node, HLLs, 3 counter statements, the roll-up's months (one statement) and 3 counter
    // statements, the clients' HLLs and counters and their roll-up (3 statements), delete positions, 3 position
    // statements.
    let mut fired = 0;
    let months = [month("202401"), month("202402")];
    let clients = authstat_core::dims::DimKind::Client;
    for at in 0..19 {
        let seq = at as u64 + 1;
        let b = large(seq);
        let before = store.load_node(&node("node-a")).await.unwrap();
        let own_before = store.node_dims(&node("node-a"), &months).await.unwrap();
        let read_before = store.read_months(&months).await.unwrap();
        let clients_before = store.read_dims(&months, clients).await.unwrap();
        (opened.fail_next_flush)(Fail::Before(at));
        match store.flush(&b).await {
            // Fewer writes than `at`: nothing was injected.
            Ok(FlushOutcome::Applied) => assert!(
                at >= opened.flush_points,
                "the fault before write {at} did not fire ({} points)",
                opened.flush_points
            ),
            Ok(other) => panic!("{other:?}"),
            Err(e) => {
                assert!(e.is_retryable() && injected(&e), "{e}");
                assert!(at < opened.flush_points, "write {at} failed: {e}");
                fired += 1;
                assert_eq!(
                    store.load_node(&node("node-a")).await.unwrap(),
                    before,
                    "a failure before write {at} left something behind"
                );
                assert_eq!(
                    store.node_dims(&node("node-a"), &months).await.unwrap(),
                    own_before,
                    "a failure before write {at} left the node's clients changed"
                );
                assert_eq!(
                    store.read_months(&months).await.unwrap(),
                    read_before,
                    "a failure before write {at} left something in the roll-up"
                );
                assert_eq!(
                    store.read_dims(&months, clients).await.unwrap(),
                    clients_before,
                    "a failure before write {at} left clients behind"
                );
                assert_eq!(store.flush(&b).await.unwrap(), FlushOutcome::Applied);
            }
        }
        expected.merge(&b.months[0].counter_deltas);
        let state = store.load_node(&node("node-a")).await.unwrap();
        assert_eq!(state.seq, seq);
        assert_eq!(state.positions.len(), 1100);
        assert_eq!(Some(state.positions), b.positions);
        assert_eq!(state.months[0].counters, expected, "after write {at}");
        let read = store.read_months(&months).await.unwrap();
        assert_eq!(read[0].counters, expected, "the roll-up after write {at}");
        let auths = |read: &[authstat_core::dims::MonthDims]| -> u64 {
            read.iter()
                .flat_map(|m| m.dims.values())
                .map(|d| d.counters.authentications.values().sum::<u64>())
                .sum()
        };
        assert_eq!(
            auths(&store.read_dims(&months, clients).await.unwrap()),
            auths(&clients_before) + 2 * 10 * (seq + seq / 2),
            "the clients' counters after write {at}"
        );
    }
    assert_eq!(
        fired,
        opened.flush_points.min(19),
        "every injected fault fired"
    );
}
