//! The dashboard's logins: the form, the session cookie, failed logins limited per address,
//! logout.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::*;
use crate::ApiState;
use crate::auth::Denied;

/// The session cookie's name.
pub(super) const COOKIE: &str = "authstat_session";

/// Failed logins allowed per client address per minute.
pub(super) const FAILED_LOGINS_PER_MINUTE: u32 = 5;

/// Sessions kept at most (the oldest go first).
pub(super) const MAX_SESSIONS: usize = 10_000;

/// The dashboard's sessions and failed-login counts.
#[derive(Debug, Default)]
pub struct Sessions {
    /// Session id (hex of its SHA-256: the cookie's value is never kept) → expiry.
    live: std::sync::Mutex<HashMap<String, Instant>>,
    /// Client address → (start of its minute, failures in it).
    failures: std::sync::Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

pub(super) fn digest(value: &str) -> String {
    let hash = Sha256::digest(value.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn random_id() -> String {
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

pub(super) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request came over HTTPS: to the agent's own TLS (`peer` is there), or through a
/// proxy that says so.
pub(super) fn over_https(headers: &HeaderMap, peer: Option<&crate::tls::TlsPeer>) -> bool {
    peer.is_some()
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A post from another site: the browser says so (`Sec-Fetch-Site`), or its `Origin` names
/// another host (or is opaque, `null`).
pub(super) fn cross_site(headers: &HeaderMap) -> bool {
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

/// A live session, or (under `client_cert` auth) a client certificate with an allowed subject.
pub(super) async fn signed_in(
    state: &ApiState,
    headers: &HeaderMap,
    peer: Option<&crate::tls::TlsPeer>,
) -> bool {
    if cookie_value(headers, COOKIE).is_some_and(|id| state.sessions.is_live(id)) {
        return true;
    }
    let settings = state.settings();
    matches!(settings.auth, crate::Authenticator::ClientCert(_))
        && settings
            .auth
            .check_request(None, peer, &settings.config.scope)
            .await
            .is_ok()
}

pub(super) fn login_page(status: StatusCode, path: &str, error: Option<&str>) -> Response {
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

pub(super) async fn login_form(State(state): State<Arc<ApiState>>) -> Response {
    let settings = state.settings();
    let path = base_path(&settings.config.dashboard);
    login_page(StatusCode::OK, &path, None)
}

/// The login form's body.
#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    token: String,
}

pub(super) async fn login(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(client): ConnectInfo<std::net::SocketAddr>,
    peer: Option<axum::Extension<crate::tls::TlsPeer>>,
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
            let peer = peer.as_ref().map(|axum::Extension(p)| p);
            let secure = if over_https(&headers, peer) {
                "; Secure"
            } else {
                ""
            };
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

pub(super) async fn logout(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
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
}
