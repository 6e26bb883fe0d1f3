//! [`Settled`]: a store whose reads answer for authstat's users and foreign ones together.
//!
//! Backends keep the users of foreign nodes (Janssen's own statistics rows, hashed by Janssen)
//! apart in [`MonthStats::foreign_users`]; how they combine with authstat's own depends on the
//! agent's hash setting, which the backend does not know. This wrapper settles every read as
//! the agent's configuration says ([`ForeignUsers`]) and passes everything else through.
//!
//! It also bounds every call the agent makes ([`Settled::bounded`]): whatever the backend's
//! own timeouts do, no call waits longer than that bound (it fails as unavailable, and the
//! caller retries as for any outage).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use authstat_core::store::{
    ClaimRequest, FlushBatch, FlushOutcome, FoldReport, FoldRequest, KeyClaim, KeyOwner, Lease,
    NodeClaim, NodeState, NodeSummary, Snapshot, SnapshotOutcome, StatStore, StoreError,
};
use authstat_core::{ForeignUsers, Month, MonthStats, NodeId};

/// A store whose reads settle foreign users ([`MonthStats::settle_foreign`]).
#[derive(Debug)]
pub struct Settled {
    inner: Arc<dyn StatStore>,
    how: ForeignUsers,
    bound: Option<Duration>,
}

impl Settled {
    /// Wraps `inner`; reads combine foreign users with authstat's as `how` says.
    pub fn new(inner: Arc<dyn StatStore>, how: ForeignUsers) -> Self {
        Self {
            inner,
            how,
            bound: None,
        }
    }

    /// No call waits longer than `bound` ([`SessionLimits::call`](crate::SessionLimits::call)).
    pub fn bounded(mut self, bound: Duration) -> Self {
        self.bound = Some(bound);
        self
    }

    async fn bound<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let Some(bound) = self.bound else {
            return call.await;
        };
        match tokio::time::timeout(bound, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable {
                backend: self.inner.kind(),
                message: format!(
                    "no answer within {} s (the backend is slow, or a lock is held)",
                    bound.as_secs_f64()
                ),
                cause: Default::default(),
            }),
        }
    }

    fn settle(&self, mut months: Vec<MonthStats>) -> Vec<MonthStats> {
        for month in &mut months {
            month.settle_foreign(self.how);
        }
        months
    }
}

#[async_trait]
impl StatStore for Settled {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn claim_node(&self, request: &ClaimRequest) -> Result<NodeClaim, StoreError> {
        self.bound(self.inner.claim_node(request)).await
    }

    async fn release_node(&self, node: &NodeId, epoch: u64) -> Result<(), StoreError> {
        self.bound(self.inner.release_node(node, epoch)).await
    }

    async fn lease(&self, node: &NodeId) -> Result<Option<Lease>, StoreError> {
        self.bound(self.inner.lease(node)).await
    }

    async fn flush(&self, batch: &FlushBatch) -> Result<FlushOutcome, StoreError> {
        self.bound(self.inner.flush(batch)).await
    }

    async fn load_node(&self, node: &NodeId) -> Result<NodeState, StoreError> {
        let mut state = self.bound(self.inner.load_node(node)).await?;
        state.months = self.settle(state.months);
        Ok(state)
    }

    async fn nodes(&self) -> Result<Vec<NodeSummary>, StoreError> {
        self.bound(self.inner.nodes()).await
    }

    async fn read_months(&self, months: &[Month]) -> Result<Vec<MonthStats>, StoreError> {
        Ok(self.settle(self.bound(self.inner.read_months(months)).await?))
    }

    async fn drop_days_before(&self, month: authstat_core::Month) -> Result<u64, StoreError> {
        self.bound(self.inner.drop_days_before(month)).await
    }

    async fn node_dims(
        &self,
        node: &authstat_core::NodeId,
        months: &[authstat_core::Month],
    ) -> Result<Vec<authstat_core::dims::MonthDims>, StoreError> {
        self.bound(self.inner.node_dims(node, months)).await
    }
    async fn read_dims(
        &self,
        months: &[Month],
        kind: authstat_core::dims::DimKind,
    ) -> Result<Vec<authstat_core::dims::MonthDims>, StoreError> {
        self.bound(self.inner.read_dims(months, kind)).await
    }

    async fn data_version(&self) -> Result<u64, StoreError> {
        self.bound(self.inner.data_version()).await
    }

    async fn month_versions(
        &self,
    ) -> Result<std::collections::BTreeMap<authstat_core::Month, u64>, StoreError> {
        self.bound(self.inner.month_versions()).await
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.bound(self.inner.health()).await
    }

    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotOutcome, StoreError> {
        self.bound(self.inner.put_snapshot(snapshot)).await
    }

    async fn record_daily_users(
        &self,
        month: Month,
        day: u32,
        users: u64,
    ) -> Result<(), StoreError> {
        self.bound(self.inner.record_daily_users(month, day, users))
            .await
    }

    async fn daily_users(
        &self,
        month: Month,
    ) -> Result<std::collections::BTreeMap<u32, u64>, StoreError> {
        self.bound(self.inner.daily_users(month)).await
    }

    async fn fold_silent(&self, request: &FoldRequest) -> Result<FoldReport, StoreError> {
        self.bound(self.inner.fold_silent(request)).await
    }

    async fn claim_keys(
        &self,
        owner: &KeyOwner,
        keys: &[String],
    ) -> Result<Vec<KeyClaim>, StoreError> {
        self.bound(self.inner.claim_keys(owner, keys)).await
    }

    async fn take_over_key(
        &self,
        key: &str,
        from: &KeyOwner,
        to: &KeyOwner,
    ) -> Result<bool, StoreError> {
        self.bound(self.inner.take_over_key(key, from, to)).await
    }
}

#[cfg(test)]
mod tests;
