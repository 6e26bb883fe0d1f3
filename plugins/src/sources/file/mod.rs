//! `type: file`: files followed through rotation, with its tailer ([`tail`]) in this folder.

pub mod tail;

use std::path::Path;
use std::time::Duration;

use authstat_core::source::Source;
use serde::{Deserialize, Serialize};

use crate::options::{OptionError, decode, positive};
use crate::registry::{BuildError, SourceSpec};
use tail::{PathPattern, Tailer};

/// The options of `type: file`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOptions {
    /// Files or glob patterns (`*`, `?`, `[…]`, `{a,b}` in the file name), e.g.
    /// `/opt/jans/jetty/jans-auth/logs/jans-auth_audit*.log`. Rotated files that still match
    /// are read to their end.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Where files without a stored position start.
    #[serde(default)]
    pub start_at: StartAt,
    /// Records larger than this are skipped (counted and logged), in bytes.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: u64,
    /// How often the files are checked without a file-system notification, in milliseconds
    /// (notifications are a hint; this is the safety net).
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
}

/// The largest record a file source reads unless configured otherwise (1 MiB).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

fn default_max_record_bytes() -> u64 {
    DEFAULT_MAX_RECORD_BYTES as u64
}

fn default_poll_interval_ms() -> u64 {
    1000
}

/// Where a file never seen before starts being read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// From its first byte: a fresh install counts what the current log holds.
    #[default]
    Beginning,
    /// From its end: only what is written from now on.
    End,
}

impl FileOptions {
    /// Decodes and checks the options of a file source.
    pub fn decode(options: &serde_yaml::Mapping) -> Result<Self, OptionError> {
        let o: Self = decode(options)?;
        if o.paths.is_empty() {
            return Err(OptionError::new(
                "paths",
                "source type file needs `paths` (at least one)",
            ));
        }
        positive("max_record_bytes", o.max_record_bytes)?;
        positive("poll_interval_ms", o.poll_interval_ms)?;
        Ok(o)
    }
}

/// Checks the options of a file source.
pub(super) fn check(options: &serde_yaml::Mapping) -> Result<(), OptionError> {
    FileOptions::decode(options).map(|_| ())
}

/// `type: file`: a [`Tailer`] over the configured paths; new files are claimed before they
/// are read.
pub(super) fn build_file(spec: SourceSpec<'_>) -> Result<Box<dyn Source>, BuildError> {
    let file = FileOptions::decode(&spec.config.options).map_err(|e| spec.option_error(&e))?;
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
    )
    .map_err(|e| BuildError::Position(e.to_string()))?;
    Ok(Box::new(tailer.with_claims().with_poll_interval(
        Duration::from_millis(file.poll_interval_ms),
    )))
}

/// The files a `type: file` source with these options follows ([`crate::registry::Followed`]).
pub(super) fn followed(
    options: &serde_yaml::Mapping,
    base: &Path,
) -> Option<crate::registry::Followed> {
    let file = FileOptions::decode(options).ok()?;
    let patterns = file_patterns("", base, &file.paths).ok()?;
    Some(crate::registry::Followed {
        matches: Box::new(move |path| patterns.iter().any(|p| p.matches_path(path))),
        max_record_bytes: usize::try_from(file.max_record_bytes).unwrap_or(usize::MAX),
    })
}

/// The paths of a file source, relative to `base` unless absolute.
pub(crate) fn file_patterns(
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
