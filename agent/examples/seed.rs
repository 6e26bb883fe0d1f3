//! Fills a backend with benchmark data: `--nodes` nodes × `--months` months of 2024, each month
//! a FULL HLL (log2m 15, regwidth 5) and 40 token counters.
//!
//!     cargo run --release -p authstat --example seed -- CONFIG [NODES] [MONTHS]

use authstat_core::counters::{CounterKey, Counters};
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{FlushBatch, MonthFlush};
use authstat_core::{Month, NodeId};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let config = std::path::Path::new(args.get(1).expect("CONFIG"));
    let nodes: usize = args.get(2).map_or(Ok(10), |n| n.parse())?;
    let months: u32 = args.get(3).map_or(Ok(12), |n| n.parse())?;
    let resolved = authstat::commands::load_config(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = authstat::connect(&resolved).await?;
    for node in 0..nodes {
        let id = NodeId::new(format!("seed-{node}"))?;
        let owner =
            authstat::own::claim(store.as_ref(), &id, Duration::from_secs(60), true).await?;
        let mut batch = FlushBatch {
            node: id,
            epoch: owner.epoch,
            lease_until_ms: owner.lease_until_ms(),
            seq: 1,
            months: Vec::new(),
            positions: None,
        };
        for m in 1..=months {
            let mut users = Hll::new(HllParams::janssen());
            for i in 0..20_000 {
                users.add_raw(HashAlgorithm::Murmur3.hash(&format!("user{}-{m}-{i}", node % 3)));
            }
            let mut counter_deltas = Counters::default();
            for g in 0..10 {
                for t in ["access_token", "id_token", "refresh_token", "uma_token"] {
                    let key = CounterKey::Token {
                        grant_type: format!("grant_{g}"),
                        token_type: t.into(),
                    };
                    counter_deltas.add(&key, 100 + node as u64);
                }
            }
            batch.months.push(MonthFlush {
                month: Month::new(2024, m)?,
                users,
                counter_deltas,
                clients: None,
                dims: Vec::new(),
            });
        }
        store.flush(&batch).await?;
        store.release_node(&batch.node, owner.epoch).await?;
    }
    println!("seeded {nodes} nodes × {months} months");
    Ok(())
}
