//! MySQL / MariaDB: a database of its own per test on the throwaway server of scripts/test.

use std::sync::Arc;

use async_trait::async_trait;
use authstat_backends::options::SqlServerConfig;
use authstat_backends::sql::MysqlStore;
use authstat_core::store::StatStore;
use diesel::prelude::*;

use crate::conformance::conformance_tests;
use crate::support::{
    Harness, Opened, assert_unavailable, batch, month, own, required_env, sql_fail,
};

struct Mysql {
    config: SqlServerConfig,
}

#[async_trait]
impl Harness for Mysql {
    async fn open(&self) -> Opened {
        let store = Arc::new(MysqlStore::connect(&self.config).await.unwrap());
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

async fn harness() -> Mysql {
    let config = SqlServerConfig {
        url: authstat_test_support::db::mysql("authstat_test"),
        pool_size: 4,
        connect_timeout_secs: 5,
    };
    Mysql { config }
}

conformance_tests!(harness);

/// Grant types differing only in case are different keys (binary collation).
#[tokio::test]
async fn keys_are_case_sensitive() {
    let h = harness().await;
    let store = authstat_backends::build(&authstat_backends::options::SqlServerConfig::mysql(
        &h.config.clone(),
    ))
    .await
    .unwrap();
    assert_eq!(store.kind(), "mysql");
    own(store.as_ref(), "node-a").await;
    let mut b = batch("node-a", 1, &["202402"], 0, 1, 0);
    b.months[0]
        .counter_deltas
        .add(&crate::support::token("Password", "access_token"), 1);
    b.months[0]
        .counter_deltas
        .add(&crate::support::token("password", "access_token"), 2);
    store.flush(&b).await.unwrap();
    let read = store.read_months(&[month("202402")]).await.unwrap();
    assert_eq!(read[0].counters.tokens.get("Password", "access_token"), 1);
    assert_eq!(read[0].counters.tokens.get("password", "access_token"), 2);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let config = SqlServerConfig {
        url: "mysql://app:hunter2@127.0.0.1:1/stats".into(),
        pool_size: 1,
        connect_timeout_secs: 1,
    };
    let err =
        authstat_backends::build(&authstat_backends::options::SqlServerConfig::mysql(&config))
            .await
            .unwrap_err();
    assert_unavailable(&err, "mysql");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// The flushing connection killed by another session inside the transaction, before each write
/// and before the commit (see `killed.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_killed_inside_a_flush() {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let h = harness().await;
    let store = MysqlStore::connect(&h.config).await.unwrap();
    let db = h.config.url.rsplit_once('/').unwrap().1.to_owned();
    let admin = required_env("AUTHSTAT_TEST_MYSQL_URL", "MySQL/MariaDB");
    crate::killed::connection_killed_inside_a_flush(&store, move || {
        let mut conn = MysqlConnection::establish(&admin).unwrap();
        let others = format!(
            "SELECT CAST(id AS SIGNED) AS id FROM information_schema.processlist \
             WHERE db = '{db}' AND id <> CONNECTION_ID()"
        );
        let ids: Vec<Id> = diesel::sql_query(&others).load(&mut conn).unwrap();
        for Id { id } in &ids {
            diesel::sql_query(format!("KILL CONNECTION {id}"))
                .execute(&mut conn)
                .unwrap();
        }
        // KILL marks the connections; wait until the server has closed them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !diesel::sql_query(&others)
            .load::<Id>(&mut conn)
            .unwrap()
            .is_empty()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "killed connections linger"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        ids.len()
    })
    .await;
}

/// The health check follows the server: Ok, then unavailable while the database is gone (its
/// connections killed), then Ok again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_database() {
    let h = harness().await;
    let config = SqlServerConfig {
        connect_timeout_secs: 1,
        ..h.config.clone()
    };
    let store = MysqlStore::connect(&config).await.unwrap();
    store.health().await.unwrap();
    let db = config.url.rsplit_once('/').unwrap().1.to_owned();
    let admin = required_env("AUTHSTAT_TEST_MYSQL_URL", "MySQL/MariaDB");
    let mut conn = MysqlConnection::establish(&admin).unwrap();
    diesel::sql_query(format!("DROP DATABASE {db}"))
        .execute(&mut conn)
        .unwrap();
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let mut kill_sessions = || {
        let ids: Vec<Id> = diesel::sql_query(format!(
            "SELECT CAST(id AS SIGNED) AS id FROM information_schema.processlist \
             WHERE db = '{db}' AND id <> CONNECTION_ID()"
        ))
        .load(&mut conn)
        .unwrap();
        for Id { id } in ids {
            // A connection may end by itself meanwhile.
            let _ = diesel::sql_query(format!("KILL CONNECTION {id}")).execute(&mut conn);
        }
    };
    kill_sessions();
    // A pooled connection that was being opened in the background may slip through once: the
    // health check must turn unavailable.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let err = loop {
        match store.health().await {
            Err(e) => break e,
            Ok(()) => assert!(
                std::time::Instant::now() < deadline,
                "the health check never saw the database gone"
            ),
        }
        kill_sessions();
    };
    assert_unavailable(&err, "mysql");
    diesel::sql_query(format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .unwrap();
    store.health().await.unwrap();
}
