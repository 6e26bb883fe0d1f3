//! The plugin registry: the one place where record formats and source kinds are registered.
//!
//! [`Plugins::builtin`] lists authstat's own; a program embedding authstat (or a test) adds its
//! own with [`Plugins::with_format`] and [`Plugins::with_source`]. The configuration's accepted
//! `format` and `type` names, the command line's `--format` values and `check-config`'s checks
//! all come from here. Each kind keeps its table beside its modules: a new format is one file in
//! `parse/` plus its line in `parse/mod.rs`; a new source kind one module in `sources/` plus its
//! line in `sources/mod.rs` (and its options in authstat-config if it is built in).

use std::path::{Path, PathBuf};

use authstat_config::{SourceConfig, SourceKind as SourceKindConfig};
use authstat_core::ingest::Parser;
use authstat_core::source::Source;
use authstat_core::store::SourcePosition;

pub use crate::sources::file::file_patterns;
use crate::tail::PositionError;

/// A record format.
#[derive(Clone, Copy, Debug)]
pub struct Format {
    /// Its name in configuration (`format:`) and on the command line.
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// Makes its parser.
    pub parser: fn() -> Box<dyn Parser>,
}

/// What a source kind is built from.
#[derive(Debug)]
pub struct SourceSpec<'a> {
    /// The source's configuration.
    pub config: &'a SourceConfig,
    /// Where it stands in the configuration (`sources[2]`), for errors.
    pub key: String,
    /// The configuration file's directory: relative paths are relative to it.
    pub base: &'a Path,
    /// The parser of its format (`None` for a kind that reads no records, such as
    /// `janssen_stat_entries`).
    pub parser: Option<Box<dyn Parser>>,
    /// The stored positions of the node (a source takes its own by name).
    pub positions: &'a [SourcePosition],
}

/// A kind of source (`type:` of a source).
#[derive(Clone, Copy, Debug)]
pub struct SourceKind {
    /// Its name in configuration.
    pub name: &'static str,
    /// One line for documentation.
    pub about: &'static str,
    /// Builds one from its configuration.
    pub build: fn(SourceSpec<'_>) -> Result<Box<dyn Source>, BuildError>,
}

/// Why a source could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A format the registry does not know.
    #[error("{key}.format: unknown format `{name}` (the formats: {known})")]
    UnknownFormat {
        /// `sources[i]`.
        key: String,
        /// The name given.
        name: String,
        /// The names known.
        known: String,
    },
    /// A source kind the registry does not know.
    #[error("{key}.type: unknown source type `{name}` (the types: {known})")]
    UnknownKind {
        /// `sources[i]`.
        key: String,
        /// The name given.
        name: String,
        /// The names known.
        known: String,
    },
    /// An option the kind cannot use.
    #[error("{key}: {message}")]
    Option {
        /// `sources[i].option`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A stored position of the source does not decode.
    #[error(transparent)]
    Position(#[from] PositionError),
}

/// The formats and source kinds authstat can use.
#[derive(Clone, Debug)]
pub struct Plugins {
    formats: Vec<Format>,
    sources: Vec<SourceKind>,
}

impl Plugins {
    /// authstat's own plugins.
    pub fn builtin() -> Self {
        Self {
            formats: crate::parse::formats(),
            sources: crate::sources::kinds(),
        }
    }

    /// Adds (or replaces, by name) a format.
    pub fn with_format(mut self, format: Format) -> Self {
        self.formats.retain(|f| f.name != format.name);
        self.formats.push(format);
        self
    }

    /// Adds (or replaces, by name) a source kind.
    pub fn with_source(mut self, kind: SourceKind) -> Self {
        self.sources.retain(|s| s.name != kind.name);
        self.sources.push(kind);
        self
    }

    /// The formats.
    pub fn formats(&self) -> &[Format] {
        &self.formats
    }

    /// The format called `name`.
    pub fn format(&self, name: &str) -> Option<&Format> {
        self.formats.iter().find(|f| f.name == name)
    }

    /// The source kinds.
    pub fn source_kinds(&self) -> &[SourceKind] {
        &self.sources
    }

    /// Builds the `index`-th configured source, resuming from `positions`.
    pub fn build_source(
        &self,
        index: usize,
        config: &SourceConfig,
        base: &Path,
        positions: &[SourcePosition],
    ) -> Result<Box<dyn Source>, BuildError> {
        let key = format!("sources[{index}]");
        let names = |list: Vec<&str>| list.join(", ");
        // A kind that reads rows rather than records has no format (the configuration made
        // sure of it).
        let parser = match matches!(config.kind, SourceKindConfig::JanssenStatEntries(_)) {
            true => None,
            false => Some((self
                .format(&config.format)
                .ok_or_else(|| BuildError::UnknownFormat {
                    key: key.clone(),
                    name: config.format.clone(),
                    known: names(self.formats.iter().map(|f| f.name).collect()),
                })?
                .parser)()),
        };
        let kind = self
            .sources
            .iter()
            .find(|s| s.name == config.kind.name())
            .ok_or_else(|| BuildError::UnknownKind {
                key: key.clone(),
                name: config.kind.name().to_owned(),
                known: names(self.sources.iter().map(|s| s.name).collect()),
            })?;
        (kind.build)(SourceSpec {
            config,
            key,
            base,
            parser,
            positions,
        })
    }
}

/// The directory of a configuration file (its relative paths are relative to it).
pub fn base_dir(config_file: &Path) -> PathBuf {
    config_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}
