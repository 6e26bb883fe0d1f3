//! Ownership in SQL: node leases (one agent per node id) and cluster-wide key claims.
//!
//! A claim of a node is one transaction: make sure the node's row exists, lock it, judge the
//! stored lease, and (if granted) raise its epoch. A flush locks the same row and compares the
//! epoch (see `flush.rs`), so a claim and a flush of the same node are serialized: once a new
//! claim has committed, no flush of an older epoch can commit.
//!
//! Key claims rely on the primary key of `authstat_claims`: the first insert wins, later ones
//! are ignored, and the owner is read back in the same transaction.

use authstat_core::NodeId;
use authstat_core::store::{
    ClaimRequest, Instance, KeyClaim, KeyOwner, Lease, NodeClaim, StoreError,
};

use super::conn::{Bind, ClaimRow, NodeRow, SqlConnection};
use super::dialect::Dialect;
use super::{TxError, db_error, now_ms, transaction_with_retries};
use crate::rules::may_claim;

impl Dialect {
    /// Binds: epoch, holder, lease_until_ms, node_id.
    fn grant_node(self) -> String {
        format!(
            "UPDATE authstat_nodes SET epoch = {}, holder = {}, lease_until_ms = {}, released = 0 \
             WHERE node_id = {}",
            self.param(1),
            self.param(2),
            self.param(3),
            self.param(4)
        )
    }

    /// Binds: node_id, epoch.
    fn release_node(self) -> String {
        format!(
            "UPDATE authstat_nodes SET released = 1 WHERE node_id = {} AND epoch = {}",
            self.param(1),
            self.param(2)
        )
    }

    /// Binds per row: ckey, node_id, source, epoch.
    fn insert_claims(self, rows: usize) -> String {
        let values = (0..rows)
            .map(|r| {
                format!(
                    "({}, {}, {}, {})",
                    self.param(r * 4 + 1),
                    self.param(r * 4 + 2),
                    self.param(r * 4 + 3),
                    self.param(r * 4 + 4)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let columns = "authstat_claims (ckey, node_id, source, epoch)";
        match self {
            Dialect::Sqlite => format!("INSERT OR IGNORE INTO {columns} VALUES {values}"),
            Dialect::Postgres => {
                format!("INSERT INTO {columns} VALUES {values} ON CONFLICT (ckey) DO NOTHING")
            }
            Dialect::Mysql => format!("INSERT IGNORE INTO {columns} VALUES {values}"),
        }
    }

    /// Binds: epoch, node_id, source, then `keys` keys.
    fn confirm_claims(self, keys: usize) -> String {
        format!(
            "UPDATE authstat_claims SET epoch = {} WHERE node_id = {} AND source = {} \
             AND ckey IN ({})",
            self.param(1),
            self.param(2),
            self.param(3),
            self.list(4, keys)
        )
    }

    /// Binds: `keys` keys.
    fn select_claims(self, keys: usize) -> String {
        format!(
            "SELECT ckey, node_id, source, epoch FROM authstat_claims WHERE ckey IN ({})",
            self.list(1, keys)
        )
    }

    /// Binds: new node_id, source, epoch, then ckey, old node_id, source, epoch.
    fn move_claim(self) -> String {
        format!(
            "UPDATE authstat_claims SET node_id = {}, source = {}, epoch = {} \
             WHERE ckey = {} AND node_id = {} AND source = {} AND epoch = {}",
            self.param(1),
            self.param(2),
            self.param(3),
            self.param(4),
            self.param(5),
            self.param(6),
            self.param(7)
        )
    }
}

/// The lease stored in a node's row.
pub(super) fn lease_of(d: Dialect, node: &NodeId, row: &NodeRow) -> Result<Lease, StoreError> {
    let holder = match &row.holder {
        None => None,
        Some(text) => {
            Some(
                serde_json::from_str::<Instance>(text).map_err(|e| StoreError::Corrupt {
                    backend: d.kind(),
                    message: format!("node {node}: holder {text:?}: {e}"),
                    cause: Default::default(),
                })?,
            )
        }
    };
    Ok(Lease {
        node: node.clone(),
        epoch: row.epoch as u64,
        holder,
        until_ms: row.lease_until_ms,
        released: row.released != 0,
    })
}

/// The claim transaction.
pub(super) fn claim_node<C: SqlConnection>(
    conn: &mut C,
    request: &ClaimRequest,
) -> Result<NodeClaim, StoreError> {
    let d = C::DIALECT;
    let node = || Bind::Text(request.node.as_str().to_owned());
    let holder = serde_json::to_string(&request.instance).expect("an instance serializes");
    transaction_with_retries(conn, |conn| {
        conn.exec(&d.ensure_node(), vec![node(), Bind::BigInt(now_ms())])?;
        let rows: Vec<NodeRow> = conn.load(&d.lock_node(), vec![node()])?;
        let row = rows.first().ok_or_else(|| {
            TxError::Store(StoreError::Unavailable {
                backend: d.kind(),
                message: format!("node {} vanished during its claim", request.node),
                cause: Default::default(),
            })
        })?;
        // A row that never had a holder (created by this claim, or written before leases
        // existed) is reported as no previous lease.
        let previous = match row.holder {
            None => None,
            Some(_) => Some(lease_of(d, &request.node, row).map_err(TxError::Store)?),
        };
        if !may_claim(previous.as_ref(), request) {
            let holder = previous.expect("a refusal has a holder");
            return Ok(NodeClaim::Refused { holder });
        }
        let epoch = row.epoch + 1;
        conn.exec(
            &d.grant_node(),
            vec![
                Bind::BigInt(epoch),
                Bind::Text(holder.clone()),
                Bind::BigInt(request.until_ms),
                node(),
            ],
        )?;
        Ok(NodeClaim::Granted {
            epoch: epoch as u64,
            previous,
        })
    })
}

pub(super) fn release_node<C: SqlConnection>(
    conn: &mut C,
    node: &NodeId,
    epoch: u64,
) -> Result<(), StoreError> {
    let d = C::DIALECT;
    conn.exec(
        &d.release_node(),
        vec![
            Bind::Text(node.as_str().to_owned()),
            Bind::BigInt(epoch as i64),
        ],
    )
    .map(|_| ())
    .map_err(|e| db_error(d, e))
}

pub(super) fn lease<C: SqlConnection>(
    conn: &mut C,
    node: &NodeId,
) -> Result<Option<Lease>, StoreError> {
    let d = C::DIALECT;
    let rows: Vec<NodeRow> = conn
        .load(&d.node_row(), vec![Bind::Text(node.as_str().to_owned())])
        .map_err(|e| db_error(d, e))?;
    rows.first().map(|row| lease_of(d, node, row)).transpose()
}

pub(super) fn claim_keys<C: SqlConnection>(
    conn: &mut C,
    owner: &KeyOwner,
    keys: &[String],
) -> Result<Vec<KeyClaim>, StoreError> {
    let d = C::DIALECT;
    let mut answers = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(Dialect::ROWS_PER_STATEMENT) {
        let rows: Vec<ClaimRow> = transaction_with_retries(conn, |conn| {
            let epoch = Bind::BigInt(owner.epoch as i64);
            let node = Bind::Text(owner.node.as_str().to_owned());
            let source = Bind::Text(owner.source.clone());
            let inserts = chunk
                .iter()
                .flat_map(|k| {
                    [
                        Bind::Text(k.clone()),
                        node.clone(),
                        source.clone(),
                        epoch.clone(),
                    ]
                })
                .collect();
            conn.exec(&d.insert_claims(chunk.len()), inserts)?;
            let mut binds = vec![epoch.clone(), node.clone(), source.clone()];
            binds.extend(chunk.iter().map(|k| Bind::Text(k.clone())));
            conn.exec(&d.confirm_claims(chunk.len()), binds)?;
            let keys = chunk.iter().map(|k| Bind::Text(k.clone())).collect();
            Ok(conn.load(&d.select_claims(chunk.len()), keys)?)
        })?;
        for key in chunk {
            let row =
                rows.iter()
                    .find(|r| &r.ckey == key)
                    .ok_or_else(|| StoreError::Unavailable {
                        backend: d.kind(),
                        message: format!("claim {key} vanished"),
                        cause: Default::default(),
                    })?;
            answers.push(
                if row.node_id == owner.node.as_str() && row.source == owner.source {
                    KeyClaim::Ours
                } else {
                    KeyClaim::Theirs(KeyOwner {
                        node: NodeId::stored(row.node_id.clone()).map_err(|e| {
                            StoreError::Corrupt {
                                backend: d.kind(),
                                message: format!("claim {key}: {e}"),
                                cause: Default::default(),
                            }
                        })?,
                        source: row.source.clone(),
                        epoch: row.epoch as u64,
                    })
                },
            );
        }
    }
    Ok(answers)
}

pub(super) fn take_over_key<C: SqlConnection>(
    conn: &mut C,
    key: &str,
    from: &KeyOwner,
    to: &KeyOwner,
) -> Result<bool, StoreError> {
    let d = C::DIALECT;
    let moved = conn
        .exec(
            &d.move_claim(),
            vec![
                Bind::Text(to.node.as_str().to_owned()),
                Bind::Text(to.source.clone()),
                Bind::BigInt(to.epoch as i64),
                Bind::Text(key.to_owned()),
                Bind::Text(from.node.as_str().to_owned()),
                Bind::Text(from.source.clone()),
                Bind::BigInt(from.epoch as i64),
            ],
        )
        .map_err(|e| db_error(d, e))?;
    Ok(moved == 1)
}
