//! The ingest pipeline: tailers → parser → deriver → per-month aggregate → atomic flushes.
//!
//! It runs on a thread of its own (file reading blocks) and is the only writer of this node's
//! data, so a flush takes one consistent snapshot: the counter deltas, the node's HLLs and the
//! checkpoints that produced them. A batch that failed is retried unchanged (same sequence
//! number) before any newer one; meanwhile reading goes on until `max_pending_records`, then
//! pauses (backpressure) — nothing is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use authstat_core::counters::{CounterKey, Counters};
use authstat_core::hll::{Hll, HllParams};
use authstat_core::ingest::{Deriver, ParseErrorKind};
use authstat_core::stats::UpdateSink;
use authstat_core::store::{
    Checkpoint, FlushBatch, FlushOutcome, MonthFlush, NodeState, StatStore,
};
use authstat_core::{Month, NodeId};
use authstat_plugins::tail::{TailEvent, Tailer};
use tracing::{debug, info, warn};

/// Builds new tailers from the current checkpoints (a reload of the sources).
pub type TailerFactory = Box<dyn FnOnce(&[Checkpoint]) -> Vec<Tailer> + Send>;

/// What the pipeline thread is told.
pub enum Control {
    /// Files may have changed (a file-system notification).
    Wake,
    /// Flush now (tests, and `backfill` at its end).
    Flush,
    /// Replace the sources: new tailers resume from the current checkpoints, which are at
    /// record boundaries, so nothing is lost or read twice.
    Reload(TailerFactory),
    /// Stop reading, flush, and end.
    Shutdown,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Control::Wake => "Wake",
            Control::Flush => "Flush",
            Control::Reload(_) => "Reload",
            Control::Shutdown => "Shutdown",
        })
    }
}

/// Counters about the pipeline, shared with the API (and later `/metrics`).
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Records turned into events.
    pub records: AtomicU64,
    /// Records or bytes skipped, all kinds together.
    pub skipped: AtomicU64,
    /// Skipped, per kind (indexed by `ParseErrorKind::index`).
    pub skipped_by_kind: [AtomicU64; ParseErrorKind::ALL.len()],
    /// Bytes read.
    pub bytes: AtomicU64,
    /// Flushes applied.
    pub flushes: AtomicU64,
    /// Flushes that failed (and will be retried).
    pub flush_failures: AtomicU64,
    /// Turns of the pipeline's loop (each waits for a file event, a timer or a command).
    pub loops: AtomicU64,
    /// Scans of the sources' paths on the timer (not those a file event asked for).
    pub scans: AtomicU64,
    /// Files followed now (updated on every timer scan).
    pub files: AtomicU64,
    /// Bytes written to the followed files but not consumed yet (updated on every timer scan).
    pub lag_bytes: AtomicU64,
    /// Flush durations in seconds, successful or not.
    pub flush_seconds: std::sync::Mutex<Histogram>,
    /// What this node has stored: every counter over all months, and the current month's
    /// distinct users (updated after each flush; read by `/metrics`).
    pub node_totals: std::sync::Mutex<NodeTotals>,
    /// Set once the node's state was loaded and reading started.
    pub started: std::sync::atomic::AtomicBool,
}

/// This node's stored statistics, for `/metrics` (cumulative across restarts: they start from
/// what the backend holds).
#[derive(Debug, Default, Clone)]
pub struct NodeTotals {
    /// Every counter, summed over all months.
    pub counters: Counters,
    /// The month of the newest data and its distinct users on this node.
    pub current_month: Option<(Month, u64)>,
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
    pub fn observe(&mut self, value: f64) {
        self.sum += value;
        match self.bounds.iter().position(|&b| value <= b) {
            Some(i) => self.counts[i] += 1,
            None => self.over += 1,
        }
    }
}

/// Per month: the node's whole HLL, and the counters since the last flush.
struct Aggregate {
    params: HllParams,
    hlls: BTreeMap<Month, Hll>,
    deltas: BTreeMap<Month, Counters>,
    touched: BTreeSet<Month>,
    records: u64,
}

impl UpdateSink for Aggregate {
    fn add_user(&mut self, month: Month, raw_hash: i64) {
        let params = self.params;
        self.hlls
            .entry(month)
            .or_insert_with(|| Hll::new(params))
            .add_raw(raw_hash);
        self.touched.insert(month);
    }

    fn add_count(&mut self, month: Month, key: &CounterKey, n: u64) {
        self.deltas.entry(month).or_default().add(key, n);
        self.touched.insert(month);
    }
}

/// The pipeline of one agent.
pub struct Pipeline {
    node: NodeId,
    store: Arc<dyn StatStore>,
    tailers: Vec<Tailer>,
    deriver: Box<dyn Deriver>,
    agg: Aggregate,
    seq: u64,
    pending: Option<FlushBatch>,
    last_checkpoints: Vec<Checkpoint>,
    max_pending_records: u64,
    stats: Arc<PipelineStats>,
    skip_log: SkipLog,
    /// Checkpoints stored with every flush besides the tailers' own (backfill: earlier runs'
    /// files and done markers of compressed files).
    extra_checkpoints: Vec<Checkpoint>,
    /// Sources whose checkpoints are not stored (backfill: decompressed temporary files).
    transient_sources: Vec<String>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("node", &self.node)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline resuming from `state` (the node's stored state).
    #[allow(
        clippy::too_many_arguments,
        reason = "the pipeline's parts, built by the agent"
    )]
    pub fn new(
        node: NodeId,
        store: Arc<dyn StatStore>,
        state: NodeState,
        tailers: Vec<Tailer>,
        deriver: Box<dyn Deriver>,
        params: HllParams,
        max_pending_records: u64,
        stats: Arc<PipelineStats>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        // /metrics counters continue from what the backend holds.
        {
            let mut totals = stats.node_totals.lock().expect("lock");
            for m in &state.months {
                totals.counters.merge(&m.counters);
            }
            if let Some(m) = state.months.last() {
                totals.current_month = Some((m.month, m.users.cardinality().unwrap_or(0)));
            }
        }
        let hlls = state
            .months
            .into_iter()
            .map(|m| (m.month, m.users))
            .collect();
        Self {
            node,
            store,
            tailers,
            deriver,
            agg: Aggregate {
                params,
                hlls,
                deltas: BTreeMap::new(),
                touched: BTreeSet::new(),
                records: 0,
            },
            seq: state.seq,
            pending: None,
            last_checkpoints: state.checkpoints,
            max_pending_records,
            stats,
            skip_log: SkipLog {
                last_warning: None,
                suppressed: 0,
            },
            extra_checkpoints: Vec::new(),
            transient_sources: Vec::new(),
            runtime,
        }
    }

    /// Stores `extra` with every flush, and not the checkpoints of `transient` sources.
    pub fn with_checkpoint_rules(mut self, extra: Vec<Checkpoint>, transient: Vec<String>) -> Self {
        self.extra_checkpoints = extra;
        self.transient_sources = transient;
        self
    }

    /// Runs until told to shut down: scans every `poll`, reads what there is, flushes every
    /// `flush_every`, and once more at the end.
    pub fn run(mut self, control: Receiver<Control>, poll: Duration, flush_every: Duration) {
        self.scan();
        self.stats.started.store(true, Ordering::Release);
        let mut next_scan = Instant::now() + poll;
        let mut next_flush = Instant::now() + flush_every;
        loop {
            self.stats.loops.fetch_add(1, Ordering::Relaxed);
            // Read everything available before waiting (in slices, so flushes keep their pace).
            let mut busy = self.read_some();
            let now = Instant::now();
            if now >= next_flush {
                self.flush();
                next_flush = now + flush_every;
            }
            if now >= next_scan {
                self.stats.scans.fetch_add(1, Ordering::Relaxed);
                self.scan();
                next_scan = now + poll;
                busy = true;
            }
            let wait = if busy {
                Duration::ZERO
            } else {
                next_scan.min(next_flush).saturating_duration_since(now)
            };
            match control.recv_timeout(wait) {
                Ok(Control::Wake) => self.scan(),
                Ok(Control::Flush) => self.flush(),
                Ok(Control::Reload(build)) => {
                    let checkpoints: Vec<Checkpoint> =
                        self.tailers.iter().flat_map(Tailer::checkpoints).collect();
                    self.tailers = build(&checkpoints);
                    self.scan();
                    info!(sources = self.tailers.len(), "sources reloaded");
                }
                Ok(Control::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        self.flush();
        if self.pending.is_some() {
            warn!(
                "the last flush failed: this node's newest data was not stored; it will be read again at the next start"
            );
        }
        info!(seq = self.seq, "ingestion stopped");
    }

    /// Reads every file to its end once and flushes (`backfill`); `progress` is called between
    /// slices.
    pub fn run_to_end(mut self, mut progress: impl FnMut()) {
        self.scan();
        while self.read_some() {
            progress();
        }
        progress();
        self.flush();
    }

    /// Adds a stored batch to the node's totals for `/metrics`.
    fn publish_totals(&self, batch: &FlushBatch) {
        let mut totals = self.stats.node_totals.lock().expect("lock");
        for month in &batch.months {
            totals.counters.merge(&month.counter_deltas);
        }
        if let Some(newest) = batch.months.iter().map(|m| m.month).max()
            && totals.current_month.is_none_or(|(m, _)| newest >= m)
        {
            let users = self
                .agg
                .hlls
                .get(&newest)
                .and_then(Hll::cardinality)
                .unwrap_or(0);
            totals.current_month = Some((newest, users));
        }
    }

    fn scan(&mut self) {
        for t in &mut self.tailers {
            if let Err(e) = t.scan() {
                warn!(source = t.source(), error = %e, "scanning files failed");
            }
        }
        let files: usize = self.tailers.iter().map(Tailer::files).sum();
        let lag: u64 = self.tailers.iter().map(Tailer::lag_bytes).sum();
        self.stats.files.store(files as u64, Ordering::Relaxed);
        self.stats.lag_bytes.store(lag, Ordering::Relaxed);
    }

    /// Reads up to a slice of bytes; true if anything was read.
    fn read_some(&mut self) -> bool {
        // Backpressure: while a flush is failing, stop reading past the limit.
        if self.pending.is_some() && self.agg.records >= self.max_pending_records {
            return false;
        }
        // While a batch waits for the backend, read in small slices so that the limit holds
        // closely.
        let budget = if self.pending.is_some() {
            64 << 10
        } else {
            8 << 20
        };
        let mut total = 0;
        let agg = &mut self.agg;
        let deriver = self.deriver.as_ref();
        let stats = &self.stats;
        let log = &mut self.skip_log;
        for t in &mut self.tailers {
            let source = t.source().to_owned();
            let result = t.read(budget, &mut |event| match event {
                TailEvent::Record { parsed: Ok(event), path, offset } => {
                    agg.records += 1;
                    stats.records.fetch_add(1, Ordering::Relaxed);
                    if deriver.derive(&event, agg).is_err() {
                        skipped(stats, log, &source, ParseErrorKind::BadTimestamp, path, offset);
                    }
                }
                TailEvent::Record { parsed: Err(e), path, offset } => {
                    skipped(stats, log, &source, e.kind, path, offset);
                }
                TailEvent::Skipped { kind, path, offset } => {
                    skipped(stats, log, &source, kind, path, offset)
                }
                TailEvent::Truncated { path } => info!(%source, path = %path.display(), "file truncated: reading it again from its start"),
            });
            match result {
                Ok(n) => total += n,
                Err(e) => warn!(%source, error = %e, "reading files failed"),
            }
        }
        self.stats.bytes.fetch_add(total as u64, Ordering::Relaxed);
        total > 0
    }

    /// Writes what was aggregated since the last flush, with the checkpoints, atomically.
    pub fn flush(&mut self) {
        if let Some(batch) = self.pending.take()
            && !self.try_flush(batch)
        {
            return;
        }
        let mut checkpoints: Vec<_> = self
            .tailers
            .iter()
            .flat_map(Tailer::checkpoints)
            .filter(|c| !self.transient_sources.contains(&c.source))
            .collect();
        checkpoints.extend(self.extra_checkpoints.iter().cloned());
        if self.agg.touched.is_empty() && checkpoints == self.last_checkpoints {
            return;
        }
        let months = std::mem::take(&mut self.agg.touched)
            .into_iter()
            .map(|month| MonthFlush {
                month,
                users: self
                    .agg
                    .hlls
                    .get(&month)
                    .cloned()
                    .unwrap_or_else(|| Hll::new(self.agg.params)),
                counter_deltas: self.agg.deltas.remove(&month).unwrap_or_default(),
            })
            .collect();
        self.agg.records = 0;
        let batch = FlushBatch {
            node: self.node.clone(),
            seq: self.seq + 1,
            months,
            checkpoints,
        };
        self.try_flush(batch);
    }

    /// True if `batch` is stored (now or before); otherwise it is kept for a retry.
    fn try_flush(&mut self, batch: FlushBatch) -> bool {
        let started = Instant::now();
        let result = self.runtime.block_on(self.store.flush(&batch));
        self.stats
            .flush_seconds
            .lock()
            .expect("lock")
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(outcome) => {
                self.publish_totals(&batch);
                if outcome == FlushOutcome::AlreadyApplied {
                    info!(seq = batch.seq, "flush had been applied before");
                }
                self.seq = batch.seq;
                self.last_checkpoints = batch.checkpoints;
                self.stats.flushes.fetch_add(1, Ordering::Release);
                debug!(
                    seq = self.seq,
                    months = batch.months.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "flushed"
                );
                true
            }
            Err(e) => {
                self.stats.flush_failures.fetch_add(1, Ordering::Relaxed);
                warn!(seq = batch.seq, error = %e, "flush failed; it will be retried");
                self.pending = Some(batch);
                false
            }
        }
    }
}

/// Warnings about bad input are bounded: at most one per [`WARN_EVERY`], which says how many
/// more were skipped since the last one (each is also logged at debug level and counted).
const WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct SkipLog {
    last_warning: Option<Instant>,
    suppressed: u64,
}

impl SkipLog {
    fn record(&mut self, source: &str, kind: ParseErrorKind, path: &std::path::Path, offset: u64) {
        debug!(source, path = %path.display(), offset, %kind, "skipped");
        if self
            .last_warning
            .is_some_and(|at| at.elapsed() < WARN_EVERY)
        {
            self.suppressed += 1;
            return;
        }
        warn!(
            source,
            path = %path.display(),
            offset,
            %kind,
            more_since_last_warning = self.suppressed,
            "bad input skipped"
        );
        self.last_warning = Some(Instant::now());
        self.suppressed = 0;
    }
}

fn skipped(
    stats: &PipelineStats,
    log: &mut SkipLog,
    source: &str,
    kind: ParseErrorKind,
    path: &std::path::Path,
    offset: u64,
) {
    stats.skipped.fetch_add(1, Ordering::Relaxed);
    stats.skipped_by_kind[kind.index()].fetch_add(1, Ordering::Relaxed);
    log.record(source, kind, path, offset);
}
