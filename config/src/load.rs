//! Reading the configuration file, with errors that point at the file, line, column and key.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use crate::agent::AgentConfig;
use crate::env::{Env, expand};

/// Why a configuration could not be loaded. `Display` starts with where:
/// `authstat.yaml:12:5: backend.type: unknown variant `oracle`, expected one of …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or the name given to [`parse`]).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The key path, like `sources[0].paths`, when known.
    pub key: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A check of a parsed configuration that this crate cannot make itself (the plugins' options):
/// the key path of what is wrong (`sources[0].paths`) and what.
pub type Check<'a> = &'a dyn Fn(&AgentConfig) -> Result<(), (String, String)>;

/// [`load`], then `check`; an error of `check` names the line and column of its key.
pub fn load_checked(
    path: &Path,
    env: &dyn Env,
    check: Check<'_>,
) -> Result<AgentConfig, ConfigError> {
    let file = path.display().to_string();
    let text = read(path, &file)?;
    parse_checked(&text, &file, env, check)
}

/// [`parse`], then `check`; an error of `check` names the line and column of its key.
pub fn parse_checked(
    text: &str,
    file: &str,
    env: &dyn Env,
    check: Check<'_>,
) -> Result<AgentConfig, ConfigError> {
    let config = parse(text, file, env)?;
    check(&config).map_err(|(key, message)| {
        // Where the key stands in the expanded text (expansion keeps lines; a key past an
        // expanded variable on its line may be a few columns off).
        let expanded = expand(text, env).unwrap_or_else(|_| text.to_owned());
        let place = crate::locate(&expanded, &key);
        ConfigError {
            file: file.to_owned(),
            line: place.map(|p| p.0),
            column: place.map(|p| p.1),
            key: Some(key),
            message,
        }
    })?;
    Ok(config)
}

fn read(path: &Path, file: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.to_owned(),
        line: None,
        column: None,
        key: None,
        message: format!("cannot read the file: {e}"),
    })
}

/// Reads, expands and parses the configuration file at `path`.
pub fn load(path: &Path, env: &dyn Env) -> Result<AgentConfig, ConfigError> {
    let file = path.display().to_string();
    let text = read(path, &file)?;
    parse(&text, &file, env)
}

/// Expands `${VAR}` / `${VAR:-default}` in `text` and parses it; `file` names it in errors.
pub fn parse(text: &str, file: &str, env: &dyn Env) -> Result<AgentConfig, ConfigError> {
    let error = |line, column, key, message| ConfigError {
        file: file.to_owned(),
        line,
        column,
        key,
        message,
    };
    let text = expand(text, env).map_err(|m| {
        error(
            Some(m.line),
            Some(m.column),
            None,
            format!(
                "environment variable {} is not set and has no default (write ${{{}:-default}})",
                m.name, m.name
            ),
        )
    })?;
    let deserializer = serde_yaml::Deserializer::from_str(&text);
    let config: AgentConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let key = (path != ".").then_some(path);
        let inner = e.into_inner();
        let location = inner.location();
        // serde_yaml appends " at line L column C" to its message; the location is in front.
        let message = inner.to_string();
        let message = match message.rfind(" at line ") {
            Some(at) if location.is_some() => message[..at].to_owned(),
            _ => message,
        };
        // It may also start with (part of) the key path, which the error shows already.
        let message = match (message.split_once(": "), &key) {
            (Some((head, rest)), Some(key)) if !head.contains(' ') && key.starts_with(head) => {
                rest.to_owned()
            }
            _ => message,
        };
        error(
            location.as_ref().map(|l| l.line()),
            location.as_ref().map(|l| l.column()),
            key,
            message,
        )
    })?;
    validate(&config).map_err(|(key, message)| {
        let place = crate::locate(&text, &key);
        error(place.map(|p| p.0), place.map(|p| p.1), Some(key), message)
    })?;
    Ok(config)
}

/// The longest duration any `*_secs` or `*_ms` option may have: ten years. Every duration
/// from the configuration is added to a clock reading somewhere; a bound keeps those sums from
/// overflowing (and a longer one is a typo, not a wish).
pub const MAX_DURATION_SECS: u64 = 10 * 365 * 86_400;

/// Every `*_secs` and `*_ms` option, wherever it is (sources, backend, API, export), at most
/// [`MAX_DURATION_SECS`].
fn bounded_durations(value: &serde_yaml::Value, key: &str) -> Result<(), (String, String)> {
    use serde_yaml::Value;
    match value {
        Value::Mapping(map) => map.iter().try_for_each(|(name, value)| {
            let name = name.as_str().unwrap_or_default();
            let path = if key.is_empty() {
                name.to_owned()
            } else {
                format!("{key}.{name}")
            };
            bounded_durations(value, &path)
        }),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| bounded_durations(item, &format!("{key}[{i}]"))),
        Value::Tagged(tagged) => bounded_durations(&tagged.value, key),
        Value::Number(n) => {
            let (limit, unit) = if key.ends_with("_secs") {
                (MAX_DURATION_SECS, "s")
            } else if key.ends_with("_ms") {
                (MAX_DURATION_SECS * 1000, "ms")
            } else {
                return Ok(());
            };
            match n.as_u64() {
                Some(v) if v > limit => Err((
                    key.to_owned(),
                    format!("{v} is too long: at most {limit} {unit} (ten years)"),
                )),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Checks that span several keys.
/// Every source named, once, and not with the name reserved for backfill.
fn source_names(config: &AgentConfig) -> Result<(), (String, String)> {
    let mut names = HashSet::new();
    for (i, source) in config.sources.iter().enumerate() {
        if source.name.is_empty() {
            return Err((format!("sources[{i}].name"), "must not be empty".into()));
        }
        if source.name == crate::BACKFILL_SOURCE {
            return Err((
                format!("sources[{i}].name"),
                format!("'{}' is reserved for authstat backfill", source.name),
            ));
        }
        if !names.insert(source.name.as_str()) {
            return Err((
                format!("sources[{i}].name"),
                format!("'{}' is used twice", source.name),
            ));
        }
    }
    Ok(())
}

/// The dashboard's path starts with `/` and hides no other endpoint.
fn dashboard_path(config: &AgentConfig) -> Result<(), (String, String)> {
    let dashboard = &config.api.dashboard;
    if dashboard.enabled {
        let path = dashboard.path.trim_end_matches('/');
        if !dashboard.path.starts_with('/') || path.is_empty() {
            return Err((
                "api.dashboard.path".into(),
                format!("'{}' must start with / and not be / alone", dashboard.path),
            ));
        }
        let taken = [
            config.api.stat_path.as_str(),
            config.api.health_path.as_str(),
            "/livez",
            "/readyz",
            "/metrics",
            "/favicon.ico",
        ];
        if let Some(other) = taken
            .iter()
            .find(|other| **other == path || other.starts_with(&format!("{path}/")))
        {
            return Err((
                "api.dashboard.path".into(),
                format!(
                    "'{}' would hide {other}: choose another path",
                    dashboard.path
                ),
            ));
        }
    }
    Ok(())
}

fn validate(config: &AgentConfig) -> Result<(), (String, String)> {
    if let Ok(value) = serde_yaml::to_value(config) {
        bounded_durations(&value, "")?;
    }
    if config.sources.is_empty() {
        return Err(("sources".into(), "at least one source is needed".into()));
    }
    source_names(config)?;
    for (name, path) in [
        ("api.stat_path", &config.api.stat_path),
        ("api.health_path", &config.api.health_path),
    ] {
        if !path.starts_with('/') {
            return Err((name.into(), format!("'{path}' must start with /")));
        }
    }
    if let Some(lease) = config.node_lease_secs
        && lease <= config.flush_interval_secs
    {
        return Err((
            "node_lease_secs".into(),
            format!(
                "{lease} must be longer than flush_interval_secs ({}): flushes renew the lease",
                config.flush_interval_secs
            ),
        ));
    }
    if config.api.stat_path == config.api.health_path {
        return Err((
            "api.health_path".into(),
            "must differ from api.stat_path".into(),
        ));
    }
    dashboard_path(config)?;
    api_tls(config)?;
    Ok(())
}

/// Client certificates need HTTPS with a CA to check them against.
fn api_tls(config: &AgentConfig) -> Result<(), (String, String)> {
    let client_ca = config
        .api
        .tls
        .as_ref()
        .is_some_and(|t| t.client_ca_file.is_some());
    if let Some(tls) = &config.api.tls
        && tls.probes_without_client_cert
        && tls.client_ca_file.is_none()
    {
        return Err((
            "api.tls.probes_without_client_cert".into(),
            "only means something with api.tls.client_ca_file".into(),
        ));
    }
    if matches!(config.api.auth, crate::AuthConfig::ClientCert { .. }) && !client_ca {
        return Err((
            "api.auth.type".into(),
            "client_cert needs api.tls with a client_ca_file to check the certificates against"
                .into(),
        ));
    }
    Ok(())
}
