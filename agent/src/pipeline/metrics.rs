//! The pipeline's metric families and its collector: this node's stored statistics and the
//! health of reading, flushing, folding and snapshots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authstat_core::counters::CounterKey;
use authstat_core::ingest::ParseErrorKind;
use authstat_core::metrics::{
    BACKEND_ERRORS, Collector, Families, Family, HistogramValue, Sample, Value,
};

use super::PipelineStats;

authstat_core::family!(
    AUTHORIZATIONS,
    "authstat_authorizations_total",
    Counter,
    "{record}",
    true,
    ["action", "outcome"],
    "Audit records of this node by action and outcome, all months (stored)."
);

authstat_core::family!(
    AUTHENTICATIONS,
    "authstat_authentications_total",
    Counter,
    "{authentication}",
    true,
    ["outcome"],
    "User authentications of this node by outcome, by the configured rule, all months (stored)."
);

authstat_core::family!(
    TOKENS_ISSUED,
    "authstat_tokens_issued_total",
    Counter,
    "{token}",
    true,
    ["grant_type", "token_type"],
    "Tokens issued on this node by grant type and token type, all months (stored)."
);

authstat_core::family!(
    MONTHLY_ACTIVE_USERS,
    "authstat_monthly_active_users",
    Gauge,
    "{user}",
    true,
    ["month"],
    "Distinct active users of the current month on this node (stored)."
);

authstat_core::family!(
    MONTHLY_ACTIVE_CLIENTS,
    "authstat_monthly_active_clients",
    Gauge,
    "{client}",
    true,
    ["month"],
    "Distinct active clients (of successful authorizations and token requests) of the current month on this node (stored)."
);

authstat_core::family!(
    RECORDS_READ,
    "authstat_records_read_total",
    Counter,
    "{record}",
    true,
    [],
    "Records read and parsed."
);

authstat_core::family!(
    RECORDS_SKIPPED,
    "authstat_records_skipped_total",
    Counter,
    "{record}",
    true,
    ["reason"],
    "Records or bytes skipped, by reason."
);

authstat_core::family!(
    READ_BYTES,
    "authstat_read_bytes_total",
    Counter,
    "By",
    true,
    [],
    "Bytes read from the sources."
);

authstat_core::family!(
    FILES_WATCHED,
    "authstat_files_watched",
    Gauge,
    "{file}",
    true,
    [],
    "Inputs the sources have open (files followed)."
);

authstat_core::family!(
    LAG,
    "authstat_checkpoint_lag_bytes",
    Gauge,
    "By",
    true,
    [],
    "Input written but not read yet (bytes of the followed files)."
);

authstat_core::family!(
    FLUSH_DURATION,
    "authstat_flush_duration_seconds",
    Histogram,
    "s",
    true,
    [],
    "Duration of flushes to the backend."
);

authstat_core::family!(
    FLUSHES,
    "authstat_flushes_total",
    Counter,
    "{flush}",
    true,
    ["result"],
    "Flushes to the backend by result."
);

authstat_core::family!(
    FOLDS,
    "authstat_folds_total",
    Counter,
    "{fold}",
    true,
    ["result"],
    "Folds of silent nodes this agent ran, by result (folded, nothing, failure)."
);

authstat_core::family!(
    FOLDED_NODES,
    "authstat_folded_nodes_total",
    Counter,
    "{node}",
    true,
    [],
    "Silent nodes whose rows this agent folded into the folded row."
);

authstat_core::family!(
    SOURCE_INPUTS,
    "authstat_source_inputs",
    Gauge,
    "{input}",
    true,
    ["source"],
    "Inputs open now per source: files followed, or 1 while a queue source (activemq) is connected and 0 while it is not."
);

authstat_core::family!(
    JANSSEN_USERS,
    "authstat_janssen_monthly_active_users",
    Gauge,
    "{user}",
    true,
    ["month"],
    "Distinct active users of the current month in the Janssen statistics rows this agent read (janssen_stat_entries; Janssen's own count, unioned over its nodes)."
);

authstat_core::family!(
    JANSSEN_TOKENS,
    "authstat_janssen_tokens_issued",
    Gauge,
    "{token}",
    true,
    ["month", "grant_type", "token_type"],
    "Tokens issued in the current month by grant type and token type, in the Janssen statistics rows this agent read (janssen_stat_entries)."
);

authstat_core::family!(
    SNAPSHOTS,
    "authstat_snapshots_total",
    Counter,
    "{snapshot}",
    true,
    ["result"],
    "Snapshots of Janssen statistics rows this agent stored, by result (applied, stale: a newer one was stored, failure: retried, rejected)."
);

authstat_core::family!(
    NODE_FENCED,
    "authstat_node_fenced",
    Gauge,
    "",
    true,
    [],
    "1 when another agent took this node id over: this agent has stopped reading."
);

authstat_core::family!(
    FLUSH_FAILURES_IN_A_ROW,
    "authstat_flush_failures_in_a_row",
    Gauge,
    "{flush}",
    true,
    [],
    "Flushes that failed since the last one that was stored (0: the last flush was stored). What was read is kept and retried."
);

authstat_core::family!(
    FLUSH_WAITING,
    "authstat_flush_waiting_seconds",
    Gauge,
    "s",
    true,
    [],
    "How long the flush under way has waited on the backend (0 between flushes)."
);

authstat_core::family!(
    SOURCE_ERRORS,
    "authstat_source_errors_total",
    Counter,
    "{error}",
    true,
    ["source", "reason"],
    "Errors reading a configured input, by source and reason."
);

authstat_core::family!(
    CLAIMS_WAITING,
    "authstat_file_claims_waiting",
    Gauge,
    "{file}",
    true,
    [],
    "Inputs not read yet because `authstat backfill` is reading them."
);

/// One sample without labels.
pub(crate) fn one(value: u64) -> Vec<Sample> {
    vec![Sample::int(Vec::new(), value)]
}

/// Samples from (label values, value) rows.
pub(crate) fn labelled<const N: usize>(
    rows: impl IntoIterator<Item = ([String; N], u64)>,
) -> Vec<Sample> {
    rows.into_iter()
        .map(|(labels, n)| Sample::int(labels.into(), n))
        .collect()
}

pub(super) fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn outcomes<const N: usize>(rows: [(&str, &AtomicU64); N]) -> Vec<Sample> {
    labelled(rows.map(|(outcome, n)| ([outcome.to_owned()], load(n))))
}

/// The families that count this node's stored statistics: continued from the backend, so they
/// never restart with the process.
const STORED: [&Family; 3] = [&AUTHORIZATIONS, &AUTHENTICATIONS, &TOKENS_ISSUED];

impl Collector for PipelineStats {
    fn collect(&self, out: &mut Families) {
        self.statistics(out);
        self.reading_and_flushing(out);
        self.health_families(out);
    }

    /// This node's stored statistics started counting at the first instant of the node's
    /// earliest month with counts (the same after every restart, so a cumulative series stays
    /// one series).
    fn start_time(&self, family: &Family) -> Option<SystemTime> {
        if !STORED.iter().any(|f| std::ptr::eq(*f, family)) {
            return None;
        }
        let month = self.node_totals.lock().expect("lock").first_month?;
        let millis = u64::try_from(month.start_epoch_millis()).unwrap_or(0);
        Some(UNIX_EPOCH + Duration::from_millis(millis))
    }
}

impl PipelineStats {
    /// This node's stored statistics and the Janssen rows' current month.
    fn statistics(&self, out: &mut Families) {
        let totals = self.node_totals.lock().expect("lock").clone();
        let counters = &totals.counters;
        out.push((
            &AUTHORIZATIONS,
            labelled(counters.iter().filter_map(|(k, n)| match k {
                CounterKey::Audit { action, outcome } => {
                    Some(([action.as_str().to_owned(), outcome.as_str().to_owned()], n))
                }
                _ => None,
            })),
        ));
        out.push((
            &AUTHENTICATIONS,
            labelled(counters.iter().filter_map(|(k, n)| match k {
                CounterKey::Authentication(outcome) => Some(([outcome.as_str().to_owned()], n)),
                _ => None,
            })),
        ));
        out.push((
            &TOKENS_ISSUED,
            labelled(
                counters
                    .tokens
                    .iter()
                    .map(|(g, t, n)| ([g.to_owned(), t.to_owned()], n)),
            ),
        ));
        super::client_metrics::client_series(&totals, out);
        out.push((
            &MONTHLY_ACTIVE_USERS,
            labelled(totals.current_month.map(|(m, u)| ([m.to_string()], u))),
        ));
        out.push((
            &MONTHLY_ACTIVE_CLIENTS,
            labelled(
                totals
                    .current_month_clients
                    .map(|(m, c)| ([m.to_string()], c)),
            ),
        ));
        let janssen = self.snapshots.current_month.lock().expect("lock").totals();
        if let Some((month, users, counters)) = janssen {
            out.push((&JANSSEN_USERS, labelled([([month.to_string()], users)])));
            out.push((
                &JANSSEN_TOKENS,
                labelled(
                    counters
                        .tokens
                        .iter()
                        .map(|(g, t, n)| ([month.to_string(), g.to_owned(), t.to_owned()], n)),
                ),
            ));
        }
    }

    /// Reading, flushing, folds and snapshots.
    fn reading_and_flushing(&self, out: &mut Families) {
        let (r, f) = (&self.reading, &self.flushing);
        let skipped = ParseErrorKind::ALL
            .iter()
            .map(|k| ([k.as_str().to_owned()], load(&r.skipped_by_kind[k.index()])));
        let histogram = f.seconds.lock().expect("lock").clone();
        let inputs = r.open_by_source.lock().expect("lock").clone();
        out.extend([
            (&RECORDS_READ, one(load(&r.records))),
            (&RECORDS_SKIPPED, labelled(skipped)),
            super::client_metrics::set_apart(r),
            (&READ_BYTES, one(load(&r.bytes))),
            (&FILES_WATCHED, one(load(&r.files))),
            (
                &SOURCE_INPUTS,
                labelled(inputs.into_iter().map(|(s, n)| ([s], n))),
            ),
            (&LAG, one(load(&r.lag_bytes))),
            (
                &FLUSH_DURATION,
                vec![Sample {
                    labels: Vec::new(),
                    value: Value::Histogram(HistogramValue {
                        bounds: histogram.bounds.to_vec(),
                        counts: histogram.counts,
                        over: histogram.over,
                        sum: histogram.sum,
                    }),
                }],
            ),
            (
                &FLUSHES,
                outcomes([
                    ("success", &f.applied),
                    ("failure", &f.failed),
                    ("fenced", &f.fenced),
                ]),
            ),
            (&BACKEND_ERRORS, one(load(&f.failed))),
        ]);
        let (fo, s) = (&self.folding, &self.snapshots);
        out.extend([
            (
                &FOLDS,
                outcomes([
                    ("folded", &fo.folded),
                    ("nothing", &fo.nothing),
                    ("failure", &fo.failed),
                ]),
            ),
            (&FOLDED_NODES, one(load(&fo.nodes))),
            (
                &SNAPSHOTS,
                outcomes([
                    ("applied", &s.applied),
                    ("stale", &s.stale),
                    ("failure", &s.failed),
                    ("rejected", &s.rejected),
                ]),
            ),
        ]);
    }

    /// Fencing, failing and waiting flushes, sources' errors, claims waiting.
    fn health_families(&self, out: &mut Families) {
        let h = &self.health;
        let failing = h
            .flush_failing
            .lock()
            .expect("lock")
            .as_ref()
            .map_or(0, |f| f.failures);
        let source_errors = h.source_errors.lock().expect("lock").clone();
        out.extend([
            (
                &NODE_FENCED,
                one(u64::from(h.fenced.lock().expect("lock").is_some())),
            ),
            (&FLUSH_FAILURES_IN_A_ROW, one(failing)),
            (&FLUSH_WAITING, one(h.flush_waiting().as_secs())),
            (
                &SOURCE_ERRORS,
                labelled(source_errors.into_iter().map(|((s, r), n)| ([s, r], n))),
            ),
            (&CLAIMS_WAITING, one(load(&self.reading.claims_waiting))),
        ]);
    }
}
