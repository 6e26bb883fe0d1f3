//! The options of the built-in backends (`backend:` with its `type`), decoded from the
//! configuration's section as written ([`authstat_config::options::decode`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use authstat_config::options::{OptionError, decode, positive};
use authstat_config::{BackendConfig, redact_url};
use serde::{Deserialize, Serialize};

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

/// `type: memory`: no options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemoryConfig {}

impl SqliteConfig {
    /// The `backend:` section of these options.
    pub fn backend(&self) -> BackendConfig {
        BackendConfig::new("sqlite", self)
    }

    /// Decodes and checks `type: sqlite`'s options.
    pub fn decode(options: &serde_yaml::Mapping) -> Result<Self, OptionError> {
        let c: Self = decode(options)?;
        positive("pool_size", u64::from(c.pool_size))?;
        Ok(c)
    }
}

impl SqlServerConfig {
    /// The `backend:` section of type postgres with these options.
    pub fn postgres(&self) -> BackendConfig {
        BackendConfig::new("postgres", self)
    }

    /// The `backend:` section of type mysql with these options.
    pub fn mysql(&self) -> BackendConfig {
        BackendConfig::new("mysql", self)
    }

    /// Decodes and checks the options of `type: postgres` or `type: mysql`.
    pub fn decode(options: &serde_yaml::Mapping) -> Result<Self, OptionError> {
        let c: Self = decode(options)?;
        positive("pool_size", u64::from(c.pool_size))?;
        Ok(c)
    }

    /// How long a connection may take.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
}

impl MongoConfig {
    /// The `backend:` section of these options.
    pub fn backend(&self) -> BackendConfig {
        BackendConfig::new("mongodb", self)
    }

    /// Decodes and checks `type: mongodb`'s options.
    pub fn decode(options: &serde_yaml::Mapping) -> Result<Self, OptionError> {
        decode(options)
    }
}
