//! The stored form of a file stream's position: JSON in [`SourcePosition::data`].
//!
//! ```json
//! {"offset": 73514, "fp": -3524367180216491734, "len": 256,
//!  "prefixes": [[32, 1234], [64, 5678], [128, 9012]], "path": "/logs/jans-auth_audit.log"}
//! ```
//!
//! `fp` is the hash of the first `len` bytes as a signed 64-bit number (SQL databases store
//! 64-bit values signed; the schema migration from file checkpoints writes it so). `orphaned_at`
//! (seconds since the Unix epoch) is present while no file carries the stream.

use authstat_core::store::SourcePosition;
use serde::{Deserialize, Serialize};

use super::head::Prints;

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    offset: u64,
    fp: i64,
    len: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    prefixes: Vec<(u32, u64)>,
    #[serde(default)]
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    orphaned_at: Option<u64>,
}

/// One stream as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StreamPosition {
    pub prints: Prints,
    pub offset: u64,
    pub path: String,
    pub orphaned_at: Option<u64>,
}

/// A stored position that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("stored position {key:?} of source {source_name:?} is not a file position: {reason}")]
pub struct PositionError {
    source_name: String,
    key: String,
    reason: String,
}

impl StreamPosition {
    pub fn encode(&self, source: &str) -> SourcePosition {
        let stored = Stored {
            offset: self.offset,
            fp: self.prints.fp as i64,
            len: self.prints.len,
            prefixes: self.prints.prefixes.clone(),
            path: self.path.clone(),
            orphaned_at: self.orphaned_at,
        };
        SourcePosition {
            source: source.to_owned(),
            key: self.prints.key(),
            data: serde_json::to_string(&stored).expect("a position serializes"),
        }
    }

    pub fn decode(p: &SourcePosition) -> Result<Self, PositionError> {
        let stored: Stored = serde_json::from_str(&p.data).map_err(|e| PositionError {
            source_name: p.source.clone(),
            key: p.key.clone(),
            reason: e.to_string(),
        })?;
        if stored.len == 0 || stored.len as usize > super::head::HEAD_BYTES {
            return Err(PositionError {
                source_name: p.source.clone(),
                key: p.key.clone(),
                reason: format!("fingerprint length {} out of range", stored.len),
            });
        }
        Ok(Self {
            prints: Prints {
                len: stored.len,
                fp: stored.fp as u64,
                prefixes: stored.prefixes,
            },
            offset: stored.offset,
            path: stored.path,
            orphaned_at: stored.orphaned_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_the_migrated_form() {
        let p = StreamPosition {
            prints: Prints::of(&[7u8; 300]),
            offset: 4242,
            path: "/logs/a.log".into(),
            orphaned_at: Some(1_700_000_000),
        };
        let stored = p.encode("audit");
        assert_eq!(stored.key, p.prints.key());
        assert_eq!(StreamPosition::decode(&stored).unwrap(), p);
        // What the schema migration writes from an old checkpoint.
        let migrated = SourcePosition {
            source: "audit".into(),
            key: "file:-5:200:2049:77".into(),
            data: r#"{"offset": 10, "fp": -5, "len": 200, "path": "/x"}"#.into(),
        };
        let d = StreamPosition::decode(&migrated).unwrap();
        assert_eq!(
            (d.prints.fp, d.prints.len, d.offset),
            (u64::MAX - 4, 200, 10)
        );
        assert!(d.prints.prefixes.is_empty());
        let bad = SourcePosition {
            data: "{}".into(),
            ..migrated
        };
        let e = StreamPosition::decode(&bad).unwrap_err().to_string();
        assert!(
            e.contains("file:-5:200:2049:77") && e.contains("missing field"),
            "{e}"
        );
    }
}
