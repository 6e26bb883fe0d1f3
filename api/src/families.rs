//! The API's metric families and collectors: requests, the answer cache, connections, and the
//! backend reads that failed.

use std::sync::atomic::{AtomicU64, Ordering};

use authstat_core::metrics::{BACKEND_ERRORS, Collector, Families, Sample};

use super::ApiStats;
use crate::http::ConnectionStats;

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

authstat_core::family!(
    API_CONNECTIONS,
    "authstat_api_connections",
    Gauge,
    "{connection}",
    false,
    [],
    "HTTP connections open now (at most api.max_connections)."
);

authstat_core::family!(
    API_CONNECTION_EVENTS,
    "authstat_api_connection_events_total",
    Counter,
    "{event}",
    false,
    ["event"],
    "Idle connections closed to make room (evicted), new ones closed because all were busy (refused), failed accepts (accept_error)."
);

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn by<const N: usize>(rows: [(&str, &AtomicU64); N]) -> Vec<Sample> {
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

impl Collector for ConnectionStats {
    fn collect(&self, out: &mut Families) {
        out.extend([
            (
                &API_CONNECTIONS,
                vec![Sample::int(Vec::new(), load(&self.open))],
            ),
            (
                &API_CONNECTION_EVENTS,
                by([
                    ("evicted", &self.evicted),
                    ("refused", &self.refused),
                    ("accept_error", &self.accept_errors),
                ]),
            ),
        ]);
    }
}
