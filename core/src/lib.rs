//! authstat-core: the domain model of authstat and the contracts its plugins implement.
//!
//! authstat reads what an OAuth/OpenID auth server writes (the Janssen audit log, token events)
//! and keeps, per month, the distinct active users and a few counters. This crate holds those
//! types and nothing that does I/O:
//!
//! - [`Month`] and [`MonthRange`]: `yyyyMM` months in UTC, strict parsing, inclusive ranges.
//! - [`hll::Hll`]: a HyperLogLog byte-for-byte compatible with java-hll 1.6.0 and
//!   postgresql-hll, so authstat's data unions with what Janssen stores and PostgreSQL reads it.
//! - [`hash`]: murmur3 (the default) and Java's `String.hashCode()` (Janssen's).
//! - [`counters`], [`event`], [`stats`]: token counts, audit counts, events, per-month stats.
//! - The plugin contracts: [`source::Source`] (where records come from),
//!   [`ingest::Parser`] (a record format), [`ingest::Deriver`] (what records mean) and
//!   [`store::StatStore`] (storage backends).
//!
//! One design decision runs through all of it: **statistics are mergeable**. Every node keeps
//! its own HLL and counters per month; a read merges nodes by HLL union and counter sums. HLL
//! union is idempotent, counters are not, which is why [`store::FlushBatch`] carries the
//! checkpoints and a sequence number together with the counter deltas.
//!
//! ```
//! use authstat_core::hash::HashAlgorithm;
//! use authstat_core::hll::{Hll, HllParams};
//! use authstat_core::{Month, MonthStats};
//!
//! let feb: Month = "202402".parse()?;
//! let hash = HashAlgorithm::Murmur3;
//!
//! // Two nodes saw overlapping users in February.
//! let mut node_a = MonthStats::new(feb, HllParams::janssen());
//! let mut node_b = MonthStats::new(feb, HllParams::janssen());
//! for user in ["alice", "bob"] {
//!     node_a.users.add_raw(hash.hash(user));
//! }
//! for user in ["bob", "carol"] {
//!     node_b.users.add_raw(hash.hash(user));
//! }
//!
//! // Reading merges them: bob is counted once.
//! node_a.merge(&node_b)?;
//! assert_eq!(node_a.monthly_active_users(), 3);
//!
//! // The stored form is java-hll's, readable by Janssen and by PostgreSQL's hll extension.
//! let bytes = node_a.users.to_bytes()?;
//! assert_eq!(Hll::from_bytes(&bytes)?, node_a.users);
//! # Ok::<(), authstat_core::Error>(())
//! ```

pub mod counters;
pub mod dims;
mod error;
pub mod event;
pub mod hash;
pub mod hll;
pub mod ingest;
pub mod metrics;
pub mod month;
pub mod source;
pub mod stats;
pub mod store;

pub use error::Error;
pub use month::{Month, MonthIter, MonthRange};
pub use stats::{ForeignUsers, MonthStats, NodeId};
