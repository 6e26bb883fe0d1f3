//! The roll-up (what a merged read answers) against the node rows it stands for.

use std::collections::BTreeMap;

use authstat_core::counters::{CounterKey, Counters, Outcome};
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{
    ClaimRequest, FlushBatch, FlushOutcome, FoldRequest, MonthFlush, NodeClaim, Snapshot,
    SnapshotOutcome, StatStore, TakeOver,
};
use authstat_core::{Month, MonthStats, NodeId};

use crate::support::*;

/// Sequences per backend; each is a few dozen operations.
const CASES: u64 = 6;
const OPS: usize = 40;

/// A small deterministic generator (xorshift): the same seed gives the same sequence.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// An own node as its agent sees it.
struct Agent {
    id: String,
    instance: u64,
    epoch: u64,
    seq: u64,
    /// The node's users per month (they only grow, as in an agent).
    users: BTreeMap<Month, Hll>,
    /// The node's active clients per month (they only grow too).
    clients: BTreeMap<Month, Hll>,
    last: Option<FlushBatch>,
}

/// What `months` merged from every node's rows answer: own users unioned, foreign users
/// unioned apart, counters summed (zeros dropped).
async fn merged_by_hand(store: &dyn StatStore, months: &[Month]) -> Vec<MonthStats> {
    type Merged = (Option<Hll>, Option<Hll>, Counters, Option<Hll>);
    let mut out: BTreeMap<Month, Merged> = BTreeMap::new();
    for summary in store.nodes().await.unwrap() {
        let state = store.load_node(&summary.node).await.unwrap();
        for stats in state.months.iter().filter(|m| months.contains(&m.month)) {
            let entry = out.entry(stats.month).or_default();
            // A foreign node's own rows, read back, hold its users apart (or as its users).
            let (slot, users) = if summary.node.is_foreign() {
                (
                    &mut entry.1,
                    stats.foreign_users.as_ref().unwrap_or(&stats.users),
                )
            } else {
                (&mut entry.0, &stats.users)
            };
            match slot {
                None => *slot = Some(users.clone()),
                Some(acc) => acc.union(users).unwrap(),
            }
            entry.2.merge(&stats.counters);
            if let Some(clients) = &stats.clients {
                match &mut entry.3 {
                    None => entry.3 = Some(clients.clone()),
                    Some(acc) => acc.union(clients).unwrap(),
                }
            }
        }
    }
    out.into_iter()
        .map(|(month, (users, foreign, counters, clients))| MonthStats {
            month,
            users: users.unwrap_or_else(|| Hll::new(HllParams::janssen())),
            counters: counters.without_zeros(),
            foreign_users: foreign,
            clients,
        })
        .collect()
}

fn assert_same(read: &[MonthStats], by_hand: &[MonthStats], after: &str) {
    let months = |s: &[MonthStats]| s.iter().map(|m| m.month).collect::<Vec<_>>();
    assert_eq!(months(read), months(by_hand), "months after {after}");
    let bytes = |h: Option<&Hll>| h.map(|h| h.to_bytes().unwrap());
    for (r, b) in read.iter().zip(by_hand) {
        for (what, read, by_hand) in [
            ("users", Some(&r.users), Some(&b.users)),
            (
                "foreign users",
                r.foreign_users.as_ref(),
                b.foreign_users.as_ref(),
            ),
            ("clients", r.clients.as_ref(), b.clients.as_ref()),
        ] {
            assert_eq!(
                bytes(read),
                bytes(by_hand),
                "{}: {what} after {after}",
                r.month
            );
        }
        assert_eq!(
            r.counters.clone().without_zeros(),
            b.counters,
            "{}: counters after {after}",
            r.month
        );
    }
}

fn counters(rng: &mut Rng) -> Counters {
    let mut c = Counters::default();
    for _ in 0..rng.below(4) + 1 {
        let key = match rng.below(4) {
            0 => token(&format!("grant-{}", rng.below(3)), "access_token"),
            1 => audit(
                authstat_core::event::AuditAction::UserAuthorization,
                rng.below(2) == 0,
            ),
            2 => CounterKey::Authentication(if rng.below(2) == 0 {
                Outcome::Success
            } else {
                Outcome::Failure
            }),
            _ => token("client_credentials", &format!("type-{}", rng.below(2))),
        };
        c.add(&key, rng.below(5) + 1);
    }
    c
}

fn add_users(hll: &mut Hll, rng: &mut Rng, prefix: &str) {
    // Sometimes a handful (explicit), sometimes hundreds (sparse), rarely thousands (full).
    let n = match rng.below(10) {
        0 => 3000,
        1..=3 => 300,
        _ => 5,
    };
    let start = rng.below(100_000);
    for i in start..start + n {
        hll.add_raw(authstat_core::hash::HashAlgorithm::Murmur3.hash(&format!("{prefix}-{i}")));
    }
}

async fn claim(store: &dyn StatStore, agent: &mut Agent, now: i64) {
    agent.instance += 1;
    let request = ClaimRequest {
        node: node(&agent.id),
        instance: instance(&format!("{}-{}", agent.id, agent.instance)),
        until_ms: now + 3_600_000,
        now_ms: now,
        take_over: TakeOver::Always,
    };
    match store.claim_node(&request).await.unwrap() {
        NodeClaim::Granted { epoch, .. } => agent.epoch = epoch,
        other => panic!("{other:?}"),
    }
    // A new agent resumes from what is stored.
    let state = store.load_node(&node(&agent.id)).await.unwrap();
    agent.seq = state.seq;
    agent.users = state
        .months
        .into_iter()
        .map(|m| (m.month, m.users))
        .collect();
    agent.last = None;
}

/// After any sequence of flushes, retried flushes, failed and lost flushes, snapshots (newer and
/// stale), folds, take-overs and reopenings, a merged read equals the merge of every node's own
/// rows: HLL bytes and counters exactly.
pub async fn the_rollup_equals_the_merge_of_the_node_rows(h: &dyn Harness) {
    let mut opened = h.open().await;
    for case in 0..CASES {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (case + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let year = 2001 + case as u32;
        let months: Vec<Month> = (1..=3)
            .map(|m| Month::from_yyyymm(year * 100 + m).unwrap())
            .collect();
        let mut agents: Vec<Agent> = Vec::new();
        for i in 0..3 {
            let mut agent = Agent {
                id: format!("case{case}-node{i}"),
                instance: 0,
                epoch: 0,
                seq: 0,
                users: BTreeMap::new(),
                clients: BTreeMap::new(),
                last: None,
            };
            claim(opened.store.as_ref(), &mut agent, now_ms()).await;
            agents.push(agent);
        }
        let mut versions: BTreeMap<usize, i64> = BTreeMap::new();
        for op in 0..OPS {
            let store = opened.store.clone();
            let what = rng.below(12);
            let after = format!("case {case} op {op} ({what})");
            match what {
                // A flush (sometimes a fault before one of its writes, then the retry; sometimes
                // its answer lost, then the retry).
                0..=5 => {
                    let a = &mut agents[rng.below(3) as usize];
                    let mut flush = Vec::new();
                    for m in &months {
                        if rng.below(2) == 0 || flush.is_empty() && m == months.last().unwrap() {
                            let hll = a
                                .users
                                .entry(*m)
                                .or_insert_with(|| Hll::new(HllParams::janssen()));
                            add_users(hll, &mut rng, &a.id);
                            let users = hll.clone();
                            // Sometimes a client or two (the node's whole set is sent, as an
                            // agent sends it, once it has any).
                            if rng.below(2) == 0 {
                                let clients = a
                                    .clients
                                    .entry(*m)
                                    .or_insert_with(|| Hll::new(HllParams::janssen()));
                                for _ in 0..rng.below(3) + 1 {
                                    clients.add_raw(
                                        authstat_core::hash::HashAlgorithm::Murmur3
                                            .hash(&format!("client-{}", rng.below(20))),
                                    );
                                }
                            }
                            flush.push(MonthFlush {
                                month: *m,
                                users,
                                counter_deltas: counters(&mut rng),
                                clients: a.clients.get(m).cloned(),
                                dims: Vec::new(),
                            });
                        }
                    }
                    a.seq += 1;
                    let batch = FlushBatch {
                        node: node(&a.id),
                        epoch: a.epoch,
                        lease_until_ms: now_ms() + 3_600_000,
                        seq: a.seq,
                        months: flush,
                        positions: None,
                    };
                    match rng.below(4) {
                        0 => (opened.fail_next_flush)(Fail::Before(rng.below(8) as usize)),
                        1 => (opened.fail_next_flush)(Fail::AfterCommit),
                        _ => {}
                    }
                    if let Err(e) = store.flush(&batch).await {
                        assert!(injected(&e), "{e}");
                        store.flush(&batch).await.unwrap();
                    }
                    a.last = Some(batch);
                }
                // A retried flush: applied once.
                6 => {
                    let a = &agents[rng.below(3) as usize];
                    if let Some(last) = &a.last {
                        assert_eq!(
                            store.flush(last).await.unwrap(),
                            FlushOutcome::AlreadyApplied
                        );
                    }
                }
                // A snapshot of a foreign node: newer (replaces) or older (stale).
                7 | 8 => {
                    let j = rng.below(2) as usize;
                    let stored = versions.get(&j).copied();
                    let version = match stored {
                        Some(v) if rng.below(4) == 0 => v - 1,
                        Some(v) => v + 1,
                        None => 10,
                    };
                    let mut snapshot_months = Vec::new();
                    for m in &months {
                        if rng.below(2) == 0 {
                            let mut users = Hll::new(HllParams::janssen());
                            add_users(&mut users, &mut rng, &format!("foreign{j}"));
                            snapshot_months.push(MonthStats {
                                month: *m,
                                users,
                                counters: counters(&mut rng),
                                foreign_users: None,
                                clients: None,
                            });
                        }
                    }
                    let snapshot = Snapshot {
                        node: NodeId::foreign("janssen", &format!("case{case}-row{j}")).unwrap(),
                        version,
                        months: snapshot_months,
                    };
                    let outcome = store.put_snapshot(&snapshot).await.unwrap();
                    if stored.is_some_and(|v| version < v) {
                        assert_eq!(outcome, SnapshotOutcome::Stale);
                    } else {
                        assert_eq!(outcome, SnapshotOutcome::Applied);
                        versions.insert(j, version);
                    }
                }
                // A fold of every silent node (all of them, seen from a day ahead), whose agents
                // then start again from what is stored.
                9 => {
                    let later = now_ms() + 86_400_000 * 2;
                    store
                        .fold_silent(&FoldRequest {
                            silent_before_ms: later,
                            now_ms: later,
                        })
                        .await
                        .unwrap();
                    for a in &mut agents {
                        claim(store.as_ref(), a, now_ms()).await;
                    }
                }
                // A take-over: a new agent on the node, from what is stored.
                10 => {
                    let i = rng.below(3) as usize;
                    claim(store.as_ref(), &mut agents[i], now_ms()).await;
                }
                // The store opened again (a restart of the agent's process).
                _ => opened = h.open().await,
            }
            if op % 8 == 7 || op == OPS - 1 {
                let read = opened.store.read_months(&months).await.unwrap();
                let by_hand = merged_by_hand(opened.store.as_ref(), &months).await;
                assert_same(&read, &by_hand, &after);
            }
        }
    }
}

/// A month's version changes with every write of that month and with nothing else: a flush of
/// one month leaves the others' versions (a cache keeps their answers), a fold changes none (the
/// answers are the same), a snapshot changes its months'.
pub async fn a_write_changes_only_its_months_versions(h: &dyn Harness) {
    let store = h.open().await.store;
    own(store.as_ref(), "node-a").await;
    own(store.as_ref(), "node-b").await;
    store
        .flush(&batch("node-a", 1, &["202401", "202402"], 0, 10, 1))
        .await
        .unwrap();
    store
        .flush(&batch("node-b", 1, &["202401"], 100, 10, 1))
        .await
        .unwrap();
    let (jan, feb) = (month("202401"), month("202402"));
    // Read once: a backend may make a month's roll-up when it is first read.
    store.read_months(&[jan, feb]).await.unwrap();
    let v0 = store.month_versions().await.unwrap();
    assert!(v0.contains_key(&jan) && v0.contains_key(&feb), "{v0:?}");

    // A node's users of a month only grow (its HLL holds the earlier ones).
    store
        .flush(&batch("node-b", 2, &["202401"], 100, 110, 1))
        .await
        .unwrap();
    let v1 = store.month_versions().await.unwrap();
    assert_ne!(v1[&jan], v0[&jan], "January was written");
    assert_eq!(v1[&feb], v0[&feb], "February was not");

    let later = now_ms() + 86_400_000 * 2;
    let read_before = store.read_months(&[jan, feb]).await.unwrap();
    store
        .fold_silent(&FoldRequest {
            silent_before_ms: later,
            now_ms: later,
        })
        .await
        .unwrap();
    assert_eq!(store.read_months(&[jan, feb]).await.unwrap(), read_before);
    let v2 = store.month_versions().await.unwrap();
    assert_eq!(v2[&feb], v1[&feb], "a fold changes no answer");

    let snapshot = Snapshot {
        node: NodeId::foreign("janssen", "row-1").unwrap(),
        version: 1,
        months: vec![MonthStats {
            month: feb,
            users: users((0..5).map(|i| format!("j{i}"))),
            counters: Counters::default(),
            foreign_users: None,
            clients: None,
        }],
    };
    store.put_snapshot(&snapshot).await.unwrap();
    let v3 = store.month_versions().await.unwrap();
    assert_ne!(v3[&feb], v2[&feb], "the snapshot wrote February");
    assert_eq!(v3[&jan], v2[&jan], "and not January");
}
