//! `GET /dashboard`: the statistics as a page (docs/dashboard.md).
//!
//! - **Access**: a browser cannot send the API's bearer token by itself, so the page has a login
//!   form that takes a token. The token is checked by the API's authenticator (static, JWT or
//!   introspection) for the dashboard's scope and never kept; the browser gets a random session
//!   id in an `HttpOnly; SameSite=Strict` cookie (`Secure` when the request came over HTTPS
//!   through a proxy) that expires after `session_ttl_secs`; logging out ends the session on the
//!   server. Sessions live in this process (a restart logs everyone out). Failed logins are
//!   limited per client address. `anonymous: true` serves the page without any login.
//! - **CSRF**: the session cookie is `SameSite=Strict`, the forms post only to this origin
//!   (`form-action 'self'`), and a post whose `Origin` is another host is refused.
//! - **Headers**: a strict CSP (no script at all, styles only from the stylesheet), `no-store`,
//!   `nosniff`, no framing; the stylesheet is cached immutably under its hash.

mod page;
mod svg;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use authstat_core::Month;
use authstat_core::metrics::{BACKEND_ERRORS, Sample, Value};
use axum::Router;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};

pub use page::{Health, MonthFigures, NodeLine, PageData, render};

use super::ApiState;
use super::auth::Denied;

/// The stylesheet, embedded.
const CSS: &str = include_str!("style.css");

/// The icon: a bar chart.
const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
<rect x=\"1\" y=\"8\" width=\"4\" height=\"7\" fill=\"#2f6db5\"/>\
<rect x=\"6\" y=\"4\" width=\"4\" height=\"11\" fill=\"#2e9e8f\"/>\
<rect x=\"11\" y=\"1\" width=\"4\" height=\"14\" fill=\"#e0892b\"/></svg>";

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// The pipeline's families the page shows (by name: the pipeline registers them).
const RECORDS_SKIPPED: &str = "authstat_records_skipped_total";
const FLUSHES: &str = "authstat_flushes_total";
/// The session cookie's name.
const COOKIE: &str = "authstat_session";

/// Failed logins allowed per client address per minute.
const FAILED_LOGINS_PER_MINUTE: u32 = 5;

/// Sessions kept at most (the oldest go first).
const MAX_SESSIONS: usize = 10_000;

/// Nodes whose months are looked up for the page (each is one read).
const NODES_LOOKED_UP: usize = 100;

/// The dashboard's sessions and failed-login counts.
#[derive(Debug, Default)]
pub struct Sessions {
    /// Session id (hex of its SHA-256: the cookie's value is never kept) → expiry.
    live: std::sync::Mutex<HashMap<String, Instant>>,
    /// Client address → (start of its minute, failures in it).
    failures: std::sync::Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

fn digest(value: &str) -> String {
    let hash = Sha256::digest(value.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_id() -> String {
    let mut bytes = [0u8; 32];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("the kernel's random numbers are unavailable: {e}"),
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// A new session lasting `ttl`; its id (the cookie's value).
    fn open(&self, ttl: Duration) -> String {
        let id = random_id();
        let now = Instant::now();
        let mut live = self.live.lock().expect("lock");
        live.retain(|_, until| *until > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(k, _)| k.clone())
        {
            live.remove(&oldest);
        }
        live.insert(digest(&id), now + ttl);
        id
    }

    fn is_live(&self, id: &str) -> bool {
        let live = self.live.lock().expect("lock");
        live.get(&digest(id))
            .is_some_and(|until| *until > Instant::now())
    }

    fn close(&self, id: &str) {
        self.live.lock().expect("lock").remove(&digest(id));
    }

    /// Whether `client` may try to log in now.
    fn may_try(&self, client: IpAddr) -> bool {
        let failures = self.failures.lock().expect("lock");
        failures.get(&client).is_none_or(|(since, n)| {
            since.elapsed() >= Duration::from_secs(60) || *n < FAILED_LOGINS_PER_MINUTE
        })
    }

    fn failed(&self, client: IpAddr) {
        let mut failures = self.failures.lock().expect("lock");
        if failures.len() > 10_000 {
            failures.retain(|_, (since, _)| since.elapsed() < Duration::from_secs(60));
        }
        let entry = failures.entry(client).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= Duration::from_secs(60) {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

/// The dashboard's routes (under `api.dashboard.path`), or none when it is off.
pub fn routes(state: &Arc<ApiState>) -> Router<Arc<ApiState>> {
    let config = state.settings().config.dashboard.clone();
    if !config.enabled {
        return Router::new();
    }
    let path = base_path(&config);
    Router::new()
        .route(&path, get(dashboard))
        .route(&format!("{path}/login"), get(login_form).post(login))
        .route(&format!("{path}/logout"), post(logout))
        .route(&format!("{path}/style.css"), get(stylesheet))
        .route(&format!("{path}/favicon.svg"), get(favicon))
        .route("/favicon.ico", get(favicon))
}

/// The dashboard's path without a trailing `/`.
fn base_path(config: &authstat_config::DashboardConfig) -> String {
    config.path.trim_end_matches('/').to_owned()
}

fn css_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| digest(CSS)[..16].to_owned())
}

/// An HTML response with the page headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    set_headers(
        &mut response,
        &[
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
    );
    response
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request came over HTTPS (through a proxy that says so).
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A post from another site: the browser says so (`Sec-Fetch-Site`), or its `Origin` names
/// another host (or is opaque, `null`).
fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match text("origin") {
        None => false,
        Some(origin) => {
            let origin_host = origin.split_once("://").map(|(_, h)| h);
            origin_host.is_none() || origin_host != text("host")
        }
    }
}

fn signed_in(state: &ApiState, headers: &HeaderMap) -> bool {
    cookie_value(headers, COOKIE).is_some_and(|id| state.sessions.is_live(id))
}

/// The page's query: a month range and a node.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    from: Option<String>,
    to: Option<String>,
    node: Option<String>,
}

async fn dashboard(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let settings = state.settings();
    let config = &settings.config.dashboard;
    let path = base_path(config);
    if !config.anonymous && !signed_in(&state, &headers) {
        return redirect(&format!("{path}/login"));
    }
    let Ok(Query(query)) = query else {
        return message_page(
            StatusCode::BAD_REQUEST,
            &path,
            "The query string cannot be read.",
        );
    };
    let now_ms = authstat_core::month::now_ms();
    let current = Month::from_epoch_millis(now_ms).expect("the clock is within years 0-9999");
    let months = match month_range(&query, current, settings.config.max_months) {
        Ok(months) => months,
        Err(why) => return message_page(StatusCode::BAD_REQUEST, &path, &why),
    };
    let node = query.node.filter(|n| !n.is_empty());
    match page_data(
        &state,
        months,
        node,
        current,
        now_ms,
        &path,
        !config.anonymous,
    )
    .await
    {
        Ok(data) => html(StatusCode::OK, render(&data)),
        Err((status, why)) => message_page(status, &path, &why),
    }
}

/// The months of the page: `from`..`to`, by default the 12 months up to the current one.
fn month_range(q: &PageQuery, current: Month, max: u64) -> Result<Vec<Month>, String> {
    let parse = |name: &str, v: &Option<String>| -> Result<Option<Month>, String> {
        match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(text) => text
                .parse::<Month>()
                .map(Some)
                .map_err(|e| format!("{name}: {e}")),
        }
    };
    let to = parse("to", &q.to)?.unwrap_or(current);
    let from = match parse("from", &q.from)? {
        Some(from) => from,
        None => {
            let mut from = to;
            for _ in 0..11 {
                from = from.pred().unwrap_or(from);
            }
            from
        }
    };
    let range = from.to(to).map_err(|e| e.to_string())?;
    if range.len() as u64 > max.min(120) {
        return Err(format!("at most {} months at once", max.min(120)));
    }
    Ok(range.iter().collect())
}

async fn page_data(
    state: &ApiState,
    months: Vec<Month>,
    node: Option<String>,
    current: Month,
    now_ms: i64,
    path: &str,
    logout: bool,
) -> Result<PageData, (StatusCode, String)> {
    // A failed read of the backend (counted, except by the cache, which counts its own).
    let failed = |e: authstat_core::store::StoreError, counted: bool| {
        if !counted {
            state
                .api_stats
                .backend_errors
                .fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(error = %e, "dashboard: backend unavailable");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "The statistics backend is unavailable; try again shortly.".to_owned(),
        )
    };
    let unavailable = |e| failed(e, false);
    let summaries = state.store.nodes().await.map_err(unavailable)?;
    if let Some(id) = &node
        && !summaries.iter().any(|s| s.node.as_str() == id)
    {
        return Err((StatusCode::NOT_FOUND, format!("There is no node {id}.")));
    }
    // The merged months through the stat API's cache (or one node's own), and every listed
    // node's months, read at once.
    let settings = state.settings();
    let stats = async {
        match &node {
            None => state
                .cache
                .answer(&settings.config, months.clone())
                .await
                .map(|answer| answer.figures().to_vec()),
            Some(id) => {
                let id = authstat_core::NodeId::stored(id.clone()).expect("a listed node");
                state
                    .store
                    .load_node(&id)
                    .await
                    .map(|s| s.months.iter().map(MonthFigures::of).collect::<Vec<_>>())
            }
        }
    };
    let mut loads = tokio::task::JoinSet::new();
    for (i, s) in summaries.iter().take(NODES_LOOKED_UP).enumerate() {
        let (store, id) = (state.store.clone(), s.node.clone());
        loads.spawn(async move { (i, store.load_node(&id).await) });
    }
    let (stored, loaded) = tokio::join!(stats, loads.join_all());
    let mut listed: Vec<Option<_>> = (0..summaries.len()).map(|_| None).collect();
    for (i, result) in loaded {
        listed[i] = Some(result);
    }
    let stored = stored.map_err(|e| failed(e, node.is_none()))?;
    let filled = months
        .iter()
        .map(|&m| {
            stored
                .iter()
                .find(|s| s.month == m)
                .cloned()
                .unwrap_or_else(|| MonthFigures::empty(m))
        })
        .collect();
    let mut nodes = Vec::with_capacity(summaries.len());
    for (s, loaded) in summaries.iter().zip(listed) {
        let months = match loaded {
            Some(loaded) => Some(
                loaded
                    .map_err(unavailable)?
                    .months
                    .iter()
                    .map(|m| m.month)
                    .collect(),
            ),
            None => None,
        };
        nodes.push(NodeLine {
            node: s.node.to_string(),
            last_flush_ms: s.updated_at_ms,
            months,
        });
    }
    // Last month up to the same day (the largest day recorded up to it: a shorter month).
    let same_day_last_month = match (&node, current.pred()) {
        (None, Some(last)) => {
            let day = authstat_core::month::day_of_month(now_ms);
            state
                .store
                .daily_users(last)
                .await
                .map_err(unavailable)?
                .range(..=day)
                .next_back()
                .map(|(&day, &users)| (day, users))
        }
        _ => None,
    };
    let health = health(state);
    Ok(PageData {
        months: filled,
        current,
        node,
        nodes,
        health,
        path: path.to_owned(),
        css_version: css_version().to_owned(),
        logout,
        now_ms,
        same_day_last_month,
    })
}

/// The agent's own health, from the metric registry's snapshot (what `/metrics` shows) and
/// the agent's problems now.
fn health(state: &ApiState) -> Health {
    let snapshot = state.registry.snapshot();
    let int = |sample: &Sample| match sample.value {
        Value::Int(n) => n,
        Value::Histogram(_) => 0,
    };
    let total = |name: &str, label: Option<&str>| -> u64 {
        snapshot
            .samples(name)
            .iter()
            .filter(|s| label.is_none_or(|l| s.labels.first().is_some_and(|x| x == l)))
            .map(int)
            .sum()
    };
    Health {
        skipped: snapshot
            .samples(RECORDS_SKIPPED)
            .iter()
            .filter_map(|s| Some((s.labels.first()?.clone(), int(s))))
            .filter(|(_, n)| *n > 0)
            .collect(),
        backend_errors: total(BACKEND_ERRORS.name, None),
        flush_failures: total(FLUSHES, Some("failure")),
        problems: state.status.problems(),
    }
}

/// A small page with a message and a way back.
fn message_page(status: StatusCode, path: &str, message: &str) -> Response {
    html(
        status,
        format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>authstat</title>\
             <link rel=\"icon\" href=\"{p}/favicon.svg\" type=\"image/svg+xml\">\
             <link rel=\"stylesheet\" href=\"{p}/style.css?v={v}\"></head><body><main class=\"login\">\
             <p class=\"error\">{m}</p><p><a href=\"{p}\">Back</a></p></main></body></html>",
            p = svg::escape(path),
            v = css_version(),
            m = svg::escape(message)
        ),
    )
}

fn login_page(status: StatusCode, path: &str, error: Option<&str>) -> Response {
    let error = error
        .map(|e| {
            format!(
                "<p class=\"error\" id=\"login-error\">{}</p>",
                svg::escape(e)
            )
        })
        .unwrap_or_default();
    html(
        status,
        format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>authstat — log in</title>\
             <link rel=\"icon\" href=\"{p}/favicon.svg\" type=\"image/svg+xml\">\
             <link rel=\"stylesheet\" href=\"{p}/style.css?v={v}\"></head><body>\
             <main class=\"login\"><h1>authstat</h1>{error}\
             <form method=\"post\" action=\"{p}/login\"><label for=\"token\">Access token</label>\
             <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required>\
             <button type=\"submit\">Log in</button></form>\
             <p class=\"note\">A token of the stat API, with its scope. It is checked once and not kept.</p>\
             </main></body></html>",
            p = svg::escape(path),
            v = css_version()
        ),
    )
}

async fn login_form(State(state): State<Arc<ApiState>>) -> Response {
    let settings = state.settings();
    let path = base_path(&settings.config.dashboard);
    login_page(StatusCode::OK, &path, None)
}

/// The login form's body.
#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(client): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let settings = state.settings();
    let config = &settings.config.dashboard;
    let path = base_path(config);
    if cross_site(&headers) {
        return message_page(
            StatusCode::FORBIDDEN,
            &path,
            "A login from another site is refused.",
        );
    }
    let client = client.ip();
    if !state.sessions.may_try(client) {
        return login_page(
            StatusCode::TOO_MANY_REQUESTS,
            &path,
            Some("Too many failed logins: wait a minute."),
        );
    }
    let Ok(Form(form)) = form else {
        return login_page(StatusCode::BAD_REQUEST, &path, Some("Enter a token."));
    };
    let scope = config.scope.as_deref().unwrap_or(&settings.config.scope);
    let bearer = format!("Bearer {}", form.token.trim());
    match settings.auth.check(Some(&bearer), scope).await {
        Ok(()) => {
            let id = state
                .sessions
                .open(Duration::from_secs(config.session_ttl_secs));
            let secure = if over_https(&headers) { "; Secure" } else { "" };
            let cookie = format!(
                "{COOKIE}={id}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
                config.session_ttl_secs
            );
            let mut response = redirect(&path);
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            tracing::info!(client = %client, "dashboard: logged in");
            response
        }
        Err(Denied::Unavailable) => login_page(
            StatusCode::SERVICE_UNAVAILABLE,
            &path,
            Some("The authorization server cannot be reached; try again shortly."),
        ),
        Err(denied) => {
            state.sessions.failed(client);
            tracing::info!(client = %client, why = %denied.description(scope), "dashboard: login refused");
            login_page(
                StatusCode::UNAUTHORIZED,
                &path,
                Some(&format!("Not accepted: {}.", denied.description(scope))),
            )
        }
    }
}

async fn logout(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    let settings = state.settings();
    let path = base_path(&settings.config.dashboard);
    if cross_site(&headers) {
        return message_page(
            StatusCode::FORBIDDEN,
            &path,
            "A logout from another site is refused.",
        );
    }
    if let Some(id) = cookie_value(&headers, COOKIE) {
        state.sessions.close(id);
    }
    let mut response = redirect(&format!("{path}/login"));
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{COOKIE}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Strict"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn stylesheet(headers: HeaderMap) -> Response {
    let etag = format!("\"{}\"", css_version());
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        CSS.into_response()
    };
    set_headers(
        &mut response,
        &[
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
    );
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    response
}

async fn favicon() -> Response {
    let mut response = FAVICON.into_response();
    set_headers(
        &mut response,
        &[
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
    );
    response
}

fn set_headers(response: &mut Response, headers: &[(header::HeaderName, &'static str)]) {
    let h = response.headers_mut();
    for (name, value) in headers {
        h.insert(name.clone(), HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_close() {
        let sessions = Sessions::default();
        let id = sessions.open(Duration::from_secs(60));
        assert_eq!(id.len(), 64);
        assert!(sessions.is_live(&id));
        assert!(!sessions.is_live("0000"));
        sessions.close(&id);
        assert!(!sessions.is_live(&id));
        let short = sessions.open(Duration::ZERO);
        assert!(!sessions.is_live(&short), "expired");
        assert_ne!(sessions.open(Duration::from_secs(1)), id, "random");
    }

    #[test]
    fn failed_logins_are_limited_per_address() {
        let sessions = Sessions::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..FAILED_LOGINS_PER_MINUTE {
            assert!(sessions.may_try(a));
            sessions.failed(a);
        }
        assert!(!sessions.may_try(a));
        assert!(sessions.may_try(b));
    }

    #[test]
    fn other_sites_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            HeaderValue::from_static("stats.example.com:8080"),
        );
        assert!(
            !cross_site(&h),
            "no Origin: a same-site form of an old browser"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://stats.example.com:8080"),
        );
        assert!(!cross_site(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(cross_site(&h));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h));
    }

    #[test]
    fn default_range_is_twelve_months() {
        let current: Month = "202403".parse().unwrap();
        let months = month_range(&PageQuery::default(), current, 120).unwrap();
        assert_eq!(months.len(), 12);
        assert_eq!(months[0].to_string(), "202304");
        let q = PageQuery {
            from: Some("202001".into()),
            to: Some("202403".into()),
            node: None,
        };
        assert!(
            month_range(&q, current, 24)
                .unwrap_err()
                .contains("at most 24")
        );
        let bad = PageQuery {
            from: Some("2024-01".into()),
            ..PageQuery::default()
        };
        assert!(
            month_range(&bad, current, 24)
                .unwrap_err()
                .starts_with("from:")
        );
    }
}
