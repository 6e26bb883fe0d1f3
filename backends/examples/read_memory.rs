//! Memory and time of one merged 12-month read over many node ids (the node-churn case), before
//! and after the silent nodes are folded:
//! `cargo run --release -p authstat-backends --features postgres --example read_memory -- 1000`.
//!
//! Writes N node ids × 12 months (a FULL HLL and 40 counters each) into a fresh SQLite file and,
//! when `AUTHSTAT_TEST_POSTGRES_URL` is set, a fresh PostgreSQL database; every node then stops
//! (its lease released). For each backend it prints, before and after `fold_silent`: the time of
//! an uncached 12-month read (best of 3), how far the process's peak RSS rose during it
//! (`/proc/self/clear_refs`), and the rows and bytes stored; and the time of the fold itself.
//! On PostgreSQL with the `hll` extension it also times the union done by the database
//! (`hll_union_agg`) against reading the bytes. Figures: docs/benchmarks.md.

use std::time::{Duration, Instant};

use authstat_backends::options::SqliteConfig;
use authstat_backends::sql::SqliteStore;
use authstat_core::hll::Hll;
use authstat_core::store::{FoldRequest, StatStore};
use diesel::prelude::*;

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
        let id = authstat_core::NodeId::new(node).unwrap();
        store.release_node(&id, 1).await.unwrap();
    }
}

/// The best of three uncached reads, and the peak RSS rise of the first.
async fn read(store: &dyn StatStore) -> (Duration, f64) {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmHWM:");
    let mut best = Duration::MAX;
    let mut rise = 0.0;
    for i in 0..3 {
        let started = Instant::now();
        let read = store.read_months(&months()).await.unwrap();
        best = best.min(started.elapsed());
        assert_eq!(read.len(), 12);
        if i == 0 {
            rise = status_kib("VmHWM:").saturating_sub(before) as f64 / 1024.0;
        }
    }
    (best, rise)
}

/// Rows and bytes stored, as the backend counts them.
type Stored = Box<dyn Fn() -> (i64, i64)>;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

macro_rules! count {
    ($conn:expr, $sql:expr) => {
        diesel::sql_query($sql).load::<Count>($conn).unwrap()[0].n
    };
}

async fn measure(name: &str, store: &dyn StatStore, nodes: usize, stored: Stored) {
    let (took, rise) = read(store).await;
    let (rows, bytes) = stored();
    println!(
        "{name}: {nodes} node ids × 12 months: read in {:.0} ms, peak RSS +{rise:.1} MiB; \
         {rows} rows, {:.1} MiB stored",
        took.as_secs_f64() * 1000.0,
        bytes as f64 / 1048576.0
    );
    let started = Instant::now();
    let far = i64::MAX / 2;
    let report = store
        .fold_silent(&FoldRequest {
            silent_before_ms: far,
            now_ms: far,
        })
        .await
        .unwrap();
    assert_eq!(report.nodes.len(), nodes);
    let fold = started.elapsed();
    let (took, rise) = read(store).await;
    println!(
        "{name}: folded in {:.2} s; then read in {:.1} ms, peak RSS +{rise:.1} MiB",
        fold.as_secs_f64(),
        took.as_secs_f64() * 1000.0,
    );
    // Counting the stored bytes vacuums (as autovacuum would in time): the read again.
    let (rows, bytes) = stored();
    let (took, _) = read(store).await;
    println!(
        "{name}: after vacuum: read in {:.1} ms; {rows} rows, {:.1} MiB stored",
        took.as_secs_f64() * 1000.0,
        bytes as f64 / 1048576.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nodes: usize = std::env::args()
        .nth(1)
        .map_or(1000, |n| n.parse().expect("a number of node ids"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("churn.db");
    let sqlite = SqliteStore::open(&SqliteConfig {
        path: path.clone(),
        busy_timeout_ms: 5000,
        pool_size: 2,
    })
    .await
    .unwrap();
    let url = path.display().to_string();
    let stored: Stored = Box::new(move || {
        let mut conn = SqliteConnection::establish(&url).unwrap();
        diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .unwrap();
        let rows = count!(
            &mut conn,
            "SELECT (SELECT COUNT(*) FROM authstat_hll) + (SELECT COUNT(*) FROM authstat_counters) AS n"
        );
        diesel::sql_query("VACUUM").execute(&mut conn).unwrap();
        diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .unwrap();
        (rows, std::fs::metadata(&url).unwrap().len() as i64)
    });
    fill(&sqlite, nodes).await;
    measure("sqlite", &sqlite, nodes, stored).await;
    drop(sqlite);
    postgres(nodes).await;
}

#[cfg(feature = "postgres")]
async fn postgres(nodes: usize) {
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
    let config = authstat_backends::options::SqlServerConfig {
        url: url.clone(),
        pool_size: 2,
        connect_timeout_secs: 5,
    };
    let pg = authstat_backends::sql::PgStore::connect(&config)
        .await
        .unwrap();
    let stats_url = url.clone();
    let stored: Stored = Box::new(move || {
        let mut conn = PgConnection::establish(&stats_url).unwrap();
        diesel::sql_query("VACUUM FULL authstat_hll, authstat_counters")
            .execute(&mut conn)
            .unwrap();
        let rows = count!(
            &mut conn,
            "SELECT (SELECT COUNT(*) FROM authstat_hll) + (SELECT COUNT(*) FROM authstat_counters) AS n"
        );
        let bytes = count!(
            &mut conn,
            "SELECT CAST(pg_total_relation_size('authstat_hll') \
             + pg_total_relation_size('authstat_counters') AS BIGINT) AS n"
        );
        (rows, bytes)
    });
    // Before folding: the union in the database, where the hll extension is installed.
    let mut fill_conn = PgConnection::establish(&url).unwrap();
    union_in_database(&mut fill_conn, &pg, nodes).await;
    measure("postgres", &pg, nodes, stored).await;
    drop(pg);
    let _ = diesel::sql_query(format!("DROP DATABASE {db} WITH (FORCE)")).execute(&mut conn);
}

/// Fills `nodes` node ids and times `hll_union_agg` over them against authstat's read.
#[cfg(feature = "postgres")]
async fn union_in_database(conn: &mut PgConnection, pg: &dyn StatStore, nodes: usize) {
    fill(pg, nodes).await;
    if let Err(e) = diesel::sql_query("CREATE EXTENSION IF NOT EXISTS hll").execute(conn) {
        eprintln!(
            "postgres: the hll extension is not installed ({e}): union in the database not measured"
        );
        return;
    }
    #[derive(QueryableByName)]
    struct Union {
        #[diesel(sql_type = diesel::sql_types::Text)]
        hll: String,
    }
    // The extension's text form is `\x` and the bytes in hex.
    let sql = "SELECT CAST(hll_union_agg(CAST(hll AS hll)) AS TEXT) AS hll FROM authstat_hll \
               WHERE month BETWEEN 202401 AND 202412 GROUP BY month ORDER BY month";
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let rows = diesel::sql_query(sql).load::<Union>(conn).unwrap();
        // The same work as authstat's read after it: the unions decoded.
        for row in &rows {
            let hex = row.hll.trim_start_matches("\\x");
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            Hll::from_bytes(&bytes).unwrap();
        }
        best = best.min(started.elapsed());
        assert_eq!(rows.len(), 12);
    }
    println!(
        "postgres: {nodes} node ids × 12 months: union in the database (hll_union_agg) in {:.0} ms",
        best.as_secs_f64() * 1000.0
    );
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_nodes: usize) {
    eprintln!("built without the postgres feature: PostgreSQL not measured");
}
