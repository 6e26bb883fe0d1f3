//! authstat-plugins: ingestion.
//!
//! - [`parse`]: the record formats, implementing `authstat_core::ingest::Parser`: Janssen's audit
//!   log ([`parse::JanssenAuditParser`]) and JSON-lines token events
//!   ([`parse::TokenEventsParser`]).
//! - [`derive`]: the rules that turn events into monthly users and counters
//!   ([`derive::RulesDeriver`], implementing `authstat_core::ingest::Deriver`).
//! - [`tail`]: the file tailer: it follows files through rotation and truncation and hands out
//!   complete records with the checkpoint after each.
//!
//! The design decision: the tailer knows files and offsets, the parser knows where a record
//! ends. So a checkpoint always points at a record boundary, whatever the format.

pub mod derive;
pub mod parse;
pub mod tail;
