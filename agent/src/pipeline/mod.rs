//! The ingest pipeline: sources → deriver → per-month aggregate → atomic flushes →
//! acknowledgements.
//!
//! It runs on a thread of its own (file reading blocks) and is the only writer of this node's
//! data, so a flush takes one consistent snapshot: the counter deltas, the node's HLLs and the
//! positions that produced them, made under this agent's claim on the node (its epoch). A batch
//! that failed is retried unchanged (same sequence number) before any newer one; meanwhile
//! reading goes on until `max_pending_records`, then pauses (backpressure) — nothing is
//! dropped. A flush refused because another instance owns the node now (fenced) stops reading
//! for good: what this agent read but did not store is the new owner's to read.
//!
//! Time is tokio's: the thread enters the agent's runtime, so every interval, the lease's
//! renewal and the pace of warnings follow the runtime's clock, which a test can pause and
//! advance (`tokio::time::pause`).

mod aggregate;
mod claims;
mod client_metrics;
mod dims;
mod flush;
mod inputs;
pub mod metrics;
mod read;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use tokio::time::Instant;

use authstat_core::Month;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::ingest::Deriver;
use authstat_core::source::Source;
use authstat_core::store::{FlushBatch, NodeState, SourcePosition, StatStore};
use tracing::{info, warn};

use crate::own::Ownership;
use aggregate::{Aggregate, SkipLog};
use authstat_core::dims::{day_params, dim_params};
use authstat_core::month::now_ms;
use claims::Claims;
pub use claims::{Refusal, Role};
use dims::DimTable;
pub use stats::{Folding, Histogram, NodeTotals, PipelineStats, Snapshots};

/// Builds new sources from the current positions (a reload of the sources).
pub(crate) type SourceFactory = Box<dyn FnOnce(&[SourcePosition]) -> Vec<Box<dyn Source>> + Send>;

/// What the pipeline thread is told.
pub enum Control {
    /// Files may have changed (a file-system notification).
    Wake,
    /// Flush now (tests, and `backfill` at its end).
    Flush,
    /// Replace the sources: new tailers resume from the current positions, which are at
    /// record boundaries, so nothing is lost or read twice.
    Reload(SourceFactory),
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

/// What a pipeline is built from.
pub struct Parts {
    /// The backend.
    pub store: Arc<dyn StatStore>,
    /// This agent's claim on its node id.
    pub owner: Ownership,
    /// The node's stored state (where to resume).
    pub state: NodeState,
    /// The sources.
    pub sources: Vec<Box<dyn Source>>,
    /// The derivation rules.
    pub deriver: Box<dyn Deriver>,
    /// The HLL setting.
    pub params: HllParams,
    /// At most this many distinct clients (and realms) per month are kept apart.
    pub max_dims_per_month: usize,
    /// Also each client's users per day (`derive.per_client.daily`).
    pub per_client_daily: bool,
    /// The clients and realms the node holds already of the months it is likely to write
    /// (they count towards the cap).
    pub known_dims: Vec<authstat_core::dims::MonthDims>,
    /// Backpressure limit.
    pub max_pending_records: u64,
    /// Records further in the future are skipped.
    pub max_future: Duration,
    /// Shared counters.
    pub stats: Arc<PipelineStats>,
    /// Agent or backfill (how claims of files are settled).
    pub role: Role,
    /// The runtime the backend's futures run on.
    pub runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("node", &self.owner.node)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The pipeline of one agent.
pub struct Pipeline {
    store: Arc<dyn StatStore>,
    owner: Ownership,
    sources: Vec<Box<dyn Source>>,
    deriver: Box<dyn Deriver>,
    agg: Aggregate,
    seq: u64,
    pending: Option<FlushBatch>,
    last_positions: Vec<SourcePosition>,
    last_flush: Instant,
    max_pending_records: u64,
    max_future_ms: i64,
    stats: Arc<PipelineStats>,
    skip_log: SkipLog,
    claims: Claims,
    fenced: bool,
    followed: inputs::Followed,
    runtime: tokio::runtime::Handle,
    /// Threads that read (a backfill's files in parallel); 1 for an agent.
    threads: usize,
    /// With several threads, what each has counted since the last flush (and its log of bad
    /// input): kept from one read to the next, so that a thread's HLLs reach their dense form
    /// once, not at every read; added to `agg` before a flush.
    parts: Vec<(Aggregate, SkipLog)>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("node", &self.owner.node)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline resuming from `parts.state` (the node's stored state).
    pub fn new(parts: Parts) -> Self {
        let Parts {
            store,
            owner,
            state,
            sources,
            deriver,
            params,
            max_dims_per_month,
            per_client_daily,
            known_dims,
            max_pending_records,
            max_future,
            stats,
            role,
            runtime,
        } = parts;
        let mut dims = DimTable::new(dim_params(&params), day_params(&params), max_dims_per_month);
        dims.know(&known_dims);
        dims.daily = per_client_daily;
        let hlls: BTreeMap<Month, Hll> = state
            .months
            .iter()
            .map(|m| (m.month, m.users.clone()))
            .collect();
        let clients: BTreeMap<Month, Hll> = state
            .months
            .iter()
            .filter_map(|m| Some((m.month, m.clients.clone()?)))
            .collect();
        // /metrics counters continue from what the backend holds.
        {
            let mut totals = stats.node_totals.lock().expect("lock");
            for m in &state.months {
                totals.add(m.month, &m.counters);
            }
            totals.current_month = Some(current_month_users(&hlls));
            totals.current_month_clients = Some(current_month_users(&clients));
        }
        let claims = Claims {
            role,
            store: store.clone(),
            owner: owner.clone(),
            runtime: runtime.clone(),
            warned: BTreeSet::new(),
            stored: state.positions.clone(),
            refusals: Vec::new(),
        };
        Self {
            store,
            owner,
            sources,
            deriver,
            agg: Aggregate {
                params,
                hlls,
                clients,
                deltas: BTreeMap::new(),
                touched: BTreeSet::new(),
                last_touched: None,
                records: 0,
                snapshots: BTreeMap::new(),
                dims,
            },
            seq: state.seq,
            pending: None,
            last_positions: state.positions,
            last_flush: Instant::now(),
            max_pending_records,
            max_future_ms: max_future.as_millis().min(i64::MAX as u128) as i64,
            stats,
            skip_log: SkipLog::default(),
            claims,
            fenced: false,
            followed: inputs::Followed::default(),
            runtime,
            threads: 1,
            parts: Vec::new(),
        }
    }

    /// Reads with `threads` threads (at least 1): a backfill's files in parallel, each file in
    /// order. The stored result is the same as with one thread.
    pub(crate) fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// How often the sources want to be polled (the shortest of their intervals).
    pub fn poll_interval(&self) -> Duration {
        self.sources
            .iter()
            .map(|s| s.poll_interval())
            .min()
            .unwrap_or(Duration::from_secs(1))
    }

    /// Runs until told to shut down: scans every `poll`, reads what there is, flushes every
    /// `flush_every` (and when the lease needs renewing), and once more at the end.
    pub fn run(mut self, control: Receiver<Control>, mut poll: Duration, flush_every: Duration) {
        let runtime = self.runtime.clone();
        let _clock = runtime.enter();
        // What was stored before is durable: a queue source may acknowledge it now.
        self.acknowledge();
        self.scan();
        self.stats.health.started.store(true, Ordering::Release);
        let mut next_scan = Instant::now() + poll;
        let mut next_flush = Instant::now() + flush_every.min(self.owner.lease / 3);
        'running: loop {
            self.stats.reading.loops.fetch_add(1, Ordering::Relaxed);
            // Read everything available before waiting (in slices, so flushes keep their pace).
            let mut busy = self.read_some();
            let now = Instant::now();
            if now >= next_flush {
                self.flush();
                next_flush = now + flush_every.min(self.owner.lease / 3);
            }
            if now >= next_scan {
                self.stats.reading.scans.fetch_add(1, Ordering::Relaxed);
                self.scan();
                next_scan = now + poll;
                busy = true;
            }
            let wait = if busy {
                Duration::ZERO
            } else {
                next_scan.min(next_flush).saturating_duration_since(now)
            };
            let first = match control.recv_timeout(wait) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Many file events arrive at once: one scan answers all of them.
            let mut wake = false;
            for message in std::iter::once(first).chain(control.try_iter()) {
                match message {
                    Control::Wake => wake = true,
                    Control::Flush => self.flush(),
                    Control::Reload(build) => {
                        let positions = self.positions();
                        self.claims.stored = positions.clone();
                        self.sources = build(&positions);
                        poll = self.poll_interval();
                        wake = true;
                        info!(sources = self.sources.len(), "sources reloaded");
                    }
                    Control::Shutdown => break 'running,
                }
            }
            if wake {
                self.scan();
            }
        }
        self.flush();
        if self.pending.is_none() && !self.fenced {
            // A queue source's receipts for the final acknowledgements: what they settle need
            // not stay in the stored positions.
            let mut changed = false;
            for source in &mut self.sources {
                changed |= source.await_receipts();
            }
            if changed {
                self.flush();
            }
        }
        if self.pending.is_some() {
            warn!(
                "the last flush failed: this node's newest data was not stored; it will be read again at the next start"
            );
        } else if !self.fenced {
            self.release();
        }
        info!(seq = self.seq, "ingestion stopped");
    }

    /// Reads every file to its end once and flushes (`backfill`); `progress` is called between
    /// slices. It flushes along the way too, every `flush_every` (or a third of the lease, if
    /// shorter): a long backfill keeps its node, and one that is stopped goes on from its last
    /// flush when it is run again. A flush that fails stops the reading (what was stored stays
    /// stored). Returns the files refused because they are counted elsewhere.
    pub fn run_to_end(mut self, flush_every: Duration, mut progress: impl FnMut()) -> Vec<Refusal> {
        let runtime = self.runtime.clone();
        let _clock = runtime.enter();
        self.acknowledge();
        self.scan();
        let every = flush_every.min(self.owner.lease / 3);
        while self.read_some() {
            progress();
            if self.last_flush.elapsed() >= every {
                self.flush();
                if self.pending.is_some() || self.fenced {
                    break;
                }
            }
        }
        progress();
        self.flush();
        if self.pending.is_none() && !self.fenced {
            self.release();
        }
        std::mem::take(&mut self.claims.refusals)
    }

    /// Gives the node up: the next agent with this node id starts at once, and the claims of
    /// a backfill can be taken over.
    fn release(&self) {
        let released = self
            .runtime
            .block_on(self.store.release_node(&self.owner.node, self.owner.epoch));
        if let Err(e) = released {
            warn!(error = %e, "releasing the node id failed; its lease expires on its own");
        }
    }
}

/// The current month (by the wall clock, UTC) and this node's distinct users (or clients) in
/// it: a record stamped far in the future must not become the "newest month".
fn current_month_users(hlls: &BTreeMap<Month, Hll>) -> (Month, u64) {
    let month = Month::from_epoch_millis(now_ms()).expect("the clock is within years 0-9999");
    let users = hlls.get(&month).and_then(Hll::cardinality).unwrap_or(0);
    (month, users)
}
