//! SQLite: a temporary file per test.

use std::sync::Arc;

use async_trait::async_trait;
use authstat_backends::options::SqliteConfig;
use authstat_backends::sql::SqliteStore;
use diesel::prelude::*;

use crate::conformance::conformance_tests;
use crate::support::{Harness, Opened, batch, own, sql_fail};

struct Sqlite {
    _dir: tempfile::TempDir,
    config: SqliteConfig,
}

#[async_trait]
impl Harness for Sqlite {
    async fn open(&self) -> Opened {
        let store = Arc::new(SqliteStore::open(&self.config).await.unwrap());
        let hook = store.clone();
        let fold_hook = store.clone();
        Opened {
            store,
            fail_next_flush: Box::new(move |at| hook.inject_flush_failure(sql_fail(at))),
            fail_next_fold: Box::new(move |at| fold_hook.inject_fold_failure(sql_fail(at))),
            flush_points: 16,
            // Fold counters, delete HLLs, delete counters, upsert the HLLs (one statement for
            // the tests' months), bump the folded node.
            fold_points: 8,
            fold_after_commit: true,
        }
    }
}

async fn harness() -> Sqlite {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        path: dir.path().join("data/nested/authstat.db"),
        busy_timeout_ms: 5000,
        pool_size: 4,
    };
    Sqlite { _dir: dir, config }
}

conformance_tests!(harness);

#[tokio::test]
async fn factory_builds_a_wal_mode_file_in_a_new_directory() {
    let h = harness().await;
    let store = authstat_backends::build(&authstat_backends::options::SqliteConfig::backend(
        &h.config.clone(),
    ))
    .await
    .unwrap();
    assert_eq!(store.kind(), "sqlite");
    own(store.as_ref(), "node-a").await;
    store
        .flush(&batch("node-a", 1, &["202402"], 0, 10, 1))
        .await
        .unwrap();
    assert!(h.config.path.exists());
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    let mut conn = SqliteConnection::establish(h.config.path.to_str().unwrap()).unwrap();
    let mode: Vec<Mode> = diesel::sql_query("PRAGMA journal_mode")
        .load(&mut conn)
        .unwrap();
    assert_eq!(mode[0].journal_mode, "wal");
}

#[tokio::test]
async fn an_unwritable_location_is_a_clear_error() {
    let config = SqliteConfig {
        path: "/proc/authstat/x.db".into(),
        busy_timeout_ms: 100,
        pool_size: 1,
    };
    let err = SqliteStore::open(&config).await.unwrap_err().to_string();
    assert!(err.contains("/proc/authstat"), "{err}");
}

/// More silent nodes than one fold transaction takes (500): the fold goes on, transaction
/// after transaction, until every one is folded; reads do not change.
#[tokio::test]
async fn a_fold_of_many_nodes_takes_several_transactions() {
    use authstat_core::store::{FoldRequest, StatStore};
    let h = harness().await;
    let store = SqliteStore::open(&h.config).await.unwrap();
    let nodes = 1203;
    for i in 0..nodes {
        let id = format!("pod-{i:04}");
        let epoch = own(&store, &id).await;
        let mut b = batch(&id, 1, &["202402"], i, 2, 1);
        b.epoch = epoch;
        b.positions = None;
        store.flush(&b).await.unwrap();
        store
            .release_node(&crate::support::node(&id), epoch)
            .await
            .unwrap();
    }
    let month = [crate::support::month("202402")];
    let before = store.read_months(&month).await.unwrap();
    let now = crate::support::now_ms();
    let report = store
        .fold_silent(&FoldRequest {
            silent_before_ms: now + 60_000,
            now_ms: now,
        })
        .await
        .unwrap();
    assert_eq!(report.nodes.len(), nodes);
    assert_eq!(report.node_months, nodes);
    assert_eq!(store.read_months(&month).await.unwrap(), before);
    let rows: i64 = {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = SqliteConnection::establish(h.config.path.to_str().unwrap()).unwrap();
        diesel::sql_query("SELECT COUNT(*) AS n FROM authstat_hll")
            .load::<N>(&mut conn)
            .unwrap()[0]
            .n
    };
    assert_eq!(rows, 1, "one folded row is left");
}

/// A write of an agent that predates roll-ups (during a rolling upgrade: it writes the node's
/// rows and `seq`, not the roll-up) leaves the node's `rollup_seq` behind: the next read builds
/// the roll-up anew, and answers what the rows hold.
#[tokio::test]
async fn a_write_of_an_older_agent_makes_the_next_read_rebuild_the_rollup() {
    let h = harness().await;
    let opened = h.open().await;
    let store = opened.store;
    own(store.as_ref(), "node-a").await;
    store
        .flush(&batch("node-a", 1, &["202401"], 0, 10, 1))
        .await
        .unwrap();
    let month = crate::support::month("202401");
    let before = store.read_months(&[month]).await.unwrap();
    // The older agent: 5 more successful authorizations, seq 2, no roll-up.
    let mut conn = SqliteConnection::establish(h.config.path.to_str().unwrap()).unwrap();
    diesel::sql_query(
        "UPDATE authstat_counters SET value = value + 5 \
         WHERE node_id = 'node-a' AND month = 202401 AND kind = 'audit' \
         AND k1 = 'USER_AUTHORIZATION' AND k2 = 'success'",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("UPDATE authstat_nodes SET seq = 2 WHERE node_id = 'node-a'")
        .execute(&mut conn)
        .unwrap();
    let after = store.read_months(&[month]).await.unwrap();
    let key = crate::support::audit(authstat_core::event::AuditAction::UserAuthorization, true);
    assert_eq!(
        after[0].counters.get(&key),
        before[0].counters.get(&key) + 5,
        "the read holds the older agent's write"
    );
    assert_eq!(after[0].users, before[0].users);
    // Built once: the node is held again.
    #[derive(QueryableByName)]
    struct Behind {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let behind: Vec<Behind> =
        diesel::sql_query("SELECT COUNT(*) AS n FROM authstat_nodes WHERE rollup_seq <> seq")
            .load(&mut conn)
            .unwrap();
    assert_eq!(behind[0].n, 0);
}
