//! Connections killed from another session in the middle of a flush (PostgreSQL, MariaDB):
//! before each write of the transaction in turn, and before its commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use authstat_backends::sql::{Interrupt, SqlConnection, SqlStore};
use authstat_core::counters::Counters;
use authstat_core::store::{FlushOutcome, StatStore};

use crate::support::*;

/// 80 months: 560 counter rows, so the counters take two statements.
fn months() -> Vec<String> {
    (0..80)
        .map(|i| format!("{}{:02}", 2018 + i / 12, i % 12 + 1))
        .collect()
}

/// The writes of the flush below: the node's row, the HLLs, the counters (two statements), the
/// positions (delete, insert); the point after them is the commit.
const POINTS: usize = 7;

/// For every point of a flush: `kill` runs there (it kills the flushing connection from another
/// session and returns how many connections it killed); the flush fails retryably with nothing
/// applied; its retry (on a new connection) is applied once. At the end every month holds
/// exactly the sums of the flushes.
pub async fn connection_killed_inside_a_flush<C: SqlConnection>(
    store: &SqlStore<C>,
    kill: impl Fn() -> usize + Send + Sync + 'static,
) {
    own(store, "node-a").await;
    let months = months();
    let names: Vec<&str> = months.iter().map(String::as_str).collect();
    let probe = [month(names[0]), month(names[79])];
    let killed = Arc::new(AtomicUsize::new(0));
    let kill = Arc::new(kill);
    for point in 0..POINTS {
        let seq = point as u64 + 1;
        let b = batch("node-a", seq, &names, 0, 5, 1);
        let hook: Interrupt = {
            let (kill, killed) = (kill.clone(), killed.clone());
            Arc::new(move || {
                killed.fetch_add(kill(), Ordering::SeqCst);
            })
        };
        let before = killed.load(Ordering::SeqCst);
        store.interrupt_next_flush(point, hook);
        let err = store.flush(&b).await.expect_err(&format!(
            "point {point}: the flush survived its killed connection"
        ));
        assert!(err.is_retryable(), "point {point}: {err}");
        assert!(
            killed.load(Ordering::SeqCst) > before,
            "point {point}: nothing was killed"
        );
        let read = store.read_months(&probe).await.unwrap();
        let mut expected = Counters::default();
        for _ in 0..point {
            expected.merge(&counters(1));
        }
        let stored = read.first().map(|m| m.counters.clone()).unwrap_or_default();
        assert_eq!(
            stored, expected,
            "point {point}: nothing of the failed flush applied"
        );
        assert_eq!(
            store.flush(&b).await.unwrap(),
            FlushOutcome::Applied,
            "point {point}: the retry"
        );
    }
    let read = store.read_months(&probe).await.unwrap();
    let mut expected = Counters::default();
    for _ in 0..POINTS {
        expected.merge(&counters(1));
    }
    for m in &read {
        assert_eq!(m.counters, expected, "{}: every flush once", m.month);
    }
    let state = store.load_node(&node("node-a")).await.unwrap();
    assert_eq!(state.seq, POINTS as u64);
    assert_eq!(state.months.len(), 80);
}
