//! From the configuration file to runtime settings: node id, paths relative to the file.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use authstat_config::{AgentConfig, BackendConfig, SourceConfig};
use authstat_core::NodeId;
use authstat_plugins::tail::PathPattern;

/// A configuration with everything relative resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The file it came from.
    pub file: PathBuf,
    /// The configuration, with the backend's relative paths made absolute.
    pub config: AgentConfig,
    /// This node's id.
    pub node: NodeId,
    /// Per source, its path patterns.
    pub patterns: Vec<Vec<PathPattern>>,
}

/// The host name (Linux), the default node id.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_owned()).filter(|n| !n.is_empty())
}

/// Resolves paths against the directory of `file`.
pub fn resolve(file: &Path, mut config: AgentConfig) -> anyhow::Result<Resolved> {
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
            let host = host_name().unwrap_or_else(|| "authstat".into());
            NodeId::new(host.clone()).with_context(|| {
                format!("the host name '{host}' is not a valid node_id: set node_id")
            })?
        }
    };
    if let BackendConfig::Sqlite(sqlite) = &mut config.backend
        && sqlite.path.is_relative()
    {
        sqlite.path = base.join(&sqlite.path);
    }
    let patterns = config
        .sources
        .iter()
        .enumerate()
        .map(|(i, source)| source_patterns(&base, i, source))
        .collect::<anyhow::Result<_>>()?;
    Ok(Resolved {
        file: file.to_path_buf(),
        config,
        node,
        patterns,
    })
}

fn source_patterns(
    base: &Path,
    i: usize,
    source: &SourceConfig,
) -> anyhow::Result<Vec<PathPattern>> {
    source
        .paths
        .iter()
        .enumerate()
        .map(|(j, path)| match PathPattern::new(base, path) {
            Some(p) => Ok(p),
            None => bail!(
                "sources[{i}].paths[{j}]: '{path}': wildcards are allowed in the file name only"
            ),
        })
        .collect()
}
