//! authstat-plugins: ingestion.
//!
//! - [`parse`]: the record formats, implementing `authstat_core::ingest::Parser`: Janssen's audit
//!   log ([`parse::JanssenAuditParser`]) and JSON-lines token events
//!   ([`parse::TokenEventsParser`]).
//! - [`derive`]: the rules that turn events into monthly users and counters
//!   ([`derive::RulesDeriver`], implementing `authstat_core::ingest::Deriver`).
//! - [`tail`]: the file source: it follows files through rotation, copies and truncation and
//!   hands out complete records (implementing `authstat_core::source::Source`).
//! - [`registry`]: [`Plugins`], the one place where formats and source kinds are registered.
//!
//! The design decision: the tailer knows files and offsets, the parser knows where a record
//! ends. So a stored position always points at a record boundary, whatever the format.

pub mod backoff;
pub mod derive;
/// Decoding a plugin's options (the configuration crate's, shared by every kind of plugin).
pub use authstat_config::options;
pub mod parse;
pub mod registry;
pub mod sources;
/// The tailer of the file source (`sources::file::tail`), for the agent's backfill.
pub use sources::file::tail;

pub use registry::Plugins;

/// authstat's own formats and source kinds: the one place that lists them (the registry
/// itself knows no plugin).
pub fn builtin() -> Plugins {
    Plugins::new(parse::formats(), sources::kinds())
}
