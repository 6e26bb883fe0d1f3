//! Merging the stored rows of months into their statistics.

use super::*;

pub(super) fn merge_rows(
    dialect: Dialect,
    rows: Vec<StatRow>,
) -> Result<Vec<MonthStats>, StoreError> {
    let mut merger = Merger::new(dialect.kind());
    for row in rows {
        merge_row(&mut merger, row)?;
    }
    Ok(merger.finish())
}

pub(super) fn merge_row(merger: &mut Merger, row: StatRow) -> Result<(), StoreError> {
    let month = merger.month(i64::from(row.month))?;
    if let Some(bytes) = &row.clients {
        merger.add_clients_bytes(month, &row.k1, bytes)?;
    }
    match (row.kind.as_str(), row.hll) {
        ("#hll", Some(bytes)) => merger.add_hll(month, &row.k1, &bytes)?,
        ("#hll", None) => {}
        (kind, _) => merger.add_counter(month, kind, &row.k1, &row.k2, row.value)?,
    }
    Ok(())
}

/// Runs `sql` and merges its rows into `merger` as they arrive; returns how many rows.
pub(super) fn merge_streamed<C: SqlConnection>(
    conn: &mut C,
    sql: &str,
    binds: Vec<Bind>,
    merger: &mut Merger,
) -> Result<usize, TxError> {
    let mut rows = 0;
    let mut failed = None;
    conn.for_each_row(sql, binds, &mut |row: StatRow| {
        rows += 1;
        if failed.is_none()
            && let Err(e) = merge_row(merger, row)
        {
            failed = Some(e);
        }
    })?;
    match failed {
        Some(e) => Err(TxError::Store(e)),
        None => Ok(rows),
    }
}
