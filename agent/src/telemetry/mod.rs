//! The agent's metric registry: every family it exposes, defined once here, and the snapshot
//! that `/metrics` renders and the OTLP exporter pushes (see `authstat_core::metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authstat_core::Month;
use authstat_core::counters::CounterKey;
use authstat_core::ingest::ParseErrorKind;
use authstat_core::metrics::{Family, HistogramValue, Sample, Snapshot, Value};

use crate::api::ApiStats;
use crate::pipeline::PipelineStats;

mod families;

pub use families::*;

/// Counters of the OTLP exporter.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Exports delivered.
    pub exports: AtomicU64,
    /// Exports that failed (dropped: the next one carries the cumulative totals).
    pub failures: AtomicU64,
}

/// Everything the families are read from.
#[derive(Debug)]
pub struct Telemetry {
    /// The pipeline's counters and this node's stored totals.
    pub pipeline: Arc<PipelineStats>,
    /// The API's counters.
    pub api: Arc<ApiStats>,
    /// The HTTP server's connections.
    pub connections: Arc<crate::http::ConnectionStats>,
    /// The OTLP exporter's counters, when it runs.
    pub export: Option<Arc<ExportStats>>,
    /// The cluster's distinct users of the current month, when `cluster_users` is on.
    pub cluster_users: Mutex<Option<(Month, u64)>>,
    /// When this process started counting.
    pub started: SystemTime,
}

fn one(value: u64) -> Vec<Sample> {
    vec![Sample::int(Vec::new(), value)]
}

fn labelled<const N: usize>(rows: impl IntoIterator<Item = ([String; N], u64)>) -> Vec<Sample> {
    rows.into_iter()
        .map(|(labels, n)| Sample::int(labels.into(), n))
        .collect()
}

type Families = Vec<(&'static Family, Vec<Sample>)>;

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The families that count this node's stored statistics: continued from the backend, so they
/// never restart with the process.
const STORED: [&Family; 3] = [&AUTHORIZATIONS, &AUTHENTICATIONS, &TOKENS_ISSUED];

impl Telemetry {
    /// When the series of `family` started counting: for this node's stored statistics the
    /// first instant of the node's earliest month with counts (the same after every restart, so
    /// a cumulative series stays one series); for everything else this process's start.
    pub fn start_time(&self, family: &Family) -> SystemTime {
        if STORED.iter().any(|f| std::ptr::eq(*f, family)) {
            let first = self.pipeline.node_totals.lock().expect("lock").first_month;
            if let Some(month) = first {
                let millis = u64::try_from(month.start_epoch_millis()).unwrap_or(0);
                return UNIX_EPOCH + Duration::from_millis(millis);
            }
        }
        self.started
    }

    /// Every family's samples now.
    pub fn snapshot(&self) -> Snapshot {
        let mut families = self.statistics();
        families.extend(self.health());
        Snapshot { families }
    }

    /// This node's stored statistics (and the cluster's users, when asked for).
    fn statistics(&self) -> Families {
        let p = &self.pipeline;
        let totals = p.node_totals.lock().expect("lock").clone();
        let counters = &totals.counters;
        let mut families = vec![
            (
                &AUTHORIZATIONS,
                labelled(counters.iter().filter_map(|(k, n)| match k {
                    CounterKey::Audit { action, outcome } => {
                        Some(([action.as_str().to_owned(), outcome.as_str().to_owned()], n))
                    }
                    _ => None,
                })),
            ),
            (
                &AUTHENTICATIONS,
                labelled(counters.iter().filter_map(|(k, n)| match k {
                    CounterKey::Authentication(outcome) => Some(([outcome.as_str().to_owned()], n)),
                    _ => None,
                })),
            ),
            (
                &TOKENS_ISSUED,
                labelled(
                    counters
                        .tokens
                        .iter()
                        .map(|(g, t, n)| ([g.to_owned(), t.to_owned()], n)),
                ),
            ),
            (
                &MONTHLY_ACTIVE_USERS,
                labelled(totals.current_month.map(|(m, u)| ([m.to_string()], u))),
            ),
        ];
        let janssen = p.snapshots.current_month.lock().expect("lock").totals();
        if let Some((month, users, counters)) = janssen {
            families.push((&JANSSEN_USERS, labelled([([month.to_string()], users)])));
            families.push((
                &JANSSEN_TOKENS,
                labelled(
                    counters
                        .tokens
                        .iter()
                        .map(|(g, t, n)| ([month.to_string(), g.to_owned(), t.to_owned()], n)),
                ),
            ));
        }
        if let Some((month, users)) = *self.cluster_users.lock().expect("lock") {
            families.push((
                &CLUSTER_MONTHLY_ACTIVE_USERS,
                labelled([([month.to_string()], users)]),
            ));
        }
        families
    }

    /// The agent's own health: reading, flushing, the API, the exporter.
    fn health(&self) -> Families {
        let p = &self.pipeline;
        let skipped = ParseErrorKind::ALL.iter().map(|k| {
            (
                [k.as_str().to_owned()],
                load(&p.reading.skipped_by_kind[k.index()]),
            )
        });
        let histogram = p.flushing.seconds.lock().expect("lock").clone();
        let source_errors = p.health.source_errors.lock().expect("lock").clone();
        let api = &self.api;
        let build = crate::build_info::INFO;
        let mut families: Families = vec![
            (
                &BUILD_INFO,
                labelled([(
                    [
                        build.version.to_owned(),
                        build.commit.to_owned(),
                        build.date.to_owned(),
                        build.backends().join(","),
                    ],
                    1,
                )]),
            ),
            (&RECORDS_READ, one(load(&p.reading.records))),
            (&RECORDS_SKIPPED, labelled(skipped)),
            (&READ_BYTES, one(load(&p.reading.bytes))),
            (&FILES_WATCHED, one(load(&p.reading.files))),
            (
                &SOURCE_INPUTS,
                labelled(
                    p.reading
                        .open_by_source
                        .lock()
                        .expect("lock")
                        .iter()
                        .map(|(s, n)| ([s.clone()], *n)),
                ),
            ),
            (&LAG, one(load(&p.reading.lag_bytes))),
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
                labelled([
                    (["success".to_owned()], load(&p.flushing.applied)),
                    (["failure".to_owned()], load(&p.flushing.failed)),
                    (["fenced".to_owned()], load(&p.flushing.fenced)),
                ]),
            ),
            (
                &FOLDS,
                labelled([
                    (["folded".to_owned()], load(&p.folding.folded)),
                    (["nothing".to_owned()], load(&p.folding.nothing)),
                    (["failure".to_owned()], load(&p.folding.failed)),
                ]),
            ),
            (&FOLDED_NODES, one(load(&p.folding.nodes))),
            (
                &SNAPSHOTS,
                labelled([
                    (["applied".to_owned()], load(&p.snapshots.applied)),
                    (["stale".to_owned()], load(&p.snapshots.stale)),
                    (["failure".to_owned()], load(&p.snapshots.failed)),
                    (["rejected".to_owned()], load(&p.snapshots.rejected)),
                ]),
            ),
            (
                &NODE_FENCED,
                one(u64::from(p.health.fenced.lock().expect("lock").is_some())),
            ),
            (
                &FLUSH_FAILURES_IN_A_ROW,
                one(p
                    .health
                    .flush_failing
                    .lock()
                    .expect("lock")
                    .as_ref()
                    .map_or(0, |f| f.failures)),
            ),
            (&FLUSH_WAITING, one(p.health.flush_waiting().as_secs())),
            (
                &TASK_PANICS,
                labelled(
                    authstat_runtime::tasks::panics()
                        .into_iter()
                        .map(|(task, n)| ([task.to_owned()], n)),
                ),
            ),
            (
                &SOURCE_ERRORS,
                labelled(source_errors.into_iter().map(|((s, r), n)| ([s, r], n))),
            ),
            (&CLAIMS_WAITING, one(load(&p.reading.claims_waiting))),
            (&API_CONNECTIONS, one(load(&self.connections.open))),
            (
                &API_CONNECTION_EVENTS,
                labelled([
                    (["evicted".to_owned()], load(&self.connections.evicted)),
                    (["refused".to_owned()], load(&self.connections.refused)),
                    (
                        ["accept_error".to_owned()],
                        load(&self.connections.accept_errors),
                    ),
                ]),
            ),
            (
                &BACKEND_ERRORS,
                one(load(&p.flushing.failed) + load(&api.backend_errors)),
            ),
            (
                &API_REQUESTS,
                labelled(
                    api.requests
                        .lock()
                        .expect("lock")
                        .iter()
                        .map(|(code, n)| ([code.to_string()], *n)),
                ),
            ),
            (
                &API_CACHE,
                labelled([
                    (["hit".to_owned()], load(&api.cache_hits)),
                    (["miss".to_owned()], load(&api.cache_misses)),
                ]),
            ),
        ];
        if let Some(export) = &self.export {
            families.push((
                &OTLP_EXPORTS,
                labelled([
                    (["success".to_owned()], load(&export.exports)),
                    (["failure".to_owned()], load(&export.failures)),
                ]),
            ));
        }
        families
    }
}
