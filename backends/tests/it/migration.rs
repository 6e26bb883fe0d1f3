//! Upgrading a database written before positions, leases and claims existed: the file
//! checkpoints become positions (the same content, offset and path), every checkpointed file
//! becomes a claim of its node, and the node can be claimed and flushed as usual.

use authstat_backends::options::SqliteConfig;
use authstat_backends::sql::SqliteStore;
use authstat_core::store::{KeyClaim, KeyOwner, StatStore};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::support::{batch, month, node, own};

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

/// The old schema, recorded as migrated, with one node's data and checkpoints (the
/// fingerprint above i64::MAX, stored signed, as the old code did).
const OLD_DATA: &str = "
INSERT INTO authstat_nodes (node_id, seq, updated_at_ms) VALUES ('old-node', 7, 1);
INSERT INTO authstat_counters (node_id, month, kind, k1, k2, value)
    VALUES ('old-node', 202402, 'authn', 'success', '', 41);
INSERT INTO authstat_checkpoints
    (node_id, source, device, inode, fingerprint, fingerprint_len, file_offset, path)
VALUES
    ('old-node', 'audit', 64769, 1001, -6124895493223875970, 256, 73514, '/logs/jans-auth_audit.log'),
    ('old-node', 'audit', 64769, 1002, 12345, 200, 999, '/logs/jans-auth_audit-1.log');
";

/// diesel's record of applied migrations.
const MIGRATIONS_TABLE: &str = "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) \
    PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)";

/// Runs the first migration by hand on `conn` (as an older authstat did), then the data.
macro_rules! old_schema {
    ($conn:expr, $dialect:literal, $migrations_table:expr) => {{
        $conn
            .batch_execute(include_str!(concat!(
                "../../migrations/",
                $dialect,
                "/2026-11-25-000000_create_authstat_tables/up.sql"
            )))
            .unwrap();
        $conn.batch_execute($migrations_table).unwrap();
        $conn
            .batch_execute(
                "INSERT INTO __diesel_schema_migrations (version) VALUES ('20261125000000')",
            )
            .unwrap();
        $conn.batch_execute(OLD_DATA).unwrap();
    }};
}

async fn check_upgraded(store: &dyn StatStore) {
    let state = store.load_node(&node("old-node")).await.unwrap();
    assert_eq!(state.seq, 7);
    assert_eq!(state.months[0].month, month("202402"));
    assert_eq!(state.positions.len(), 2, "{:?}", state.positions);
    let p = &state.positions[0];
    assert_eq!(p.source, "audit");
    let data: serde_json::Value = serde_json::from_str(&p.data).unwrap();
    assert_eq!(data["offset"], 73514, "{}", p.data);
    assert_eq!(data["fp"], -6124895493223875970i64, "{}", p.data);
    assert_eq!(data["len"], 256, "{}", p.data);
    assert_eq!(data["path"], "/logs/jans-auth_audit.log", "{}", p.data);
    // The checkpointed files are the old node's claims.
    let other = KeyOwner {
        node: node("someone-else"),
        source: "backfill".into(),
        epoch: 1,
    };
    let answers = store
        .claim_keys(&other, &["file:-6124895493223875970:256".to_owned()])
        .await
        .unwrap();
    let KeyClaim::Theirs(owner) = &answers[0] else {
        panic!("{answers:?}")
    };
    assert_eq!(
        (owner.node.as_str(), owner.source.as_str()),
        ("old-node", "audit")
    );
    // The node works as any other.
    own(store, "old-node").await;
    let mut b = batch("old-node", 8, &["202402"], 0, 1, 1);
    b.positions = None;
    store.flush(&b).await.unwrap();
    assert_eq!(
        store.load_node(&node("old-node")).await.unwrap().positions,
        state.positions,
        "kept"
    );
}

#[tokio::test]
async fn sqlite_checkpoints_become_positions_and_claims() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    old_schema!(conn, "sqlite", MIGRATIONS_TABLE);
    drop(conn);
    let store = SqliteStore::open(&SqliteConfig {
        path: path.clone(),
        busy_timeout_ms: 5000,
        pool_size: 2,
    })
    .await
    .unwrap();
    check_upgraded(&store).await;
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    let versions: Vec<Version> =
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations ORDER BY version")
            .load(&mut conn)
            .unwrap();
    assert_eq!(versions.len(), 6, "the newer migrations are recorded");
    assert_eq!(versions[0].version, "20261125000000");
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
/// A server database of its own in the old schema; the upgraded store on it.
macro_rules! server_upgrade {
    ($create:path, $conn:ty, $dialect:literal, $store:ty) => {{
        let url = $create("authstat_upgrade");
        let mut conn = <$conn>::establish(&url).unwrap();
        old_schema!(conn, $dialect, MIGRATIONS_TABLE);
        let config = authstat_backends::options::SqlServerConfig {
            url,
            pool_size: 2,
            connect_timeout_secs: 5,
        };
        check_upgraded(&<$store>::connect(&config).await.unwrap()).await;
    }};
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_checkpoints_become_positions_and_claims() {
    server_upgrade!(
        authstat_test_support::db::postgres,
        PgConnection,
        "postgres",
        authstat_backends::sql::PgStore
    );
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_checkpoints_become_positions_and_claims() {
    server_upgrade!(
        authstat_test_support::db::mysql,
        MysqlConnection,
        "mysql",
        authstat_backends::sql::MysqlStore
    );
}
