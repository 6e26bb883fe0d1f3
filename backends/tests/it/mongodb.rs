//! MongoDB: a database of its own per test on the MongoDB-protocol test server of scripts/test.

use std::sync::Arc;

use async_trait::async_trait;
use authstat_backends::mongo::{FailAt, FoldFailAt, MongoStore};
use authstat_config::{BackendConfig, MongoConfig};
use authstat_core::store::StoreError;

use crate::conformance::conformance_tests;
use crate::support::{Fail, Harness, Opened, batch, month, own, required_env, unique_name};

struct Mongo {
    config: MongoConfig,
}

#[async_trait]
impl Harness for Mongo {
    async fn open(&self) -> Opened {
        let store = Arc::new(MongoStore::open(&self.config).await.unwrap());
        let hook = store.clone();
        let fold_hook = store.clone();
        Opened {
            store,
            fail_next_flush: Box::new(move |at| {
                hook.inject_flush_failure(match at {
                    Fail::Before(_) => FailAt::BeforeSend,
                    Fail::AfterCommit => FailAt::AfterApply,
                })
            }),
            fail_next_fold: Box::new(move |at| match at {
                Fail::Before(0) => fold_hook.inject_fold_failure(FoldFailAt::AfterMark),
                Fail::Before(1) => fold_hook.inject_fold_failure(FoldFailAt::AfterApply),
                _ => {}
            }),
        }
    }
}

async fn harness() -> Mongo {
    let uri = required_env("AUTHSTAT_TEST_MONGODB_URI", "MongoDB");
    Mongo {
        config: MongoConfig {
            uri,
            database: unique_name("authstat_test"),
            collection: "stats_nodes".into(),
            connect_timeout_secs: 5,
        },
    }
}

conformance_tests!(harness);

/// Keys with `.` and `$` (not allowed in MongoDB field names) survive.
#[tokio::test]
async fn awkward_keys_survive() {
    let h = harness().await;
    let store = authstat_backends::build(&BackendConfig::Mongodb(h.config.clone()))
        .await
        .unwrap();
    assert_eq!(store.kind(), "mongodb");
    own(store.as_ref(), "node-a").await;
    let mut b = batch("node-a", 1, &["202402"], 0, 1, 0);
    b.months[0]
        .counter_deltas
        .add(&crate::support::token("x.y$z|%", "a.b"), 5);
    store.flush(&b).await.unwrap();
    let read = store.read_months(&[month("202402")]).await.unwrap();
    assert_eq!(read[0].counters.tokens.get("x.y$z|%", "a.b"), 5);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let config = MongoConfig {
        uri: "mongodb://app:hunter2@127.0.0.1:1/".into(),
        database: "x".into(),
        collection: "y".into(),
        connect_timeout_secs: 1,
    };
    let err = authstat_backends::build(&BackendConfig::Mongodb(config))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Unavailable {
                backend: "mongodb",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
