//! authstat-config: the configuration of the authstat agent.
//!
//! Raw configuration only: serde structs with a doc comment and a default for every option, and
//! syntactic checks. Nothing here connects anywhere; the agent resolves these into runtime
//! objects (pools, listeners, compiled globs).
//!
//! So far this crate holds the `backend:` section ([`BackendConfig`]). The rest of the file
//! (sources, API, export, logging) and the YAML loader with file/line/key errors come with the
//! agent.

mod backend;

pub use backend::{BackendConfig, MongoConfig, SqlServerConfig, SqliteConfig, redact_url};
