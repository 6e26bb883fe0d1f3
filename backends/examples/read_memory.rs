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
use authstat_core::hll::Hll;
use authstat_core::store::StatStore;

#[path = "../benches/support/mod.rs"]
mod support;

use support::{batch, claim_request, full_hll, months};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn fill(store: &dyn StatStore, nodes: usize) {
    let hlls: Vec<Hll> = (0..12).map(full_hll).collect();
    for n in 0..nodes {
        let node = format!("pod-{n}");
        store.claim_node(&claim_request(&node)).await.unwrap();
        store.flush(&batch(&node, 1, &hlls)).await.unwrap();
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
