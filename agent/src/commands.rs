//! What each subcommand does. Errors carry their exit code: 64 for a bad configuration.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use authstat_config::{ProcessEnv, SourceFormat};
use authstat_core::hll::Hll;
use authstat_core::{Month, NodeId};
use authstat_plugins::parse::parser_for;
use authstat_plugins::tail::{PathPattern, Tailer};
use base64::Engine as _;

use crate::cli::{FormatArg, QueryFormat};
use crate::pipeline::PipelineStats;
use crate::resolve::{Resolved, resolve};

/// A failed command and the exit code it means.
#[derive(Debug)]
pub enum Failure {
    /// Bad configuration or usage: exit code 64.
    Config(String),
    /// Anything else: exit code 1.
    Other(anyhow::Error),
}

impl Failure {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Config(_) => 64,
            Failure::Other(_) => 1,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Config(m) => write!(f, "bad configuration: {m}"),
            Failure::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

/// Loads, validates and resolves a configuration file.
pub fn load_config(path: &Path) -> Result<Resolved, Failure> {
    let config =
        authstat_config::load(path, &ProcessEnv).map_err(|e| Failure::Config(e.to_string()))?;
    resolve(path, config).map_err(|e| Failure::Config(format!("{}: {e:#}", path.display())))
}

/// `authstat run`: until SIGTERM or SIGINT (a second one exits at once); SIGHUP or a change of
/// the configuration file reloads what can be reloaded safely.
pub async fn run(path: &Path) -> Result<(), Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let resolved = load_config(path)?;
    let set_level = crate::logging::init(&resolved.config.logging);
    let grace = std::time::Duration::from_secs(resolved.config.shutdown_grace_secs);
    let mut agent = crate::start(resolved).await?;
    let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut stop = StopSignals::new()?;
    let (changed_tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let _config_watcher = watch_config_file(path, changed_tx);
    loop {
        let why = tokio::select! {
            () = stop.recv() => break,
            _ = hangup.recv() => "SIGHUP",
            Some(()) = changed.recv() => {
                // Editors write in several steps: let them finish, then read once.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                while changed.try_recv().is_ok() {}
                "the configuration file changed"
            }
        };
        match load_config(path) {
            Err(e) => tracing::warn!(%why, error = %e, "configuration not reloaded"),
            Ok(new) => {
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
        }
    }
    tracing::info!("shutting down: final flush");
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
    tracing::info!("stopped");
    Ok(())
}

/// Watches the configuration file's directory; events about the file are sent on.
fn watch_config_file(
    path: &Path,
    changed: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let file = path.canonicalize().ok()?;
    let name = file.file_name()?.to_owned();
    let dir = file.parent()?.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event.kind.is_modify() | event.kind.is_create()
            && event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str()))
        {
            let _ = changed.send(());
        }
    })
    .ok()?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .ok()?;
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

/// `authstat check-config`.
pub async fn check_config(path: &Path) -> Result<(), Failure> {
    let resolved = load_config(path)?;
    println!(
        "{}: configuration is valid (node {})",
        path.display(),
        resolved.node
    );
    for (source, patterns) in resolved.config.sources.iter().zip(&resolved.patterns) {
        let mut files = 0;
        for p in patterns {
            files += p.matches().map(|m| m.len()).unwrap_or(0);
        }
        println!(
            "  source {} ({}): {files} file(s) match now",
            source.name,
            source.format.name()
        );
    }
    let store = crate::connect(&resolved).await?;
    store.health().await.context("backend health check")?;
    println!("  backend {}: reachable", store.kind());
    Ok(())
}

/// `authstat backfill`: the files once, as the node `<node>-backfill` (so that it never
/// competes with a running agent of the same node). Its checkpoints make a second run a no-op:
/// plain files resume where they stood; a compressed (`.gz`) file, which never changes, is
/// marked done by its identity in the same atomic flush as its data.
pub async fn backfill(path: &Path, format: FormatArg, files: &[PathBuf]) -> Result<(), Failure> {
    const SOURCE: &str = "backfill";
    const GZ_DONE: &str = "backfill-gz";
    const GZ_DATA: &str = "backfill-gz-data";
    let resolved = load_config(path)?;
    let _ = crate::logging::init(&resolved.config.logging);
    let node = NodeId::new(format!("{}-backfill", resolved.node))
        .map_err(|e| Failure::Config(e.to_string()))?;
    let format = match format {
        FormatArg::JanssenAudit => SourceFormat::JanssenAudit,
        FormatArg::TokenEvents => SourceFormat::TokenEvents,
    };
    let store = crate::connect(&resolved).await?;
    let stored = store
        .load_node(&node)
        .await
        .context("loading the backfill state")?;
    let temp = tempfile_dir()?;
    let cwd = std::env::current_dir().context("current directory")?;
    let (mut plain, mut gz, mut markers, mut owned) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut total_bytes = 0u64;
    for file in files {
        let identity = file_identity(file)?;
        if file.extension().is_some_and(|e| e == "gz") {
            let done = stored.checkpoints.iter().any(|c| {
                c.source == GZ_DONE
                    && (c.device, c.inode, c.fingerprint) == (identity.0, identity.1, identity.2)
            });
            if done {
                println!("backfill: {} was read before; skipped", file.display());
                continue;
            }
            let target = temp.path().join(format!(
                "{}-{}",
                gz.len(),
                file.file_stem().unwrap_or_default().to_string_lossy()
            ));
            let size = gunzip(file, &target)?;
            total_bytes += size;
            gz.push(pattern(&cwd, &target)?);
            markers.push(authstat_core::store::Checkpoint {
                source: GZ_DONE.into(),
                path: file.display().to_string(),
                device: identity.0,
                inode: identity.1,
                fingerprint: identity.2,
                fingerprint_len: identity.3,
                offset: size,
            });
        } else {
            total_bytes += std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            owned.push((identity.0, identity.1));
            plain.push(pattern(&cwd, file)?);
        }
    }
    // Keep what earlier runs stored about files not read now.
    let mut extra: Vec<_> = stored
        .checkpoints
        .into_iter()
        .filter(|c| !(c.source == SOURCE && owned.contains(&(c.device, c.inode))))
        .collect();
    extra.extend(markers);
    let stats = Arc::new(PipelineStats::default());
    let max = resolved
        .config
        .sources
        .first()
        .map_or(1 << 20, |s| s.max_record_bytes as usize);
    let pipeline = crate::pipeline(
        &resolved,
        node,
        store,
        |cps| {
            vec![
                Tailer::new(SOURCE, plain, parser_for(format), max, false, cps),
                Tailer::new(GZ_DATA, gz, parser_for(format), max, false, &[]),
            ]
        },
        stats.clone(),
    )
    .await?
    .with_checkpoint_rules(extra, vec![GZ_DATA.into()]);
    let progress = std::io::stderr().is_terminal();
    let result = tokio::task::spawn_blocking(move || {
        pipeline.run_to_end(|| {
            if progress {
                let read = stats.bytes.load(Ordering::Relaxed);
                eprint!(
                    "\r{:>6.1}% {:>12} of {} bytes, {} records",
                    if total_bytes == 0 {
                        100.0
                    } else {
                        read as f64 * 100.0 / total_bytes as f64
                    },
                    read,
                    total_bytes,
                    stats.records.load(Ordering::Relaxed)
                );
            }
        });
        stats
    })
    .await
    .context("backfill task")?;
    drop(temp);
    if progress {
        eprintln!();
    }
    println!(
        "backfill: {} records, {} skipped, {} bytes",
        result.records.load(Ordering::Relaxed),
        result.skipped.load(Ordering::Relaxed),
        result.bytes.load(Ordering::Relaxed)
    );
    if result.flush_failures.load(Ordering::Relaxed) > 0 {
        return Err(Failure::Other(anyhow::anyhow!(
            "storing the statistics failed; nothing of this run was stored, run it again"
        )));
    }
    Ok(())
}

fn pattern(cwd: &Path, file: &Path) -> Result<PathPattern, Failure> {
    let text = file
        .to_str()
        .ok_or_else(|| Failure::Config(format!("{} is not UTF-8", file.display())))?;
    PathPattern::new(cwd, text).ok_or_else(|| Failure::Config(format!("{text}: not a file path")))
}

/// (device, inode, fingerprint of the first 256 bytes, bytes fingerprinted).
fn file_identity(file: &Path) -> Result<(u64, u64, u64, u32), Failure> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let mut f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let meta = f
        .metadata()
        .with_context(|| format!("reading {}", file.display()))?;
    let mut head = Vec::with_capacity(256);
    (&mut f)
        .take(256)
        .read_to_end(&mut head)
        .with_context(|| format!("reading {}", file.display()))?;
    let fingerprint = authstat_core::hash::murmur3_x64_128(&head, 0).0;
    Ok((meta.dev(), meta.ino(), fingerprint, head.len() as u32))
}

/// Decompresses `gz` into `target`; the decompressed size.
fn gunzip(gz: &Path, target: &Path) -> Result<u64, Failure> {
    let input = std::fs::File::open(gz).with_context(|| format!("reading {}", gz.display()))?;
    let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(input));
    let mut output =
        std::fs::File::create(target).with_context(|| format!("writing {}", target.display()))?;
    let size = std::io::copy(&mut decoder, &mut output)
        .with_context(|| format!("decompressing {}", gz.display()))?;
    Ok(size)
}

fn tempfile_dir() -> Result<TempDir, Failure> {
    let base = std::env::temp_dir().join(format!("authstat-backfill-{}", std::process::id()));
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    Ok(TempDir(base))
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `authstat query`.
pub async fn query(path: &Path, months: &[String], format: QueryFormat) -> Result<(), Failure> {
    let resolved = load_config(path)?;
    let mut wanted = Vec::new();
    for text in months
        .iter()
        .flat_map(|m| m.split(' '))
        .filter(|m| !m.is_empty())
    {
        wanted.push(
            text.parse::<Month>()
                .map_err(|e| Failure::Config(e.to_string()))?,
        );
    }
    let store = crate::connect(&resolved).await?;
    let stats = store
        .read_months(&wanted)
        .await
        .context("reading statistics")?;
    match format {
        QueryFormat::Json => println!("{}", crate::api::json_body(&stats)),
        QueryFormat::Table => {
            use authstat_core::counters::{CounterKey, Outcome};
            println!(
                "{:<8} {:>12} {:>10} {:>10} {:>12}",
                "month", "active users", "auth ok", "auth fail", "tokens"
            );
            for s in &stats {
                let tokens: u64 = s.counters.tokens.iter().map(|(_, _, n)| n).sum();
                println!(
                    "{:<8} {:>12} {:>10} {:>10} {:>12}",
                    s.month.to_string(),
                    s.monthly_active_users(),
                    s.counters
                        .get(&CounterKey::Authentication(Outcome::Success)),
                    s.counters
                        .get(&CounterKey::Authentication(Outcome::Failure)),
                    tokens
                );
                for (grant, token_type, n) in s.counters.tokens.iter() {
                    println!("         {grant} / {token_type}: {n}");
                }
            }
        }
    }
    Ok(())
}

/// `authstat hll inspect`.
pub fn hll_inspect(value: &str) -> Result<(), Failure> {
    let text = value.trim();
    let hex = text.strip_prefix("\\x").or_else(|| text.strip_prefix("0x"));
    let bytes = match hex {
        Some(hex) => decode_hex(hex),
        None if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) => {
            decode_hex(text)
        }
        None => base64::engine::general_purpose::STANDARD.decode(text).ok(),
    }
    .ok_or_else(|| Failure::Config(format!("'{text}' is neither Base64 nor hex")))?;
    let hll = Hll::from_bytes(&bytes).map_err(|e| Failure::Other(anyhow::anyhow!(e)))?;
    let p = hll.params();
    println!("type:               {}", hll.hll_type());
    println!("log2m:              {} ({} registers)", p.log2m(), p.m());
    println!("regwidth:           {}", p.regwidth());
    println!(
        "explicit threshold: {:?} ({} values)",
        p.explicit(),
        p.explicit_threshold()
    );
    println!(
        "sparse:             {}",
        if p.sparse() { "on" } else { "off" }
    );
    println!("bytes:              {}", bytes.len());
    if let Some(values) = hll.explicit_values() {
        println!("explicit values:    {}", values.len());
    }
    match (hll.nonzero_registers(), hll.cardinality()) {
        (Some(registers), Some(cardinality)) => {
            println!("registers in use:   {registers}");
            println!("cardinality:        {cardinality}");
        }
        _ => println!("cardinality:        undefined"),
    }
    Ok(())
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}
