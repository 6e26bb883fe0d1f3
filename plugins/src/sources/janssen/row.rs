//! One row of Janssen's `jansStatEntry` table → a [`Snapshot`] of a foreign node.
//!
//! Janssen writes one row per auth-server node and month and overwrites it every
//! `statTimerIntervalInSeconds`: `doc_id` = `jansId` = `<MAC>_<yyyyMM>`, `jansData` = the month
//! (NULL on rows written before the column existed: then `attr`'s `month`, the `ou=` of `dn`,
//! or the end of `doc_id`), `dat` = Base64 of java-hll's `toBytes()` of `HLL(15, 5)` fed with
//! `String.hashCode()`, `attr` = JSON with `tokenCountPerGrantType` and `lastUpdatedAt`.

use authstat_core::counters::{CounterKey, Counters};
use authstat_core::hll::{Hll, HllParams};
use authstat_core::ingest::ParseErrorKind;
use authstat_core::store::Snapshot;
use authstat_core::{Month, MonthStats, NodeId};
use base64::Engine;
use serde_json::Value;

/// The longest grant type or token type kept (the backends' key limit).
const MAX_KEY_LEN: usize = 255;

/// A row as read: every column Janssen's DDL declares that authstat uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct StatEntry {
    /// `doc_id`, the primary key.
    pub doc_id: String,
    /// `dn`.
    pub dn: Option<String>,
    /// `dat`: the Base64 HLL.
    pub dat: Option<String>,
    /// `jansData`: the month.
    pub jans_data: Option<String>,
    /// `attr`: the JSON details.
    pub attr: Option<String>,
}

/// Why a row is not used (counted and logged; the row is read again when it changes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// The kind, for the skipped-records metric.
    pub kind: ParseErrorKind,
    /// What is wrong.
    pub message: String,
}

/// What a usable row gave: its snapshot, and a warning when its `dat` did not decode (the row
/// is then read as Janssen reads it, with no users).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Converted {
    /// The foreign node's snapshot.
    pub snapshot: Snapshot,
    /// Why its users are empty, if they are for a reason other than there being none.
    pub bad_users: Option<RowError>,
}

fn error(kind: ParseErrorKind, message: impl Into<String>) -> RowError {
    RowError {
        kind,
        message: message.into(),
    }
}

impl StatEntry {
    /// The row's month, from the first place that has one.
    pub fn month(&self, attr: Option<&Value>) -> Option<Month> {
        let parse = |s: &str| {
            let s = s.trim();
            (s.len() == 6)
                .then(|| s.parse::<u32>().ok())
                .flatten()
                .and_then(|v| Month::from_yyyymm(v).ok())
        };
        let from_dn = || {
            self.dn.as_deref().and_then(|dn| {
                dn.split(',')
                    .filter_map(|rdn| rdn.trim().strip_prefix("ou="))
                    .find_map(parse)
            })
        };
        let from_doc_id = || self.doc_id.rsplit_once('_').and_then(|(_, m)| parse(m));
        self.jans_data
            .as_deref()
            .and_then(parse)
            .or_else(|| attr?.get("month")?.as_str().and_then(parse))
            .or_else(from_dn)
            .or_else(from_doc_id)
    }

    /// The row as a snapshot of the foreign node `authstat:janssen:<doc_id>`.
    pub(crate) fn to_snapshot(&self) -> Result<Converted, RowError> {
        let node = NodeId::foreign("janssen", &self.doc_id).map_err(|_| {
            error(
                ParseErrorKind::WrongType,
                format!(
                    "doc_id '{}' cannot name a node (1 to 110 characters from A-Z a-z 0-9 . _ : -)",
                    self.doc_id
                ),
            )
        })?;
        let attr: Option<Value> = match self.attr.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                error(
                    ParseErrorKind::MalformedJson,
                    format!("attr is not JSON: {e}"),
                )
            })?),
        };
        let month = self.month(attr.as_ref()).ok_or_else(|| {
            error(
                ParseErrorKind::MissingField,
                "no month in jansData, attr.month, dn or doc_id",
            )
        })?;
        let counters = tokens(attr.as_ref())?;
        let version = match attr.as_ref().and_then(|a| a.get("lastUpdatedAt")) {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_i64().ok_or_else(|| {
                error(
                    ParseErrorKind::WrongType,
                    "attr.lastUpdatedAt is not an integer",
                )
            })?,
        };
        let (users, bad_users) = match self.users() {
            Ok(users) => (users, None),
            Err(e) => (Hll::new(HllParams::janssen()), Some(e)),
        };
        Ok(Converted {
            snapshot: Snapshot {
                node,
                version,
                months: vec![MonthStats {
                    month,
                    users,
                    counters,
                    foreign_users: None,
                    clients: None,
                }],
            },
            bad_users,
        })
    }

    /// The users of `dat`: java-hll bytes with Janssen's parameters (an empty HLL when the
    /// column is empty).
    fn users(&self) -> Result<Hll, RowError> {
        let text: String = match self.dat.as_deref() {
            None => return Ok(Hll::new(HllParams::janssen())),
            // java.util.Base64's MIME encoder breaks lines: tolerate whitespace.
            Some(t) => t.chars().filter(|c| !c.is_ascii_whitespace()).collect(),
        };
        if text.is_empty() {
            return Ok(Hll::new(HllParams::janssen()));
        }
        let bad = |why: String| {
            error(
                ParseErrorKind::WrongType,
                format!("dat {why}; read as no users, as Janssen does"),
            )
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| bad(format!("is not Base64 ({e})")))?;
        let hll = Hll::from_bytes(&bytes).map_err(|e| bad(format!("is not a java-hll ({e})")))?;
        if *hll.params() != HllParams::janssen() {
            return Err(bad(format!(
                "holds an HLL with other parameters than Janssen's HLL(15, 5): {:?}",
                hll.params()
            )));
        }
        Ok(hll)
    }
}

/// `attr.tokenCountPerGrantType` as token counters (grant type → token type → count).
fn tokens(attr: Option<&Value>) -> Result<Counters, RowError> {
    let mut counters = Counters::default();
    let Some(per_grant) = attr.and_then(|a| a.get("tokenCountPerGrantType")) else {
        return Ok(counters);
    };
    let wrong = |what: String| error(ParseErrorKind::WrongType, what);
    let per_grant = match per_grant {
        Value::Null => return Ok(counters),
        Value::Object(map) => map,
        _ => return Err(wrong("attr.tokenCountPerGrantType is not an object".into())),
    };
    for (grant, per_type) in per_grant {
        let per_type = match per_type {
            Value::Null => continue,
            Value::Object(map) => map,
            _ => {
                return Err(wrong(format!(
                    "tokenCountPerGrantType.{grant} is not an object"
                )));
            }
        };
        for (token_type, count) in per_type {
            let n = match count {
                Value::Null => continue,
                v => v.as_u64().ok_or_else(|| {
                    wrong(format!(
                        "tokenCountPerGrantType.{grant}.{token_type} is not a count: {v}"
                    ))
                })?,
            };
            if grant.is_empty()
                || token_type.is_empty()
                || grant.len() > MAX_KEY_LEN
                || token_type.len() > MAX_KEY_LEN
            {
                return Err(wrong(format!(
                    "grant type or token type empty or longer than {MAX_KEY_LEN} bytes"
                )));
            }
            counters.add(
                &CounterKey::Token {
                    grant_type: grant.clone(),
                    token_type: token_type.clone(),
                },
                n,
            );
        }
    }
    Ok(counters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use authstat_core::hash::HashAlgorithm;

    fn janssen_hll(users: &[&str]) -> String {
        let mut hll = Hll::new(HllParams::janssen());
        for u in users {
            hll.add_raw(HashAlgorithm::JavaStringHashCode.hash(u));
        }
        base64::engine::general_purpose::STANDARD.encode(hll.to_bytes().unwrap())
    }

    fn row() -> StatEntry {
        StatEntry {
            doc_id: "02-42-AC-11-00-02_202401".into(),
            dn: Some("jansId=02-42-AC-11-00-02_202401,ou=202401,ou=stat,o=jans".into()),
            dat: Some(janssen_hll(&["admin", "user1", "jose@example.com"])),
            jans_data: Some("202401".into()),
            attr: Some(
                r#"{"tokenCountPerGrantType": {"authorization_code": {"access_token": 12,
                 "id_token": 12, "refresh_token": 3}, "client_credentials": {"access_token": 7}},
                 "lastUpdatedAt": 1706745600123, "month": "202401", "future": [1]}"#
                    .into(),
            ),
        }
    }

    #[test]
    fn a_row_becomes_a_snapshot() {
        let converted = row().to_snapshot().unwrap();
        assert_eq!(converted.bad_users, None);
        let s = converted.snapshot;
        assert_eq!(s.node.as_str(), "authstat:janssen:02-42-AC-11-00-02_202401");
        assert_eq!(s.version, 1706745600123);
        let m = &s.months[0];
        assert_eq!(m.month.to_string(), "202401");
        assert_eq!(m.users.cardinality(), Some(3));
        assert_eq!(
            m.counters.tokens.get("authorization_code", "access_token"),
            12
        );
        assert_eq!(
            m.counters.tokens.get("authorization_code", "refresh_token"),
            3
        );
        assert_eq!(
            m.counters.tokens.get("client_credentials", "access_token"),
            7
        );
        assert_eq!(m.counters.iter().count(), 4);
    }

    #[test]
    fn the_month_falls_back_to_attr_then_dn_then_doc_id() {
        let mut r = row();
        r.jans_data = None;
        r.attr = Some(r#"{"month": "202312"}"#.into());
        assert_eq!(
            r.to_snapshot().unwrap().snapshot.months[0]
                .month
                .to_string(),
            "202312"
        );
        r.attr = None;
        r.dn = Some("jansId=x,ou=202311,ou=stat,o=jans".into());
        assert_eq!(
            r.to_snapshot().unwrap().snapshot.months[0]
                .month
                .to_string(),
            "202311"
        );
        r.dn = None;
        assert_eq!(
            r.to_snapshot().unwrap().snapshot.months[0]
                .month
                .to_string(),
            "202401"
        );
        r.doc_id = "no-month".into();
        assert_eq!(
            r.to_snapshot().unwrap_err().kind,
            ParseErrorKind::MissingField
        );
    }

    #[test]
    fn an_undecodable_dat_reads_as_no_users() {
        for dat in ["not base64!", "AAAA", &{
            let mut hll = Hll::new(HllParams::new(11, 5).unwrap());
            hll.add_raw(1 << 40);
            base64::engine::general_purpose::STANDARD.encode(hll.to_bytes().unwrap())
        }] {
            let mut r = row();
            r.dat = Some(dat.into());
            let converted = r.to_snapshot().unwrap();
            assert_eq!(
                converted.snapshot.months[0].users.cardinality(),
                Some(0),
                "{dat}"
            );
            assert_eq!(converted.bad_users.unwrap().kind, ParseErrorKind::WrongType);
            assert_eq!(
                converted.snapshot.months[0]
                    .counters
                    .tokens
                    .get("authorization_code", "id_token"),
                12
            );
        }
        let mut r = row();
        r.dat = None;
        assert_eq!(r.to_snapshot().unwrap().bad_users, None);
        // Line breaks of a MIME encoder are tolerated.
        let mut r = row();
        let dat = r.dat.take().unwrap();
        r.dat = Some(format!("{}\r\n{}", &dat[..10], &dat[10..]));
        assert_eq!(
            r.to_snapshot().unwrap().snapshot.months[0]
                .users
                .cardinality(),
            Some(3)
        );
    }

    #[test]
    fn bad_rows_are_refused_with_a_reason() {
        let cases = [
            (
                r#"{"tokenCountPerGrantType": 5}"#,
                ParseErrorKind::WrongType,
            ),
            (
                r#"{"tokenCountPerGrantType": {"password": 5}}"#,
                ParseErrorKind::WrongType,
            ),
            (
                r#"{"tokenCountPerGrantType": {"password": {"access_token": -1}}}"#,
                ParseErrorKind::WrongType,
            ),
            (r#"{"lastUpdatedAt": "soon"}"#, ParseErrorKind::WrongType),
            ("{not json", ParseErrorKind::MalformedJson),
        ];
        for (attr, kind) in cases {
            let mut r = row();
            r.attr = Some(attr.into());
            assert_eq!(r.to_snapshot().unwrap_err().kind, kind, "{attr}");
        }
        let mut r = row();
        r.doc_id = "a b".into();
        assert_eq!(r.to_snapshot().unwrap_err().kind, ParseErrorKind::WrongType);
        // No attr at all: no tokens, version 0.
        let mut r = row();
        r.attr = None;
        let s = r.to_snapshot().unwrap().snapshot;
        assert_eq!((s.version, s.months[0].counters.iter().count()), (0, 0));
    }
}
