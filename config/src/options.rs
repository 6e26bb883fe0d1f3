//! A plugin's options: the keys of its configuration section as written, decoded into the
//! plugin's own type (serde, `deny_unknown_fields`). An error names the key (relative to the
//! section) so that the configuration's loader can put its line and column in front of it.

use serde::de::DeserializeOwned;

pub use crate::values::optional_positive_u64;

/// An option that cannot be used: its key within the section (`paths[1]`; empty: the section
/// itself) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    /// The key, relative to the plugin's section.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl OptionError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The key below `section` (`sources[0]` + `paths` → `sources[0].paths`).
    pub fn under(&self, section: &str) -> String {
        match self.key.as_str() {
            "" => section.to_owned(),
            key if key.starts_with('[') => format!("{section}{key}"),
            key => format!("{section}.{key}"),
        }
    }
}

/// Decodes `options` (the section's keys other than the envelope's) as `T`.
pub fn decode<T: DeserializeOwned>(options: &serde_yaml::Mapping) -> Result<T, OptionError> {
    let value = serde_yaml::Value::Mapping(options.clone());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut key = e.path().to_string();
        if key == "." {
            key.clear();
        }
        let message = e.inner().to_string();
        // A missing key is the key's error, not the section's (an unknown one is in the path
        // already).
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            key = if key.is_empty() {
                field.to_owned()
            } else {
                format!("{key}.{field}")
            };
        }
        OptionError { key, message }
    })
}

/// A positive whole number (`0` is refused with the key's name).
pub fn positive(key: &str, value: u64) -> Result<u64, OptionError> {
    if value == 0 {
        return Err(OptionError::new(
            key,
            format!("`{key}` must be greater than 0"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "decoded only")]
    struct Toy {
        paths: Vec<String>,
        #[serde(default)]
        every: u64,
    }

    fn mapping(text: &str) -> serde_yaml::Mapping {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn errors_name_their_key() {
        let e = decode::<Toy>(&mapping("{paths: [a], pathz: [b]}")).unwrap_err();
        assert_eq!(e.key, "pathz", "{e:?}");
        assert!(e.message.contains("unknown field `pathz`"), "{e:?}");
        assert_eq!(e.under("sources[0]"), "sources[0].pathz");
        let e = decode::<Toy>(&mapping("{paths: [a, [b]]}")).unwrap_err();
        assert_eq!(e.key, "paths[1]", "{e:?}");
        assert_eq!(e.under("sources[2]"), "sources[2].paths[1]");
        let e = decode::<Toy>(&mapping("{every: 3}")).unwrap_err();
        assert_eq!(e.key, "paths", "{e:?}");
        assert!(decode::<Toy>(&mapping("{paths: [a]}")).is_ok());
    }
}
