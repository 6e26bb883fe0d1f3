//! Reading merged months: every node's documents and the folded one, read again when a fold
//! applied during the read.

use super::*;

/// How often a read is made again because a fold changed the data during it.
pub(super) const READ_ATTEMPTS: usize = 5;

impl MongoStore {
    /// One read of `months` (see `fold.rs`): `None` if a fold's apply step ran during it.
    pub(super) async fn read_once(
        &self,
        months: &[Month],
    ) -> Result<Option<Vec<MonthStats>>, StoreError> {
        let folded = NodeId::folded();
        let mut of_folded = doc! { "applied": 1, "version": 1 };
        let mut of_nodes = doc! { "folding.gen": 1 };
        for m in months {
            of_folded.insert(format!("months.{m}"), 1);
            of_nodes.insert(format!("months.{m}"), 1);
            of_nodes.insert(format!("folding.months.{m}"), 1);
        }
        let before = self
            .collection
            .find_one(doc! { "_id": folded.as_str() })
            .projection(of_folded)
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))?;
        let mut cursor = self
            .collection
            .find(doc! { "_id": { "$ne": folded.as_str() } })
            .projection(of_nodes)
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))?;
        let mut merger = Merger::new(KIND);
        // Months of interrupted or running folds, merged unless the folded document has them.
        let mut folding = Vec::new();
        while let Some(doc) = cursor
            .try_next()
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))?
        {
            let node = doc.get_str("_id").unwrap_or("?").to_owned();
            if let Ok(stored) = doc.get_document("months") {
                merge_months(&mut merger, &node, stored, Some(months))?;
            }
            if let Ok(pending) = doc.get_document("folding") {
                let generation = int(pending, "gen")?;
                let stored = pending.get_document("months").cloned().unwrap_or_default();
                folding.push((node, generation, stored));
            }
        }
        let after = self
            .collection
            .find_one(doc! { "_id": folded.as_str() })
            .projection(doc! { "version": 1 })
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))?;
        let version = |d: &Option<Document>| d.as_ref().map(|d| int(d, "version").unwrap_or(0));
        if version(&before) != version(&after) {
            return Ok(None);
        }
        if let Some(stored) = before.as_ref().and_then(|b| b.get_document("months").ok()) {
            merge_months(&mut merger, folded.as_str(), stored, Some(months))?;
        }
        for (node, generation, stored) in folding {
            let applied = before.as_ref().and_then(|b| fold::applied_gen(b, &node));
            if applied != Some(generation) {
                merge_months(&mut merger, &node, &stored, Some(months))?;
            }
        }
        Ok(Some(merger.finish()))
    }

    pub(super) async fn node_doc(&self, node: &NodeId) -> Result<Option<Document>, StoreError> {
        self.collection
            .find_one(doc! { "_id": node.as_str() })
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))
    }
}
