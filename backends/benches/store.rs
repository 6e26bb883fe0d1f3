//! Flush and merged-read benchmarks of the SQL backends.
//!
//! - flush: one node, 12 months, each a FULL HLL (log2m 15, regwidth 5) and 40 counter deltas;
//! - read: 12 months merged over 10 nodes (120 FULL HLLs, 4800 counter rows summed).
//!
//! SQLite always; PostgreSQL when `AUTHSTAT_TEST_POSTGRES_URL` points at a server (scripts/bench
//! starts a throwaway one). Figures: `docs/benchmarks.md`.

use std::hint::black_box;

use authstat_backends::sql::{PgStore, SqliteStore};
use authstat_config::{SqlServerConfig, SqliteConfig};
use authstat_core::counters::{CounterKey, Counters};
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{ClaimRequest, FlushBatch, Instance, MonthFlush, StatStore};
use authstat_core::{Month, NodeId};
use criterion::{Criterion, criterion_group, criterion_main};
use diesel::prelude::*;

const MONTHS: u32 = 12;
const NODES: usize = 10;

fn months() -> Vec<Month> {
    (1..=MONTHS).map(|m| Month::new(2024, m).unwrap()).collect()
}

fn full_hll(seed: usize) -> Hll {
    let mut h = Hll::new(HllParams::janssen());
    for i in 0..60_000 {
        h.add_raw(HashAlgorithm::Murmur3.hash(&format!("n{seed}-u{i}")));
    }
    h
}

/// 40 counters: 10 grant types × 4 token types.
fn counters() -> Counters {
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

fn batch(node: usize, seq: u64, hlls: &[Hll]) -> FlushBatch {
    FlushBatch {
        node: NodeId::new(format!("node-{node}")).unwrap(),
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
            })
            .collect(),
        positions: None,
    }
}

/// Claims `node` (epoch 1 on a fresh database).
fn claim(store: &dyn StatStore, rt: &tokio::runtime::Runtime, node: usize) {
    let request = ClaimRequest {
        node: NodeId::new(format!("node-{node}")).unwrap(),
        instance: Instance {
            id: format!("bench-{node}"),
            host: "bench".into(),
            pid: 1,
            started_at_ms: 0,
            locality: String::new(),
        },
        until_ms: i64::MAX,
        now_ms: 0,
        take_over: authstat_core::store::TakeOver::Never,
    };
    rt.block_on(store.claim_node(&request)).unwrap();
}

fn bench_store(c: &mut Criterion, name: &str, store: &dyn StatStore, rt: &tokio::runtime::Runtime) {
    let hlls: Vec<Hll> = (0..MONTHS as usize).map(full_hll).collect();
    for node in 0..NODES {
        claim(store, rt, node);
    }
    for node in 1..NODES {
        rt.block_on(store.flush(&batch(node, 1, &hlls))).unwrap();
    }
    let mut seq = 1;
    c.bench_function(
        &format!("{name}/flush_12_months_full_hll_40_counters"),
        |b| {
            b.iter(|| {
                seq += 1;
                rt.block_on(store.flush(black_box(&batch(0, seq, &hlls))))
                    .unwrap()
            })
        },
    );
    let months = months();
    c.bench_function(
        &format!("{name}/read_12_months_merged_over_10_nodes"),
        |b| {
            b.iter(|| {
                let read = rt.block_on(store.read_months(black_box(&months))).unwrap();
                assert_eq!(read.len(), MONTHS as usize);
                read
            })
        },
    );
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        path: dir.path().join("bench.db"),
        busy_timeout_ms: 5000,
        pool_size: 4,
    };
    let sqlite = rt.block_on(SqliteStore::open(&config)).unwrap();
    bench_store(c, "sqlite", &sqlite, &rt);

    match std::env::var("AUTHSTAT_TEST_POSTGRES_URL") {
        Ok(admin) => {
            let db = format!("authstat_bench_{}", std::process::id());
            let mut conn = PgConnection::establish(&admin).unwrap();
            diesel::sql_query(format!("CREATE DATABASE {db}"))
                .execute(&mut conn)
                .unwrap();
            let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
            let config = SqlServerConfig {
                url,
                pool_size: 4,
                connect_timeout_secs: 5,
            };
            let pg = rt.block_on(PgStore::connect(&config)).unwrap();
            bench_store(c, "postgres", &pg, &rt);
        }
        Err(_) => eprintln!(
            "AUTHSTAT_TEST_POSTGRES_URL is not set: PostgreSQL not benchmarked (use scripts/bench)"
        ),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
