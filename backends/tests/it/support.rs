//! Test data and fresh databases.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use authstat_core::counters::{CounterKey, Counters, Outcome};
use authstat_core::event::AuditAction;
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{Checkpoint, FlushBatch, MonthFlush, StatStore};
use authstat_core::{Month, NodeId};

/// A backend under test: opens stores on one database of its own.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Opens a store on the harness's database (again: that is a restart).
    async fn open(&self) -> Opened;
}

/// An opened store and a way to make its next flush fail half-way.
pub struct Opened {
    pub store: Arc<dyn StatStore>,
    pub fail_next_flush: Box<dyn Fn() + Send + Sync>,
}

/// The environment variable `name`, or a failure that says how to run the suite.
pub fn required_env(name: &str, what: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the {what} tests need a running server. Run the suite with \
             scripts/test, which starts a throwaway one."
        )
    })
}

/// A name no other test uses (for databases).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{n}", std::process::id())
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

pub fn checkpoint(source: &str, inode: u64, offset: u64) -> Checkpoint {
    Checkpoint {
        source: source.into(),
        path: format!("/var/log/jans/{source}-{inode}.log"),
        device: 0xfd01,
        inode,
        // Above i64::MAX: must survive signed BIGINT storage.
        fingerprint: u64::MAX - inode,
        fingerprint_len: 256,
        offset,
    }
}

/// A batch for `node` with the given months, each with `users` distinct users starting at
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
        seq,
        months: months
            .iter()
            .map(|m| MonthFlush {
                month: month(m),
                users: users(
                    (first_user..first_user + users_per_month).map(|i| format!("{m}-user{i}")),
                ),
                counter_deltas: counters(k),
            })
            .collect(),
        checkpoints: vec![
            checkpoint("audit", 11, 1000 * seq),
            checkpoint("tokens", 12, 77 * seq),
        ],
    }
}
