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

mod data;
mod model;
mod page;
mod recent;
mod sections;
mod session;
mod svg;

use std::sync::Arc;

use authstat_core::Month;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use data::*;
pub use model::{GroupRow, Health, MonthFigures, MonthGroup, NodeLine, PageData, RecentDays};
pub use page::render;
pub use session::Sessions;
use session::*;

use super::ApiState;

/// The stylesheet, embedded.
const CSS: &str = include_str!("style.css");

/// The icon: a bar chart.
const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
<rect x=\"1\" y=\"8\" width=\"4\" height=\"7\" fill=\"#2f6db5\"/>\
<rect x=\"6\" y=\"4\" width=\"4\" height=\"11\" fill=\"#2e9e8f\"/>\
<rect x=\"11\" y=\"1\" width=\"4\" height=\"14\" fill=\"#e0892b\"/></svg>";

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

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

/// The page's query: a month range and a node.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct PageQuery {
    from: Option<String>,
    to: Option<String>,
    node: Option<String>,
}

async fn dashboard(
    State(state): State<Arc<ApiState>>,
    peer: Option<axum::Extension<crate::tls::TlsPeer>>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let settings = state.settings();
    let config = &settings.config.dashboard;
    let path = base_path(config);
    let peer = peer.as_ref().map(|axum::Extension(p)| p);
    if !config.anonymous && !signed_in(&state, &headers, peer).await {
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
