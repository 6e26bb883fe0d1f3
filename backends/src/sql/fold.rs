//! Folding silent nodes into the folded node's rows, [`NODES_PER_TRANSACTION`] nodes per
//! transaction (so that no fold holds the locks for long, however many nodes wait): lock the
//! folded node's row (folds run one at a time, cluster-wide), then the silent nodes' rows (a
//! flush of one of them waits, or is seen whole), add their counters to the folded node's with
//! one `INSERT … SELECT`, union their HLLs as the rows arrive, store the unions, delete the
//! nodes' monthly rows and bump the folded node's `seq` (the data version).

use authstat_core::NodeId;
use authstat_core::store::{FoldReport, FoldRequest, StoreError};

use super::conn::month_bind;
use super::conn::{Bind, NodeIdRow, NodeRow, SqlConnection};
use super::dialect::Dialect;
use super::{Steps, TxError, merge_streamed, now_ms};
use crate::merge::Merger;

/// Nodes per transaction (each is one bind parameter of its statements).
pub(super) const NODES_PER_TRANSACTION: usize = 500;

/// The fold transaction's body. `steps` counts the writes after the nodes were selected (where a
/// test makes one fail).
pub(super) fn apply<C: SqlConnection>(
    conn: &mut C,
    request: &FoldRequest,
    steps: &mut Steps,
) -> Result<FoldReport, TxError> {
    let d = C::DIALECT;
    let folded = NodeId::folded();
    let folded_bind = || Bind::Text(folded.as_str().to_owned());
    // A fold leaves the roll-up as it is (unions and sums do not change), but holds the gate
    // so that a rebuild never reads rows half moved.
    super::rollup::gate(conn, false)?;
    conn.exec(&d.ensure_node(), vec![folded_bind(), Bind::BigInt(0)])?;
    let _: Vec<NodeRow> = conn.load(&d.lock_node(), vec![folded_bind()])?;
    let silent: Vec<NodeIdRow> = conn.load(
        &d.silent_nodes(NODES_PER_TRANSACTION),
        vec![
            folded_bind(),
            Bind::BigInt(request.silent_before_ms),
            Bind::BigInt(request.now_ms),
        ],
    )?;
    if silent.is_empty() {
        return Ok(FoldReport::default());
    }
    let mut step = |conn: &mut C, sql: &str, binds: Vec<Bind>| steps.exec(conn, sql, binds);

    // The unions start from what the folded node holds; rows are unioned as they arrive.
    let mut unions = Merger::new(d.kind());
    merge_streamed(conn, &d.hlls_of(1), vec![folded_bind()], &mut unions)?;
    let ids: Vec<String> = silent.into_iter().map(|r| r.node_id).collect();
    let binds = || ids.iter().map(|id| Bind::Text(id.clone()));
    let node_months = merge_streamed(conn, &d.hlls_of(ids.len()), binds().collect(), &mut unions)?;
    let mut with_folded = vec![folded_bind()];
    with_folded.extend(binds());
    step(conn, &d.fold_counters(ids.len()), with_folded)?;
    step(
        conn,
        &d.delete_rows_of("authstat_hll", ids.len()),
        binds().collect(),
    )?;
    step(
        conn,
        &d.delete_rows_of("authstat_counters", ids.len()),
        binds().collect(),
    )?;
    super::dims::fold(conn, &folded, &ids, &mut step)?;
    let hlls = folded_binds(d, &folded, unions)?;
    for chunk in hlls.chunks(4 * Dialect::ROWS_PER_STATEMENT) {
        step(conn, &d.upsert_hlls(chunk.len() / 4), chunk.to_vec())?;
    }
    step(
        conn,
        &d.bump_node(),
        vec![Bind::BigInt(now_ms()), folded_bind()],
    )?;
    let nodes = ids
        .into_iter()
        .map(|id| {
            NodeId::stored(id).map_err(|e| {
                TxError::Store(StoreError::Corrupt {
                    backend: d.kind(),
                    message: e.to_string(),
                    cause: Default::default(),
                })
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(FoldReport { nodes, node_months })
}

/// The folded node's merged months as HLL row binds (node, month, users, clients).
fn folded_binds(d: Dialect, folded: &NodeId, unions: Merger) -> Result<Vec<Bind>, TxError> {
    let reject = |month, what: &str, e: authstat_core::Error| {
        TxError::Store(StoreError::Rejected {
            backend: d.kind(),
            message: format!("folded month {month}{what}: {e}"),
        })
    };
    let mut hlls = Vec::new();
    for month in unions.finish() {
        let bytes = month
            .users
            .to_bytes()
            .map_err(|e| reject(month.month, "", e))?;
        let clients = month
            .clients
            .as_ref()
            .map(authstat_core::hll::Hll::to_bytes)
            .transpose()
            .map_err(|e| reject(month.month, " clients", e))?;
        hlls.extend([
            Bind::Text(folded.as_str().to_owned()),
            month_bind(month.month),
            Bind::Bytes(bytes),
            Bind::MaybeBytes(clients),
        ]);
    }
    Ok(hlls)
}
