//! `type: memory`: everything in a map behind a mutex; lost at exit.
//!
//! It keeps the same per-node model and the same flush semantics as the durable backends
//! (sequence guard, checkpoint replacement, all-or-nothing), so tests written against it hold
//! for them too.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use authstat_core::store::{FlushBatch, FlushOutcome, NodeState, StatStore, StoreError};
use authstat_core::{Month, MonthStats, NodeId};

use crate::merge::distinct_months;

/// The in-memory backend.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// A std mutex: every critical section is short and CPU-only, never held across `.await`.
    nodes: Mutex<BTreeMap<NodeId, NodeState>>,
    /// Test hook: fail the next flush after this many months were applied (to a copy).
    fail_after_months: Mutex<Option<usize>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Test hook: the next flush fails after applying `months` months (to a working copy, so
    /// nothing of it is kept).
    #[doc(hidden)]
    pub fn inject_flush_failure(&self, months: usize) {
        *self.fail_after_months.lock().expect("lock") = Some(months);
    }
}

#[async_trait]
impl StatStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn flush(&self, batch: &FlushBatch) -> Result<FlushOutcome, StoreError> {
        let fail_after = self.fail_after_months.lock().expect("lock").take();
        let mut nodes = self.nodes.lock().expect("lock");
        let current = nodes.get(&batch.node).cloned().unwrap_or_default();
        if batch.seq <= current.seq {
            return Ok(FlushOutcome::AlreadyApplied);
        }
        // Work on a copy and swap it in at the end: all or nothing.
        let mut next = current;
        let mut months: BTreeMap<Month, MonthStats> =
            next.months.into_iter().map(|m| (m.month, m)).collect();
        for (applied, flush) in batch.months.iter().enumerate() {
            if fail_after == Some(applied) {
                return Err(StoreError::Unavailable {
                    backend: "memory",
                    message: "injected failure".into(),
                });
            }
            let stats = months
                .entry(flush.month)
                .or_insert_with(|| MonthStats::new(flush.month, *flush.users.params()));
            stats.users = flush.users.clone();
            stats.counters.merge(&flush.counter_deltas);
        }
        next.months = months.into_values().collect();
        next.checkpoints = batch.checkpoints.clone();
        next.seq = batch.seq;
        nodes.insert(batch.node.clone(), next);
        Ok(FlushOutcome::Applied)
    }

    async fn load_node(&self, node: &NodeId) -> Result<NodeState, StoreError> {
        Ok(self
            .nodes
            .lock()
            .expect("lock")
            .get(node)
            .cloned()
            .unwrap_or_default())
    }

    async fn read_months(&self, months: &[Month]) -> Result<Vec<MonthStats>, StoreError> {
        let nodes = self.nodes.lock().expect("lock");
        let mut merged = Vec::new();
        for month in distinct_months(months) {
            let mut acc: Option<MonthStats> = None;
            for state in nodes.values() {
                let Some(stats) = state.months.iter().find(|m| m.month == month) else {
                    continue;
                };
                match &mut acc {
                    None => acc = Some(stats.clone()),
                    Some(acc) => acc.merge(stats).map_err(|e| StoreError::Corrupt {
                        backend: "memory",
                        message: e.to_string(),
                    })?,
                }
            }
            merged.extend(acc);
        }
        Ok(merged)
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
