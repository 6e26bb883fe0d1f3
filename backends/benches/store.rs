//! Flush and merged-read benchmarks of the SQL backends.
//!
//! - flush: one node, 12 months, each a FULL HLL (log2m 15, regwidth 5) and 40 counter deltas;
//! - read: 12 months merged over 10 nodes (120 FULL HLLs, 4800 counter rows summed).
//!
//! SQLite always; PostgreSQL when `AUTHSTAT_TEST_POSTGRES_URL` points at a server (scripts/bench
//! starts a throwaway one). Figures: `docs/benchmarks.md`.

use std::hint::black_box;

use authstat_backends::options::{SqlServerConfig, SqliteConfig};
use authstat_backends::sql::{PgStore, SqliteStore};
use authstat_core::hll::Hll;
use authstat_core::store::StatStore;
use criterion::{Criterion, criterion_group, criterion_main};
use diesel::prelude::*;

mod support;

use support::{batch, claim_request, full_hll, months};

const MONTHS: u32 = 12;
const NODES: usize = 10;

fn node(n: usize) -> String {
    format!("node-{n}")
}

/// Claims `node` (epoch 1 on a fresh database).
fn claim(store: &dyn StatStore, rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(store.claim_node(&claim_request(&node(n))))
        .unwrap();
}

fn bench_store(c: &mut Criterion, name: &str, store: &dyn StatStore, rt: &tokio::runtime::Runtime) {
    let hlls: Vec<Hll> = (0..MONTHS as usize).map(full_hll).collect();
    for node in 0..NODES {
        claim(store, rt, node);
    }
    for n in 1..NODES {
        rt.block_on(store.flush(&batch(&node(n), 1, &hlls)))
            .unwrap();
    }
    let mut seq = 1;
    c.bench_function(
        &format!("{name}/flush_12_months_full_hll_40_counters"),
        |b| {
            b.iter(|| {
                seq += 1;
                rt.block_on(store.flush(black_box(&batch(&node(0), seq, &hlls))))
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
