//! What the pipeline reports: counters and gauges read by the API, `/metrics` and OTLP.

use std::collections::BTreeMap;

use authstat_core::dims::DimKind;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use authstat_core::counters::Counters;
use authstat_core::ingest::ParseErrorKind;
use authstat_core::source::SourceProblem;
use authstat_core::store::Snapshot;
use authstat_core::{Month, MonthStats, NodeId};

/// What the pipeline reports, by concern: its reading, its flushing, its health (read by
/// `/readyz` and the health check), and the node's stored totals (read by `/metrics` and OTLP).
/// The pipeline writes; everyone else only reads.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Records, bytes and files.
    pub reading: Reading,
    /// Flushes to the backend.
    pub flushing: Flushing,
    /// Whether the pipeline runs, and what is wrong with it.
    pub health: Health,
    /// What this node has stored: every counter over all months, and the current month's
    /// distinct users (updated after each flush).
    pub node_totals: Mutex<NodeTotals>,
    /// Folds of silent nodes this agent ran.
    pub folding: Folding,
    /// Snapshots of foreign nodes (Janssen's statistics rows) this agent stored.
    pub snapshots: Snapshots,
}

/// Snapshots of foreign nodes stored by this agent (`janssen_stat_entries` sources).
#[derive(Debug, Default)]
pub struct Snapshots {
    /// Stored (the backend now holds exactly their values).
    pub applied: AtomicU64,
    /// Older than what the backend holds (another agent stored a later read): nothing changed.
    pub stale: AtomicU64,
    /// Attempts that failed (kept and tried again at the next flush).
    pub failed: AtomicU64,
    /// Refused by the backend (not retried; logged).
    pub rejected: AtomicU64,
    /// The current month's Janssen rows this agent stored, for `/metrics` and OTLP.
    pub current_month: Mutex<ForeignMonth>,
}

/// The rows of foreign nodes for one month (the current one), as this agent last stored them.
#[derive(Debug, Default)]
pub struct ForeignMonth {
    month: Option<Month>,
    rows: BTreeMap<NodeId, MonthStats>,
}

impl ForeignMonth {
    /// Keeps `snapshot`'s row of `current` (a new month starts empty).
    pub fn record(&mut self, snapshot: &Snapshot, current: Month) {
        if self.month != Some(current) {
            self.rows.clear();
            self.month = Some(current);
        }
        if let Some(stats) = snapshot.months.iter().find(|m| m.month == current) {
            self.rows.insert(snapshot.node.clone(), stats.clone());
        }
    }

    /// The month, its distinct users (the union of the rows' HLLs) and the rows' counters
    /// summed; `None` before any row of it was stored.
    pub fn totals(&self) -> Option<(Month, u64, Counters)> {
        let month = self.month?;
        let mut rows = self.rows.values();
        let mut merged = rows.next()?.clone();
        for row in rows {
            // Rows with other HLL parameters were refused when read.
            let _ = merged.merge(row);
        }
        Some((month, merged.monthly_active_users(), merged.counters))
    }
}

/// Folds of silent nodes (`fold_silent_nodes_after_secs`) this agent ran.
#[derive(Debug, Default)]
pub struct Folding {
    /// Folds that folded at least one node.
    pub folded: AtomicU64,
    /// Folds that found nothing to fold (or another agent folded first).
    pub nothing: AtomicU64,
    /// Folds that failed (tried again at the next interval).
    pub failed: AtomicU64,
    /// Nodes folded by this agent.
    pub nodes: AtomicU64,
}

/// The reading side: what the sources gave.
#[derive(Debug, Default)]
pub struct Reading {
    /// Records turned into events.
    pub records: AtomicU64,
    /// Records or bytes skipped, all kinds together.
    pub skipped: AtomicU64,
    /// Skipped, per kind (indexed by `ParseErrorKind::index`).
    pub skipped_by_kind: [AtomicU64; ParseErrorKind::ALL.len()],
    /// Bytes read.
    pub bytes: AtomicU64,
    /// Turns of the pipeline's loop (each waits for a file event, a timer or a command).
    pub loops: AtomicU64,
    /// Scans of the sources' paths on the timer (not those a file event asked for).
    pub scans: AtomicU64,
    /// Files followed now (updated on every timer scan).
    pub files: AtomicU64,
    /// Inputs open now, per source: files followed, or 1 while a queue source is connected
    /// (updated on every scan).
    pub open_by_source: Mutex<BTreeMap<String, u64>>,
    /// Bytes written to the followed files but not consumed yet (updated on every timer scan).
    pub lag_bytes: AtomicU64,
    /// Files whose claim waits for another reader (`authstat backfill`) to finish.
    pub claims_waiting: AtomicU64,
    /// Events naming a client or realm whose id is longer than 256 bytes: not kept per client.
    pub dim_ids_too_long: AtomicU64,
    /// Events of clients or realms beyond the per-month cap: kept under `other_clients`.
    pub dim_ids_over_cap: AtomicU64,
}

/// The flushing side.
#[derive(Debug, Default)]
pub struct Flushing {
    /// Flushes applied (the API's cache compares it: a flush makes cached answers stale).
    pub applied: AtomicU64,
    /// Flushes that failed (and will be retried).
    pub failed: AtomicU64,
    /// Flushes refused because another instance owns the node now.
    pub fenced: AtomicU64,
    /// Retried flushes the backend had applied before (the answer was lost).
    pub already_applied: AtomicU64,
    /// Applied writes (flushes, snapshots) by month they wrote (the API's cache compares them).
    pub months: Mutex<BTreeMap<Month, u64>>,
    /// Flush durations in seconds, successful or not.
    pub seconds: Mutex<Histogram>,
}

/// The pipeline's health, as `/readyz` and the health check report it.
#[derive(Debug, Default)]
pub struct Health {
    /// Set once the node's state was loaded and reading started.
    pub started: std::sync::atomic::AtomicBool,
    /// Set when this agent was fenced: why. Reading has stopped.
    pub fenced: Mutex<Option<String>>,
    /// Errors reading the sources, per `(source, reason)`.
    pub source_errors: Mutex<BTreeMap<(String, String), u64>>,
    /// What is wrong with each source now (cleared by a scan without errors).
    pub source_problems: Mutex<BTreeMap<String, String>>,
    /// The flushes that failed since the last one that was stored (none: the last one was).
    pub flush_failing: Mutex<Option<FlushFailing>>,
    /// When the flush under way started (none between flushes): a flush that waits on the
    /// backend shows on `/readyz` and in `authstat_flush_waiting_seconds` while it waits.
    pub flush_started: Mutex<Option<std::time::Instant>>,
}

/// Flushes failing in a row: kept, retried, and shown until one is stored.
#[derive(Debug, Clone)]
pub struct FlushFailing {
    /// Failed flushes in a row.
    pub failures: u64,
    /// When the first of them failed.
    pub since: std::time::Instant,
    /// The last one's error.
    pub error: String,
}

impl Flushing {
    /// Counts an applied write of `months`.
    pub(crate) fn wrote(&self, months: impl IntoIterator<Item = Month>) {
        let mut counts = self.months.lock().expect("lock");
        for month in months {
            *counts.entry(month).or_default() += 1;
        }
    }
}

impl Health {
    /// How long the flush under way has waited for the backend (zero between flushes).
    pub(crate) fn flush_waiting(&self) -> std::time::Duration {
        self.flush_started
            .lock()
            .expect("lock")
            .map_or(std::time::Duration::ZERO, |t| t.elapsed())
    }

    /// What `/readyz` says about flushing: failures in a row, or a flush that has waited on
    /// the backend for longer than `slow`.
    fn flush_problems(&self, slow: std::time::Duration) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(f) = self.flush_failing.lock().expect("lock").as_ref() {
            problems.push(format!(
                "flushes failing: {} in a row for {} s (what was read is kept and retried): {}",
                f.failures,
                f.since.elapsed().as_secs(),
                f.error
            ));
        }
        let waiting = self.flush_waiting();
        if waiting > slow {
            problems.push(format!(
                "flush waiting on the backend for {} s",
                waiting.as_secs()
            ));
        }
        problems
    }
}

/// A flush that has waited on the backend this long shows on `/readyz` (flushes take
/// milliseconds; the backend's statement timeouts end a stuck one within a third of the lease).
const SLOW_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

impl authstat_api::AgentStatus for PipelineStats {
    fn started(&self) -> bool {
        self.health.started.load(Ordering::Acquire)
    }

    fn flushes_of(&self, month: Month) -> u64 {
        self.flushing
            .months
            .lock()
            .expect("lock")
            .get(&month)
            .copied()
            .unwrap_or(0)
    }

    fn problems(&self) -> Vec<String> {
        let h = &self.health;
        let mut problems = Vec::new();
        if let Some(why) = h.fenced.lock().expect("lock").clone() {
            problems.push(format!("fenced: {why}"));
        }
        problems.extend(h.flush_problems(SLOW_FLUSH));
        for (source, problem) in h.source_problems.lock().expect("lock").iter() {
            problems.push(format!("source {source}: {problem}"));
        }
        problems
    }
}

impl Health {
    /// Records the errors of one scan or read of `source` (none: the source is fine again).
    pub(crate) fn record_source_errors(
        &self,
        source: &str,
        errors: &[SourceProblem],
        scanned: bool,
    ) {
        let mut problems = self.source_problems.lock().expect("lock");
        if errors.is_empty() {
            if scanned {
                problems.remove(source);
            }
            return;
        }
        let mut counts = self.source_errors.lock().expect("lock");
        for e in errors {
            *counts
                .entry((source.to_owned(), e.reason.to_owned()))
                .or_default() += 1;
        }
        let text = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        problems.insert(source.to_owned(), text);
    }
}

/// This node's stored statistics, for `/metrics` (cumulative across restarts: they start from
/// what the backend holds).
#[derive(Debug, Default, Clone)]
pub struct NodeTotals {
    /// Every counter, summed over all months.
    pub counters: Counters,
    /// The month of the newest data and its distinct users on this node.
    pub current_month: Option<(Month, u64)>,
    /// The current month's distinct active clients on this node.
    pub current_month_clients: Option<(Month, u64)>,
    /// The earliest month with counts of this node: the counters count from its first
    /// instant, which OTLP reports as their start time (the same after every restart).
    pub first_month: Option<Month>,
    /// Per-client series (`derive.per_client.metrics`): at most this many clients, `None`: off.
    pub client_series: Option<usize>,
    /// Each client's authentications and tokens flushed since the agent started (the rest
    /// beyond [`NodeTotals::client_series`] under the empty id).
    pub clients: BTreeMap<String, Counters>,
}

impl NodeTotals {
    /// Adds a flushed month's counts of clients to their series (if they are on).
    pub fn add_clients(&mut self, dims: &[authstat_core::dims::DimFlush]) {
        let Some(cap) = self.client_series else {
            return;
        };
        for d in dims.iter().filter(|d| d.dim.kind() == DimKind::Client) {
            let id = d.dim.id().unwrap_or_default();
            let key = if self.clients.contains_key(id) || self.clients.len() < cap {
                id
            } else {
                ""
            };
            match self.clients.get_mut(key) {
                Some(c) => c.merge(&d.counter_deltas),
                None => {
                    self.clients
                        .insert(key.to_owned(), d.counter_deltas.clone());
                }
            }
        }
    }

    /// Adds one month's stored counts.
    pub fn add(&mut self, month: Month, counters: &Counters) {
        self.counters.merge(counters);
        if !counters.is_empty() && self.first_month.is_none_or(|first| month < first) {
            self.first_month = Some(month);
        }
    }
}

/// A histogram with fixed buckets (upper bounds in seconds).
#[derive(Debug, Clone)]
pub struct Histogram {
    /// Upper bounds.
    pub bounds: &'static [f64],
    /// Observations at or below each bound (not cumulative).
    pub counts: Vec<u64>,
    /// Observations above the last bound.
    pub over: u64,
    /// Sum of all observations.
    pub sum: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        const BOUNDS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
        Self {
            bounds: BOUNDS,
            counts: vec![0; BOUNDS.len()],
            over: 0,
            sum: 0.0,
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub(crate) fn observe(&mut self, value: f64) {
        self.sum += value;
        match self.bounds.iter().position(|&b| value <= b) {
            Some(i) => self.counts[i] += 1,
            None => self.over += 1,
        }
    }
}
