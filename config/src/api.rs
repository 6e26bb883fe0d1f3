//! The `api:` section: paths, scope, caching, limits and how bearer tokens are checked.

use serde::{Deserialize, Deserializer, Serialize};

use crate::values::{positive_u64, yes};

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
    /// The most HTTP connections open at once (at most a quarter of the limit of open files is
    /// used). At the cap, the oldest idle connection is closed to make room.
    #[serde(
        default = "default_max_connections",
        deserialize_with = "positive_usize"
    )]
    pub max_connections: usize,
    /// How requests to the stat endpoint are authorized: bearer tokens, or client certificates.
    #[serde(default)]
    pub auth: AuthConfig,
    /// HTTPS (docs/tls.md); without it, plain HTTP.
    #[serde(default)]
    pub tls: Option<crate::ApiTlsConfig>,
    /// The built-in dashboard page.
    #[serde(default)]
    pub dashboard: DashboardConfig,
}

/// `api.dashboard`: the statistics as a page (docs/dashboard.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// Serve it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Its path.
    #[serde(default = "default_dashboard_path")]
    pub path: String,
    /// The scope a token must have to log in (default: `api.scope`).
    #[serde(default)]
    pub scope: Option<String>,
    /// How long a login lasts, in seconds.
    #[serde(
        default = "default_session_ttl_secs",
        deserialize_with = "positive_u64"
    )]
    pub session_ttl_secs: u64,
    /// Serve it without any login. Only behind access control of your own (a port-forward, a
    /// proxy that authenticates).
    #[serde(default)]
    pub anonymous: bool,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}

fn default_dashboard_path() -> String {
    "/dashboard".into()
}

fn default_session_ttl_secs() -> u64 {
    3600
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
    /// No token: a client certificate (verified against `api.tls.client_ca_file`) whose
    /// subject is listed here has the stat scope.
    ClientCert {
        /// Subjects as RFC 4514 writes them (`openssl x509 -noout -subject -nameopt RFC2253`).
        allowed_subjects: Vec<String>,
    },
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
    /// Accepted algorithms (default RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA;
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
pub const JWT_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
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
    allowed_subjects: Option<Vec<String>>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AuthKind {
    Static,
    Jwt,
    Introspection,
    ClientCert,
    Deny,
}

impl AuthKind {
    /// The name and the options of this auth type.
    fn options(&self) -> (&'static str, &'static [&'static str]) {
        match self {
            AuthKind::Static => ("static", &["tokens"]),
            AuthKind::Deny => ("deny", &[]),
            AuthKind::ClientCert => ("client_cert", &["allowed_subjects"]),
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
        }
    }
}

impl TryFrom<RawAuth> for AuthConfig {
    type Error = String;

    fn try_from(raw: RawAuth) -> Result<Self, String> {
        let (name, allowed) = raw.kind.options();
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
            ("allowed_subjects", raw.allowed_subjects.is_some()),
        ];
        crate::values::only_options("auth", name, allowed, &given)?;
        let need = |v: Option<String>, option: &str| {
            v.ok_or_else(|| format!("auth type {name} needs `{option}`"))
        };
        Ok(match raw.kind {
            AuthKind::Static => AuthConfig::Static {
                tokens: raw.tokens.unwrap_or_default(),
            },
            AuthKind::Deny => AuthConfig::Deny,
            AuthKind::ClientCert => {
                AuthConfig::ClientCert {
                    allowed_subjects: match raw.allowed_subjects {
                        Some(list) if !list.is_empty() => list,
                        _ => return Err(
                            "auth type client_cert needs `allowed_subjects` (one or more subjects)"
                                .into(),
                        ),
                    },
                }
            }
            AuthKind::Jwt => AuthConfig::Jwt(JwtConfig {
                algorithms: jwt_algorithms(raw.algorithms)?,
                jwks_uri: need(raw.jwks_uri, "jwks_uri")?,
                issuer: need(raw.issuer, "issuer")?,
                audience: raw.audience,
                leeway_secs: raw.leeway_secs.unwrap_or(30),
                jwks_refresh_min_secs: raw.jwks_refresh_min_secs.unwrap_or(30),
                timeout_secs: raw.timeout_secs.unwrap_or(5).max(1),
            }),
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

/// The JWS algorithms to accept: all that a JWKS can verify, or the ones listed.
fn jwt_algorithms(listed: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let algorithms = listed.unwrap_or_else(|| JWT_ALGORITHMS.map(String::from).to_vec());
    match algorithms
        .iter()
        .find(|a| !JWT_ALGORITHMS.contains(&a.as_str()))
    {
        Some(bad) => Err(format!(
            "algorithm `{bad}` cannot be verified with a JWKS (supported: {})",
            JWT_ALGORITHMS.join(", ")
        )),
        None => Ok(algorithms),
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

fn default_stat_path() -> String {
    "/jans-auth/restv1/internal/stat".into()
}
fn default_max_connections() -> usize {
    512
}
fn positive_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("must be greater than 0"));
    }
    Ok(n)
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
