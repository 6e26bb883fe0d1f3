//! `GET /metrics`: this node's statistics and the agent's own telemetry, as Prometheus text
//! 0.0.4, or OpenMetrics 1.0 when the scraper asks for it (`Accept: application/openmetrics-text`).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use authstat_core::counters::CounterKey;
use authstat_core::ingest::ParseErrorKind;

use super::ApiState;
use crate::pipeline::Histogram;

/// What the scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// `text/plain; version=0.0.4`.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`, ending in `# EOF`.
    OpenMetrics,
}

impl Exposition {
    /// From the request's `Accept` header.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Exposition::OpenMetrics,
            _ => Exposition::Prometheus,
        }
    }

    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

struct Out {
    text: String,
    format: Exposition,
}

impl Out {
    /// A family header. Counters are named `…_total` in samples; OpenMetrics names the family
    /// without the suffix.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let family = match (self.format, kind) {
            (Exposition::OpenMetrics, "counter") => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let _ = writeln!(self.text, "# HELP {family} {help}\n# TYPE {family} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{k}=\"{v}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, "histogram", help);
        let mut cumulative = 0;
        for (bound, count) in h.bounds.iter().zip(&h.counts) {
            cumulative += count;
            self.sample(
                &format!("{name}_bucket"),
                &[("le", &bound.to_string())],
                cumulative,
            );
        }
        cumulative += h.over;
        self.sample(&format!("{name}_bucket"), &[("le", "+Inf")], cumulative);
        self.sample(&format!("{name}_sum"), &[], h.sum);
        self.sample(&format!("{name}_count"), &[], cumulative);
    }
}

/// The exposition of everything.
pub fn render(state: &ApiState, format: Exposition) -> String {
    let mut out = Out {
        text: String::new(),
        format,
    };
    let p = &state.pipeline;
    let totals = p.node_totals.lock().expect("lock").clone();

    out.family(
        "authstat_authorizations_total",
        "counter",
        "Audit records of this node by action and outcome, all months (stored).",
    );
    for (key, n) in totals.counters.iter() {
        if let CounterKey::Audit { action, outcome } = key {
            out.sample(
                "authstat_authorizations_total",
                &[("action", action.as_str()), ("outcome", outcome.as_str())],
                n,
            );
        }
    }
    out.family(
        "authstat_authentications_total",
        "counter",
        "User authentications of this node by outcome, by the configured rule, all months (stored).",
    );
    for (key, n) in totals.counters.iter() {
        if let CounterKey::Authentication(outcome) = key {
            out.sample(
                "authstat_authentications_total",
                &[("outcome", outcome.as_str())],
                n,
            );
        }
    }
    out.family(
        "authstat_tokens_issued_total",
        "counter",
        "Tokens issued on this node by grant type and token type, all months (stored).",
    );
    for (grant, token_type, n) in totals.counters.tokens.iter() {
        out.sample(
            "authstat_tokens_issued_total",
            &[("grant_type", grant), ("token_type", token_type)],
            n,
        );
    }
    out.family(
        "authstat_monthly_active_users",
        "gauge",
        "Distinct active users of the current month on this node (stored).",
    );
    if let Some((month, users)) = totals.current_month {
        out.sample(
            "authstat_monthly_active_users",
            &[("month", &month.to_string())],
            users,
        );
    }

    out.counter(
        "authstat_records_read_total",
        "Records read and parsed.",
        p.records.load(Ordering::Relaxed),
    );
    out.family(
        "authstat_records_skipped_total",
        "counter",
        "Records or bytes skipped, by reason.",
    );
    for kind in ParseErrorKind::ALL {
        let n = p.skipped_by_kind[kind.index()].load(Ordering::Relaxed);
        out.sample(
            "authstat_records_skipped_total",
            &[("reason", kind.as_str())],
            n,
        );
    }
    out.counter(
        "authstat_read_bytes_total",
        "Bytes read from the followed files.",
        p.bytes.load(Ordering::Relaxed),
    );
    out.gauge(
        "authstat_files_watched",
        "Files followed.",
        p.files.load(Ordering::Relaxed),
    );
    out.gauge(
        "authstat_checkpoint_lag_bytes",
        "Bytes written to the followed files but not consumed yet.",
        p.lag_bytes.load(Ordering::Relaxed),
    );
    let flush_seconds = p.flush_seconds.lock().expect("lock").clone();
    out.histogram(
        "authstat_flush_duration_seconds",
        "Duration of flushes to the backend.",
        &flush_seconds,
    );
    out.family(
        "authstat_flushes_total",
        "counter",
        "Flushes to the backend by result.",
    );
    out.sample(
        "authstat_flushes_total",
        &[("result", "success")],
        p.flushes.load(Ordering::Relaxed),
    );
    out.sample(
        "authstat_flushes_total",
        &[("result", "failure")],
        p.flush_failures.load(Ordering::Relaxed),
    );
    out.sample(
        "authstat_flushes_total",
        &[("result", "fenced")],
        p.flushes_fenced.load(Ordering::Relaxed),
    );
    out.gauge(
        "authstat_node_fenced",
        "1 when another agent took this node id over: this agent has stopped reading.",
        u64::from(p.fenced.lock().expect("lock").is_some()),
    );
    out.family(
        "authstat_source_errors_total",
        "counter",
        "Errors reading a configured path, by source and reason.",
    );
    for ((source, reason), n) in p.source_errors.lock().expect("lock").iter() {
        out.sample(
            "authstat_source_errors_total",
            &[("source", source), ("reason", reason)],
            *n,
        );
    }
    out.gauge(
        "authstat_file_claims_waiting",
        "Files not read yet because `authstat backfill` is reading them.",
        p.claims_waiting.load(Ordering::Relaxed),
    );
    let api = &state.api_stats;
    out.counter(
        "authstat_backend_errors_total",
        "Backend calls that failed (flushes and reads).",
        p.flush_failures.load(Ordering::Relaxed) + api.backend_errors.load(Ordering::Relaxed),
    );
    out.family(
        "authstat_api_requests_total",
        "counter",
        "HTTP requests answered, by status code.",
    );
    for (code, n) in api.requests.lock().expect("lock").iter() {
        out.sample(
            "authstat_api_requests_total",
            &[("code", &code.to_string())],
            n,
        );
    }
    out.family(
        "authstat_api_cache_requests_total",
        "counter",
        "Stat requests by cache result.",
    );
    out.sample(
        "authstat_api_cache_requests_total",
        &[("result", "hit")],
        api.cache_hits.load(Ordering::Relaxed),
    );
    out.sample(
        "authstat_api_cache_requests_total",
        &[("result", "miss")],
        api.cache_misses.load(Ordering::Relaxed),
    );
    if let Some(export) = &state.export_stats {
        out.family(
            "authstat_otlp_exports_total",
            "counter",
            "OTLP exports by result (a failed one is superseded by the next).",
        );
        out.sample(
            "authstat_otlp_exports_total",
            &[("result", "success")],
            export.exports.load(Ordering::Relaxed),
        );
        out.sample(
            "authstat_otlp_exports_total",
            &[("result", "failure")],
            export.failures.load(Ordering::Relaxed),
        );
    }
    if format == Exposition::OpenMetrics {
        out.text.push_str("# EOF\n");
    }
    out.text
}
