//! `type: sqlite | postgres | mysql`: the SQL backends, through diesel.
//!
//! Four tables (see `docs/storage.md`): `authstat_nodes` (a node's last flush `seq`),
//! `authstat_hll` (per node and month, the HLL in the postgresql-hll storage format),
//! `authstat_counters` (per node and month, `(kind, k1, k2) → value`) and
//! `authstat_checkpoints` (per node, the source files' positions).
//!
//! A flush is one transaction: lock the node's row, compare `seq`, replace the HLLs, add the
//! counter deltas, replace the checkpoints, record `seq`. A read is one statement: the HLL rows
//! and the per-month counter sums of all nodes, unioned. diesel is synchronous, so every
//! operation runs on tokio's blocking pool with a connection from an r2d2 pool; the async
//! runtime is never blocked.

mod conn;
mod dialect;

use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use authstat_config::{SqlServerConfig, SqliteConfig, redact_url};
use authstat_core::store::{
    Checkpoint, FlushBatch, FlushOutcome, NodeState, StatStore, StoreError,
};
use authstat_core::{Month, MonthStats, NodeId};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};

pub use conn::SqlConnection;
use conn::{Bind, CheckpointRow, SeqRow, StatRow};
use dialect::Dialect;

use crate::merge::{Merger, distinct_months};

/// The longest counter key part the schema stores (`VARCHAR(255)`).
pub const MAX_KEY_PART_LEN: usize = 255;

/// A SQL backend over one diesel connection type.
pub struct SqlStore<C: SqlConnection> {
    pool: Pool<ConnectionManager<C>>,
    /// Test hook: the next flush fails after this many statements (inside its transaction).
    fail_after_statements: Arc<Mutex<Option<usize>>>,
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

/// The SQLite settings every pooled connection gets.
#[derive(Debug)]
struct SqlitePragmas {
    busy_timeout_ms: u64,
}

impl CustomizeConnection<diesel::sqlite::SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(
        &self,
        conn: &mut diesel::sqlite::SqliteConnection,
    ) -> Result<(), diesel::r2d2::Error> {
        // WAL: readers never block the writer. synchronous=NORMAL is durable against process
        // crashes (what exactly-once needs); only an OS crash may lose the last transactions.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
            self.busy_timeout_ms
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

impl SqliteStore {
    /// Opens (creating the file and its directory if needed) and migrates a SQLite database.
    pub async fn open(config: &SqliteConfig) -> Result<Self, StoreError> {
        let path = config.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable {
                backend: "sqlite",
                message: format!("creating directory {}: {e}", dir.display()),
            })?;
        }
        let manager = ConnectionManager::new(path_str(&path)?);
        let pool = Pool::builder()
            .max_size(config.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_millis(config.busy_timeout_ms.max(1000)))
            .connection_customizer(Box::new(SqlitePragmas {
                busy_timeout_ms: config.busy_timeout_ms,
            }))
            .build(manager)
            .map_err(|e| {
                unavailable(Dialect::Sqlite, format!("opening {}: {e}", path.display()))
            })?;
        Self::start(pool).await
    }
}

fn path_str(path: &Path) -> Result<String, StoreError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Rejected {
            backend: "sqlite",
            message: format!("path {} is not UTF-8", path.display()),
        })
}

/// Session settings of server connections: MySQL sessions use READ COMMITTED, which takes far
/// fewer gap locks than InnoDB's default REPEATABLE READ (every statement of a flush reads
/// only rows its own node owns, so nothing needs the stronger level).
#[derive(Debug)]
struct SessionSettings;

impl<C: SqlConnection> CustomizeConnection<C, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut C) -> Result<(), diesel::r2d2::Error> {
        if C::DIALECT == Dialect::Mysql {
            conn.batch_execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

impl<C: SqlConnection> SqlStore<C>
where
    ConnectionManager<C>:
        diesel::r2d2::ManageConnection<Connection = C, Error = diesel::r2d2::Error>,
{
    /// Connects to a PostgreSQL or MySQL server and migrates the schema.
    pub async fn connect(config: &SqlServerConfig) -> Result<Self, StoreError> {
        let manager = ConnectionManager::<C>::new(config.url.clone());
        let pool = Pool::builder()
            .max_size(config.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(config.connect_timeout_secs.max(1)))
            .connection_customizer(Box::new(SessionSettings))
            .build(manager)
            .map_err(|e| {
                unavailable(
                    C::DIALECT,
                    format!("connecting to {}: {e}", redact_url(&config.url)),
                )
            })?;
        Self::start(pool).await
    }
}

impl<C: SqlConnection> SqlStore<C> {
    async fn start(pool: Pool<ConnectionManager<C>>) -> Result<Self, StoreError> {
        let store = Self {
            pool,
            fail_after_statements: Arc::new(Mutex::new(None)),
            _connection: PhantomData,
        };
        store
            .blocking(|conn, _| conn.migrate().map_err(|e| unavailable(C::DIALECT, e)))
            .await?;
        Ok(store)
    }

    /// Test hook: the next flush fails after `statements` statements of its transaction, which
    /// is then rolled back.
    #[doc(hidden)]
    pub fn inject_flush_failure(&self, statements: usize) {
        *self.fail_after_statements.lock().expect("lock") = Some(statements);
    }

    /// Runs `f` with a pooled connection on the blocking thread pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut C, Option<usize>) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let fail_after = self.fail_after_statements.lock().expect("lock").take();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool
                .get()
                .map_err(|e| unavailable(C::DIALECT, e.to_string()))?;
            f(&mut conn, fail_after)
        })
        .await
        .map_err(|e| unavailable(C::DIALECT, format!("database task failed: {e}")))?
    }
}

fn unavailable(dialect: Dialect, message: impl Into<String>) -> StoreError {
    StoreError::Unavailable {
        backend: dialect.kind(),
        message: message.into(),
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
        },
        other => StoreError::Unavailable {
            backend,
            message: other.to_string(),
        },
    }
}

/// How often a flush that lost a deadlock is tried again before the caller hears of it.
const DEADLOCK_RETRIES: u32 = 5;

/// A transaction the database aborted to break a deadlock or a serialization conflict
/// (InnoDB's gap locks make two nodes' upserts collide now and then).
fn is_deadlock(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    match e {
        Error::DatabaseError(Kind::SerializationFailure, _) => true,
        Error::DatabaseError(_, info) => {
            let m = info.message();
            m.contains("Deadlock found") || m.contains("deadlock detected")
        }
        _ => false,
    }
}

/// Errors inside a flush transaction: a database error (rolls back) or our own early exit.
enum TxError {
    Db(diesel::result::Error),
    Store(StoreError),
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Db(e)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn month_bind(month: Month) -> Bind {
    Bind::Int(month.yyyymm() as i32)
}

/// Checks what the schema cannot store before anything is written.
fn validate(dialect: Dialect, batch: &FlushBatch) -> Result<Vec<Bind>, StoreError> {
    let reject = |message: String| StoreError::Rejected {
        backend: dialect.kind(),
        message,
    };
    let mut counter_binds = Vec::new();
    for month in &batch.months {
        for (key, delta) in month.counter_deltas.iter() {
            let (kind, k1, k2) = key.parts();
            if k1.len() > MAX_KEY_PART_LEN || k2.len() > MAX_KEY_PART_LEN {
                return Err(reject(format!(
                    "counter key part longer than {MAX_KEY_PART_LEN} bytes in month {}",
                    month.month
                )));
            }
            let value = i64::try_from(delta)
                .map_err(|_| reject(format!("counter delta {delta} does not fit a BIGINT")))?;
            counter_binds.extend([
                Bind::Text(batch.node.as_str().to_owned()),
                month_bind(month.month),
                Bind::Text(kind.to_owned()),
                Bind::Text(k1.to_owned()),
                Bind::Text(k2.to_owned()),
                Bind::BigInt(value),
            ]);
        }
    }
    Ok(counter_binds)
}

/// The flush transaction's body.
fn apply<C: SqlConnection>(
    conn: &mut C,
    batch: &FlushBatch,
    hll_binds: Vec<Bind>,
    counter_binds: Vec<Bind>,
    fail_after: Option<usize>,
) -> Result<FlushOutcome, TxError> {
    let d = C::DIALECT;
    let node = || Bind::Text(batch.node.as_str().to_owned());
    let mut statements = 0usize;
    let mut step = |conn: &mut C, sql: &str, binds: Vec<Bind>| -> Result<(), TxError> {
        if fail_after == Some(statements) {
            return Err(TxError::Store(unavailable(d, "injected failure")));
        }
        statements += 1;
        conn.exec(sql, binds)?;
        Ok(())
    };

    step(conn, &d.ensure_node(), vec![node(), Bind::BigInt(now_ms())])?;
    let rows: Vec<SeqRow> = conn.load(&d.lock_node(), vec![node()])?;
    let stored = rows.first().map_or(0, |r| r.seq);
    let seq = i64::try_from(batch.seq).map_err(|_| {
        TxError::Store(StoreError::Rejected {
            backend: d.kind(),
            message: "seq too large".into(),
        })
    })?;
    if seq <= stored {
        return Ok(FlushOutcome::AlreadyApplied);
    }
    step(
        conn,
        &d.update_node(),
        vec![Bind::BigInt(seq), Bind::BigInt(now_ms()), node()],
    )?;
    for (columns, binds, build) in [
        (
            3,
            hll_binds,
            Dialect::upsert_hlls as fn(Dialect, usize) -> String,
        ),
        (6, counter_binds, Dialect::upsert_counters),
    ] {
        for chunk in binds.chunks(columns * Dialect::ROWS_PER_STATEMENT) {
            step(conn, &build(d, chunk.len() / columns), chunk.to_vec())?;
        }
    }
    step(conn, &d.delete_checkpoints(), vec![node()])?;
    for chunk in batch.checkpoints.chunks(Dialect::ROWS_PER_STATEMENT) {
        let binds = chunk
            .iter()
            .flat_map(|c| checkpoint_binds(&batch.node, c))
            .collect();
        step(conn, &d.insert_checkpoints(chunk.len()), binds)?;
    }
    Ok(FlushOutcome::Applied)
}

fn checkpoint_binds(node: &NodeId, c: &Checkpoint) -> [Bind; 8] {
    [
        Bind::Text(node.as_str().to_owned()),
        Bind::Text(c.source.clone()),
        // u64 identities are stored as the same 64 bits in a signed BIGINT.
        Bind::BigInt(c.device as i64),
        Bind::BigInt(c.inode as i64),
        Bind::BigInt(c.fingerprint as i64),
        Bind::Int(c.fingerprint_len as i32),
        Bind::BigInt(c.offset as i64),
        Bind::Text(c.path.clone()),
    ]
}

fn merge_rows(dialect: Dialect, rows: Vec<StatRow>) -> Result<Vec<MonthStats>, StoreError> {
    let mut merger = Merger::new(dialect.kind());
    for row in rows {
        let month = merger.month(i64::from(row.month))?;
        match (row.kind.as_str(), row.hll) {
            ("#hll", Some(bytes)) => merger.add_hll(month, &row.k1, &bytes)?,
            ("#hll", None) => {}
            (kind, _) => merger.add_counter(month, kind, &row.k1, &row.k2, row.value)?,
        }
    }
    Ok(merger.finish())
}

#[async_trait]
impl<C: SqlConnection> StatStore for SqlStore<C> {
    fn kind(&self) -> &'static str {
        C::DIALECT.kind()
    }

    async fn flush(&self, batch: &FlushBatch) -> Result<FlushOutcome, StoreError> {
        let d = C::DIALECT;
        let counter_binds = validate(d, batch)?;
        let mut hll_binds = Vec::with_capacity(batch.months.len() * 3);
        for month in &batch.months {
            let bytes = month.users.to_bytes().map_err(|e| StoreError::Rejected {
                backend: d.kind(),
                message: format!("month {}: {e}", month.month),
            })?;
            hll_binds.extend([
                Bind::Text(batch.node.as_str().to_owned()),
                month_bind(month.month),
                Bind::Bytes(bytes),
            ]);
        }
        let batch = batch.clone();
        self.blocking(move |conn, fail_after| {
            let mut attempt = 0;
            loop {
                let result = conn.write_transaction(|conn| {
                    apply(
                        conn,
                        &batch,
                        hll_binds.clone(),
                        counter_binds.clone(),
                        fail_after,
                    )
                });
                match result {
                    Ok(outcome) => return Ok(outcome),
                    // A deadlock victim was rolled back whole: trying again at once is safe.
                    Err(TxError::Db(e)) if is_deadlock(&e) && attempt < DEADLOCK_RETRIES => {
                        attempt += 1;
                        tracing::debug!(backend = d.kind(), attempt, "flush deadlocked, retrying");
                    }
                    Err(TxError::Db(e)) => return Err(db_error(d, e)),
                    Err(TxError::Store(e)) => return Err(e),
                }
            }
        })
        .await
    }

    async fn load_node(&self, node: &NodeId) -> Result<NodeState, StoreError> {
        let d = C::DIALECT;
        let node = node.as_str().to_owned();
        self.blocking(move |conn, _| {
            let bind = || vec![Bind::Text(node.clone())];
            let load = |conn: &mut C| -> diesel::QueryResult<_> {
                let seq: Vec<SeqRow> = conn.load(&d.node_seq(), bind())?;
                let mut rows: Vec<StatRow> = conn.load(&d.node_hlls(), bind())?;
                rows.extend(conn.load::<StatRow>(&d.node_counters(), bind())?);
                let checkpoints: Vec<CheckpointRow> = conn.load(&d.node_checkpoints(), bind())?;
                Ok((seq, rows, checkpoints))
            };
            let (seq, rows, checkpoints) =
                conn.write_transaction(load).map_err(|e| db_error(d, e))?;
            Ok(NodeState {
                seq: seq.first().map_or(0, |r| r.seq as u64),
                months: merge_rows(d, rows)?,
                checkpoints: checkpoints
                    .into_iter()
                    .map(|r| Checkpoint {
                        source: r.source,
                        path: r.path,
                        device: r.device as u64,
                        inode: r.inode as u64,
                        fingerprint: r.fingerprint as u64,
                        fingerprint_len: r.fingerprint_len as u32,
                        offset: r.file_offset as u64,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn read_months(&self, months: &[Month]) -> Result<Vec<MonthStats>, StoreError> {
        let d = C::DIALECT;
        let months = distinct_months(months);
        if months.is_empty() {
            return Ok(Vec::new());
        }
        let sql = d.read_months(months.len());
        let binds: Vec<Bind> = months
            .iter()
            .chain(&months)
            .map(|&m| month_bind(m))
            .collect();
        self.blocking(move |conn, _| {
            let rows: Vec<StatRow> = conn.load(&sql, binds).map_err(|e| db_error(d, e))?;
            merge_rows(d, rows)
        })
        .await
    }

    async fn health(&self) -> Result<(), StoreError> {
        let d = C::DIALECT;
        self.blocking(move |conn, _| conn.batch_execute("SELECT 1").map_err(|e| db_error(d, e)))
            .await
    }
}
