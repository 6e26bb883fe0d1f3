//! The `backend:` section: where statistics are stored.
//!
//! This crate knows the envelope: `type`, and the type's options as written
//! ([`BackendConfig::options`]). Which types exist, and their options, are the backends
//! registry's (authstat-backends): each backend decodes its own options type.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where statistics are stored, chosen by `type`. Swapping backends is a change of `type` and
/// its options.
///
/// ```yaml
/// backend:
///   type: sqlite
///   path: /var/lib/authstat/authstat.db
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BackendConfig {
    /// The backend type (`type`): a name of the backends registry (`sqlite`, `postgres`, …).
    pub kind: String,
    /// Every other key, as written: the type's options.
    pub options: serde_yaml::Mapping,
}

impl BackendConfig {
    /// A backend of type `kind` with `options` (any serializable options type).
    pub fn new(kind: &str, options: &impl Serialize) -> Self {
        let options = match serde_yaml::to_value(options) {
            Ok(serde_yaml::Value::Mapping(m)) => m,
            _ => serde_yaml::Mapping::new(),
        };
        Self {
            kind: kind.to_owned(),
            options,
        }
    }

    /// The memory backend (nothing kept after exit).
    pub fn memory() -> Self {
        Self {
            kind: "memory".into(),
            options: serde_yaml::Mapping::new(),
        }
    }

    /// The `type` name.
    pub fn kind(&self) -> &str {
        &self.kind
    }
}

impl<'de> Deserialize<'de> for BackendConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(BackendVisitor)
    }
}

struct BackendVisitor;

impl<'de> Visitor<'de> for BackendVisitor {
    type Value = BackendConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a backend: a mapping with type and the type's options")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BackendConfig, A::Error> {
        let mut kind = None;
        let mut options = serde_yaml::Mapping::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "type" {
                kind = Some(map.next_value::<String>()?);
                continue;
            }
            crate::source::take_option(&mut map, key, &mut options)?;
        }
        Ok(BackendConfig {
            kind: kind.ok_or_else(|| de::Error::missing_field("type"))?,
            options,
        })
    }
}

impl Serialize for BackendConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("type", &self.kind)?;
        for (key, value) in &self.options {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A connection URL fit for logs: the password (and a token-like user info) replaced by `***`.
///
/// ```
/// assert_eq!(
///     authstat_config::redact_url("postgres://app:s3cret@db:5432/stats"),
///     "postgres://app:***@db:5432/stats"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user = match rest[..at].find(':') {
        Some(colon) => format!("{}:***", &rest[..colon]),
        None => "***".to_owned(),
    };
    format!("{}{}{}", &url[..scheme_end], user, &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_is_its_type_and_its_options_as_written() {
        let c: BackendConfig = serde_yaml::from_str("type: sqlite\npath: /tmp/a.db\n").unwrap();
        assert_eq!(c.kind(), "sqlite");
        assert_eq!(c.options["path"], "/tmp/a.db");
        let again: BackendConfig =
            serde_yaml::from_str(&serde_yaml::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
        assert!(serde_yaml::from_str::<BackendConfig>("path: x\n").is_err());
        assert_eq!(BackendConfig::memory().kind(), "memory");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("mysql://u:p@h:3306/d"), "mysql://u:***@h:3306/d");
        assert_eq!(
            redact_url("mongodb://tok@h/?x=a@b"),
            "mongodb://***@h/?x=a@b"
        );
        assert_eq!(redact_url("postgres://h/d"), "postgres://h/d");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
