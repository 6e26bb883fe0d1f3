//! `type: mongodb`: one document per node, written with one atomic single-document update.
//!
//! # Why one document per node
//! MongoDB makes a single-document write atomic on every deployment; multi-document
//! transactions need a replica set, which many installations do not run. So all of a node's
//! state lives in one document, and a flush is one `updateOne`:
//!
//! ```text
//! { _id: "<node id>", seq: 42, updated_at_ms: …,
//!   checkpoints: [ { source, path, device, inode, fingerprint, fingerprint_len, offset } ],
//!   months: { "202402": { hll: BinData(0, <java-hll bytes>),
//!                         c: { "token|client_credentials|access_token": 62, … } } } }
//! ```
//!
//! The update's filter is `{_id: node, seq: {$lt: batch.seq}}`, and it upserts: a new node's
//! document is inserted; an existing one is updated (`$set` the HLLs, checkpoints and `seq`,
//! `$inc` the counters) only if the batch is newer. A retried batch matches nothing, the upsert
//! then collides with the existing `_id` (duplicate key), and that is reported as
//! [`FlushOutcome::AlreadyApplied`]. No step of a flush can be half-applied.
//!
//! Counter field names are `kind|k1|k2` with `%`, `.`, `$`, `|` and NUL percent-encoded
//! (MongoDB field names may not contain `.` or start with `$`). Only the `_id` index is needed.
//! A node's document grows by about 20 KiB a month at Janssen's HLL setting (FULL), so the
//! 16 MiB document limit allows several decades of monthly data.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use authstat_config::{MongoConfig, redact_url};
use authstat_core::store::{
    Checkpoint, FlushBatch, FlushOutcome, NodeState, StatStore, StoreError,
};
use authstat_core::{Month, MonthStats, NodeId};
use futures_util::TryStreamExt;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};

use crate::merge::{Merger, distinct_months};

const KIND: &str = "mongodb";

/// The MongoDB backend.
#[derive(Debug)]
pub struct MongoStore {
    collection: Collection<Document>,
    /// Test hook: fail the next flush before it is sent.
    fail_next_flush: Mutex<bool>,
}

fn unavailable(message: impl Into<String>) -> StoreError {
    StoreError::Unavailable {
        backend: KIND,
        message: message.into(),
    }
}

fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        backend: KIND,
        message: message.into(),
    }
}

/// MongoDB reports a duplicate `_id` from an upsert as a write error; some servers speaking the
/// protocol (the jongodb test server) as a command error. Both carry code 11000.
fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    const DUPLICATE_KEY: i32 = 11000;
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

impl MongoStore {
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
        let client = Client::with_options(options).map_err(|e| unavailable(e.to_string()))?;
        let database = client.database(&config.database);
        database
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(|e| unavailable(format!("connecting to {}: {e}", redact_url(&config.uri))))?;
        Ok(Self {
            collection: database.collection(&config.collection),
            fail_next_flush: Mutex::new(false),
        })
    }

    /// Test hook: the next flush fails before anything is sent.
    #[doc(hidden)]
    pub fn inject_flush_failure(&self) {
        *self.fail_next_flush.lock().expect("lock") = true;
    }
}

/// Percent-encodes what MongoDB field names cannot hold, and our separator.
fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        match c {
            '%' | '.' | '$' | '|' | '\0' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn unescape(part: &str) -> Option<String> {
    let mut out = Vec::with_capacity(part.len());
    let bytes = part.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = part.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn counter_field(kind: &str, k1: &str, k2: &str) -> String {
    format!("{}|{}|{}", escape(kind), escape(k1), escape(k2))
}

fn parse_counter_field(field: &str) -> Option<(String, String, String)> {
    let mut parts = field.split('|');
    let (a, b, c) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((unescape(a)?, unescape(b)?, unescape(c)?))
}

fn checkpoint_doc(c: &Checkpoint) -> Document {
    doc! {
        "source": &c.source,
        "path": &c.path,
        // u64 identities are stored as the same 64 bits in a signed Int64.
        "device": c.device as i64,
        "inode": c.inode as i64,
        "fingerprint": c.fingerprint as i64,
        "fingerprint_len": i64::from(c.fingerprint_len),
        "offset": c.offset as i64,
    }
}

fn int(doc: &Document, key: &str) -> Result<i64, StoreError> {
    match doc.get(key) {
        Some(Bson::Int64(v)) => Ok(*v),
        Some(Bson::Int32(v)) => Ok(i64::from(*v)),
        other => Err(corrupt(format!(
            "field {key} is {other:?}, expected an integer"
        ))),
    }
}

fn str_field(doc: &Document, key: &str) -> Result<String, StoreError> {
    doc.get_str(key)
        .map(str::to_owned)
        .map_err(|e| corrupt(format!("field {key}: {e}")))
}

fn parse_checkpoint(doc: &Document) -> Result<Checkpoint, StoreError> {
    Ok(Checkpoint {
        source: str_field(doc, "source")?,
        path: str_field(doc, "path")?,
        device: int(doc, "device")? as u64,
        inode: int(doc, "inode")? as u64,
        fingerprint: int(doc, "fingerprint")? as u64,
        fingerprint_len: int(doc, "fingerprint_len")? as u32,
        offset: int(doc, "offset")? as u64,
    })
}

/// Adds the `months` sub-document of one node's document (only `wanted` months, if given).
fn merge_months(
    merger: &mut Merger,
    node: &str,
    months: &Document,
    wanted: Option<&[Month]>,
) -> Result<(), StoreError> {
    for (key, value) in months {
        let month: Month = key
            .parse()
            .map_err(|e| corrupt(format!("node {node}: month key {key}: {e}")))?;
        if wanted.is_some_and(|w| !w.contains(&month)) {
            continue;
        }
        let Bson::Document(entry) = value else {
            return Err(corrupt(format!(
                "node {node} month {key} is not a document"
            )));
        };
        match entry.get("hll") {
            Some(Bson::Binary(b)) => merger.add_hll(month, node, &b.bytes)?,
            None => {}
            Some(other) => {
                return Err(corrupt(format!(
                    "node {node} month {key}: hll is {other:?}"
                )));
            }
        }
        if let Ok(counters) = entry.get_document("c") {
            for (field, _) in counters {
                let (kind, k1, k2) = parse_counter_field(field)
                    .ok_or_else(|| corrupt(format!("node {node} month {key}: counter {field}")))?;
                merger.add_counter(month, &kind, &k1, &k2, int(counters, field)?)?;
            }
        }
    }
    Ok(())
}

#[async_trait]
impl StatStore for MongoStore {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn flush(&self, batch: &FlushBatch) -> Result<FlushOutcome, StoreError> {
        let seq = i64::try_from(batch.seq).map_err(|_| StoreError::Rejected {
            backend: KIND,
            message: "seq too large".into(),
        })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let checkpoints: Vec<Document> = batch.checkpoints.iter().map(checkpoint_doc).collect();
        let mut set = doc! { "seq": seq, "updated_at_ms": now, "checkpoints": checkpoints };
        let mut inc = Document::new();
        for month in &batch.months {
            let bytes = month.users.to_bytes().map_err(|e| StoreError::Rejected {
                backend: KIND,
                message: format!("month {}: {e}", month.month),
            })?;
            set.insert(
                format!("months.{}.hll", month.month),
                Binary {
                    subtype: BinarySubtype::Generic,
                    bytes,
                },
            );
            for (key, delta) in month.counter_deltas.iter() {
                let (kind, k1, k2) = key.parts();
                let delta = i64::try_from(delta).map_err(|_| StoreError::Rejected {
                    backend: KIND,
                    message: format!("counter delta {delta} does not fit an Int64"),
                })?;
                inc.insert(
                    format!("months.{}.c.{}", month.month, counter_field(kind, k1, k2)),
                    delta,
                );
            }
        }
        let mut update = doc! { "$set": set };
        if !inc.is_empty() {
            update.insert("$inc", inc);
        }
        if std::mem::take(&mut *self.fail_next_flush.lock().expect("lock")) {
            return Err(unavailable("injected failure"));
        }
        let filter = doc! { "_id": batch.node.as_str(), "seq": { "$lt": seq } };
        match self
            .collection
            .update_one(filter, update)
            .upsert(true)
            .await
        {
            Ok(_) => Ok(FlushOutcome::Applied),
            Err(e) if is_duplicate_key(&e) => Ok(FlushOutcome::AlreadyApplied),
            Err(e) => Err(unavailable(e.to_string())),
        }
    }

    async fn load_node(&self, node: &NodeId) -> Result<NodeState, StoreError> {
        let Some(doc) = self
            .collection
            .find_one(doc! { "_id": node.as_str() })
            .await
            .map_err(|e| unavailable(e.to_string()))?
        else {
            return Ok(NodeState::default());
        };
        let mut merger = Merger::new(KIND);
        if let Ok(months) = doc.get_document("months") {
            merge_months(&mut merger, node.as_str(), months, None)?;
        }
        let checkpoints = match doc.get_array("checkpoints") {
            Ok(list) => list
                .iter()
                .map(|c| match c {
                    Bson::Document(d) => parse_checkpoint(d),
                    other => Err(corrupt(format!("checkpoint is {other:?}"))),
                })
                .collect::<Result<_, _>>()?,
            Err(_) => Vec::new(),
        };
        Ok(NodeState {
            seq: int(&doc, "seq")? as u64,
            months: merger.finish(),
            checkpoints,
        })
    }

    async fn read_months(&self, months: &[Month]) -> Result<Vec<MonthStats>, StoreError> {
        let months = distinct_months(months);
        if months.is_empty() {
            return Ok(Vec::new());
        }
        let mut projection = Document::new();
        for m in &months {
            projection.insert(format!("months.{m}"), 1);
        }
        let mut cursor = self
            .collection
            .find(doc! {})
            .projection(projection)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let mut merger = Merger::new(KIND);
        while let Some(doc) = cursor
            .try_next()
            .await
            .map_err(|e| unavailable(e.to_string()))?
        {
            let node = doc.get_str("_id").unwrap_or("?").to_owned();
            if let Ok(stored) = doc.get_document("months") {
                merge_months(&mut merger, &node, stored, Some(&months))?;
            }
        }
        Ok(merger.finish())
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.collection
            .client()
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(|e| unavailable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_fields_escape_what_mongodb_forbids() {
        let field = counter_field("token", "urn:x.y$z|%", "access_token");
        assert!(!field.contains('.') && !field.contains('$'));
        assert_eq!(
            parse_counter_field(&field).unwrap(),
            ("token".into(), "urn:x.y$z|%".into(), "access_token".into())
        );
        assert!(parse_counter_field("a|b").is_none());
        assert!(parse_counter_field("a|b|%zz").is_none());
    }
}
