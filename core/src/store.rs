//! The storage contract every backend implements: [`StatStore`].
//!
//! # The model
//! Each agent (node) owns its rows: per month an HLL and counters, and per node the source
//! checkpoints and a flush sequence number. Reads merge all nodes.
//!
//! # Exactly-once
//! The agent aggregates in memory and flushes a [`FlushBatch`]: for each touched month the
//! node's *whole* current HLL (the store replaces it; HLL union is idempotent anyway) and the
//! counter *deltas* since the last flush (the store adds them), together with the node's
//! complete checkpoint set (the store replaces it) and a sequence number. The store applies
//! all of it as one atomic unit, or nothing. Because counters are deltas, a retried batch must
//! not be applied twice: the store records the node's last applied `seq` in the same atomic
//! unit and treats a batch whose `seq` is not above it as already applied. After a crash the
//! agent loads its [`NodeState`] and resumes reading at the checkpoints, so nothing is lost and
//! nothing is counted twice.

use async_trait::async_trait;

use crate::counters::Counters;
use crate::hll::Hll;
use crate::{Month, MonthStats, NodeId};

/// How far one source file has been read, and how to recognise that file again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The name of the configured source the file belongs to.
    pub source: String,
    /// The path the file had when last read (informational: files are recognised by identity,
    /// not by path, because rotation renames them).
    pub path: String,
    /// Device number of the file.
    pub device: u64,
    /// Inode number of the file.
    pub inode: u64,
    /// A hash of the file's first `fingerprint_len` bytes; tells a reused inode from the same
    /// file, and a truncated-and-rewritten file from the one that was read.
    pub fingerprint: u64,
    /// How many leading bytes the fingerprint covers (the file may have been shorter).
    pub fingerprint_len: u32,
    /// Byte offset of the first byte not yet consumed; always at a record boundary.
    pub offset: u64,
}

/// One month of a flush: the node's current HLL and the counter deltas since the last flush.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthFlush {
    /// The month.
    pub month: Month,
    /// The node's whole HLL for the month (replaces the stored one).
    pub users: Hll,
    /// Counter increments since the previous flush (added to the stored values).
    pub counter_deltas: Counters,
}

/// Everything one flush writes for one node, applied atomically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlushBatch {
    /// The node the rows belong to.
    pub node: NodeId,
    /// Strictly increasing per node; guards against applying a retried batch twice.
    pub seq: u64,
    /// The months touched since the previous flush.
    pub months: Vec<MonthFlush>,
    /// The node's complete checkpoint set after this batch (replaces the stored set).
    pub checkpoints: Vec<Checkpoint>,
}

/// What happened to a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushOutcome {
    /// The batch was applied.
    Applied,
    /// A batch with this `seq` or a later one had already been applied; nothing changed.
    AlreadyApplied,
}

/// One node's stored state, loaded to resume after a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeState {
    /// The `seq` of the last applied batch (0 when the node never flushed).
    pub seq: u64,
    /// The node's own months (not merged with other nodes), ascending.
    pub months: Vec<MonthStats>,
    /// The node's checkpoints.
    pub checkpoints: Vec<Checkpoint>,
}

/// Why a store operation failed, and whether a retry can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached or dropped the connection. Retry later with the same
    /// batch: nothing was applied.
    #[error("{backend} backend unavailable: {message}")]
    Unavailable {
        /// The backend kind (`sqlite`, `postgres`, …).
        backend: &'static str,
        /// What went wrong (never contains credentials).
        message: String,
    },
    /// Stored data cannot be read back (for example HLL bytes that do not decode).
    #[error("{backend} backend holds invalid data: {message}")]
    Corrupt {
        /// The backend kind.
        backend: &'static str,
        /// What is wrong and where.
        message: String,
    },
    /// The request itself is invalid (for example HLLs with other parameters than stored).
    /// Retrying the same request fails again.
    #[error("{backend} backend rejected the request: {message}")]
    Rejected {
        /// The backend kind.
        backend: &'static str,
        /// Why.
        message: String,
    },
}

impl StoreError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// A storage backend. Built once per agent and shared as `Arc<dyn StatStore>`.
///
/// Every method may be called concurrently from several tasks; implementations must not block
/// the async runtime (synchronous drivers run their work on a blocking thread pool). No method
/// retries on its own: the caller decides when to try again. After the agent's shutdown no
/// method is called.
#[async_trait]
pub trait StatStore: Send + Sync + std::fmt::Debug {
    /// The backend kind, as in the configuration (`memory`, `sqlite`, `postgres`, …).
    fn kind(&self) -> &'static str;

    /// Applies `batch` atomically: the HLL of every month replaced, every counter delta added,
    /// the node's checkpoints replaced and its `seq` recorded — all of it, or (on error)
    /// nothing. A batch whose `seq` is not above the stored one changes nothing and returns
    /// [`FlushOutcome::AlreadyApplied`]. On [`StoreError::Unavailable`] the caller keeps the
    /// batch and retries it later, unchanged.
    async fn flush(&self, batch: &FlushBatch) -> Result<FlushOutcome, StoreError>;

    /// The stored state of one node (its own rows only), to resume after a restart. A node
    /// that never flushed gets the default (empty) state.
    async fn load_node(&self, node: &NodeId) -> Result<NodeState, StoreError>;

    /// The stats of `months`, merged over all nodes (HLL union, counter sums), in ascending
    /// month order without duplicates. Months nobody stored anything for are absent. One
    /// database round trip where the database allows it.
    async fn read_months(&self, months: &[Month]) -> Result<Vec<MonthStats>, StoreError>;

    /// A cheap check that the database answers (the health endpoint's `db_status`).
    async fn health(&self) -> Result<(), StoreError>;
}
