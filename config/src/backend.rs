//! The `backend:` section: where statistics are stored.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where statistics are stored, chosen by `type`. Swapping backends is a change of `type` and
/// its options.
///
/// ```yaml
/// backend:
///   type: sqlite
///   path: /var/lib/authstat/authstat.db
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "RawBackend")]
pub enum BackendConfig {
    /// In memory, lost at exit: for tests and trials.
    Memory,
    /// A single SQLite file (the embedded default).
    Sqlite(SqliteConfig),
    /// PostgreSQL.
    Postgres(SqlServerConfig),
    /// MySQL or MariaDB.
    Mysql(SqlServerConfig),
    /// MongoDB.
    Mongodb(MongoConfig),
}

impl BackendConfig {
    /// The `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Memory => "memory",
            BackendConfig::Sqlite(_) => "sqlite",
            BackendConfig::Postgres(_) => "postgres",
            BackendConfig::Mysql(_) => "mysql",
            BackendConfig::Mongodb(_) => "mongodb",
        }
    }

    /// Where the data goes, for logs: the type and the file or the address, passwords hidden.
    pub fn location(&self) -> String {
        match self {
            BackendConfig::Memory => "memory (nothing is kept after exit)".into(),
            BackendConfig::Sqlite(c) => format!("sqlite {}", c.path.display()),
            BackendConfig::Postgres(c) => format!("postgres {}", redact_url(&c.url)),
            BackendConfig::Mysql(c) => format!("mysql {}", redact_url(&c.url)),
            BackendConfig::Mongodb(c) => format!(
                "mongodb {} database {} collection {}",
                redact_url(&c.uri),
                c.database,
                c.collection
            ),
        }
    }
}

/// The `backend:` section as written: every option of every type, so that a mistake is reported
/// where it stands (an internally tagged enum would buffer the section and lose the location).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    #[serde(rename = "type")]
    kind: BackendKind,
    path: Option<PathBuf>,
    busy_timeout_ms: Option<u64>,
    pool_size: Option<u32>,
    url: Option<String>,
    connect_timeout_secs: Option<u64>,
    uri: Option<String>,
    database: Option<String>,
    collection: Option<String>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BackendKind {
    Memory,
    Sqlite,
    Postgres,
    Mysql,
    Mongodb,
}

impl TryFrom<RawBackend> for BackendConfig {
    type Error = String;

    fn try_from(raw: RawBackend) -> Result<Self, String> {
        let (name, allowed): (&str, &[&str]) = match raw.kind {
            BackendKind::Memory => ("memory", &[]),
            BackendKind::Sqlite => ("sqlite", &["path", "busy_timeout_ms", "pool_size"]),
            BackendKind::Postgres => ("postgres", &["url", "pool_size", "connect_timeout_secs"]),
            BackendKind::Mysql => ("mysql", &["url", "pool_size", "connect_timeout_secs"]),
            BackendKind::Mongodb => (
                "mongodb",
                &["uri", "database", "collection", "connect_timeout_secs"],
            ),
        };
        let given = [
            ("path", raw.path.is_some()),
            ("busy_timeout_ms", raw.busy_timeout_ms.is_some()),
            ("pool_size", raw.pool_size.is_some()),
            ("url", raw.url.is_some()),
            ("connect_timeout_secs", raw.connect_timeout_secs.is_some()),
            ("uri", raw.uri.is_some()),
            ("database", raw.database.is_some()),
            ("collection", raw.collection.is_some()),
        ];
        crate::load::only_options("backend", name, allowed, &given)?;
        let required = |value: Option<String>, option: &str| {
            value.ok_or_else(|| format!("backend type {name} needs `{option}`"))
        };
        Ok(match raw.kind {
            BackendKind::Memory => BackendConfig::Memory,
            BackendKind::Sqlite => BackendConfig::Sqlite(SqliteConfig {
                path: raw
                    .path
                    .ok_or_else(|| format!("backend type {name} needs `path`"))?,
                busy_timeout_ms: raw.busy_timeout_ms.unwrap_or_else(default_busy_timeout_ms),
                pool_size: raw.pool_size.unwrap_or_else(default_pool_size),
            }),
            BackendKind::Postgres | BackendKind::Mysql => {
                let server = SqlServerConfig {
                    url: required(raw.url, "url")?,
                    pool_size: raw.pool_size.unwrap_or_else(default_pool_size),
                    connect_timeout_secs: raw
                        .connect_timeout_secs
                        .unwrap_or_else(default_connect_timeout_secs),
                };
                if matches!(raw.kind, BackendKind::Postgres) {
                    BackendConfig::Postgres(server)
                } else {
                    BackendConfig::Mysql(server)
                }
            }
            BackendKind::Mongodb => BackendConfig::Mongodb(MongoConfig {
                uri: required(raw.uri, "uri")?,
                database: raw.database.unwrap_or_else(default_mongo_database),
                collection: raw.collection.unwrap_or_else(default_mongo_collection),
                connect_timeout_secs: raw
                    .connect_timeout_secs
                    .unwrap_or_else(default_connect_timeout_secs),
            }),
        })
    }
}

/// `type: sqlite`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file; created (with its directory) if absent.
    pub path: PathBuf,
    /// How long a writer waits for another writer's lock before giving up, in milliseconds.
    #[serde(default = "default_busy_timeout_ms")]
    pub busy_timeout_ms: u64,
    /// Connections kept open.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
}

/// `type: postgres` and `type: mysql`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlServerConfig {
    /// Connection URL, e.g. `postgres://authstat:${DB_PASSWORD}@db:5432/authstat` or
    /// `mysql://authstat:${DB_PASSWORD}@db:3306/authstat`. Never logged with its password.
    pub url: String,
    /// Connections kept open.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// How long to wait for a connection, in seconds.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
}

impl fmt::Debug for SqlServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlServerConfig")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .finish()
    }
}

/// `type: mongodb`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoConfig {
    /// Connection string, e.g. `mongodb://authstat:${DB_PASSWORD}@mongo:27017/?authSource=admin`.
    /// Never logged with its password.
    pub uri: String,
    /// The database.
    #[serde(default = "default_mongo_database")]
    pub database: String,
    /// The collection holding one document per node.
    #[serde(default = "default_mongo_collection")]
    pub collection: String,
    /// How long to wait for the server, in seconds.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &redact_url(&self.uri))
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .finish()
    }
}

fn default_busy_timeout_ms() -> u64 {
    5000
}
fn default_pool_size() -> u32 {
    4
}
fn default_connect_timeout_secs() -> u64 {
    5
}
fn default_mongo_database() -> String {
    "authstat".into()
}
fn default_mongo_collection() -> String {
    "authstat_nodes".into()
}

/// A connection URL fit for logs: the password (and a token-like user info) replaced by `***`.
///
/// ```
/// assert_eq!(
///     authstat_config::redact_url("postgres://app:s3cret@db:5432/stats"),
///     "postgres://app:***@db:5432/stats"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user = match rest[..at].find(':') {
        Some(colon) => format!("{}:***", &rest[..colon]),
        None => "***".to_owned(),
    };
    format!("{}{}{}", &url[..scheme_end], user, &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_chosen_by_type() {
        let c: BackendConfig =
            serde_json::from_str(r#"{"type":"sqlite","path":"/tmp/a.db"}"#).unwrap();
        assert_eq!(
            c,
            BackendConfig::Sqlite(SqliteConfig {
                path: "/tmp/a.db".into(),
                busy_timeout_ms: 5000,
                pool_size: 4
            })
        );
        let c: BackendConfig = serde_json::from_str(r#"{"type":"memory"}"#).unwrap();
        assert_eq!(c.kind(), "memory");
        let c: BackendConfig =
            serde_json::from_str(r#"{"type":"mongodb","uri":"mongodb://h"}"#).unwrap();
        let BackendConfig::Mongodb(m) = c else {
            panic!()
        };
        assert_eq!(
            (m.database.as_str(), m.collection.as_str()),
            ("authstat", "authstat_nodes")
        );
    }

    #[test]
    fn unknown_keys_and_types_are_errors() {
        let err = serde_json::from_str::<BackendConfig>(
            r#"{"type":"postgres","url":"postgres://h","pool":3}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `pool`"), "{err}");
        let err = serde_json::from_str::<BackendConfig>(r#"{"type":"oracle"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("oracle"), "{err}");
        let err = serde_json::from_str::<BackendConfig>(r#"{"type":"sqlite","url":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`url` is not an option of backend type sqlite"),
            "{err}"
        );
        let err = serde_json::from_str::<BackendConfig>(r#"{"type":"postgres"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("backend type postgres needs `url`"), "{err}");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("mysql://u:p@h:3306/d"), "mysql://u:***@h:3306/d");
        assert_eq!(
            redact_url("mongodb://tok@h/?x=a@b"),
            "mongodb://***@h/?x=a@b"
        );
        assert_eq!(redact_url("postgres://h/d"), "postgres://h/d");
        assert_eq!(redact_url("not a url"), "not a url");
        let c = SqlServerConfig {
            url: "postgres://app:hunter2@db/x".into(),
            pool_size: 1,
            connect_timeout_secs: 1,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
