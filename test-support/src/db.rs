//! Throwaway databases on the servers `scripts/test` starts, created with the servers' own
//! command-line clients (`psql`, `mariadb`), so any crate's tests can use them.

use std::process::Command;

use crate::env::{required_env, unique_name};

/// The server's URL with `db` as its database.
pub fn with_database(admin_url: &str, db: &str) -> String {
    let (base, _) = admin_url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{db}")
}

/// A new, empty PostgreSQL database on `AUTHSTAT_TEST_POSTGRES_URL`'s server; its URL.
pub fn postgres(prefix: &str) -> String {
    let admin = required_env("AUTHSTAT_TEST_POSTGRES_URL", "PostgreSQL");
    let db = unique_name(prefix);
    run(Command::new("psql")
        .arg(&admin)
        .args(["-qc", &format!("CREATE DATABASE {db}")]));
    with_database(&admin, &db)
}

/// A new, empty MariaDB (MySQL) database on `AUTHSTAT_TEST_MYSQL_URL`'s server; its URL.
pub fn mysql(prefix: &str) -> String {
    let admin = required_env("AUTHSTAT_TEST_MYSQL_URL", "MySQL/MariaDB");
    let db = unique_name(prefix);
    run(mariadb_client(&admin).args(["-e", &format!("CREATE DATABASE {db}")]));
    with_database(&admin, &db)
}

/// The `mariadb` client for `url` (`mysql://user@host:port/db`), on its database.
fn mariadb_client(url: &str) -> Command {
    let parts: Vec<&str> = url
        .trim_start_matches("mysql://")
        .split(['@', ':', '/'])
        .collect();
    let mut command = Command::new("mariadb");
    command
        .args([
            "--no-defaults",
            "-h",
            parts[1],
            "-P",
            parts[2],
            "-u",
            parts[0],
        ])
        .args(["-D", parts[3]]);
    command
}

/// Runs `sql` (several statements) on the PostgreSQL database at `url` with `psql`.
pub fn psql(url: &str, sql: &str) {
    run(Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-qc", sql]));
}

/// Runs `sql` (several statements) on the MariaDB database at `url` (`mysql://user@host:port/db`)
/// with the `mariadb` client.
pub fn mariadb(url: &str, sql: &str) {
    run(mariadb_client(url).args(["-e", sql]));
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e} (scripts/install-deps installs it)"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
