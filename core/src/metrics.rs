//! The metric registry's data model: each metric family is defined once ([`Family`]) and read
//! by every exporter (Prometheus text on `/metrics`, OTLP push, the dashboard) from a
//! [`Snapshot`].
//!
//! Names: a family's Prometheus name is `authstat_…` (counters end in `_total`); its OTLP name
//! is the same without the `_total` and with `authstat.` in front
//! (`authstat_tokens_issued_total` → `authstat.tokens_issued`), so an OpenTelemetry Collector
//! that exports to Prometheus produces the very names a scrape of `/metrics` does.

use std::fmt;

/// What kind of metric a family is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only grows (within the process, and for stored totals across restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

impl MetricKind {
    /// The Prometheus `# TYPE`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One metric family: defined once, read by every exporter.
#[derive(Debug, PartialEq, Eq)]
pub struct Family {
    /// The Prometheus name (`authstat_…`, counters ending in `_total`).
    pub name: &'static str,
    /// The kind.
    pub kind: MetricKind,
    /// The unit, UCUM as OTLP wants it (`s`, `By`, `{record}`).
    pub unit: &'static str,
    /// One sentence.
    pub help: &'static str,
    /// The label names, in order.
    pub labels: &'static [&'static str],
    /// Whether OTLP pushes it (statistics and the agent's health are; per-request details are
    /// not).
    pub pushed: bool,
}

impl Family {
    /// The OTLP instrument name: `authstat_tokens_issued_total` → `authstat.tokens_issued`.
    pub fn otlp_name(&self) -> String {
        let base = self.name.strip_suffix("_total").unwrap_or(self.name);
        match base.strip_prefix("authstat_") {
            Some(rest) => format!("authstat.{rest}"),
            None => base.to_owned(),
        }
    }
}

/// A histogram's state.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramValue {
    /// Upper bounds of the buckets.
    pub bounds: Vec<f64>,
    /// Observations at or below each bound, not cumulative.
    pub counts: Vec<u64>,
    /// Observations above the last bound.
    pub over: u64,
    /// The sum of all observations.
    pub sum: f64,
}

/// A sample's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A whole number (counters and most gauges).
    Int(u64),
    /// A histogram.
    Histogram(HistogramValue),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Histogram(h) => write!(f, "histogram of {} buckets", h.bounds.len()),
        }
    }
}

/// One series of a family: its label values (in the family's label order) and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Label values.
    pub labels: Vec<String>,
    /// The value.
    pub value: Value,
}

impl Sample {
    /// A whole-number sample.
    pub fn int(labels: Vec<String>, value: u64) -> Self {
        Self {
            labels,
            value: Value::Int(value),
        }
    }
}

/// Every family with its samples, at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The families in a fixed order, each with its samples.
    pub families: Vec<(&'static Family, Vec<Sample>)>,
}

impl Snapshot {
    /// The samples of the family called `name` (its Prometheus name).
    pub fn samples(&self, name: &str) -> &[Sample] {
        self.families
            .iter()
            .find(|(f, _)| f.name == name)
            .map_or(&[], |(_, s)| s.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_names_follow_prometheus_names() {
        let f = Family {
            name: "authstat_tokens_issued_total",
            kind: MetricKind::Counter,
            unit: "{token}",
            help: "h",
            labels: &["grant_type", "token_type"],
            pushed: true,
        };
        assert_eq!(f.otlp_name(), "authstat.tokens_issued");
        let g = Family {
            name: "authstat_monthly_active_users",
            kind: MetricKind::Gauge,
            ..f
        };
        assert_eq!(g.otlp_name(), "authstat.monthly_active_users");
    }
}
