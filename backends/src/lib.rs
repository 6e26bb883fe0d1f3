//! authstat-backends: where authstat keeps its statistics.
//!
//! Every backend implements [`authstat_core::store::StatStore`] and is used as an
//! `Arc<dyn StatStore>` built by [`build`] from the configuration's `backend:` section:
//!
//! | `type` | module | notes |
//! |---|---|---|
//! | `memory` | [`memory`] | tests and trials; lost at exit |
//! | `sqlite` | [`sql`] | the embedded default: one file, WAL mode |
//! | `postgres` | [`sql`] | feature `postgres`; stored HLLs readable by the `hll` extension |
//! | `mysql` | [`sql`] | feature `mysql`; MySQL and MariaDB |
//! | `mongodb` | [`mongo`] | feature `mongodb`; one document per node |
//!
//! The design decision they share: **each node writes only its own rows, and a flush is one
//! atomic unit** (the counter deltas, the node's HLLs, its checkpoints and a sequence number that
//! makes a retried flush a no-op). Reads merge all nodes. See [`authstat_core::store`] for the
//! contract and `docs/storage.md` for the schemas.

use std::sync::Arc;
use std::time::Duration;

use authstat_config::BackendConfig;
use authstat_core::store::{StatStore, StoreError};

pub mod memory;
mod merge;
#[cfg(feature = "mongodb")]
pub mod mongo;
pub mod options;
pub mod registry;
mod rollup;
mod rules;
mod settle;
pub mod sql;

pub use registry::{BackendKind, Backends};
pub use settle::Settled;

/// Milliseconds since the Unix epoch by the wall clock (when a flush was applied).
pub(crate) fn sql_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How long the backend lets one statement, one lock wait and one open transaction of this
/// agent last, derived from the node lease so that a frozen agent's transaction is gone (the
/// server ends it) before its lease runs out, and a replacement never waits on it for longer.
///
/// PostgreSQL: `statement_timeout`, `lock_timeout`, `idle_in_transaction_session_timeout`;
/// MariaDB: `max_statement_time`, `innodb_lock_wait_timeout`, `idle_transaction_timeout`;
/// MySQL: `max_execution_time`, `innodb_lock_wait_timeout`, `wait_timeout`; SQLite: its busy
/// timeout (a lock of the file, in this host). Every call of the agent is also bounded as a
/// whole by [`SessionLimits::call`] (MongoDB's operations are single-document and hold no
/// lock between them: the call bound is their limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// One statement.
    pub statement: Duration,
    /// One wait for a lock.
    pub lock_wait: Duration,
    /// A transaction whose client sends nothing (a frozen or stopped agent).
    pub idle_in_transaction: Duration,
    /// One call of the agent's (a flush, a read, a claim), connecting included.
    pub call: Duration,
}

impl SessionLimits {
    /// The limits for a node lease of `lease`: a third of it for a lock wait and an idle
    /// transaction (at least 1 s), half of it for a statement (at least 1 s), and the lease
    /// plus `connect` for a whole call.
    pub fn for_lease(lease: Duration, connect: Duration) -> Self {
        let second = Duration::from_secs(1);
        let third = (lease / 3).max(second);
        Self {
            statement: (lease / 2).max(second),
            lock_wait: third,
            idle_in_transaction: third,
            call: lease.max(second) + connect,
        }
    }
}

impl Default for SessionLimits {
    /// The limits of the default 60 s lease and a 10 s connection timeout.
    fn default() -> Self {
        Self::for_lease(Duration::from_secs(60), Duration::from_secs(10))
    }
}

/// Checks that the configured backend can be used, writing nothing (`authstat check-config`):
/// a SQLite file, or the directory it would be created in, is writable; a server answers. What
/// it found, in words.
pub async fn probe(config: &BackendConfig) -> Result<String, StoreError> {
    Backends::builtin().probe(config).await
}

/// Builds the configured backend: connects, creates or migrates the schema, and checks that the
/// database answers.
///
/// Fails with [`StoreError::Unavailable`] when the database cannot be reached (the caller may
/// retry), and with [`StoreError::Rejected`] for a backend this build was compiled without.
pub async fn build(config: &BackendConfig) -> Result<Arc<dyn StatStore>, StoreError> {
    build_with(config, SessionLimits::default()).await
}

/// [`build`] with the session limits of the agent's lease: every connection of a server
/// backend sets them for itself.
pub(crate) async fn build_with(
    config: &BackendConfig,
    limits: SessionLimits,
) -> Result<Arc<dyn StatStore>, StoreError> {
    Backends::builtin().open(config, limits).await
}
