//! Where a key stands in the configuration text: for errors found after parsing (a plugin's
//! options, checks that span keys), so that they too name the line and column.
//!
//! The YAML parser keeps no positions in its values, but it puts one in every error. So the
//! document is walked again with a deserializer that fails on purpose when it reaches the key:
//! the parser's error says where that was. Only errors pay for it.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a key path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// `sources[0].paths[2]` → key `sources`, index 0, key `paths`, index 2.
fn steps(path: &str) -> Vec<Step> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            if open > 0 {
                out.push(Step::Key(rest[..open].to_owned()));
            }
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                if let Ok(i) = rest[1..close].parse() {
                    out.push(Step::Index(i));
                }
                rest = &rest[close + 1..];
                if !rest.starts_with('[') {
                    break;
                }
            }
        } else {
            out.push(Step::Key(rest.to_owned()));
        }
    }
    out
}

/// The marker error raised where the key is.
const FOUND: &str = "authstat-locate: found";

/// Walks to `steps`, then fails.
struct Probe<'a> {
    steps: &'a [Step],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.steps.is_empty() {
            // The value itself: fail at its start.
            return d.deserialize_any(Fail);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping or a sequence on the way to the key")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Step::Key(want), rest)) = self.steps.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        while let Some(key) = map.next_key::<String>()? {
            if &key == want {
                return map.next_value_seed(Probe { steps: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Step::Index(want), rest)) = self.steps.split_first() else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let mut i = 0;
        loop {
            if i == *want {
                return seq.next_element_seed(Probe { steps: rest }).map(|_| ());
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    // Scalars on the way: the key is not there.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Fails at whatever value it is given.
struct Fail;

impl<'de> Visitor<'de> for Fail {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(FOUND)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

/// The line and column (1-based) of the value at `path` (`sources[0].paths`) in the YAML
/// `text`, if it is there.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let steps = steps(path);
    let deserializer = serde_yaml::Deserializer::from_str(text);
    match (Probe { steps: &steps }).deserialize(deserializer) {
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "node_id: a\nsources:\n  - name: audit\n    type: file\n    paths: [x, y]\n  - {name: q, type: activemq, brokers: ['h:1']}\nbackend:\n  type: sqlite\n";

    #[test]
    fn keys_and_indices_are_found_where_they_stand() {
        assert_eq!(locate(TEXT, "node_id"), Some((1, 10)));
        assert_eq!(locate(TEXT, "sources[0].type"), Some((4, 11)));
        assert_eq!(locate(TEXT, "sources[0].paths"), Some((5, 12)));
        assert_eq!(locate(TEXT, "sources[0].paths[1]"), Some((5, 16)));
        assert_eq!(locate(TEXT, "sources[1].brokers"), Some((6, 40)));
        assert_eq!(locate(TEXT, "sources[1]"), Some((6, 5)));
        assert_eq!(locate(TEXT, "backend.type"), Some((8, 9)));
    }

    #[test]
    fn a_key_that_is_not_there_has_no_place() {
        assert_eq!(locate(TEXT, "sources[2].type"), None);
        assert_eq!(locate(TEXT, "backend.url"), None);
        assert_eq!(locate(TEXT, "node_id.deeper"), None);
        assert_eq!(locate("[", "a"), None);
    }
}
