//! `type: file`: files followed through rotation (the tailer, `crate::tail`).

use std::path::Path;
use std::time::Duration;

use authstat_config::{SourceKind as SourceKindConfig, StartAt};
use authstat_core::source::Source;

use crate::registry::{BuildError, SourceSpec};
use crate::tail::{PathPattern, Tailer};

/// `type: file`: a [`Tailer`] over the configured paths; new files are claimed before they
/// are read.
pub(super) fn build_file(spec: SourceSpec<'_>) -> Result<Box<dyn Source>, BuildError> {
    let SourceKindConfig::File(file) = &spec.config.kind else {
        return Err(BuildError::Option {
            key: spec.key,
            message: "type file takes paths, not `options`".into(),
        });
    };
    let patterns = file_patterns(&spec.key, spec.base, &file.paths)?;
    let parser = spec.parser.ok_or_else(|| BuildError::Option {
        key: format!("{}.format", spec.key),
        message: "type file needs a format".into(),
    })?;
    let tailer = Tailer::new(
        spec.config.name.clone(),
        patterns,
        parser,
        file.max_record_bytes as usize,
        file.start_at == StartAt::End,
        spec.positions,
    )?;
    Ok(Box::new(tailer.with_claims().with_poll_interval(
        Duration::from_millis(file.poll_interval_ms),
    )))
}

/// The paths of a file source, relative to `base` unless absolute.
pub fn file_patterns(
    key: &str,
    base: &Path,
    paths: &[String],
) -> Result<Vec<PathPattern>, BuildError> {
    paths
        .iter()
        .enumerate()
        .map(|(j, path)| {
            PathPattern::new(base, path).map_err(|why| BuildError::Option {
                key: format!("{key}.paths[{j}]"),
                message: format!("'{path}': {why}"),
            })
        })
        .collect()
}
