//! authstat-plugins: ingestion and export.
//!
//! Not built yet. This crate will hold the file tailer (notify plus polling, rotation and
//! truncation handling, checkpoints), the parsers that implement `authstat_core::ingest::Parser`
//! (the Janssen audit log, JSON-lines token events), the derivation rules that implement
//! `authstat_core::ingest::Deriver`, and the OTLP and Prometheus exporters.
