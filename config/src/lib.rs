//! authstat-config: the YAML configuration of the authstat agent.
//!
//! Not built yet. This crate will hold the serde structs of the configuration file (node id,
//! listen address, sources, backend, HLL settings, flush interval, API, OTLP export, logging),
//! `${VAR}` expansion, and syntactic validation with errors that name the file, line and key.
//! It does no I/O beyond reading the file and opens no connections.
