//! The cost of active users over ranges of days (docs/benchmarks.md, "Per day"): fills a fresh
//! backend with 10 nodes × 400 days (each node 3,000 users a day from a pool of 60,000, so days
//! and nodes overlap), then measures uncached reads of 30 and 400 days by week (the store's read
//! and the unions; best of 5), a flush of today with and without the day's users seen since the
//! last flush (best of 20), and the HLL bytes stored per node and day.
//!
//!     cargo run --release -p authstat --example day_costs -- CONFIG

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use authstat_api::active::{By, Range, active};
use authstat_core::counters::Counters;
use authstat_core::dims::{Dim, DimFlush, DimKind, MILLIS_PER_DAY, day_params};
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{FlushBatch, MonthFlush, StatStore};
use authstat_core::{Month, NodeId};

const NODES: usize = 10;
const DAYS: i64 = 400;
const USERS_A_DAY: u64 = 3_000;

fn day_users(node: usize, day: i64, count: u64) -> Hll {
    let mut users = Hll::new(day_params(&HllParams::janssen()));
    let mut x = (day as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ node as u64;
    for _ in 0..count {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        users.add_raw(HashAlgorithm::Murmur3.hash(&format!("user{}", (x >> 33) % 60_000)));
    }
    users
}

fn month_of(day: i64) -> Month {
    Month::from_epoch_millis(day * MILLIS_PER_DAY).unwrap()
}

async fn read(store: &dyn StatStore, range: Range) -> anyhow::Result<(Duration, u64)> {
    let t = Instant::now();
    let mut days = BTreeMap::new();
    for month in store.read_dims(&range.months(), DimKind::Day).await? {
        for (dim, stats) in month.dims {
            if let Some(day) = dim.as_day() {
                days.insert(day, stats.users);
            }
        }
    }
    let answer = active(range, &days);
    Ok((t.elapsed(), answer.users))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let config = std::path::Path::new(args.get(1).expect("CONFIG"));
    let resolved = authstat::commands::load_config(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = authstat::connect(&resolved).await?;
    let today = authstat_core::dims::day_of_millis(authstat_core::month::now_ms());
    let first = today - DAYS + 1;
    let started = Instant::now();
    let mut bytes = 0usize;
    let mut owners = Vec::new();
    for node in 0..NODES {
        let id = NodeId::new(format!("day-costs-{node}"))?;
        let owner =
            authstat::own::claim(store.as_ref(), &id, Duration::from_secs(600), true).await?;
        let mut months: BTreeMap<Month, Vec<DimFlush>> = BTreeMap::new();
        for day in first..=today {
            let users = day_users(node, day, USERS_A_DAY);
            bytes += users.to_bytes()?.len();
            months.entry(month_of(day)).or_default().push(DimFlush {
                dim: Dim::day(day),
                users,
                counter_deltas: Counters::default(),
            });
        }
        let batch = FlushBatch {
            node: id,
            epoch: owner.epoch,
            lease_until_ms: owner.lease_until_ms(),
            seq: 1,
            months: months
                .into_iter()
                .map(|(month, dims)| MonthFlush {
                    month,
                    users: Hll::new(HllParams::janssen()),
                    counter_deltas: Counters::default(),
                    clients: None,
                    dims,
                })
                .collect(),
            positions: None,
        };
        store.flush(&batch).await?;
        owners.push(owner);
    }
    eprintln!("filled in {:.1} s", started.elapsed().as_secs_f64());

    let mut figures = Vec::new();
    for days in [30, 400] {
        let range = Range {
            from: today - days + 1,
            to: today,
            by: Some(By::Week),
            clients: None,
        };
        let mut best = Duration::MAX;
        let mut users = 0;
        for _ in 0..5 {
            let (took, u) = read(store.as_ref(), range).await?;
            best = best.min(took);
            users = u;
        }
        figures.push(format!(
            "{days} days {:.1} ms ({users} users)",
            best.as_secs_f64() * 1000.0
        ));
    }

    // Today's flush, as an agent makes it every few seconds: with the 50 users seen since the
    // last one, and without.
    let owner = &owners[0];
    let this_month = month_of(today);
    let (mut with, mut without) = (Duration::MAX, Duration::MAX);
    for seq in 2..22u64 {
        for (day, best) in [(true, &mut with), (false, &mut without)] {
            let dims = if day {
                vec![DimFlush {
                    dim: Dim::day(today),
                    users: day_users(99, today + seq as i64 * 1000, 50),
                    counter_deltas: Counters::default(),
                }]
            } else {
                Vec::new()
            };
            let batch = FlushBatch {
                node: owner.node.clone(),
                epoch: owner.epoch,
                lease_until_ms: owner.lease_until_ms(),
                seq: 2 * seq + u64::from(!day),
                months: vec![MonthFlush {
                    month: this_month,
                    users: day_users(98, today, 3_000),
                    counter_deltas: Counters::default(),
                    clients: None,
                    dims,
                }],
                positions: None,
            };
            let t = Instant::now();
            store.flush(&batch).await?;
            *best = (*best).min(t.elapsed());
        }
    }
    println!(
        "{}: {NODES} nodes × {DAYS} days of {USERS_A_DAY} users: uncached reads by week: {}; a \
         flush of today {:.2} ms, with the day's users {:.2} ms; HLL bytes per node and day {:.0}",
        store.kind(),
        figures.join(", "),
        without.as_secs_f64() * 1000.0,
        with.as_secs_f64() * 1000.0,
        bytes as f64 / (NODES as f64 * DAYS as f64),
    );
    Ok(())
}
