//! What the memory backend holds, behind its mutex.

use std::collections::BTreeMap;

use authstat_core::dims::MonthDims;
use authstat_core::store::{FlushBatch, KeyOwner, Lease, NodeState, StoreError};
use authstat_core::{Month, MonthStats, NodeId};

use super::{KIND, corrupt};
use crate::merge::Merger;
use crate::rollup::Rolled;

#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) nodes: BTreeMap<NodeId, NodeState>,
    /// Each node's own clients and realms, by month.
    pub(super) node_dims: BTreeMap<NodeId, BTreeMap<Month, MonthDims>>,
    /// When each node's last flush was applied.
    pub(super) updated_at_ms: BTreeMap<NodeId, i64>,
    pub(super) leases: BTreeMap<NodeId, Lease>,
    pub(super) claims: BTreeMap<String, KeyOwner>,
    /// The stored version of each foreign node's snapshot.
    pub(super) snapshot_versions: BTreeMap<NodeId, i64>,
    /// The cluster's month-to-date users by month and day.
    pub(super) daily_users: BTreeMap<(Month, u32), u64>,
    /// What a read of all nodes answers, by month (`rollup.rs`).
    pub(super) rollup: BTreeMap<Month, Rolled>,
    /// Every node's clients and realms merged, by month.
    pub(super) rollup_dims: BTreeMap<Month, MonthDims>,
    pub(super) version: u64,
}

/// A node's months of clients, realms and days, and the roll-up's of the same months.
type DimsAfter = (BTreeMap<Month, MonthDims>, BTreeMap<Month, MonthDims>);

impl Inner {
    /// A batch's clients, realms and days added to copies of its node's and the roll-up's
    /// (stored by the caller: all or nothing).
    pub(super) fn add_dims(&self, batch: &FlushBatch) -> Result<DimsAfter, StoreError> {
        let mut dims = self.node_dims.get(&batch.node).cloned().unwrap_or_default();
        let mut rolled: BTreeMap<Month, MonthDims> = BTreeMap::new();
        for flush in batch.months.iter().filter(|m| !m.dims.is_empty()) {
            let month = flush.month;
            let ours = dims.entry(month).or_insert_with(|| MonthDims::new(month));
            let all = rolled.entry(month).or_insert_with(|| {
                self.rollup_dims
                    .get(&month)
                    .cloned()
                    .unwrap_or_else(|| MonthDims::new(month))
            });
            for dim in &flush.dims {
                ours.add_flush(dim).map_err(|e| corrupt(&batch.node, e))?;
                all.add_flush(dim).map_err(|e| corrupt(&batch.node, e))?;
            }
        }
        Ok((dims, rolled))
    }

    /// `month` merged from every node's rows (what the roll-up holds, made anew).
    pub(super) fn merge_nodes(&self, month: Month) -> Result<Vec<MonthStats>, StoreError> {
        let mut merger = Merger::new(KIND);
        for (node, state) in &self.nodes {
            if let Some(stats) = state.months.iter().find(|m| m.month == month) {
                merger.add_stats(node.as_str(), stats)?;
            }
        }
        Ok(merger.finish())
    }
}
