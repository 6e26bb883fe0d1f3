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

/// The `export:` section: each exporter's options by its name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExportConfig(pub BTreeMap<String, serde_yaml::Mapping>);

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
