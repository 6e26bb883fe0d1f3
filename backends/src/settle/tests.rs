//! Every call through [`Settled::bounded`] ends within the bound, on a backend that never
//! answers (the per-day and per-client calls added later included).

use std::collections::BTreeMap;
use std::future::pending;

use authstat_core::dims::{DimKind, MonthDims};

use super::*;

/// A backend that takes every call and never answers.
#[derive(Debug)]
struct Silent;

#[async_trait]
impl StatStore for Silent {
    fn kind(&self) -> &'static str {
        "silent"
    }
    async fn claim_node(&self, _: &ClaimRequest) -> Result<NodeClaim, StoreError> {
        pending().await
    }
    async fn release_node(&self, _: &NodeId, _: u64) -> Result<(), StoreError> {
        pending().await
    }
    async fn lease(&self, _: &NodeId) -> Result<Option<Lease>, StoreError> {
        pending().await
    }
    async fn flush(&self, _: &FlushBatch) -> Result<FlushOutcome, StoreError> {
        pending().await
    }
    async fn load_node(&self, _: &NodeId) -> Result<NodeState, StoreError> {
        pending().await
    }
    async fn node_dims(&self, _: &NodeId, _: &[Month]) -> Result<Vec<MonthDims>, StoreError> {
        pending().await
    }
    async fn nodes(&self) -> Result<Vec<NodeSummary>, StoreError> {
        pending().await
    }
    async fn read_months(&self, _: &[Month]) -> Result<Vec<MonthStats>, StoreError> {
        pending().await
    }
    async fn read_dims(&self, _: &[Month], _: DimKind) -> Result<Vec<MonthDims>, StoreError> {
        pending().await
    }
    async fn drop_days_before(&self, _: Month) -> Result<u64, StoreError> {
        pending().await
    }
    async fn data_version(&self) -> Result<u64, StoreError> {
        pending().await
    }
    async fn month_versions(&self) -> Result<BTreeMap<Month, u64>, StoreError> {
        pending().await
    }
    async fn health(&self) -> Result<(), StoreError> {
        pending().await
    }
    async fn put_snapshot(&self, _: &Snapshot) -> Result<SnapshotOutcome, StoreError> {
        pending().await
    }
    async fn record_daily_users(&self, _: Month, _: u32, _: u64) -> Result<(), StoreError> {
        pending().await
    }
    async fn daily_users(&self, _: Month) -> Result<BTreeMap<u32, u64>, StoreError> {
        pending().await
    }
    async fn fold_silent(&self, _: &FoldRequest) -> Result<FoldReport, StoreError> {
        pending().await
    }
    async fn claim_keys(&self, _: &KeyOwner, _: &[String]) -> Result<Vec<KeyClaim>, StoreError> {
        pending().await
    }
    async fn take_over_key(&self, _: &str, _: &KeyOwner, _: &KeyOwner) -> Result<bool, StoreError> {
        pending().await
    }
}

/// The call's outcome: unavailable within the bound (not still waiting 10 s later).
async fn unavailable<T: std::fmt::Debug>(
    call: &str,
    future: impl Future<Output = Result<T, StoreError>>,
) {
    let Ok(result) = tokio::time::timeout(Duration::from_secs(10), future).await else {
        panic!("{call}: not bounded, still waiting after 10 s");
    };
    match result {
        Err(StoreError::Unavailable { message, .. }) => {
            assert!(
                message.contains("no answer within 2 s"),
                "{call}: {message}"
            )
        }
        other => panic!("{call}: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn reads_of_days_and_clients_and_day_retention_are_bounded_too() {
    let store = Settled::new(Arc::new(Silent), ForeignUsers::Union).bounded(Duration::from_secs(2));
    let (node, month): (NodeId, Month) = (NodeId::new("n").unwrap(), "202402".parse().unwrap());
    unavailable("node_dims", store.node_dims(&node, &[month])).await;
    unavailable("read_dims", store.read_dims(&[month], DimKind::Day)).await;
    unavailable("drop_days_before", store.drop_days_before(month)).await;
    unavailable("read_months", store.read_months(&[month])).await;
    unavailable("health", store.health()).await;
}
