//! PostgreSQL: a database of its own per test in the throwaway cluster of scripts/test.

use std::sync::Arc;

use async_trait::async_trait;
use authstat_backends::options::SqlServerConfig;
use authstat_backends::sql::PgStore;
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{FlushOutcome, StatStore};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::conformance::conformance_tests;
use crate::support::{
    Harness, Opened, assert_unavailable, batch, month, own, required_env, sql_fail,
};

fn admin_url() -> String {
    required_env("AUTHSTAT_TEST_POSTGRES_URL", "PostgreSQL")
}

struct Postgres {
    config: SqlServerConfig,
}

#[async_trait]
impl Harness for Postgres {
    async fn open(&self) -> Opened {
        let store = Arc::new(PgStore::connect(&self.config).await.unwrap());
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

async fn harness() -> Postgres {
    let url = authstat_test_support::db::postgres("authstat_test");
    Postgres {
        config: SqlServerConfig {
            url,
            pool_size: 4,
            connect_timeout_secs: 5,
        },
    }
}

conformance_tests!(harness);

#[derive(QueryableByName)]
struct Printed {
    #[diesel(sql_type = Text)]
    text: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The stored HLLs are postgresql-hll's own format: the `hll` extension reads them, and for the
/// same user names its `hll_hash_text` + `hll_add_agg` produce the very same bytes.
#[tokio::test]
async fn stored_hlls_are_readable_and_reproducible_by_the_hll_extension() {
    let h = harness().await;
    let store = PgStore::connect(&h.config).await.unwrap();
    let mut conn = PgConnection::establish(&h.config.url).unwrap();
    diesel::sql_query("CREATE EXTENSION IF NOT EXISTS hll")
        .execute(&mut conn)
        .unwrap();
    own(&store, "node-a").await;

    for (seq, n) in [(1u64, 100usize), (2, 3000), (3, 20000)] {
        let names: Vec<String> = (0..n).map(|i| format!("user{i}@example.com")).collect();
        let mut ours = Hll::new(HllParams::janssen());
        for name in &names {
            ours.add_raw(HashAlgorithm::Murmur3.hash(name));
        }
        let mut b = batch("node-a", seq, &["202402"], 0, 0, 0);
        b.months[0].users = ours.clone();
        assert_eq!(store.flush(&b).await.unwrap(), FlushOutcome::Applied);

        let stored: Vec<Count> = diesel::sql_query(
            // hll_cardinality is the raw estimate; java-hll's cardinality() is its ceiling.
            "SELECT CAST(CEIL(hll_cardinality(CAST(hll AS hll))) AS BIGINT) AS n FROM authstat_hll \
             WHERE node_id = 'node-a' AND month = 202402",
        )
        .load(&mut conn)
        .unwrap();
        assert_eq!(
            stored[0].n as u64,
            ours.cardinality().unwrap(),
            "{n} users, {}",
            ours.hll_type()
        );

        // The extension prints an hll as PostgreSQL hex: `\x` and lower-case hex digits.
        let theirs: Vec<Printed> = diesel::sql_query(
            "SELECT CAST(hll_add_agg(hll_hash_text(u), 15, 5, -1, 1) AS TEXT) AS text \
             FROM unnest(CAST($1 AS TEXT[])) AS u",
        )
        .bind::<Text, _>(format!("{{{}}}", names.join(",")))
        .load(&mut conn)
        .unwrap();
        let hex: String = ours
            .to_bytes()
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            theirs[0].text,
            format!("\\x{hex}"),
            "{n} users, {}",
            ours.hll_type()
        );
    }
}

/// Connections the server kills between flushes are replaced; at worst one flush fails
/// retryably and its retry is applied once.
#[tokio::test]
async fn killed_connections_are_replaced() {
    let h = harness().await;
    let store = PgStore::connect(&h.config).await.unwrap();
    own(&store, "node-a").await;
    store
        .flush(&batch("node-a", 1, &["202402"], 0, 10, 1))
        .await
        .unwrap();
    let mut admin = PgConnection::establish(&admin_url()).unwrap();
    let db = h.config.url.rsplit_once('/').unwrap().1.to_owned();
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
    ))
    .execute(&mut admin)
    .unwrap();
    let b = batch("node-a", 2, &["202402"], 0, 10, 1);
    let outcome = match store.flush(&b).await {
        Ok(outcome) => outcome,
        Err(e) => {
            assert!(e.is_retryable(), "{e}");
            store.flush(&b).await.unwrap()
        }
    };
    assert_eq!(outcome, FlushOutcome::Applied);
    let read = store.read_months(&[month("202402")]).await.unwrap();
    let mut expected = crate::support::counters(1);
    expected.merge(&crate::support::counters(1));
    assert_eq!(read[0].counters, expected);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_the_password_is_not_shown() {
    let config = SqlServerConfig {
        url: "postgres://app:hunter2@127.0.0.1:1/stats".into(),
        pool_size: 1,
        connect_timeout_secs: 1,
    };
    let err = authstat_backends::build(&authstat_backends::options::SqlServerConfig::postgres(
        &config,
    ))
    .await
    .unwrap_err();
    assert_unavailable(&err, "postgres");
    let text = err.to_string();
    assert!(
        text.contains("postgres://app:***@127.0.0.1:1/stats"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

/// The flushing connection terminated by another session inside the transaction, before each
/// write and before the commit (see `killed.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_terminated_inside_a_flush() {
    #[derive(QueryableByName)]
    struct Killed {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let h = harness().await;
    let store = PgStore::connect(&h.config).await.unwrap();
    let db = h.config.url.rsplit_once('/').unwrap().1.to_owned();
    let admin = admin_url();
    crate::killed::connection_killed_inside_a_flush(&store, move || {
        let mut conn = PgConnection::establish(&admin).unwrap();
        // The victims first (a WHERE may evaluate its conditions in any order), then each
        // terminated, waiting (up to 5 s) until its backend has exited.
        let rows: Vec<Killed> = diesel::sql_query(format!(
            "WITH victims AS MATERIALIZED (SELECT pid FROM pg_stat_activity \
             WHERE datname = '{db}' AND pid <> pg_backend_pid()) \
             SELECT CAST(COUNT(*) AS BIGINT) AS n FROM victims \
             WHERE pg_terminate_backend(pid, 5000)"
        ))
        .load(&mut conn)
        .unwrap();
        rows[0].n as usize
    })
    .await;
}

/// The health check follows the server: Ok, then unavailable while the database refuses
/// connections (its sessions terminated), then Ok again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_database() {
    let h = harness().await;
    let config = SqlServerConfig {
        connect_timeout_secs: 1,
        ..h.config.clone()
    };
    let store = PgStore::connect(&config).await.unwrap();
    store.health().await.unwrap();
    let db = config.url.rsplit_once('/').unwrap().1.to_owned();
    let mut admin = PgConnection::establish(&admin_url()).unwrap();
    diesel::sql_query(format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .unwrap();
    // Until none is left: a connection the pool was opening when connections were disallowed
    // may still complete after the first round.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let left: Vec<Count> = diesel::sql_query(format!(
            "SELECT count(pg_terminate_backend(pid, 5000)) AS n FROM pg_stat_activity \
             WHERE datname = '{db}'"
        ))
        .load(&mut admin)
        .unwrap();
        if left[0].n == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sessions of {db} remain"
        );
    }
    // A pooled connection that was being opened in the background may still slip through
    // once; the health check must turn unavailable (and stay so until connections are allowed).
    let err = loop {
        match store.health().await {
            Err(e) => break e,
            Ok(()) => assert!(
                std::time::Instant::now() < deadline,
                "the health check never saw the database refuse connections"
            ),
        }
        diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = '{db}'"
        ))
        .execute(&mut admin)
        .unwrap();
    };
    assert_unavailable(&err, "postgres");
    diesel::sql_query(format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .unwrap();
    store.health().await.unwrap();
}
