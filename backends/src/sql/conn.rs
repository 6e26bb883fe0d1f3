//! What the store needs from a diesel connection, implemented for SQLite, PostgreSQL and MySQL.
//!
//! Statements are built as text by [`Dialect`](super::dialect::Dialect) and bound dynamically, so
//! one implementation of the store logic serves all three connection types.

#[cfg(feature = "postgres")]
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel::sql_types::{BigInt, Binary, Integer, Nullable, Text};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::dialect::Dialect;

/// A bind parameter.
#[derive(Debug, Clone)]
pub enum Bind {
    Int(i32),
    BigInt(i64),
    Text(String),
    Bytes(Vec<u8>),
    /// Bytes or NULL.
    MaybeBytes(Option<Vec<u8>>),
}

/// A month as stored (`yyyyMM`).
pub(crate) fn month_bind(month: authstat_core::Month) -> Bind {
    Bind::Int(month.yyyymm() as i32)
}

/// A row of the read path: an HLL (`kind = "#hll"`, `k1` = node) or a counter.
#[derive(Debug, QueryableByName)]
pub(crate) struct StatRow {
    #[diesel(sql_type = Integer)]
    pub month: i32,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub k1: String,
    #[diesel(sql_type = Text)]
    pub k2: String,
    #[diesel(sql_type = BigInt)]
    pub value: i64,
    #[diesel(sql_type = Nullable<Binary>)]
    pub hll: Option<Vec<u8>>,
    /// The node's active clients (HLL rows).
    #[diesel(sql_type = Nullable<Binary>)]
    pub clients: Option<Vec<u8>>,
}

/// A row of clients and realms: an HLL (`kind = "#hll"`) or a counter of one dimension.
#[derive(Debug, QueryableByName)]
pub(crate) struct DimRow {
    #[diesel(sql_type = Integer)]
    pub month: i32,
    #[diesel(sql_type = Text)]
    pub dim: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub k1: String,
    #[diesel(sql_type = Text)]
    pub k2: String,
    #[diesel(sql_type = BigInt)]
    pub value: i64,
    #[diesel(sql_type = Nullable<Binary>)]
    pub hll: Option<Vec<u8>>,
}

/// A dimension's month in the roll-up: its users and its counters (JSON).
#[derive(Debug, QueryableByName)]
pub(crate) struct RollupDimRow {
    #[diesel(sql_type = Integer)]
    pub month: i32,
    #[diesel(sql_type = Text)]
    pub dim: String,
    #[diesel(sql_type = Binary)]
    pub hll: Vec<u8>,
    #[diesel(sql_type = Text)]
    pub counters: String,
}

/// A month of the roll-up.
#[derive(Debug, QueryableByName)]
pub(crate) struct RollupRow {
    #[diesel(sql_type = Integer)]
    pub month: i32,
    #[diesel(sql_type = Nullable<Binary>)]
    pub hll: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    pub foreign_hll: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    pub clients_hll: Option<Vec<u8>>,
    #[diesel(sql_type = Integer)]
    pub mixed: i32,
    #[diesel(sql_type = BigInt)]
    pub version: i64,
}

#[derive(Debug, QueryableByName)]
pub(crate) struct SeqRow {
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
}

/// A day's month-to-date users.
#[derive(Debug, QueryableByName)]
pub(crate) struct DailyRow {
    #[diesel(sql_type = Integer)]
    pub day: i32,
    #[diesel(sql_type = BigInt)]
    pub users: i64,
}

/// A node's row: its flush sequence and its lease.
#[derive(Debug, QueryableByName)]
pub(crate) struct NodeRow {
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = BigInt)]
    pub epoch: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub holder: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub lease_until_ms: i64,
    #[diesel(sql_type = Integer)]
    pub released: i32,
}

/// A node's row with its id, for listings.
#[derive(Debug, QueryableByName)]
pub(crate) struct NodeListRow {
    #[diesel(sql_type = Text)]
    pub node_id: String,
    #[diesel(sql_type = BigInt)]
    pub updated_at_ms: i64,
    #[diesel(embed)]
    pub row: NodeRow,
}

/// A node id.
#[derive(Debug, QueryableByName)]
pub(crate) struct NodeIdRow {
    #[diesel(sql_type = Text)]
    pub node_id: String,
}

#[derive(Debug, QueryableByName)]
pub(crate) struct PositionRow {
    #[diesel(sql_type = Text)]
    pub source: String,
    #[diesel(sql_type = Text)]
    pub pkey: String,
    #[diesel(sql_type = Text)]
    pub data: String,
}

#[derive(Debug, QueryableByName)]
pub(crate) struct ClaimRow {
    #[diesel(sql_type = Text)]
    pub ckey: String,
    #[diesel(sql_type = Text)]
    pub node_id: String,
    #[diesel(sql_type = Text)]
    pub source: String,
    #[diesel(sql_type = BigInt)]
    pub epoch: i64,
}

/// A row type every compiled-in backend can load.
pub trait AnyRow:
    QueryableByName<diesel::sqlite::Sqlite> + PgRow + MysqlRow + Send + 'static
{
}
impl<T: QueryableByName<diesel::sqlite::Sqlite> + PgRow + MysqlRow + Send + 'static> AnyRow for T {}

#[cfg(feature = "postgres")]
pub trait PgRow: QueryableByName<diesel::pg::Pg> {}
#[cfg(feature = "postgres")]
impl<T: QueryableByName<diesel::pg::Pg>> PgRow for T {}
#[cfg(not(feature = "postgres"))]
pub trait PgRow {}
#[cfg(not(feature = "postgres"))]
impl<T> PgRow for T {}

#[cfg(feature = "mysql")]
pub trait MysqlRow: QueryableByName<diesel::mysql::Mysql> {}
#[cfg(feature = "mysql")]
impl<T: QueryableByName<diesel::mysql::Mysql>> MysqlRow for T {}
#[cfg(not(feature = "mysql"))]
pub trait MysqlRow {}
#[cfg(not(feature = "mysql"))]
impl<T> MysqlRow for T {}

/// A diesel connection the SQL store can run on.
pub trait SqlConnection: R2D2Connection + Send + 'static {
    #[doc(hidden)]
    const DIALECT: Dialect;

    /// Runs a statement with bind parameters.
    #[doc(hidden)]
    fn exec(&mut self, sql: &str, binds: Vec<Bind>) -> QueryResult<usize>;

    /// Runs a query with bind parameters and loads its rows.
    #[doc(hidden)]
    fn load<R: AnyRow>(&mut self, sql: &str, binds: Vec<Bind>) -> QueryResult<Vec<R>>;

    /// Runs a query with bind parameters and hands its rows to `each` one at a time, as the
    /// database sends them (SQLite steps the statement, PostgreSQL reads in row-by-row mode):
    /// the caller's memory does not grow with the number of rows.
    #[doc(hidden)]
    fn for_each_row<R: AnyRow>(
        &mut self,
        sql: &str,
        binds: Vec<Bind>,
        each: &mut dyn FnMut(R),
    ) -> QueryResult<()>;

    /// A transaction that takes the write lock at its start where the database needs that
    /// (SQLite overrides this with `BEGIN IMMEDIATE`, so that two writers never deadlock on lock
    /// upgrade); elsewhere a plain transaction.
    #[doc(hidden)]
    fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        self.transaction(f)
    }

    /// Applies the embedded migrations, safe against other agents doing the same at once.
    #[doc(hidden)]
    fn migrate(&mut self) -> Result<(), String>;
}

/// `sql` as a boxed query for backend `$db` with `binds` bound in order.
macro_rules! bound_query {
    ($db:ty, $sql:expr, $binds:expr) => {{
        let mut query = diesel::sql_query($sql).into_boxed::<$db>();
        for bind in $binds {
            query = match bind {
                Bind::Int(v) => query.bind::<Integer, _>(v),
                Bind::BigInt(v) => query.bind::<BigInt, _>(v),
                Bind::Text(v) => query.bind::<Text, _>(v),
                Bind::Bytes(v) => query.bind::<Binary, _>(v),
                Bind::MaybeBytes(v) => query.bind::<Nullable<Binary>, _>(v),
            };
        }
        query
    }};
}

macro_rules! exec_and_load {
    ($db:ty, $mode:ty) => {
        fn for_each_row<R: AnyRow>(
            &mut self,
            sql: &str,
            binds: Vec<Bind>,
            each: &mut dyn FnMut(R),
        ) -> QueryResult<()> {
            let rows = bound_query!($db, sql, binds).load_iter::<R, $mode>(self)?;
            for row in rows {
                each(row?);
            }
            Ok(())
        }

        fn exec(&mut self, sql: &str, binds: Vec<Bind>) -> QueryResult<usize> {
            bound_query!($db, sql, binds).execute(self)
        }

        fn load<R: AnyRow>(&mut self, sql: &str, binds: Vec<Bind>) -> QueryResult<Vec<R>> {
            bound_query!($db, sql, binds).load::<R>(self)
        }
    };
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Runs the migrations, retrying a few times: a concurrent agent may have created a table or
/// recorded a version between our check and our write; the next attempt sees its work.
fn migrate_with_retries<C: MigrationHarness<C::Backend> + Connection>(
    conn: &mut C,
    migrations: impl Fn() -> EmbeddedMigrations,
) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..5u64 {
        match conn.run_pending_migrations(migrations()) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(std::time::Duration::from_millis(50 * (attempt + 1)));
    }
    Err(format!("migrations failed: {last}"))
}

impl SqlConnection for diesel::sqlite::SqliteConnection {
    const DIALECT: Dialect = Dialect::Sqlite;

    exec_and_load!(
        diesel::sqlite::Sqlite,
        diesel::connection::DefaultLoadingMode
    );

    fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        self.immediate_transaction(f)
    }

    fn migrate(&mut self) -> Result<(), String> {
        migrate_with_retries(self, || SQLITE_MIGRATIONS)
    }
}

#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[cfg(feature = "postgres")]
impl SqlConnection for diesel::pg::PgConnection {
    const DIALECT: Dialect = Dialect::Postgres;

    exec_and_load!(diesel::pg::Pg, diesel::pg::PgRowByRowLoadingMode);

    fn migrate(&mut self) -> Result<(), String> {
        // A session-level advisory lock serializes agents migrating the same database.
        const LOCK: &str = "SELECT pg_advisory_lock(727378)";
        const UNLOCK: &str = "SELECT pg_advisory_unlock(727378)";
        self.batch_execute(LOCK)
            .map_err(|e| format!("migration lock: {e}"))?;
        let result = migrate_with_retries(self, || POSTGRES_MIGRATIONS);
        self.batch_execute(UNLOCK)
            .map_err(|e| format!("migration unlock: {e}"))?;
        result
    }
}

#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");

#[cfg(feature = "mysql")]
#[derive(Debug, QueryableByName)]
struct LockRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    locked: Option<i64>,
}

#[cfg(feature = "mysql")]
impl SqlConnection for diesel::mysql::MysqlConnection {
    const DIALECT: Dialect = Dialect::Mysql;

    exec_and_load!(diesel::mysql::Mysql, diesel::connection::DefaultLoadingMode);

    fn migrate(&mut self) -> Result<(), String> {
        // A named lock serializes agents migrating the same server (DDL is not transactional).
        let rows: Vec<LockRow> = self
            .load(
                "SELECT CAST(GET_LOCK('authstat_migrations', 60) AS SIGNED) AS locked",
                Vec::new(),
            )
            .map_err(|e| format!("migration lock: {e}"))?;
        if rows.first().and_then(|r| r.locked) != Some(1) {
            return Err("migration lock: timed out waiting for another agent".into());
        }
        let result = migrate_with_retries(self, || MYSQL_MIGRATIONS);
        let _: Vec<LockRow> = self
            .load(
                "SELECT CAST(RELEASE_LOCK('authstat_migrations') AS SIGNED) AS locked",
                Vec::new(),
            )
            .map_err(|e| format!("migration unlock: {e}"))?;
        result
    }
}
