//! Clients and realms in SQL: per node, month and dimension an HLL row
//! (`authstat_dim_hll`) and counter rows (`authstat_dim_counters`), and their union over nodes in
//! the roll-up (`authstat_rollup_dims`, `authstat_rollup_dim_counters`).
//!
//! A flush carries, per dimension, the users seen since the previous flush: they are unioned
//! into the stored HLLs (the node's and the roll-up's), so that a flush costs what it saw, not
//! what the month holds. The roll-up's rows of a month are written only while the flush holds
//! that month's roll-up row locked (`rollup::add_flush` runs first): flushes of one month take
//! turns, and no union is lost.

use std::collections::BTreeMap;

use authstat_core::counters::{CounterKey, Counters};
use authstat_core::dims::{Dim, DimFlush, DimKind, DimStats, MonthDims};
use authstat_core::hll::Hll;
use authstat_core::store::{FlushBatch, StoreError};
use authstat_core::{Month, NodeId};

use super::TxError;
use super::conn::{Bind, DimRow, RollupDimRow, SqlConnection, month_bind};
use super::dialect::{Dialect, NODE_DIM_TABLES};
use super::rollup::Step;
use crate::merge::Merger;

fn corrupt(d: Dialect, message: String) -> TxError {
    TxError::Store(StoreError::Corrupt {
        backend: d.kind(),
        message,
        cause: Default::default(),
    })
}

fn decode(d: Dialect, month: Month, dim: &str, bytes: &[u8]) -> Result<Hll, TxError> {
    Hll::from_bytes(bytes).map_err(|e| corrupt(d, format!("month {month} dimension {dim}: {e}")))
}

fn encode(d: Dialect, month: Month, dim: &Dim, hll: &Hll) -> Result<Vec<u8>, TxError> {
    hll.to_bytes().map_err(|e| {
        TxError::Store(StoreError::Rejected {
            backend: d.kind(),
            message: format!("month {month} dimension {dim}: {e}"),
        })
    })
}

/// `stored` with `seen` added (a union; with other parameters, the larger estimate), and
/// whether that changed it.
fn unite(stored: Option<Hll>, seen: &Hll) -> (Hll, bool) {
    let mut stats = match stored {
        None => return (seen.clone(), true),
        Some(users) => DimStats {
            users,
            counters: Counters::default(),
        },
    };
    let before = stats.users.clone();
    stats
        .add(seen, &Counters::default())
        .expect("same parameters union");
    let changed = stats.users != before;
    (stats.users, changed)
}

/// Binds of a node's counter rows: node, month, dim, kind, k1, k2, value.
fn counter_binds(node: &NodeId, month: Month, dim: &Dim, counters: &Counters, out: &mut Vec<Bind>) {
    for (key, value) in counters.iter() {
        let (kind, k1, k2) = key.parts();
        out.push(Bind::Text(node.as_str().to_owned()));
        out.extend([
            month_bind(month),
            Bind::Text(dim.as_str().to_owned()),
            Bind::Text(kind.to_owned()),
            Bind::Text(k1.to_owned()),
            Bind::Text(k2.to_owned()),
            Bind::BigInt(i64::try_from(value).unwrap_or(i64::MAX)),
        ]);
    }
}

/// Runs `sql(rows)` over `binds` in statements of at most [`Dialect::ROWS_PER_STATEMENT`] rows
/// of `columns` binds each.
fn write_rows<C: SqlConnection>(
    conn: &mut C,
    step: &mut Step<'_, C>,
    binds: &[Bind],
    columns: usize,
    sql: impl Fn(usize) -> String,
) -> Result<(), TxError> {
    for chunk in binds.chunks(columns * Dialect::ROWS_PER_STATEMENT) {
        step(conn, &sql(chunk.len() / columns), chunk.to_vec())?;
    }
    Ok(())
}

/// The node's HLLs stored for `dims` of one month.
fn stored_hlls<C: SqlConnection>(
    conn: &mut C,
    node: &NodeId,
    month: Month,
    dims: &[DimFlush],
) -> Result<BTreeMap<String, Hll>, TxError> {
    let d = C::DIALECT;
    let mut binds = vec![Bind::Text(node.as_str().to_owned()), month_bind(month)];
    binds.extend(dims.iter().map(|f| Bind::Text(f.dim.as_str().to_owned())));
    let rows: Vec<DimRow> = conn.load(&d.dim_hlls(dims.len()), binds)?;
    let mut out = BTreeMap::new();
    for row in rows {
        if let Some(bytes) = &row.hll {
            let hll = decode(d, month, &row.dim, bytes)?;
            out.insert(row.dim, hll);
        }
    }
    Ok(out)
}

/// The roll-up's rows of `dims` of one month, decoded.
fn stored_rollup<C: SqlConnection>(
    conn: &mut C,
    month: Month,
    dims: &[DimFlush],
) -> Result<BTreeMap<String, DimStats>, TxError> {
    let d = C::DIALECT;
    let mut binds = vec![month_bind(month)];
    binds.extend(dims.iter().map(|f| Bind::Text(f.dim.as_str().to_owned())));
    let rows: Vec<RollupDimRow> = conn.load(&d.rollup_dims_of(dims.len()), binds)?;
    let mut out = BTreeMap::new();
    for row in rows {
        let stats = rollup_stats(d, month, &row)?;
        out.insert(row.dim, stats);
    }
    Ok(out)
}

/// Counters as stored in the roll-up: `[[kind, k1, k2, value], …]`.
fn counters_json(counters: &Counters) -> String {
    let rows: Vec<serde_json::Value> = counters
        .iter()
        .map(|(key, n)| {
            let (kind, k1, k2) = key.parts();
            serde_json::json!([kind, k1, k2, n])
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// A roll-up row read back.
fn rollup_stats(d: Dialect, month: Month, row: &RollupDimRow) -> Result<DimStats, TxError> {
    let bad = |why: String| corrupt(d, format!("month {month} dimension {}: {why}", row.dim));
    let mut counters = Counters::default();
    let mut add = |kind: &str, k1: &str, k2: &str, n: u64| -> Result<(), TxError> {
        let key = CounterKey::from_parts(kind, k1, k2).map_err(|e| bad(e.to_string()))?;
        counters.add(&key, n);
        Ok(())
    };
    // Borrowed from the text unless a part has escapes (then owned).
    match serde_json::from_str::<Vec<(&str, &str, &str, u64)>>(&row.counters) {
        Ok(rows) => {
            for (kind, k1, k2, n) in rows {
                add(kind, k1, k2, n)?;
            }
        }
        Err(_) => {
            let rows: Vec<(String, String, String, u64)> =
                serde_json::from_str(&row.counters).map_err(|e| bad(e.to_string()))?;
            for (kind, k1, k2, n) in rows {
                add(&kind, &k1, &k2, n)?;
            }
        }
    }
    Ok(DimStats {
        users: decode(d, month, &row.dim, &row.hll)?,
        counters,
    })
}

/// A roll-up row's binds: month, dim, hll, counters.
fn rollup_binds(
    d: Dialect,
    month: Month,
    dim: &Dim,
    stats: &DimStats,
    out: &mut Vec<Bind>,
) -> Result<(), TxError> {
    out.extend([
        month_bind(month),
        Bind::Text(dim.as_str().to_owned()),
        Bind::Bytes(encode(d, month, dim, &stats.users)?),
        Bind::Text(counters_json(&stats.counters)),
    ]);
    Ok(())
}

/// A flush's clients and realms added to the node's rows and to the roll-up. Call after
/// `rollup::add_flush` (it holds the months' roll-up rows).
pub(super) fn add_flush<C: SqlConnection>(
    conn: &mut C,
    batch: &FlushBatch,
    step: &mut Step<'_, C>,
) -> Result<(), TxError> {
    let d = C::DIALECT;
    let node = &batch.node;
    let (mut node_hlls, mut node_counters, mut rolled) = (Vec::new(), Vec::new(), Vec::new());
    for flush in &batch.months {
        let month = flush.month;
        for dims in flush.dims.chunks(Dialect::ROWS_PER_STATEMENT) {
            let mut ours = stored_hlls(conn, node, month, dims)?;
            let mut all = stored_rollup(conn, month, dims)?;
            for f in dims {
                let (hll, changed) = unite(ours.remove(f.dim.as_str()), &f.users);
                if changed {
                    node_hlls.extend([
                        Bind::Text(node.as_str().to_owned()),
                        month_bind(month),
                        Bind::Text(f.dim.as_str().to_owned()),
                        Bind::Bytes(encode(d, month, &f.dim, &hll)?),
                    ]);
                }
                counter_binds(node, month, &f.dim, &f.counter_deltas, &mut node_counters);
                let stored = all.remove(f.dim.as_str());
                let unchanged_users = stored
                    .as_ref()
                    .is_some_and(|s| !unite(Some(s.users.clone()), &f.users).1);
                if unchanged_users && f.counter_deltas.is_empty() {
                    continue;
                }
                let mut stats = stored.unwrap_or_else(|| DimStats::new(*f.users.params()));
                stats
                    .add(&f.users, &f.counter_deltas)
                    .map_err(|e| corrupt(d, e.to_string()))?;
                rollup_binds(d, month, &f.dim, &stats, &mut rolled)?;
            }
        }
    }
    write_rows(conn, step, &node_hlls, 4, |n| d.upsert_dim_hlls(n))?;
    write_rows(conn, step, &node_counters, 7, |n| d.upsert_dim_counters(n))?;
    write_rows(conn, step, &rolled, 4, |n| d.upsert_rollup_dims(n))?;
    Ok(())
}

/// Rows (HLLs and counters) gathered into months of dimensions; rows of the same dimension
/// merge (HLL union, counter sums). `kind`: only dimensions of that kind.
fn gather(
    d: Dialect,
    rows: impl IntoIterator<Item = DimRow>,
    kind: Option<DimKind>,
) -> Result<BTreeMap<Month, MonthDims>, TxError> {
    let merger = Merger::new(d.kind());
    let mut out: BTreeMap<Month, MonthDims> = BTreeMap::new();
    // A dimension's counters may come before its HLL: it starts with no users.
    let no_users = || {
        Hll::new(authstat_core::dims::dim_params(
            &authstat_core::hll::HllParams::janssen(),
        ))
    };
    let mut last_month: Option<(i32, Month)> = None;
    for row in rows {
        let month = match last_month {
            Some((stored, month)) if stored == row.month => month,
            _ => {
                let month = merger.month(i64::from(row.month)).map_err(TxError::Store)?;
                last_month = Some((row.month, month));
                month
            }
        };
        let dim = Dim::parse(&row.dim).map_err(|e| corrupt(d, format!("month {month}: {e}")))?;
        if kind.is_some_and(|k| k != dim.kind()) {
            continue;
        }
        let into = out.entry(month).or_insert_with(|| MonthDims::new(month));
        match &row.hll {
            Some(bytes) => {
                let users = decode(d, month, &row.dim, bytes)?;
                match into.dims.get_mut(&dim) {
                    None => {
                        into.dims.insert(
                            dim,
                            DimStats {
                                users,
                                counters: Counters::default(),
                            },
                        );
                    }
                    Some(ours) => {
                        let counters = std::mem::take(&mut ours.counters);
                        let mut merged = DimStats { users, counters };
                        merged
                            .add(&ours.users, &Counters::default())
                            .map_err(|e| corrupt(d, e.to_string()))?;
                        *ours = merged;
                    }
                }
            }
            None => {
                let key = CounterKey::from_parts(&row.kind, &row.k1, &row.k2)
                    .map_err(|e| corrupt(d, format!("month {month} dimension {dim}: {e}")))?;
                let value = u64::try_from(row.value).unwrap_or(0);
                match into.dims.get_mut(&dim) {
                    Some(ours) => ours.counters.add(&key, value),
                    None => {
                        let mut counters = Counters::default();
                        counters.add(&key, value);
                        into.dims.insert(
                            dim,
                            DimStats {
                                users: no_users(),
                                counters,
                            },
                        );
                    }
                }
            }
        }
    }
    Ok(out)
}

/// One node's clients and realms of `months` (to resume after a restart).
pub(super) fn load_node<C: SqlConnection>(
    conn: &mut C,
    node: &str,
    months: &[Month],
) -> Result<Vec<MonthDims>, TxError> {
    let d = C::DIALECT;
    if months.is_empty() {
        return Ok(Vec::new());
    }
    let mut binds = Vec::new();
    for _ in 0..2 {
        binds.push(Bind::Text(node.to_owned()));
        binds.extend(months.iter().map(|&m| month_bind(m)));
    }
    let rows: Vec<DimRow> = conn.load(&d.node_dims_of(months.len()), binds)?;
    Ok(gather(d, rows, None)?.into_values().collect())
}

/// The roll-up's clients (or realms, or days) of `months`.
pub(super) fn read<C: SqlConnection>(
    conn: &mut C,
    months: &[Month],
    kind: DimKind,
) -> Result<Vec<MonthDims>, TxError> {
    let d = C::DIALECT;
    if months.is_empty() {
        return Ok(Vec::new());
    }
    let binds: Vec<Bind> = months.iter().map(|&m| month_bind(m)).collect();
    let rows: Vec<RollupDimRow> =
        conn.load(&d.read_rollup_dims(months.len(), kind.prefix()), binds)?;
    let merger = Merger::new(d.kind());
    let mut out: BTreeMap<Month, MonthDims> = BTreeMap::new();
    for row in rows {
        let month = merger.month(i64::from(row.month)).map_err(TxError::Store)?;
        let dim = Dim::parse(&row.dim).map_err(|e| corrupt(d, format!("month {month}: {e}")))?;
        if dim.kind() != kind {
            continue;
        }
        let stats = rollup_stats(d, month, &row)?;
        out.entry(month)
            .or_insert_with(|| MonthDims::new(month))
            .dims
            .insert(dim, stats);
    }
    Ok(out.into_values().collect())
}

/// Moves `ids` nodes' rows into the folded node's (HLLs unioned, counters summed). The
/// roll-up does not change.
pub(super) fn fold<C: SqlConnection>(
    conn: &mut C,
    folded: &NodeId,
    ids: &[String],
    step: &mut Step<'_, C>,
) -> Result<(), TxError> {
    let d = C::DIALECT;
    let mut nodes = vec![Bind::Text(folded.as_str().to_owned())];
    nodes.extend(ids.iter().map(|id| Bind::Text(id.clone())));
    let rows: Vec<DimRow> = conn.load(&d.node_dim_hlls(nodes.len()), nodes.clone())?;
    let hlls = gather(d, rows, None)?;
    step(conn, &d.fold_dim_counters(ids.len()), nodes.clone())?;
    for table in NODE_DIM_TABLES {
        step(
            conn,
            &d.delete_rows_of(table, ids.len()),
            nodes[1..].to_vec(),
        )?;
    }
    let mut binds = Vec::new();
    for (month, dims) in &hlls {
        for (dim, stats) in &dims.dims {
            binds.extend([
                Bind::Text(folded.as_str().to_owned()),
                month_bind(*month),
                Bind::Text(dim.as_str().to_owned()),
                Bind::Bytes(encode(d, *month, dim, &stats.users)?),
            ]);
        }
    }
    write_rows(conn, step, &binds, 4, |n| d.upsert_dim_hlls(n))
}

/// Deletes the days (and clients' days) of the months before `month`, node rows and roll-up.
pub(super) fn drop_days<C: SqlConnection>(conn: &mut C, month: Month) -> Result<u64, TxError> {
    let mut dropped = 0;
    for sql in C::DIALECT.drop_days_before() {
        dropped += conn.exec(&sql, vec![month_bind(month)])? as u64;
    }
    Ok(dropped)
}

/// Builds the roll-up of clients and realms anew from every node's rows (under the gate held
/// alone).
pub(super) fn rebuild<C: SqlConnection>(conn: &mut C) -> Result<(), TxError> {
    let d = C::DIALECT;
    let rows: Vec<DimRow> = conn.load(&d.all_dim_rows(), Vec::new())?;
    let months = gather(d, rows, None)?;
    conn.exec(&d.clear_rollup_dims(), Vec::new())?;
    let mut binds = Vec::new();
    for (month, dims) in &months {
        for (dim, stats) in &dims.dims {
            rollup_binds(d, *month, dim, stats, &mut binds)?;
        }
    }
    let mut exec = |conn: &mut C, sql: &str, binds: Vec<Bind>| -> Result<(), TxError> {
        conn.exec(sql, binds)?;
        Ok(())
    };
    write_rows(conn, &mut exec, &binds, 4, |n| d.upsert_rollup_dims(n))
}
