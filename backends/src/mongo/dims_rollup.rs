//! The roll-up of clients, realms and days in MongoDB (`<collection>_dims_rollup`, per month
//! and bucket: `{_id: "<yyyyMM>|<bucket>", m, seqs: {<node>: seq}, v, d}`), kept in step 2 of a
//! flush (`dims.rs`) and read by reads of all nodes.

use std::collections::BTreeMap;

use authstat_core::counters::Counters;
use authstat_core::dims::{Dim, DimKind, DimStats, MonthDims, dim_params};
use authstat_core::hll::HllParams;
use authstat_core::store::StoreError;
use authstat_core::{Month, NodeId};
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};

use super::codec::{counter_field, escape, int, unescape};
use super::dims::{ATTEMPTS, add_counters, bucket_id, db, dims_of, hll_bytes};
use super::{MongoStore, corrupt, is_duplicate_key, unavailable};
use crate::merge::Merger;

/// The flushed dimensions of a roll-up document (`stored`) with the node's bucket users
/// (`ours`) unioned and the flush's increments (`counters`, by escaped dimension) added.
fn merge_flushed(
    month: Month,
    stored: Option<&Document>,
    ours: Option<&Document>,
    counters: &Document,
) -> Result<BTreeMap<Dim, DimStats>, StoreError> {
    let mut rolled = stored
        .map(|d| dims_of(month, d))
        .transpose()?
        .unwrap_or_default();
    for (dim, stats) in ours
        .map(|d| dims_of(month, d))
        .transpose()?
        .unwrap_or_default()
    {
        let into = rolled
            .entry(dim)
            .or_insert_with(|| DimStats::new(*stats.users.params()));
        into.add(&stats.users, &Counters::default())
            .map_err(|e| corrupt(e.to_string()))?;
    }
    for (field, deltas) in counters {
        let dim = unescape(field)
            .and_then(|s| Dim::parse(&s).ok())
            .ok_or_else(|| corrupt(format!("pending dimension {field}")))?;
        let Bson::Document(deltas) = deltas else {
            return Err(corrupt(format!("pending {dim} is not a document")));
        };
        let into = rolled
            .entry(dim)
            .or_insert_with(|| DimStats::new(dim_params(&HllParams::janssen())));
        add_counters(&mut into.counters, deltas).map_err(corrupt)?;
    }
    Ok(rolled)
}

/// The stored form of dimensions (`d`'s fields).
fn dims_doc(month: Month, rolled: &BTreeMap<Dim, DimStats>) -> Result<Document, StoreError> {
    let mut d = Document::new();
    for (dim, stats) in rolled {
        let mut c = Document::new();
        for (key, n) in stats.counters.iter() {
            let (kind, k1, k2) = key.parts();
            c.insert(
                counter_field(kind, k1, k2),
                i64::try_from(n).unwrap_or(i64::MAX),
            );
        }
        d.insert(
            escape(dim.as_str()),
            doc! { "h": hll_bytes(month, dim, &stats.users)?, "c": c },
        );
    }
    Ok(d)
}

impl MongoStore {
    /// Step 2b: the node's bucket added to the roll-up of its month and bucket (its users, as
    /// stored now, unioned; `counters`, the flush's increments, added), unless the roll-up
    /// holds the node's flush `seq` already. Compare-and-set on `v`.
    pub(super) async fn add_to_rollup(
        &self,
        node: &NodeId,
        month: Month,
        bucket: u32,
        seq: i64,
        counters: &Document,
    ) -> Result<(), StoreError> {
        let id = format!("{month}|{bucket}");
        let who = escape(node.as_str());
        // Only the flushed dimensions are read and written (a bucket holds many).
        let mut node_fields = Document::new();
        for field in counters.keys() {
            node_fields.insert(format!("d.{field}"), 1);
        }
        let mut fields = node_fields.clone();
        fields.insert("seqs", 1);
        fields.insert("v", 1);
        for _ in 0..ATTEMPTS {
            let stored = self
                .dims_rollup
                .find_one(doc! { "_id": &id })
                .projection(fields.clone())
                .await
                .map_err(db)?;
            let seqs = stored
                .as_ref()
                .and_then(|d| d.get_document("seqs").ok().cloned())
                .unwrap_or_default();
            if int(&seqs, &who).is_ok_and(|applied| applied >= seq) {
                return Ok(());
            }
            let ours = self
                .dims
                .find_one(doc! { "_id": bucket_id(node, month, bucket) })
                .projection(node_fields.clone())
                .await
                .map_err(db)?;
            let rolled = merge_flushed(month, stored.as_ref(), ours.as_ref(), counters)?;
            let d = dims_doc(month, &rolled)?;
            let written = match &stored {
                None => {
                    let fresh = doc! {
                        "_id": &id, "m": i64::from(month.yyyymm()), "seqs": { &who: seq },
                        "v": 1i64, "d": d,
                    };
                    match self.dims_rollup.insert_one(fresh).await {
                        Ok(_) => true,
                        Err(e) if is_duplicate_key(&e) => false,
                        Err(e) => return Err(db(e)),
                    }
                }
                Some(doc) => {
                    let version = int(doc, "v").unwrap_or(0);
                    let mut set = doc! { format!("seqs.{who}"): seq, "v": version + 1 };
                    for (field, value) in d {
                        set.insert(format!("d.{field}"), value);
                    }
                    self.dims_rollup
                        .update_one(doc! { "_id": &id, "v": version }, doc! { "$set": set })
                        .await
                        .map_err(db)?
                        .matched_count
                        == 1
                }
            };
            if written {
                return Ok(());
            }
        }
        Err(unavailable(format!(
            "the roll-up {id} changed under {ATTEMPTS} attempts to add to it"
        )))
    }

    /// Finishes every node's pending increments (anyone may: each step is guarded), so that the
    /// roll-up holds every applied flush; then the roll-up's dimensions of `months`.
    pub(super) async fn read_rolled_dims(
        &self,
        months: &[Month],
        kind: DimKind,
    ) -> Result<Vec<MonthDims>, StoreError> {
        let mut cursor = self
            .collection
            .find(doc! { "pending": { "$exists": true } })
            .projection(doc! { "pending": 1 })
            .await
            .map_err(db)?;
        let mut pending = Vec::new();
        while let Some(doc) = cursor.try_next().await.map_err(db)? {
            pending.push(doc);
        }
        for doc in pending {
            let id = super::codec::str_field(&doc, "_id")?;
            let node = NodeId::stored(id).map_err(|e| corrupt(e.to_string()))?;
            self.finish_pending_of(&node, &doc).await?;
        }
        let yyyymm: Vec<i64> = months.iter().map(|m| i64::from(m.yyyymm())).collect();
        let mut cursor = self
            .dims_rollup
            .find(doc! { "m": { "$in": yyyymm } })
            .await
            .map_err(db)?;
        let merger = Merger::new(super::KIND);
        let mut out: BTreeMap<Month, MonthDims> = BTreeMap::new();
        while let Some(doc) = cursor.try_next().await.map_err(db)? {
            let month = merger.month(int(&doc, "m")?)?;
            let into = out.entry(month).or_insert_with(|| MonthDims::new(month));
            for (dim, stats) in dims_of(month, &doc)? {
                if dim.kind() == kind {
                    into.add(&dim, &stats).map_err(|e| corrupt(e.to_string()))?;
                }
            }
        }
        Ok(out.into_values().filter(|m| !m.dims.is_empty()).collect())
    }
}
