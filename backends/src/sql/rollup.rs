//! The cluster roll-up in SQL (`crate::rollup` for what it holds): updated inside the flush
//! and snapshot transactions, read by merged reads, and built anew from the node rows when a
//! node's `rollup_seq` differs from its `seq` (rows stored before the roll-up existed, or
//! written by an agent that predates it).
//!
//! Locks, always in this order so that no two transactions wait on each other: the gate
//! (shared by writes, exclusive by a rebuild), the node's row, the roll-up's months ascending.

use std::collections::BTreeMap;

use authstat_core::counters::Counters;
use authstat_core::hll::Hll;
use authstat_core::store::{FlushBatch, StoreError};
use authstat_core::{Month, MonthStats, NodeId};

use super::conn::month_bind;
use super::conn::{Bind, RollupRow, SeqRow, SqlConnection, StatRow};
use super::dialect::Dialect;
use super::{TxError, merge_streamed};
use crate::merge::Merger;
use crate::rollup::{Rolled, union_all, union_into};

fn corrupt(d: Dialect, message: String) -> TxError {
    TxError::Store(StoreError::Corrupt {
        backend: d.kind(),
        message,
        cause: Default::default(),
    })
}

/// Holds the gate for the rest of the transaction (shared: a write; exclusive: a rebuild).
pub(super) fn gate<C: SqlConnection>(conn: &mut C, exclusive: bool) -> Result<(), TxError> {
    let _: Vec<SeqRow> = conn.load(&C::DIALECT.rollup_gate(exclusive), Vec::new())?;
    Ok(())
}

/// A month of the roll-up as stored (its users and whether it is mixed), locked for the
/// transaction.
fn lock<C: SqlConnection>(conn: &mut C, month: Month) -> Result<Rolled, TxError> {
    let d = C::DIALECT;
    let rows: Vec<RollupRow> = conn.load(&d.lock_rollup(), vec![month_bind(month)])?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(Rolled::default());
    };
    let users = row
        .hll
        .map(|b| Hll::from_bytes(&b))
        .transpose()
        .map_err(|e| corrupt(d, format!("roll-up of {month}: {e}")))?;
    Ok(Rolled {
        users,
        mixed: row.mixed != 0,
        version: row.version as u64,
        ..Rolled::default()
    })
}

fn bytes(d: Dialect, month: Month, hll: Option<&Hll>) -> Result<Option<Vec<u8>>, TxError> {
    hll.map(Hll::to_bytes)
        .transpose()
        .map_err(|e| corrupt(d, format!("roll-up of {month}: {e}")))
}

/// Runs one write of a transaction (counted: where tests inject a failure).
pub(super) type Step<'a, C> = dyn FnMut(&mut C, &str, Vec<Bind>) -> Result<(), TxError> + 'a;

/// A flush's months added to the roll-up (its HLLs unioned in, its counter deltas added);
/// `step` runs the writes. Call after the flush's sequence check, under the gate. The months'
/// rows are locked in one statement; a month whose users did not change keeps its HLL bytes
/// (only its version is bumped).
pub(super) fn add_flush<C: SqlConnection>(
    conn: &mut C,
    batch: &FlushBatch,
    step: &mut Step<'_, C>,
) -> Result<(), TxError> {
    let d = C::DIALECT;
    let mut months: Vec<_> = batch.months.iter().collect();
    months.sort_by_key(|m| m.month);
    months.dedup_by_key(|m| m.month);
    if months.is_empty() {
        return Ok(());
    }
    let binds: Vec<Bind> = months.iter().map(|m| month_bind(m.month)).collect();
    let mut rows: Vec<RollupRow> = conn.load(&d.lock_rollups(binds.len()), binds.clone())?;
    if rows.len() < months.len() {
        // A month new to the roll-up: its row is made (empty) and locked before it is written.
        step(conn, &d.ensure_rollups(binds.len()), binds.clone())?;
        rows = conn.load(&d.lock_rollups(binds.len()), binds)?;
    }
    let merger = Merger::new(d.kind());
    let mut stored: BTreeMap<Month, RollupRow> = BTreeMap::new();
    for row in rows {
        stored.insert(
            merger.month(i64::from(row.month)).map_err(TxError::Store)?,
            row,
        );
    }
    let (mut changed, mut same, mut counters) = (Vec::new(), Vec::new(), Vec::new());
    for flush in months {
        let row = stored.remove(&flush.month);
        let existed = row.is_some();
        let decode = |b: Option<Vec<u8>>| {
            b.map(|b| Hll::from_bytes(&b))
                .transpose()
                .map_err(|e| corrupt(d, format!("roll-up of {}: {e}", flush.month)))
        };
        let (mut users, mut clients, mut mixed) = match row {
            None => (None, None, false),
            Some(row) => (decode(row.hll)?, decode(row.clients_hll)?, row.mixed != 0),
        };
        let before = (users.clone(), clients.clone());
        union_into(&mut users, &flush.users, &mut mixed);
        if let Some(theirs) = &flush.clients {
            union_into(&mut clients, theirs, &mut mixed);
        }
        if existed && (users.clone(), clients.clone()) == before {
            same.push(month_bind(flush.month));
        } else {
            changed.extend([
                month_bind(flush.month),
                Bind::MaybeBytes(bytes(d, flush.month, users.as_ref())?),
                Bind::MaybeBytes(bytes(d, flush.month, clients.as_ref())?),
                Bind::Int(i32::from(mixed)),
            ]);
        }
        counter_binds(flush.month, &flush.counter_deltas, &mut counters);
    }
    if !changed.is_empty() {
        step(conn, &d.upsert_rollup_users(changed.len() / 4), changed)?;
    }
    if !same.is_empty() {
        step(conn, &d.bump_rollups(same.len()), same)?;
    }
    for chunk in counters.chunks(5 * Dialect::ROWS_PER_STATEMENT) {
        step(
            conn,
            &d.upsert_rollup_counters(chunk.len() / 5),
            chunk.to_vec(),
        )?;
    }
    Ok(())
}

/// Binds per row: month, kind, k1, k2, value (lengths were checked with the node's rows).
fn counter_binds(month: Month, counters: &Counters, out: &mut Vec<Bind>) {
    for (key, value) in counters.iter() {
        let (kind, k1, k2) = key.parts();
        out.extend([
            month_bind(month),
            Bind::Text(kind.to_owned()),
            Bind::Text(k1.to_owned()),
            Bind::Text(k2.to_owned()),
            Bind::BigInt(i64::try_from(value).unwrap_or(i64::MAX)),
        ]);
    }
}

/// A foreign node's counters of `months` before its snapshot replaces them.
pub(super) fn node_counters<C: SqlConnection>(
    conn: &mut C,
    node: &NodeId,
    months: &[Month],
) -> Result<BTreeMap<Month, Counters>, TxError> {
    let d = C::DIALECT;
    let mut binds = vec![Bind::Text(node.as_str().to_owned())];
    binds.extend(months.iter().map(|&m| month_bind(m)));
    let rows: Vec<StatRow> = conn.load(&d.node_counters_of(months.len()), binds)?;
    let mut out: BTreeMap<Month, Counters> = BTreeMap::new();
    let merger = Merger::new(d.kind());
    for row in rows {
        let month = merger.month(i64::from(row.month)).map_err(TxError::Store)?;
        let key = authstat_core::counters::CounterKey::from_parts(&row.kind, &row.k1, &row.k2)
            .map_err(|e| corrupt(d, format!("month {month}: {e}")))?;
        out.entry(month)
            .or_default()
            .add(&key, u64::try_from(row.value).unwrap_or(0));
    }
    Ok(out)
}

/// A snapshot's months replaced in the roll-up: `old` counters taken away, `new` ones added,
/// the foreign users made anew from every foreign node's rows. Call after the node's rows were
/// replaced, under the gate.
pub(super) fn replace_snapshot<C: SqlConnection>(
    conn: &mut C,
    old: &BTreeMap<Month, Counters>,
    new: &[(Month, &Counters)],
) -> Result<(), TxError> {
    let d = C::DIALECT;
    let mut new: Vec<_> = new.to_vec();
    new.sort_by_key(|(m, _)| *m);
    let mut added = Vec::new();
    for &(month, counters) in &new {
        let locked = lock(conn, month)?;
        let rows: Vec<StatRow> = conn.load(&d.foreign_hlls(), vec![month_bind(month)])?;
        let mut hlls = Vec::new();
        for row in rows.into_iter().filter(|r| NodeId::is_foreign_id(&r.k1)) {
            let Some(b) = row.hll else { continue };
            hlls.push(
                Hll::from_bytes(&b)
                    .map_err(|e| corrupt(d, format!("node {} month {month}: {e}", row.k1)))?,
            );
        }
        let mut mixed = locked.mixed;
        let foreign = union_all(&hlls, &mut mixed);
        let users = bytes(d, month, locked.users.as_ref())?;
        conn.exec(
            &d.upsert_rollup(),
            vec![
                month_bind(month),
                Bind::MaybeBytes(users),
                Bind::MaybeBytes(bytes(d, month, foreign.as_ref())?),
                Bind::Int(i32::from(mixed)),
            ],
        )?;
        if let Some(old) = old.get(&month) {
            for (key, value) in old.iter() {
                let (kind, k1, k2) = key.parts();
                conn.exec(
                    &d.subtract_rollup_counter(),
                    vec![
                        Bind::BigInt(i64::try_from(value).unwrap_or(i64::MAX)),
                        month_bind(month),
                        Bind::Text(kind.to_owned()),
                        Bind::Text(k1.to_owned()),
                        Bind::Text(k2.to_owned()),
                    ],
                )?;
            }
        }
        counter_binds(month, counters, &mut added);
    }
    for chunk in added.chunks(5 * Dialect::ROWS_PER_STATEMENT) {
        conn.exec(&d.upsert_rollup_counters(chunk.len() / 5), chunk.to_vec())?;
    }
    if !new.is_empty() {
        let months: Vec<Bind> = new.iter().map(|(m, _)| month_bind(*m)).collect();
        conn.exec(&d.drop_zero_rollup_counters(months.len()), months)?;
    }
    Ok(())
}

/// What a merged read of `months` answers from the roll-up, and the months it marks mixed
/// (to be read from the node rows).
pub(super) fn read<C: SqlConnection>(
    conn: &mut C,
    months: &[Month],
) -> Result<(Vec<MonthStats>, Vec<Month>), TxError> {
    let d = C::DIALECT;
    let binds = || months.iter().map(|&m| month_bind(m)).collect::<Vec<_>>();
    let rows: Vec<RollupRow> = conn.load(&d.read_rollup(months.len()), binds())?;
    let mut rolled: BTreeMap<Month, Rolled> = BTreeMap::new();
    let mut mixed = Vec::new();
    let merger = Merger::new(d.kind());
    for row in rows {
        let month = merger.month(i64::from(row.month)).map_err(TxError::Store)?;
        if row.mixed != 0 {
            mixed.push(month);
            continue;
        }
        let decode = |b: Option<Vec<u8>>| {
            b.map(|b| Hll::from_bytes(&b))
                .transpose()
                .map_err(|e| corrupt(d, format!("roll-up of {month}: {e}")))
        };
        rolled.insert(
            month,
            Rolled {
                users: decode(row.hll)?,
                foreign: decode(row.foreign_hll)?,
                clients: decode(row.clients_hll)?,
                ..Rolled::default()
            },
        );
    }
    let counters: Vec<StatRow> = conn.load(&d.read_rollup_counters(months.len()), binds())?;
    for row in counters {
        let month = merger.month(i64::from(row.month)).map_err(TxError::Store)?;
        if let Some(r) = rolled.get_mut(&month) {
            let key = authstat_core::counters::CounterKey::from_parts(&row.kind, &row.k1, &row.k2)
                .map_err(|e| corrupt(d, format!("month {month}: {e}")))?;
            r.counters.add(&key, u64::try_from(row.value).unwrap_or(0));
        }
    }
    Ok((rolled.iter().map(|(m, r)| r.stats(*m)).collect(), mixed))
}

/// Every month's version.
pub(super) fn versions<C: SqlConnection>(conn: &mut C) -> Result<BTreeMap<Month, u64>, TxError> {
    let d = C::DIALECT;
    let rows: Vec<RollupRow> = conn.load(&d.rollup_versions(), Vec::new())?;
    let merger = Merger::new(d.kind());
    rows.into_iter()
        .map(|r| {
            Ok((
                merger.month(i64::from(r.month)).map_err(TxError::Store)?,
                r.version as u64,
            ))
        })
        .collect()
}

/// Whether some node's writes are not in the roll-up.
pub(super) fn behind<C: SqlConnection>(conn: &mut C) -> Result<bool, TxError> {
    let rows: Vec<SeqRow> = conn.load(&C::DIALECT.rollup_behind(), Vec::new())?;
    Ok(rows.first().is_some_and(|r| r.seq > 0))
}

/// Builds the roll-up anew from every node's rows (a transaction's body, under the gate held
/// alone); nothing to do when no node is behind any more (another agent rebuilt it). Returns
/// how many months it wrote.
pub(super) fn rebuild<C: SqlConnection>(conn: &mut C) -> Result<Option<usize>, TxError> {
    let d = C::DIALECT;
    gate(conn, true)?;
    if !behind(conn)? {
        return Ok(None);
    }
    let old = versions(conn)?;
    let mut merger = Merger::lenient(d.kind());
    merge_streamed(conn, &d.all_rows(), Vec::new(), &mut merger)?;
    let months = merger.finish_rolled();
    conn.exec("DELETE FROM authstat_rollup", Vec::new())?;
    conn.exec("DELETE FROM authstat_rollup_counters", Vec::new())?;
    let mut counters = Vec::new();
    for (month, rolled) in &months {
        let version = old.get(month).copied().unwrap_or(0) + 1;
        conn.exec(
            &d.insert_rollup(),
            vec![
                month_bind(*month),
                Bind::MaybeBytes(bytes(d, *month, rolled.users.as_ref())?),
                Bind::MaybeBytes(bytes(d, *month, rolled.foreign.as_ref())?),
                Bind::MaybeBytes(bytes(d, *month, rolled.clients.as_ref())?),
                Bind::Int(i32::from(rolled.mixed)),
                Bind::BigInt(i64::try_from(version).unwrap_or(i64::MAX)),
            ],
        )?;
        counter_binds(*month, &rolled.counters, &mut counters);
    }
    for chunk in counters.chunks(5 * Dialect::ROWS_PER_STATEMENT) {
        conn.exec(&d.upsert_rollup_counters(chunk.len() / 5), chunk.to_vec())?;
    }
    super::dims::rebuild(conn)?;
    conn.exec(
        "UPDATE authstat_nodes SET rollup_seq = seq WHERE rollup_seq <> seq",
        Vec::new(),
    )?;
    Ok(Some(months.len()))
}
