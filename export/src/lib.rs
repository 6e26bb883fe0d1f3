//! Exporters: what carries the metric registry (`authstat_core::metrics::Registry`) out of
//! the agent.
//!
//! `/metrics` (Prometheus pull) is part of the HTTP API; push exporters run beside the agent,
//! chosen through one registry ([`Exporters`]) by their key under `export:`. A new exporter is
//! its folder here (its options type and an [`Exporter`]) plus one [`ExporterKind`] in
//! [`Exporters::builtin`] (or, from outside, [`Exporters::with`]).

mod otlp;

pub use otlp::{
    ClusterUsers, ExportStats, OtlpCompression, OtlpConfig, OtlpProtocol, Settings as OtlpSettings,
    SettingsError,
};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use authstat_config::options::OptionError;
use authstat_config::{AgentConfig, ExportConfig};
use authstat_core::NodeId;
use authstat_core::store::StatStore;

use authstat_core::metrics::Registry;

/// A running push exporter.
#[async_trait]
pub trait Exporter: Send + std::fmt::Debug {
    /// Its name (the key of its section under `export:`).
    fn name(&self) -> &'static str;

    /// A last export within `deadline`, then stop. Called after the final flush, so that the
    /// last export carries the final totals.
    async fn shutdown(self: Box<Self>, deadline: Duration);
}

/// What an exporter is started with.
#[derive(Debug)]
pub struct ExporterSpec<'a> {
    /// Its options as written (`export.<name>`).
    pub options: &'a serde_yaml::Mapping,
    /// This node.
    pub node: &'a NodeId,
    /// The metric registry it reads (and registers its own collectors into).
    pub registry: Arc<Registry>,
    /// The backend (for cluster-wide figures).
    pub store: Arc<dyn StatStore>,
}

/// A kind of push exporter (a key under `export:`).
#[derive(Clone, Copy, Debug)]
pub struct ExporterKind {
    /// Its key under `export:`.
    pub name: &'static str,
    /// One line for documentation.
    pub about: &'static str,
    /// Decodes and checks its options, opening nothing and reading no environment (at load).
    pub check: fn(&serde_yaml::Mapping) -> Result<(), OptionError>,
    /// Makes its relative paths relative to `base` (the configuration file's directory).
    pub resolve_paths: fn(&mut serde_yaml::Mapping, &Path),
    /// Its settings with this process's environment for `node`: what `check-config` shows, one
    /// line each (`warning: …` for a warning), or why they cannot be used.
    pub settings: fn(&serde_yaml::Mapping, &NodeId) -> anyhow::Result<Vec<String>>,
    /// Starts it. Runs inside the tokio runtime.
    pub start: fn(ExporterSpec<'_>) -> anyhow::Result<Box<dyn Exporter>>,
}

/// The push exporters this program can start.
#[derive(Clone, Debug)]
pub struct Exporters {
    kinds: Vec<ExporterKind>,
}

impl Exporters {
    /// authstat's own exporters.
    pub fn builtin() -> Self {
        Self {
            kinds: vec![otlp::kind()],
        }
    }

    /// Adds (or replaces, by name) an exporter.
    pub fn with(mut self, kind: ExporterKind) -> Self {
        self.kinds.retain(|k| k.name != kind.name);
        self.kinds.push(kind);
        self
    }

    /// The exporters.
    pub fn kinds(&self) -> &[ExporterKind] {
        &self.kinds
    }

    fn kind(&self, name: &str) -> Result<&ExporterKind, (String, String)> {
        self.kinds.iter().find(|k| k.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.kinds.iter().map(|k| k.name).collect();
            (
                format!("export.{name}"),
                format!(
                    "unknown exporter `{name}` (the exporters: {})",
                    known.join(", ")
                ),
            )
        })
    }

    /// Every configured exporter known and its options usable (the key and the message of
    /// the first problem, for the configuration's loader to place).
    pub fn check_config(&self, config: &AgentConfig) -> Result<(), (String, String)> {
        for (name, options) in &config.export.0 {
            let kind = self.kind(name)?;
            (kind.check)(options).map_err(|e| (e.under(&format!("export.{name}")), e.message))?;
        }
        Ok(())
    }

    /// Makes the relative paths of every exporter's options relative to `base`.
    pub fn resolve_paths(&self, config: &mut ExportConfig, base: &Path) {
        for (name, options) in &mut config.0 {
            if let Ok(kind) = self.kind(name) {
                (kind.resolve_paths)(options, base);
            }
        }
    }

    /// Every configured exporter's settings with this process's environment, named: what
    /// `check-config` shows; an error names the exporter.
    pub fn settings(&self, config: &ExportConfig, node: &NodeId) -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();
        for (name, options) in &config.0 {
            let kind = self
                .kind(name)
                .map_err(|(k, m)| anyhow::anyhow!("{k}: {m}"))?;
            lines.extend((kind.settings)(options, node).with_context(|| format!("export.{name}"))?);
        }
        Ok(lines)
    }

    /// Starts the exporters the configuration asks for. Must run inside the tokio runtime.
    pub fn start(
        &self,
        config: &ExportConfig,
        node: &NodeId,
        registry: &Arc<Registry>,
        store: &Arc<dyn StatStore>,
    ) -> anyhow::Result<Vec<Box<dyn Exporter>>> {
        let mut running = Vec::new();
        for (name, options) in &config.0 {
            let kind = self
                .kind(name)
                .map_err(|(k, m)| anyhow::anyhow!("{k}: {m}"))?;
            let spec = ExporterSpec {
                options,
                node,
                registry: registry.clone(),
                store: store.clone(),
            };
            running
                .push((kind.start)(spec).with_context(|| format!("starting the {name} export"))?);
        }
        Ok(running)
    }
}
