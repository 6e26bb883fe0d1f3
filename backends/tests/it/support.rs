//! Test data and fresh databases.

use std::sync::Arc;

use async_trait::async_trait;
use authstat_core::counters::{CounterKey, Counters, Outcome};
use authstat_core::event::AuditAction;
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{
    ClaimRequest, FlushBatch, Instance, MonthFlush, NodeClaim, SourcePosition, StatStore,
    StoreError,
};
use authstat_core::{Month, NodeId};

/// A backend under test: opens stores on one database of its own.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Opens a store on the harness's database (again: that is a restart).
    async fn open(&self) -> Opened;
}

/// Where the next flush fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    /// Before the write with this index (SQL: statement; memory: month; MongoDB: before the
    /// one update is sent, whatever the index). Nothing of the flush is applied.
    Before(usize),
    /// After the flush was applied and committed: the answer is lost.
    AfterCommit,
}

/// An opened store and a way to make its next flush or fold fail.
pub struct Opened {
    pub store: Arc<dyn StatStore>,
    pub fail_next_flush: Box<dyn Fn(Fail) + Send + Sync>,
    /// SQL: before statement n of the fold transaction, or after its commit; MongoDB: stop
    /// after marking (0) or applying (1) the first node; memory: no failure point (a fold is
    /// one critical section).
    pub fail_next_fold: Box<dyn Fn(Fail) + Send + Sync>,
    /// How many `Fail::Before` points the conformance tests' large flush has (each fires; a
    /// point past them does not): SQL statements, memory months, MongoDB: every index (one
    /// update, failed before it is sent).
    pub flush_points: usize,
    /// How many `Fail::Before` points a fold has (each fires).
    pub fold_points: usize,
    /// Whether a fold can fail after its commit (`Fail::AfterCommit`).
    pub fold_after_commit: bool,
}

/// Whether `err` is the failure a test injected (the fault fired), not another one.
pub fn injected(err: &StoreError) -> bool {
    err.to_string().contains("injected failure")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn instance(id: &str) -> Instance {
    Instance {
        id: id.into(),
        host: format!("host-of-{id}"),
        pid: 4242,
        started_at_ms: 1_700_000_000_000,
        locality: String::new(),
    }
}

/// A claim of `node_id` by `instance_id`, with a lease of `lease_ms` from `now`.
pub fn claim_request(node_id: &str, instance_id: &str, now: i64, lease_ms: i64) -> ClaimRequest {
    ClaimRequest {
        node: node(node_id),
        instance: instance(instance_id),
        until_ms: now + lease_ms,
        now_ms: now,
        take_over: authstat_core::store::TakeOver::Never,
    }
}

/// Claims `node_id` for a test instance; the epoch.
pub async fn own(store: &dyn StatStore, node_id: &str) -> u64 {
    let request = claim_request(node_id, &format!("{node_id}-instance"), now_ms(), 60_000);
    match store.claim_node(&request).await.unwrap() {
        NodeClaim::Granted { epoch, .. } => epoch,
        other => panic!("claim of {node_id} refused: {other:?}"),
    }
}

#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "mongodb")),
    allow(unused_imports)
)]
pub use authstat_test_support::env::{required_env, unique_name};

/// `err` is [`StoreError::Unavailable`] from `backend` (retryable: the server may come back).
#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "mongodb")),
    allow(dead_code)
)]
pub fn assert_unavailable(err: &StoreError, backend: &str) {
    assert!(
        matches!(err, StoreError::Unavailable { backend: b, .. } if *b == backend),
        "expected {backend} unavailable: {err}"
    );
}

pub fn month(s: &str) -> Month {
    s.parse().unwrap()
}

pub fn node(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

/// An HLL of `users` user names, hashed with murmur3.
pub fn users(names: impl IntoIterator<Item = String>) -> Hll {
    let mut h = Hll::new(HllParams::janssen());
    for n in names {
        h.add_raw(HashAlgorithm::Murmur3.hash(&n));
    }
    h
}

pub fn token(grant: &str, token_type: &str) -> CounterKey {
    CounterKey::Token {
        grant_type: grant.into(),
        token_type: token_type.into(),
    }
}

pub fn audit(action: AuditAction, success: bool) -> CounterKey {
    CounterKey::Audit {
        action,
        outcome: Outcome::from(success),
    }
}

/// Counters with a spread of every kind, scaled by `k`.
pub fn counters(k: u64) -> Counters {
    let mut c = Counters::default();
    c.add(&token("client_credentials", "access_token"), 62 * k);
    c.add(&token("authorization_code", "id_token"), 3 * k);
    c.add(
        &token(
            "urn:ietf:params:oauth:grant-type:device_code",
            "access_token",
        ),
        k,
    );
    c.add(&audit(AuditAction::UserAuthorization, true), 10 * k);
    c.add(&audit(AuditAction::UserAuthorization, false), 4 * k);
    c.add(&audit(AuditAction::Other("FUTURE_ACTION".into()), true), k);
    c.add(&CounterKey::Authentication(Outcome::Failure), 2 * k);
    c
}

pub fn position(source: &str, key: u64, offset: u64) -> SourcePosition {
    SourcePosition {
        source: source.into(),
        key: format!("file:{}:256", -(key as i64)),
        // Opaque to the store: any text, kept exactly (quotes, unicode, a long value).
        data: format!(
            "{{\"offset\":{offset},\"path\":\"/var/log/jans/{source}-{key}.log \\\"ü\\\"\",\"pad\":\"{}\"}}",
            "x".repeat(300)
        ),
    }
}

/// A batch for `node` (claimed once, epoch 1) with the given months, each with `users` distinct users starting at
/// `first_user` and counters scaled by `k`.
pub fn batch(
    node_id: &str,
    seq: u64,
    months: &[&str],
    first_user: usize,
    users_per_month: usize,
    k: u64,
) -> FlushBatch {
    FlushBatch {
        node: node(node_id),
        epoch: 1,
        lease_until_ms: now_ms() + 60_000,
        seq,
        months: months
            .iter()
            .map(|m| MonthFlush {
                month: month(m),
                users: users(
                    (first_user..first_user + users_per_month).map(|i| format!("{m}-user{i}")),
                ),
                counter_deltas: counters(k),
                clients: Some(users((0..3).map(|c| format!("{m}-client{c}")))),
                dims: Vec::new(),
            })
            .collect(),
        positions: Some(vec![
            position("audit", 11, 1000 * seq),
            position("tokens", 12, 77 * seq),
        ]),
    }
}

/// The SQL backends' failure point for `at`.
pub fn sql_fail(at: Fail) -> authstat_backends::sql::FailAt {
    match at {
        Fail::Before(n) => authstat_backends::sql::FailAt::Statement(n),
        Fail::AfterCommit => authstat_backends::sql::FailAt::AfterCommit,
    }
}
