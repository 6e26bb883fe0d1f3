//! What each subcommand does. Errors carry their exit code (sysexits): 64 for a bad command
//! line, 78 for a bad configuration (including a node id another agent owns), 1 otherwise.

mod backfill;
mod certs;
mod import;
mod query;

pub use backfill::backfill;
pub use import::import;
pub use query::{hll_inspect, query, query_days};

use std::path::Path;

use anyhow::Context;
use authstat_config::ProcessEnv;

use crate::resolve::Resolved;

/// A failed command and the exit code it means.
#[derive(Debug)]
pub enum Failure {
    /// A bad command line (a value that cannot be used): exit code 64 (EX_USAGE).
    Usage(String),
    /// A bad configuration, or a node id that another agent owns: exit code 78 (EX_CONFIG). The
    /// error keeps its causes (the configuration error with its file, line and key; the claim's
    /// refusal naming both instances).
    Config(anyhow::Error),
    /// A task of the running agent panicked; the agent stopped through its normal shutdown:
    /// exit code 70 (EX_SOFTWARE), for its supervisor to restart it.
    Panicked(authstat_runtime::tasks::Death),
    /// Anything else: exit code 1.
    Other(anyhow::Error),
}

impl Failure {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => 64,
            Failure::Config(_) => 78,
            Failure::Panicked(_) => 70,
            Failure::Other(_) => 1,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Usage(m) => f.write_str(m),
            Failure::Config(e) => write!(f, "bad configuration: {}", chain(e)),
            Failure::Panicked(death) => write!(
                f,
                "{death}; stopped (exit code 70) for a supervisor to restart"
            ),
            Failure::Other(e) => f.write_str(&chain(e)),
        }
    }
}

/// An error and its causes, `: `-separated, leaving out a cause whose text the message before
/// it already holds (a store error carries the driver's error as its cause and its text in its
/// message, for logs).
pub fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        // A node id owned by another agent is a configuration problem (two agents, one id).
        if let Some(refused) = e.downcast_ref::<crate::own::ClaimError>()
            && matches!(refused, crate::own::ClaimError::Refused(_))
        {
            return Failure::Config(e);
        }
        // So is an OTLP setting that cannot be used (a certificate file that cannot be read).
        if e.chain()
            .any(|c| c.is::<authstat_export::SettingsError>() || c.is::<crate::UnusableFile>())
        {
            return Failure::Config(e);
        }
        Failure::Other(e)
    }
}

/// Loads, validates and resolves a configuration file.
pub fn load_config(path: &Path) -> Result<Resolved, Failure> {
    // The plugins' options are checked as the file is read: their errors name line and column.
    let registries = crate::resolve::Registries::builtin();
    let config = authstat_config::load_checked(path, &ProcessEnv, &|c| registries.check(c))
        .map_err(|e| Failure::Config(e.into()))?;
    crate::resolve::resolve_against(path, config, registries)
        .map_err(|e| Failure::Config(e.context(path.display().to_string())))
}

/// `authstat run`: until SIGTERM or SIGINT (a second one exits at once); SIGHUP or a change of
/// the configuration file reloads what can be reloaded safely.
pub async fn run(
    path: &Path,
    options: crate::StartOptions,
    overrides: &crate::cli::Overrides,
) -> Result<(), Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    if let Some(level) = overrides.level() {
        crate::logging::check_level(&level)
            .map_err(|e| Failure::Usage(format!("--log-level {e}")))?;
    }
    let load = |path: &Path| {
        load_config(path).map(|mut resolved| {
            overrides.apply(&mut resolved.config);
            resolved
        })
    };
    let resolved = load(path)?;
    let set_level = crate::logging::init(&resolved.config.logging);
    let build = crate::build_info::INFO;
    tracing::info!(
        version = %build.version,
        commit = %build.commit,
        built = %build.date,
        config = %path.display(),
        node = %resolved.node,
        "authstat starting"
    );
    let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut stop = StopSignals::new()?;
    // Starting may wait for the backend as long as it is unavailable; a stop signal ends that
    // wait (nothing was read yet, so nothing is lost).
    let mut agent = tokio::select! {
        started = crate::start(resolved, options) => started?,
        () = stop.recv() => {
            tracing::info!("stopped while starting (nothing had been read)");
            return Ok(());
        }
    };
    let (changed_tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let _config_watcher = watch_config_file(path, changed_tx);
    // What the running configuration was read from: an event in the directory that leaves the
    // file's content as it was (another file, a touch) reloads nothing.
    let mut loaded = std::fs::read(path).ok();
    let mut died = None;
    loop {
        let why = tokio::select! {
            () = stop.recv() => break,
            death = authstat_runtime::tasks::died() => {
                died = Some(death);
                break;
            }
            _ = hangup.recv() => "SIGHUP",
            Some(()) = changed.recv() => {
                // Editors write in several steps: let them finish, then read once.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                while changed.try_recv().is_ok() {}
                let now = std::fs::read(path).ok();
                if now == loaded {
                    continue;
                }
                "the configuration file changed"
            }
        };
        loaded = std::fs::read(path).ok();
        match load(path) {
            Err(e) => tracing::warn!(%why, error = %e, "configuration not reloaded"),
            Ok(new) => reload(&mut agent, new, &set_level, why),
        }
    }
    shut_down(agent, &mut stop, died).await
}

/// Applies a configuration read again (or says why not).
fn reload(
    agent: &mut crate::RunningAgent,
    new: crate::resolve::Resolved,
    set_level: &crate::logging::LevelHandle,
    why: &str,
) {
    let level = new.config.logging.level.clone();
    match agent.reload(new) {
        Ok(()) => {
            if let Err(e) = set_level(&level) {
                tracing::warn!(error = %e, "log level not changed");
            }
            tracing::info!(%why, "configuration reloaded");
        }
        Err(e) => tracing::warn!(%why, "configuration not reloaded: {e}"),
    }
}

/// The final flush within the grace period (a second stop signal exits at once); a task's
/// death is the stop's outcome.
async fn shut_down(
    agent: crate::RunningAgent,
    stop: &mut StopSignals,
    died: Option<authstat_runtime::tasks::Death>,
) -> Result<(), Failure> {
    tracing::info!("shutting down: final flush");
    // Read now: a reload may have changed it.
    let grace = agent.shutdown_grace();
    tokio::select! {
        () = agent.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_secs = grace.as_secs(), "the final flush did not finish in time: exiting; the rest is read again at the next start");
        }
        () = stop.recv() => {
            tracing::warn!("second signal: exiting at once");
            std::process::exit(130);
        }
    }
    match died {
        Some(death) => {
            tracing::error!("stopped: {death}");
            Err(Failure::Panicked(death))
        }
        None => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// Watches the directory the configuration file is named in, and the directory it really lives
/// in when it is a symbolic link; any change there is sent on (the caller compares the content).
/// A Kubernetes ConfigMap volume changes no file in place: it points its `..data` link at a new
/// directory, so the file's name sees no event of its own.
fn watch_config_file(
    path: &Path,
    changed: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let named = std::path::absolute(path).ok()?;
    let mut dirs = vec![named.parent()?.to_path_buf()];
    if let Some(real) = path
        .canonicalize()
        .ok()
        .and_then(|f| f.parent().map(Path::to_path_buf))
        && !dirs.contains(&real)
    {
        dirs.push(real);
    }
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && (event.kind.is_modify() || event.kind.is_create() || event.kind.is_remove())
        {
            let _ = changed.send(());
        }
    })
    .ok()?;
    for dir in &dirs {
        if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "not watching the configuration's directory: reload with SIGHUP");
        }
    }
    Some(watcher)
}

/// SIGTERM and SIGINT, registered once for the whole run: a signal that arrives while the agent
/// is busy (say, reloading) waits in the stream instead of being lost.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// `authstat check-config`: the configuration, what each source matches (a path that cannot
/// be read fails the check, naming it and the system's error), and the backend (reachable, or
/// for SQLite a writable file or directory). It writes nothing.
pub async fn check_config(path: &Path, skip_backend: bool) -> Result<(), Failure> {
    let resolved = load_config(path)?;
    println!(
        "{}: configuration is valid (node {})",
        path.display(),
        resolved.node
    );
    if let Some(why) = placeholder_node_id(resolved.node.as_str()) {
        println!(
            "  warning: node id '{}' {why}: every agent sharing the backend needs its own; \
             leave node_id unset to use the host name",
            resolved.node
        );
    }
    if resolved.config.api.auth == authstat_config::AuthConfig::Deny {
        println!("  warning: api.auth is not configured: every stat request will be refused (401)");
    }
    for line in resolved
        .exporters
        .settings(&resolved.config.export, &resolved.node)
        .map_err(Failure::Config)?
    {
        println!("  {line}");
    }
    let (certificates, bad) = certs::check(&resolved);
    for line in certificates {
        println!("  {line}");
    }
    if !bad.is_empty() {
        return Err(Failure::Config(anyhow::anyhow!(bad.join("; "))));
    }
    let mut problems = Vec::new();
    // The sources as configured, with nothing stored: what they find now, nothing is written.
    let sources = crate::sources(&resolved, &[]).map_err(Failure::Config)?;
    for (mut source, config) in sources.into_iter().zip(&resolved.config.sources) {
        let found = source.poll();
        let inputs = source.inputs();
        let what = match config.format.as_str() {
            "" => config.kind.clone(),
            format => format!("{}, {format}", config.kind),
        };
        println!(
            "  source {} ({what}): {} input(s) now",
            config.name,
            inputs.len()
        );
        for input in &inputs {
            println!("    {input}");
        }
        for problem in found {
            println!("    cannot be read: {problem}");
            problems.push(format!("source {}: {problem}", config.name));
        }
    }
    for kind in resolved.plugins.source_kinds() {
        if let Some(note) = kind.note
            && resolved.config.sources.iter().any(|s| s.kind == kind.name)
        {
            println!("  {}", note(&resolved.config));
        }
    }
    if !problems.is_empty() {
        return Err(Failure::Config(anyhow::anyhow!(problems.join("; "))));
    }
    if skip_backend {
        println!(
            "  backend {}: not checked (--skip-backend)",
            resolved.config.backend.kind()
        );
        return Ok(());
    }
    // Nothing is created or migrated: that is the agent's work at start.
    let found = resolved
        .backends
        .probe(&resolved.config.backend)
        .await
        .context("checking the backend")?;
    println!("  backend {found}");
    Ok(())
}

/// Why `node` looks like a value copied from an example, if it does.
fn placeholder_node_id(node: &str) -> Option<&'static str> {
    let lower = node.to_ascii_lowercase();
    if [
        "example",
        "placeholder",
        "changeme",
        "change-me",
        "same-node",
    ]
    .iter()
    .any(|p| lower.contains(p))
    {
        return Some("looks like a placeholder");
    }
    if ["localhost", "node", "authstat", "default", "test", "agent"].contains(&lower.as_str()) {
        return Some("is a generic name");
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_repeated_in_its_message_is_said_once() {
        let store = authstat_core::store::StoreError::Unavailable {
            backend: "sqlite",
            message: "database is locked".into(),
            cause: Default::default(),
        }
        .because(std::io::Error::other("database is locked"));
        let e = anyhow::Error::from(store).context("opening the sqlite backend");
        assert_eq!(
            super::chain(&e),
            "opening the sqlite backend: sqlite backend unavailable: database is locked"
        );
        assert!(std::error::Error::source(e.root_cause()).is_none());
        let typed = e
            .downcast_ref::<authstat_core::store::StoreError>()
            .unwrap();
        let cause = std::error::Error::source(typed).expect("the driver's error is kept");
        assert_eq!(cause.to_string(), "database is locked");
    }
}
