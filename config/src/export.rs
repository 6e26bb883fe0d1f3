//! The `export:` section: push exporters by name (`otlp`, or one a plugin registers), each with
//! its options as written. Which exporters exist, and their options, are the exporters
//! registry's (the agent's `export` module).
//!
//! ```yaml
//! export:
//!   otlp:
//!     endpoint: http://otel-collector:4318/v1/metrics
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `export:` section: each exporter's options by its name. An exporter whose section is
/// empty (`otlp:` alone) is not configured, as before; `otlp: {}` is, with its defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "BTreeMap<String, Option<serde_yaml::Mapping>>")]
pub struct ExportConfig(pub BTreeMap<String, serde_yaml::Mapping>);

impl From<BTreeMap<String, Option<serde_yaml::Mapping>>> for ExportConfig {
    fn from(written: BTreeMap<String, Option<serde_yaml::Mapping>>) -> Self {
        Self(
            written
                .into_iter()
                .filter_map(|(name, options)| Some((name, options?)))
                .collect(),
        )
    }
}

impl ExportConfig {
    /// The options of exporter `name`, if it is configured.
    pub fn get(&self, name: &str) -> Option<&serde_yaml::Mapping> {
        self.0.get(name)
    }

    /// Whether no exporter is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_section_is_no_exporter_and_braces_are_one_with_defaults() {
        let c: ExportConfig = serde_yaml::from_str("otlp:\n").unwrap();
        assert!(c.is_empty());
        let c: ExportConfig = serde_yaml::from_str("otlp: {}\n").unwrap();
        assert_eq!(c.get("otlp"), Some(&serde_yaml::Mapping::new()));
    }
}
