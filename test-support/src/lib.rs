//! What authstat's tests share, written once: a dev-dependency of the other crates.
//!
//! - [`env`]: the test servers' environment (`required_env`) and names no other test uses;
//! - [`certs`]: a throwaway CA made in the test, and the certificates it signs;
//! - [`db`]: throwaway PostgreSQL and MariaDB databases on the servers `scripts/test` starts;
//! - [`files`]: appending to logs the way an auth server does;
//! - [`janssen`]: Janssen audit records and token events as the server writes them;
//! - [`truth`]: a generator of audit records that counts what it writes itself, by the
//!   documented derivation rules, without any of the agent's code (the ground truth);
//! - [`rng`]: seeded randomness;
//! - [`token`]: static API tokens as the configuration holds them.

pub mod certs;
pub mod db;
pub mod env;
pub mod files;
pub mod janssen;
pub mod rng;
pub mod token;
pub mod truth;
