//! The read path shared by the backends: stored rows of many nodes → merged [`MonthStats`].

use std::collections::BTreeMap;

use authstat_core::counters::{CounterKey, Counters};
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::StoreError;
use authstat_core::{Month, MonthStats};

/// Accumulates rows (in any order) and yields merged months in ascending order.
#[derive(Debug)]
pub(crate) struct Merger {
    backend: &'static str,
    months: BTreeMap<Month, Merged>,
    /// HLLs of other parameters mark their month mixed instead of failing (a roll-up rebuild).
    lenient: bool,
}

/// Which HLL of a month a node's HLL goes into.
#[derive(Clone, Copy)]
enum Slot {
    Users,
    Foreign,
    Clients,
}

/// One month so far: the union of authstat's own HLLs, the union of foreign nodes' HLLs
/// (hashed by their upstream: never unioned with authstat's here), the counter sums.
#[derive(Debug, Default)]
struct Merged {
    users: Option<Hll>,
    foreign: Option<Hll>,
    counters: Counters,
    clients: Option<Hll>,
    mixed: bool,
}

impl Merger {
    pub(crate) fn new(backend: &'static str) -> Self {
        Self {
            backend,
            months: BTreeMap::new(),
            lenient: false,
        }
    }

    /// A merger whose months with HLLs of other parameters are marked mixed, not refused.
    pub(crate) fn lenient(backend: &'static str) -> Self {
        Self {
            lenient: true,
            ..Self::new(backend)
        }
    }

    fn corrupt(&self, message: String) -> StoreError {
        StoreError::Corrupt {
            backend: self.backend,
            message,
            cause: Default::default(),
        }
    }

    /// A stored month number (`yyyyMM`).
    pub(crate) fn month(&self, yyyymm: i64) -> Result<Month, StoreError> {
        u32::try_from(yyyymm)
            .ok()
            .and_then(|m| Month::from_yyyymm(m).ok())
            .ok_or_else(|| self.corrupt(format!("stored month {yyyymm} is not a valid yyyyMM")))
    }

    /// Stored HLL bytes, or why they are not an HLL (`what`: which HLL of the month).
    fn decode(
        &self,
        bytes: &[u8],
        month: Month,
        node: &str,
        what: &str,
    ) -> Result<Hll, StoreError> {
        Hll::from_bytes(bytes)
            .map_err(|e| self.corrupt(format!("node {node} month {month}{what}: {e}")))
    }

    /// One node's stored HLL bytes for `month`, unioned in.
    pub(crate) fn add_hll(
        &mut self,
        month: Month,
        node: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let hll = self.decode(bytes, month, node, "")?;
        self.add_users(month, node, hll)
    }

    /// One node's HLL for `month`, unioned in (apart when the node is foreign).
    pub(crate) fn add_users(
        &mut self,
        month: Month,
        node: &str,
        hll: Hll,
    ) -> Result<(), StoreError> {
        let slot = if authstat_core::NodeId::is_foreign_id(node) {
            Slot::Foreign
        } else {
            Slot::Users
        };
        self.union_in(month, node, slot, hll)
    }

    /// One node's stored bytes of its active clients of `month`, unioned in.
    pub(crate) fn add_clients_bytes(
        &mut self,
        month: Month,
        node: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let hll = self.decode(bytes, month, node, " clients")?;
        self.union_in(month, node, Slot::Clients, hll)
    }

    /// One node's active clients of `month`, unioned in.
    pub(crate) fn add_clients(
        &mut self,
        month: Month,
        node: &str,
        hll: &Hll,
    ) -> Result<(), StoreError> {
        self.union_in(month, node, Slot::Clients, hll.clone())
    }

    /// Unions `hll` into `month`'s `slot`: HLLs of other parameters are refused (or, lenient,
    /// mark the month mixed).
    fn union_in(
        &mut self,
        month: Month,
        node: &str,
        slot: Slot,
        hll: Hll,
    ) -> Result<(), StoreError> {
        let (backend, lenient) = (self.backend, self.lenient);
        let merged = self.months.entry(month).or_default();
        let (into, what) = match slot {
            Slot::Users => (&mut merged.users, ""),
            Slot::Foreign => (&mut merged.foreign, ""),
            Slot::Clients => (&mut merged.clients, " clients"),
        };
        match into {
            None => *into = Some(hll),
            Some(acc) => match acc.union(&hll) {
                Ok(()) => {}
                Err(_) if lenient => merged.mixed = true,
                Err(e) => {
                    return Err(StoreError::Corrupt {
                        backend,
                        message: format!("node {node} month {month}{what}: {e}"),
                        cause: Default::default(),
                    });
                }
            },
        }
        Ok(())
    }

    /// A stored counter row (a sum over nodes, or one node's value).
    pub(crate) fn add_counter(
        &mut self,
        month: Month,
        kind: &str,
        first: &str,
        second: &str,
        value: i64,
    ) -> Result<(), StoreError> {
        let key = CounterKey::from_parts(kind, first, second)
            .map_err(|e| self.corrupt(format!("month {month}: {e}")))?;
        let value = u64::try_from(value)
            .map_err(|_| self.corrupt(format!("month {month}: negative counter {value}")))?;
        self.months
            .entry(month)
            .or_default()
            .counters
            .add(&key, value);
        Ok(())
    }

    /// One node's stored month (the memory backend's rows).
    pub(crate) fn add_stats(&mut self, node: &str, stats: &MonthStats) -> Result<(), StoreError> {
        self.add_users(stats.month, node, stats.users.clone())?;
        if let Some(clients) = &stats.clients {
            self.add_clients(stats.month, node, clients)?;
        }
        self.months
            .entry(stats.month)
            .or_default()
            .counters
            .merge(&stats.counters);
        Ok(())
    }

    /// The merged months, ascending. A month with counters but no HLL (not written by authstat,
    /// which always flushes both) gets an EMPTY HLL with Janssen's parameters.
    pub(crate) fn finish(self) -> Vec<MonthStats> {
        self.months
            .into_iter()
            .map(|(month, merged)| MonthStats {
                month,
                users: merged
                    .users
                    .unwrap_or_else(|| Hll::new(HllParams::janssen())),
                counters: merged.counters,
                foreign_users: merged.foreign,
                clients: merged.clients,
            })
            .collect()
    }
}

impl Merger {
    /// The merged months as roll-up months (version 0), ascending.
    pub(crate) fn finish_rolled(self) -> Vec<(Month, crate::rollup::Rolled)> {
        self.months
            .into_iter()
            .map(|(month, m)| {
                (
                    month,
                    crate::rollup::Rolled {
                        users: m.users,
                        foreign: m.foreign,
                        counters: m.counters,
                        clients: m.clients,
                        mixed: m.mixed,
                        version: 0,
                    },
                )
            })
            .collect()
    }
}

/// Sorted, deduplicated months of a request.
pub(crate) fn distinct_months(months: &[Month]) -> Vec<Month> {
    let mut months = months.to_vec();
    months.sort_unstable();
    months.dedup();
    months
}
