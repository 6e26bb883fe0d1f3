//! The cost of a merged read and of a flush as the number of node ids grows (the roll-up's
//! figures in docs/benchmarks.md):
//! `cargo run --release -p authstat-backends --features postgres --example rollup_costs -- 1000 [sparse]`.
//!
//! Writes N node ids × 12 months (FULL HLLs of 60,000 users, or with `sparse` 150 users each, as
//! a backfill of small nodes writes them) and 40 counters each into a fresh SQLite file and, when
//! `AUTHSTAT_TEST_POSTGRES_URL` is set, a fresh PostgreSQL database. Then, for each backend: an
//! uncached 12-month read of all nodes (best of 5), and a flush of one more node's current month
//! (a FULL HLL and 40 counter deltas; best of 20), the flush an agent makes every few seconds.

use std::time::{Duration, Instant};

use authstat_backends::options::SqliteConfig;
use authstat_backends::sql::SqliteStore;
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{FlushBatch, StatStore};

#[path = "../benches/support/mod.rs"]
mod support;

use support::{batch, claim_request, full_hll, months};

fn sparse_hll(seed: usize) -> Hll {
    let mut h = Hll::new(HllParams::janssen());
    for i in 0..150 {
        h.add_raw(HashAlgorithm::Murmur3.hash(&format!("s{seed}-u{i}")));
    }
    h
}

async fn fill(store: &dyn StatStore, nodes: usize, sparse: bool) {
    let started = Instant::now();
    for n in 0..nodes {
        let hlls: Vec<Hll> = (0..12)
            .map(|m| {
                if sparse {
                    sparse_hll(n * 12 + m)
                } else {
                    full_hll(m)
                }
            })
            .collect();
        let node = format!("pod-{n}");
        store.claim_node(&claim_request(&node)).await.unwrap();
        store.flush(&batch(&node, 1, &hlls)).await.unwrap();
        if n % 1000 == 999 {
            eprintln!(
                "  {} node ids written in {:.0} s",
                n + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
}

async fn measure(name: &str, store: &dyn StatStore, nodes: usize, sparse: bool) {
    fill(store, nodes, sparse).await;
    let mut read = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let stats = store.read_months(&months()).await.unwrap();
        read = read.min(started.elapsed());
        assert_eq!(stats.len(), 12);
    }
    // One more node flushing its current month, as every agent does every few seconds.
    store.claim_node(&claim_request("flusher")).await.unwrap();
    let december = [full_hll(99)];
    let mut flush = Duration::MAX;
    for seq in 1..=20 {
        let mut b: FlushBatch = batch("flusher", seq, &december);
        b.months.truncate(1);
        let started = Instant::now();
        store.flush(&b).await.unwrap();
        flush = flush.min(started.elapsed());
    }
    println!(
        "{name}: {nodes} node ids × 12 months ({}): uncached 12-month read {:.1} ms; \
         a flush of one month {:.2} ms",
        if sparse {
            "150 users each"
        } else {
            "FULL HLLs"
        },
        read.as_secs_f64() * 1000.0,
        flush.as_secs_f64() * 1000.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nodes: usize = std::env::args()
        .nth(1)
        .map_or(1000, |n| n.parse().expect("a number of node ids"));
    let sparse = std::env::args().nth(2).is_some_and(|a| a == "sparse");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&SqliteConfig {
        path: dir.path().join("costs.db"),
        busy_timeout_ms: 5000,
        pool_size: 2,
    })
    .await
    .unwrap();
    measure("sqlite", &sqlite, nodes, sparse).await;
    drop(sqlite);
    postgres(nodes, sparse).await;
}

#[cfg(feature = "postgres")]
async fn postgres(nodes: usize, sparse: bool) {
    use diesel::prelude::*;
    let Ok(admin) = std::env::var("AUTHSTAT_TEST_POSTGRES_URL") else {
        eprintln!("AUTHSTAT_TEST_POSTGRES_URL is not set: PostgreSQL not measured");
        return;
    };
    let db = format!("authstat_costs_{}", std::process::id());
    let mut conn = PgConnection::establish(&admin).unwrap();
    diesel::sql_query(format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .unwrap();
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let config = authstat_backends::options::SqlServerConfig {
        url,
        pool_size: 2,
        connect_timeout_secs: 5,
    };
    let pg = authstat_backends::sql::PgStore::connect(&config)
        .await
        .unwrap();
    measure("postgres", &pg, nodes, sparse).await;
    drop(pg);
    let _ = diesel::sql_query(format!("DROP DATABASE {db} WITH (FORCE)")).execute(&mut conn);
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_nodes: usize, _sparse: bool) {
    eprintln!("built without the postgres feature: PostgreSQL not measured");
}
