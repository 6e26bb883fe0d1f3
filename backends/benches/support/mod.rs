//! Data for the backend benchmarks and the `read_memory` example: 12 months of 2024, FULL HLLs
//! at Janssen's setting, 40 counters, node claims and flush batches.

use authstat_core::counters::{CounterKey, Counters};
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{ClaimRequest, FlushBatch, Instance, MonthFlush, TakeOver};
use authstat_core::{Month, NodeId};

/// January to December 2024.
pub fn months() -> Vec<Month> {
    (1..=12).map(|m| Month::new(2024, m).unwrap()).collect()
}

/// A FULL HLL of 60,000 users, different per `seed`.
pub fn full_hll(seed: usize) -> Hll {
    let mut h = Hll::new(HllParams::janssen());
    for i in 0..60_000 {
        h.add_raw(HashAlgorithm::Murmur3.hash(&format!("n{seed}-u{i}")));
    }
    h
}

/// 40 counters: 10 grant types × 4 token types.
pub fn counters() -> Counters {
    let mut c = Counters::default();
    for g in 0..10 {
        for t in ["access_token", "id_token", "refresh_token", "uma_token"] {
            let key = CounterKey::Token {
                grant_type: format!("grant_type_{g}"),
                token_type: t.into(),
            };
            c.add(&key, 7);
        }
    }
    c
}

/// The claim of `node` that a fresh database grants with epoch 1.
pub fn claim_request(node: &str) -> ClaimRequest {
    ClaimRequest {
        node: NodeId::new(node.to_owned()).unwrap(),
        instance: Instance {
            id: format!("bench-{node}"),
            host: "bench".into(),
            pid: 1,
            started_at_ms: 0,
            locality: String::new(),
        },
        until_ms: i64::MAX,
        now_ms: 0,
        take_over: TakeOver::Never,
    }
}

/// `node`'s flush `seq` of the 12 months, with `hlls` (one per month) and [`counters`].
pub fn batch(node: &str, seq: u64, hlls: &[Hll]) -> FlushBatch {
    FlushBatch {
        node: NodeId::new(node.to_owned()).unwrap(),
        epoch: 1,
        lease_until_ms: i64::MAX,
        seq,
        months: months()
            .into_iter()
            .zip(hlls)
            .map(|(month, users)| MonthFlush {
                month,
                users: users.clone(),
                counter_deltas: counters(),
                clients: None,
                dims: Vec::new(),
            })
            .collect(),
        positions: None,
    }
}
