//! Reading `jansStatEntry` rows from Janssen's database (PostgreSQL or MySQL/MariaDB), with
//! one connection kept open between polls and made again after an error.

use authstat_core::Month;

use super::row::StatEntry;

/// Janssen's database, read with one connection.
pub struct Database {
    url: String,
    table: String,
    conn: Option<Conn>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &authstat_config::redact_url(&self.url))
            .field("table", &self.table)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

enum Conn {
    #[cfg(feature = "postgres")]
    Pg(diesel::pg::PgConnection),
    #[cfg(feature = "mysql")]
    Mysql(diesel::mysql::MysqlConnection),
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    doc_id: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    dn: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    dat: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    jans_data: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    attr: Option<String>,
}

#[cfg(feature = "postgres")]
/// Seconds a connection attempt to PostgreSQL may take (libpq waits for the operating system
/// otherwise).
const CONNECT_TIMEOUT_SECS: u32 = 10;

impl Database {
    /// A database at `url` (`postgres://` or `mysql://`), table `table` (a plain name, checked
    /// by the configuration). Connects at the first read.
    pub fn new(url: &str, table: &str) -> Self {
        Self {
            url: url.to_owned(),
            table: table.to_owned(),
            conn: None,
        }
    }

    /// The URL without its password, for logs.
    pub fn describe(&self) -> String {
        format!(
            "table {} at {}",
            self.table,
            authstat_config::redact_url(&self.url)
        )
    }

    /// Whether a connection is open.
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The rows of `months` (and the rows without `jansData`, whose month is told otherwise),
    /// or every row. An error drops the connection (the next read makes a new one); its
    /// message never holds the password.
    pub fn read(&mut self, months: Option<&[Month]>) -> Result<Vec<StatEntry>, String> {
        let result = self.read_once(months);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    #[cfg(not(any(feature = "postgres", feature = "mysql")))]
    fn read_once(&mut self, _months: Option<&[Month]>) -> Result<Vec<StatEntry>, String> {
        Err("this authstat was built without the `postgres` and `mysql` features".into())
    }

    #[cfg(any(feature = "postgres", feature = "mysql"))]
    fn read_once(&mut self, months: Option<&[Month]>) -> Result<Vec<StatEntry>, String> {
        use diesel::{Connection, RunQueryDsl};
        let redacted = authstat_config::redact_url(&self.url);
        let fresh = self.conn.is_none();
        if fresh {
            let is_mysql = self.url.starts_with("mysql://");
            let connect_error =
                |e: diesel::ConnectionError| format!("connecting to {redacted}: {e}");
            self.conn = Some(if is_mysql {
                #[cfg(feature = "mysql")]
                {
                    Conn::Mysql(
                        diesel::mysql::MysqlConnection::establish(&self.url)
                            .map_err(connect_error)?,
                    )
                }
                #[cfg(not(feature = "mysql"))]
                return Err("this authstat was built without the `mysql` feature".into());
            } else {
                #[cfg(feature = "postgres")]
                {
                    Conn::Pg(
                        diesel::pg::PgConnection::establish(&with_connect_timeout(&self.url))
                            .map_err(connect_error)?,
                    )
                }
                #[cfg(not(feature = "postgres"))]
                return Err("this authstat was built without the `postgres` feature".into());
            });
        }
        let conn = self.conn.as_mut().expect("connected above");
        if fresh {
            bound_statements(conn).map_err(|e| format!("setting timeouts on {redacted}: {e}"))?;
        }
        let quote = match conn {
            #[cfg(feature = "postgres")]
            Conn::Pg(_) => '"',
            #[cfg(feature = "mysql")]
            Conn::Mysql(_) => '`',
        };
        let sql = query(quote, &self.table, months);
        let query_error =
            |e: diesel::result::Error| format!("reading {} at {redacted}: {e}", self.table);
        let rows: Vec<Row> = match conn {
            #[cfg(feature = "postgres")]
            Conn::Pg(c) => diesel::sql_query(&sql).load(c).map_err(query_error)?,
            #[cfg(feature = "mysql")]
            Conn::Mysql(c) => diesel::sql_query(&sql).load(c).map_err(query_error)?,
        };
        Ok(rows
            .into_iter()
            .map(|r| StatEntry {
                doc_id: r.doc_id,
                dn: r.dn,
                dat: r.dat,
                jans_data: r.jans_data,
                attr: r.attr,
            })
            .collect())
    }
}

#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql")),
    allow(dead_code, reason = "no connection type in this build")
)]
/// The statement: Janssen's mixed-case names quoted (`quote`: `"` or a backtick); months are
/// generated digits, never user text.
fn query(quote: char, table: &str, months: Option<&[Month]>) -> String {
    let q = |name: &str| format!("{quote}{name}{quote}");
    let mut sql = format!(
        "SELECT doc_id, dn, dat, {} AS jans_data, attr FROM {}",
        q("jansData"),
        q(table)
    );
    if let Some(months) = months {
        let list: Vec<String> = months.iter().map(|m| format!("'{m}'")).collect();
        sql.push_str(&format!(
            " WHERE {data} IN ({}) OR {data} IS NULL",
            list.join(", "),
            data = q("jansData")
        ));
    }
    sql.push_str(" ORDER BY doc_id");
    sql
}

/// Every statement of the source's session may take at most this long (a read blocked by a
/// lock of Janssen's, or a server that stalls, must not stop the ingest thread).
#[cfg(any(feature = "postgres", feature = "mysql"))]
const STATEMENT_TIMEOUT_SECS: u32 = 30;

/// Sets the session's statement and lock timeouts ([`STATEMENT_TIMEOUT_SECS`]): PostgreSQL's,
/// or MariaDB's and else MySQL's (each refuses the other's variables).
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn bound_statements(conn: &mut Conn) -> Result<(), diesel::result::Error> {
    use diesel::connection::SimpleConnection;
    let secs = STATEMENT_TIMEOUT_SECS;
    match conn {
        #[cfg(feature = "postgres")]
        Conn::Pg(c) => c.batch_execute(&format!(
            "SET statement_timeout = {ms}; SET lock_timeout = {ms}",
            ms = secs * 1000
        )),
        #[cfg(feature = "mysql")]
        Conn::Mysql(c) => c
            .batch_execute(&format!(
                "SET SESSION max_statement_time = {secs}, innodb_lock_wait_timeout = {secs}"
            ))
            .or_else(|_| {
                c.batch_execute(&format!(
                    "SET SESSION max_execution_time = {}, innodb_lock_wait_timeout = {secs}",
                    secs * 1000
                ))
            }),
    }
}

/// `url` with libpq's `connect_timeout` unless it sets one.
#[cfg(feature = "postgres")]
fn with_connect_timeout(url: &str) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout={CONNECT_TIMEOUT_SECS}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_quotes_janssens_names() {
        let months = ["202402".parse().unwrap(), "202401".parse().unwrap()];
        assert_eq!(
            query('"', "jansStatEntry", Some(&months)),
            "SELECT doc_id, dn, dat, \"jansData\" AS jans_data, attr FROM \"jansStatEntry\" \
             WHERE \"jansData\" IN ('202402', '202401') OR \"jansData\" IS NULL ORDER BY doc_id"
        );
        assert_eq!(
            query('`', "jansStatEntry", None),
            "SELECT doc_id, dn, dat, `jansData` AS jans_data, attr FROM `jansStatEntry` ORDER BY doc_id"
        );
    }

    #[test]
    fn the_password_is_never_described() {
        let db = Database::new("postgres://jans:s3cret@db:5432/jans", "jansStatEntry");
        assert!(!db.describe().contains("s3cret"), "{}", db.describe());
        assert!(!format!("{db:?}").contains("s3cret"));
    }
}
