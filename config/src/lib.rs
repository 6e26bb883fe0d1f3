//! authstat-config: the configuration of the authstat agent.
//!
//! Raw configuration only: serde structs with a doc comment and a default for every option, and
//! the checks that need no I/O. Nothing here connects anywhere; the agent resolves these into
//! runtime objects (pools, listeners, watched files).
//!
//! [`load`] reads the YAML file, expands `${VAR}` and `${VAR:-default}` (from an [`Env`], so
//! tests never touch the process environment), rejects unknown keys, and reports every problem
//! with the file, line, column and key path ([`ConfigError`]).
//!
//! YAML is parsed by `serde_norway`, a maintained fork of the archived `serde_yaml` with the same
//! API, imported under the name `serde_yaml`; only [`load`] and [`parse`] touch it, so it can be
//! swapped without changing anything else.
//!
//! ```
//! use std::collections::HashMap;
//!
//! let env: HashMap<String, String> = [("POD_NAME".to_string(), "auth-0".to_string())].into();
//! let config = authstat_config::parse(
//!     "node_id: ${POD_NAME}\nsources:\n  - {name: audit, type: file, format: janssen_audit, paths: [/logs/audit.log]}\n",
//!     "authstat.yaml",
//!     &env,
//! )?;
//! assert_eq!(config.node_id.unwrap().as_str(), "auth-0");
//! assert_eq!(config.backend.kind(), "sqlite");
//!
//! let err = authstat_config::parse("sources: []\nflush_interval: 5\n", "authstat.yaml", &env)
//!     .unwrap_err();
//! assert!(err.to_string().starts_with("authstat.yaml:2:1: "), "{err}");
//! # Ok::<(), authstat_config::ConfigError>(())
//! ```

mod agent;
mod api;
mod backend;
mod env;
mod export;
mod load;
mod locate;
pub mod options;
mod source;
mod tls;
mod values;

pub use agent::{
    AgentConfig, DeriveConfig, FailedAuthRule, HllConfig, LogFormat, LoggingConfig, PerClientConfig,
};
pub use api::{
    ApiConfig, AuthConfig, DashboardConfig, IntrospectionConfig, JWT_ALGORITHMS, JwtConfig,
    StaticToken,
};
pub use backend::{BackendConfig, redact_url};
pub use env::{Env, ProcessEnv};
pub use export::ExportConfig;
pub use load::{ConfigError, MAX_DURATION_SECS, load, load_checked, parse, parse_checked};
pub use locate::locate;
pub use source::{BACKFILL_SOURCE, SourceConfig};
pub use tls::ApiTlsConfig;

#[cfg(test)]
mod tests;
