//! The API's counters and their metric families: requests, the answer cache, and the backend
//! reads that failed (the connections' are in `http`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use authstat_core::metrics::{BACKEND_ERRORS, Collector, Families, Sample};

authstat_core::family!(
    API_REQUESTS,
    "authstat_api_requests_total",
    Counter,
    "{request}",
    false,
    ["code"],
    "HTTP requests answered, by status code."
);

authstat_core::family!(
    API_CACHE,
    "authstat_api_cache_requests_total",
    Counter,
    "{request}",
    false,
    ["result"],
    "Stat requests by cache result."
);

/// The API's own counters (a collector of the metric registry).
#[derive(Debug, Default)]
pub struct ApiStats {
    /// Responses by status code (a std mutex: one short insert per request).
    pub requests: Mutex<std::collections::BTreeMap<u16, u64>>,
    /// Stat requests answered from the cache.
    pub cache_hits: AtomicU64,
    /// Stat requests that read the backend.
    pub cache_misses: AtomicU64,
    /// Backend reads that failed.
    pub backend_errors: AtomicU64,
}

pub(crate) fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

pub(crate) fn by<const N: usize>(rows: [(&str, &AtomicU64); N]) -> Vec<Sample> {
    rows.iter()
        .map(|(label, n)| Sample::int(vec![(*label).to_owned()], load(n)))
        .collect()
}

impl Collector for ApiStats {
    fn collect(&self, out: &mut Families) {
        let requests = self.requests.lock().expect("lock").clone();
        out.extend([
            (
                &API_REQUESTS,
                requests
                    .into_iter()
                    .map(|(code, n)| Sample::int(vec![code.to_string()], n))
                    .collect(),
            ),
            (
                &API_CACHE,
                by([("hit", &self.cache_hits), ("miss", &self.cache_misses)]),
            ),
            (
                &BACKEND_ERRORS,
                vec![Sample::int(Vec::new(), load(&self.backend_errors))],
            ),
        ]);
    }
}
