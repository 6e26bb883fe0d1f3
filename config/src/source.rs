//! The `sources:` section: where records come from (`type`) and in which format (`format`).
//!
//! ```yaml
//! sources:
//!   - name: audit
//!     type: file                  # where: file (built in), or a kind a plugin registers
//!     format: janssen_audit       # how: a record format of the plugin registry
//!     paths: [/opt/jans/jetty/jans-auth/logs/jans-auth_audit*.log]
//! ```
//!
//! The options of the built-in kinds are keys of the source itself, so a mistake in them is
//! reported with its line and column; a kind registered by a plugin outside authstat's crates
//! takes its options under `options:` and decodes them itself. Which kinds and formats exist is
//! the plugin registry's business (authstat-plugins): this crate only checks the shape.

use serde::{Deserialize, Serialize};

/// One source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSource", into = "RawSource")]
pub struct SourceConfig {
    /// A name, unique among the sources (it keys the stored positions: keep it stable).
    /// `backfill` is reserved for `authstat backfill`.
    pub name: String,
    /// The record format (a name of the plugin registry: `janssen_audit`, `token_events`, …).
    pub format: String,
    /// Where records come from, with that kind's options.
    pub kind: SourceKind,
}

/// Where records come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SourceKind {
    /// `type: file`: files followed through rotation.
    File(FileSourceConfig),
    /// `type: janssen_stat_entries`: Janssen's own statistics rows, read from its database.
    JanssenStatEntries(JanssenStatEntriesConfig),
    /// `type: activemq`: a queue of an ActiveMQ broker, over STOMP.
    Activemq(ActivemqConfig),
    /// A kind registered by a plugin outside authstat's own crates, with its options as written.
    Other {
        /// The `type`.
        kind: String,
        /// The `options:` mapping.
        options: Option<serde_yaml::Value>,
    },
}

impl SourceKind {
    /// The `type` name.
    pub fn name(&self) -> &str {
        match self {
            SourceKind::File(_) => "file",
            SourceKind::JanssenStatEntries(_) => JANSSEN_STAT_ENTRIES,
            SourceKind::Activemq(_) => ACTIVEMQ,
            SourceKind::Other { kind, .. } => kind,
        }
    }
}

/// `type: file`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSourceConfig {
    /// Files or glob patterns (`*`, `?`, `[…]` in the file name), e.g.
    /// `/opt/jans/jetty/jans-auth/logs/jans-auth_audit*.log`. Rotated files that still match
    /// are read to their end.
    pub paths: Vec<String>,
    /// Where files without a stored position start.
    pub start_at: StartAt,
    /// Records larger than this are skipped (counted and logged), in bytes.
    pub max_record_bytes: u64,
    /// How often the files are checked without a file-system notification, in milliseconds
    /// (notifications are a hint; this is the safety net).
    pub poll_interval_ms: u64,
}

/// The `type` of [`SourceKind::JanssenStatEntries`].
pub const JANSSEN_STAT_ENTRIES: &str = "janssen_stat_entries";

/// `type: janssen_stat_entries`: the rows Janssen writes into its own database (one per
/// auth-server node and month: its MAU as an HLL, its tokens per grant type), stored as
/// snapshots that replace what was read before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JanssenStatEntriesConfig {
    /// Janssen's database: `postgres://user:password@host/db` or `mysql://…` (MySQL and
    /// MariaDB). Use `${VAR}` for the password; it is never logged.
    pub url: String,
    /// The table (Janssen's is `jansStatEntry`).
    pub table: String,
    /// Which months are read at every poll.
    pub months: StatMonths,
    /// How often the table is read, in milliseconds (Janssen rewrites its rows every
    /// `statTimerIntervalInSeconds`, 15 minutes by default).
    pub poll_interval_ms: u64,
}

/// The `type` of [`SourceKind::Activemq`].
pub const ACTIVEMQ: &str = "activemq";

/// `type: activemq`: the records Janssen sends to its audit queue (`jmsBrokerURISet`), consumed
/// over STOMP; each message is acknowledged only once what it counted is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivemqConfig {
    /// The brokers' STOMP endpoints, `host:port` or `stomp://host:port`, or
    /// `stomp+ssl://host:port` (also spelt `ssl://`) for TLS, tried in turn (failover).
    pub brokers: Vec<String>,
    /// The queue (Janssen's is `oauth2.audit.logging`).
    pub queue: String,
    /// The login, if the broker wants one (`${VAR}` takes it from the environment).
    pub username: Option<String>,
    /// The passcode (`${VAR}`); never logged.
    pub password: Option<String>,
    /// Messages the broker sends before they are acknowledged. Acknowledgements follow each
    /// flush, so at most this many messages are read per flush interval.
    pub prefetch: u32,
    /// How often a lost connection is tried again at most (it backs off to 30 s), and the
    /// pace of the source's checks, in milliseconds.
    pub poll_interval_ms: u64,
}

/// Which months of Janssen's statistics are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatMonths {
    /// The current and the previous month (by the UTC clock): what Janssen still updates.
    #[default]
    Recent,
    /// Every month in the table (the history; `authstat import janssen` reads it once).
    All,
}

/// Where a file never seen before starts being read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// From its first byte: a fresh install counts what the current log holds.
    #[default]
    Beginning,
    /// From its end: only what is written from now on.
    End,
}

/// The source name `authstat backfill` reads under; configured sources may not use it.
pub const BACKFILL_SOURCE: &str = "backfill";

/// The formats that were `type`s before sources and formats were separate keys.
const FORMERLY_TYPES: [&str; 2] = ["janssen_audit", "token_events"];

/// A source as written: the options of every built-in kind, so that a mistake is reported where
/// it stands (an internally tagged enum would buffer the entry and lose the location).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_at: Option<StartAt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_record_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    poll_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    months: Option<StatMonths>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    brokers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefetch: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    options: Option<serde_yaml::Value>,
}

fn positive(value: Option<u64>, option: &str, default: u64) -> Result<u64, String> {
    match value {
        Some(0) => Err(format!("`{option}` must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

impl TryFrom<RawSource> for SourceConfig {
    type Error = String;

    fn try_from(raw: RawSource) -> Result<Self, String> {
        if FORMERLY_TYPES.contains(&raw.kind.as_str()) {
            return Err(format!(
                "`type: {kind}` is the old shape: `type` says where records come from and \
                 `format` what they look like; write `type: file` and `format: {kind}`",
                kind = raw.kind
            ));
        }
        if raw.kind == JANSSEN_STAT_ENTRIES {
            return janssen_stat_entries(raw);
        }
        let activemq_options = [
            ("brokers", raw.brokers.is_some()),
            ("queue", raw.queue.is_some()),
            ("username", raw.username.is_some()),
            ("password", raw.password.is_some()),
            ("prefetch", raw.prefetch.is_some()),
        ];
        if raw.kind != ACTIVEMQ
            && let Some((option, _)) = activemq_options.iter().find(|(_, set)| *set)
        {
            return Err(format!(
                "`{option}` is an option of source type {ACTIVEMQ}, not of type {}",
                raw.kind
            ));
        }
        let janssen_options = [
            ("url", raw.url.is_some()),
            ("table", raw.table.is_some()),
            ("months", raw.months.is_some()),
        ];
        if let Some((option, _)) = janssen_options.iter().find(|(_, set)| *set) {
            return Err(format!(
                "`{option}` is an option of source type {JANSSEN_STAT_ENTRIES}, not of type {}",
                raw.kind
            ));
        }
        let format = raw
            .format
            .filter(|f| !f.is_empty())
            .ok_or_else(|| format!("source type {} needs `format`", raw.kind))?;
        let file_options = [
            ("paths", raw.paths.is_some()),
            ("start_at", raw.start_at.is_some()),
            ("max_record_bytes", raw.max_record_bytes.is_some()),
            ("poll_interval_ms", raw.poll_interval_ms.is_some()),
        ];
        let kind = if raw.kind == ACTIVEMQ {
            if let Some((option, _)) = file_options[..3].iter().find(|(_, set)| *set) {
                return Err(format!(
                    "`{option}` is an option of source type file, not of type {ACTIVEMQ}"
                ));
            }
            let brokers: Vec<String> = raw
                .brokers
                .filter(|b| !b.is_empty())
                .ok_or("source type activemq needs `brokers` (at least one host:port)")?
                .into_iter()
                .map(|b| {
                    // TLS brokers keep their scheme, one spelling of it.
                    let (tls, rest) = match ["stomp+ssl://", "ssl://"]
                        .iter()
                        .find_map(|scheme| b.strip_prefix(scheme))
                    {
                        Some(rest) => (true, rest),
                        None => (false, b.strip_prefix("stomp://").unwrap_or(&b)),
                    };
                    let rest = rest.trim_end_matches('/');
                    if tls {
                        format!("stomp+ssl://{rest}")
                    } else {
                        rest.to_owned()
                    }
                })
                .collect();
            if let Some(bad) = brokers.iter().find(|b| {
                b.strip_prefix("stomp+ssl://")
                    .unwrap_or(b)
                    .rsplit_once(':')
                    .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            }) {
                return Err(format!(
                    "`brokers`: '{bad}' is not host:port (or stomp://host:port, or \
                     stomp+ssl://host:port for TLS)"
                ));
            }
            SourceKind::Activemq(ActivemqConfig {
                brokers,
                queue: raw.queue.unwrap_or_else(|| "oauth2.audit.logging".into()),
                username: raw.username.filter(|u| !u.is_empty()),
                password: raw.password,
                prefetch: match raw.prefetch {
                    Some(0) => return Err("`prefetch` must be greater than 0".into()),
                    Some(n) => n,
                    None => 5000,
                },
                poll_interval_ms: positive(raw.poll_interval_ms, "poll_interval_ms", 1000)?,
            })
        } else if raw.kind == "file" {
            if raw.options.is_some() {
                return Err(
                    "`options` is for source types of plugins; the options of type file are \
                     paths, start_at, max_record_bytes and poll_interval_ms"
                        .into(),
                );
            }
            SourceKind::File(FileSourceConfig {
                paths: raw
                    .paths
                    .filter(|p| !p.is_empty())
                    .ok_or("source type file needs `paths` (at least one)")?,
                start_at: raw.start_at.unwrap_or_default(),
                max_record_bytes: positive(raw.max_record_bytes, "max_record_bytes", 1 << 20)?,
                poll_interval_ms: positive(raw.poll_interval_ms, "poll_interval_ms", 1000)?,
            })
        } else {
            if let Some((option, _)) = file_options.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "`{option}` is an option of source type file; type {} takes its options \
                     under `options:`",
                    raw.kind
                ));
            }
            SourceKind::Other {
                kind: raw.kind,
                options: raw.options,
            }
        };
        Ok(SourceConfig {
            name: raw.name,
            format,
            kind,
        })
    }
}

/// `type: janssen_stat_entries`: rows, not records, so no `format`.
fn janssen_stat_entries(raw: RawSource) -> Result<SourceConfig, String> {
    let not_ours = [
        ("format", raw.format.is_some()),
        ("brokers", raw.brokers.is_some()),
        ("queue", raw.queue.is_some()),
        ("username", raw.username.is_some()),
        ("password", raw.password.is_some()),
        ("prefetch", raw.prefetch.is_some()),
        ("paths", raw.paths.is_some()),
        ("start_at", raw.start_at.is_some()),
        ("max_record_bytes", raw.max_record_bytes.is_some()),
        ("options", raw.options.is_some()),
    ];
    if let Some((option, _)) = not_ours.iter().find(|(_, set)| *set) {
        return Err(format!(
            "source type {JANSSEN_STAT_ENTRIES} takes url, table, months and poll_interval_ms, \
             not `{option}` (it reads rows, not records)"
        ));
    }
    let url = raw
        .url
        .filter(|u| !u.is_empty())
        .ok_or_else(|| format!("source type {JANSSEN_STAT_ENTRIES} needs `url`"))?;
    if !(url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url.starts_with("mysql://"))
    {
        return Err(format!(
            "`url` of source type {JANSSEN_STAT_ENTRIES} must start with postgres://, \
             postgresql:// or mysql://, not {}",
            crate::redact_url(&url)
        ));
    }
    let table = raw.table.unwrap_or_else(|| "jansStatEntry".into());
    if table.is_empty()
        || !table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!(
            "`table` must be a plain table name (letters, digits, `_`), not '{table}'"
        ));
    }
    Ok(SourceConfig {
        name: raw.name,
        format: String::new(),
        kind: SourceKind::JanssenStatEntries(JanssenStatEntriesConfig {
            url,
            table,
            months: raw.months.unwrap_or_default(),
            poll_interval_ms: positive(raw.poll_interval_ms, "poll_interval_ms", 300_000)?,
        }),
    })
}

impl From<SourceConfig> for RawSource {
    fn from(s: SourceConfig) -> Self {
        let mut raw = RawSource {
            name: s.name,
            kind: s.kind.name().to_owned(),
            format: Some(s.format),
            paths: None,
            start_at: None,
            max_record_bytes: None,
            poll_interval_ms: None,
            url: None,
            table: None,
            months: None,
            brokers: None,
            queue: None,
            username: None,
            password: None,
            prefetch: None,
            options: None,
        };
        match s.kind {
            SourceKind::File(f) => {
                raw.paths = Some(f.paths);
                raw.start_at = Some(f.start_at);
                raw.max_record_bytes = Some(f.max_record_bytes);
                raw.poll_interval_ms = Some(f.poll_interval_ms);
            }
            SourceKind::JanssenStatEntries(j) => {
                raw.format = None;
                raw.url = Some(j.url);
                raw.table = Some(j.table);
                raw.months = Some(j.months);
                raw.poll_interval_ms = Some(j.poll_interval_ms);
            }
            SourceKind::Activemq(a) => {
                raw.brokers = Some(a.brokers);
                raw.queue = Some(a.queue);
                raw.username = a.username;
                raw.password = a.password;
                raw.prefetch = Some(a.prefetch);
                raw.poll_interval_ms = Some(a.poll_interval_ms);
            }
            SourceKind::Other { options, .. } => raw.options = options,
        }
        raw
    }
}
