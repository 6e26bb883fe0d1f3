//! `type: sqlite | postgres | mysql`: the SQL backends, through diesel.
//!
//! Five tables (see `docs/storage.md`): `authstat_nodes` (a node's last flush `seq` and its
//! lease), `authstat_hll` (per node and month, the HLL in the postgresql-hll storage format),
//! `authstat_counters` (per node and month, `(kind, k1, k2) → value`), `authstat_positions`
//! (per node, its sources' positions) and `authstat_claims` (cluster-wide key claims).
//!
//! A flush is one transaction: lock the node's row, compare the epoch (fencing) and `seq`,
//! replace the HLLs, add the counter deltas, replace the positions, record `seq` and renew the
//! lease (`flush.rs`). Leases and claims are in `own.rs`. A read is one statement: the HLL rows
//! and the per-month counter sums of all nodes, unioned. diesel is synchronous, so every
//! operation runs on tokio's blocking pool with a connection from an r2d2 pool; the async
//! runtime is never blocked.

mod conn;
mod dialect;
mod dims;
mod flush;
mod fold;
#[cfg(feature = "mysql")]
mod mysql_tls;
mod own;
mod pool;
mod read;
mod rollup;
mod snapshot;
mod tx;

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use authstat_core::dims::{DimKind, MonthDims};
use authstat_core::month::now_ms;
use authstat_core::store::{
    ClaimRequest, FlushBatch, FlushOutcome, FoldReport, FoldRequest, KeyClaim, KeyOwner, Lease,
    NodeClaim, NodeState, NodeSummary, Snapshot, SnapshotOutcome, SourcePosition, StatStore,
    StoreError,
};
use authstat_core::{Month, MonthStats, NodeId};
use diesel::r2d2::{ConnectionManager, Pool};

pub use conn::SqlConnection;
use conn::{Bind, DailyRow, NodeListRow, NodeRow, PositionRow, SeqRow, StatRow};
use dialect::Dialect;
pub use pool::probe_sqlite_file;

use crate::merge::{Merger, distinct_months};
use read::*;
pub use tx::Interrupt;
use tx::*;

/// The longest counter key part the schema stores (`VARCHAR(255)`).
pub(crate) const MAX_KEY_PART_LEN: usize = 255;

/// A SQL backend over one diesel connection type.
pub struct SqlStore<C: SqlConnection> {
    pool: Pool<ConnectionManager<C>>,
    /// Test hook: where the next flush fails.
    fail_next_flush: Arc<Mutex<Option<FailAt>>>,
    /// Test hook: what interrupts the next flush, and where.
    interrupt_next_flush: Arc<Mutex<Option<(usize, Interrupt)>>>,
    /// Test hook: where the next fold fails.
    fail_next_fold: Arc<Mutex<Option<FailAt>>>,
    _connection: PhantomData<fn() -> C>,
}

/// `type: sqlite`.
pub type SqliteStore = SqlStore<diesel::sqlite::SqliteConnection>;
/// `type: postgres`.
#[cfg(feature = "postgres")]
pub type PgStore = SqlStore<diesel::pg::PgConnection>;
/// `type: mysql` (MySQL and MariaDB).
#[cfg(feature = "mysql")]
pub type MysqlStore = SqlStore<diesel::mysql::MysqlConnection>;

impl<C: SqlConnection> std::fmt::Debug for SqlStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("kind", &C::DIALECT.kind())
            .finish_non_exhaustive()
    }
}

fn unavailable(dialect: Dialect, message: impl Into<String>) -> StoreError {
    StoreError::Unavailable {
        backend: dialect.kind(),
        message: message.into(),
        cause: Default::default(),
    }
}

/// Maps a diesel error: constraint violations are the request's fault, everything else
/// (lost connections, lock timeouts, serialization failures) may pass and is retryable.
fn db_error(dialect: Dialect, e: diesel::result::Error) -> StoreError {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    let backend = dialect.kind();
    match e {
        Error::DatabaseError(
            Kind::UniqueViolation
            | Kind::ForeignKeyViolation
            | Kind::NotNullViolation
            | Kind::CheckViolation,
            info,
        ) => StoreError::Rejected {
            backend,
            message: info.message().to_owned(),
        },
        Error::DeserializationError(e) => StoreError::Corrupt {
            backend,
            message: e.to_string(),
            cause: Default::default(),
        },
        other => StoreError::Unavailable {
            backend,
            message: other.to_string(),
            cause: Default::default(),
        }
        .because(other),
    }
}

/// Where a test makes the next flush fail.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailAt {
    /// Before the statement with this index (0-based) of the flush transaction, which is then
    /// rolled back.
    Statement(usize),
    /// After the transaction committed: the flush is applied, but its caller hears of an
    /// error (a connection lost with the answer).
    AfterCommit,
}

fn tx_error(d: Dialect, e: TxError) -> StoreError {
    match e {
        TxError::Db(e) => db_error(d, e),
        TxError::Store(e) => e,
    }
}

/// `months` merged from every node's rows (what the roll-up holds, made anew): rows are merged
/// as they arrive, so a read holds one row and the per-month results.
fn merge_months<C: SqlConnection>(
    conn: &mut C,
    months: &[Month],
) -> Result<Vec<MonthStats>, StoreError> {
    let d = C::DIALECT;
    let binds: Vec<Bind> = months
        .iter()
        .chain(months)
        .map(|&m| conn::month_bind(m))
        .collect();
    let mut merger = Merger::new(d.kind());
    merge_streamed(conn, &d.read_months(months.len()), binds, &mut merger)
        .map_err(|e| tx_error(d, e))?;
    Ok(merger.finish())
}

/// Builds the roll-up anew when some node's writes are not in it (rows stored before roll-ups
/// existed, or written by an agent that predates them).
fn catch_up<C: SqlConnection>(conn: &mut C) -> Result<(), StoreError> {
    let d = C::DIALECT;
    if !rollup::behind(conn).map_err(|e| tx_error(d, e))? {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let rebuilt = transaction_with_retries(conn, rollup::rebuild)?;
    if let Some(months) = rebuilt {
        tracing::warn!(
            backend = d.kind(),
            months,
            millis = started.elapsed().as_millis() as u64,
            "the roll-up of all nodes was behind the node rows (rows stored before roll-ups, \
             or an agent of an older version writes to this database): built anew"
        );
    }
    Ok(())
}

#[async_trait]
impl<C: SqlConnection> StatStore for SqlStore<C> {
    fn kind(&self) -> &'static str {
        C::DIALECT.kind()
    }

    async fn claim_node(&self, request: &ClaimRequest) -> Result<NodeClaim, StoreError> {
        let request = request.clone();
        self.blocking(move |conn| own::claim_node(conn, &request))
            .await
    }

    async fn release_node(&self, node: &NodeId, epoch: u64) -> Result<(), StoreError> {
        let node = node.clone();
        self.blocking(move |conn| own::release_node(conn, &node, epoch))
            .await
    }

    async fn lease(&self, node: &NodeId) -> Result<Option<Lease>, StoreError> {
        let node = node.clone();
        self.blocking(move |conn| own::lease(conn, &node)).await
    }

    async fn flush(&self, batch: &FlushBatch) -> Result<FlushOutcome, StoreError> {
        let d = C::DIALECT;
        let prepared = flush::prepare(d, batch)?;
        let batch = batch.clone();
        let fail = self.fail_next_flush.lock().expect("lock").take();
        let interrupt = self.interrupt_next_flush.lock().expect("lock").take();
        let outcome = self
            .blocking(move |conn| {
                let at = match fail {
                    Some(FailAt::Statement(n)) => Some(n),
                    _ => None,
                };
                transaction_with_retries(conn, |conn| {
                    let mut steps = Steps::new(at, interrupt.clone());
                    flush::apply(conn, &batch, &prepared, &mut steps)
                })
            })
            .await?;
        if fail == Some(FailAt::AfterCommit) {
            return Err(unavailable(d, "injected failure after the commit"));
        }
        Ok(outcome)
    }

    async fn load_node(&self, node: &NodeId) -> Result<NodeState, StoreError> {
        let d = C::DIALECT;
        let node = node.as_str().to_owned();
        self.blocking(move |conn| {
            let bind = || vec![Bind::Text(node.clone())];
            let load = |conn: &mut C| -> Result<_, TxError> {
                let seq: Vec<NodeRow> = conn.load(&d.node_row(), bind())?;
                let mut rows: Vec<StatRow> = conn.load(&d.hlls_of(1), bind())?;
                rows.extend(conn.load::<StatRow>(&d.node_counters(), bind())?);
                let positions: Vec<PositionRow> = conn.load(&d.node_positions(), bind())?;
                Ok((seq, rows, positions))
            };
            let (seq, rows, positions) =
                conn.write_transaction(load).map_err(|e| tx_error(d, e))?;
            Ok(NodeState {
                seq: seq.first().map_or(0, |r| r.seq as u64),
                months: merge_rows(d, rows)?,
                positions: positions
                    .into_iter()
                    .map(|r| SourcePosition {
                        source: r.source,
                        key: r.pkey,
                        data: r.data,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn node_dims(
        &self,
        node: &NodeId,
        months: &[Month],
    ) -> Result<Vec<MonthDims>, StoreError> {
        let d = C::DIALECT;
        let node = node.as_str().to_owned();
        let months = distinct_months(months);
        self.blocking(move |conn| dims::load_node(conn, &node, &months).map_err(|e| tx_error(d, e)))
            .await
    }

    async fn nodes(&self) -> Result<Vec<NodeSummary>, StoreError> {
        let d = C::DIALECT;
        self.blocking(move |conn| {
            let rows: Vec<NodeListRow> = conn
                .load(d.list_nodes(), Vec::new())
                .map_err(|e| db_error(d, e))?;
            rows.into_iter()
                .map(|r| {
                    let node = NodeId::stored(r.node_id).map_err(|e| StoreError::Corrupt {
                        backend: d.kind(),
                        message: e.to_string(),
                        cause: Default::default(),
                    })?;
                    let lease = match r.row.holder {
                        None => None,
                        Some(_) => Some(own::lease_of(d, &node, &r.row)?),
                    };
                    Ok(NodeSummary {
                        node,
                        seq: r.row.seq as u64,
                        updated_at_ms: r.updated_at_ms,
                        lease,
                    })
                })
                .collect()
        })
        .await
    }

    async fn read_months(&self, months: &[Month]) -> Result<Vec<MonthStats>, StoreError> {
        let d = C::DIALECT;
        let months = distinct_months(months);
        if months.is_empty() {
            return Ok(Vec::new());
        }
        self.blocking(move |conn| {
            catch_up(conn)?;
            let (mut stats, mixed) = rollup::read(conn, &months).map_err(|e| tx_error(d, e))?;
            if !mixed.is_empty() {
                // HLLs of other parameters: merged from the node rows, which says why.
                stats.extend(merge_months(conn, &mixed)?);
                stats.sort_by_key(|s| s.month);
            }
            Ok(stats)
        })
        .await
    }

    async fn read_dims(
        &self,
        months: &[Month],
        kind: DimKind,
    ) -> Result<Vec<MonthDims>, StoreError> {
        let d = C::DIALECT;
        let months = distinct_months(months);
        self.blocking(move |conn| {
            catch_up(conn)?;
            dims::read(conn, &months, kind).map_err(|e| tx_error(d, e))
        })
        .await
    }

    async fn drop_days_before(&self, month: Month) -> Result<u64, StoreError> {
        self.blocking(move |conn| {
            transaction_with_retries(conn, |conn| dims::drop_days(conn, month))
        })
        .await
    }

    async fn month_versions(&self) -> Result<std::collections::BTreeMap<Month, u64>, StoreError> {
        let d = C::DIALECT;
        self.blocking(move |conn| {
            catch_up(conn)?;
            rollup::versions(conn).map_err(|e| tx_error(d, e))
        })
        .await
    }

    async fn data_version(&self) -> Result<u64, StoreError> {
        let d = C::DIALECT;
        self.blocking(move |conn| {
            let rows: Vec<SeqRow> = conn
                .load(&d.data_version(), Vec::new())
                .map_err(|e| db_error(d, e))?;
            Ok(rows.first().map_or(0, |r| r.seq as u64))
        })
        .await
    }

    async fn health(&self) -> Result<(), StoreError> {
        let d = C::DIALECT;
        self.blocking(move |conn| conn.batch_execute("SELECT 1").map_err(|e| db_error(d, e)))
            .await
    }

    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotOutcome, StoreError> {
        let prepared = snapshot::prepare(C::DIALECT, snapshot)?;
        let snapshot = snapshot.clone();
        self.blocking(move |conn| {
            transaction_with_retries(conn, |conn| snapshot::apply(conn, &snapshot, &prepared))
        })
        .await
    }

    async fn record_daily_users(
        &self,
        month: Month,
        day: u32,
        users: u64,
    ) -> Result<(), StoreError> {
        let d = C::DIALECT;
        crate::rules::check_day(d.kind(), day)?;
        let users = i64::try_from(users).unwrap_or(i64::MAX);
        self.blocking(move |conn| {
            conn.exec(
                &d.record_daily_users(),
                vec![
                    conn::month_bind(month),
                    Bind::Int(day as i32),
                    Bind::BigInt(users),
                ],
            )
            .map(|_| ())
            .map_err(|e| db_error(d, e))
        })
        .await
    }

    async fn daily_users(
        &self,
        month: Month,
    ) -> Result<std::collections::BTreeMap<u32, u64>, StoreError> {
        let d = C::DIALECT;
        self.blocking(move |conn| {
            let rows: Vec<DailyRow> = conn
                .load(&d.daily_users(), vec![conn::month_bind(month)])
                .map_err(|e| db_error(d, e))?;
            Ok(rows
                .into_iter()
                .map(|r| (r.day as u32, r.users.max(0) as u64))
                .collect())
        })
        .await
    }

    async fn fold_silent(&self, request: &FoldRequest) -> Result<FoldReport, StoreError> {
        let request = *request;
        let fail = self.fail_next_fold.lock().expect("lock").take();
        let report = self
            .blocking(move |conn| {
                let mut at = match fail {
                    Some(FailAt::Statement(n)) => Some(n),
                    _ => None,
                };
                let mut total = FoldReport::default();
                loop {
                    let report = transaction_with_retries(conn, |conn| {
                        fold::apply(conn, &request, &mut Steps::new(at, None))
                    })?;
                    at = None;
                    let more = report.nodes.len() == fold::NODES_PER_TRANSACTION;
                    total.nodes.extend(report.nodes);
                    total.node_months += report.node_months;
                    if !more {
                        return Ok(total);
                    }
                }
            })
            .await?;
        if fail == Some(FailAt::AfterCommit) {
            return Err(unavailable(C::DIALECT, "injected failure after the commit"));
        }
        Ok(report)
    }

    async fn claim_keys(
        &self,
        owner: &KeyOwner,
        keys: &[String],
    ) -> Result<Vec<KeyClaim>, StoreError> {
        let (owner, keys) = (owner.clone(), keys.to_vec());
        self.blocking(move |conn| own::claim_keys(conn, &owner, &keys))
            .await
    }

    async fn take_over_key(
        &self,
        key: &str,
        from: &KeyOwner,
        to: &KeyOwner,
    ) -> Result<bool, StoreError> {
        let (key, from, to) = (key.to_owned(), from.clone(), to.clone());
        self.blocking(move |conn| own::take_over_key(conn, &key, &from, &to))
            .await
    }
}
