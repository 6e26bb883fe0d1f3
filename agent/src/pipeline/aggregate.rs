//! The in-memory aggregate between two flushes, and the bounded log of bad input.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use authstat_core::counters::{CounterKey, Counters};
use authstat_core::hll::{Hll, HllParams};
use authstat_core::ingest::ParseErrorKind;
use authstat_core::source::Origin;
use authstat_core::stats::{DimFigures, UpdateSink};
use authstat_core::store::Snapshot;
use authstat_core::{Month, NodeId};
use tracing::{debug, warn};

use super::dims::DimTable;
use super::stats::PipelineStats;
use authstat_core::dims::DimKind;
use authstat_runtime::RateLimited;

/// Per month: the node's whole HLL, and the counters since the last flush.
pub(super) struct Aggregate {
    pub params: HllParams,
    pub hlls: BTreeMap<Month, Hll>,
    /// Per month: the node's whole HLL of active clients.
    pub clients: BTreeMap<Month, Hll>,
    pub deltas: BTreeMap<Month, Counters>,
    pub touched: BTreeSet<Month>,
    /// The month last put in `touched` (most events of a read are of one month: one comparison
    /// instead of a set insertion per figure). Cleared with `touched`.
    pub last_touched: Option<Month>,
    pub records: u64,
    /// Snapshots of foreign nodes read since the last flush, the newest per node.
    pub snapshots: BTreeMap<NodeId, Snapshot>,
    /// Per client and realm.
    pub dims: DimTable,
}

impl Aggregate {
    /// An empty aggregate with the same HLL parameters (a reading thread's part).
    pub(crate) fn empty_like(&self) -> Self {
        Self {
            params: self.params,
            hlls: BTreeMap::new(),
            clients: BTreeMap::new(),
            deltas: BTreeMap::new(),
            touched: BTreeSet::new(),
            last_touched: None,
            records: 0,
            snapshots: BTreeMap::new(),
            dims: self.dims.empty_like(),
        }
    }

    /// Keeps `snapshot` unless a newer one of its node is waiting already.
    pub(crate) fn add_snapshot(&mut self, snapshot: Snapshot) {
        match self.snapshots.get(&snapshot.node) {
            Some(waiting) if waiting.version > snapshot.version => {}
            _ => {
                self.snapshots.insert(snapshot.node.clone(), snapshot);
            }
        }
    }

    /// Adds what `part` counted: HLLs unioned, counters summed.
    pub(crate) fn absorb(&mut self, part: Aggregate) {
        union_all(&mut self.hlls, part.hlls);
        union_all(&mut self.clients, part.clients);
        for (month, counters) in part.deltas {
            self.deltas.entry(month).or_default().merge(&counters);
        }
        self.touched.extend(part.touched);
        self.records += part.records;
        self.dims.absorb(part.dims);
        for (_, snapshot) in part.snapshots {
            self.add_snapshot(snapshot);
        }
    }
}

/// Unions every HLL of `from` into `into`'s of the same month.
fn union_all(into: &mut BTreeMap<Month, Hll>, from: BTreeMap<Month, Hll>) {
    for (month, hll) in from {
        match into.entry(month) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(hll);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => o
                .get_mut()
                .union(&hll)
                .expect("the parts share the HLL parameters"),
        }
    }
}

impl Aggregate {
    /// Marks `month` as touched since the last flush.
    #[inline]
    fn touch(&mut self, month: Month) {
        if self.last_touched != Some(month) {
            self.touched.insert(month);
            self.last_touched = Some(month);
        }
    }

    /// Takes the months touched since the last flush.
    pub(super) fn take_touched(&mut self) -> BTreeSet<Month> {
        self.last_touched = None;
        std::mem::take(&mut self.touched)
    }
}

impl UpdateSink for Aggregate {
    fn add_user(&mut self, month: Month, raw_hash: i64) {
        let params = self.params;
        self.hlls
            .entry(month)
            .or_insert_with(|| Hll::new(params))
            .add_raw(raw_hash);
        self.touch(month);
    }

    fn add_count(&mut self, month: Month, key: &CounterKey, n: u64) {
        self.deltas.entry(month).or_default().add(key, n);
        self.touch(month);
    }

    fn add_client(&mut self, month: Month, raw_hash: i64) {
        let params = self.params;
        self.clients
            .entry(month)
            .or_insert_with(|| Hll::new(params))
            .add_raw(raw_hash);
        self.touch(month);
    }

    fn add_dim(&mut self, month: Month, kind: DimKind, id: &str, figures: &DimFigures<'_>) {
        self.dims.add(month, kind, id, figures);
        self.touch(month);
    }

    fn add_day_user(&mut self, month: Month, day: i64, raw_hash: i64) {
        self.dims.add_day_user(month, day, raw_hash);
        self.touch(month);
    }
}

/// Warnings about bad input are bounded: at most one per [`WARN_EVERY`], which says how many
/// more were skipped since the last one (each is also logged at debug level and counted).
const WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct SkipLog(RateLimited);

impl Default for SkipLog {
    fn default() -> Self {
        Self(RateLimited::new(WARN_EVERY))
    }
}

impl SkipLog {
    pub fn record(&mut self, source: &str, kind: ParseErrorKind, origin: Origin<'_>) {
        debug!(source, place = %origin.place, offset = origin.offset, %kind, "skipped");
        if let Some(held_back) = self.0.admit() {
            warn!(
                source,
                place = %origin.place,
                offset = origin.offset,
                %kind,
                more_since_last_warning = held_back,
                "bad input skipped"
            );
        }
    }
}

pub(super) fn skipped(
    stats: &PipelineStats,
    log: &mut SkipLog,
    source: &str,
    kind: ParseErrorKind,
    origin: Origin<'_>,
) {
    stats.reading.skipped.fetch_add(1, Ordering::Relaxed);
    stats.reading.skipped_by_kind[kind.index()].fetch_add(1, Ordering::Relaxed);
    log.record(source, kind, origin);
}
