//! authstat-backends: storage backends behind `authstat_core::store::StatStore`.
//!
//! Not built yet. This crate will hold the memory backend, the SQL backends via diesel
//! (SQLite as the embedded default, PostgreSQL, MySQL/MariaDB) and MongoDB, and one factory that
//! builds an `Arc<dyn StatStore>` from the configuration's `backend:` section.
