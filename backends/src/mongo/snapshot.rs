//! Snapshots of foreign nodes (Janssen's rows): a node's months replaced when the stored
//! version is not newer, by compare-and-set.

use super::*;

impl MongoStore {
    /// Applies `snapshot` unless a newer version is stored.
    pub(super) async fn snapshot_cas(
        &self,
        snapshot: &Snapshot,
    ) -> Result<SnapshotOutcome, StoreError> {
        crate::rules::check_snapshot(KIND, snapshot)?;
        let mut set = doc! { "updated_at_ms": now_ms(), "version": snapshot.version };
        // A fresh `seq` for each month: the roll-up holding the month's old content is no longer
        // current (`rollup.rs`).
        let fresh = -(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)));
        for month in &snapshot.months {
            let mut stored = codec::month_doc(month)?;
            stored.insert("seq", fresh);
            set.insert(format!("months.{}", month.month), stored);
        }
        let db = |e: mongodb::error::Error| unavailable(e.to_string()).because(e);
        let node = snapshot.node.as_str();
        // Replace the months if the stored version is not newer; create the document if there
        // is none (a racing creator makes the insert fail: then the update decides).
        for _ in 0..8 {
            let updated = self
                .collection
                .update_one(
                    doc! { "_id": node, "version": { "$lte": snapshot.version } },
                    doc! { "$set": set.clone(), "$inc": { "seq": 1_i64 } },
                )
                .await
                .map_err(db)?;
            if updated.matched_count == 1 {
                return Ok(SnapshotOutcome::Applied);
            }
            // Not applied: a newer version is stored (stale), or the document was created by an
            // older snapshot since the update looked (try again), or there is none yet.
            if let Some(stored) = self.node_doc(&snapshot.node).await? {
                if codec::int(&stored, "version").unwrap_or(i64::MIN) > snapshot.version {
                    return Ok(SnapshotOutcome::Stale);
                }
                continue;
            }
            let mut months = Document::new();
            for month in &snapshot.months {
                let mut stored = codec::month_doc(month)?;
                stored.insert("seq", fresh);
                months.insert(month.month.to_string(), stored);
            }
            let created = doc! {
                "_id": node, "seq": 1_i64, "updated_at_ms": now_ms(),
                "version": snapshot.version, "months": months,
            };
            match self.collection.insert_one(created).await {
                Ok(_) => return Ok(SnapshotOutcome::Applied),
                Err(e) if is_duplicate_key(&e) => continue,
                Err(e) => return Err(db(e)),
            }
        }
        Err(unavailable(format!(
            "the snapshot of {node} kept racing another writer; try again"
        )))
    }
}
