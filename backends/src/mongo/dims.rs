//! Clients and realms in MongoDB, without multi-document transactions.
//!
//! A node's dimensions of a month live in [`BUCKETS`] documents of `<collection>_dims`
//! (`{_id: "<node>|<yyyyMM>|<bucket>", n, m, s, v, d: {<dim>: {h: BinData, c: {<counter>: n}}}}`,
//! a dimension's bucket by a hash of its text), so that no document nears MongoDB's 16 MiB
//! limit (10,000 clients of at most 1.3 KiB each spread over 16 documents). A flush, in steps:
//!
//! 0. **users**: each bucket document gets the users seen unioned into its dimensions' HLLs
//!    (compare-and-set on `v`). Before the node's update: a union is idempotent, so users of a
//!    flush that then fails are stored early, never twice (they are read again and unioned
//!    again);
//! 1. the node's update (the flush itself: `seq`, positions, months) carries the counter
//!    increments as `pending: {seq, c: {<month>: {<bucket>: {<dim>: {<counter>: n}}}}}`,
//!    atomically with everything else, and only when no earlier `pending` is left;
//! 2. **apply**: each bucket document gets the increments (`$inc`) and `s: seq`, only if its `s`
//!    is below `seq` (a retry adds nothing twice: a node's applied `seq`s only grow); then the
//!    roll-up of the month and bucket (`<collection>_dims_rollup`, `{_id: "<yyyyMM>|<bucket>",
//!    m, seqs: {<node>: seq}, v, d}`) gets the node's bucket users unioned and the increments
//!    added, unless its `seqs` hold the flush already (compare-and-set on `v`);
//! 3. **clear**: the node's `pending` is removed (if it is still this `seq`'s).
//!
//! Every step is guarded, so anyone may finish an interrupted flush: the next flush, the node's
//! next start, and readers, which finish every pending flush they find before they read the
//! roll-up (a read costs one roll-up document per month and bucket, whatever the number of
//! nodes). A node's own dimensions (`node_dims`) are its bucket documents plus its pending
//! increments. Dimensions are not folded (the roll-up does not need it).

use std::collections::BTreeMap;

use authstat_core::counters::{CounterKey, Counters};
use authstat_core::dims::{Dim, DimFlush, DimKind, DimStats, MonthDims, dim_params};
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{FlushBatch, StoreError};
use authstat_core::{Month, NodeId};
use futures_util::TryStreamExt;
use mongodb::Collection;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, Document, doc};

use super::codec::{counter_field, escape, int, parse_counter_field, unescape};
use super::{MongoStore, corrupt, is_duplicate_key, unavailable};
use crate::merge::Merger;

/// Bucket documents per node and month.
pub(super) const BUCKETS: u32 = 16;

/// How often a compare-and-set of a bucket's users is tried when another write got between.
pub(super) const ATTEMPTS: usize = 16;

pub(super) fn db(e: mongodb::error::Error) -> StoreError {
    unavailable(e.to_string()).because(e)
}

/// A dimension's bucket: FNV-1a of its text.
fn bucket(dim: &Dim) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in dim.as_str().bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h % BUCKETS
}

pub(super) fn bucket_id(node: &NodeId, month: Month, bucket: u32) -> String {
    format!("{}|{}|{bucket}", escape(node.as_str()), month)
}

fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    })
}

pub(super) fn hll_bytes(month: Month, dim: &Dim, hll: &Hll) -> Result<Bson, StoreError> {
    hll.to_bytes()
        .map(binary)
        .map_err(|e| StoreError::Rejected {
            backend: super::KIND,
            message: format!("month {month} dimension {dim}: {e}"),
        })
}

/// A flush's dimensions of `month`, by bucket.
fn by_bucket(dims: &[DimFlush]) -> BTreeMap<u32, Vec<&DimFlush>> {
    let mut out: BTreeMap<u32, Vec<&DimFlush>> = BTreeMap::new();
    for f in dims {
        out.entry(bucket(&f.dim)).or_default().push(f);
    }
    out
}

/// The `pending` document of a flush (counter increments by month, bucket and dimension; every
/// bucket the flush touched is listed, with no increments if it only saw users), or `None`
/// when the flush has no dimensions.
pub(super) fn pending_of(batch: &FlushBatch, seq: i64) -> Result<Option<Document>, StoreError> {
    let mut months = Document::new();
    for flush in &batch.months {
        let mut buckets = Document::new();
        for (b, dims) in by_bucket(&flush.dims) {
            let mut of_bucket = Document::new();
            // Every dimension the flush touched (its users go to the roll-up too), with its
            // counter increments (none for a day).
            for f in dims {
                let mut counters = Document::new();
                for (key, n) in f.counter_deltas.iter() {
                    let (kind, k1, k2) = key.parts();
                    let n = i64::try_from(n).map_err(|_| StoreError::Rejected {
                        backend: super::KIND,
                        message: format!("counter delta {n} does not fit an Int64"),
                    })?;
                    counters.insert(counter_field(kind, k1, k2), n);
                }
                of_bucket.insert(escape(f.dim.as_str()), counters);
            }
            buckets.insert(b.to_string(), of_bucket);
        }
        if !buckets.is_empty() {
            months.insert(flush.month.to_string(), buckets);
        }
    }
    Ok((!months.is_empty()).then(|| doc! { "seq": seq, "c": months }))
}

/// The stored dimensions of a bucket document's `d`.
pub(super) fn dims_of(month: Month, doc: &Document) -> Result<BTreeMap<Dim, DimStats>, StoreError> {
    let mut out = BTreeMap::new();
    let Ok(d) = doc.get_document("d") else {
        return Ok(out);
    };
    for (field, value) in d {
        let bad = |why: String| corrupt(format!("dimension {field} of {month}: {why}"));
        let dim = unescape(field)
            .ok_or_else(|| bad("not escaped".into()))
            .and_then(|s| Dim::parse(&s).map_err(|e| bad(e.to_string())))?;
        let Bson::Document(entry) = value else {
            return Err(bad("not a document".into()));
        };
        let users = match entry.get("h") {
            Some(Bson::Binary(b)) => Hll::from_bytes(&b.bytes).map_err(|e| bad(e.to_string()))?,
            _ => Hll::new(dim_params(&HllParams::janssen())),
        };
        let mut counters = Counters::default();
        if let Ok(c) = entry.get_document("c") {
            add_counters(&mut counters, c).map_err(bad)?;
        }
        out.insert(dim, DimStats { users, counters });
    }
    Ok(out)
}

pub(super) fn add_counters(counters: &mut Counters, c: &Document) -> Result<(), String> {
    for (field, n) in c {
        let (kind, k1, k2) = parse_counter_field(field).ok_or(format!("counter {field}"))?;
        let key = CounterKey::from_parts(&kind, &k1, &k2).map_err(|e| e.to_string())?;
        let n = match n {
            Bson::Int64(v) => *v,
            Bson::Int32(v) => i64::from(*v),
            _ => return Err(format!("counter {field} is not an integer")),
        };
        counters.add(&key, u64::try_from(n).unwrap_or(0));
    }
    Ok(())
}

impl MongoStore {
    /// Step 0: the users a flush saw, unioned into its buckets' HLLs.
    pub(super) async fn add_dim_users(&self, batch: &FlushBatch) -> Result<(), StoreError> {
        for flush in batch.months.iter().filter(|m| !m.dims.is_empty()) {
            let month = flush.month;
            for (b, dims) in by_bucket(&flush.dims) {
                let id = bucket_id(&batch.node, month, b);
                // Only the flushed dimensions are read (a bucket holds many).
                let mut fields = doc! { "v": 1 };
                for f in &dims {
                    fields.insert(format!("d.{}.h", escape(f.dim.as_str())), 1);
                }
                let mut done = false;
                for _ in 0..ATTEMPTS {
                    let stored = self
                        .dims
                        .find_one(doc! { "_id": &id })
                        .projection(fields.clone())
                        .await
                        .map_err(db)?;
                    let version = stored.as_ref().map_or(0, |d| int(d, "v").unwrap_or(0));
                    let mut have = match &stored {
                        Some(doc) => dims_of(month, doc)?,
                        None => BTreeMap::new(),
                    };
                    let mut set = doc! { "v": version + 1 };
                    for f in &dims {
                        let users = match have.remove(&f.dim) {
                            Some(mut stats) => {
                                stats
                                    .add(&f.users, &Counters::default())
                                    .map_err(|e| corrupt(e.to_string()))?;
                                stats.users
                            }
                            None => f.users.clone(),
                        };
                        set.insert(
                            format!("d.{}.h", escape(f.dim.as_str())),
                            hll_bytes(month, &f.dim, &users)?,
                        );
                    }
                    if stored.is_none() {
                        let fresh = doc! {
                            "_id": &id, "n": batch.node.as_str(),
                            "m": i64::from(month.yyyymm()), "s": 0i64, "v": 0i64,
                        };
                        match self.dims.insert_one(fresh).await {
                            Ok(_) => {}
                            Err(e) if is_duplicate_key(&e) => {}
                            Err(e) => return Err(db(e)),
                        }
                    }
                    let updated = self
                        .dims
                        .update_one(doc! { "_id": &id, "v": version }, doc! { "$set": set })
                        .await
                        .map_err(db)?;
                    if updated.matched_count == 1 {
                        done = true;
                        break;
                    }
                }
                if !done {
                    return Err(unavailable(format!(
                        "the users of {id} changed under {ATTEMPTS} attempts to add to them"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Steps 2 and 3: the node's `pending` increments applied to its buckets, then cleared.
    pub(super) async fn finish_pending(
        &self,
        node: &NodeId,
        pending: &Document,
    ) -> Result<(), StoreError> {
        let seq = int(pending, "seq")?;
        let months = pending
            .get_document("c")
            .map_err(|e| corrupt(e.to_string()))?;
        for (month, buckets) in months {
            let month: Month = month
                .parse()
                .map_err(|_| corrupt(format!("pending month {month}")))?;
            let Bson::Document(buckets) = buckets else {
                return Err(corrupt(format!("pending {month} is not a document")));
            };
            for (b, dims) in buckets {
                let b: u32 = b
                    .parse()
                    .map_err(|_| corrupt(format!("pending bucket {b}")))?;
                let Bson::Document(dims) = dims else {
                    return Err(corrupt(format!("pending bucket {b} is not a document")));
                };
                let mut inc = Document::new();
                for (dim, counters) in dims {
                    let Bson::Document(counters) = counters else {
                        return Err(corrupt(format!("pending {dim} is not a document")));
                    };
                    for (field, n) in counters {
                        inc.insert(format!("d.{dim}.c.{field}"), n.clone());
                    }
                }
                let mut update = doc! { "$set": { "s": seq } };
                if !inc.is_empty() {
                    update.insert("$inc", inc);
                }
                self.dims
                    .update_one(
                        doc! { "_id": bucket_id(node, month, b), "s": { "$lt": seq } },
                        update,
                    )
                    .await
                    .map_err(db)?;
                self.add_to_rollup(node, month, b, seq, dims).await?;
            }
        }
        self.collection
            .update_one(
                doc! { "_id": node.as_str(), "pending.seq": seq },
                doc! { "$unset": { "pending": "" } },
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Removes the days of the months before `month` from every bucket document.
    pub(super) async fn drop_days(&self, month: Month) -> Result<u64, StoreError> {
        let mut dropped = 0;
        for collection in [&self.dims, &self.dims_rollup] {
            dropped += drop_days_in(collection, month).await?;
        }
        Ok(dropped)
    }
}

/// Removes the days of the months before `month` from every document of `collection`.
async fn drop_days_in(collection: &Collection<Document>, month: Month) -> Result<u64, StoreError> {
    {
        let mut cursor = collection
            .find(doc! { "m": { "$lt": i64::from(month.yyyymm()) } })
            .projection(doc! { "d": 1 })
            .await
            .map_err(db)?;
        let mut dropped = 0;
        while let Some(doc) = cursor.try_next().await.map_err(db)? {
            let Ok(d) = doc.get_document("d") else {
                continue;
            };
            let mut unset = Document::new();
            for field in d
                .keys()
                .filter(|f| f.starts_with("d:") || f.starts_with("e:"))
            {
                unset.insert(format!("d.{field}"), "");
            }
            if unset.is_empty() {
                continue;
            }
            dropped += unset.len() as u64;
            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
            collection
                .update_one(doc! { "_id": id }, doc! { "$unset": unset })
                .await
                .map_err(db)?;
        }
        Ok(dropped)
    }
}

impl MongoStore {
    /// Finishes the node's pending increments, if its document has any.
    pub(super) async fn finish_pending_of(
        &self,
        node: &NodeId,
        doc: &Document,
    ) -> Result<(), StoreError> {
        match doc.get_document("pending") {
            Ok(pending) => self.finish_pending(node, pending).await,
            Err(_) => Ok(()),
        }
    }

    /// The stored dimensions of `months`: of one node (`node`), or merged over every node.
    pub(super) async fn read_dim_docs(
        &self,
        node: Option<&NodeId>,
        months: &[Month],
        kind: Option<DimKind>,
    ) -> Result<Vec<MonthDims>, StoreError> {
        // The nodes' pending increments first (see the module docs: read in this order, a
        // bucket that already holds them says so by its `s`).
        let mut filter = doc! { "pending": { "$exists": true } };
        if let Some(node) = node {
            filter.insert("_id", node.as_str());
        }
        let mut pendings: BTreeMap<String, Document> = BTreeMap::new();
        let mut cursor = self
            .collection
            .find(filter)
            .projection(doc! { "pending": 1 })
            .await
            .map_err(db)?;
        while let Some(doc) = cursor.try_next().await.map_err(db)? {
            let id = super::codec::str_field(&doc, "_id")?;
            if let Ok(p) = doc.get_document("pending") {
                pendings.insert(escape(&id), p.clone());
            }
        }
        let yyyymm: Vec<i64> = months.iter().map(|m| i64::from(m.yyyymm())).collect();
        let mut filter = doc! { "m": { "$in": yyyymm } };
        if let Some(node) = node {
            filter.insert("n", node.as_str());
        }
        let mut cursor = self.dims.find(filter).await.map_err(db)?;
        let merger = Merger::new(super::KIND);
        let mut out: BTreeMap<Month, MonthDims> = BTreeMap::new();
        while let Some(doc) = cursor.try_next().await.map_err(db)? {
            let month = merger.month(int(&doc, "m")?)?;
            let id = super::codec::str_field(&doc, "_id")?;
            let (owner, b) = id
                .rsplit_once('|')
                .and_then(|(rest, b)| Some((rest.rsplit_once('|')?.0, b)))
                .ok_or_else(|| corrupt(format!("bucket id {id}")))?;
            let mut dims = dims_of(month, &doc)?;
            if let Some(p) = pendings.get(owner)
                && int(&doc, "s")? < int(p, "seq")?
                && let Ok(c) = p
                    .get_document("c")
                    .and_then(|c| c.get_document(month.to_string()))
                    .and_then(|m| m.get_document(b))
            {
                for (dim, counters) in c {
                    let dim = unescape(dim)
                        .and_then(|s| Dim::parse(&s).ok())
                        .ok_or_else(|| corrupt(format!("pending dimension {dim}")))?;
                    let Bson::Document(counters) = counters else {
                        return Err(corrupt(format!("pending {dim} is not a document")));
                    };
                    let stats = dims
                        .entry(dim)
                        .or_insert_with(|| DimStats::new(dim_params(&HllParams::janssen())));
                    add_counters(&mut stats.counters, counters).map_err(corrupt)?;
                }
            }
            let into = out.entry(month).or_insert_with(|| MonthDims::new(month));
            for (dim, stats) in dims {
                if kind.is_none_or(|k| k == dim.kind()) {
                    into.add(&dim, &stats).map_err(|e| corrupt(e.to_string()))?;
                }
            }
        }
        Ok(out.into_values().filter(|m| !m.dims.is_empty()).collect())
    }
}
