//! The plugin registry: the one place where record formats and source kinds are registered.
//!
//! [`crate::builtin`] lists authstat's own; a program embedding authstat (or a test) adds its
//! own with [`Plugins::with_format`] and [`Plugins::with_source`]. The configuration's accepted
//! `format` and `type` names, the command line's `--format` values and `check-config`'s checks
//! all come from here. Each kind keeps its table beside its modules: a new format is one file in
//! `parse/` plus its line in `parse/mod.rs`; a new source kind one module in `sources/` (with
//! its options type, [`crate::options`]) plus its line in `sources/mod.rs`.

use std::path::Path;

use authstat_config::{AgentConfig, SourceConfig};
use authstat_core::ingest::Parser;
use authstat_core::source::Source;
use authstat_core::store::SourcePosition;

use crate::options::OptionError;

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

impl SourceSpec<'_> {
    /// `error` of one of this source's options, named by its full key.
    pub fn option_error(&self, error: &OptionError) -> BuildError {
        BuildError::Option {
            key: error.under(&self.key),
            message: error.message.clone(),
        }
    }
}

/// A kind of source (`type:` of a source).
#[derive(Clone, Copy, Debug)]
pub struct SourceKind {
    /// Its name in configuration.
    pub name: &'static str,
    /// One line for documentation.
    pub about: &'static str,
    /// Whether it reads records (and so needs a `format`); a kind that reads rows (such as
    /// `janssen_stat_entries`) takes none.
    pub reads_records: bool,
    /// Decodes and checks its options (the source's keys other than `name`, `type` and
    /// `format`), without opening anything.
    pub check: fn(&serde_yaml::Mapping) -> Result<(), OptionError>,
    /// Builds one from its configuration.
    pub build: fn(SourceSpec<'_>) -> Result<Box<dyn Source>, BuildError>,
    /// For a kind that follows files: which ones, from its options and the configuration's
    /// directory (`authstat backfill` reads files itself: it leaves a file a configured source
    /// follows to that source, and takes its record limit).
    pub follows: Option<fn(&serde_yaml::Mapping, &Path) -> Option<Followed>>,
    /// What `check-config` says once when a source of this kind is configured, given the
    /// agent's settings (how its figures combine with authstat's, for example).
    pub note: Option<fn(&AgentConfig) -> String>,
    /// What `check-config` says of the certificates and keys its options name, each read and
    /// checked (relative paths from the configuration's directory): a line each starting with
    /// the option (`tls.cert_file: …`), or the option and the problem.
    pub certificates: Option<Certificates>,
    /// For a kind whose system keeps statistics of its own: everything it keeps, read at once
    /// (blocking) for `authstat import`, from the source's options.
    pub history: Option<ReadHistory>,
}

/// A source kind's certificate check for `check-config` ([`SourceKind::certificates`]).
pub type Certificates = fn(&serde_yaml::Mapping, &Path) -> Vec<Result<String, String>>;

/// Reads everything a source's system keeps, from the source's options (blocking).
pub(crate) type ReadHistory = fn(&serde_yaml::Mapping) -> Result<History, String>;

/// Everything a source's system keeps (see [`SourceKind::history`]).
#[derive(Debug)]
pub struct History {
    /// Where it was read (for messages: a database and table, without passwords).
    pub place: String,
    /// What it keeps, one item each (a row).
    pub items: Vec<HistoryItem>,
}

/// One kept item: its snapshot (with a warning when part of it could not be read), or why it
/// was skipped.
#[derive(Debug)]
pub struct HistoryItem {
    /// What it is, for messages (`row 42`).
    pub label: String,
    /// Its snapshot and a warning, or why it was skipped.
    pub result: Result<(authstat_core::store::Snapshot, Option<String>), String>,
}

/// The files a source follows (see [`SourceKind::follows`]).
pub struct Followed {
    /// Whether the source follows this (absolute) path.
    pub matches: Box<dyn Fn(&Path) -> bool>,
    /// The largest record the source reads, in bytes.
    pub max_record_bytes: usize,
}

impl std::fmt::Debug for Followed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Followed")
            .field("max_record_bytes", &self.max_record_bytes)
            .finish_non_exhaustive()
    }
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
    /// A stored position of the source does not decode (what the source says about it).
    #[error("{0}")]
    Position(String),
}

impl BuildError {
    /// The key it is about (`sources[0].paths`) and what is wrong.
    pub(crate) fn key_and_message(&self) -> (String, String) {
        match self {
            BuildError::UnknownFormat { key, name, known } => (
                format!("{key}.format"),
                format!("unknown format `{name}` (the formats: {known})"),
            ),
            BuildError::UnknownKind { key, name, known } => (
                format!("{key}.type"),
                format!("unknown source type `{name}` (the types: {known})"),
            ),
            BuildError::Option { key, message } => (key.clone(), message.clone()),
            BuildError::Position(e) => (String::new(), e.clone()),
        }
    }
}

/// The formats and source kinds authstat can use.
#[derive(Clone, Debug)]
pub struct Plugins {
    formats: Vec<Format>,
    sources: Vec<SourceKind>,
}

impl Plugins {
    /// A registry of these formats and source kinds (authstat's own: [`crate::builtin`]).
    pub fn new(formats: Vec<Format>, sources: Vec<SourceKind>) -> Self {
        Self { formats, sources }
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

    /// The kind and the format of the `index`-th configured source, checked: both known, a
    /// format given exactly when the kind reads records, and the kind's options usable. Opens
    /// nothing.
    pub(crate) fn check_source(
        &self,
        index: usize,
        config: &SourceConfig,
    ) -> Result<(&SourceKind, Option<&Format>), BuildError> {
        let key = format!("sources[{index}]");
        let names = |list: Vec<&str>| list.join(", ");
        let kind = self
            .sources
            .iter()
            .find(|s| s.name == config.kind)
            .ok_or_else(|| {
                let mut known = names(self.sources.iter().map(|s| s.name).collect());
                // The old shape named the format in `type`.
                if self.format(&config.kind).is_some() {
                    known.push_str(&format!(
                        "; `{}` is a format: `type` says where records come from and `format` \
                         what they look like",
                        config.kind
                    ));
                }
                BuildError::UnknownKind {
                    key: key.clone(),
                    name: config.kind.clone(),
                    known,
                }
            })?;
        let format = match (kind.reads_records, config.format.as_str()) {
            (true, "") => {
                return Err(BuildError::Option {
                    key: format!("{key}.type"),
                    message: format!("source type {} needs `format`", kind.name),
                });
            }
            (false, "") => None,
            (false, _) => {
                return Err(BuildError::Option {
                    key: format!("{key}.format"),
                    message: format!(
                        "source type {} takes no `format` (it reads rows, not records)",
                        kind.name
                    ),
                });
            }
            (true, name) => Some(self.format(name).ok_or_else(|| BuildError::UnknownFormat {
                key: key.clone(),
                name: name.to_owned(),
                known: names(self.formats.iter().map(|f| f.name).collect()),
            })?),
        };
        (kind.check)(&config.options).map_err(|e| BuildError::Option {
            key: e.under(&key),
            message: e.message,
        })?;
        Ok((kind, format))
    }

    /// Every source of `config` checked ([`Plugins::check_source`]): the key and the message
    /// of the first problem, for the configuration's loader to place
    /// ([`authstat_config::load_checked`]).
    pub fn check_config(&self, config: &AgentConfig) -> Result<(), (String, String)> {
        for (i, source) in config.sources.iter().enumerate() {
            if let Err(e) = self.check_source(i, source) {
                return Err(e.key_and_message());
            }
        }
        Ok(())
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
        let (kind, format) = self.check_source(index, config)?;
        let parser = format.map(|f| (f.parser)());
        (kind.build)(SourceSpec {
            config,
            key,
            base,
            parser,
            positions,
        })
    }
}
