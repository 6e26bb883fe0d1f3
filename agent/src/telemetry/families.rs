//! Every metric family the agent exposes, defined once: name, kind, unit, labels, help, and
//! whether OTLP pushes it.

use authstat_core::metrics::{Family, MetricKind};

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
