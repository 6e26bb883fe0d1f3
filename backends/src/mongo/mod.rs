//! `type: mongodb`: one document per node, written with one atomic single-document update.
//!
//! # Why one document per node
//! MongoDB makes a single-document write atomic on every deployment; multi-document
//! transactions need a replica set, which many installations do not run. So all of a node's
//! state lives in one document, and a flush is one `updateOne`:
//!
//! ```text
//! { _id: "<node id>", seq: 42, updated_at_ms: …,
//!   epoch: 3, holder: { id, host, pid, started_at_ms }, lease_until_ms: …, released: false,
//!   positions: [ { source, key, data } ],
//!   months: { "202402": { hll: BinData(0, <java-hll bytes>),
//!                         c: { "token|client_credentials|access_token": 62, … } } } }
//! ```
//!
//! A node's document is created by its first claim (`own.rs`). A flush's filter is
//! `{_id: node, epoch: batch.epoch, seq: {$lt: batch.seq}}`: the document is updated (`$set`
//! the HLLs, positions, `seq` and lease, `$inc` the counters) only if the batch is newer and
//! its claim is still the current one. When nothing matched, the document tells why: another
//! epoch ([`StoreError::Fenced`]) or a batch already applied
//! ([`FlushOutcome::AlreadyApplied`]). No step of a flush can be half-applied.
//!
//! Claims of keys live in a second collection, `<collection>_claims`, one document per key
//! (`{_id: key, node, source, epoch}`); the unique `_id` makes the first claim win.
//!
//! Counter field names are `kind|k1|k2` with `%`, `.`, `$`, `|` and NUL percent-encoded
//! (MongoDB field names may not contain `.` or start with `$`). Only the `_id` index is needed.
//! A node's document grows by about 20 KiB a month at Janssen's HLL setting (FULL), so the
//! 16 MiB document limit allows several decades of monthly data.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use authstat_config::redact_url;

use crate::options::MongoConfig;
use authstat_core::month::now_ms;
use authstat_core::store::{
    ClaimRequest, FlushBatch, FlushOutcome, FoldReport, FoldRequest, KeyClaim, KeyOwner, Lease,
    NodeClaim, NodeState, NodeSummary, Snapshot, SnapshotOutcome, StatStore, StoreError,
};
use authstat_core::{Month, MonthStats, NodeId};
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};

use crate::merge::{Merger, distinct_months};

mod codec;
mod daily;
mod dims;
mod dims_rollup;
mod fold;
mod own;
mod read;
mod rollup;
mod snapshot;

pub use fold::FoldFailAt;

use codec::{int, merge_months, update_of};

pub(super) const KIND: &str = "mongodb";

/// The MongoDB backend.
#[derive(Debug)]
pub struct MongoStore {
    collection: Collection<Document>,
    claims: Collection<Document>,
    /// `<collection>_daily`: per month `{_id: yyyyMM, days: {"d": users}}`.
    daily: Collection<Document>,
    /// `<collection>_rollup`: per month what a read of all nodes answers (`rollup.rs`).
    rollup: Collection<Document>,
    /// `<collection>_dims`: per node, month and bucket its clients and realms (`dims.rs`).
    dims: Collection<Document>,
    /// `<collection>_dims_rollup`: per month and bucket, every node's (`dims.rs`).
    dims_rollup: Collection<Document>,
    /// Test hook: where the next flush fails.
    fail_next_flush: Mutex<Option<FailAt>>,
    /// Test hook: where the next fold stops.
    fail_next_fold: Mutex<Option<FoldFailAt>>,
}

pub(super) fn unavailable(message: impl Into<String>) -> StoreError {
    StoreError::Unavailable {
        backend: KIND,
        message: message.into(),
        cause: Default::default(),
    }
}

pub(super) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        backend: KIND,
        message: message.into(),
        cause: Default::default(),
    }
}

/// Where a test makes the next flush fail.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailAt {
    /// Before the update is sent.
    BeforeSend,
    /// After the update was applied: the caller hears of an error (the answer was lost).
    AfterApply,
}

/// MongoDB reports a duplicate `_id` from an upsert as a write error; some servers speaking the
/// protocol (the jongodb test server) as a command error. Both carry code 11000.
pub(super) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    const DUPLICATE_KEY: i32 = 11000;
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

impl MongoStore {
    /// Applies a flush's `update` to the node's document if `filter` matches, and returns the
    /// document as it was before (`before`: the fields wanted). When it does not match because
    /// an earlier flush's counters still wait in the document (its later steps were
    /// interrupted), they are applied first and the update is tried again.
    async fn update_node(
        &self,
        node: &NodeId,
        filter: Document,
        update: Document,
        before: Document,
    ) -> Result<Option<Document>, StoreError> {
        for _ in 0..2 {
            let previous = self
                .collection
                .find_one_and_update(filter.clone(), update.clone())
                .projection(before.clone())
                .return_document(mongodb::options::ReturnDocument::Before)
                .await
                .map_err(|e| unavailable(e.to_string()).because(e))?;
            if previous.is_some() {
                return Ok(previous);
            }
            match self.node_doc(node).await? {
                Some(doc) if doc.contains_key("pending") => {
                    self.finish_pending_of(node, &doc).await?
                }
                _ => break,
            }
        }
        Ok(None)
    }

    /// Connects, and checks that the server answers.
    pub async fn open(config: &MongoConfig) -> Result<Self, StoreError> {
        let mut options =
            ClientOptions::parse(&config.uri)
                .await
                .map_err(|e| StoreError::Rejected {
                    backend: KIND,
                    message: format!("invalid uri {}: {e}", redact_url(&config.uri)),
                })?;
        let timeout = Duration::from_secs(config.connect_timeout_secs.max(1));
        options.server_selection_timeout = Some(timeout);
        options.connect_timeout = Some(timeout);
        options.app_name = Some("authstat".into());
        let client =
            Client::with_options(options).map_err(|e| unavailable(e.to_string()).because(e))?;
        let database = client.database(&config.database);
        database
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(|e| unavailable(format!("connecting to {}: {e}", redact_url(&config.uri))))?;
        let dims: Collection<Document> =
            database.collection(&format!("{}_dims", config.collection));
        for keys in [doc! { "m": 1 }, doc! { "n": 1 }] {
            dims.create_index(mongodb::IndexModel::builder().keys(keys).build())
                .await
                .map_err(|e| unavailable(format!("creating an index of the dimensions: {e}")))?;
        }
        let dims_rollup: Collection<Document> =
            database.collection(&format!("{}_dims_rollup", config.collection));
        dims_rollup
            .create_index(mongodb::IndexModel::builder().keys(doc! { "m": 1 }).build())
            .await
            .map_err(|e| unavailable(format!("creating an index of the dimensions: {e}")))?;
        Ok(Self {
            collection: database.collection(&config.collection),
            claims: database.collection(&format!("{}_claims", config.collection)),
            daily: database.collection(&format!("{}_daily", config.collection)),
            rollup: database.collection(&format!("{}_rollup", config.collection)),
            dims,
            dims_rollup,
            fail_next_flush: Mutex::new(None),
            fail_next_fold: Mutex::new(None),
        })
    }

    /// Test hook: the next flush fails at `at`.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn inject_flush_failure(&self, at: FailAt) {
        *self.fail_next_flush.lock().expect("lock") = Some(at);
    }

    /// Test hook: the next fold stops at `at`.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn inject_fold_failure(&self, at: FoldFailAt) {
        *self.fail_next_fold.lock().expect("lock") = Some(at);
    }
}

#[async_trait]
impl StatStore for MongoStore {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn claim_node(&self, request: &ClaimRequest) -> Result<NodeClaim, StoreError> {
        own::claim_node(&self.collection, request).await
    }

    async fn release_node(&self, node: &NodeId, epoch: u64) -> Result<(), StoreError> {
        self.collection
            .update_one(
                doc! { "_id": node.as_str(), "epoch": epoch as i64 },
                doc! { "$set": { "released": true } },
            )
            .await
            .map(|_| ())
            .map_err(|e| unavailable(e.to_string()).because(e))
    }

    async fn lease(&self, node: &NodeId) -> Result<Option<Lease>, StoreError> {
        match self.node_doc(node).await? {
            None => Ok(None),
            Some(doc) => codec::lease(node, &doc),
        }
    }

    async fn flush(&self, batch: &FlushBatch) -> Result<FlushOutcome, StoreError> {
        let seq = i64::try_from(batch.seq).map_err(|_| StoreError::Rejected {
            backend: KIND,
            message: "seq too large".into(),
        })?;
        let mut update = update_of(batch, seq)?;
        let pending = dims::pending_of(batch, seq)?;
        if let Some(pending) = &pending {
            update
                .get_document_mut("$set")
                .expect("an update sets")
                .insert("pending", pending.clone());
        }
        let fail = self.fail_next_flush.lock().expect("lock").take();
        if fail == Some(FailAt::BeforeSend) {
            return Err(unavailable("injected failure"));
        }
        self.add_dim_users(batch).await?;
        let filter = doc! {
            "_id": batch.node.as_str(),
            "epoch": batch.epoch as i64,
            "seq": { "$lt": seq },
            // An earlier flush's counters of clients and realms are applied first.
            "pending": { "$exists": false },
        };
        // The document as it was before (its months' `seq`s: which writes the roll-up must hold
        // before this one is added to it).
        let mut before = doc! { "_id": 1 };
        for month in &batch.months {
            before.insert(format!("months.{}.seq", month.month), 1);
        }
        let previous = self
            .update_node(&batch.node, filter, update, before)
            .await?;
        if fail == Some(FailAt::AfterApply) {
            return Err(unavailable("injected failure after the update"));
        }
        if let Some(previous) = previous {
            // The later steps. A failure leaves the counters of clients and realms pending
            // (readers add them; the next flush applies them) or the roll-up behind (the next
            // read finds and repairs it), and is said: the caller retries, and hears the flush
            // was applied.
            if let Some(pending) = &pending {
                self.finish_pending(&batch.node, pending).await?;
            }
            self.add_flush(batch, seq, &previous).await?;
            return Ok(FlushOutcome::Applied);
        }
        // Nothing matched: fenced, or this batch was applied before.
        let doc = self.node_doc(&batch.node).await?;
        match doc {
            Some(doc) if codec::epoch(&doc)? == batch.epoch => Ok(FlushOutcome::AlreadyApplied),
            other => {
                let lease = match other {
                    Some(doc) => codec::lease(&batch.node, &doc)?,
                    None => None,
                };
                Err(StoreError::Fenced {
                    backend: KIND,
                    node: batch.node.clone(),
                    holder: crate::rules::holder_text(lease.as_ref()),
                })
            }
        }
    }

    async fn load_node(&self, node: &NodeId) -> Result<NodeState, StoreError> {
        let Some(doc) = self.node_doc(node).await? else {
            return Ok(NodeState::default());
        };
        self.finish_pending_of(node, &doc).await?;
        let mut merger = Merger::new(KIND);
        if let Ok(months) = doc.get_document("months") {
            merge_months(&mut merger, node.as_str(), months, None)?;
        }
        Ok(NodeState {
            seq: int(&doc, "seq")? as u64,
            months: merger.finish(),
            positions: codec::positions(&doc)?,
        })
    }

    async fn node_dims(
        &self,
        node: &NodeId,
        months: &[Month],
    ) -> Result<Vec<authstat_core::dims::MonthDims>, StoreError> {
        let months = distinct_months(months);
        if months.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(doc) = self.node_doc(node).await? {
            self.finish_pending_of(node, &doc).await?;
        }
        self.read_dim_docs(Some(node), &months, None).await
    }

    async fn nodes(&self) -> Result<Vec<NodeSummary>, StoreError> {
        let mut cursor = self
            .collection
            .find(doc! {})
            .projection(doc! {
                "months": 0, "positions": 0, "checkpoints": 0, "folding": 0, "applied": 0,
            })
            .sort(doc! { "_id": 1 })
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))?;
        let mut out = Vec::new();
        while let Some(doc) = cursor
            .try_next()
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))?
        {
            let id = codec::str_field(&doc, "_id")?;
            let node = NodeId::stored(id).map_err(|e| corrupt(e.to_string()))?;
            out.push(NodeSummary {
                seq: int(&doc, "seq").unwrap_or(0) as u64,
                updated_at_ms: int(&doc, "updated_at_ms").unwrap_or(0),
                lease: codec::lease(&node, &doc)?,
                node,
            });
        }
        Ok(out)
    }

    async fn read_months(&self, months: &[Month]) -> Result<Vec<MonthStats>, StoreError> {
        let months = distinct_months(months);
        if months.is_empty() {
            return Ok(Vec::new());
        }
        self.read_rolled(&months).await
    }

    async fn read_dims(
        &self,
        months: &[Month],
        kind: authstat_core::dims::DimKind,
    ) -> Result<Vec<authstat_core::dims::MonthDims>, StoreError> {
        let months = distinct_months(months);
        if months.is_empty() {
            return Ok(Vec::new());
        }
        self.read_rolled_dims(&months, kind).await
    }

    async fn drop_days_before(&self, month: Month) -> Result<u64, StoreError> {
        self.drop_days(month).await
    }

    async fn data_version(&self) -> Result<u64, StoreError> {
        let mut cursor = self
            .collection
            .find(doc! {})
            .projection(doc! { "seq": 1 })
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))?;
        let mut sum = 0u64;
        while let Some(doc) = cursor
            .try_next()
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))?
        {
            sum = sum.wrapping_add(int(&doc, "seq").unwrap_or(0) as u64);
        }
        Ok(sum)
    }

    async fn month_versions(&self) -> Result<std::collections::BTreeMap<Month, u64>, StoreError> {
        self.versions().await
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.collection
            .client()
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(|e| unavailable(e.to_string()).because(e))
    }

    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotOutcome, StoreError> {
        let outcome = self.snapshot_cas(snapshot).await?;
        if outcome == SnapshotOutcome::Applied {
            // Its months' roll-ups made current now, so that readers do not (a failure is said:
            // the snapshot is stored again, which changes nothing, and this is tried again).
            let months: Vec<Month> = snapshot.months.iter().map(|m| m.month).collect();
            self.read_rolled(&distinct_months(&months)).await?;
        }
        Ok(outcome)
    }

    async fn record_daily_users(
        &self,
        month: Month,
        day: u32,
        users: u64,
    ) -> Result<(), StoreError> {
        self.raise_daily(month, day, users).await
    }

    async fn daily_users(
        &self,
        month: Month,
    ) -> Result<std::collections::BTreeMap<u32, u64>, StoreError> {
        self.read_daily(month).await
    }

    async fn fold_silent(&self, request: &FoldRequest) -> Result<FoldReport, StoreError> {
        let fail = self.fail_next_fold.lock().expect("lock").take();
        fold::fold_silent(&self.collection, request, fail).await
    }

    async fn claim_keys(
        &self,
        owner: &KeyOwner,
        keys: &[String],
    ) -> Result<Vec<KeyClaim>, StoreError> {
        own::claim_keys(&self.claims, owner, keys).await
    }

    async fn take_over_key(
        &self,
        key: &str,
        from: &KeyOwner,
        to: &KeyOwner,
    ) -> Result<bool, StoreError> {
        let moved = self
            .claims
            .update_one(
                doc! {
                    "_id": key,
                    "node": from.node.as_str(),
                    "source": &from.source,
                    "epoch": from.epoch as i64,
                },
                doc! { "$set": {
                    "node": to.node.as_str(),
                    "source": &to.source,
                    "epoch": to.epoch as i64,
                } },
            )
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))?;
        Ok(moved.modified_count == 1)
    }
}
