//! Memory and time of one merged 12-month read over many node ids (the node-churn case):
//! `cargo run --release -p authstat-backends --features postgres --example read_memory -- 1000`.
//!
//! Writes N node ids × 12 months (a FULL HLL and 40 counters each) into a fresh SQLite file and,
//! when `AUTHSTAT_TEST_POSTGRES_URL` is set, a fresh PostgreSQL database; then resets the
//! process's peak RSS (`/proc/self/clear_refs`), reads the 12 months once and prints the time and
//! how far the peak RSS rose. Figures: docs/benchmarks.md.

use std::time::Instant;

use authstat_backends::sql::SqliteStore;
use authstat_config::SqliteConfig;
use authstat_core::counters::{CounterKey, Counters};
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{ClaimRequest, FlushBatch, Instance, MonthFlush, StatStore, TakeOver};
use authstat_core::{Month, NodeId};

fn months() -> Vec<Month> {
    (1..=12).map(|m| Month::new(2024, m).unwrap()).collect()
}

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

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn fill(store: &dyn StatStore, nodes: usize) {
    let hlls: Vec<Hll> = (0..12)
        .map(|m| {
            let mut h = Hll::new(HllParams::janssen());
            for i in 0..60_000 {
                h.add_raw(HashAlgorithm::Murmur3.hash(&format!("m{m}-u{i}")));
            }
            h
        })
        .collect();
    for n in 0..nodes {
        let node = NodeId::new(format!("pod-{n}")).unwrap();
        let request = ClaimRequest {
            node: node.clone(),
            instance: Instance {
                id: format!("i-{n}"),
                host: "bench".into(),
                pid: 1,
                started_at_ms: 0,
                locality: String::new(),
            },
            until_ms: i64::MAX,
            now_ms: 0,
            take_over: TakeOver::Never,
        };
        store.claim_node(&request).await.unwrap();
        let batch = FlushBatch {
            node,
            epoch: 1,
            lease_until_ms: i64::MAX,
            seq: 1,
            months: months()
                .into_iter()
                .zip(&hlls)
                .map(|(month, users)| MonthFlush {
                    month,
                    users: users.clone(),
                    counter_deltas: counters(),
                })
                .collect(),
            positions: None,
        };
        store.flush(&batch).await.unwrap();
    }
}

async fn measure(name: &str, store: &dyn StatStore, nodes: usize) {
    fill(store, nodes).await;
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmHWM:");
    let started = Instant::now();
    let read = store.read_months(&months()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(read.len(), 12);
    let peak = status_kib("VmHWM:");
    println!(
        "{name}: {nodes} node ids × 12 months: read in {:.0} ms, peak RSS +{:.1} MiB (from {:.1} MiB)",
        took.as_secs_f64() * 1000.0,
        (peak.saturating_sub(before)) as f64 / 1024.0,
        before as f64 / 1024.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nodes: usize = std::env::args()
        .nth(1)
        .map_or(1000, |n| n.parse().expect("a number of node ids"));
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&SqliteConfig {
        path: dir.path().join("churn.db"),
        busy_timeout_ms: 5000,
        pool_size: 2,
    })
    .await
    .unwrap();
    measure("sqlite", &sqlite, nodes).await;
    drop(sqlite);
    postgres(nodes).await;
}

#[cfg(feature = "postgres")]
async fn postgres(nodes: usize) {
    use diesel::prelude::*;
    let Ok(admin) = std::env::var("AUTHSTAT_TEST_POSTGRES_URL") else {
        eprintln!("AUTHSTAT_TEST_POSTGRES_URL is not set: PostgreSQL not measured");
        return;
    };
    let db = format!("authstat_churn_{}", std::process::id());
    let mut conn = PgConnection::establish(&admin).unwrap();
    diesel::sql_query(format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .unwrap();
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let config = authstat_config::SqlServerConfig {
        url,
        pool_size: 2,
        connect_timeout_secs: 5,
    };
    let pg = authstat_backends::sql::PgStore::connect(&config)
        .await
        .unwrap();
    measure("postgres", &pg, nodes).await;
    drop(pg);
    let _ = diesel::sql_query(format!("DROP DATABASE {db} WITH (FORCE)")).execute(&mut conn);
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_nodes: usize) {
    eprintln!("built without the postgres feature: PostgreSQL not measured");
}
