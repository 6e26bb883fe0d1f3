//! The flush transaction: hold the roll-up's gate, lock the node's row, check the epoch
//! (fencing) and the sequence number, record the new `seq` and lease, replace the HLLs, add the
//! counter deltas, add both to the roll-up, replace the positions. Every statement goes through one `step`, which is also where tests inject a
//! failure at any statement index.

use authstat_core::counters::Counters;
use authstat_core::store::{FlushBatch, FlushOutcome, SourcePosition, StoreError};
use authstat_core::{Month, NodeId};

use super::conn::{Bind, NodeRow, SqlConnection, month_bind};
use super::dialect::Dialect;
use super::own::lease_of;
use super::{MAX_KEY_PART_LEN, Steps, TxError, now_ms};

/// Appends the rows of `counters` (node, month, kind, k1, k2, value), checked against what the
/// schema can store.
pub(super) fn counter_binds(
    dialect: Dialect,
    node: &NodeId,
    month: Month,
    counters: &Counters,
    out: &mut Vec<Bind>,
) -> Result<(), StoreError> {
    let reject = |message: String| StoreError::Rejected {
        backend: dialect.kind(),
        message,
    };
    for (key, value) in counters.iter() {
        let (kind, k1, k2) = key.parts();
        if k1.len() > MAX_KEY_PART_LEN || k2.len() > MAX_KEY_PART_LEN {
            return Err(reject(format!(
                "counter key part longer than {MAX_KEY_PART_LEN} bytes in month {month}"
            )));
        }
        let value = i64::try_from(value)
            .map_err(|_| reject(format!("counter {value} does not fit a BIGINT")))?;
        out.extend([
            Bind::Text(node.as_str().to_owned()),
            month_bind(month),
            Bind::Text(kind.to_owned()),
            Bind::Text(k1.to_owned()),
            Bind::Text(k2.to_owned()),
            Bind::BigInt(value),
        ]);
    }
    Ok(())
}

/// The binds of a batch, checked against what the schema can store before anything is
/// written.
pub(super) struct Prepared {
    hlls: Vec<Bind>,
    counters: Vec<Bind>,
    positions: Option<Vec<Bind>>,
}

pub(super) fn prepare(dialect: Dialect, batch: &FlushBatch) -> Result<Prepared, StoreError> {
    let reject = |message: String| StoreError::Rejected {
        backend: dialect.kind(),
        message,
    };
    let node = || Bind::Text(batch.node.as_str().to_owned());
    let mut hlls = Vec::with_capacity(batch.months.len() * 4);
    let mut counters = Vec::new();
    for month in &batch.months {
        let bytes = month
            .users
            .to_bytes()
            .map_err(|e| reject(format!("month {}: {e}", month.month)))?;
        let clients = month
            .clients
            .as_ref()
            .map(authstat_core::hll::Hll::to_bytes)
            .transpose()
            .map_err(|e| reject(format!("month {} clients: {e}", month.month)))?;
        hlls.extend([
            node(),
            month_bind(month.month),
            Bind::Bytes(bytes),
            Bind::MaybeBytes(clients),
        ]);
        counter_binds(
            dialect,
            &batch.node,
            month.month,
            &month.counter_deltas,
            &mut counters,
        )?;
    }
    let positions = match &batch.positions {
        None => None,
        Some(list) => {
            let mut binds = Vec::with_capacity(list.len() * 4);
            for SourcePosition { source, key, data } in list {
                if source.len() > MAX_KEY_PART_LEN || key.len() > MAX_KEY_PART_LEN {
                    return Err(reject(format!(
                        "position key {source}/{key} longer than {MAX_KEY_PART_LEN} bytes"
                    )));
                }
                binds.extend([
                    node(),
                    Bind::Text(source.clone()),
                    Bind::Text(key.clone()),
                    Bind::Text(data.clone()),
                ]);
            }
            Some(binds)
        }
    };
    Ok(Prepared {
        hlls,
        counters,
        positions,
    })
}

/// The flush transaction's body; `steps` counts its writes (where a test makes one fail or
/// interrupts the transaction).
pub(super) fn apply<C: SqlConnection>(
    conn: &mut C,
    batch: &FlushBatch,
    prepared: &Prepared,
    steps: &mut Steps,
) -> Result<FlushOutcome, TxError> {
    let d = C::DIALECT;
    let node = || Bind::Text(batch.node.as_str().to_owned());
    let mut step = |conn: &mut C, sql: &str, binds: Vec<Bind>| steps.exec(conn, sql, binds);

    super::rollup::gate(conn, false)?;
    let rows: Vec<NodeRow> = conn.load(&d.lock_node(), vec![node()])?;
    let row = match rows.first() {
        Some(row) if row.epoch as u64 == batch.epoch => row,
        other => {
            let holder = match other {
                None => "nobody (the node was never claimed)".to_owned(),
                Some(row) => {
                    let lease = lease_of(d, &batch.node, row).map_err(TxError::Store)?;
                    crate::rules::holder_text(Some(&lease))
                }
            };
            return Err(TxError::Store(StoreError::Fenced {
                backend: d.kind(),
                node: batch.node.clone(),
                holder,
            }));
        }
    };
    let seq = i64::try_from(batch.seq).map_err(|_| {
        TxError::Store(StoreError::Rejected {
            backend: d.kind(),
            message: "seq too large".into(),
        })
    })?;
    if seq <= row.seq {
        return Ok(FlushOutcome::AlreadyApplied);
    }
    step(
        conn,
        &d.update_node(),
        vec![
            Bind::BigInt(seq),
            Bind::BigInt(seq),
            Bind::BigInt(now_ms()),
            Bind::BigInt(batch.lease_until_ms),
            node(),
        ],
    )?;
    for (columns, binds, build) in [
        (
            4,
            &prepared.hlls,
            Dialect::upsert_hlls as fn(Dialect, usize) -> String,
        ),
        (6, &prepared.counters, Dialect::upsert_counters),
    ] {
        for chunk in binds.chunks(columns * Dialect::ROWS_PER_STATEMENT) {
            step(conn, &build(d, chunk.len() / columns), chunk.to_vec())?;
        }
    }
    super::rollup::add_flush(conn, batch, &mut step)?;
    super::dims::add_flush(conn, batch, &mut step)?;
    if let Some(positions) = &prepared.positions {
        step(conn, &d.delete_positions(), vec![node()])?;
        for chunk in positions.chunks(4 * Dialect::ROWS_PER_STATEMENT) {
            step(conn, &d.insert_positions(chunk.len() / 4), chunk.to_vec())?;
        }
    }
    steps.before_commit();
    Ok(FlushOutcome::Applied)
}
