//! Structured logs on stderr: text for terminals, JSON when configured; `RUST_LOG` wins over the
//! configured level.

use std::io::IsTerminal;

use authstat_config::{LogFormat, LoggingConfig};
use tracing_subscriber::EnvFilter;

/// Changes the log level of the running process (a reload); `RUST_LOG` keeps winning.
pub(crate) type LevelHandle = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

fn filter(level: &str) -> Result<EnvFilter, String> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(from_env) => from_env,
        Err(_) => EnvFilter::try_new(level).map_err(|e| format!("logging.level '{level}': {e}"))?,
    };
    let named = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_owned());
    Ok(quiet_peers(filter, &named))
}

/// rustls warns of what a peer did (an IP address sent as the server name, an unexpected
/// alert) at every connection: over HTTPS any client could fill the log. Such lines are dropped
/// below `error` unless the filter names rustls itself; handshake failures are counted in
/// `authstat_tls_handshake_failures_total` (and logged at debug by authstat).
/// (`named`: the filter's text.)
fn quiet_peers(filter: EnvFilter, named: &str) -> EnvFilter {
    if named.contains("rustls") {
        return filter;
    }
    filter.add_directive("rustls=error".parse().expect("a valid directive"))
}

/// Whether `level` is a level (`error` … `trace`, `off`) or a filter in `RUST_LOG`'s syntax
/// (`info,authstat=debug`). A bare word that is no level is refused: `tracing` would take it for
/// a target name and log nothing of what was meant (`degub`).
pub(crate) fn check_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let level = level.trim();
    if LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
        return Ok(());
    }
    if !level.contains('=') && !level.contains(',') {
        return Err(format!(
            "'{level}' is not a level (off, error, warn, info, debug, trace) nor a filter such as \
             info,authstat=debug"
        ));
    }
    EnvFilter::try_new(level)
        .map(drop)
        .map_err(|e| format!("'{level}': {e}"))
}

/// Installs the global subscriber (once; later calls are ignored and get a no-op handle).
pub fn init(config: &LoggingConfig) -> LevelHandle {
    let initial = filter(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    macro_rules! finish {
        ($builder:expr) => {{
            let builder = $builder
                .with_env_filter(initial)
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_err() {
                return Box::new(|_| Ok(()));
            }
            Box::new(move |level: &str| {
                let new = filter(level)?;
                handle.reload(new).map_err(|e| e.to_string())
            })
        }};
    }
    match config.format {
        LogFormat::Json => finish!(tracing_subscriber::fmt().json()),
        LogFormat::Text => finish!(tracing_subscriber::fmt()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a peer makes rustls warn about is dropped unless the filter asks for rustls.
    #[test]
    fn rustls_warnings_about_peers_are_dropped_unless_asked_for() {
        let quiet = quiet_peers(EnvFilter::new("info"), "info").to_string();
        assert!(quiet.contains("rustls=error"), "{quiet}");
        let asked = quiet_peers(EnvFilter::new("info,rustls=debug"), "info,rustls=debug");
        assert!(!asked.to_string().contains("rustls=error"), "{asked}");
    }
}
