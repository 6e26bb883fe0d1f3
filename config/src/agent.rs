//! The whole configuration file.

use std::net::SocketAddr;

use authstat_core::NodeId;
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{HllParams, MAX_LOG2M, MAX_REGWIDTH, MIN_LOG2M, MIN_REGWIDTH};
use serde::{Deserialize, Deserializer, Serialize};

use crate::BackendConfig;
use crate::api::ApiConfig;
use crate::export::ExportConfig;
use crate::source::SourceConfig;
use crate::values::{optional_positive_u64, positive_u64};

/// The agent's configuration: one YAML file. Every key is optional except `sources`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This agent's node id, unique among the agents sharing a backend (default: the host name).
    #[serde(default)]
    pub node_id: Option<NodeId>,
    /// Where the HTTP API listens.
    #[serde(default = "default_listen_addr")]
    pub listen_addr: SocketAddr,
    /// How often aggregated statistics are written to the backend, in seconds.
    #[serde(
        default = "default_flush_interval_secs",
        deserialize_with = "positive_u64"
    )]
    pub flush_interval_secs: u64,
    /// Reading pauses (backpressure) while this many records wait for a flush that cannot
    /// reach the backend; nothing is dropped.
    #[serde(
        default = "default_max_pending_records",
        deserialize_with = "positive_u64"
    )]
    pub max_pending_records: u64,
    /// How long the final flush may take at shutdown before the agent exits anyway, in seconds
    /// (unflushed data is then read again at the next start: nothing is lost).
    #[serde(
        default = "default_shutdown_grace_secs",
        deserialize_with = "positive_u64"
    )]
    pub shutdown_grace_secs: u64,
    /// How long this agent's claim on its node id lasts without a flush, in seconds (default:
    /// 60, or three flush intervals if that is longer). Flushes renew it; a second agent with
    /// the same node id is refused while it lasts, and may take the node over once it expired.
    #[serde(default, deserialize_with = "optional_positive_u64")]
    pub node_lease_secs: Option<u64>,
    /// Records stamped further in the future than this are skipped and counted as
    /// `bad_timestamp`, in seconds (a clock gone wrong must not create statistics for years
    /// that have not come).
    #[serde(default = "default_max_future_secs")]
    pub max_future_secs: u64,
    /// The rows of nodes that have not flushed for this long (and hold no live lease) are
    /// folded into one row per month, in seconds (default: 30 days; 0: never). Node ids churn
    /// in Kubernetes; folding keeps reads proportional to the months, not to every node id
    /// ever seen (docs/storage.md, "Folding silent nodes").
    #[serde(default = "default_fold_silent_nodes_after_secs")]
    pub fold_silent_nodes_after_secs: u64,
    /// The active users of each day are kept for at least this many days (31–3,660, default
    /// 400; whole months older than that are removed). Months are kept forever.
    #[serde(
        default = "default_daily_retention_days",
        deserialize_with = "daily_retention_days"
    )]
    pub daily_retention_days: u32,
    /// The files to read.
    pub sources: Vec<SourceConfig>,
    /// Where statistics are stored.
    #[serde(default = "default_backend")]
    pub backend: BackendConfig,
    /// The HyperLogLog of monthly active users.
    #[serde(default)]
    pub hll: HllConfig,
    /// How events become statistics.
    #[serde(default)]
    pub derive: DeriveConfig,
    /// The HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Pushing metrics to collectors.
    #[serde(default)]
    pub export: ExportConfig,
    /// Logging.
    #[serde(default)]
    pub logging: LoggingConfig,
}

impl AgentConfig {
    /// The node lease in seconds: `node_lease_secs`, or 60 s or three flush intervals.
    pub fn node_lease_secs(&self) -> u64 {
        self.node_lease_secs
            .unwrap_or_else(|| 60.max(self.flush_interval_secs.saturating_mul(3)))
    }
}

/// The HLL of monthly active users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HllConfig {
    /// log2 of the number of registers (4–30); Janssen uses 15.
    #[serde(default = "default_log2m", deserialize_with = "log2m")]
    pub log2m: u8,
    /// Bits per register (1–8); Janssen uses 5.
    #[serde(default = "default_regwidth", deserialize_with = "regwidth")]
    pub regwidth: u8,
    /// How user names are hashed: `murmur3` (default, what postgresql-hll uses) or
    /// `java_string_hashcode` (Janssen's; only to union with HLLs Janssen wrote).
    #[serde(default)]
    pub hash: HashAlgorithm,
}

impl Default for HllConfig {
    fn default() -> Self {
        Self {
            log2m: 15,
            regwidth: 5,
            hash: HashAlgorithm::Murmur3,
        }
    }
}

impl HllConfig {
    /// The HLL parameters (java-hll's defaults for the rest).
    pub fn params(&self) -> HllParams {
        HllParams::new(self.log2m, self.regwidth).expect("validated when deserialized")
    }
}

/// Which audit records count as what (see `docs/metrics.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeriveConfig {
    /// Which `USER_AUTHORIZATION` records with `success: false` count as failed
    /// authentications: `with_username` (default: Janssen logs a username-less failure for every
    /// redirect to the login page) or `all`.
    #[serde(default)]
    pub failed_authentication: FailedAuthRule,
    /// Actions whose successful records make their `username` an active user.
    #[serde(default = "default_active_user_actions")]
    pub active_user_actions: Vec<String>,
    /// Keycloak events of these realms only (by name or id); empty (the default): every realm.
    #[serde(default)]
    pub keycloak_realms: Vec<String>,
    /// Statistics per client (application) and per realm.
    #[serde(default)]
    pub per_client: PerClientConfig,
}

impl Default for DeriveConfig {
    fn default() -> Self {
        Self {
            failed_authentication: FailedAuthRule::default(),
            active_user_actions: default_active_user_actions(),
            keycloak_realms: Vec::new(),
            per_client: PerClientConfig::default(),
        }
    }
}

/// Statistics per client and per realm (`docs/metrics.md`, "Per client").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerClientConfig {
    /// Keep them (default true).
    #[serde(default = "crate::values::yes")]
    pub enabled: bool,
    /// At most this many distinct clients (and, apart, realms) per node and month (1–1,000,000,
    /// default 10,000); the rest is counted together as `other_clients`.
    #[serde(
        default = "default_max_clients_per_month",
        deserialize_with = "max_clients_per_month"
    )]
    pub max_per_month: u32,
    /// Also each client's active users per UTC day, for `group_by=client` on
    /// `/authstat/v1/active-users` (default false: a row per client and day).
    #[serde(default)]
    pub daily: bool,
    /// Per-client series on `/metrics` and OTLP (default false: their cardinality is the
    /// number of clients).
    #[serde(default)]
    pub metrics: bool,
    /// At most this many clients get series, the first seen (1–10,000, default 100).
    #[serde(
        default = "default_max_metric_clients",
        deserialize_with = "max_metric_clients"
    )]
    pub max_metric_clients: u32,
}

impl Default for PerClientConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_per_month: default_max_clients_per_month(),
            daily: false,
            metrics: false,
            max_metric_clients: default_max_metric_clients(),
        }
    }
}

fn default_daily_retention_days() -> u32 {
    400
}

fn daily_retention_days<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if !(31..=3660).contains(&v) {
        return Err(serde::de::Error::custom(format!(
            "{v} is outside 31..=3660"
        )));
    }
    Ok(v)
}

fn default_max_clients_per_month() -> u32 {
    10_000
}

fn default_max_metric_clients() -> u32 {
    100
}

fn bounded_u32<'de, D: Deserializer<'de>>(d: D, max: u32) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if !(1..=max).contains(&v) {
        return Err(serde::de::Error::custom(format!(
            "{v} is outside 1..={max}"
        )));
    }
    Ok(v)
}

fn max_clients_per_month<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    bounded_u32(d, 1_000_000)
}

fn max_metric_clients<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    bounded_u32(d, 10_000)
}

/// See [`DeriveConfig::failed_authentication`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailedAuthRule {
    /// Only failures that carry a username.
    #[default]
    WithUsername,
    /// Every `success: false` record.
    All,
}

/// Logging.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a filter like `info,authstat=debug`;
    /// `RUST_LOG` wins when set.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `text` (for terminals) or `json`.
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: LogFormat::default(),
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn default_listen_addr() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("valid")
}
fn default_flush_interval_secs() -> u64 {
    10
}
fn default_shutdown_grace_secs() -> u64 {
    20
}
fn default_max_pending_records() -> u64 {
    1_000_000
}
fn default_fold_silent_nodes_after_secs() -> u64 {
    30 * 86_400
}
fn default_max_future_secs() -> u64 {
    86_400
}
fn default_backend() -> BackendConfig {
    let mut options = serde_yaml::Mapping::new();
    options.insert("path".into(), "/var/lib/authstat/authstat.db".into());
    BackendConfig {
        kind: "sqlite".into(),
        options,
    }
}
fn default_log2m() -> u8 {
    15
}
fn default_regwidth() -> u8 {
    5
}
fn default_active_user_actions() -> Vec<String> {
    vec!["USER_AUTHORIZATION".into(), "TOKEN_REQUEST".into()]
}
fn default_log_level() -> String {
    "info".into()
}

fn log2m<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let v = u8::deserialize(d)?;
    if !(MIN_LOG2M..=MAX_LOG2M).contains(&v) {
        return Err(serde::de::Error::custom(format!(
            "{v} is outside {MIN_LOG2M}..={MAX_LOG2M}"
        )));
    }
    Ok(v)
}

fn regwidth<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let v = u8::deserialize(d)?;
    if !(MIN_REGWIDTH..=MAX_REGWIDTH).contains(&v) {
        return Err(serde::de::Error::custom(format!(
            "{v} is outside {MIN_REGWIDTH}..={MAX_REGWIDTH}"
        )));
    }
    Ok(v)
}
