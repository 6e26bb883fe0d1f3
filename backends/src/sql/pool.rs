//! Opening a SQL backend: the connection pool, each connection's session settings, and the
//! schema migrations at start.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authstat_config::redact_url;

use crate::options::{SqlServerConfig, SqliteConfig};
use authstat_core::store::StoreError;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};

#[cfg(feature = "test-hooks")]
use super::FailAt;
use super::dialect::Dialect;
use super::{SqlConnection, SqlStore, SqliteStore, unavailable};
use crate::SessionLimits;

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
                cause: Default::default(),
            })?;
        }
        let manager = ConnectionManager::new(path_str(&path)?);
        let pool = Pool::builder()
            .max_size(config.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_millis(config.busy_timeout_ms.max(1000)))
            // The error of a failed connection is in the error the pool returns (and is logged
            // by the caller once); r2d2 would log each attempt again.
            .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
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

/// Whether a SQLite database can be kept at `path`, found without creating or opening it as a
/// database: an existing file must be a SQLite file (or empty) and writable; otherwise the
/// nearest existing directory above it must be writable.
pub fn probe_sqlite_file(path: &Path) -> Result<String, StoreError> {
    use rustix::fs::{Access, access};
    let refuse = |message: String| StoreError::Unavailable {
        backend: "sqlite",
        message,
        cause: Default::default(),
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(refuse(format!("{} is a directory", path.display()))),
        Ok(meta) => {
            let mut head = [0u8; 16];
            let n = std::io::Read::read(
                &mut std::fs::File::open(path)
                    .map_err(|e| refuse(format!("reading {}: {e}", path.display())))?,
                &mut head,
            )
            .unwrap_or(0);
            if meta.len() > 0 && (n < 16 || &head != b"SQLite format 3\0") {
                return Err(refuse(format!(
                    "{} is not a SQLite database",
                    path.display()
                )));
            }
            access(path, Access::READ_OK | Access::WRITE_OK)
                .map_err(|e| refuse(format!("{} is not writable: {e}", path.display())))?;
            Ok(format!("sqlite: {} exists and is writable", path.display()))
        }
        Err(_) => {
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
                dir = d.parent();
            }
            let dir = dir
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            access(dir, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| {
                refuse(format!(
                    "{} cannot be created: {} is not writable: {e}",
                    path.display(),
                    dir.display()
                ))
            })?;
            Ok(format!(
                "sqlite: {} will be created at start ({} is writable)",
                path.display(),
                dir.display()
            ))
        }
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

/// libpq tries GSSAPI encryption first by default (`gssencmode=prefer`), which loads Kerberos
/// into every connection attempt; libkrb5 aborted the process (`k5_mutex_lock` assertion) when
/// connections were opened from several threads at once. authstat does not use Kerberos unless
/// the URL asks for it (`gssencmode=require` or `prefer`).
fn without_gss(url: &str) -> String {
    if url.contains("gssencmode=") || !url.contains("://") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}gssencmode=disable")
}

/// Session settings of server connections: the [`SessionLimits`] (every statement, lock wait
/// and idle transaction bounded, so that a frozen agent's transaction is ended by the server
/// before its lease runs out); and MySQL sessions use READ COMMITTED, which takes far fewer gap
/// locks than InnoDB's default REPEATABLE READ (every statement of a flush reads only rows its
/// own node owns, so nothing needs the stronger level).
#[derive(Debug)]
struct SessionSettings {
    limits: SessionLimits,
    /// MySQL: what the URL's `ssl_mode` demands, checked on each new connection.
    #[cfg(feature = "mysql")]
    mysql_tls: Option<Arc<super::mysql_tls::MysqlTls>>,
}

/// Whole seconds, at least 1 (MySQL's timeouts are in seconds).
fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

impl SessionSettings {
    /// The statements that set the limits: PostgreSQL's, or MariaDB's and then MySQL's (each
    /// server refuses the other's variables).
    fn statements(&self, dialect: Dialect) -> Vec<String> {
        let l = &self.limits;
        match dialect {
            Dialect::Postgres => vec![format!(
                "SET statement_timeout = {}; SET lock_timeout = {}; \
                 SET idle_in_transaction_session_timeout = {}",
                l.statement.as_millis(),
                l.lock_wait.as_millis(),
                l.idle_in_transaction.as_millis()
            )],
            Dialect::Mysql => vec![
                format!(
                    "SET SESSION max_statement_time = {}, innodb_lock_wait_timeout = {}, \
                     idle_transaction_timeout = {}",
                    l.statement.as_secs_f64(),
                    secs(l.lock_wait),
                    secs(l.idle_in_transaction)
                ),
                // MySQL: max_execution_time bounds SELECTs; wait_timeout ends an idle session
                // (in a transaction or not: the pool checks connections before use).
                format!(
                    "SET SESSION max_execution_time = {}, innodb_lock_wait_timeout = {}, \
                     wait_timeout = {}",
                    l.statement.as_millis(),
                    secs(l.lock_wait),
                    secs(l.idle_in_transaction)
                ),
            ],
            Dialect::Sqlite => Vec::new(),
        }
    }
}

impl<C: SqlConnection> CustomizeConnection<C, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut C) -> Result<(), diesel::r2d2::Error> {
        #[cfg(feature = "mysql")]
        if let Some(tls) = &self.mysql_tls
            && let Some(mysql) =
                (conn as &mut dyn std::any::Any).downcast_mut::<diesel::MysqlConnection>()
        {
            tls.check(mysql).map_err(|e| {
                diesel::r2d2::Error::QueryError(diesel::result::Error::QueryBuilderError(e.into()))
            })?;
        }
        if C::DIALECT == Dialect::Mysql {
            conn.batch_execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                .map_err(diesel::r2d2::Error::QueryError)?;
        }
        // The first form the server takes (MariaDB's before MySQL's).
        let mut last = Ok(());
        for statement in self.statements(C::DIALECT) {
            last = conn.batch_execute(&statement);
            if last.is_ok() {
                break;
            }
        }
        last.map_err(diesel::r2d2::Error::QueryError)
    }
}

impl<C: SqlConnection> SqlStore<C>
where
    ConnectionManager<C>:
        diesel::r2d2::ManageConnection<Connection = C, Error = diesel::r2d2::Error>,
{
    /// Connects to a PostgreSQL or MySQL server and migrates the schema.
    pub async fn connect(config: &SqlServerConfig) -> Result<Self, StoreError> {
        Self::connect_with(config, SessionLimits::default()).await
    }

    /// [`connect`](Self::connect), every connection's session bounded by `limits`.
    pub(crate) async fn connect_with(
        config: &SqlServerConfig,
        limits: SessionLimits,
    ) -> Result<Self, StoreError> {
        Self::start(Self::server_pool(config, limits)?).await
    }

    /// Connects to the server and asks it `SELECT 1`; creates and changes nothing.
    pub async fn probe(config: &SqlServerConfig) -> Result<(), StoreError> {
        let pool = Self::server_pool(config, SessionLimits::default())?;
        tokio::task::spawn_blocking(move || {
            let mut conn = pool
                .get()
                .map_err(|e| unavailable(C::DIALECT, format!("connecting: {e}")))?;
            conn.batch_execute("SELECT 1")
                .map_err(|e| unavailable(C::DIALECT, format!("SELECT 1: {e}")))
        })
        .await
        .map_err(|e| unavailable(C::DIALECT, e.to_string()))?
    }

    fn server_pool(
        config: &SqlServerConfig,
        limits: SessionLimits,
    ) -> Result<Pool<ConnectionManager<C>>, StoreError> {
        let url = match C::DIALECT {
            Dialect::Postgres => without_gss(&config.url),
            _ => config.url.clone(),
        };
        let settings = SessionSettings {
            limits,
            #[cfg(feature = "mysql")]
            mysql_tls: match C::DIALECT {
                Dialect::Mysql => super::mysql_tls::MysqlTls::from_url(
                    &config.url,
                    Duration::from_secs(config.connect_timeout_secs.max(1)),
                )
                .map_err(|e| {
                    unavailable(C::DIALECT, format!("{}: {e}", redact_url(&config.url)))
                })?,
                _ => None,
            },
        };
        let manager = ConnectionManager::<C>::new(url);
        Pool::builder()
            .max_size(config.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(config.connect_timeout_secs.max(1)))
            .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
            .connection_customizer(Box::new(settings))
            .build(manager)
            .map_err(|e| {
                unavailable(
                    C::DIALECT,
                    format!("connecting to {}: {e}", redact_url(&config.url)),
                )
            })
    }
}

impl<C: SqlConnection> SqlStore<C> {
    pub(super) async fn start(pool: Pool<ConnectionManager<C>>) -> Result<Self, StoreError> {
        let store = Self {
            pool,
            fail_next_flush: Arc::new(Mutex::new(None)),
            fail_next_fold: Arc::new(Mutex::new(None)),
            interrupt_next_flush: Arc::new(Mutex::new(None)),
            _connection: PhantomData,
        };
        store
            .blocking(|conn| conn.migrate().map_err(|e| unavailable(C::DIALECT, e)))
            .await?;
        // The migration that added roll-ups builds them here from the rows already stored.
        store.blocking(super::catch_up).await?;
        #[cfg(feature = "test-hooks")]
        if std::env::var_os("AUTHSTAT_TEST_FREEZE_IN_FLUSH").is_some() {
            // Test hook: the process stops itself (SIGSTOP, as a paused VM would) inside its
            // first flush's transaction, before the commit, holding the node's row.
            store.interrupt_next_flush(
                usize::MAX,
                Arc::new(|| {
                    let _ = rustix::process::kill_process(
                        rustix::process::getpid(),
                        rustix::process::Signal::STOP,
                    );
                }),
            );
        }
        Ok(store)
    }

    /// Test hook: the next flush fails at `at`.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn inject_flush_failure(&self, at: FailAt) {
        *self.fail_next_flush.lock().expect("lock") = Some(at);
    }

    /// Test hook: `hook` runs inside the next flush's transaction, before its write number `at`
    /// (0-based), or before its commit if it has `at` writes or fewer.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn interrupt_next_flush(&self, at: usize, hook: super::Interrupt) {
        *self.interrupt_next_flush.lock().expect("lock") = Some((at, hook));
    }

    /// Test hook: the next fold fails at `at`.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn inject_fold_failure(&self, at: FailAt) {
        *self.fail_next_fold.lock().expect("lock") = Some(at);
    }

    /// Runs `f` with a pooled connection on the blocking thread pool.
    pub(super) async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut C) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool
                .get()
                .map_err(|e| unavailable(C::DIALECT, e.to_string()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| unavailable(C::DIALECT, format!("database task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn postgres_urls_disable_gss_unless_asked() {
        use super::without_gss;
        assert_eq!(
            without_gss("postgres://u@h/db"),
            "postgres://u@h/db?gssencmode=disable"
        );
        assert_eq!(
            without_gss("postgres://u@h/db?sslmode=require"),
            "postgres://u@h/db?sslmode=require&gssencmode=disable"
        );
        assert_eq!(
            without_gss("postgres://u@h/db?gssencmode=require"),
            "postgres://u@h/db?gssencmode=require"
        );
        assert_eq!(without_gss("host=h dbname=x"), "host=h dbname=x");
    }
}
