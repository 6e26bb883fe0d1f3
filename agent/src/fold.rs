//! Folding silent nodes (`fold_silent_nodes_after_secs`, docs/storage.md): every agent asks the
//! backend now and then to fold the nodes that have been silent for longer than the setting;
//! the backend folds each node once, whichever agent asks first.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use authstat_core::NodeId;
use authstat_core::store::{FoldReport, FoldRequest, StatStore, StoreError};
use tracing::{info, warn};

use crate::pipeline::Folding;
use authstat_core::month::now_ms;

/// How often an agent folds: a quarter of the silence that makes a node foldable, at least
/// every second and at most every hour.
pub fn interval(silent_for: Duration) -> Duration {
    (silent_for / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Folds now the nodes silent for longer than `silent_for`, and counts what happened.
pub async fn once(
    store: &dyn StatStore,
    silent_for: Duration,
    stats: &Folding,
) -> Result<FoldReport, StoreError> {
    let now = now_ms();
    let request = FoldRequest {
        silent_before_ms: now
            .saturating_sub(i64::try_from(silent_for.as_millis()).unwrap_or(i64::MAX)),
        now_ms: now,
    };
    match store.fold_silent(&request).await {
        Ok(report) if report.nodes.is_empty() => {
            stats.nothing.fetch_add(1, Ordering::Relaxed);
            Ok(report)
        }
        Ok(report) => {
            stats.folded.fetch_add(1, Ordering::Relaxed);
            stats
                .nodes
                .fetch_add(report.nodes.len() as u64, Ordering::Relaxed);
            const NAMED: usize = 10;
            let named: Vec<&str> = report
                .nodes
                .iter()
                .take(NAMED)
                .map(NodeId::as_str)
                .collect();
            info!(
                nodes = report.nodes.len(),
                node_months = report.node_months,
                first = ?named,
                into = %NodeId::folded(),
                "folded the rows of silent nodes"
            );
            Ok(report)
        }
        Err(e) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
    }
}

/// Folds every [`interval`] until the task is aborted.
pub async fn run(
    store: Arc<dyn StatStore>,
    silent_for: Duration,
    stats: Arc<crate::pipeline::PipelineStats>,
) {
    let every = interval(silent_for);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = once(store.as_ref(), silent_for, &stats.folding).await {
            warn!(error = %e, retry_in_secs = every.as_secs(), "folding silent nodes failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authstat_backends::memory::MemoryStore;
    use authstat_core::counters::{CounterKey, Counters, Outcome};
    use authstat_core::hll::{Hll, HllParams};
    use authstat_core::store::{
        ClaimRequest, FlushBatch, Instance, MonthFlush, NodeClaim, TakeOver,
    };

    #[test]
    fn the_interval_is_a_quarter_of_the_silence_within_bounds() {
        assert_eq!(
            interval(Duration::from_secs(30 * 86_400)),
            Duration::from_secs(3600)
        );
        assert_eq!(interval(Duration::from_secs(400)), Duration::from_secs(100));
        assert_eq!(interval(Duration::from_secs(2)), Duration::from_secs(1));
    }

    /// A node that flushed once and stopped cleanly.
    async fn stopped_node(store: &MemoryStore, id: &str) {
        let node = NodeId::new(id).unwrap();
        let request = ClaimRequest {
            node: node.clone(),
            instance: Instance {
                id: id.into(),
                host: "h".into(),
                pid: 1,
                started_at_ms: 0,
                locality: String::new(),
            },
            until_ms: now_ms() + 60_000,
            now_ms: now_ms(),
            take_over: TakeOver::Never,
        };
        let NodeClaim::Granted { epoch, .. } = store.claim_node(&request).await.unwrap() else {
            panic!("refused")
        };
        let mut counters = Counters::default();
        counters.add(&CounterKey::Authentication(Outcome::Success), 3);
        let mut users = Hll::new(HllParams::janssen());
        users.add_raw(42);
        store
            .flush(&FlushBatch {
                node: node.clone(),
                epoch,
                lease_until_ms: now_ms() + 60_000,
                seq: 1,
                months: vec![MonthFlush {
                    month: "202402".parse().unwrap(),
                    users,
                    counter_deltas: counters,
                    clients: None,
                    dims: Vec::new(),
                }],
                positions: None,
            })
            .await
            .unwrap();
        store.release_node(&node, epoch).await.unwrap();
    }

    /// Lets the spawned task run (one thread, paused clock) until `done`.
    async fn settle(done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_task_folds_at_its_interval_and_counts() {
        let store = Arc::new(MemoryStore::new());
        stopped_node(&store, "pod-a").await;
        let stats = Arc::new(crate::pipeline::PipelineStats::default());
        // The store stamps flushes by the wall clock: let it pass the 4 ms of silence asked
        // for (a distance on the clock, not an ordering of threads). The task's own clock is
        // tokio's, paused here and advanced by hand.
        std::thread::sleep(Duration::from_millis(5));
        let task = tokio::spawn(run(store.clone(), Duration::from_millis(4), stats.clone()));
        // The task sets its timer when it first runs.
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(999)).await;
        tokio::task::yield_now().await;
        assert_eq!(
            stats.folding.folded.load(Ordering::Relaxed),
            0,
            "not before the interval"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        settle(|| stats.folding.folded.load(Ordering::Relaxed) > 0).await;
        assert_eq!(stats.folding.folded.load(Ordering::Relaxed), 1);
        assert_eq!(stats.folding.nodes.load(Ordering::Relaxed), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        settle(|| stats.folding.nothing.load(Ordering::Relaxed) > 0).await;
        assert_eq!(
            stats.folding.nothing.load(Ordering::Relaxed),
            1,
            "nothing left"
        );
        task.abort();
        let folded = store.load_node(&NodeId::folded()).await.unwrap();
        assert_eq!(folded.months.len(), 1);
    }
}
