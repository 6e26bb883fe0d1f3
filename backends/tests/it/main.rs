//! The backend conformance suite: the same tests against every backend, each on a database of
//! its own, plus tests of what only one backend has. Run through `scripts/test`, which starts
//! the servers; a server that is not there fails the suite, it is never skipped.

mod conformance;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod killed;
mod migration;
mod support;

mod memory;
#[cfg(feature = "mongodb")]
mod mongo_proxy;
#[cfg(feature = "mongodb")]
mod mongodb;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "mongodb"))]
mod tls;
mod toy;
