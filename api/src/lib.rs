//! The HTTP API: the Janssen-compatible stat endpoint and health check, probes, `/metrics`
//! and the dashboard, behind bearer-token auth, served by [`http`] with a cap on connections.
//!
//! The API knows the agent only through [`AgentStatus`], the backend through
//! `authstat_core::store::StatStore` and the metrics through `authstat_core::metrics::Registry`.

pub mod active;
mod auth;
mod cache;
mod dashboard;
mod families;
pub use families::ApiStats;
pub mod front;
pub mod http;
mod metrics;
mod stat;
pub mod tls;

pub use metrics::Exposition;

use std::sync::Arc;
use std::time::Duration;

use authstat_config::ApiConfig;
use authstat_core::metrics::Registry;
use authstat_core::store::StatStore;
use axum::Extension;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use auth::{Authenticator, Denied};
pub use cache::{Answer, DATA_VERSION_EVERY, StatCache};
pub use stat::{
    DEFAULT_TOP, Format, Grouping, MAX_TOP, MonthsError, StatParams, grouped_json, requested_months,
};

/// What the agent tells its API about itself (the API knows nothing else of the agent).
pub trait AgentStatus: Send + Sync + std::fmt::Debug {
    /// Whether ingestion runs (the health check's `running`, not `starting`).
    fn started(&self) -> bool;
    /// This node's applied writes (flushes, snapshots) of `month` so far: a new one makes the
    /// cached answers with that month stale.
    fn flushes_of(&self, month: authstat_core::Month) -> u64;
    /// What keeps the agent from its work, the backend aside: fenced, failing or waiting
    /// flushes, sources that cannot be read; one line each (`/readyz`, the dashboard).
    fn problems(&self) -> Vec<String>;
}

/// The largest request body accepted (a form with four short fields needs far less).
const MAX_BODY_BYTES: usize = 16 * 1024;
/// How long the health check waits for the backend.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The settings a reload may replace: scope, TTLs, limits and tokens.
#[derive(Debug)]
pub struct ApiSettings {
    /// Paths, scope, TTLs, limits.
    pub config: ApiConfig,
    /// Bearer-token checks.
    pub auth: Authenticator,
}

/// What the handlers share.
pub struct ApiState {
    /// The backend (the health check asks it).
    pub store: Arc<dyn StatStore>,
    /// Replaced as a whole on reload; each request works with the settings it started with.
    settings: std::sync::RwLock<Arc<ApiSettings>>,
    /// The agent's health (readiness, the health check's `starting`).
    pub status: Arc<dyn AgentStatus>,
    /// The API's own counters (also a collector of the metric registry).
    pub api_stats: Arc<ApiStats>,
    /// The metric registry `/metrics` renders.
    pub registry: Arc<Registry>,
    /// Answers of the stat endpoint.
    pub cache: StatCache,
    /// The dashboard's logins.
    pub sessions: dashboard::Sessions,
    /// How many days the active users of each day are kept (`daily_retention_days`).
    pub daily_retention_days: std::sync::atomic::AtomicU32,
    /// Whether each client's users per day are kept (`derive.per_client.daily`).
    pub per_client_daily: std::sync::atomic::AtomicBool,
    /// The listener's TLS, when it serves HTTPS (its reload problems show on `/readyz`).
    pub tls: std::sync::OnceLock<Arc<tls::ApiTls>>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("settings", &self.settings())
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// The API state; its counters are `api_stats`, which the caller registered (they count
    /// from the first request the front answers).
    pub fn new(
        store: Arc<dyn StatStore>,
        config: ApiConfig,
        status: Arc<dyn AgentStatus>,
        api_stats: Arc<ApiStats>,
        registry: Arc<Registry>,
    ) -> Self {
        let settings = std::sync::RwLock::new(Arc::new(ApiSettings {
            auth: Authenticator::new(&config.auth),
            config,
        }));
        Self {
            cache: StatCache::new(store.clone(), status.clone(), api_stats.clone()),
            sessions: dashboard::Sessions::default(),
            daily_retention_days: std::sync::atomic::AtomicU32::new(400),
            per_client_daily: std::sync::atomic::AtomicBool::new(false),
            tls: std::sync::OnceLock::new(),
            store,
            settings,
            status,
            api_stats,
            registry,
        }
    }

    /// The current settings.
    pub fn settings(&self) -> Arc<ApiSettings> {
        self.settings.read().expect("lock").clone()
    }

    /// Replaces the settings (a reload); cached answers are dropped since TTLs may differ.
    pub fn replace_settings(&self, config: ApiConfig) {
        let settings = Arc::new(ApiSettings {
            auth: Authenticator::new(&config.auth),
            config,
        });
        *self.settings.write().expect("lock") = settings;
        self.cache.clear();
    }
}

/// The router with every endpoint.
pub fn router(state: Arc<ApiState>) -> Router {
    let settings = state.settings();
    let stat_path = settings.config.stat_path.clone();
    let health_path = settings.config.health_path.clone();
    Router::new()
        .merge(dashboard::routes(&state))
        .route(&stat_path, get(stat_get).post(stat_post))
        .route(&health_path, get(health).post(health))
        .route(ACTIVE_USERS_PATH, get(active_users))
        .route("/livez", get(|| async { (StatusCode::OK, "ok\n") }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_endpoint))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_secs(settings.config.request_timeout_secs),
            request_timeout,
        ))
        .with_state(state)
}

/// Counts responses by status code (for `/metrics`).
async fn count_requests(
    State(state): State<Arc<ApiState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    *state
        .api_stats
        .requests
        .lock()
        .expect("lock")
        .entry(response.status().as_u16())
        .or_default() += 1;
    response
}

async fn metrics_endpoint(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    let format = Exposition::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        metrics::render(&state.registry.snapshot(), format),
    )
        .into_response()
}

/// Bounds the whole request (a body sent slowly included): 408 after the timeout.
async fn request_timeout(
    State(timeout): State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request took too long",
        ),
    }
}

/// A JSON error body `{"error": ..., "error_description": ...}`.
pub(crate) fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": code, "error_description": description }).to_string();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

async fn stat_get(
    state: State<Arc<ApiState>>,
    peer: Option<Extension<tls::TlsPeer>>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match params {
        Ok(Query(p)) => stat(state, peer, headers, StatParams::from_pairs(p)).await,
        Err(e) => {
            tracing::debug!(error = %e.body_text(), "stat request: unreadable query string");
            let peer = peer.as_ref().map(|Extension(p)| p);
            bad_params(&state, &headers, peer, "the query string cannot be read").await
        }
    }
}

async fn stat_post(
    state: State<Arc<ApiState>>,
    peer: Option<Extension<tls::TlsPeer>>,
    headers: HeaderMap,
    params: Result<Form<Vec<(String, String)>>, axum::extract::rejection::FormRejection>,
) -> Response {
    match params {
        Ok(Form(p)) => stat(state, peer, headers, StatParams::from_pairs(p)).await,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the request body is too large",
        ),
        Err(e) => {
            tracing::debug!(error = %e.body_text(), "stat request: unreadable form");
            let why = if e.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                "the body must be a form (Content-Type: application/x-www-form-urlencoded)"
            } else {
                "the form body cannot be read"
            };
            let peer = peer.as_ref().map(|Extension(p)| p);
            bad_params(&state, &headers, peer, why).await
        }
    }
}

/// Unreadable parameters: still 403/401 first (Janssen's order), then 400.
async fn bad_params(
    state: &ApiState,
    headers: &HeaderMap,
    peer: Option<&tls::TlsPeer>,
    why: &str,
) -> Response {
    if let Some(denied) = check_access(&state.settings(), headers, peer).await {
        return denied;
    }
    error(StatusCode::BAD_REQUEST, "invalid_request", why)
}

/// 403 when the endpoint is off, 401 when the token does not pass, 503 when the authorization
/// server that would tell cannot be reached.
async fn check_access(
    settings: &ApiSettings,
    headers: &HeaderMap,
    peer: Option<&tls::TlsPeer>,
) -> Option<Response> {
    if !settings.config.stat_enabled {
        return Some(error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "the stat endpoint is disabled",
        ));
    }
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match settings
        .auth
        .check_request(header, peer, &settings.config.scope)
        .await
    {
        Ok(()) => None,
        Err(Denied::Unavailable) => Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            &Denied::Unavailable.description(&settings.config.scope),
        )),
        Err(denied) => {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "access_denied",
                &denied.description(&settings.config.scope),
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some(response)
        }
    }
}

async fn stat(
    State(state): State<Arc<ApiState>>,
    peer: Option<Extension<tls::TlsPeer>>,
    headers: HeaderMap,
    params: StatParams,
) -> Response {
    let settings = state.settings();
    let peer = peer.as_ref().map(|Extension(p)| p);
    if let Some(denied) = check_access(&settings, &headers, peer).await {
        return denied;
    }
    let months = match requested_months(&params, settings.config.max_months) {
        Ok(months) => months,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", &why.to_string()),
    };
    let format = Format::parse(params.format.as_deref());
    let grouping = match stat::requested_grouping(&params, format) {
        Ok(grouping) => grouping,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    let answer = match state.cache.answer(&settings.config, months, grouping).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %e, "stat request: backend unavailable");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the statistics backend is unavailable",
            );
        }
    };
    let content_type = match format {
        Format::OpenMetrics => "text/plain; version=0.0.4; charset=utf-8",
        Format::Json | Format::JsonMonth => "application/json",
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        answer.body(format),
    )
        .into_response()
}

/// Where the active users of a range of days are served.
pub const ACTIVE_USERS_PATH: &str = "/authstat/v1/active-users";

async fn active_users(
    State(state): State<Arc<ApiState>>,
    peer: Option<Extension<tls::TlsPeer>>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let settings = state.settings();
    let peer = peer.as_ref().map(|Extension(p)| p);
    if let Some(denied) = check_access(&settings, &headers, peer).await {
        return denied;
    }
    let Ok(Query(pairs)) = params else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the query string cannot be read",
        );
    };
    let retention = state
        .daily_retention_days
        .load(std::sync::atomic::Ordering::Relaxed);
    let first_kept =
        authstat_core::dims::first_kept_month(authstat_core::month::now_ms(), retention)
            .start_epoch_millis()
            .div_euclid(authstat_core::dims::MILLIS_PER_DAY);
    let daily = state
        .per_client_daily
        .load(std::sync::atomic::Ordering::Relaxed);
    let range = match active::requested_range(&pairs, first_kept, daily) {
        Ok(range) => range,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    match state.cache.active_users(&settings.config, range).await {
        Ok(answer) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            active::body(&answer),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "active users request: backend unavailable");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the statistics backend is unavailable",
            )
        }
    }
}

async fn db_online(state: &ApiState) -> bool {
    matches!(
        tokio::time::timeout(HEALTH_TIMEOUT, state.store.health()).await,
        Ok(Ok(()))
    )
}

/// Janssen's health check: always 200, this exact body.
async fn health(State(state): State<Arc<ApiState>>) -> Response {
    let status = if state.status.started() {
        "running"
    } else {
        "starting"
    };
    let db = if db_online(&state).await {
        "online"
    } else {
        "offline"
    };
    let body = format!("{{\"status\": \"{status}\", \"db_status\":\"{db}\"}}");
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// 200 `ready` when the agent does all of its work: ingestion runs, the backend answers, the
/// node id is this agent's, and every source can be read. Otherwise 503 with one line per
/// problem (see docs/api.md for why a sidecar should not gate its pod on it).
async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    if !state.status.started() {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    }
    let mut problems = Vec::new();
    if !db_online(&state).await {
        problems.push("backend unavailable".to_owned());
    }
    problems.extend(state.status.problems());
    problems.extend(state.tls.get().and_then(|tls| tls.problem()));
    if problems.is_empty() {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let mut body = problems.join("\n");
    body.push('\n');
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}
