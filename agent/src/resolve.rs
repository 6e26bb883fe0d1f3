//! From the configuration file to runtime settings: node id, paths relative to the file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use authstat_backends::Backends;
use authstat_config::AgentConfig;
use authstat_core::NodeId;
use authstat_plugins::Plugins;

/// A configuration with everything relative resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The file it came from.
    pub file: PathBuf,
    /// The configuration, with the backend's relative paths made absolute.
    pub config: AgentConfig,
    /// This node's id.
    pub node: NodeId,
    /// The configuration file's directory (absolute): relative paths are relative to it.
    pub base: PathBuf,
    /// The formats and source kinds the configuration may name.
    pub plugins: Plugins,
    /// The backend types the configuration may name.
    pub backends: Backends,
    /// The push exporters the configuration may name.
    pub exporters: authstat_export::Exporters,
}

/// The four registries a configuration is read against: sources and formats, backends,
/// exporters. [`Registries::builtin`] has authstat's own; a program embedding authstat (or a
/// test) adds its own to each.
#[derive(Debug, Clone)]
pub struct Registries {
    /// Source kinds and record formats.
    pub plugins: Plugins,
    /// Backend types.
    pub backends: Backends,
    /// Push exporters.
    pub exporters: authstat_export::Exporters,
}

impl Registries {
    /// authstat's own.
    pub fn builtin() -> Self {
        Self {
            plugins: authstat_plugins::builtin(),
            backends: Backends::builtin(),
            exporters: authstat_export::Exporters::builtin(),
        }
    }

    /// Every check of `config` the registries make (kinds known, options usable), without
    /// opening anything: the key and the message of the first problem, for
    /// [`authstat_config::load_checked`] to place.
    pub fn check(&self, config: &AgentConfig) -> Result<(), (String, String)> {
        self.backends.check_config(config)?;
        self.exporters.check_config(config)?;
        self.plugins.check_config(config)
    }
}

/// Resolves paths against the directory of `file`, with authstat's own plugins.
pub fn resolve(file: &Path, config: AgentConfig) -> anyhow::Result<Resolved> {
    resolve_with(file, config, authstat_plugins::builtin())
}

/// Resolves paths against the directory of `file`, and checks every source against `plugins`
/// (its format and type are known, its options usable).
pub fn resolve_with(
    file: &Path,
    config: AgentConfig,
    plugins: Plugins,
) -> anyhow::Result<Resolved> {
    resolve_against(
        file,
        config,
        Registries {
            plugins,
            ..Registries::builtin()
        },
    )
}

/// Resolves paths against the directory of `file`, and checks the configuration against
/// `registries` (every source, the backend and the exporters).
pub fn resolve_against(
    file: &Path,
    mut config: AgentConfig,
    registries: Registries,
) -> anyhow::Result<Resolved> {
    let Registries {
        plugins,
        backends,
        exporters,
    } = registries;
    let base = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = base
        .canonicalize()
        .with_context(|| format!("resolving {}", base.display()))?;
    let node = match &config.node_id {
        Some(node) => node.clone(),
        None => {
            let host = authstat_runtime::host_name().unwrap_or_else(|| "authstat".into());
            NodeId::new(host.clone()).with_context(|| {
                format!("the host name '{host}' is not a valid node_id: set node_id")
            })?
        }
    };
    crate::logging::check_level(&config.logging.level)
        .map_err(|e| anyhow::anyhow!("logging.level: {e}"))?;
    exporters
        .check_config(&config)
        .map_err(|(key, message)| anyhow::anyhow!("{key}: {message}"))?;
    exporters.resolve_paths(&mut config.export, &base);
    if let Some(tls) = &mut config.api.tls {
        for path in [&mut tls.cert_file, &mut tls.key_file]
            .into_iter()
            .chain(tls.client_ca_file.as_mut())
        {
            *path = base.join(&*path);
        }
    }
    exporters.settings(&config.export, &node)?;
    backends
        .check_config(&config)
        .map_err(|(key, message)| anyhow::anyhow!("{key}: {message}"))?;
    backends.resolve_paths(&mut config.backend, &base);
    if let Some(feature) = backends.missing_feature(&config.backend) {
        anyhow::bail!(
            "backend.type: {kind}: this authstat was built without the `{feature}` feature; build \
             it with `cargo build --release -p authstat --features {feature}` (or \
             `--features all-backends`), or use the container image, which has every backend",
            kind = config.backend.kind()
        );
    }
    // Built once with nothing stored: the format, the type and the options are usable.
    for (i, source) in config.sources.iter().enumerate() {
        plugins.build_source(i, source, &base, &[])?;
    }
    Ok(Resolved {
        file: file.to_path_buf(),
        config,
        node,
        base,
        plugins,
        backends,
        exporters,
    })
}

#[cfg(test)]
mod tests {
    /// A backend this build lacks is a configuration error naming the feature to build with.
    #[test]
    fn a_backend_not_compiled_in_names_its_feature() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authstat.yaml");
        let text = "sources: [{name: a, type: file, format: janssen_audit, paths: [x.log]}]\n\
                    backend: {type: postgres, url: \"postgres://db/stats\"}\n";
        std::fs::write(&path, text).unwrap();
        let config = authstat_config::load(&path, &std::collections::HashMap::new()).unwrap();
        let result = super::resolve(&path, config);
        if cfg!(feature = "postgres") {
            assert!(result.is_ok());
        } else {
            let err = result.unwrap_err().to_string();
            assert!(
                err.contains("built without the `postgres` feature")
                    && err.contains("--features postgres"),
                "{err}"
            );
        }
    }
}
