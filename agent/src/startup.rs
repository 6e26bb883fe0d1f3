//! Starting the agent: the port is bound and the probes answer first; then the backend is
//! reached, the node id claimed and the node's state loaded, each retried while the backend is
//! unavailable (an auth server's sidecar must not crash-loop because the statistics database is
//! down); then reading and the full API start.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use authstat_core::store::{StatStore, StoreError};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::own::{self, Ownership};
use crate::pipeline::{Pipeline, PipelineStats, Role};
use crate::resolve::Resolved;
use crate::{RunningAgent, connect, pipeline, sources, telemetry, watch};
use authstat_api::front::Front;
use authstat_api::{self as api, http};

/// How to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Take the node id over even from a live claim of another instance.
    pub take_over: bool,
}

/// Raises the soft limit of open files to the hard limit (as Go programs do at start): the
/// agent keeps every followed file open, and the common default soft limit of 1024 is too low
/// for thousands of rotated files.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => info!(
                from = ?limit.current,
                to = ?limit.maximum,
                "raised the limit of open files"
            ),
            Err(e) => warn!(error = %e, "could not raise the limit of open files"),
        }
    }
}

/// Starts the agent: port, probes, backend, node claim, pipeline, file watching, HTTP API. It
/// returns once everything runs; while the backend is unavailable it keeps trying (see
/// [`until_available`]). A bad configuration, a port in use or a node id owned by a live agent
/// are errors at once.
pub async fn start(resolved: Resolved, options: StartOptions) -> anyhow::Result<RunningAgent> {
    raise_open_files_limit();
    let addr = resolved.config.listen_addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} (listen_addr)"))?;
    start_on(resolved, options, listener).await
}

/// The API's TLS, its files read and checked (an unusable file is a configuration error).
fn api_tls(
    api: &authstat_config::ApiConfig,
) -> Result<Option<Arc<api::tls::ApiTls>>, crate::UnusableFile> {
    api.tls
        .as_ref()
        .map(|tls| {
            api::tls::ApiTls::load(tls).map_err(|e| crate::UnusableFile(format!("api.tls: {e}")))
        })
        .transpose()
}

/// Serves `front` on `listener` until `stopped`, with the configured cap on connections.
fn serve(
    api: &authstat_config::ApiConfig,
    listener: tokio::net::TcpListener,
    front: &Arc<Front>,
    (requests, connections): (Arc<api::ApiStats>, Arc<http::ConnectionStats>),
    tls: Option<Arc<api::tls::ApiTls>>,
    stopped: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    let cap = http::effective_cap(api.max_connections);
    if cap < api.max_connections {
        warn!(
            configured = api.max_connections,
            cap, "api.max_connections lowered to a quarter of the limit of open files"
        );
    }
    let server = http::Server {
        listener,
        app: front.router(),
        timeout: Duration::from_secs(api.request_timeout_secs),
        cap,
        requests,
        connections,
        tls,
        probe_paths: vec![
            "/livez".to_owned(),
            "/readyz".to_owned(),
            api.health_path.clone(),
        ]
        .into(),
    };
    authstat_runtime::tasks::spawn("http", http::serve(server, stopped))
}

/// The API's state, and the tasks that keep its view of the backend current: the months'
/// versions and the cluster's recent active users.
fn api_state(
    config: &authstat_config::AgentConfig,
    store: Arc<dyn authstat_core::store::StatStore>,
    stats: Arc<PipelineStats>,
    api_stats: Arc<api::ApiStats>,
    registry: Arc<authstat_core::metrics::Registry>,
) -> (
    Arc<api::ApiState>,
    tokio::task::JoinHandle<()>,
    tokio::task::JoinHandle<()>,
) {
    let state = Arc::new(api::ApiState::new(
        store,
        config.api.clone(),
        stats,
        api_stats,
        registry,
    ));
    state.daily_retention_days.store(
        config.daily_retention_days,
        std::sync::atomic::Ordering::Relaxed,
    );
    let per_client = &config.derive.per_client;
    state.per_client_daily.store(
        per_client.enabled && per_client.daily,
        std::sync::atomic::Ordering::Relaxed,
    );
    let data_version = {
        let state = state.clone();
        authstat_runtime::tasks::spawn("data-version", async move {
            state.cache.watch_data_version().await
        })
    };
    let recent = Arc::new(api::active::RecentUsers::default());
    state.registry.register(recent.clone());
    let recent_users = authstat_runtime::tasks::spawn("recent-users", recent.run(state.clone()));
    (state, data_version, recent_users)
}

/// [`start`] on a socket that is already bound (`listen_addr` is not used): a supervisor that
/// passes sockets, or a test that must not release a port and bind it again.
pub async fn start_on(
    resolved: Resolved,
    options: StartOptions,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<RunningAgent> {
    raise_open_files_limit();
    let config = resolved.config.clone();
    let addr = listener.local_addr()?;
    let front = Front::new(&config.api.stat_path, &config.api.health_path);
    // Dropped if starting fails (or is abandoned at a stop signal): the server stops then.
    let (stop_http, stopped) = oneshot::channel::<()>();
    let registry = telemetry::registry();
    let api_stats = Arc::new(api::ApiStats::default());
    let connections = Arc::new(http::ConnectionStats::default());
    let tls = api_tls(&config.api)?;
    let http = serve(
        &config.api,
        listener,
        &front,
        (api_stats.clone(), connections.clone()),
        tls.clone(),
        stopped,
    );
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(%addr, scheme, "listening (probes answer now; statistics once the backend is ready)");

    if config.api.auth == authstat_config::AuthConfig::Deny {
        warn!(
            "api.auth is not configured: every stat request will be refused (401); configure \
             static tokens, jwt or introspection (docs/config.md)"
        );
    }
    let stats = Arc::new(PipelineStats::default());
    let per_client = config.derive.per_client;
    stats.node_totals.lock().expect("lock").client_series = (per_client.enabled
        && per_client.metrics)
        .then_some(per_client.max_metric_clients as usize);
    let (store, owner, pipeline) = ready_to_read(&resolved, options, &stats, &front).await?;
    info!(backend = %resolved.backends.location(&config.backend), node = %resolved.node, "backend ready");

    let (control, control_rx) = mpsc::channel();
    let watcher = watch(&resolved, control.clone());
    let poll = pipeline.poll_interval();
    let flush = Duration::from_secs(config.flush_interval_secs);
    let pipeline =
        authstat_runtime::tasks::thread("ingest", move || pipeline.run(control_rx, poll, flush))?;

    registry.register(stats.clone());
    registry.register(connections);
    registry.register(api_stats.clone());
    let exporters = resolved
        .exporters
        .start(&config.export, &resolved.node, &registry, &store)?;
    let (fold, daily) = background(&config, &store, &stats);
    let (state, data_version, recent_users) =
        api_state(&config, store, stats.clone(), api_stats, registry.clone());
    if let Some(tls) = tls {
        registry.register(tls.clone());
        let _ = state.tls.set(tls);
    }
    front.ready(api::router(state.clone()));
    info!(%addr, stat = %config.api.stat_path, health = %config.api.health_path, "serving");
    Ok(RunningAgent {
        addr,
        stats,
        owner,
        resolved,
        api: state,
        data_version,
        recent_users,
        fold,
        daily,
        control,
        pipeline: Some(pipeline),
        stop_http: Some(stop_http),
        http,
        exporters,
        _watcher: watcher,
    })
}

/// The background tasks on the backend: folding silent nodes (unless switched off) and
/// recording the cluster's users of each day.
fn background(
    config: &authstat_config::AgentConfig,
    store: &Arc<dyn StatStore>,
    stats: &Arc<PipelineStats>,
) -> (
    Option<tokio::task::JoinHandle<()>>,
    tokio::task::JoinHandle<()>,
) {
    let fold = (config.fold_silent_nodes_after_secs > 0).then(|| {
        let silent_for = Duration::from_secs(config.fold_silent_nodes_after_secs);
        authstat_runtime::tasks::spawn(
            "fold",
            crate::fold::run(store.clone(), silent_for, stats.clone()),
        )
    });
    let daily = authstat_runtime::tasks::spawn(
        "daily-users",
        crate::daily::run(store.clone(), config.daily_retention_days),
    );
    (fold, daily)
}

/// The backend connected, the node id claimed and the node's state loaded, each step retried
/// while the backend is unavailable.
async fn ready_to_read(
    resolved: &Resolved,
    options: StartOptions,
    stats: &Arc<PipelineStats>,
    front: &Front,
) -> anyhow::Result<(Arc<dyn StatStore>, Ownership, Pipeline)> {
    let backend = resolved.config.backend.kind();
    // A database server may come up after the agent; a SQLite file that cannot be opened is a
    // problem of this host (a path, a permission) that waiting does not solve.
    let waiting = Waiting {
        front,
        retry: resolved
            .backends
            .kind(&resolved.config.backend)
            .is_ok_and(|k| k.server),
    };
    let front = &waiting;
    let store = until_available(
        front,
        &format!("connecting to the {backend} backend"),
        || connect(resolved),
    )
    .await?;
    let lease = Duration::from_secs(resolved.config.node_lease_secs());
    // One instance for every attempt: a claim whose answer was lost is granted again.
    let instance = own::this_instance();
    let report = |what: String| waiting.front.waiting_for(what);
    let owner = until_available(front, "claiming the node id", || async {
        own::claim_or_wait(
            store.as_ref(),
            &resolved.node,
            lease,
            options.take_over,
            &instance,
            &report,
        )
        .await
        .map_err(anyhow::Error::from)
    })
    .await?;
    let pipeline = until_available(front, "loading the node's state", || {
        pipeline(
            resolved,
            owner.clone(),
            store.clone(),
            |positions| sources(resolved, positions),
            stats.clone(),
            Role::Agent,
        )
    })
    .await?;
    Ok((store, owner, pipeline))
}

/// Where to say what the agent waits for, and whether to wait at all.
struct Waiting<'a> {
    front: &'a Front,
    retry: bool,
}

/// The first wait after a failed attempt; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Runs `attempt` until it succeeds or fails for another reason than an unavailable backend,
/// waiting longer after each failure (on the runtime's clock), saying on `/readyz` and in the
/// log what it waits for.
async fn until_available<T, F, Fut>(
    waiting: &Waiting<'_>,
    what: &str,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let front = waiting.front;
    let mut wait = FIRST_RETRY;
    let mut failures = 0u64;
    loop {
        front.waiting_for(what.to_owned());
        match attempt().await {
            Ok(value) => {
                if failures > 0 {
                    info!(failures, "{what}: done after the backend became available");
                }
                return Ok(value);
            }
            Err(e) if waiting.retry && unavailable(&e) => {
                failures += 1;
                let error = crate::commands::chain(&e);
                warn!(retry_in_secs = wait.as_secs(), %error, "{what}: the backend is unavailable; the agent keeps trying (the probes answer meanwhile)");
                front.waiting_for(format!(
                    "{what}: {error} (attempt {failures}, next in {} s)",
                    wait.as_secs()
                ));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RETRY);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether `e` is (caused by) an unavailable backend: worth trying again.
fn unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<StoreError>(),
            Some(StoreError::Unavailable { .. })
        )
    })
}
