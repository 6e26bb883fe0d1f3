//! How statistics, positions and leases are laid out in MongoDB documents.

use authstat_core::store::{FlushBatch, Instance, Lease, SourcePosition, StoreError};
use authstat_core::{Month, MonthStats, NodeId};
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, Document, doc};

use super::{KIND, corrupt};
use crate::merge::Merger;

/// Percent-encodes what MongoDB field names cannot hold, and our separator.
pub(super) fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        match c {
            '%' | '.' | '$' | '|' | '\0' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn unescape(part: &str) -> Option<String> {
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

pub(super) fn counter_field(kind: &str, k1: &str, k2: &str) -> String {
    format!("{}|{}|{}", escape(kind), escape(k1), escape(k2))
}

pub(super) fn parse_counter_field(field: &str) -> Option<(String, String, String)> {
    let mut parts = field.split('|');
    let (a, b, c) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((unescape(a)?, unescape(b)?, unescape(c)?))
}

pub(super) fn int(doc: &Document, key: &str) -> Result<i64, StoreError> {
    match doc.get(key) {
        Some(Bson::Int64(v)) => Ok(*v),
        Some(Bson::Int32(v)) => Ok(i64::from(*v)),
        other => Err(corrupt(format!(
            "field {key} is {other:?}, expected an integer"
        ))),
    }
}

pub(super) fn str_field(doc: &Document, key: &str) -> Result<String, StoreError> {
    doc.get_str(key)
        .map(str::to_owned)
        .map_err(|e| corrupt(format!("field {key}: {e}")))
}

/// One month as stored: its HLL and every counter (a snapshot's month, a folded month).
pub(super) fn month_doc(month: &MonthStats) -> Result<Document, StoreError> {
    let bytes = month.users.to_bytes().map_err(|e| StoreError::Rejected {
        backend: super::KIND,
        message: format!("month {}: {e}", month.month),
    })?;
    let mut counters = Document::new();
    for (key, value) in month.counters.iter() {
        let (kind, k1, k2) = key.parts();
        let value = i64::try_from(value).map_err(|_| StoreError::Rejected {
            backend: super::KIND,
            message: format!("counter {value} does not fit an Int64"),
        })?;
        counters.insert(counter_field(kind, k1, k2), value);
    }
    let mut stored = doc! {
        "hll": Binary { subtype: BinarySubtype::Generic, bytes },
        "c": counters,
    };
    if let Some(clients) = &month.clients {
        let bytes = clients.to_bytes().map_err(|e| StoreError::Rejected {
            backend: super::KIND,
            message: format!("month {} clients: {e}", month.month),
        })?;
        stored.insert(
            "k",
            Binary {
                subtype: BinarySubtype::Generic,
                bytes,
            },
        );
    }
    Ok(stored)
}

/// Adds the `months` sub-document of one node's document (only `wanted` months, if given).
pub(super) fn merge_months(
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
        if let Some(Bson::Binary(b)) = entry.get("k") {
            merger.add_clients_bytes(month, node, &b.bytes)?;
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

/// The positions of a node's document; a document written before positions existed has file
/// `checkpoints` instead, which are carried over in the form the SQL migration gives them.
pub(super) fn positions(doc: &Document) -> Result<Vec<SourcePosition>, StoreError> {
    let mut out = Vec::new();
    if let Ok(list) = doc.get_array("positions") {
        for item in list {
            let Bson::Document(p) = item else {
                return Err(corrupt(format!("position is {item:?}")));
            };
            out.push(SourcePosition {
                source: str_field(p, "source")?,
                key: str_field(p, "key")?,
                data: str_field(p, "data")?,
            });
        }
    } else if let Ok(list) = doc.get_array("checkpoints") {
        for item in list {
            let Bson::Document(c) = item else {
                return Err(corrupt(format!("checkpoint is {item:?}")));
            };
            let (fp, len, offset) = (
                int(c, "fingerprint")?,
                int(c, "fingerprint_len")?,
                int(c, "offset")?,
            );
            let path = str_field(c, "path")?;
            out.push(SourcePosition {
                source: str_field(c, "source")?,
                key: format!("file:{fp}:{len}:{}:{}", int(c, "device")?, int(c, "inode")?),
                data: serde_json::json!({"offset": offset, "fp": fp, "len": len, "path": path})
                    .to_string(),
            });
        }
    }
    out.sort();
    Ok(out)
}

pub(super) fn position_docs(positions: &[SourcePosition]) -> Vec<Document> {
    positions
        .iter()
        .map(|p| doc! { "source": &p.source, "key": &p.key, "data": &p.data })
        .collect()
}

pub(super) fn instance_doc(instance: &Instance) -> Document {
    doc! {
        "id": &instance.id,
        "host": &instance.host,
        "pid": i64::from(instance.pid),
        "started_at_ms": instance.started_at_ms,
        "locality": &instance.locality,
    }
}

/// The lease in a node's document (`None` for a node that was never claimed).
pub(super) fn lease(node: &NodeId, doc: &Document) -> Result<Option<Lease>, StoreError> {
    let holder = match doc.get("holder") {
        None | Some(Bson::Null) => return Ok(None),
        Some(Bson::Document(h)) => Instance {
            id: str_field(h, "id")?,
            host: str_field(h, "host")?,
            pid: int(h, "pid")? as u32,
            started_at_ms: int(h, "started_at_ms")?,
            locality: h.get_str("locality").unwrap_or_default().to_owned(),
        },
        Some(other) => return Err(corrupt(format!("node {node}: holder is {other:?}"))),
    };
    Ok(Some(Lease {
        node: node.clone(),
        epoch: epoch(doc)?,
        holder: Some(holder),
        until_ms: int(doc, "lease_until_ms").unwrap_or(0),
        released: doc.get_bool("released").unwrap_or(false),
    }))
}

/// A node document's epoch (0 for one written before leases existed).
pub(super) fn epoch(doc: &Document) -> Result<u64, StoreError> {
    match doc.get("epoch") {
        None => Ok(0),
        Some(_) => Ok(int(doc, "epoch")? as u64),
    }
}

/// The update of a node's document that applies `batch` (`$set` the HLLs, positions, `seq` and
/// lease, `$inc` the counters).
pub(super) fn update_of(batch: &FlushBatch, seq: i64) -> Result<Document, StoreError> {
    let mut set = doc! {
        "seq": seq,
        "updated_at_ms": authstat_core::month::now_ms(),
        "lease_until_ms": batch.lease_until_ms,
    };
    if let Some(positions) = &batch.positions {
        set.insert("positions", position_docs(positions));
    }
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
        // The write that last changed the month (the roll-up compares it: `rollup.rs`).
        set.insert(format!("months.{}.seq", month.month), seq);
        if let Some(clients) = &month.clients {
            let bytes = clients.to_bytes().map_err(|e| StoreError::Rejected {
                backend: KIND,
                message: format!("month {} clients: {e}", month.month),
            })?;
            set.insert(
                format!("months.{}.k", month.month),
                Binary {
                    subtype: BinarySubtype::Generic,
                    bytes,
                },
            );
        }
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
    if batch.positions.is_some() {
        // Positions replace the file checkpoints of documents written before them.
        update.insert("$unset", doc! { "checkpoints": "" });
    }
    Ok(update)
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
