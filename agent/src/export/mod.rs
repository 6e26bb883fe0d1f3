//! Exporters: what carries the metric registry (`crate::telemetry`) out of the agent.
//!
//! `/metrics` (Prometheus pull) is part of the HTTP API; push exporters run beside the agent
//! and are started here, in one place, from the `export:` section. A new exporter is a module
//! here, one line in [`start`], and its options in authstat-config.

mod otlp;

pub use otlp::{Settings as OtlpSettings, SettingsError};

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use authstat_config::ExportConfig;
use authstat_core::NodeId;
use authstat_core::store::StatStore;

use crate::telemetry::Telemetry;

/// A running push exporter.
#[async_trait]
pub trait Exporter: Send + std::fmt::Debug {
    /// Its name (the key of its section under `export:`).
    fn name(&self) -> &'static str;

    /// A last export within `deadline`, then stop. Called after the final flush, so that the
    /// last export carries the final totals.
    async fn shutdown(self: Box<Self>, deadline: Duration);
}

/// The OTLP settings `config` resolves to with this process's environment (checked when the
/// configuration is loaded, shown by `check-config`).
pub fn otlp_settings(
    config: &authstat_config::OtlpConfig,
    node: &NodeId,
) -> Result<OtlpSettings, SettingsError> {
    otlp::settings(config, node)
}

/// Starts the exporters the configuration asks for. Must run inside the tokio runtime.
pub fn start(
    config: &ExportConfig,
    node: &NodeId,
    telemetry: &Arc<Telemetry>,
    store: &Arc<dyn StatStore>,
) -> anyhow::Result<Vec<Box<dyn Exporter>>> {
    let mut running: Vec<Box<dyn Exporter>> = Vec::new();
    if let Some(otlp) = &config.otlp {
        let exporter = otlp::start(otlp, node, telemetry.clone(), store.clone())
            .context("starting the OTLP export")?;
        running.push(Box::new(exporter));
    }
    Ok(running)
}
