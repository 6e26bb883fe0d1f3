//! Folding silent nodes without multi-document transactions.
//!
//! A node's months move to the folded node's document (`_id` [`NodeId::folded`]) in three
//! single-document steps, each a compare-and-set, so that a fold interrupted anywhere is
//! finished by the next one and a read never counts anything twice:
//!
//! 1. **mark**: the node's document, if unchanged since it was read (same `seq` and
//!    `updated_at_ms`: no flush in between), has its `months` moved to
//!    `folding: {generation, months}` (`generation` counts the node's folds);
//! 2. **apply**: the folded document gets the union and sums, and `applied.<node> = generation`, with
//!    a filter on its `version` (another fold in between makes it try again), unless
//!    `applied.<node>` already is `generation`;
//! 3. **clear**: the node's `folding` is removed.
//!
//! A read merges every node's `months` and `folding` (unless the folded document's
//! `applied.<node>` says the folded document already holds it), and reads the folded
//! document's `version` before and after the other documents: if it changed, an apply step ran
//! during the read and the read is made again.

use authstat_core::NodeId;
use authstat_core::store::{FoldReport, FoldRequest, StoreError};
use futures_util::TryStreamExt;
use mongodb::Collection;
use mongodb::bson::{Bson, Document, doc};

use super::codec::{self, escape, int, merge_months};
use super::{KIND, corrupt, is_duplicate_key, now_ms, unavailable};
use crate::merge::Merger;

/// How often the apply step is tried when other folds changed the folded document meanwhile.
const APPLY_ATTEMPTS: usize = 16;

/// Where a test makes the next fold stop (as if the agent had crashed there).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoldFailAt {
    /// After the first node was marked.
    AfterMark,
    /// After the first node's months were applied to the folded document.
    AfterApply,
}

fn db(e: mongodb::error::Error) -> StoreError {
    unavailable(e.to_string()).because(e)
}

/// The folded document's `applied` entry for `node`.
pub(super) fn applied_gen(folded: &Document, node: &str) -> Option<i64> {
    let applied = folded.get_document("applied").ok()?;
    int(applied, &escape(node)).ok()
}

/// Creates the folded document if it does not exist.
async fn ensure_folded(nodes: &Collection<Document>) -> Result<(), StoreError> {
    let id = NodeId::folded();
    let result = nodes
        .update_one(
            doc! { "_id": id.as_str() },
            doc! { "$setOnInsert": { "seq": 0i64, "version": 0i64, "updated_at_ms": 0i64 } },
        )
        .upsert(true)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_duplicate_key(&e) => Ok(()),
        Err(e) => Err(db(e)),
    }
}

pub(super) async fn fold_silent(
    nodes: &Collection<Document>,
    request: &FoldRequest,
    fail: Option<FoldFailAt>,
) -> Result<FoldReport, StoreError> {
    let folded = NodeId::folded();
    // Candidates without their months (read one node at a time below): memory stays small.
    let mut cursor = nodes
        .find(doc! {
            "_id": { "$ne": folded.as_str() },
            "$or": [
                { "folding": { "$exists": true } },
                {
                    "updated_at_ms": { "$lt": request.silent_before_ms },
                    // Not the nodes folded before (their months are gone).
                    "months": { "$exists": true, "$ne": {} },
                },
            ],
        })
        .projection(doc! { "_id": 1 })
        .sort(doc! { "_id": 1 })
        .await
        .map_err(db)?;
    let mut ids = Vec::new();
    while let Some(doc) = cursor.try_next().await.map_err(db)? {
        let id = codec::str_field(&doc, "_id")?;
        // Foreign nodes hold snapshots (hashed by their upstream): never folded.
        if !NodeId::stored(id.as_str()).is_ok_and(|n| n.is_reserved()) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Ok(FoldReport::default());
    }
    ensure_folded(nodes).await?;
    let mut report = FoldReport::default();
    for id in ids {
        let Some(doc) = nodes.find_one(doc! { "_id": &id }).await.map_err(db)? else {
            continue;
        };
        let node = NodeId::stored(id.as_str()).map_err(|e| corrupt(e.to_string()))?;
        let (generation, months) = match doc.get_document("folding") {
            // An interrupted fold: finish it.
            Ok(folding) => (
                int(folding, "gen")?,
                folding.get_document("months").cloned().unwrap_or_default(),
            ),
            Err(_) => {
                let Some(marked) = mark(nodes, &node, &doc, request).await? else {
                    continue;
                };
                if fail == Some(FoldFailAt::AfterMark) {
                    return Err(unavailable("injected failure after marking a node"));
                }
                marked
            }
        };
        let applied = apply(nodes, &id, generation, &months).await?;
        if fail == Some(FoldFailAt::AfterApply) {
            return Err(unavailable("injected failure after applying a node"));
        }
        nodes
            .update_one(
                doc! { "_id": &id, "folding.gen": generation },
                doc! { "$unset": { "folding": "" } },
            )
            .await
            .map_err(db)?;
        // A node whose fold another agent applied first is that agent's to report.
        if applied {
            report.node_months += months.len();
            report.nodes.push(node);
        }
    }
    Ok(report)
}

/// Step 1: the node's months move to `folding` if the node is silent and its document has not
/// changed since it was read. Its fold's generation and months, or `None` when it is not to be
/// folded (not silent, or a flush or another fold came first).
async fn mark(
    nodes: &Collection<Document>,
    node: &NodeId,
    doc: &Document,
    request: &FoldRequest,
) -> Result<Option<(i64, Document)>, StoreError> {
    let months = doc.get_document("months").cloned().unwrap_or_default();
    let live = codec::lease(node, doc)?.is_some_and(|l| l.is_live(request.now_ms));
    let updated = int(doc, "updated_at_ms").unwrap_or(0);
    if months.is_empty() || live || updated >= request.silent_before_ms {
        return Ok(None);
    }
    let generation = doc
        .get("fold_gen")
        .map_or(Ok(0), |_| int(doc, "fold_gen"))?
        + 1;
    let marked = nodes
        .update_one(
            doc! {
                "_id": node.as_str(),
                "seq": doc.get("seq").cloned().unwrap_or(Bson::Null),
                "updated_at_ms": updated,
                "folding": { "$exists": false },
            },
            doc! {
                "$set": {
                    "folding": { "gen": generation, "months": months.clone() },
                    "fold_gen": generation,
                },
                "$unset": { "months": "" },
            },
        )
        .await
        .map_err(db)?;
    Ok((marked.matched_count == 1).then_some((generation, months)))
}

/// Step 2: the folded document gets `months` (a node's) unioned and summed in, once. True if
/// this call applied them, false if they had been applied before.
async fn apply(
    nodes: &Collection<Document>,
    id: &str,
    generation: i64,
    months: &Document,
) -> Result<bool, StoreError> {
    let folded = NodeId::folded();
    for _ in 0..APPLY_ATTEMPTS {
        let current = nodes
            .find_one(doc! { "_id": folded.as_str() })
            .await
            .map_err(db)?
            .ok_or_else(|| unavailable("the folded document disappeared"))?;
        if applied_gen(&current, id) == Some(generation) {
            return Ok(false);
        }
        let mut merger = Merger::new(KIND);
        if let Ok(stored) = current.get_document("months") {
            merge_months(&mut merger, folded.as_str(), stored, None)?;
        }
        merge_months(&mut merger, id, months, None)?;
        let version = int(&current, "version").unwrap_or(0);
        let updated = nodes
            .update_one(
                doc! { "_id": folded.as_str(), "version": version },
                doc! {
                    "$set": {
                        "months": months_doc(merger)?,
                        format!("applied.{}", escape(id)): generation,
                        "updated_at_ms": now_ms(),
                    },
                    "$inc": { "version": 1i64, "seq": 1i64 },
                },
            )
            .await
            .map_err(db)?;
        if updated.matched_count == 1 {
            return Ok(true);
        }
    }
    Err(unavailable(
        "other folds kept changing the folded document; the next fold finishes this one",
    ))
}

/// Merged months as a `months` sub-document.
fn months_doc(merger: Merger) -> Result<Document, StoreError> {
    let mut out = Document::new();
    for month in merger.finish() {
        out.insert(month.month.to_string(), codec::month_doc(&month)?);
    }
    Ok(out)
}
