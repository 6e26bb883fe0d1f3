//! The authstat agent: configuration → backend → ingestion pipeline → HTTP API.
//!
//! [`start`] binds the port and answers probes at once, then reaches the backend (retrying while
//! a database server is unavailable), claims the node id, loads the node's state, starts reading
//! and serves the full API; it returns a [`RunningAgent`]. [`RunningAgent::shutdown`] stops
//! accepting requests, stops reading, and does a final flush. Tests start the whole agent
//! in-process on `127.0.0.1:0`.
//!
//! `main.rs` only parses the command line and calls into [`commands`].

pub mod build_info;
pub mod cli;
pub mod commands;
mod daily;

mod fold;

mod logging;
pub mod own;
pub mod pipeline;
mod reload;
pub mod resolve;
mod startup;

pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use authstat_core::hll::HllParams;
use authstat_core::source::Source;
use authstat_core::store::StatStore;
use authstat_plugins::derive::RulesDeriver;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::own::Ownership;
use crate::pipeline::{Control, Parts, Pipeline, PipelineStats, Role};
use crate::resolve::Resolved;
pub use crate::startup::{StartOptions, start, start_on};

/// A started agent.
#[derive(Debug)]
pub struct RunningAgent {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The pipeline's counters.
    pub stats: Arc<PipelineStats>,
    /// This agent's claim on its node id.
    pub owner: Ownership,
    resolved: Resolved,
    api: Arc<authstat_api::ApiState>,
    /// Keeps the API cache's view of the backend current.
    data_version: tokio::task::JoinHandle<()>,
    /// Reads the cluster's active users of today, 7 and 30 days for `/metrics` and OTLP.
    recent_users: tokio::task::JoinHandle<()>,
    /// Folds silent nodes now and then (`fold_silent_nodes_after_secs`; none when 0).
    fold: Option<tokio::task::JoinHandle<()>>,
    /// Records the cluster's month-to-date users each day (for the dashboard).
    daily: tokio::task::JoinHandle<()>,
    control: mpsc::Sender<Control>,
    pipeline: Option<std::thread::JoinHandle<()>>,
    stop_http: Option<oneshot::Sender<()>>,
    http: tokio::task::JoinHandle<()>,
    exporters: Vec<Box<dyn authstat_export::Exporter>>,
    _watcher: Option<notify::RecommendedWatcher>,
}

/// A reload that changed keys only a restart applies; the running configuration stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadRefused {
    /// The keys, as paths (`backend.url`, `sources[0].format`).
    pub keys: Vec<String>,
}

impl std::fmt::Display for ReloadRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cannot change without a restart; the running configuration stays",
            self.keys.join(", ")
        )
    }
}

impl std::error::Error for ReloadRefused {}

/// A configured file that cannot be used (a certificate, a key): a configuration error found
/// when the agent starts (exit code 78).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableFile(pub String);

impl std::fmt::Display for UnusableFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnusableFile {}

impl RunningAgent {
    /// Asks the pipeline to flush now (tests use it instead of waiting for the interval).
    pub fn flush_now(&self) {
        let _ = self.control.send(Control::Flush);
    }

    /// Applies a new configuration where that is safe ([`reload::LIVE`]: the sources, which
    /// resume from the current positions, the API's tokens, scope, TTLs and limits, the log
    /// level, the shutdown grace). A change of any other key refuses the whole reload, naming
    /// the keys; the running configuration stays.
    pub fn reload(&mut self, new: Resolved) -> Result<(), ReloadRefused> {
        let (old, next) = (&self.resolved.config, &new.config);
        let (_, mut refused) = reload::classify(old, next);
        if self.resolved.node != new.node && !refused.iter().any(|k| k == "node_id") {
            // The host name (the default node id) changed.
            refused.push("node_id".into());
        }
        if !refused.is_empty() {
            return Err(ReloadRefused { keys: refused });
        }
        self.api.replace_settings(next.api.clone());
        if old.sources != next.sources {
            let resolved = new.clone();
            let _ = self
                .control
                .send(Control::Reload(Box::new(move |positions| {
                    // The positions are the running sources' own, and the configuration was
                    // checked by resolve: building succeeds.
                    sources(&resolved, positions).expect("checked sources build")
                })));
            self._watcher = watch(&new, self.control.clone());
        }
        self.resolved = new;
        Ok(())
    }

    /// How long the final flush may take (`shutdown_grace_secs`, as currently configured).
    pub(crate) fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.resolved.config.shutdown_grace_secs)
    }

    /// Stops accepting requests, stops reading, flushes, and waits for both to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop_http.take() {
            let _ = stop.send(());
        }
        let _ = self.control.send(Control::Shutdown);
        if let Some(pipeline) = self.pipeline.take() {
            let _ = tokio::task::spawn_blocking(move || pipeline.join()).await;
        }
        // After the final flush, so that the last export carries the final totals.
        for exporter in std::mem::take(&mut self.exporters) {
            exporter.shutdown(Duration::from_secs(5)).await;
        }
        let _ = (&mut self.http).await;
        self.data_version.abort();
        self.recent_users.abort();
        if let Some(fold) = &self.fold {
            fold.abort();
        }
        self.daily.abort();
    }
}

/// Builds every configured source through the plugin registry, resuming from `positions`.
pub fn sources(
    resolved: &Resolved,
    positions: &[authstat_core::store::SourcePosition],
) -> anyhow::Result<Vec<Box<dyn Source>>> {
    resolved
        .config
        .sources
        .iter()
        .enumerate()
        .map(|(i, source)| {
            resolved
                .plugins
                .build_source(i, source, &resolved.base, positions)
                .map_err(anyhow::Error::from)
        })
        .collect()
}

/// Connects the backend (fails if it cannot be reached). Its reads combine the users of
/// foreign snapshots (Janssen's own statistics) with this configuration's own as its hash
/// setting allows ([`authstat_core::ForeignUsers::for_janssen`]).
///
/// Every statement, lock wait and open transaction of its sessions, and every call as a whole,
/// is bounded by limits derived from the node lease ([`authstat_backends::SessionLimits`]).
pub async fn connect(resolved: &Resolved) -> anyhow::Result<Arc<dyn StatStore>> {
    let limits = session_limits(resolved);
    let store = resolved
        .backends
        .open(&resolved.config.backend, limits)
        .await
        .with_context(|| format!("opening the {} backend", resolved.config.backend.kind()))?;
    let hll = &resolved.config.hll;
    let how = authstat_core::ForeignUsers::for_janssen(hll.hash, &hll.params());
    Ok(Arc::new(
        authstat_backends::Settled::new(store, how).bounded(limits.call),
    ))
}

/// The session limits of the node lease and the backend's connection timeout.
pub(crate) fn session_limits(resolved: &Resolved) -> authstat_backends::SessionLimits {
    let config = &resolved.config;
    authstat_backends::SessionLimits::for_lease(
        Duration::from_secs(config.node_lease_secs()),
        resolved.backends.connect_timeout(&config.backend),
    )
}

/// Claims the node id of `resolved` (or `node`) and builds its pipeline over `store`,
/// resuming from the stored state.
pub async fn pipeline(
    resolved: &Resolved,
    owner: Ownership,
    store: Arc<dyn StatStore>,
    sources: impl FnOnce(
        &[authstat_core::store::SourcePosition],
    ) -> anyhow::Result<Vec<Box<dyn Source>>>,
    stats: Arc<PipelineStats>,
    role: Role,
) -> anyhow::Result<Pipeline> {
    let node = owner.node.clone();
    let state = store
        .load_node(&node)
        .await
        .with_context(|| format!("loading the state of node {node}"))?;
    info!(node = %node, seq = state.seq, months = state.months.len(), positions = state.positions.len(), "resuming");
    // The clients and realms it holds of this month and the last one count towards its cap.
    let this_month = authstat_core::Month::from_epoch_millis(authstat_core::month::now_ms())?;
    let recent: Vec<_> = this_month.pred().into_iter().chain([this_month]).collect();
    let known_dims = store
        .node_dims(&node, &recent)
        .await
        .with_context(|| format!("loading the clients of node {node}"))?;
    let config = &resolved.config;
    let params = HllParams::new(config.hll.log2m, config.hll.regwidth).expect("validated");
    let sources = sources(&state.positions)
        .with_context(|| format!("resuming the sources of node {node}"))?;
    Ok(Pipeline::new(Parts {
        store,
        owner,
        state,
        sources,
        deriver: Box::new(RulesDeriver::new(&config.derive, config.hll.hash)),
        params,
        max_dims_per_month: config.derive.per_client.max_per_month as usize,
        per_client_daily: config.derive.per_client.enabled && config.derive.per_client.daily,
        known_dims,
        max_pending_records: config.max_pending_records,
        max_future: Duration::from_secs(config.max_future_secs),
        stats,
        role,
        runtime: tokio::runtime::Handle::current(),
    }))
}

/// Watches the sources' directories; a change wakes the pipeline. Without it (no inotify
/// watches left, a file system without notifications) the periodic scan still finds
/// everything.
fn watch(
    resolved: &Resolved,
    control: mpsc::Sender<Control>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let handler = move |event: notify::Result<notify::Event>| {
        // Our own reads cause access events (and may touch access times): waking up for them
        // would make reading its own cause, a busy loop.
        let ours = |e: &notify::Event| {
            matches!(
                e.kind,
                notify::EventKind::Access(_)
                    | notify::EventKind::Modify(notify::event::ModifyKind::Metadata(_))
            )
        };
        match event {
            Ok(e) if ours(&e) => {}
            _ => {
                let _ = control.send(Control::Wake);
            }
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            warn!(error = %e, "file notifications unavailable: relying on periodic scans");
            return None;
        }
    };
    // The sources as configured (built with nothing stored, only to ask where they read).
    let mut dirs: Vec<_> = sources(resolved, &[])
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s.watch_dirs())
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
            warn!(dir = %dir.display(), error = %e, "cannot watch; relying on periodic scans");
        }
    }
    Some(watcher)
}
