//! Ownership in MongoDB without transactions: every step is a compare-and-set on one document.
//!
//! A node claim reads the node's document and writes the new epoch with a filter on the epoch
//! it read; if another claim got there first, nothing matches and the claim is judged again. A
//! flush's filter names its epoch too, so once a new claim is written no flush of an older
//! epoch can match.

use authstat_core::NodeId;
use authstat_core::store::{ClaimRequest, KeyClaim, KeyOwner, NodeClaim, StoreError};
use mongodb::Collection;
use mongodb::bson::{Bson, Document, doc};

use super::codec::{self, instance_doc, int, str_field};
use super::{KIND, corrupt, is_duplicate_key, now_ms, unavailable};
use crate::rules::may_claim;

/// How often a claim is judged again when another claim changed the document meanwhile.
const CLAIM_ATTEMPTS: usize = 8;

pub(super) async fn claim_node(
    nodes: &Collection<Document>,
    request: &ClaimRequest,
) -> Result<NodeClaim, StoreError> {
    let id = request.node.as_str();
    for _ in 0..CLAIM_ATTEMPTS {
        let doc = nodes
            .find_one(doc! { "_id": id })
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))?;
        let previous = match &doc {
            Some(doc) => codec::lease(&request.node, doc)?,
            None => None,
        };
        if !may_claim(previous.as_ref(), request) {
            return Ok(NodeClaim::Refused {
                holder: previous.expect("a refusal has a holder"),
            });
        }
        let grant = doc! {
            "holder": instance_doc(&request.instance),
            "lease_until_ms": request.until_ms,
            "released": false,
        };
        let epoch = match &doc {
            None => {
                let mut new =
                    doc! { "_id": id, "seq": 0i64, "epoch": 1i64, "updated_at_ms": now_ms() };
                new.extend(grant);
                match nodes.insert_one(new).await {
                    Ok(_) => 1,
                    Err(e) if is_duplicate_key(&e) => continue,
                    Err(e) => return Err(unavailable(e.to_string())),
                }
            }
            Some(doc) => {
                let old = codec::epoch(doc)?;
                let filter = if doc.contains_key("epoch") {
                    doc! { "_id": id, "epoch": old as i64 }
                } else {
                    doc! { "_id": id, "epoch": { "$exists": false } }
                };
                let mut set = grant;
                set.insert("epoch", (old + 1) as i64);
                let result = nodes
                    .update_one(filter, doc! { "$set": set })
                    .await
                    .map_err(|e| unavailable(e.to_string()).because(e))?;
                if result.matched_count == 0 {
                    continue;
                }
                old + 1
            }
        };
        return Ok(NodeClaim::Granted { epoch, previous });
    }
    Err(unavailable(format!(
        "node {id}: the claim kept colliding with other claims"
    )))
}

pub(super) async fn claim_keys(
    claims: &Collection<Document>,
    owner: &KeyOwner,
    keys: &[String],
) -> Result<Vec<KeyClaim>, StoreError> {
    let mut answers = Vec::with_capacity(keys.len());
    for key in keys {
        answers.push(claim_key(claims, owner, key).await?);
    }
    Ok(answers)
}

async fn claim_key(
    claims: &Collection<Document>,
    owner: &KeyOwner,
    key: &str,
) -> Result<KeyClaim, StoreError> {
    let ours = doc! { "_id": key, "node": owner.node.as_str(), "source": &owner.source };
    for _ in 0..CLAIM_ATTEMPTS {
        let confirmed = claims
            .update_one(
                ours.clone(),
                doc! { "$set": { "epoch": owner.epoch as i64 } },
            )
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))?;
        if confirmed.matched_count == 1 {
            return Ok(KeyClaim::Ours);
        }
        let mut new = ours.clone();
        new.insert("epoch", owner.epoch as i64);
        match claims.insert_one(new).await {
            Ok(_) => return Ok(KeyClaim::Ours),
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(unavailable(e.to_string())),
        }
        let held = claims
            .find_one(doc! { "_id": key })
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))?;
        if let Some(held) = held {
            let node = str_field(&held, "node")?;
            return Ok(KeyClaim::Theirs(KeyOwner {
                node: NodeId::stored(node).map_err(|e| corrupt(format!("claim {key}: {e}")))?,
                source: str_field(&held, "source")?,
                epoch: match held.get("epoch") {
                    Some(Bson::Int64(_) | Bson::Int32(_)) => int(&held, "epoch")? as u64,
                    _ => 0,
                },
            }));
        }
        // Released between our insert and our read: try again.
    }
    Err(StoreError::Unavailable {
        backend: KIND,
        message: format!("claim {key} kept changing"),
        cause: Default::default(),
    })
}
