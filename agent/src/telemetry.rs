//! The agent's metric registry: every family it exposes, defined once here, and the snapshot
//! that `/metrics` renders and the OTLP exporter pushes (see `authstat_core::metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authstat_core::Month;
use authstat_core::counters::CounterKey;
use authstat_core::ingest::ParseErrorKind;
use authstat_core::metrics::{Family, HistogramValue, MetricKind, Sample, Snapshot, Value};

use crate::api::ApiStats;
use crate::pipeline::PipelineStats;

macro_rules! family {
    ($id:ident, $name:literal, $kind:ident, $unit:literal, $pushed:literal, [$($label:literal),*], $help:literal) => {
        #[doc = $help]
        pub static $id: Family = Family {
            name: $name,
            kind: MetricKind::$kind,
            unit: $unit,
            help: $help,
            labels: &[$($label),*],
            pushed: $pushed,
        };
    };
}

family!(
    AUTHORIZATIONS,
    "authstat_authorizations_total",
    Counter,
    "{record}",
    true,
    ["action", "outcome"],
    "Audit records of this node by action and outcome, all months (stored)."
);
family!(
    AUTHENTICATIONS,
    "authstat_authentications_total",
    Counter,
    "{authentication}",
    true,
    ["outcome"],
    "User authentications of this node by outcome, by the configured rule, all months (stored)."
);
family!(
    TOKENS_ISSUED,
    "authstat_tokens_issued_total",
    Counter,
    "{token}",
    true,
    ["grant_type", "token_type"],
    "Tokens issued on this node by grant type and token type, all months (stored)."
);
family!(
    MONTHLY_ACTIVE_USERS,
    "authstat_monthly_active_users",
    Gauge,
    "{user}",
    true,
    ["month"],
    "Distinct active users of the current month on this node (stored)."
);
family!(
    CLUSTER_MONTHLY_ACTIVE_USERS,
    "authstat_cluster_monthly_active_users",
    Gauge,
    "{user}",
    true,
    ["month"],
    "Distinct active users of the current month over all nodes (from the backend; export.otlp.cluster_users)."
);
family!(
    RECORDS_READ,
    "authstat_records_read_total",
    Counter,
    "{record}",
    true,
    [],
    "Records read and parsed."
);
family!(
    RECORDS_SKIPPED,
    "authstat_records_skipped_total",
    Counter,
    "{record}",
    true,
    ["reason"],
    "Records or bytes skipped, by reason."
);
family!(
    READ_BYTES,
    "authstat_read_bytes_total",
    Counter,
    "By",
    true,
    [],
    "Bytes read from the sources."
);
family!(
    FILES_WATCHED,
    "authstat_files_watched",
    Gauge,
    "{file}",
    true,
    [],
    "Inputs the sources have open (files followed)."
);
family!(
    LAG,
    "authstat_checkpoint_lag_bytes",
    Gauge,
    "By",
    true,
    [],
    "Input written but not read yet (bytes of the followed files)."
);
family!(
    FLUSH_DURATION,
    "authstat_flush_duration_seconds",
    Histogram,
    "s",
    true,
    [],
    "Duration of flushes to the backend."
);
family!(
    FLUSHES,
    "authstat_flushes_total",
    Counter,
    "{flush}",
    true,
    ["result"],
    "Flushes to the backend by result."
);
family!(
    FOLDS,
    "authstat_folds_total",
    Counter,
    "{fold}",
    true,
    ["result"],
    "Folds of silent nodes this agent ran, by result (folded, nothing, failure)."
);
family!(
    FOLDED_NODES,
    "authstat_folded_nodes_total",
    Counter,
    "{node}",
    true,
    [],
    "Silent nodes whose rows this agent folded into the folded row."
);
family!(
    SOURCE_INPUTS,
    "authstat_source_inputs",
    Gauge,
    "{input}",
    true,
    ["source"],
    "Inputs open now per source: files followed, or 1 while a queue source (activemq) is connected and 0 while it is not."
);
family!(
    JANSSEN_USERS,
    "authstat_janssen_monthly_active_users",
    Gauge,
    "{user}",
    true,
    ["month"],
    "Distinct active users of the current month in the Janssen statistics rows this agent read (janssen_stat_entries; Janssen's own count, unioned over its nodes)."
);
family!(
    JANSSEN_TOKENS,
    "authstat_janssen_tokens_issued",
    Gauge,
    "{token}",
    true,
    ["month", "grant_type", "token_type"],
    "Tokens issued in the current month by grant type and token type, in the Janssen statistics rows this agent read (janssen_stat_entries)."
);
family!(
    SNAPSHOTS,
    "authstat_snapshots_total",
    Counter,
    "{snapshot}",
    true,
    ["result"],
    "Snapshots of Janssen statistics rows this agent stored, by result (applied, stale: a newer one was stored, failure: retried, rejected)."
);
family!(
    NODE_FENCED,
    "authstat_node_fenced",
    Gauge,
    "",
    true,
    [],
    "1 when another agent took this node id over: this agent has stopped reading."
);
family!(
    FLUSH_FAILURES_IN_A_ROW,
    "authstat_flush_failures_in_a_row",
    Gauge,
    "{flush}",
    true,
    [],
    "Flushes that failed since the last one that was stored (0: the last flush was stored). What was read is kept and retried."
);
family!(
    FLUSH_WAITING,
    "authstat_flush_waiting_seconds",
    Gauge,
    "s",
    true,
    [],
    "How long the flush under way has waited on the backend (0 between flushes)."
);
family!(
    TASK_PANICS,
    "authstat_task_panics_total",
    Counter,
    "{panic}",
    true,
    ["task"],
    "Tasks of the agent that panicked, by task. A panic is logged at ERROR and stops the agent (exit code 70): a supervisor restarts it from the stored positions."
);
family!(
    SOURCE_ERRORS,
    "authstat_source_errors_total",
    Counter,
    "{error}",
    true,
    ["source", "reason"],
    "Errors reading a configured input, by source and reason."
);
family!(
    CLAIMS_WAITING,
    "authstat_file_claims_waiting",
    Gauge,
    "{file}",
    true,
    [],
    "Inputs not read yet because `authstat backfill` is reading them."
);
family!(
    BACKEND_ERRORS,
    "authstat_backend_errors_total",
    Counter,
    "{error}",
    true,
    [],
    "Backend calls that failed (flushes and reads)."
);
family!(
    API_REQUESTS,
    "authstat_api_requests_total",
    Counter,
    "{request}",
    false,
    ["code"],
    "HTTP requests answered, by status code."
);
family!(
    API_CACHE,
    "authstat_api_cache_requests_total",
    Counter,
    "{request}",
    false,
    ["result"],
    "Stat requests by cache result."
);
family!(
    OTLP_EXPORTS,
    "authstat_otlp_exports_total",
    Counter,
    "{export}",
    false,
    ["result"],
    "OTLP exports by result (a failed one is superseded by the next)."
);

family!(
    BUILD_INFO,
    "authstat_build_info",
    Gauge,
    "",
    true,
    ["version", "commit", "build_date", "backends"],
    "1, labelled with this binary's version, commit, build date and compiled-in backends."
);

family!(
    API_CONNECTIONS,
    "authstat_api_connections",
    Gauge,
    "{connection}",
    false,
    [],
    "HTTP connections open now (at most api.max_connections)."
);
family!(
    API_CONNECTION_EVENTS,
    "authstat_api_connection_events_total",
    Counter,
    "{event}",
    false,
    ["event"],
    "Idle connections closed to make room (evicted), new ones closed because all were busy (refused), failed accepts (accept_error)."
);

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
                    crate::tasks::panics()
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
