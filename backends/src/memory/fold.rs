//! Folding silent nodes in memory: one critical section.

use std::collections::BTreeMap;

use authstat_core::dims::MonthDims;
use authstat_core::store::{FoldReport, FoldRequest, StoreError};
use authstat_core::{Month, MonthStats, NodeId};

use super::{MemoryStore, corrupt};

impl MemoryStore {
    /// The fold, in one critical section.
    pub(super) fn fold_now(&self, request: &FoldRequest) -> Result<FoldReport, StoreError> {
        let mut inner = self.lock();
        let folded = NodeId::folded();
        let silent: Vec<NodeId> = inner
            .nodes
            .iter()
            .filter(|(node, state)| {
                !node.is_reserved()
                    && !state.months.is_empty()
                    && inner.updated_at_ms.get(*node).copied().unwrap_or(0)
                        < request.silent_before_ms
                    && !inner
                        .leases
                        .get(*node)
                        .is_some_and(|l| l.is_live(request.now_ms))
            })
            .map(|(node, _)| node.clone())
            .collect();
        if silent.is_empty() {
            return Ok(FoldReport::default());
        }
        // Work on a copy of the folded node's months: a union that fails changes nothing.
        let mut into: BTreeMap<Month, MonthStats> = inner
            .nodes
            .get(&folded)
            .map(|s| s.months.iter().map(|m| (m.month, m.clone())).collect())
            .unwrap_or_default();
        let mut node_months = 0;
        for node in &silent {
            for stats in &inner.nodes[node].months {
                node_months += 1;
                match into.get_mut(&stats.month) {
                    None => {
                        into.insert(stats.month, stats.clone());
                    }
                    Some(acc) => acc.merge(stats).map_err(|e| corrupt(node, e))?,
                }
            }
        }
        let mut dims: BTreeMap<Month, MonthDims> =
            inner.node_dims.get(&folded).cloned().unwrap_or_default();
        for node in &silent {
            for month in inner
                .node_dims
                .get(node)
                .into_iter()
                .flat_map(|d| d.values())
            {
                let into = dims
                    .entry(month.month)
                    .or_insert_with(|| MonthDims::new(month.month));
                for (dim, stats) in &month.dims {
                    into.add(dim, stats).map_err(|e| corrupt(node, e))?;
                }
            }
        }
        for node in &silent {
            inner.nodes.get_mut(node).expect("listed").months.clear();
            inner.node_dims.remove(node);
        }
        inner.node_dims.insert(folded.clone(), dims);
        let state = inner.nodes.entry(folded.clone()).or_default();
        state.months = into.into_values().collect();
        state.seq += 1;
        inner.updated_at_ms.insert(folded, crate::sql_now_ms());
        inner.version += 1;
        Ok(FoldReport {
            nodes: silent,
            node_months,
        })
    }
}
