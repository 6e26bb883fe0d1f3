//! Reading: the sources scanned for new inputs and problems, and slices of records read into
//! the aggregate (in parallel when the sources allow).

use std::sync::atomic::Ordering;

use authstat_core::ingest::{Deriver, ParseErrorKind};
use authstat_core::source::SourceEvent;
use tracing::{info, warn};

use super::aggregate::{Aggregate, SkipLog, skipped};
use super::*;

impl Pipeline {
    pub(super) fn scan(&mut self) {
        if self.fenced {
            return;
        }
        for source in &mut self.sources {
            let problems = source.poll();
            let name = source.name();
            self.followed.observe(name, source.inputs());
            let known = self
                .stats
                .health
                .source_problems
                .lock()
                .expect("lock")
                .get(name)
                .cloned();
            self.stats
                .health
                .record_source_errors(name, &problems, true);
            if !problems.is_empty() {
                let now = self.stats.health.source_problems.lock().expect("lock")[name].clone();
                // Said once per new problem, not at every scan.
                if known.as_ref() != Some(&now) {
                    warn!(source = name, problem = %now, "cannot read a configured path");
                }
            } else if known.is_some() {
                info!(source = name, "the source's paths can be read again");
            }
        }
        let waiting = self.claims.settle(&mut self.sources);
        self.stats
            .reading
            .claims_waiting
            .store(waiting, Ordering::Relaxed);
        let statuses: Vec<(String, authstat_core::source::SourceStatus)> = self
            .sources
            .iter()
            .map(|s| (s.name().to_owned(), s.status()))
            .collect();
        let (open, lag) = statuses
            .iter()
            .fold((0, 0), |(o, l), (_, s)| (o + s.open, l + s.lag));
        *self.stats.reading.open_by_source.lock().expect("lock") = statuses
            .into_iter()
            .map(|(name, s)| (name, s.open))
            .collect();
        self.stats.reading.files.store(open, Ordering::Relaxed);
        self.stats.reading.lag_bytes.store(lag, Ordering::Relaxed);
    }

    /// Reads up to a slice of bytes; true if anything was read.
    pub(super) fn read_some(&mut self) -> bool {
        if self.fenced {
            return false;
        }
        // Backpressure: while a flush is failing, stop reading past the limit.
        if self.pending.is_some() && unflushed(&self.agg, &self.parts) >= self.max_pending_records {
            return false;
        }
        // While a batch waits for the backend, read in small slices so that the limit holds
        // closely.
        let budget = if self.pending.is_some() {
            64 << 10
        } else if self.threads > 1 {
            // The threads read this much in all before they meet again (to merge their counts
            // and show progress); the fewer the meetings, the less a thread waits for another.
            (64 << 20) * self.threads
        } else {
            8 << 20
        };
        let mut total = 0;
        if self.threads > 1 && self.parts.is_empty() {
            self.parts = (0..self.threads)
                .map(|_| (self.agg.empty_like(), SkipLog::default()))
                .collect();
        }
        let parts = &mut self.parts;
        let agg = &mut self.agg;
        let deriver = self.deriver.as_ref();
        let stats = &self.stats;
        let log = &mut self.skip_log;
        let newest_ms = now_ms().saturating_add(self.max_future_ms);
        for source in &mut self.sources {
            let name = source.name().to_owned();
            let take = Take {
                deriver,
                stats,
                name: &name,
                newest_ms,
            };
            let records_before = unflushed(agg, parts);
            let (n, errors) = if parts.is_empty() {
                source.read(budget, &mut |event| take.event(event, agg, log))
            } else {
                // Each thread counts into its own part; sums and HLL unions do not depend on
                // the order in which the parts are added up.
                let take = &take;
                let mut sinks: Vec<_> = parts
                    .iter_mut()
                    .map(|(part, log)| move |event: SourceEvent<'_>| take.event(event, part, log))
                    .collect();
                let mut refs: Vec<&mut (dyn FnMut(SourceEvent<'_>) + Send)> = sinks
                    .iter_mut()
                    .map(|s| s as &mut (dyn FnMut(SourceEvent<'_>) + Send))
                    .collect();
                source.read_parallel(budget, &mut refs)
            };
            stats
                .reading
                .records
                .fetch_add(unflushed(agg, parts) - records_before, Ordering::Relaxed);
            for e in &errors {
                warn!(source = %name, error = %e, "reading failed");
            }
            stats.health.record_source_errors(&name, &errors, false);
            total += n;
        }
        self.stats
            .reading
            .bytes
            .fetch_add(total as u64, Ordering::Relaxed);
        total > 0
    }
}

/// The records counted since the last flush, by the pipeline and its reading threads.
fn unflushed(agg: &Aggregate, parts: &[(Aggregate, SkipLog)]) -> u64 {
    agg.records + parts.iter().map(|(part, _)| part.records).sum::<u64>()
}

/// What an event read from a source does: counted and derived into an aggregate, or skipped
/// and counted by reason.
struct Take<'a> {
    deriver: &'a dyn Deriver,
    stats: &'a PipelineStats,
    name: &'a str,
    /// Later than this is too far in the future.
    newest_ms: i64,
}

impl Take<'_> {
    fn event(&self, event: SourceEvent<'_>, agg: &mut Aggregate, log: &mut SkipLog) {
        let (stats, name) = (self.stats, self.name);
        match event {
            SourceEvent::Record {
                parsed: Ok(event),
                origin,
            } => {
                // Too far in the future (a clock gone wrong), or a month that cannot be told:
                // skipped, counted.
                // (`agg.records` is added to the shared count once per read, not per record:
                // an atomic shared by reading threads would bounce between their cores.)
                let counted = event.timestamp() <= self.newest_ms && {
                    agg.records += 1;
                    self.deriver.derive(&event, agg).is_ok()
                };
                if !counted {
                    skipped(stats, log, name, ParseErrorKind::BadTimestamp, origin);
                }
            }
            SourceEvent::Record {
                parsed: Err(e),
                origin,
            } => skipped(stats, log, name, e.kind, origin),
            SourceEvent::Skipped { kind, origin } => skipped(stats, log, name, kind, origin),
            SourceEvent::Snapshot(snapshot) => agg.add_snapshot(snapshot),
        }
    }
}
