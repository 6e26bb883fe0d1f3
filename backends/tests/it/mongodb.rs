//! MongoDB: a database of its own per test on the MongoDB-protocol test server of scripts/test.

use std::sync::Arc;

use async_trait::async_trait;
use authstat_backends::mongo::{FailAt, FoldFailAt, MongoStore};
use authstat_backends::options::MongoConfig;
use authstat_core::store::{FlushOutcome, FoldRequest, StatStore, StoreError};

use crate::conformance::conformance_tests;
use crate::conformance::snapshot::snapshot;
use crate::mongo_proxy::{Cut, Proxy};
use crate::support::{
    Fail, Harness, Opened, assert_unavailable, batch, claim_request, counters, month, node, now_ms,
    own, required_env, unique_name,
};

struct Mongo {
    config: MongoConfig,
}

#[async_trait]
impl Harness for Mongo {
    async fn open(&self) -> Opened {
        let store = Arc::new(MongoStore::open(&self.config).await.unwrap());
        let hook = store.clone();
        let fold_hook = store.clone();
        Opened {
            store,
            fail_next_flush: Box::new(move |at| {
                hook.inject_flush_failure(match at {
                    Fail::Before(_) => FailAt::BeforeSend,
                    Fail::AfterCommit => FailAt::AfterApply,
                })
            }),
            fail_next_fold: Box::new(move |at| match at {
                Fail::Before(0) => fold_hook.inject_fold_failure(FoldFailAt::AfterMark),
                Fail::Before(1) => fold_hook.inject_fold_failure(FoldFailAt::AfterApply),
                _ => {}
            }),
            flush_points: usize::MAX,
            fold_points: 2,
            fold_after_commit: false,
        }
    }
}

async fn harness() -> Mongo {
    let uri = required_env("AUTHSTAT_TEST_MONGODB_URI", "MongoDB");
    Mongo {
        config: MongoConfig {
            uri,
            database: unique_name("authstat_test"),
            collection: "stats_nodes".into(),
            connect_timeout_secs: 5,
        },
    }
}

conformance_tests!(harness);

/// Keys with `.` and `$` (not allowed in MongoDB field names) survive.
#[tokio::test]
async fn awkward_keys_survive() {
    let h = harness().await;
    let store = authstat_backends::build(&authstat_backends::options::MongoConfig::backend(
        &h.config.clone(),
    ))
    .await
    .unwrap();
    assert_eq!(store.kind(), "mongodb");
    own(store.as_ref(), "node-a").await;
    let mut b = batch("node-a", 1, &["202402"], 0, 1, 0);
    b.months[0]
        .counter_deltas
        .add(&crate::support::token("x.y$z|%", "a.b"), 5);
    store.flush(&b).await.unwrap();
    let read = store.read_months(&[month("202402")]).await.unwrap();
    assert_eq!(read[0].counters.tokens.get("x.y$z|%", "a.b"), 5);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let config = MongoConfig {
        uri: "mongodb://app:hunter2@127.0.0.1:1/".into(),
        database: "x".into(),
        collection: "y".into(),
        connect_timeout_secs: 1,
    };
    let err = authstat_backends::build(&authstat_backends::options::MongoConfig::backend(&config))
        .await
        .unwrap_err();
    assert_unavailable(&err, "mongodb");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// A store through a proxy that can cut the connection.
async fn behind_proxy() -> (Mongo, Proxy, MongoStore) {
    let h = harness().await;
    let proxy = Proxy::start(&h.config.uri).await;
    let config = MongoConfig {
        uri: proxy.uri.clone(),
        ..h.config.clone()
    };
    let store = MongoStore::open(&config).await.unwrap();
    (h, proxy, store)
}

/// The server gone before a flush reached it, and a flush applied whose answer was lost: each
/// fails retryably, and its retry counts it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_cut_off_from_the_server_count_once() {
    let (_h, proxy, store) = behind_proxy().await;
    own(&store, "node-a").await;
    let flush = |seq| batch("node-a", seq, &["202402"], 0, 10, 1);
    assert_eq!(store.flush(&flush(1)).await.unwrap(), FlushOutcome::Applied);

    proxy.cut(Cut::LoseAnswer(0));
    let err = store.flush(&flush(2)).await.unwrap_err();
    assert!(err.is_retryable() && proxy.is_down(), "{err}");
    proxy.heal();
    assert_eq!(
        store.flush(&flush(2)).await.unwrap(),
        FlushOutcome::AlreadyApplied,
        "the server had applied it"
    );

    proxy.cut(Cut::Refuse(0));
    let err = store.flush(&flush(3)).await.unwrap_err();
    assert!(err.is_retryable() && proxy.is_down(), "{err}");
    let err = store.read_months(&[month("202402")]).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    proxy.heal();
    assert_eq!(store.flush(&flush(3)).await.unwrap(), FlushOutcome::Applied);

    let read = store.read_months(&[month("202402")]).await.unwrap();
    let mut expected = crate::support::counters(1);
    expected.merge(&crate::support::counters(1));
    expected.merge(&crate::support::counters(1));
    assert_eq!(read[0].counters, expected, "three flushes, each once");
}

/// A fold cut off from the server at each of its operations in turn, before the server saw it
/// and after it applied it: no read changes, and the next fold finishes the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_cut_off_at_every_operation_changes_no_read() {
    let (_h, proxy, store) = behind_proxy().await;
    let everything_silent = || FoldRequest {
        silent_before_ms: crate::support::now_ms() + 60_000,
        now_ms: crate::support::now_ms(),
    };
    let months = [month("202401"), month("202402")];
    let mut round = 0;
    for lose_answer in [false, true] {
        for n in 0.. {
            round += 1;
            for j in 0..2 {
                let id = format!("pod-{round}-{j}");
                let epoch = own(&store, &id).await;
                let mut b = batch(
                    &id,
                    1,
                    &["202401", "202402"],
                    round * 1000 + j * 300,
                    300,
                    1,
                );
                b.epoch = epoch;
                store.flush(&b).await.unwrap();
                store.release_node(&node(&id), epoch).await.unwrap();
            }
            let before = store.read_months(&months).await.unwrap();
            proxy.cut(if lose_answer {
                Cut::LoseAnswer(n)
            } else {
                Cut::Refuse(n)
            });
            let result = store.fold_silent(&everything_silent()).await;
            let cut = proxy.is_down();
            proxy.heal();
            assert_eq!(
                store.read_months(&months).await.unwrap(),
                before,
                "cut at operation {n} (answer lost: {lose_answer}): {result:?}"
            );
            store.fold_silent(&everything_silent()).await.unwrap();
            assert_eq!(store.read_months(&months).await.unwrap(), before);
            for j in 0..2 {
                let state = store
                    .load_node(&node(&format!("pod-{round}-{j}")))
                    .await
                    .unwrap();
                assert!(
                    state.months.is_empty(),
                    "cut at {n}: pod-{round}-{j} folded"
                );
            }
            if !cut {
                // The fold had fewer operations than n: every one was cut once.
                assert!(n > 5, "a fold takes more than {n} operations");
                break;
            }
        }
    }
}

/// The health check follows the server: Ok, unavailable while the server cannot be reached,
/// Ok again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_server() {
    let (_h, proxy, store) = behind_proxy().await;
    store.health().await.unwrap();
    proxy.cut(Cut::Refuse(0));
    let err = store.health().await.unwrap_err();
    assert_unavailable(&err, "mongodb");
    proxy.heal();
    store.health().await.unwrap();
}

/// What [`every_operation_cut_off_from_the_server`] cuts.
#[derive(Clone, Copy, Debug)]
enum Op {
    Flush,
    Snapshot,
    Claim,
    DailyRecord,
}

/// Runs `op` for round `round` (fresh ids each round).
async fn run(store: &MongoStore, op: Op, round: usize) -> Result<(), StoreError> {
    let id = format!("cut-{round}");
    match op {
        Op::Flush => {
            let mut b = batch(&id, 1, &["202402"], round * 100, 10, 1);
            b.epoch = store
                .lease(&node(&id))
                .await?
                .expect("claimed before the cut")
                .epoch;
            store.flush(&b).await.map(|_| ())
        }
        Op::Snapshot => store
            .put_snapshot(&snapshot(&id, 1, 10, counters(1)))
            .await
            .map(|_| ()),
        Op::Claim => store
            .claim_node(&claim_request(&id, "the-claimant", now_ms(), 60_000))
            .await
            .map(|_| ()),
        Op::DailyRecord => {
            store
                .record_daily_users(month("202402"), (round % 28) as u32 + 1, round as u64)
                .await
        }
    }
}

/// After the retry: `op` of `round` is stored exactly once.
async fn check(store: &MongoStore, op: Op, round: usize, what: &str) {
    let id = format!("cut-{round}");
    match op {
        Op::Flush => {
            let state = store.load_node(&node(&id)).await.unwrap();
            assert_eq!(state.seq, 1, "{what}");
            assert_eq!(state.months[0].counters, counters(1), "{what}: once");
        }
        Op::Snapshot => {
            let foreign = crate::conformance::snapshot::snapshot(&id, 1, 10, counters(1));
            let state = store.load_node(&foreign.node).await.unwrap();
            let (stored, sent) = (&state.months[0], &foreign.months[0]);
            assert_eq!(
                stored.counters, sent.counters,
                "{what}: replaced, not added"
            );
            assert_eq!(stored.foreign_users.as_ref(), Some(&sent.users), "{what}");
        }
        Op::Claim => {
            let lease = store.lease(&node(&id)).await.unwrap().expect(what);
            assert_eq!(lease.holder.expect(what).id, "the-claimant", "{what}");
            // A lost grant retried by the same instance is granted again (a new epoch, the
            // one the retry hears): at most one grant per attempt.
            assert!((1..=2).contains(&lease.epoch), "{what}: {}", lease.epoch);
        }
        Op::DailyRecord => {
            let days = store.daily_users(month("202402")).await.unwrap();
            assert_eq!(
                days.get(&((round % 28) as u32 + 1)),
                Some(&(round as u64)),
                "{what}"
            );
        }
    }
}

/// A flush, a snapshot, a claim and a daily record, each cut off from the server at every one
/// of its operations in turn, before the server saw it and after it applied it: the operation
/// fails retryably, its retry stores it once. Each cut is counted: an operation with fewer
/// wire operations than the cut's index ends the loop, and every earlier cut must have fired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_cut_off_from_the_server() {
    let (_h, proxy, store) = behind_proxy().await;
    let mut round = 0;
    for op in [Op::Flush, Op::Snapshot, Op::Claim, Op::DailyRecord] {
        for lose_answer in [false, true] {
            // The loop goes on only while the cut fired: every operation is cut once.
            for n in 0.. {
                round += 1;
                if matches!(op, Op::Flush) {
                    own(&store, &format!("cut-{round}")).await;
                }
                proxy.cut(if lose_answer {
                    Cut::LoseAnswer(n)
                } else {
                    Cut::Refuse(n)
                });
                let result = run(&store, op, round).await;
                let cut = proxy.is_down();
                proxy.heal();
                let what = format!("{op:?} cut at operation {n} (answer lost: {lose_answer})");
                if !cut {
                    // Fewer operations than n: every one was cut once, and this one passed.
                    result.unwrap_or_else(|e| panic!("{what}: not cut, yet {e}"));
                    assert!(n >= 1, "{what}: an operation reaches the server");
                    check(&store, op, round, &what).await;
                    break;
                }
                let err = result.expect_err(&what);
                assert!(err.is_retryable(), "{what}: {err}");
                run(&store, op, round)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: the retry: {e}"));
                check(&store, op, round, &what).await;
            }
        }
    }
}
