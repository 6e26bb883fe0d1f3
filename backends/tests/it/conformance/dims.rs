//! Clients and realms (`StatStore::read_dims`): merged over nodes like the months, a retried
//! flush adds nothing, a node resumes with its own, a fold changes no read.

use std::collections::BTreeMap;

use authstat_core::counters::{CounterKey, Counters, Outcome};
use authstat_core::dims::{Dim, DimFlush, DimKind, DimStats, MonthDims, dim_params};
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{FlushBatch, FlushOutcome, StatStore};

use super::fold::everything_silent;
use crate::support::*;

const MONTHS: [&str; 2] = ["202402", "202403"];

/// One node's part of a month for `dim`: users `first..first + count` (of the dimension),
/// `k` successful and `k / 2` failed authentications, `k` access tokens.
fn dim_flush(dim: &Dim, first: usize, count: usize, k: u64) -> DimFlush {
    let mut users = Hll::new(dim_params(&HllParams::janssen()));
    for i in first..first + count {
        users.add_raw(HashAlgorithm::Murmur3.hash(&format!("{dim}-user{i}")));
    }
    let mut counter_deltas = Counters::default();
    counter_deltas.add(&CounterKey::Authentication(Outcome::Success), k);
    counter_deltas.add(&CounterKey::Authentication(Outcome::Failure), k / 2);
    counter_deltas.add(&token("authorization_code", "access_token"), k);
    DimFlush {
        dim: dim.clone(),
        users,
        counter_deltas,
    }
}

/// `n` clients, each with a few users and `k` authentications (of `dim_flush`).
pub(super) fn some_clients(n: usize, k: u64) -> Vec<DimFlush> {
    (0..n)
        .map(|c| {
            dim_flush(
                &client(&format!("client-{c:02}")),
                c + 10 * k as usize,
                3,
                k,
            )
        })
        .collect()
}

/// `base` with these dimensions in every month.
fn with_dims(mut base: FlushBatch, dims: &[DimFlush]) -> FlushBatch {
    for m in &mut base.months {
        m.dims = dims.to_vec();
        m.dims.sort_by(|a, b| a.dim.cmp(&b.dim));
    }
    base
}

fn client(id: &str) -> Dim {
    Dim::of(DimKind::Client, id).unwrap()
}

/// Adds every dimension of `batch` to `into` (the expected merge).
fn expect(into: &mut BTreeMap<authstat_core::Month, MonthDims>, batch: &FlushBatch) {
    for m in &batch.months {
        let month = into
            .entry(m.month)
            .or_insert_with(|| MonthDims::new(m.month));
        for f in &m.dims {
            month.add_flush(f).unwrap();
        }
    }
}

fn of_kind(expected: &BTreeMap<authstat_core::Month, MonthDims>, kind: DimKind) -> Vec<MonthDims> {
    expected
        .values()
        .map(|m| m.clone().of_kind(kind))
        .filter(|m| !m.dims.is_empty())
        .collect()
}

async fn read(store: &dyn StatStore, kind: DimKind) -> Vec<MonthDims> {
    store.read_dims(&MONTHS.map(month), kind).await.unwrap()
}

pub async fn clients_and_realms_merge_over_nodes_and_survive_retries_and_folds(h: &dyn Harness) {
    let store = h.open().await.store;
    assert!(read(store.as_ref(), DimKind::Client).await.is_empty());
    let mut expected = BTreeMap::new();

    // Node a: more clients than one statement's rows, one client with a long id of odd
    // characters, a realm, the other bucket.
    let odd = client(&format!("app.$%|\u{e9}:{}", "z".repeat(240)));
    let mut dims: Vec<DimFlush> = (0..1_200)
        .map(|c| dim_flush(&client(&format!("client-{c:04}")), 0, 1 + c % 7, 2))
        .collect();
    dims.push(dim_flush(&odd, 0, 40, 6));
    dims.push(dim_flush(
        &Dim::of(DimKind::Realm, "acme").unwrap(),
        0,
        300,
        10,
    ));
    dims.push(dim_flush(&Dim::other(DimKind::Client), 0, 50, 4));
    let epoch_a = own(store.as_ref(), "node-a").await;
    let mut a1 = with_dims(batch("node-a", 1, &MONTHS, 0, 10, 1), &dims);
    a1.epoch = epoch_a;
    assert_eq!(store.flush(&a1).await.unwrap(), FlushOutcome::Applied);
    assert_eq!(
        store.flush(&a1).await.unwrap(),
        FlushOutcome::AlreadyApplied,
        "a retry"
    );
    expect(&mut expected, &a1);

    // Node b: overlapping users of two of a's clients, and a client of its own.
    let epoch_b = own(store.as_ref(), "node-b").await;
    let mut b1 = with_dims(
        batch("node-b", 1, &MONTHS, 0, 10, 1),
        &[
            dim_flush(&client("client-0003"), 2, 100, 5),
            dim_flush(&odd, 20, 40, 1),
            dim_flush(&client("only-b"), 0, 9, 3),
        ],
    );
    b1.epoch = epoch_b;
    store.flush(&b1).await.unwrap();
    expect(&mut expected, &b1);

    // Node a again: users seen since (some new, some known) and more counts.
    let mut a2 = with_dims(
        batch("node-a", 2, &MONTHS[1..], 0, 10, 1),
        &[dim_flush(&client("client-0003"), 50, 100, 1)],
    );
    a2.epoch = epoch_a;
    store.flush(&a2).await.unwrap();
    expect(&mut expected, &a2);

    let clients = read(store.as_ref(), DimKind::Client).await;
    assert_eq!(
        clients,
        of_kind(&expected, DimKind::Client),
        "clients merged"
    );
    assert_eq!(
        read(store.as_ref(), DimKind::Realm).await,
        of_kind(&expected, DimKind::Realm),
        "realms apart"
    );
    let march = &clients[1].dims;
    assert_eq!(
        march.len(),
        1_200 + 3,
        "a's clients, the odd one, b's own, other"
    );
    let shared: &DimStats = &march[&client("client-0003")];
    let users = shared.active_users() as f64;
    assert!(
        (users - 150.0).abs() < 150.0 * 0.07,
        "users 2..150 of client-0003: {users}"
    );
    assert_eq!(
        shared
            .counters
            .get(&CounterKey::Authentication(Outcome::Success)),
        2 + 5 + 1
    );

    // A node resumes with its own dimensions.
    let mut own_b = BTreeMap::new();
    expect(&mut own_b, &b1);
    assert_eq!(
        store
            .node_dims(&node("node-b"), &MONTHS.map(month))
            .await
            .unwrap(),
        own_b.into_values().collect::<Vec<_>>()
    );
    let march_only = store
        .node_dims(&node("node-b"), &[month("202403"), month("202001")])
        .await
        .unwrap();
    assert_eq!(march_only.len(), 1, "only the months asked for");

    // Folding the (stopped) nodes changes no read.
    store.release_node(&node("node-a"), epoch_a).await.unwrap();
    store.release_node(&node("node-b"), epoch_b).await.unwrap();
    store.fold_silent(&everything_silent()).await.unwrap();
    assert_eq!(
        read(store.as_ref(), DimKind::Client).await,
        of_kind(&expected, DimKind::Client),
        "after a fold"
    );
    assert_eq!(
        read(store.as_ref(), DimKind::Realm).await,
        of_kind(&expected, DimKind::Realm)
    );
}

/// A day's users are a dimension of its month: merged over nodes like the clients, read apart
/// from them, and removed before the retention (the other dimensions and months stay).
pub async fn days_merge_and_are_dropped_before_the_retention(h: &dyn Harness) {
    use authstat_core::dims::{day_of_millis, day_params};
    let store = h.open().await.store;
    let days = |text: &str| {
        let m = month(text).start_epoch_millis();
        [0i64, 1, 27].map(|d| day_of_millis(m) + d)
    };
    let day_flush = |day: i64, first: usize| {
        let mut users = Hll::new(day_params(&HllParams::janssen()));
        for u in first..first + 200 {
            users.add_raw(HashAlgorithm::Murmur3.hash(&format!("day-user{u}")));
        }
        DimFlush {
            dim: Dim::day(day),
            users,
            counter_deltas: Counters::default(),
        }
    };
    let mut expected = BTreeMap::new();
    for (node, first) in [("node-a", 0), ("node-b", 100)] {
        let epoch = own(store.as_ref(), node).await;
        let mut b = batch(node, 1, &MONTHS, 0, 10, 1);
        b.epoch = epoch;
        for m in &mut b.months {
            let month_text = m.month.to_string();
            // A client on a day, with the longest id a client may have (the longest dimension).
            let long = client(&"z".repeat(authstat_core::dims::MAX_DIM_ID_LEN));
            let mut on_day = day_flush(days(&month_text)[0], first);
            on_day.dim = Dim::client_day(days(&month_text)[0], &long);
            on_day.users = {
                let mut u = Hll::new(dim_params(&HllParams::janssen()));
                u.add_raw(HashAlgorithm::Murmur3.hash(&format!("{node}-on-day")));
                u
            };
            m.dims = days(&month_text)
                .into_iter()
                .map(|d| day_flush(d, first))
                .chain([dim_flush(&client("c1"), first, 5, 1), on_day])
                .collect();
            m.dims.sort_by(|a, b| a.dim.cmp(&b.dim));
        }
        store.flush(&b).await.unwrap();
        expect(&mut expected, &b);
    }
    let read_days = store
        .read_dims(&MONTHS.map(month), DimKind::Day)
        .await
        .unwrap();
    assert_eq!(read_days, of_kind(&expected, DimKind::Day));
    let first_day = &read_days[0].dims[&Dim::day(days(MONTHS[0])[0])];
    assert_eq!(
        first_day.active_users(),
        300,
        "200 + 200 users, 100 shared: exact"
    );
    assert_eq!(
        read(store.as_ref(), DimKind::Client).await.len(),
        2,
        "clients apart"
    );
    let on_days = store
        .read_dims(&MONTHS.map(month), DimKind::ClientDay)
        .await
        .unwrap();
    assert_eq!(on_days, of_kind(&expected, DimKind::ClientDay));
    let both = on_days[0].dims.values().next().unwrap().active_users();
    assert_eq!(both, 2, "two nodes' users of the client on the day");

    assert!(store.drop_days_before(month(MONTHS[1])).await.unwrap() > 0);
    let left = store
        .read_dims(&MONTHS.map(month), DimKind::Day)
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "only the kept month's days");
    let on_days = store
        .read_dims(&MONTHS.map(month), DimKind::ClientDay)
        .await
        .unwrap();
    assert_eq!(on_days.len(), 1, "clients' days go with the days");
    assert_eq!(left[0].month, month(MONTHS[1]));
    assert!(
        store
            .node_dims(&node("node-a"), &[month(MONTHS[0])])
            .await
            .unwrap()
            .iter()
            .all(|m| m.dims.keys().all(|d| d.kind() != DimKind::Day)),
        "the node's days too"
    );
    assert_eq!(
        read(store.as_ref(), DimKind::Client).await,
        of_kind(&expected, DimKind::Client),
        "clients stay"
    );
    assert_eq!(
        store.drop_days_before(month(MONTHS[1])).await.unwrap(),
        0,
        "idempotent"
    );
}
