//! The cluster roll-up in MongoDB (`crate::rollup` for what it holds), within
//! compare-and-set steps: MongoDB applies a flush to the node's document in one update, and
//! the roll-up's month is another document, so the two cannot change together.
//!
//! Every month of a node's document carries the `seq` of the write that last changed it
//! (`months.<m>.seq`; a snapshot: a fresh value). A roll-up document
//! (`<collection>_rollup`: `{_id: yyyyMM, hll, f, c, seqs, version}`) records the `seqs` of
//! the nodes' months it holds. It is current when they are the month's `seqs` now:
//!
//! - a flush, once its node's update is applied, adds itself to each of its months' roll-up
//!   (union, counter deltas, its node's `seq`), by compare-and-set on `version`, unless the
//!   roll-up already holds that `seq`; it never creates a roll-up document;
//! - a read compares the `seqs`; a month whose roll-up is missing or not current (a flush whose
//!   second step did not happen, a snapshot, a fold, documents stored before roll-ups) is read
//!   from the node documents as before and its roll-up written anew (compare-and-set: a write
//!   racing it makes it give up; the next read tries again);
//! - snapshots rebuild their months at once, so that readers do not.

use std::collections::BTreeMap;

use authstat_core::counters::{CounterKey, Counters};
use authstat_core::hll::Hll;
use authstat_core::store::{FlushBatch, StoreError};
use authstat_core::{Month, MonthStats};
use futures_util::TryStreamExt;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, Document, doc};

use super::codec::{counter_field, escape, int, parse_counter_field};
use super::{MongoStore, corrupt, is_duplicate_key, unavailable};
use crate::rollup::Rolled;

/// Node → the `seq` of the write that last changed its month (-1: written before roll-ups).
type Seqs = BTreeMap<String, i64>;

fn db(e: mongodb::error::Error) -> StoreError {
    unavailable(e.to_string()).because(e)
}

fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    })
}

fn hll_of(doc: &Document, key: &str) -> Result<Option<Hll>, StoreError> {
    match doc.get(key) {
        Some(Bson::Binary(b)) => Hll::from_bytes(&b.bytes)
            .map(Some)
            .map_err(|e| corrupt(format!("roll-up {key}: {e}"))),
        _ => Ok(None),
    }
}

fn seqs_of(doc: &Document) -> Seqs {
    doc.get_document("seqs")
        .map(|s| {
            s.iter()
                .filter_map(|(k, v)| match v {
                    Bson::Int64(v) => Some((k.clone(), *v)),
                    Bson::Int32(v) => Some((k.clone(), i64::from(*v))),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A roll-up document's month, as stored.
fn rolled_of(doc: &Document) -> Result<Rolled, StoreError> {
    let mut counters = Counters::default();
    if let Ok(c) = doc.get_document("c") {
        for (field, value) in c {
            let (kind, k1, k2) = parse_counter_field(field)
                .ok_or_else(|| corrupt(format!("roll-up counter field {field}")))?;
            let key = CounterKey::from_parts(&kind, &k1, &k2)
                .map_err(|e| corrupt(format!("roll-up counter {field}: {e}")))?;
            let value = match value {
                Bson::Int64(v) => *v,
                Bson::Int32(v) => i64::from(*v),
                other => return Err(corrupt(format!("roll-up counter {field}: {other:?}"))),
            };
            counters.add(&key, u64::try_from(value).unwrap_or(0));
        }
    }
    Ok(Rolled {
        users: hll_of(doc, "hll")?,
        foreign: hll_of(doc, "f")?,
        counters,
        clients: hll_of(doc, "k")?,
        mixed: false,
        version: int(doc, "version").unwrap_or(0) as u64,
    })
}

fn doc_of(month: Month, rolled: &Rolled, seqs: &Seqs) -> Result<Document, StoreError> {
    let bytes = |h: &Option<Hll>| -> Result<Bson, StoreError> {
        Ok(match h {
            Some(h) => binary(
                h.to_bytes()
                    .map_err(|e| corrupt(format!("roll-up of {month}: {e}")))?,
            ),
            None => Bson::Null,
        })
    };
    let mut c = Document::new();
    for (key, value) in rolled.counters.iter() {
        let (kind, k1, k2) = key.parts();
        c.insert(
            counter_field(kind, k1, k2),
            i64::try_from(value).unwrap_or(i64::MAX),
        );
    }
    let mut s = Document::new();
    for (node, seq) in seqs {
        s.insert(node.clone(), *seq);
    }
    Ok(doc! {
        "_id": i64::from(month.yyyymm()),
        "hll": bytes(&rolled.users)?,
        "f": bytes(&rolled.foreign)?,
        "k": bytes(&rolled.clients)?,
        "c": c,
        "seqs": s,
        "version": rolled.version as i64,
    })
}

impl MongoStore {
    /// The `seqs` of `months` now (every node's document that has the month), and whether a
    /// fold is under way.
    async fn seqs_now(
        &self,
        months: &[Month],
    ) -> Result<(BTreeMap<Month, Seqs>, bool), StoreError> {
        let mut projection = doc! { "folding.gen": 1 };
        for m in months {
            projection.insert(format!("months.{m}.seq"), 1);
        }
        let mut cursor = self
            .collection
            .find(doc! {})
            .projection(projection)
            .await
            .map_err(db)?;
        let mut out: BTreeMap<Month, Seqs> = months.iter().map(|m| (*m, Seqs::new())).collect();
        let mut folding = false;
        while let Some(doc) = cursor.try_next().await.map_err(db)? {
            folding |= doc.get_document("folding").is_ok();
            let node = escape(doc.get_str("_id").unwrap_or("?"));
            let Ok(stored) = doc.get_document("months") else {
                continue;
            };
            for m in months {
                if let Ok(month) = stored.get_document(m.to_string()) {
                    let seq = int(month, "seq").unwrap_or(-1);
                    out.get_mut(m).expect("listed").insert(node.clone(), seq);
                }
            }
        }
        Ok((out, folding))
    }

    /// The roll-up documents of `months` (every one when empty), whole or only their `seqs`
    /// and `version`.
    async fn rollup_docs(
        &self,
        months: &[Month],
        whole: bool,
    ) -> Result<BTreeMap<Month, Document>, StoreError> {
        let ids: Vec<i64> = months.iter().map(|m| i64::from(m.yyyymm())).collect();
        let filter = if ids.is_empty() {
            doc! {}
        } else {
            doc! { "_id": { "$in": ids } }
        };
        let find = self.rollup.find(filter);
        let find = if whole {
            find
        } else {
            find.projection(doc! { "seqs": 1, "version": 1 })
        };
        let mut cursor = find.await.map_err(db)?;
        let mut out = BTreeMap::new();
        while let Some(doc) = cursor.try_next().await.map_err(db)? {
            let id = int(&doc, "_id")?;
            let month = u32::try_from(id)
                .ok()
                .and_then(|m| Month::from_yyyymm(m).ok())
                .ok_or_else(|| corrupt(format!("roll-up month {id}")))?;
            out.insert(month, doc);
        }
        Ok(out)
    }

    /// `months` merged over all nodes: from their roll-up where it is current, else from the
    /// node documents (and the roll-up written anew).
    pub(super) async fn read_rolled(
        &self,
        months: &[Month],
    ) -> Result<Vec<MonthStats>, StoreError> {
        let (seqs, folding) = self.seqs_now(months).await?;
        let docs = self.rollup_docs(months, true).await?;
        let mut out = Vec::new();
        let mut stale = Vec::new();
        for m in months {
            let current = docs.get(m).filter(|d| !folding && seqs_of(d) == seqs[m]);
            match current {
                Some(doc) => out.push(rolled_of(doc)?.stats(*m)),
                // Nobody wrote the month.
                None if seqs[m].is_empty() && !folding => {}
                None => stale.push(*m),
            }
        }
        if !stale.is_empty() {
            out.extend(self.rebuild(&stale, &docs).await?);
            out.sort_by_key(|s| s.month);
        }
        Ok(out)
    }

    /// `months` read from the node documents, and their roll-ups written anew where nothing
    /// changed them meanwhile.
    async fn rebuild(
        &self,
        months: &[Month],
        before: &BTreeMap<Month, Document>,
    ) -> Result<Vec<MonthStats>, StoreError> {
        for _ in 0..super::read::READ_ATTEMPTS {
            let (seqs, folding) = self.seqs_now(months).await?;
            let Some(merged) = self.read_once(months).await? else {
                continue;
            };
            let (after, still_folding) = self.seqs_now(months).await?;
            if !folding && !still_folding && after == seqs {
                for stats in &merged {
                    self.store_rolled(stats, &seqs[&stats.month], before.get(&stats.month))
                        .await?;
                }
            }
            return Ok(merged);
        }
        Err(unavailable(
            "folds kept changing the data during the read; try again",
        ))
    }

    /// Writes `stats` as the roll-up of its month holding `seqs`, unless the roll-up changed
    /// since `before` was read (a racing write: the next read tries again).
    async fn store_rolled(
        &self,
        stats: &MonthStats,
        seqs: &Seqs,
        before: Option<&Document>,
    ) -> Result<(), StoreError> {
        let version = before.map_or(0, |d| int(d, "version").unwrap_or(0));
        let mut rolled = Rolled {
            users: Some(stats.users.clone()),
            foreign: stats.foreign_users.clone(),
            counters: stats.counters.clone(),
            clients: stats.clients.clone(),
            mixed: false,
            version: version as u64,
        };
        // The same answer (after a fold, say) keeps its version: caches keep it.
        let same = before
            .map(rolled_of)
            .transpose()?
            .is_some_and(|b| b.stats(stats.month) == rolled.stats(stats.month));
        if !same {
            rolled.version += 1;
        }
        let doc = doc_of(stats.month, &rolled, seqs)?;
        let id = i64::from(stats.month.yyyymm());
        match before {
            Some(_) => {
                self.rollup
                    .replace_one(doc! { "_id": id, "version": version }, doc)
                    .await
                    .map_err(db)?;
            }
            None => match self.rollup.insert_one(doc).await {
                Ok(_) => {}
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(db(e)),
            },
        }
        Ok(())
    }

    /// A flush applied to its node's document (`previous`: the document before, with its
    /// months' `seq`s), added to each of its months' roll-up that holds exactly the node's
    /// writes before it (see the module docs); a roll-up behind is left for the next read to
    /// repair. A failure leaves the roll-up behind too.
    pub(super) async fn add_flush(
        &self,
        batch: &FlushBatch,
        seq: i64,
        previous: &Document,
    ) -> Result<(), StoreError> {
        let node = escape(batch.node.as_str());
        let stored = previous.get_document("months").ok();
        for flush in &batch.months {
            let id = i64::from(flush.month.yyyymm());
            let before = stored
                .and_then(|m| m.get_document(flush.month.to_string()).ok())
                .map(|m| int(m, "seq").unwrap_or(-1));
            for _ in 0..8 {
                let Some(doc) = self.rollup.find_one(doc! { "_id": id }).await.map_err(db)? else {
                    break;
                };
                let mut seqs = seqs_of(&doc);
                if seqs.get(&node).copied() != before {
                    // Holds this flush already, or is behind: not added to.
                    break;
                }
                let mut rolled = rolled_of(&doc)?;
                let version = rolled.version as i64;
                rolled.add_flush(&flush.users, flush.clients.as_ref(), &flush.counter_deltas);
                if rolled.mixed {
                    // HLLs of other parameters: the month is read from the node documents.
                    self.rollup
                        .delete_one(doc! { "_id": id, "version": version })
                        .await
                        .map_err(db)?;
                    break;
                }
                seqs.insert(node.clone(), seq);
                let replaced = self
                    .rollup
                    .replace_one(
                        doc! { "_id": id, "version": version },
                        doc_of(flush.month, &rolled, &seqs)?,
                    )
                    .await
                    .map_err(db)?;
                if replaced.matched_count == 1 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Every month's version (the months with a roll-up, and the current and the previous
    /// month), their roll-ups made current first. A month nobody read yet has no roll-up: the
    /// first read makes it.
    pub(super) async fn versions(&self) -> Result<BTreeMap<Month, u64>, StoreError> {
        let mut months: Vec<Month> = self.rollup_docs(&[], false).await?.into_keys().collect();
        if let Ok(now) = Month::from_epoch_millis(authstat_core::month::now_ms()) {
            months.push(now);
            months.extend(now.pred());
        }
        let months = crate::merge::distinct_months(&months);
        let (seqs, folding) = self.seqs_now(&months).await?;
        let docs = self.rollup_docs(&months, false).await?;
        let stale: Vec<Month> = months
            .iter()
            .filter(|m| {
                let current = docs.get(m).is_some_and(|d| seqs_of(d) == seqs[m]);
                !current && (folding || !seqs[m].is_empty())
            })
            .copied()
            .collect();
        if stale.is_empty() {
            return Ok(docs
                .into_iter()
                .map(|(m, d)| (m, int(&d, "version").unwrap_or(0) as u64))
                .collect());
        }
        let whole = self.rollup_docs(&stale, true).await?;
        self.rebuild(&stale, &whole).await?;
        Ok(self
            .rollup_docs(&months, false)
            .await?
            .into_iter()
            .map(|(m, d)| (m, int(&d, "version").unwrap_or(0) as u64))
            .collect())
    }
}
