//! The cost of per-client statistics (docs/benchmarks.md, "Per client"): fills a fresh backend
//! with 10 nodes × 12 months × 1,000 clients (a few large applications, many small ones: client
//! `c` has about 20,000 / (c + 1) users a month, from one shared pool, so nodes overlap), then
//! measures an uncached `group_by=client&top=100` read of the 12 months (the store's reads, the
//! ranking and the JSON; best of 5), a flush with and without 100 clients' figures (best of 20),
//! and the HLL bytes stored per client and month.
//!
//!     cargo run --release -p authstat --example client_costs -- CONFIG
//!
//! With `PHASES=1` each read prints how long the months, the clients and the rest took.

use std::time::{Duration, Instant};

use authstat_core::counters::{CounterKey, Counters, Outcome};
use authstat_core::dims::{Dim, DimFlush, DimKind, dim_params};
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{FlushBatch, MonthFlush};
use authstat_core::{Month, NodeId};

const NODES: usize = 10;
const CLIENTS: usize = 1_000;

fn months() -> Vec<Month> {
    (1..=12).map(|m| Month::new(2024, m).unwrap()).collect()
}

/// Client `c`'s part on `node` in month `m`: its users (a third of them on each node), its
/// authentications and tokens.
fn client(node: usize, m: u32, c: usize) -> DimFlush {
    let users_of_client = (20_000 / (c + 1)).max(1);
    let mut users = Hll::new(dim_params(&HllParams::janssen()));
    for u in (0..users_of_client).filter(|u| u % NODES.min(3) == node % 3) {
        users.add_raw(HashAlgorithm::Murmur3.hash(&format!("user-{m}-{u}")));
    }
    let mut counter_deltas = Counters::default();
    let n = users_of_client as u64;
    counter_deltas.add(&CounterKey::Authentication(Outcome::Success), 3 * n);
    counter_deltas.add(&CounterKey::Authentication(Outcome::Failure), n / 10);
    counter_deltas.add(
        &CounterKey::Token {
            grant_type: "authorization_code".into(),
            token_type: "access_token".into(),
        },
        2 * n,
    );
    DimFlush {
        dim: Dim::of(DimKind::Client, &format!("client-{c:04}")).unwrap(),
        users,
        counter_deltas,
    }
}

fn month_flush(month: Month, dims: Vec<DimFlush>) -> MonthFlush {
    let mut dims = dims;
    dims.sort_by(|a, b| a.dim.cmp(&b.dim));
    MonthFlush {
        month,
        users: Hll::new(HllParams::janssen()),
        counter_deltas: Counters::default(),
        clients: None,
        dims,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let config = std::path::Path::new(args.get(1).expect("CONFIG"));
    let resolved = authstat::commands::load_config(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = authstat::connect(&resolved).await?;
    let started = Instant::now();
    let mut hll_bytes = 0usize;
    let mut owners = Vec::new();
    for node in 0..NODES {
        let id = NodeId::new(format!("client-costs-{node}"))?;
        let owner =
            authstat::own::claim(store.as_ref(), &id, Duration::from_secs(600), true).await?;
        let mut batch = FlushBatch {
            node: id,
            epoch: owner.epoch,
            lease_until_ms: owner.lease_until_ms(),
            seq: 1,
            months: Vec::new(),
            positions: None,
        };
        for (i, month) in months().into_iter().enumerate() {
            let dims: Vec<DimFlush> = (0..CLIENTS).map(|c| client(node, i as u32, c)).collect();
            hll_bytes += dims
                .iter()
                .map(|d| d.users.to_bytes().unwrap().len())
                .sum::<usize>();
            batch.months.push(month_flush(month, dims));
        }
        store.flush(&batch).await?;
        owners.push(owner);
    }
    eprintln!("filled in {:.1} s", started.elapsed().as_secs_f64());

    let mut read = Duration::MAX;
    let mut body_len = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let stats = store.read_months(&months()).await?;
        let t1 = t.elapsed();
        let dims = store.read_dims(&months(), DimKind::Client).await?;
        let t2 = t.elapsed();
        let grouping = authstat_api::Grouping {
            kind: DimKind::Client,
            top: 100,
        };
        let body: Vec<_> = stats
            .iter()
            .map(|s| authstat_api::grouped_json(dims.iter().find(|d| d.month == s.month), grouping))
            .collect();
        body_len = serde_json::to_string(&body)?.len();
        read = read.min(t.elapsed());
        if std::env::var_os("PHASES").is_some() {
            eprintln!(
                "months {t1:?} dims {:?} rest {:?}",
                t2 - t1,
                t.elapsed() - t2
            );
        }
        assert_eq!(dims.len(), 12);
        assert_eq!(dims[0].dims.len(), CLIENTS);
    }

    // A flush of the current month as an agent makes it every few seconds: 100 clients seen
    // since the last one (5 new users each), against the same flush without clients.
    let december = *months().last().unwrap();
    let owner = &owners[0];
    let mut with = Duration::MAX;
    let mut without = Duration::MAX;
    for seq in 2..22u64 {
        for (dims, best) in [(true, &mut with), (false, &mut without)] {
            let seen: Vec<DimFlush> = if dims {
                (0..100)
                    .map(|c| {
                        let mut d = client(0, 11, c * 10);
                        d.users = Hll::new(dim_params(&HllParams::janssen()));
                        for u in 0..5 {
                            d.users.add_raw(
                                HashAlgorithm::Murmur3.hash(&format!("new-{seq}-{c}-{u}")),
                            );
                        }
                        d
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let batch = FlushBatch {
                node: owner.node.clone(),
                epoch: owner.epoch,
                lease_until_ms: owner.lease_until_ms(),
                seq: 2 * seq + u64::from(!dims),
                months: vec![month_flush(december, seen)],
                positions: None,
            };
            let t = Instant::now();
            store.flush(&batch).await?;
            *best = (*best).min(t.elapsed());
        }
    }
    println!(
        "{}: {NODES} nodes × 12 months × {CLIENTS} clients: uncached 12-month group_by=client&top=100 \
         read {:.1} ms ({} bytes of JSON); a flush of one month {:.2} ms, with 100 clients' figures \
         {:.2} ms; HLL bytes per client and month {:.0} (node rows, {:.1} MB in all)",
        store.kind(),
        read.as_secs_f64() * 1000.0,
        body_len,
        without.as_secs_f64() * 1000.0,
        with.as_secs_f64() * 1000.0,
        hll_bytes as f64 / (NODES * 12 * CLIENTS) as f64,
        hll_bytes as f64 / 1e6,
    );
    Ok(())
}
