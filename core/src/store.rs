//! The storage contract every backend implements: [`StatStore`].
//!
//! # The model
//! Each agent (node) owns its rows: per month an HLL and counters, and per node the positions
//! of its sources, a flush sequence number and a lease. Reads merge all nodes.
//!
//! # Exactly-once
//! The agent aggregates in memory and flushes a [`FlushBatch`]: for each touched month the
//! node's *whole* current HLL (the store replaces it; HLL union is idempotent anyway) and the
//! counter *deltas* since the last flush (the store adds them), together with the positions of
//! its sources (the store replaces them) and a sequence number. The store applies all of it as
//! one atomic unit, or nothing. Because counters are deltas, a retried batch must not be
//! applied twice: the store records the node's last applied `seq` in the same atomic unit and
//! treats a batch whose `seq` is not above it as already applied. After a crash the agent loads
//! its [`NodeState`] and its sources resume at their positions, so nothing is lost and nothing
//! is counted twice.
//!
//! # One node id, one agent
//! The sequence number protects a node against replaying its own flushes; it cannot tell two
//! agents that (wrongly) use the same node id apart. So a node id is *owned*: an agent claims
//! it at start ([`StatStore::claim_node`]) and gets an **epoch**, a number that grows with
//! every claim. Every flush carries the epoch and renews the lease; a flush whose epoch is not
//! the node's current one is refused with [`StoreError::Fenced`] and changes nothing. A live
//! lease held by another instance refuses a claim unless the caller takes over explicitly; an
//! expired or released one is taken over.
//!
//! # Positions are opaque
//! A [`SourcePosition`] is bytes to the store: a source (a file tailer, a queue consumer) puts
//! whatever it needs to resume into `data`, and the store keeps it with the node's rows.
//!
//! # Claims
//! Some things must be read by one node only, cluster-wide (a file that `authstat backfill`
//! reads must not also be counted by an agent). [`StatStore::claim_keys`] records, per key,
//! which node and source read it first; later claimants see the owner. A claim moves to
//! another node only by [`StatStore::take_over_key`], a compare-and-set on the owner's epoch.
//!
//! # Snapshots
//! Some upstreams keep running totals themselves (Janssen writes its own statistics, one row per
//! server node and month, overwritten every few minutes). Adding such a total as a delta would
//! count it again at every read of the row, so it is stored as a **snapshot**: each upstream
//! row is a foreign node of its own ([`NodeId::foreign`]), and [`StatStore::put_snapshot`]
//! *replaces* that node's months with the snapshot's values. Reading the same row twice, or a
//! row that grew, leaves exactly the row's values stored. Reads add foreign nodes' counters to
//! everyone's and keep their users apart ([`MonthStats::foreign_users`]): they are hashed by
//! the upstream, perhaps not as authstat hashes.
//!
//! # Folding silent nodes
//! Node ids churn (in Kubernetes the pod name changes at every rollout), and a read merges
//! every node's rows. [`StatStore::fold_silent`] moves the monthly rows of nodes that have not
//! flushed for a long time into one row per month of the reserved node [`NodeId::folded`]
//! (HLLs unioned, counters summed), so reads stay proportional to the months, not to every
//! node id ever seen. A folded node keeps its `seq`, positions and lease: an agent that comes
//! back resumes where it stopped and writes new rows for itself; reads add them to the folded
//! rows, so nothing is lost and nothing is counted twice (its HLL may hold users the folded
//! HLL holds too: a union does not count them twice).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::counters::Counters;
use crate::dims::{DimFlush, DimKind, MonthDims};
use crate::hll::Hll;
use crate::{Month, MonthStats, NodeId};

/// Where one source of a node stands: opaque to the store, meaningful to the source.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePosition {
    /// The configured source's name.
    pub source: String,
    /// The source's own key for this position (a file's content identity, a queue's name);
    /// unique per node and source, at most 255 bytes.
    pub key: String,
    /// What the source needs to resume (JSON by convention, so operators can read it).
    pub data: String,
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
    /// The node's whole HLL of the month's active clients (replaces the stored one), if it
    /// recorded any.
    pub clients: Option<Hll>,
    /// The clients and realms touched since the previous flush, ascending and without
    /// duplicates: per dimension the users seen since then (unioned into the stored HLL: a
    /// retry or a replay adds nobody twice) and the counter increments (added).
    pub dims: Vec<DimFlush>,
}

/// Everything one flush writes for one node, applied atomically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlushBatch {
    /// The node the rows belong to.
    pub node: NodeId,
    /// The epoch of the node's claim this batch was made under ([`NodeClaim::Granted`]).
    pub epoch: u64,
    /// The lease is renewed until this time (milliseconds since the Unix epoch).
    pub lease_until_ms: i64,
    /// Strictly increasing per node; guards against applying a retried batch twice.
    pub seq: u64,
    /// The months touched since the previous flush.
    pub months: Vec<MonthFlush>,
    /// The node's complete position set after this batch (replaces the stored set), or
    /// `None` when it did not change.
    pub positions: Option<Vec<SourcePosition>>,
}

/// What happened to a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushOutcome {
    /// The batch was applied.
    Applied,
    /// A batch with this `seq` or a later one had already been applied by this same claim
    /// (this exact flush was retried after its answer was lost); nothing changed.
    AlreadyApplied,
}

/// One node's stored state, loaded to resume after a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeState {
    /// The `seq` of the last applied batch (0 when the node never flushed).
    pub seq: u64,
    /// The node's own months (not merged with other nodes), ascending.
    pub months: Vec<MonthStats>,
    /// The node's source positions, ordered by source and key.
    pub positions: Vec<SourcePosition>,
}

/// One running agent process: who holds (or held) a node's lease.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    /// A random id, new for every start.
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it started (milliseconds since the Unix epoch).
    pub started_at_ms: i64,
    /// Where its pid means something: the kernel's boot id and the pid namespace (empty when
    /// unknown). Another instance of the same locality can tell whether this one still runs.
    #[serde(default)]
    pub locality: String,
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "instance {} (host {}, pid {}, started at {} ms)",
            self.id, self.host, self.pid, self.started_at_ms
        )
    }
}

/// The stored lease of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The node.
    pub node: NodeId,
    /// The epoch of the latest claim.
    pub epoch: u64,
    /// Who claimed it last (`None` for a node written before leases existed).
    pub holder: Option<Instance>,
    /// Until when the holder's claim is valid (milliseconds since the Unix epoch).
    pub until_ms: i64,
    /// The holder gave the node up at a clean stop.
    pub released: bool,
}

impl Lease {
    /// Whether the holder may still be running at `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        !self.released && self.holder.is_some() && self.until_ms > now_ms
    }
}

/// A request to own a node id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    /// The node id.
    pub node: NodeId,
    /// Who asks.
    pub instance: Instance,
    /// The lease runs until this time (milliseconds since the Unix epoch).
    pub until_ms: i64,
    /// The current time as the claimant sees it (to judge the stored lease).
    pub now_ms: i64,
    /// Whether to take the node over from a live lease.
    pub take_over: TakeOver,
}

/// Taking a node over from a live lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TakeOver {
    /// Never: a live lease of another instance refuses the claim.
    Never,
    /// Always (an operator's decision: a replacement after a crash).
    Always,
    /// Only if the node's epoch is still this one (the caller found its holder gone and must
    /// not take it from a newer claim).
    IfEpoch(u64),
}

/// What [`StatStore::claim_node`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeClaim {
    /// The node is the claimant's, under `epoch`; `previous` is the lease it replaced.
    Granted {
        /// The new epoch: every flush of this claim carries it.
        epoch: u64,
        /// The lease before this claim (`None` for a new node).
        previous: Option<Lease>,
    },
    /// Another instance holds a live lease; nothing changed.
    Refused {
        /// The live lease.
        holder: Lease,
    },
}

/// An upstream's running totals for one foreign node: the whole of its months, replacing what
/// is stored ([`StatStore::put_snapshot`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The foreign node ([`NodeId::foreign`]).
    pub node: NodeId,
    /// The upstream's version of the row (Janssen's `lastUpdatedAt`, 0 when unknown): a
    /// snapshot older than the stored one changes nothing.
    pub version: i64,
    /// The node's months, each replacing the stored month whole (HLL and every counter).
    pub months: Vec<MonthStats>,
}

/// What happened to a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// Stored: the node's months hold exactly the snapshot's values.
    Applied,
    /// A newer version is stored already (another agent read the row later); nothing changed.
    Stale,
}

/// Which nodes [`StatStore::fold_silent`] folds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldRequest {
    /// A node whose last flush was applied before this time is silent (milliseconds since
    /// the Unix epoch).
    pub silent_before_ms: i64,
    /// The current time: a node whose lease is live at this time is never folded.
    pub now_ms: i64,
}

/// What [`StatStore::fold_silent`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoldReport {
    /// The nodes whose monthly rows were folded, ordered by node id (empty when there was
    /// nothing to fold, for example because another agent folded them first).
    pub nodes: Vec<NodeId>,
    /// How many months of those nodes were folded (summed over the nodes).
    pub node_months: usize,
}

/// One node as stored: its last flush and its lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSummary {
    /// The node.
    pub node: NodeId,
    /// The `seq` of its last applied flush.
    pub seq: u64,
    /// When its last flush was applied (milliseconds since the Unix epoch; 0 if never).
    pub updated_at_ms: i64,
    /// Its lease (`None` for a node written before leases existed).
    pub lease: Option<Lease>,
}

/// Who owns a claimed key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyOwner {
    /// The node.
    pub node: NodeId,
    /// The node's source that reads it.
    pub source: String,
    /// The node's epoch when it claimed (or confirmed) the key.
    pub epoch: u64,
}

/// The answer to one key of [`StatStore::claim_keys`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyClaim {
    /// The key is the claimant's (newly, or it was already).
    Ours,
    /// Another node (or another source of this node) owns it.
    Theirs(KeyOwner),
}

/// The error a store operation failed with underneath (the database driver's), kept for
/// `Error::source`. Compared as equal whatever it holds: errors are compared by what they mean.
#[derive(Clone, Default)]
pub struct Cause(Option<Arc<dyn std::error::Error + Send + Sync>>);

impl Cause {
    /// Keeps `error`.
    pub fn of(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(error)))
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(e) => write!(f, "{e:?}"),
            None => f.write_str("-"),
        }
    }
}

impl PartialEq for Cause {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Cause {}

/// Why a store operation failed, and whether a retry can help.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached or dropped the connection. Retry later with the same
    /// batch: nothing was applied (or, if the answer was lost after a commit, the retry is
    /// recognised by its `seq`).
    Unavailable {
        /// The backend kind (`sqlite`, `postgres`, …).
        backend: &'static str,
        /// What went wrong (never contains credentials).
        message: String,
        /// The driver's error, if there was one.
        cause: Cause,
    },
    /// Stored data cannot be read back (for example HLL bytes that do not decode).
    Corrupt {
        /// The backend kind.
        backend: &'static str,
        /// What is wrong and where.
        message: String,
        /// The error that showed it, if there was one.
        cause: Cause,
    },
    /// The request itself is invalid (for example HLLs with other parameters than stored).
    /// Retrying the same request fails again.
    Rejected {
        /// The backend kind.
        backend: &'static str,
        /// Why.
        message: String,
    },
    /// The node was claimed by another instance since this one claimed it: this instance no
    /// longer owns the node and nothing of the request was applied. Never retryable.
    Fenced {
        /// The backend kind.
        backend: &'static str,
        /// The node.
        node: NodeId,
        /// Who owns it now.
        holder: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable {
                backend, message, ..
            } => write!(f, "{backend} backend unavailable: {message}"),
            StoreError::Corrupt {
                backend, message, ..
            } => write!(f, "{backend} backend holds invalid data: {message}"),
            StoreError::Rejected { backend, message } => {
                write!(f, "{backend} backend rejected the request: {message}")
            }
            StoreError::Fenced { node, holder, .. } => write!(
                f,
                "node {node} is now owned by {holder}: this agent's flush was refused (fenced)"
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Unavailable { cause, .. } | StoreError::Corrupt { cause, .. } => {
                cause.0.as_deref().map(|e| e as _)
            }
            _ => None,
        }
    }
}

impl StoreError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// The same error, keeping `error` as its cause (for `Unavailable` and `Corrupt`).
    pub fn because(mut self, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        if let StoreError::Unavailable { cause, .. } | StoreError::Corrupt { cause, .. } = &mut self
        {
            *cause = Cause::of(error);
        }
        self
    }
}

/// A storage backend. Built once per agent and shared as `Arc<dyn StatStore>`.
///
/// Every method may be called concurrently from several tasks; implementations must not block
/// the async runtime (synchronous drivers run their work on a blocking thread pool). No method
/// retries on its own: the caller decides when to try again. After the agent's shutdown no
/// method is called.
#[async_trait]
pub trait StatStore: Send + Sync + fmt::Debug {
    /// The backend kind, as in the configuration (`memory`, `sqlite`, `postgres`, …).
    fn kind(&self) -> &'static str;

    /// Claims `request.node` for `request.instance`, atomically: granted (with a new, higher
    /// epoch) when the node is new, its lease was released or has expired at
    /// `request.now_ms`, its holder is this same instance, or `take_over` allows it; refused,
    /// changing nothing, when another instance holds a live lease.
    async fn claim_node(&self, request: &ClaimRequest) -> Result<NodeClaim, StoreError>;

    /// Gives the node up at a clean stop (its lease is marked released), if `epoch` is still
    /// the current one; otherwise does nothing.
    async fn release_node(&self, node: &NodeId, epoch: u64) -> Result<(), StoreError>;

    /// The node's stored lease (`None` for a node never claimed nor written).
    async fn lease(&self, node: &NodeId) -> Result<Option<Lease>, StoreError>;

    /// Applies `batch` atomically: the HLL of every month replaced, every counter delta added,
    /// the node's positions replaced (if given), its `seq` recorded and its lease renewed — all
    /// of it, or (on error) nothing. Order of checks: a batch whose `epoch` is not the node's
    /// current one fails with [`StoreError::Fenced`]; then a batch whose `seq` is not above the
    /// stored one changes nothing and returns [`FlushOutcome::AlreadyApplied`]. On
    /// [`StoreError::Unavailable`] the caller keeps the batch and retries it later, unchanged.
    async fn flush(&self, batch: &FlushBatch) -> Result<FlushOutcome, StoreError>;

    /// The stored state of one node (its own rows only), to resume after a restart. A node
    /// that never flushed gets the default (empty) state.
    async fn load_node(&self, node: &NodeId) -> Result<NodeState, StoreError>;

    /// One node's own clients and realms of `months` (to resume after a restart: the ids it
    /// holds count towards its cap), ascending; months without any are absent.
    async fn node_dims(
        &self,
        node: &NodeId,
        months: &[Month],
    ) -> Result<Vec<MonthDims>, StoreError>;

    /// Every node that claimed its id or stored anything, ordered by node id.
    async fn nodes(&self) -> Result<Vec<NodeSummary>, StoreError>;

    /// The stats of `months`, merged over all nodes (HLL union, counter sums; foreign nodes'
    /// users unioned apart, in [`MonthStats::foreign_users`]), in ascending month order without
    /// duplicates. Months nobody stored anything for are absent. One
    /// database round trip where the database allows it.
    async fn read_months(&self, months: &[Month]) -> Result<Vec<MonthStats>, StoreError>;

    /// The clients (or realms) of `months`, merged over all nodes like
    /// [`StatStore::read_months`] (HLL union, counter sums), in ascending month order; months
    /// without any are absent. Foreign snapshots have none.
    async fn read_dims(
        &self,
        months: &[Month],
        kind: DimKind,
    ) -> Result<Vec<MonthDims>, StoreError>;

    /// Removes the per-day users (dimensions of kind [`DimKind::Day`]) of every month before
    /// `month`, of every node and of the roll-up (the retention of the daily detail). Months
    /// and the other dimensions stay. Returns how many stored items it removed (rows, or fields
    /// of documents). Idempotent.
    async fn drop_days_before(&self, month: Month) -> Result<u64, StoreError>;

    /// A number that changes whenever any node's flush is applied (caches compare it to know
    /// whether what they hold is still current).
    async fn data_version(&self) -> Result<u64, StoreError>;

    /// The version of every month's merged statistics: it changes whenever a write changes
    /// what [`StatStore::read_months`] answers for that month (and only then: a flush of the
    /// current month leaves past months' versions alone), so that a cache keeps what it holds
    /// of other months. Months nobody stored anything for are absent.
    async fn month_versions(&self) -> Result<BTreeMap<Month, u64>, StoreError>;

    /// A cheap check that the database answers (the health endpoint's `db_status`).
    async fn health(&self) -> Result<(), StoreError>;

    /// Stores `snapshot` for its foreign node, atomically: when `snapshot.version` is not below
    /// the stored version, each of its months replaces the node's stored month (HLL and all
    /// counters: a counter absent from the snapshot is gone), the version is recorded and the
    /// data version changes; otherwise nothing changes ([`SnapshotOutcome::Stale`]). Idempotent:
    /// storing the same snapshot again leaves the same values. A node that is not foreign is
    /// [`StoreError::Rejected`].
    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotOutcome, StoreError>;

    /// Records that the whole cluster had `users` distinct users in `month` up to `day` (1–31,
    /// month to date). The largest figure recorded for a day is kept: agents that record the
    /// same day at once cannot lower it.
    async fn record_daily_users(
        &self,
        month: Month,
        day: u32,
        users: u64,
    ) -> Result<(), StoreError>;

    /// The month-to-date figures recorded for `month`, by day.
    async fn daily_users(
        &self,
        month: Month,
    ) -> Result<std::collections::BTreeMap<u32, u64>, StoreError>;

    /// Folds every silent node into [`NodeId::folded`]: a node other than that one whose last
    /// flush was applied before `request.silent_before_ms` and whose lease is not live at
    /// `request.now_ms` has its monthly rows removed and added to the folded node's rows of
    /// the same months (HLLs unioned, counters summed). Its `seq`, positions and lease stay.
    ///
    /// Foreign nodes ([`NodeId::foreign`]) are never folded: they hold snapshots, and their
    /// users are hashed by their upstream.
    ///
    /// Merged reads ([`StatStore::read_months`]) answer the same before, during and after a
    /// fold. Atomic per node at least: a flush of a node is either wholly in the fold or wholly
    /// after it, and a node is folded once however many agents fold at the same time (the
    /// others find nothing to do). A fold that changed anything changes the data version.
    async fn fold_silent(&self, request: &FoldRequest) -> Result<FoldReport, StoreError>;

    /// Claims `keys` for `owner`, cluster-wide and atomically per key: an unclaimed key becomes
    /// `owner`'s; a key `owner`'s node and source already hold is confirmed under `owner.epoch`;
    /// any other key stays with its owner, who is returned. One answer per key, in order.
    async fn claim_keys(
        &self,
        owner: &KeyOwner,
        keys: &[String],
    ) -> Result<Vec<KeyClaim>, StoreError>;

    /// Moves `key` from `from` to `to` if `from` (node, source and epoch) still owns it: a
    /// compare-and-set. True if it moved.
    async fn take_over_key(
        &self,
        key: &str,
        from: &KeyOwner,
        to: &KeyOwner,
    ) -> Result<bool, StoreError>;
}
