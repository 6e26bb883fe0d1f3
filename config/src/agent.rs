//! The whole configuration file.

use std::net::SocketAddr;
use std::path::PathBuf;

use authstat_core::NodeId;
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{HllParams, MAX_LOG2M, MAX_REGWIDTH, MIN_LOG2M, MIN_REGWIDTH};
use serde::{Deserialize, Deserializer, Serialize};

use crate::BackendConfig;
use crate::source::SourceConfig;

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
}

impl Default for DeriveConfig {
    fn default() -> Self {
        Self {
            failed_authentication: FailedAuthRule::default(),
            active_user_actions: default_active_user_actions(),
        }
    }
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

/// The HTTP API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve the stat endpoint (when false it answers 403, as Janssen does when the feature is off).
    #[serde(default = "yes")]
    pub stat_enabled: bool,
    /// The stat endpoint's path.
    #[serde(default = "default_stat_path")]
    pub stat_path: String,
    /// The Janssen-compatible health check's path.
    #[serde(default = "default_health_path")]
    pub health_path: String,
    /// The scope a bearer token must have.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// How long a response is reused for the same month list, in seconds (Janssen: 1 hour).
    #[serde(default = "default_cache_ttl_secs")]
    pub cache_ttl_secs: u64,
    /// A response that includes the current month is never older than this, in seconds.
    #[serde(default = "default_current_month_ttl_secs")]
    pub current_month_ttl_secs: u64,
    /// The most months one request may cover.
    #[serde(default = "default_max_months", deserialize_with = "positive_u64")]
    pub max_months: u64,
    /// A client must send its request headers, and the agent answer the whole request, within
    /// this many seconds (slow clients are cut off).
    #[serde(
        default = "default_request_timeout_secs",
        deserialize_with = "positive_u64"
    )]
    pub request_timeout_secs: u64,
    /// How bearer tokens are checked.
    #[serde(default)]
    pub auth: AuthConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}

/// How bearer tokens are checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "RawAuth")]
pub enum AuthConfig {
    /// Tokens listed here by their SHA-256 (never the token itself).
    Static {
        /// The accepted tokens.
        #[serde(default)]
        tokens: Vec<StaticToken>,
    },
    /// Access tokens that are JWTs, verified against the auth server's JWKS.
    Jwt(JwtConfig),
    /// RFC 7662 token introspection at the auth server.
    Introspection(IntrospectionConfig),
    /// No token is accepted: the stat endpoint answers 401 to everyone.
    #[default]
    Deny,
}

/// `api.auth` with `type: jwt`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtConfig {
    /// The auth server's JWKS (e.g. `https://auth.example.com/jans-auth/restv1/jwks`).
    pub jwks_uri: String,
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud`, if any.
    pub audience: Option<String>,
    /// Accepted algorithms (default RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384;
    /// HMAC and `none` are never accepted).
    pub algorithms: Vec<String>,
    /// Clock leeway for `exp` and `nbf`, in seconds (default 30).
    pub leeway_secs: u64,
    /// An unknown key id fetches the JWKS again, at most this often, in seconds (default 30).
    pub jwks_refresh_min_secs: u64,
    /// Timeout of a JWKS request, in seconds (default 5).
    pub timeout_secs: u64,
}

/// `api.auth` with `type: introspection`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectionConfig {
    /// The auth server's introspection endpoint.
    pub endpoint: String,
    /// This agent's client id at the auth server.
    pub client_id: String,
    /// Its secret (use `${VAR}`); never logged.
    pub client_secret: String,
    /// Timeout of an introspection request, in seconds (default 5).
    pub timeout_secs: u64,
    /// Answers are reused for at most this long and never past the token's `exp` (default 300).
    pub cache_max_secs: u64,
}

impl std::fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionConfig")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .finish_non_exhaustive()
    }
}

/// Algorithms the JWT authenticator can verify with public keys.
pub const JWT_ALGORITHMS: [&str; 8] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
];

/// The `api.auth` section as written (see `RawBackend` for why it is not a tagged enum).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(rename = "type")]
    kind: AuthKind,
    tokens: Option<Vec<StaticToken>>,
    jwks_uri: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    algorithms: Option<Vec<String>>,
    leeway_secs: Option<u64>,
    jwks_refresh_min_secs: Option<u64>,
    timeout_secs: Option<u64>,
    endpoint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    cache_max_secs: Option<u64>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AuthKind {
    Static,
    Jwt,
    Introspection,
    Deny,
}

impl TryFrom<RawAuth> for AuthConfig {
    type Error = String;

    fn try_from(raw: RawAuth) -> Result<Self, String> {
        let (name, allowed): (&str, &[&str]) = match raw.kind {
            AuthKind::Static => ("static", &["tokens"]),
            AuthKind::Deny => ("deny", &[]),
            AuthKind::Jwt => (
                "jwt",
                &[
                    "jwks_uri",
                    "issuer",
                    "audience",
                    "algorithms",
                    "leeway_secs",
                    "jwks_refresh_min_secs",
                    "timeout_secs",
                ],
            ),
            AuthKind::Introspection => (
                "introspection",
                &[
                    "endpoint",
                    "client_id",
                    "client_secret",
                    "timeout_secs",
                    "cache_max_secs",
                ],
            ),
        };
        let given = [
            ("tokens", raw.tokens.is_some()),
            ("jwks_uri", raw.jwks_uri.is_some()),
            ("issuer", raw.issuer.is_some()),
            ("audience", raw.audience.is_some()),
            ("algorithms", raw.algorithms.is_some()),
            ("leeway_secs", raw.leeway_secs.is_some()),
            ("jwks_refresh_min_secs", raw.jwks_refresh_min_secs.is_some()),
            ("timeout_secs", raw.timeout_secs.is_some()),
            ("endpoint", raw.endpoint.is_some()),
            ("client_id", raw.client_id.is_some()),
            ("client_secret", raw.client_secret.is_some()),
            ("cache_max_secs", raw.cache_max_secs.is_some()),
        ];
        if let Some((option, _)) = given.iter().find(|(o, set)| *set && !allowed.contains(o)) {
            return Err(format!(
                "`{option}` is not an option of auth type {name} (its options: {})",
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            ));
        }
        let need = |v: Option<String>, option: &str| {
            v.ok_or_else(|| format!("auth type {name} needs `{option}`"))
        };
        Ok(match raw.kind {
            AuthKind::Static => AuthConfig::Static {
                tokens: raw.tokens.unwrap_or_default(),
            },
            AuthKind::Deny => AuthConfig::Deny,
            AuthKind::Jwt => {
                let algorithms = raw
                    .algorithms
                    .unwrap_or_else(|| JWT_ALGORITHMS.map(String::from).to_vec());
                if let Some(bad) = algorithms
                    .iter()
                    .find(|a| !JWT_ALGORITHMS.contains(&a.as_str()))
                {
                    return Err(format!(
                        "algorithm `{bad}` cannot be verified with a JWKS (supported: {})",
                        JWT_ALGORITHMS.join(", ")
                    ));
                }
                AuthConfig::Jwt(JwtConfig {
                    jwks_uri: need(raw.jwks_uri, "jwks_uri")?,
                    issuer: need(raw.issuer, "issuer")?,
                    audience: raw.audience,
                    algorithms,
                    leeway_secs: raw.leeway_secs.unwrap_or(30),
                    jwks_refresh_min_secs: raw.jwks_refresh_min_secs.unwrap_or(30),
                    timeout_secs: raw.timeout_secs.unwrap_or(5).max(1),
                })
            }
            AuthKind::Introspection => AuthConfig::Introspection(IntrospectionConfig {
                endpoint: need(raw.endpoint, "endpoint")?,
                client_id: need(raw.client_id, "client_id")?,
                client_secret: need(raw.client_secret, "client_secret")?,
                timeout_secs: raw.timeout_secs.unwrap_or(5).max(1),
                cache_max_secs: raw.cache_max_secs.unwrap_or(300),
            }),
        })
    }
}

/// One accepted static token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticToken {
    /// Lower-case hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    #[serde(deserialize_with = "sha256_hex")]
    pub sha256: String,
    /// The token's scopes.
    pub scopes: Vec<String>,
    /// A name for logs (the token itself is never logged).
    #[serde(default)]
    pub name: Option<String>,
}

/// The `export:` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// OTLP push; absent: no push.
    #[serde(default)]
    pub otlp: Option<OtlpConfig>,
}

/// The OTLP transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// gRPC (port 4317 by convention).
    #[default]
    Grpc,
    /// HTTP with protobuf bodies (port 4318; the endpoint must end in `/v1/metrics`).
    HttpProtobuf,
}

/// OTLP compression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpCompression {
    /// None.
    #[default]
    None,
    /// gzip.
    Gzip,
}

/// `export.otlp`. Options left out here are taken from the standard `OTEL_EXPORTER_OTLP_*`
/// environment variables; values in this file win.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// `grpc` (default) or `http_protobuf`.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// The collector, e.g. `http://otel-collector:4317`; `https://` turns TLS on.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Extra request headers (gRPC metadata), e.g. an API key.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Timeout of one export, in seconds.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// `none` (default) or `gzip`.
    #[serde(default)]
    pub compression: OtlpCompression,
    /// How often metrics are pushed, in seconds.
    #[serde(
        default = "default_export_interval_secs",
        deserialize_with = "positive_u64"
    )]
    pub interval_secs: u64,
    /// The `service.name` resource attribute.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// More resource attributes.
    #[serde(default)]
    pub resource_attributes: std::collections::BTreeMap<String, String>,
    /// Also export the cluster-wide monthly active users read from the backend (enable it on
    /// one node only, so that collectors do not add it up).
    #[serde(default)]
    pub cluster_users: bool,
}

fn default_export_interval_secs() -> u64 {
    60
}
fn default_service_name() -> String {
    "jans-auth".into()
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

fn yes() -> bool {
    true
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
fn default_max_future_secs() -> u64 {
    86_400
}
fn default_backend() -> BackendConfig {
    BackendConfig::Sqlite(crate::SqliteConfig {
        path: PathBuf::from("/var/lib/authstat/authstat.db"),
        busy_timeout_ms: 5000,
        pool_size: 4,
    })
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
fn default_stat_path() -> String {
    "/jans-auth/restv1/internal/stat".into()
}
fn default_health_path() -> String {
    "/jans-auth/sys/health-check".into()
}
fn default_scope() -> String {
    "jans_stat".into()
}
fn default_cache_ttl_secs() -> u64 {
    3600
}
fn default_current_month_ttl_secs() -> u64 {
    60
}
fn default_request_timeout_secs() -> u64 {
    10
}
fn default_max_months() -> u64 {
    120
}
fn default_log_level() -> String {
    "info".into()
}

fn positive_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    if v == 0 {
        return Err(serde::de::Error::custom("must be greater than 0"));
    }
    Ok(v)
}

fn optional_positive_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    positive_u64(d).map(Some)
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

fn sha256_hex<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = String::deserialize(d)?;
    if v.len() != 64
        || !v
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(serde::de::Error::custom(
            "expected 64 lower-case hex digits (the SHA-256 of the token, not the token)",
        ));
    }
    Ok(v)
}
