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
}

/// Serves until `stopped`, then lets requests in flight finish (at most `timeout` more).
pub async fn serve(server: Server, mut stopped: oneshot::Receiver<()>) {
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

/// One connection: served until it ends, is evicted (closed once idle), or the server stops.
fn connection(
    stream: tokio::net::TcpStream,
    server: &Server,
    busy: Arc<AtomicBool>,
    mut evicted: oneshot::Receiver<()>,
    mut shutting_down: watch::Receiver<bool>,
    departure: Departure,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let app = server.app.clone();
    let requests = server.requests.clone();
    let flag = busy.clone();
    // The client's address, for handlers that need it (the dashboard's login limit).
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        use tower::ServiceExt as _;
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        flag.store(true, Ordering::Release);
        let flag = flag.clone();
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await;
            flag.store(false, Ordering::Release);
            response
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(server.timeout)
        .serve_connection(TokioIo::new(stream), service);
    async move {
        let _departure = departure;
        let mut conn = std::pin::pin!(conn);
        let mut closing = false;
        let result = loop {
            tokio::select! {
                result = conn.as_mut() => break result,
                _ = &mut evicted, if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = shutting_down.changed(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        };
        if let Err(e) = result
            && let Some(code) = refused_status(&e)
        {
            *requests
                .requests
                .lock()
                .expect("lock")
                .entry(code)
                .or_default() += 1;
        }
        drop(busy);
    }
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
