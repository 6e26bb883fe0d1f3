//! The backends registry: the one table of backend types (`backend: {type: …}`), each with its
//! options, its checks and how it is built. [`Backends::builtin`] lists authstat's own; a
//! program embedding authstat (or a test) adds its own with [`Backends::with`]. A new backend is
//! its module (a [`StatStore`] and its options type) plus one [`BackendKind`] in
//! [`Backends::builtin`].

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use authstat_config::options::OptionError;
use authstat_config::{AgentConfig, BackendConfig, redact_url};
use authstat_core::store::{StatStore, StoreError};

use crate::SessionLimits;
use crate::options::{MemoryConfig, MongoConfig, SqlServerConfig, SqliteConfig};

/// A backend being opened.
pub(crate) type Opening<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<dyn StatStore>, StoreError>> + Send + 'a>>;
/// A backend being probed: what was found, in words.
pub(crate) type Probing<'a> = Pin<Box<dyn Future<Output = Result<String, StoreError>> + Send + 'a>>;

/// A backend type.
#[derive(Clone, Copy, Debug)]
pub struct BackendKind {
    /// Its `type` name.
    pub name: &'static str,
    /// One line for documentation.
    pub about: &'static str,
    /// The cargo feature a build needs for it (none: always built).
    pub feature: Option<&'static str>,
    /// Whether this build has it.
    pub built: bool,
    /// A database server reached over the network, which may come up after the agent: the
    /// agent waits for it at start. `false`: a local file or memory, whose failure waiting does
    /// not solve (a path, a permission).
    pub server: bool,
    /// Decodes and checks its options, opening nothing.
    pub check: fn(&serde_yaml::Mapping) -> Result<(), OptionError>,
    /// Where its data goes, for logs (passwords hidden).
    pub location: fn(&serde_yaml::Mapping) -> String,
    /// How long connecting may take (part of every call's bound, [`SessionLimits`]).
    pub connect_timeout: fn(&serde_yaml::Mapping) -> Duration,
    /// Makes its relative paths relative to `base` (the configuration file's directory).
    pub resolve_paths: fn(&mut serde_yaml::Mapping, &Path),
    /// Opens it (connects, migrates), its sessions bounded by the limits.
    pub open: for<'a> fn(&'a serde_yaml::Mapping, SessionLimits) -> Opening<'a>,
    /// Checks that it can be used, writing nothing.
    pub probe: for<'a> fn(&'a serde_yaml::Mapping) -> Probing<'a>,
}

/// The backend types this program can open.
#[derive(Clone, Debug)]
pub struct Backends {
    kinds: Vec<BackendKind>,
}

fn rejected(backend: &'static str, message: String) -> StoreError {
    StoreError::Rejected { backend, message }
}

/// Decodes `T` from `options`, as a store error (the options were checked at load).
fn options<T>(
    backend: &'static str,
    options: &serde_yaml::Mapping,
    decode: fn(&serde_yaml::Mapping) -> Result<T, OptionError>,
) -> Result<T, StoreError> {
    decode(options).map_err(|e| rejected(backend, format!("{}: {}", e.key, e.message)))
}

fn no_paths(_: &mut serde_yaml::Mapping, _: &Path) {}

#[cfg_attr(
    all(feature = "postgres", feature = "mysql", feature = "mongodb"),
    allow(dead_code, reason = "every backend is built")
)]
fn not_built(name: &'static str) -> StoreError {
    rejected(
        name,
        format!("this authstat was built without the `{name}` feature"),
    )
}

fn memory() -> BackendKind {
    BackendKind {
        name: "memory",
        about: "in memory, lost at exit: for tests and trials",
        feature: None,
        built: true,
        server: false,
        check: |o| authstat_config::options::decode::<MemoryConfig>(o).map(|_| ()),
        location: |_| "memory (nothing is kept after exit)".into(),
        connect_timeout: |_| Duration::ZERO,
        resolve_paths: no_paths,
        open: |o, _| {
            Box::pin(async move {
                options(
                    "memory",
                    o,
                    authstat_config::options::decode::<MemoryConfig>,
                )?;
                Ok(Arc::new(crate::memory::MemoryStore::new()) as Arc<dyn StatStore>)
            })
        },
        probe: |_| Box::pin(async { Ok("memory: nothing is kept after exit".into()) }),
    }
}

fn sqlite() -> BackendKind {
    BackendKind {
        name: "sqlite",
        about: "one SQLite file (the embedded default)",
        feature: None,
        built: true,
        server: false,
        check: |o| SqliteConfig::decode(o).map(|_| ()),
        location: |o| {
            SqliteConfig::decode(o).map_or_else(
                |_| "sqlite".into(),
                |c| format!("sqlite {}", c.path.display()),
            )
        },
        connect_timeout: |o| {
            SqliteConfig::decode(o)
                .map_or(Duration::ZERO, |c| Duration::from_millis(c.busy_timeout_ms))
        },
        resolve_paths: |o, base| {
            if let Ok(mut c) = SqliteConfig::decode(o)
                && c.path.is_relative()
            {
                c.path = base.join(&c.path);
                o.insert("path".into(), c.path.display().to_string().into());
            }
        },
        open: |o, _| {
            Box::pin(async move {
                let c = options("sqlite", o, SqliteConfig::decode)?;
                Ok(Arc::new(crate::sql::SqliteStore::open(&c).await?) as Arc<dyn StatStore>)
            })
        },
        probe: |o| {
            Box::pin(async move {
                let c = options("sqlite", o, SqliteConfig::decode)?;
                crate::sql::probe_sqlite_file(&c.path)
            })
        },
    }
}

fn server_location(name: &str, o: &serde_yaml::Mapping) -> String {
    SqlServerConfig::decode(o).map_or_else(
        |_| name.to_owned(),
        |c| format!("{name} {}", redact_url(&c.url)),
    )
}

fn server_timeout(o: &serde_yaml::Mapping) -> Duration {
    SqlServerConfig::decode(o).map_or(Duration::ZERO, |c| c.connect_timeout())
}

/// The entry of a SQL server backend: the same options and checks, its own store type and
/// cargo feature.
macro_rules! server_kind {
    ($kind:ident, $name:literal, $store:ident, $about:literal) => {
        fn $kind() -> BackendKind {
            BackendKind {
                name: $name,
                about: $about,
                feature: Some($name),
                built: cfg!(feature = $name),
                server: true,
                check: |o| SqlServerConfig::decode(o).map(|_| ()),
                location: |o| server_location($name, o),
                connect_timeout: server_timeout,
                resolve_paths: no_paths,
                open: |o, limits| {
                    Box::pin(async move {
                        let c = options($name, o, SqlServerConfig::decode)?;
                        #[cfg(feature = $name)]
                        return Ok(
                            Arc::new(crate::sql::$store::connect_with(&c, limits).await?)
                                as Arc<dyn StatStore>,
                        );
                        #[cfg(not(feature = $name))]
                        {
                            let _ = (c, limits);
                            Err(not_built($name))
                        }
                    })
                },
                probe: |o| {
                    Box::pin(async move {
                        let c = options($name, o, SqlServerConfig::decode)?;
                        #[cfg(feature = $name)]
                        return crate::sql::$store::probe(&c)
                            .await
                            .map(|()| format!(concat!($name, ": {} answers"), redact_url(&c.url)));
                        #[cfg(not(feature = $name))]
                        {
                            let _ = c;
                            Err(not_built($name))
                        }
                    })
                },
            }
        }
    };
}

server_kind!(
    postgres,
    "postgres",
    PgStore,
    "PostgreSQL (stored HLLs readable by the hll extension)"
);
server_kind!(mysql, "mysql", MysqlStore, "MySQL or MariaDB");

fn mongodb() -> BackendKind {
    BackendKind {
        name: "mongodb",
        about: "MongoDB (one document per node)",
        feature: Some("mongodb"),
        built: cfg!(feature = "mongodb"),
        server: true,
        check: |o| MongoConfig::decode(o).map(|_| ()),
        location: |o| {
            MongoConfig::decode(o).map_or_else(
                |_| "mongodb".into(),
                |c| {
                    format!(
                        "mongodb {} database {} collection {}",
                        redact_url(&c.uri),
                        c.database,
                        c.collection
                    )
                },
            )
        },
        connect_timeout: |o| {
            MongoConfig::decode(o).map_or(Duration::ZERO, |c| {
                Duration::from_secs(c.connect_timeout_secs)
            })
        },
        resolve_paths: no_paths,
        open: |o, _| {
            Box::pin(async move {
                let c = options("mongodb", o, MongoConfig::decode)?;
                #[cfg(feature = "mongodb")]
                return Ok(
                    Arc::new(crate::mongo::MongoStore::open(&c).await?) as Arc<dyn StatStore>
                );
                #[cfg(not(feature = "mongodb"))]
                {
                    let _ = c;
                    Err(not_built("mongodb"))
                }
            })
        },
        probe: |o| {
            Box::pin(async move {
                let c = options("mongodb", o, MongoConfig::decode)?;
                // Opening only pings the server: MongoDB creates collections on first write.
                #[cfg(feature = "mongodb")]
                return crate::mongo::MongoStore::open(&c)
                    .await
                    .map(|_| format!("mongodb: {} answers", redact_url(&c.uri)));
                #[cfg(not(feature = "mongodb"))]
                {
                    let _ = c;
                    Err(not_built("mongodb"))
                }
            })
        },
    }
}

impl Backends {
    /// authstat's own backends (those this build lacks are listed, and refused when opened,
    /// naming the feature to build with).
    pub fn builtin() -> Self {
        Self {
            kinds: vec![memory(), sqlite(), postgres(), mysql(), mongodb()],
        }
    }

    /// Adds (or replaces, by name) a backend type.
    pub fn with(mut self, kind: BackendKind) -> Self {
        self.kinds.retain(|k| k.name != kind.name);
        self.kinds.push(kind);
        self
    }

    /// The backend types.
    pub fn kinds(&self) -> &[BackendKind] {
        &self.kinds
    }

    /// The type of `config`; unknown: the key and the message.
    pub fn kind(&self, config: &BackendConfig) -> Result<&BackendKind, (String, String)> {
        self.kinds
            .iter()
            .find(|k| k.name == config.kind)
            .ok_or_else(|| {
                let known: Vec<&str> = self.kinds.iter().map(|k| k.name).collect();
                (
                    "backend.type".to_owned(),
                    format!(
                        "unknown backend type `{}` (the types: {})",
                        config.kind,
                        known.join(", ")
                    ),
                )
            })
    }

    /// The backend of `config` checked: a known type, usable options (the key and the message
    /// of a problem, for the configuration's loader to place).
    pub fn check_config(&self, config: &AgentConfig) -> Result<(), (String, String)> {
        let kind = self.kind(&config.backend)?;
        (kind.check)(&config.backend.options).map_err(|e| (e.under("backend"), e.message))
    }

    fn kind_or_error(&self, config: &BackendConfig) -> Result<&BackendKind, StoreError> {
        self.kind(config)
            .map_err(|(_, message)| StoreError::Rejected {
                backend: "unknown",
                message,
            })
    }

    /// Opens the backend of `config`, its sessions bounded by `limits`.
    pub async fn open(
        &self,
        config: &BackendConfig,
        limits: SessionLimits,
    ) -> Result<Arc<dyn StatStore>, StoreError> {
        let kind = self.kind_or_error(config)?;
        (kind.open)(&config.options, limits).await
    }

    /// Checks that the backend of `config` can be used, writing nothing: what it found.
    pub async fn probe(&self, config: &BackendConfig) -> Result<String, StoreError> {
        let kind = self.kind_or_error(config)?;
        (kind.probe)(&config.options).await
    }

    /// Where the data of `config` goes, for logs.
    pub fn location(&self, config: &BackendConfig) -> String {
        self.kind(config)
            .map_or_else(|_| config.kind.clone(), |k| (k.location)(&config.options))
    }

    /// How long connecting to the backend of `config` may take.
    pub fn connect_timeout(&self, config: &BackendConfig) -> Duration {
        self.kind(config)
            .map_or(Duration::ZERO, |k| (k.connect_timeout)(&config.options))
    }

    /// Makes the relative paths of `config`'s options relative to `base`.
    pub fn resolve_paths(&self, config: &mut BackendConfig, base: &Path) {
        if let Ok(kind) = self.kind(config).copied() {
            (kind.resolve_paths)(&mut config.options, base);
        }
    }

    /// The feature this build lacks for the type of `config`, if it lacks one.
    pub fn missing_feature(&self, config: &BackendConfig) -> Option<&'static str> {
        self.kind(config)
            .ok()
            .and_then(|k| if k.built { None } else { k.feature })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(backend: &str) -> authstat_config::ConfigError {
        let text = format!(
            "sources:\n  - {{name: a, type: file, format: janssen_audit, paths: [x]}}\nbackend:\n{backend}"
        );
        let backends = Backends::builtin();
        authstat_config::parse_checked(
            &text,
            "authstat.yaml",
            &std::collections::HashMap::<String, String>::new(),
            &|c| backends.check_config(c),
        )
        .unwrap_err()
    }

    #[test]
    fn each_backend_checks_its_options_where_they_stand() {
        let e = err("  type: postgres\n  url: postgres://h\n  pool: 3\n");
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(6), Some("backend.pool")),
            "{e}"
        );
        assert!(e.message.contains("unknown field `pool`"), "{e}");
        let e = err("  type: oracle\n");
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(4), Some("backend.type")),
            "{e}"
        );
        assert!(e.message.contains("unknown backend type `oracle`"), "{e}");
        let e = err("  type: sqlite\n  url: x\n");
        assert_eq!(e.key.as_deref(), Some("backend.url"), "{e}");
        let e = err("  type: postgres\n");
        assert_eq!(e.key.as_deref(), Some("backend.url"), "{e}");
        assert!(e.message.contains("missing field `url`"), "{e}");
        let e = err("  type: memory\n  path: x\n");
        assert_eq!(e.key.as_deref(), Some("backend.path"), "{e}");
    }

    #[test]
    fn defaults_locations_and_paths() {
        let backends = Backends::builtin();
        let config: BackendConfig =
            serde_yaml::from_str("type: mongodb\nuri: mongodb://u:pw@h\n").unwrap();
        let m = MongoConfig::decode(&config.options).unwrap();
        assert_eq!(
            (m.database.as_str(), m.collection.as_str()),
            ("authstat", "authstat_nodes")
        );
        assert_eq!(
            backends.location(&config),
            "mongodb mongodb://u:***@h database authstat collection authstat_nodes"
        );
        let mut config: BackendConfig =
            serde_yaml::from_str("type: sqlite\npath: d/a.db\n").unwrap();
        backends.resolve_paths(&mut config, Path::new("/etc/authstat"));
        let c = SqliteConfig::decode(&config.options).unwrap();
        assert_eq!(c.path, Path::new("/etc/authstat/d/a.db"));
        assert_eq!((c.busy_timeout_ms, c.pool_size), (5000, 4));
        assert_eq!(backends.connect_timeout(&config), Duration::from_secs(5));
        let server = SqlServerConfig {
            url: "postgres://app:hunter2@db/x".into(),
            pool_size: 1,
            connect_timeout_secs: 1,
        };
        assert!(!format!("{server:?}").contains("hunter2"));
        assert_eq!(server.postgres().kind(), "postgres");
    }
}
