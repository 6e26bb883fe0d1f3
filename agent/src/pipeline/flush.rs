//! Flushing: one atomic batch of what was aggregated, the positions that produced it and the
//! lease renewal; then the sources hear what is durable.

use std::sync::atomic::Ordering;
use tokio::time::Instant;

use authstat_core::hll::Hll;
use authstat_core::store::{
    FlushBatch, FlushOutcome, MonthFlush, SnapshotOutcome, SourcePosition, StoreError,
};
use tracing::{debug, error, info, warn};

use super::{Pipeline, current_month_users};
use authstat_core::month::now_ms;

impl Pipeline {
    /// Writes what was aggregated since the last flush, with the positions, atomically; or
    /// renews the lease when it is due.
    pub fn flush(&mut self) {
        if self.fenced {
            return;
        }
        for (part, _) in std::mem::take(&mut self.parts) {
            self.agg.absorb(part);
        }
        self.store_snapshots();
        if let Some(batch) = self.pending.take()
            && !self.try_flush(batch)
        {
            return;
        }
        let positions = self.positions();
        let changed = positions != self.last_positions;
        let lease_due = self.last_flush.elapsed() >= self.owner.lease / 3;
        if self.agg.touched.is_empty() && !changed && !lease_due {
            // Nothing new to store; what is stored may still wait for its acknowledgement (a
            // queue source's messages delivered again after a restart).
            self.acknowledge();
            return;
        }
        let months = self
            .agg
            .take_touched()
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
                clients: self.agg.clients.get(&month).cloned(),
                dims: self.agg.dims.take(month),
            })
            .collect();
        self.agg.records = 0;
        let dims = &mut self.agg.dims;
        let reading = &self.stats.reading;
        reading
            .dim_ids_too_long
            .fetch_add(std::mem::take(&mut dims.skipped), Ordering::Relaxed);
        reading
            .dim_ids_over_cap
            .fetch_add(std::mem::take(&mut dims.over_cap), Ordering::Relaxed);
        let batch = FlushBatch {
            node: self.owner.node.clone(),
            epoch: self.owner.epoch,
            lease_until_ms: 0,
            seq: self.seq + 1,
            months,
            positions: changed.then_some(positions),
        };
        self.try_flush(batch);
    }

    /// True if `batch` is stored (now or before); otherwise it is kept for a retry.
    fn try_flush(&mut self, mut batch: FlushBatch) -> bool {
        // A retried batch renews the lease from now.
        batch.lease_until_ms = self.owner.lease_until_ms();
        let started = Instant::now();
        *self.stats.health.flush_started.lock().expect("lock") = Some(started.into_std());
        let result = self.runtime.block_on(self.store.flush(&batch));
        *self.stats.health.flush_started.lock().expect("lock") = None;
        self.stats
            .flushing
            .seconds
            .lock()
            .expect("lock")
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(outcome) => {
                self.applied(batch, outcome, started);
                true
            }
            Err(e @ StoreError::Fenced { .. }) => {
                self.fenced = true;
                self.stats.flushing.fenced.fetch_add(1, Ordering::Relaxed);
                let why = format!(
                    "{e}; this agent stopped reading: what it read since its last flush is the new owner's to read"
                );
                error!(seq = batch.seq, "{why}");
                *self.stats.health.fenced.lock().expect("lock") = Some(why);
                false
            }
            Err(e) => {
                self.stats.flushing.failed.fetch_add(1, Ordering::Relaxed);
                warn!(seq = batch.seq, error = %e, "flush failed; it will be retried");
                let mut failing = self.stats.health.flush_failing.lock().expect("lock");
                let failing = failing.get_or_insert_with(|| super::stats::FlushFailing {
                    failures: 0,
                    since: std::time::Instant::now(),
                    error: String::new(),
                });
                failing.failures += 1;
                failing.error = e.to_string();
                self.pending = Some(batch);
                false
            }
        }
    }

    /// What follows a flush the store applied (or had applied: its answer was lost).
    fn applied(&mut self, batch: FlushBatch, outcome: FlushOutcome, started: Instant) {
        if let Some(failing) = self.stats.health.flush_failing.lock().expect("lock").take() {
            info!(
                failures = failing.failures,
                after_secs = failing.since.elapsed().as_secs(),
                "flushing works again"
            );
        }
        self.publish_totals(&batch);
        if outcome == FlushOutcome::AlreadyApplied {
            self.stats
                .flushing
                .already_applied
                .fetch_add(1, Ordering::Relaxed);
            info!(
                seq = batch.seq,
                "this flush had been applied before (its answer was lost)"
            );
        }
        self.seq = batch.seq;
        if let Some(positions) = batch.positions {
            self.last_positions = positions;
        }
        if !batch.months.is_empty() && abort_before_acknowledging() {
            // Test hook: the worst moment to die, stored but not acknowledged.
            std::process::abort();
        }
        self.acknowledge();
        self.last_flush = Instant::now();
        self.stats
            .flushing
            .wrote(batch.months.iter().map(|m| m.month));
        self.stats.flushing.applied.fetch_add(1, Ordering::Release);
        debug!(
            seq = self.seq,
            months = batch.months.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "flushed"
        );
    }

    /// Stores the snapshots of foreign nodes read since the last flush. They replace what is
    /// stored and carry their own version, so they need no position and no order with this
    /// node's batches; one that fails is kept (unless a newer one of its node arrives) and
    /// tried again at the next flush.
    fn store_snapshots(&mut self) {
        let snapshots = std::mem::take(&mut self.agg.snapshots);
        let counts = &self.stats.snapshots;
        for (node, snapshot) in snapshots {
            match self.runtime.block_on(self.store.put_snapshot(&snapshot)) {
                Ok(SnapshotOutcome::Applied) => {
                    counts.applied.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .flushing
                        .wrote(snapshot.months.iter().map(|m| m.month));
                    if let Ok(month) = authstat_core::Month::from_epoch_millis(now_ms()) {
                        let mut current = counts.current_month.lock().expect("lock");
                        current.record(&snapshot, month);
                    }
                }
                Ok(SnapshotOutcome::Stale) => {
                    counts.stale.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.is_retryable() => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    warn!(node = %node, error = %e, "storing a snapshot failed; it will be retried");
                    self.agg.add_snapshot(snapshot);
                }
                Err(e) => {
                    counts.rejected.fetch_add(1, Ordering::Relaxed);
                    error!(node = %node, error = %e, "the backend refused a snapshot");
                }
            }
        }
    }

    /// Every source's positions, sorted (as the store keeps them).
    pub(super) fn positions(&self) -> Vec<SourcePosition> {
        let mut positions: Vec<SourcePosition> =
            self.sources.iter().flat_map(|s| s.positions()).collect();
        positions.sort();
        positions
    }

    /// Hands every source its positions that are now durable.
    pub(super) fn acknowledge(&mut self) {
        for source in &mut self.sources {
            let durable: Vec<SourcePosition> = self
                .last_positions
                .iter()
                .filter(|p| p.source == source.name())
                .cloned()
                .collect();
            source.acknowledge(&durable);
        }
    }

    /// Adds a stored batch to the node's totals for `/metrics`.
    fn publish_totals(&self, batch: &FlushBatch) {
        let mut totals = self.stats.node_totals.lock().expect("lock");
        for month in &batch.months {
            totals.add(month.month, &month.counter_deltas);
            totals.add_clients(&month.dims);
        }
        totals.current_month = Some(current_month_users(&self.agg.hlls));
        totals.current_month_clients = Some(current_month_users(&self.agg.clients));
    }
}

/// Test hook (`AUTHSTAT_TEST_ABORT_BEFORE_ACK=1`): the process aborts right after a flush that
/// stored counts, before the sources hear that it is durable (a queue source's messages are
/// then stored but not acknowledged). For the crash tests only: compiled only with the
/// `test-hooks` feature.
#[cfg(feature = "test-hooks")]
fn abort_before_acknowledging() -> bool {
    static SET: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SET.get_or_init(|| std::env::var_os("AUTHSTAT_TEST_ABORT_BEFORE_ACK").is_some())
}

#[cfg(not(feature = "test-hooks"))]
fn abort_before_acknowledging() -> bool {
    false
}
