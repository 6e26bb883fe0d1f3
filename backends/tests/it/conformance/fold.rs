//! Folding silent nodes (`StatStore::fold_silent`): reads unchanged, returning nodes counted
//! once, concurrent folds and flushes, interrupted folds.

use authstat_core::NodeId;
use authstat_core::counters::Counters;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{FlushOutcome, FoldReport, FoldRequest, StatStore};

use crate::support::*;

const MONTHS: [&str; 2] = ["202401", "202402"];

/// Every node that flushed before a minute from now is silent; leases are judged now.
pub(super) fn everything_silent() -> FoldRequest {
    let now = now_ms();
    FoldRequest {
        silent_before_ms: now + 60_000,
        now_ms: now,
    }
}

/// `node` claims, flushes `MONTHS` (users `first..first + 300`, counters × `k`) and stops
/// cleanly (its lease released).
async fn flush_and_leave(store: &dyn StatStore, node_id: &str, first: usize, k: u64) {
    let epoch = own(store, node_id).await;
    let mut b = batch(node_id, 1, &MONTHS, first, 300, k);
    b.epoch = epoch;
    assert_eq!(store.flush(&b).await.unwrap(), FlushOutcome::Applied);
    store.release_node(&node(node_id), epoch).await.unwrap();
}

async fn read_all(store: &dyn StatStore) -> Vec<authstat_core::MonthStats> {
    store.read_months(&MONTHS.map(month)).await.unwrap()
}

/// The expected merged months: users of every `(first, count)` range, counters × the sum of
/// `ks`.
fn expected(ranges: &[(usize, usize)], ks: u64) -> Vec<(Hll, Counters)> {
    MONTHS
        .iter()
        .map(|m| {
            let mut hll = Hll::new(HllParams::janssen());
            for &(first, count) in ranges {
                hll.union(&users(
                    (first..first + count).map(|i| format!("{m}-user{i}")),
                ))
                .unwrap();
            }
            (hll, counters(ks))
        })
        .collect()
}

fn assert_read(read: &[authstat_core::MonthStats], want: &[(Hll, Counters)], what: &str) {
    assert_eq!(read.len(), want.len(), "{what}: months");
    for (stats, (hll, counters)) in read.iter().zip(want) {
        assert_eq!(&stats.users, hll, "{what}: {} users", stats.month);
        assert_eq!(
            &stats.counters, counters,
            "{what}: {} counters",
            stats.month
        );
    }
}

pub async fn silent_nodes_are_folded_and_reads_stay_the_same(h: &dyn Harness) {
    let store = h.open().await.store;
    flush_and_leave(store.as_ref(), "pod-a", 0, 1).await;
    flush_and_leave(store.as_ref(), "pod-b", 200, 2).await;
    // pod-c runs: its lease is live, it is never folded.
    own(store.as_ref(), "pod-c").await;
    store
        .flush(&batch("pod-c", 1, &MONTHS, 400, 300, 4))
        .await
        .unwrap();
    let want = expected(&[(0, 300), (200, 300), (400, 300)], 7);
    let before = read_all(store.as_ref()).await;
    assert_read(&before, &want, "before");
    let version = store.data_version().await.unwrap();

    // Nobody is silent yet by time: nothing happens.
    let early = FoldRequest {
        silent_before_ms: 0,
        now_ms: now_ms(),
    };
    assert_eq!(
        store.fold_silent(&early).await.unwrap(),
        FoldReport::default()
    );

    let report = store.fold_silent(&everything_silent()).await.unwrap();
    assert_eq!(report.nodes, [node("pod-a"), node("pod-b")]);
    assert_eq!(report.node_months, 4);
    assert_read(&read_all(store.as_ref()).await, &want, "after the fold");
    assert_ne!(
        store.data_version().await.unwrap(),
        version,
        "a fold is a change"
    );

    // The folded nodes keep seq and positions, not their months; the folded row has them.
    let a = store.load_node(&node("pod-a")).await.unwrap();
    assert_eq!((a.seq, a.months.len(), a.positions.len()), (1, 0, 2));
    let c = store.load_node(&node("pod-c")).await.unwrap();
    assert_eq!(c.months.len(), 2, "a live node keeps its rows");
    let folded = store.load_node(&NodeId::folded()).await.unwrap();
    assert_read(
        &folded.months,
        &expected(&[(0, 300), (200, 300)], 3),
        "the folded row",
    );
    let listed: Vec<NodeId> = store
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.node)
        .collect();
    assert!(listed.contains(&NodeId::folded()), "{listed:?}");

    // Folding again finds nothing and changes nothing.
    let version = store.data_version().await.unwrap();
    assert_eq!(
        store.fold_silent(&everything_silent()).await.unwrap(),
        FoldReport::default()
    );
    assert_eq!(store.data_version().await.unwrap(), version);

    // A second round folds into the same rows.
    flush_and_leave(store.as_ref(), "pod-d", 600, 8).await;
    let report = store.fold_silent(&everything_silent()).await.unwrap();
    assert_eq!(report.nodes, [node("pod-d")]);
    assert_read(
        &read_all(store.as_ref()).await,
        &expected(&[(0, 300), (200, 300), (400, 300), (600, 300)], 15),
        "after the second fold",
    );
}

pub async fn a_folded_node_that_comes_back_is_counted_once(h: &dyn Harness) {
    let store = h.open().await.store;
    flush_and_leave(store.as_ref(), "pod-a", 0, 1).await;
    store.fold_silent(&everything_silent()).await.unwrap();

    // The agent comes back: it claims, resumes (seq and positions, no months) and flushes
    // what it read since, its HLL started afresh.
    let epoch = own(store.as_ref(), "pod-a").await;
    let state = store.load_node(&node("pod-a")).await.unwrap();
    assert_eq!(state.seq, 1);
    assert!(state.months.is_empty());
    let mut b = batch("pod-a", state.seq + 1, &MONTHS, 150, 300, 2);
    b.epoch = epoch;
    assert_eq!(store.flush(&b).await.unwrap(), FlushOutcome::Applied);
    assert_read(
        &read_all(store.as_ref()).await,
        &expected(&[(0, 450)], 3),
        "old rows folded, new rows its own",
    );
    // It is not silent now: a fold leaves it alone.
    assert!(
        store
            .fold_silent(&everything_silent())
            .await
            .unwrap()
            .nodes
            .is_empty()
    );

    // An agent that was not stopped but only silent (its lease expired, say a paused
    // process) flushes again under its old claim after being folded: counted once too.
    let epoch = own(store.as_ref(), "pod-z").await;
    let mut late = batch("pod-z", 1, &MONTHS, 1000, 100, 5);
    late.epoch = epoch;
    late.lease_until_ms = now_ms() - 1;
    store.flush(&late).await.unwrap();
    let report = store.fold_silent(&everything_silent()).await.unwrap();
    assert_eq!(report.nodes, [node("pod-z")]);
    // Its next flush carries its whole HLL (it never forgot it) and the new counters only.
    let mut next = batch("pod-z", 2, &MONTHS, 1000, 200, 1);
    next.epoch = epoch;
    assert_eq!(store.flush(&next).await.unwrap(), FlushOutcome::Applied);
    assert_read(
        &read_all(store.as_ref()).await,
        &expected(&[(0, 450), (1000, 200)], 9),
        "a late flush after the fold",
    );
}

pub async fn concurrent_folds_fold_each_node_once(h: &dyn Harness) {
    let store = h.open().await.store;
    for i in 0..12 {
        flush_and_leave(store.as_ref(), &format!("pod-{i:02}"), i * 50, 1).await;
    }
    let want = expected(&[(0, 850)], 12);
    // Four agents (four connections or clients) fold at once.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = h.open().await.store;
        tasks.push(tokio::spawn(async move {
            store.fold_silent(&everything_silent()).await.unwrap()
        }));
    }
    let mut folded = Vec::new();
    let mut node_months = 0;
    for task in tasks {
        let report = task.await.unwrap();
        node_months += report.node_months;
        folded.extend(report.nodes);
    }
    folded.sort();
    let all: Vec<NodeId> = (0..12).map(|i| node(&format!("pod-{i:02}"))).collect();
    assert_eq!(folded, all, "every node folded by exactly one of the folds");
    assert_eq!(node_months, 24);
    assert_read(
        &read_all(store.as_ref()).await,
        &want,
        "after concurrent folds",
    );
}

pub async fn flushes_racing_a_fold_are_counted_once(h: &dyn Harness) {
    let store = h.open().await.store;
    // A node whose lease has run out but whose agent still flushes (so it is foldable at any
    // moment), flushing while other agents fold again and again.
    let epoch = own(store.as_ref(), "pod-a").await;
    let rounds = 12u64;
    let folder = {
        let store = h.open().await.store;
        tokio::spawn(async move {
            let mut folds = 0;
            for _ in 0..rounds * 2 {
                folds += store
                    .fold_silent(&everything_silent())
                    .await
                    .unwrap()
                    .nodes
                    .len();
                tokio::task::yield_now().await;
            }
            folds
        })
    };
    for seq in 1..=rounds {
        let mut b = batch("pod-a", seq, &MONTHS, 0, 10 * seq as usize, 1);
        b.epoch = epoch;
        b.lease_until_ms = now_ms() - 1;
        assert_eq!(store.flush(&b).await.unwrap(), FlushOutcome::Applied);
        tokio::task::yield_now().await;
    }
    let folds = folder.await.unwrap();
    store.fold_silent(&everything_silent()).await.unwrap();
    assert_read(
        &read_all(store.as_ref()).await,
        &expected(&[(0, 10 * rounds as usize)], rounds),
        &format!("{rounds} flushes, {folds} folds of the node meanwhile"),
    );
}

pub async fn an_interrupted_fold_changes_no_read_and_is_finished_later(h: &dyn Harness) {
    let opened = h.open().await;
    let store = opened.store.clone();
    let mut ranges = Vec::new();
    let mut ks = 0;
    let points = (0..9).map(Fail::Before).chain([Fail::AfterCommit]);
    let mut fired = 0;
    for (i, at) in points.enumerate() {
        // Two new silent nodes for every failure point.
        for j in 0..2 {
            let first = 1000 * i + 300 * j;
            flush_and_leave(store.as_ref(), &format!("pod-{i}-{j}"), first, 1).await;
            ranges.push((first, 300));
            ks += 1;
        }
        let want = expected(&ranges, ks);
        (opened.fail_next_fold)(at);
        let failed = store.fold_silent(&everything_silent()).await;
        let exists = match at {
            Fail::Before(n) => n < opened.fold_points,
            Fail::AfterCommit => opened.fold_after_commit,
        };
        match &failed {
            Err(e) => {
                assert!(injected(e) && exists, "{at:?}: {e}");
                fired += 1;
            }
            Ok(_) => assert!(!exists, "the fault at {at:?} did not fire"),
        }
        assert_read(
            &read_all(store.as_ref()).await,
            &want,
            &format!("after a fold that stopped at {at:?} ({failed:?})"),
        );
        store.fold_silent(&everything_silent()).await.unwrap();
        assert_read(
            &read_all(store.as_ref()).await,
            &want,
            &format!("after the fold following {at:?}"),
        );
        for j in 0..2 {
            let state = store
                .load_node(&node(&format!("pod-{i}-{j}")))
                .await
                .unwrap();
            assert!(state.months.is_empty(), "{at:?}: pod-{i}-{j} folded");
        }
    }
    let points = opened.fold_points.min(9) + usize::from(opened.fold_after_commit);
    assert_eq!(fired, points, "every injected fault fired");
}
