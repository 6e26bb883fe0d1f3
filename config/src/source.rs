//! The `sources:` section: where records come from (`type`) and in which format (`format`).
//!
//! ```yaml
//! sources:
//!   - name: audit
//!     type: file                  # where: a source kind of the plugin registry
//!     format: janssen_audit       # how: a record format of the plugin registry
//!     paths: [/opt/jans/jetty/jans-auth/logs/jans-auth_audit*.log]
//! ```
//!
//! This crate knows the envelope only: `name`, `type`, `format`. Every other key of a source is
//! its kind's option, kept as written ([`SourceConfig::options`]) for the kind's plugin to
//! decode (authstat-plugins: each kind defines its options type beside its code). A plugin's
//! error names its key, and [`load_checked`](crate::load_checked) puts the line and column in
//! front of it ([`locate`](crate::locate)).

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One source.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceConfig {
    /// A name, unique among the sources (it keys the stored positions: keep it stable).
    /// `backfill` is reserved for `authstat backfill`.
    pub name: String,
    /// The source kind (`type`): a name of the plugin registry (`file`, `activemq`, …).
    pub kind: String,
    /// The record format (`format`: `janssen_audit`, `token_events`, …); empty when not given
    /// (a kind that reads rows, not records, takes none).
    pub format: String,
    /// Every other key, as written: the kind's options.
    pub options: serde_yaml::Mapping,
}

/// The source name `authstat backfill` reads under; configured sources may not use it.
pub const BACKFILL_SOURCE: &str = "backfill";

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(SourceVisitor)
    }
}

struct SourceVisitor;

impl<'de> Visitor<'de> for SourceVisitor {
    type Value = SourceConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a source: a mapping with name, type, format and the type's options")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SourceConfig, A::Error> {
        let (mut name, mut kind, mut format) = (None, None, None);
        let mut options = serde_yaml::Mapping::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => name = Some(map.next_value::<String>()?),
                "type" => kind = Some(map.next_value::<String>()?),
                "format" => format = Some(map.next_value::<String>()?),
                _ => take_option(&mut map, key, &mut options)?,
            }
        }
        let name = name.ok_or_else(|| de::Error::missing_field("name"))?;
        let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
        Ok(SourceConfig {
            name,
            kind,
            format: format.unwrap_or_default(),
            options,
        })
    }
}

/// Keeps the value of `key` (a plugin's option) as written; a key given twice is an error.
pub(crate) fn take_option<'de, A: MapAccess<'de>>(
    map: &mut A,
    key: String,
    options: &mut serde_yaml::Mapping,
) -> Result<(), A::Error> {
    let value = map.next_value::<serde_yaml::Value>()?;
    if options.insert(key.clone().into(), value).is_some() {
        return Err(de::Error::custom(format!("`{key}` is given twice")));
    }
    Ok(())
}

impl Serialize for SourceConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("type", &self.kind)?;
        if !self.format.is_empty() {
            map.serialize_entry("format", &self.format)?;
        }
        for (key, value) in &self.options {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}
