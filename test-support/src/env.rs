//! The test servers' environment.

use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable `name`, or a failure that says how to run the suite: a test that
/// needs a server never passes without it.
pub fn required_env(name: &str, what: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the {what} tests need a running server. Run the suite with \
             scripts/test, which starts a throwaway one."
        )
    })
}

/// `prefix_<pid>_<n>`: a name no other test (of any process) uses, valid as a database name.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{n}", std::process::id())
}
