//! The HTTP server: HTTP/1.1 connections with a cap on how many are open at once.
//!
//! At the cap, a new connection makes room by closing the oldest *idle* one (no request in
//! progress: an idle keep-alive, or a client that has sent nothing), as nginx does when it runs
//! out of connections: a flood of idle connections cannot lock the health check out, nor use up
//! the descriptors that the sources and the backend need. Only when every open connection is
//! busy is the new one closed at once. The cap is at most a quarter of the process's limit of
//! open files.
//!
//! Requests that hyper refuses before they reach the router (a malformed request 400, a URI too
//! long 414, headers too large 431) are counted with the router's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, watch};
use tracing::warn;

use authstat_core::metrics::{Collector, Families, Sample};

use crate::families::{ApiStats, by, load};

/// The connections open now: for each, whether it is busy and how to close it.
#[derive(Default)]
struct Table {
    next: u64,
    open: BTreeMap<u64, Entry>,
}

struct Entry {
    busy: Arc<AtomicBool>,
    close: Option<oneshot::Sender<()>>,
}

/// Counters of the server's connections (read by the metric registry).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Idle connections closed to make room for a new one.
    pub evicted: AtomicU64,
    /// New connections closed at once because every open one was busy.
    pub refused: AtomicU64,
    /// Failed `accept` calls (for example: no descriptor left).
    pub accept_errors: AtomicU64,
}

authstat_core::family!(
    API_CONNECTIONS,
    "authstat_api_connections",
    Gauge,
    "{connection}",
    false,
    [],
    "HTTP connections open now (at most api.max_connections)."
);

authstat_core::family!(
    API_CONNECTION_EVENTS,
    "authstat_api_connection_events_total",
    Counter,
    "{event}",
    false,
    ["event"],
    "Idle connections closed to make room (evicted), new ones closed because all were busy (refused), failed accepts (accept_error)."
);

impl Collector for ConnectionStats {
    fn collect(&self, out: &mut Families) {
        out.extend([
            (
                &API_CONNECTIONS,
                vec![Sample::int(Vec::new(), load(&self.open))],
            ),
            (
                &API_CONNECTION_EVENTS,
                by([
                    ("evicted", &self.evicted),
                    ("refused", &self.refused),
                    ("accept_error", &self.accept_errors),
                ]),
            ),
        ]);
    }
}

/// The cap actually applied: `configured`, but at most a quarter of the soft limit of open files
/// (the rest is for the followed files and the backend).
pub fn effective_cap(configured: usize) -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let quarter = usize::try_from(limit / 4).unwrap_or(usize::MAX).max(8);
    configured.min(quarter)
}

/// What [`serve`] needs.
#[derive(Debug)]
pub struct Server {
    /// The listening socket.
    pub listener: tokio::net::TcpListener,
    /// The application.
    pub app: axum::Router,
    /// Request headers must arrive within this; requests in flight at shutdown get as long.
    pub timeout: Duration,
    /// The most connections open at once (see [`effective_cap`]).
    pub cap: usize,
    /// Requests counted by status code (those hyper answers itself are added here).
    pub requests: Arc<ApiStats>,
    /// Connection counters.
    pub connections: Arc<ConnectionStats>,
    /// HTTPS (`api.tls`); plain HTTP without it.
    pub tls: Option<Arc<crate::tls::ApiTls>>,
    /// The paths served without a client certificate under `probes_without_client_cert`.
    pub probe_paths: Arc<[String]>,
}

/// Serves until `stopped`, then lets requests in flight finish (at most `timeout` more).
pub async fn serve(server: Server, mut stopped: oneshot::Receiver<()>) {
    // The certificate files are read again while the server runs, and no longer.
    let _reloading = server
        .tls
        .clone()
        .map(|tls| AbortOnDrop(tokio::spawn(tls.reload_forever())));
    let table = Arc::new(Mutex::new(Table::default()));
    let (shutdown, shutting_down) = watch::channel(false);
    let mut accept_errors_logged: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            accepted = server.listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        server.connections.accept_errors.fetch_add(1, Ordering::Relaxed);
                        let now = tokio::time::Instant::now();
                        if accept_errors_logged.is_none_or(|at| now - at > Duration::from_secs(10)) {
                            accept_errors_logged = Some(now);
                            warn!(error = %e, "accepting a connection failed (logged at most every 10 s; counted in authstat_api_connection_events_total)");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some((id, busy, close)) = admit(&table, &server) else {
                    server.connections.refused.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                    continue;
                };
                tokio::spawn(connection(
                    stream,
                    &server,
                    busy,
                    close,
                    shutting_down.clone(),
                    Departure { table: table.clone(), id, stats: server.connections.clone() },
                ));
            }
            _ = &mut stopped => break,
        }
    }
    drop(server.listener);
    let _ = shutdown.send(true);
    let deadline = tokio::time::Instant::now() + server.timeout;
    while !table.lock().expect("lock").open.is_empty() {
        if tokio::time::Instant::now() >= deadline {
            warn!("requests still running at shutdown were cut off");
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ends a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Registers a new connection, closing the oldest idle one when at the cap; `None` when every
/// open connection is busy.
#[allow(clippy::type_complexity, reason = "a private tuple of three handles")]
fn admit(
    table: &Mutex<Table>,
    server: &Server,
) -> Option<(u64, Arc<AtomicBool>, oneshot::Receiver<()>)> {
    let mut table = table.lock().expect("lock");
    if table.open.len() >= server.cap {
        let idle = table
            .open
            .values_mut()
            .find(|e| !e.busy.load(Ordering::Acquire) && e.close.is_some())?;
        if let Some(close) = idle.close.take() {
            let _ = close.send(());
        }
        server.connections.evicted.fetch_add(1, Ordering::Relaxed);
    }
    let id = table.next;
    table.next += 1;
    let busy = Arc::new(AtomicBool::new(false));
    let (close, closed) = oneshot::channel();
    table.open.insert(
        id,
        Entry {
            busy: busy.clone(),
            close: Some(close),
        },
    );
    server.connections.open.fetch_add(1, Ordering::Relaxed);
    Some((id, busy, closed))
}

/// Removes a connection from the table when its task ends, however it ends.
struct Departure {
    table: Arc<Mutex<Table>>,
    id: u64,
    stats: Arc<ConnectionStats>,
}

impl Drop for Departure {
    fn drop(&mut self) {
        self.table.lock().expect("lock").open.remove(&self.id);
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What serving one connection's requests needs.
struct Conn {
    app: axum::Router,
    requests: Arc<ApiStats>,
    busy: Arc<AtomicBool>,
    peer: std::net::SocketAddr,
    timeout: Duration,
    evicted: oneshot::Receiver<()>,
    shutting_down: watch::Receiver<bool>,
    tls: Option<Arc<crate::tls::ApiTls>>,
    probe_paths: Arc<[String]>,
}

/// One connection: its TLS handshake if the API serves HTTPS, then its requests until it ends,
/// is evicted (closed once idle), or the server stops.
fn connection(
    stream: tokio::net::TcpStream,
    server: &Server,
    busy: Arc<AtomicBool>,
    evicted: oneshot::Receiver<()>,
    shutting_down: watch::Receiver<bool>,
    departure: Departure,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut conn = Conn {
        app: server.app.clone(),
        requests: server.requests.clone(),
        busy,
        // The client's address, for handlers that need it (the dashboard's login limit).
        peer: stream
            .peer_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
        timeout: server.timeout,
        evicted,
        shutting_down,
        tls: server.tls.clone(),
        probe_paths: server.probe_paths.clone(),
    };
    async move {
        let _departure = departure;
        let Some(tls) = conn.tls.clone() else {
            return serve_requests(TokioIo::new(stream), conn, None).await;
        };
        let accepted = tokio::select! {
            accepted = tls.accept(stream, conn.timeout) => accepted,
            _ = &mut conn.evicted => None,
            _ = conn.shutting_down.changed() => None,
        };
        if let Some((stream, peer)) = accepted {
            serve_requests(TokioIo::new(stream), conn, Some(peer)).await;
        }
    }
}

/// The requests of one connection (`tls`: the client's certificate on an HTTPS one).
async fn serve_requests<I>(io: I, mut conn: Conn, tls: Option<crate::tls::TlsPeer>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (app, flag, peer) = (conn.app.clone(), conn.busy.clone(), conn.peer);
    let checks = conn.tls.clone().zip(tls);
    let probe_paths = conn.probe_paths.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        use tower::ServiceExt as _;
        let refused = checks.as_ref().and_then(|(tls, peer)| {
            let is_probe = probe_paths.iter().any(|p| p == request.uri().path());
            tls.needs_client_cert(peer, is_probe)
                .then(client_cert_required)
        });
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        if let Some((_, peer)) = &checks {
            request.extensions_mut().insert(peer.clone());
        }
        flag.store(true, Ordering::Release);
        let flag = flag.clone();
        let app = app.clone();
        async move {
            let response = match refused {
                Some(response) => Ok(response),
                None => app.oneshot(request).await,
            };
            flag.store(false, Ordering::Release);
            response
        }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(conn.timeout)
        .serve_connection(io, service);
    let mut http = std::pin::pin!(http);
    let mut closing = false;
    let result = loop {
        tokio::select! {
            result = http.as_mut() => break result,
            _ = &mut conn.evicted, if !closing => {
                closing = true;
                http.as_mut().graceful_shutdown();
            }
            _ = conn.shutting_down.changed(), if !closing => {
                closing = true;
                http.as_mut().graceful_shutdown();
            }
        }
    };
    if let Err(e) = result
        && let Some(code) = refused_status(&e)
    {
        *conn
            .requests
            .requests
            .lock()
            .expect("lock")
            .entry(code)
            .or_default() += 1;
    }
}

/// 401 for a request without a client certificate on a port that requires one for all but
/// the probes.
fn client_cert_required() -> axum::response::Response {
    crate::error(
        axum::http::StatusCode::UNAUTHORIZED,
        "access_denied",
        "a client certificate is required (api.tls.client_ca_file)",
    )
}

/// The status hyper answered a request it could not parse with (see hyper's `on_error`).
fn refused_status(e: &hyper::Error) -> Option<u16> {
    if !e.is_parse() {
        return None;
    }
    if e.to_string().contains("URI too long") {
        Some(414)
    } else if e.is_parse_too_large() {
        Some(431)
    } else {
        Some(400)
    }
}
