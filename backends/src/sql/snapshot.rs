//! Storing a foreign node's snapshot: one transaction that creates and locks the node's row,
//! compares the snapshot's version with the stored one (kept in the row's `epoch` column: a
//! foreign node is never claimed), deletes the node's rows of the snapshot's months, writes the
//! snapshot's HLLs and counters and bumps `seq` (the data version).

use authstat_core::Month;
use authstat_core::store::{Snapshot, SnapshotOutcome, StoreError};

use super::conn::month_bind;
use super::conn::{Bind, NodeRow, SqlConnection};
use super::dialect::Dialect;
use super::flush::counter_binds;
use super::{TxError, now_ms};

/// The binds of a snapshot, checked against what the schema can store before anything is
/// written.
pub(super) struct Prepared {
    months: Vec<Bind>,
    hlls: Vec<Bind>,
    counters: Vec<Bind>,
}

pub(super) fn prepare(dialect: Dialect, snapshot: &Snapshot) -> Result<Prepared, StoreError> {
    crate::rules::check_snapshot(dialect.kind(), snapshot)?;
    let reject = |message: String| StoreError::Rejected {
        backend: dialect.kind(),
        message,
    };
    let node = || Bind::Text(snapshot.node.as_str().to_owned());
    let mut prepared = Prepared {
        months: Vec::new(),
        hlls: Vec::new(),
        counters: Vec::new(),
    };
    for month in &snapshot.months {
        let bytes = month
            .users
            .to_bytes()
            .map_err(|e| reject(format!("month {}: {e}", month.month)))?;
        prepared.months.push(month_bind(month.month));
        prepared.hlls.extend([
            node(),
            month_bind(month.month),
            Bind::Bytes(bytes),
            Bind::MaybeBytes(None),
        ]);
        counter_binds(
            dialect,
            &snapshot.node,
            month.month,
            &month.counters,
            &mut prepared.counters,
        )?;
    }
    Ok(prepared)
}

/// The snapshot transaction's body.
pub(super) fn apply<C: SqlConnection>(
    conn: &mut C,
    snapshot: &Snapshot,
    prepared: &Prepared,
) -> Result<SnapshotOutcome, TxError> {
    let d = C::DIALECT;
    let node = || Bind::Text(snapshot.node.as_str().to_owned());
    super::rollup::gate(conn, false)?;
    conn.exec(&d.ensure_node(), vec![node(), Bind::BigInt(0)])?;
    let rows: Vec<NodeRow> = conn.load(&d.lock_node(), vec![node()])?;
    // A row that has never stored a snapshot has seq 0: any version is newer.
    if let Some(row) = rows.first()
        && row.seq > 0
        && snapshot.version < row.epoch
    {
        return Ok(SnapshotOutcome::Stale);
    }
    conn.exec(
        &d.record_snapshot(),
        vec![
            Bind::BigInt(now_ms()),
            Bind::BigInt(snapshot.version),
            node(),
        ],
    )?;
    let months: Vec<Month> = snapshot.months.iter().map(|m| m.month).collect();
    let old = if months.is_empty() {
        Default::default()
    } else {
        super::rollup::node_counters(conn, &snapshot.node, &months)?
    };
    if !prepared.months.is_empty() {
        for table in ["authstat_hll", "authstat_counters"] {
            let mut binds = vec![node()];
            binds.extend(prepared.months.iter().cloned());
            conn.exec(&d.delete_months_of(table, prepared.months.len()), binds)?;
        }
    }
    for (columns, binds, build) in [
        (
            4,
            &prepared.hlls,
            Dialect::upsert_hlls as fn(Dialect, usize) -> String,
        ),
        (6, &prepared.counters, Dialect::upsert_counters),
    ] {
        for chunk in binds.chunks(columns * Dialect::ROWS_PER_STATEMENT) {
            conn.exec(&build(d, chunk.len() / columns), chunk.to_vec())?;
        }
    }
    let new: Vec<(Month, &authstat_core::counters::Counters)> = snapshot
        .months
        .iter()
        .map(|m| (m.month, &m.counters))
        .collect();
    super::rollup::replace_snapshot(conn, &old, &new)?;
    Ok(SnapshotOutcome::Applied)
}
