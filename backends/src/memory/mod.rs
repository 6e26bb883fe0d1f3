//! `type: memory`: everything in a map behind a mutex; lost at exit.
//!
//! It keeps the same per-node model and the same semantics as the durable backends (leases
//! and fencing, sequence guard, position replacement, all-or-nothing, claims), so tests
//! written against it hold for them too.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use authstat_core::dims::{DimKind, MonthDims};
use authstat_core::store::{
    ClaimRequest, FlushBatch, FlushOutcome, FoldReport, FoldRequest, KeyClaim, KeyOwner, Lease,
    NodeClaim, NodeState, NodeSummary, Snapshot, SnapshotOutcome, StatStore, StoreError,
};
use authstat_core::{Month, MonthStats, NodeId};

use crate::merge::distinct_months;
use crate::rollup::{Rolled, union_all};
use crate::rules::{check_day, check_snapshot, holder_text, may_claim};

const KIND: &str = "memory";

mod fold;
mod inner;

use inner::Inner;

/// The in-memory backend.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// A std mutex: every critical section is short and CPU-only, never held across `.await`.
    inner: Mutex<Inner>,
    /// Test hook: where the next flush fails.
    fail_next_flush: Mutex<Option<FailAt>>,
    /// Test hook: where the next fold fails (a fold is one critical section: before it, any
    /// `AfterMonths`, changing nothing; or after it, the answer lost).
    fail_next_fold: Mutex<Option<FailAt>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Test hook: the next flush fails at `at`.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn inject_flush_failure(&self, at: FailAt) {
        *self.fail_next_flush.lock().expect("lock") = Some(at);
    }

    /// Test hook: the next fold fails at `at` (`AfterMonths(_)`: before it changes anything).
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn inject_fold_failure(&self, at: FailAt) {
        *self.fail_next_fold.lock().expect("lock") = Some(at);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("lock")
    }
}

fn corrupt(node: &NodeId, e: authstat_core::Error) -> StoreError {
    StoreError::Corrupt {
        backend: KIND,
        message: format!("node {node}: {e}"),
        cause: Default::default(),
    }
}

/// Where a test makes the next flush fail.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailAt {
    /// After this many months were applied (to a working copy, so nothing of it is kept).
    AfterMonths(usize),
    /// After the flush was applied: the caller hears of an error (the answer was lost).
    AfterCommit,
}

#[async_trait]
impl StatStore for MemoryStore {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn claim_node(&self, request: &ClaimRequest) -> Result<NodeClaim, StoreError> {
        let mut inner = self.lock();
        let previous = inner.leases.get(&request.node).cloned();
        if !may_claim(previous.as_ref(), request) {
            return Ok(NodeClaim::Refused {
                holder: previous.expect("a refusal has a holder"),
            });
        }
        let epoch = previous.as_ref().map_or(0, |l| l.epoch) + 1;
        inner.leases.insert(
            request.node.clone(),
            Lease {
                node: request.node.clone(),
                epoch,
                holder: Some(request.instance.clone()),
                until_ms: request.until_ms,
                released: false,
            },
        );
        Ok(NodeClaim::Granted { epoch, previous })
    }

    async fn release_node(&self, node: &NodeId, epoch: u64) -> Result<(), StoreError> {
        if let Some(lease) = self.lock().leases.get_mut(node)
            && lease.epoch == epoch
        {
            lease.released = true;
        }
        Ok(())
    }

    async fn lease(&self, node: &NodeId) -> Result<Option<Lease>, StoreError> {
        Ok(self.lock().leases.get(node).cloned())
    }

    async fn flush(&self, batch: &FlushBatch) -> Result<FlushOutcome, StoreError> {
        let fail = self.fail_next_flush.lock().expect("lock").take();
        let fail_after = match fail {
            Some(FailAt::AfterMonths(n)) => Some(n),
            _ => None,
        };
        let mut inner = self.lock();
        let lease = inner.leases.get(&batch.node);
        if lease.is_none_or(|l| l.epoch != batch.epoch) {
            return Err(StoreError::Fenced {
                backend: KIND,
                node: batch.node.clone(),
                holder: holder_text(lease),
            });
        }
        let current = inner.nodes.get(&batch.node).cloned().unwrap_or_default();
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
                    backend: KIND,
                    message: "injected failure".into(),
                    cause: Default::default(),
                });
            }
            let stats = months
                .entry(flush.month)
                .or_insert_with(|| MonthStats::new(flush.month, *flush.users.params()));
            stats.users = flush.users.clone();
            if let Some(clients) = &flush.clients {
                stats.clients = Some(clients.clone());
            }
            stats.counters.merge(&flush.counter_deltas);
        }
        next.months = months.into_values().collect();
        let (dims, rolled_dims) = inner.add_dims(batch)?;
        inner.node_dims.insert(batch.node.clone(), dims);
        inner.rollup_dims.extend(rolled_dims);
        let mut rolled: BTreeMap<Month, Rolled> = BTreeMap::new();
        for flush in &batch.months {
            let r = rolled
                .entry(flush.month)
                .or_insert_with(|| inner.rollup.get(&flush.month).cloned().unwrap_or_default());
            r.add_flush(&flush.users, flush.clients.as_ref(), &flush.counter_deltas);
        }
        inner.rollup.extend(rolled);
        if let Some(positions) = &batch.positions {
            let mut positions = positions.clone();
            positions.sort();
            next.positions = positions;
        }
        next.seq = batch.seq;
        inner.nodes.insert(batch.node.clone(), next);
        inner
            .updated_at_ms
            .insert(batch.node.clone(), crate::sql_now_ms());
        if let Some(lease) = inner.leases.get_mut(&batch.node) {
            lease.until_ms = batch.lease_until_ms;
        }
        inner.version += 1;
        if fail == Some(FailAt::AfterCommit) {
            return Err(StoreError::Unavailable {
                backend: KIND,
                message: "injected failure after the commit".into(),
                cause: Default::default(),
            });
        }
        Ok(FlushOutcome::Applied)
    }

    async fn load_node(&self, node: &NodeId) -> Result<NodeState, StoreError> {
        Ok(self.lock().nodes.get(node).cloned().unwrap_or_default())
    }

    async fn node_dims(
        &self,
        node: &NodeId,
        months: &[Month],
    ) -> Result<Vec<MonthDims>, StoreError> {
        let inner = self.lock();
        Ok(distinct_months(months)
            .into_iter()
            .filter_map(|m| inner.node_dims.get(node)?.get(&m).cloned())
            .collect())
    }

    async fn nodes(&self) -> Result<Vec<NodeSummary>, StoreError> {
        let inner = self.lock();
        let ids: std::collections::BTreeSet<&NodeId> =
            inner.nodes.keys().chain(inner.leases.keys()).collect();
        Ok(ids
            .into_iter()
            .map(|node| NodeSummary {
                node: node.clone(),
                seq: inner.nodes.get(node).map_or(0, |s| s.seq),
                updated_at_ms: inner.updated_at_ms.get(node).copied().unwrap_or(0),
                lease: inner.leases.get(node).cloned(),
            })
            .collect())
    }

    async fn read_months(&self, months: &[Month]) -> Result<Vec<MonthStats>, StoreError> {
        let inner = self.lock();
        let mut out = Vec::new();
        for month in distinct_months(months) {
            match inner.rollup.get(&month) {
                None => {}
                Some(r) if !r.mixed => out.push(r.stats(month)),
                Some(_) => out.extend(inner.merge_nodes(month)?),
            }
        }
        Ok(out)
    }

    async fn read_dims(
        &self,
        months: &[Month],
        kind: DimKind,
    ) -> Result<Vec<MonthDims>, StoreError> {
        let inner = self.lock();
        Ok(distinct_months(months)
            .into_iter()
            .filter_map(|m| inner.rollup_dims.get(&m))
            .map(|m| m.clone().of_kind(kind))
            .filter(|m| !m.dims.is_empty())
            .collect())
    }

    async fn drop_days_before(&self, month: Month) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let mut dropped = 0;
        let mut drop_in = |m: &mut MonthDims| {
            if m.month < month {
                let before = m.dims.len();
                m.dims
                    .retain(|d, _| !matches!(d.kind(), DimKind::Day | DimKind::ClientDay));
                dropped += (before - m.dims.len()) as u64;
            }
        };
        for months in inner.node_dims.values_mut() {
            months.values_mut().for_each(&mut drop_in);
        }
        inner.rollup_dims.values_mut().for_each(&mut drop_in);
        Ok(dropped)
    }

    async fn month_versions(&self) -> Result<BTreeMap<Month, u64>, StoreError> {
        Ok(self
            .lock()
            .rollup
            .iter()
            .map(|(m, r)| (*m, r.version))
            .collect())
    }

    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotOutcome, StoreError> {
        check_snapshot(KIND, snapshot)?;
        let mut inner = self.lock();
        let stored = inner.snapshot_versions.get(&snapshot.node).copied();
        if stored.is_some_and(|v| snapshot.version < v) {
            return Ok(SnapshotOutcome::Stale);
        }
        let state = inner.nodes.entry(snapshot.node.clone()).or_default();
        let mut replaced = Vec::with_capacity(snapshot.months.len());
        for month in &snapshot.months {
            let old = state
                .months
                .iter()
                .find(|m| m.month == month.month)
                .map(|m| m.counters.clone());
            replaced.push((month.month, old, month.counters.clone()));
            state.months.retain(|m| m.month != month.month);
            state.months.push(month.clone());
        }
        state.months.sort_by_key(|m| m.month);
        state.seq += 1;
        for (month, old, new) in replaced {
            let mut mixed = false;
            let foreign = union_all(
                inner
                    .nodes
                    .iter()
                    .filter(|(node, _)| node.is_foreign())
                    .filter_map(|(_, s)| s.months.iter().find(|m| m.month == month))
                    .map(|m| &m.users),
                &mut mixed,
            );
            let r = inner.rollup.entry(month).or_default();
            r.replace_snapshot(old.as_ref(), &new, foreign);
            r.mixed |= mixed;
        }
        inner
            .snapshot_versions
            .insert(snapshot.node.clone(), snapshot.version);
        inner
            .updated_at_ms
            .insert(snapshot.node.clone(), crate::sql_now_ms());
        inner.version += 1;
        Ok(SnapshotOutcome::Applied)
    }

    async fn data_version(&self) -> Result<u64, StoreError> {
        Ok(self.lock().version)
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn record_daily_users(
        &self,
        month: Month,
        day: u32,
        users: u64,
    ) -> Result<(), StoreError> {
        check_day(KIND, day)?;
        let mut inner = self.lock();
        let stored = inner.daily_users.entry((month, day)).or_default();
        *stored = (*stored).max(users);
        Ok(())
    }

    async fn daily_users(&self, month: Month) -> Result<BTreeMap<u32, u64>, StoreError> {
        Ok(self
            .lock()
            .daily_users
            .range((month, 0)..=(month, 31))
            .map(|(&(_, day), &users)| (day, users))
            .collect())
    }

    async fn fold_silent(&self, request: &FoldRequest) -> Result<FoldReport, StoreError> {
        let fail = self.fail_next_fold.lock().expect("lock").take();
        if matches!(fail, Some(FailAt::AfterMonths(_))) {
            return Err(StoreError::Unavailable {
                backend: KIND,
                message: "injected failure before the fold".into(),
                cause: Default::default(),
            });
        }
        let report = self.fold_now(request)?;
        if fail == Some(FailAt::AfterCommit) {
            return Err(StoreError::Unavailable {
                backend: KIND,
                message: "injected failure after the commit".into(),
                cause: Default::default(),
            });
        }
        Ok(report)
    }

    async fn claim_keys(
        &self,
        owner: &KeyOwner,
        keys: &[String],
    ) -> Result<Vec<KeyClaim>, StoreError> {
        let mut inner = self.lock();
        Ok(keys
            .iter()
            .map(|key| match inner.claims.get_mut(key) {
                None => {
                    inner.claims.insert(key.clone(), owner.clone());
                    KeyClaim::Ours
                }
                Some(held) if held.node == owner.node && held.source == owner.source => {
                    held.epoch = owner.epoch;
                    KeyClaim::Ours
                }
                Some(held) => KeyClaim::Theirs(held.clone()),
            })
            .collect())
    }

    async fn take_over_key(
        &self,
        key: &str,
        from: &KeyOwner,
        to: &KeyOwner,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.claims.get_mut(key) {
            Some(held) if held == from => {
                *held = to.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
