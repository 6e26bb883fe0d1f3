//! The metric registry's data model: each metric family is defined once ([`Family`]) and read
//! by every exporter (Prometheus text on `/metrics`, OTLP push, the dashboard) from a
//! [`Snapshot`].
//!
//! The registry ([`Registry`]) is a leaf: it knows no subsystem. Each subsystem (the pipeline,
//! the HTTP API, an exporter) defines its own families and registers a [`Collector`] that reads
//! its counters; a snapshot asks every collector in the order they registered.
//!
//! Names: a family's Prometheus name is `authstat_…` (counters end in `_total`); its OTLP name
//! is the same without the `_total` and with `authstat.` in front
//! (`authstat_tokens_issued_total` → `authstat.tokens_issued`), so an OpenTelemetry Collector
//! that exports to Prometheus produces the very names a scrape of `/metrics` does.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

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

/// Defines a metric family as a `pub static`: `family!(ID, "authstat_…", Counter, "{unit}",
/// pushed, ["label", …], "Help.")`.
#[macro_export]
macro_rules! family {
    ($id:ident, $name:literal, $kind:ident, $unit:literal, $pushed:literal, [$($label:literal),*], $help:literal) => {
        #[doc = $help]
        pub static $id: $crate::metrics::Family = $crate::metrics::Family {
            name: $name,
            kind: $crate::metrics::MetricKind::$kind,
            unit: $unit,
            help: $help,
            labels: &[$($label),*],
            pushed: $pushed,
        };
    };
}

crate::family!(
    BACKEND_ERRORS,
    "authstat_backend_errors_total",
    Counter,
    "{error}",
    true,
    [],
    "Backend calls that failed (flushes and reads)."
);

/// Families with their samples, as a collector adds them. (Shared by several collectors, hence
/// defined here: [`BACKEND_ERRORS`], counted by the pipeline's flushes and the API's reads.)
pub type Families = Vec<(&'static Family, Vec<Sample>)>;

/// A subsystem's part of the registry: it reads its own counters into families it defines.
pub trait Collector: Send + Sync + fmt::Debug {
    /// Adds its families' samples now, in the order they are exposed. Two collectors may add
    /// the same family (the backend's errors are counted by the pipeline and by the API): the
    /// snapshot adds up samples with equal labels.
    fn collect(&self, out: &mut Families);

    /// When the series of `family` started counting, if not when the process did (totals
    /// continued from the backend start at their first stored month).
    fn start_time(&self, _family: &Family) -> Option<SystemTime> {
        None
    }
}

/// The agent's metric registry: the collectors, asked in the order they registered.
#[derive(Debug)]
pub struct Registry {
    collectors: RwLock<Vec<Arc<dyn Collector>>>,
    started: SystemTime,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry; its series start now.
    pub fn new() -> Self {
        Self {
            collectors: RwLock::new(Vec::new()),
            started: SystemTime::now(),
        }
    }

    /// Adds a collector (after those registered before it).
    pub fn register(&self, collector: Arc<dyn Collector>) {
        self.collectors.write().expect("lock").push(collector);
    }

    /// When the series of `family` started counting: what its collector says, else when this
    /// registry was made (the process's start).
    pub fn start_time(&self, family: &Family) -> SystemTime {
        let collectors = self.collectors.read().expect("lock");
        collectors
            .iter()
            .find_map(|c| c.start_time(family))
            .unwrap_or(self.started)
    }

    /// Every family's samples now; a family added by several collectors appears once, where it
    /// first did, with samples of equal labels added up.
    pub fn snapshot(&self) -> Snapshot {
        let collectors = self.collectors.read().expect("lock").clone();
        let mut collected = Families::new();
        for collector in &collectors {
            collector.collect(&mut collected);
        }
        let mut families: Families = Vec::with_capacity(collected.len());
        for (family, samples) in collected {
            match families.iter_mut().find(|(f, _)| f.name == family.name) {
                Some((_, existing)) => merge(existing, samples),
                None => families.push((family, samples)),
            }
        }
        Snapshot { families }
    }
}

fn merge(into: &mut Vec<Sample>, samples: Vec<Sample>) {
    for sample in samples {
        let same = into.iter_mut().find(|s| s.labels == sample.labels);
        match (same, sample.value) {
            (
                Some(Sample {
                    value: Value::Int(n),
                    ..
                }),
                Value::Int(m),
            ) => *n = n.saturating_add(m),
            (_, value) => into.push(Sample {
                labels: sample.labels,
                value,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: Family = Family {
        name: "authstat_a_total",
        kind: MetricKind::Counter,
        unit: "1",
        help: "h",
        labels: &["l"],
        pushed: true,
    };
    static B: Family = Family {
        name: "authstat_b",
        kind: MetricKind::Gauge,
        unit: "1",
        help: "h",
        labels: &[],
        pushed: false,
    };

    #[derive(Debug)]
    struct Fixed(Vec<(&'static Family, Vec<Sample>)>, Option<SystemTime>);

    impl Collector for Fixed {
        fn collect(&self, out: &mut Families) {
            out.extend(self.0.iter().cloned());
        }
        fn start_time(&self, family: &Family) -> Option<SystemTime> {
            self.1.filter(|_| family.name == A.name)
        }
    }

    #[test]
    fn collectors_are_asked_in_order_and_shared_families_add_up() {
        let registry = Registry::new();
        let early = SystemTime::UNIX_EPOCH;
        registry.register(Arc::new(Fixed(
            vec![(&A, vec![Sample::int(vec!["x".into()], 2)])],
            Some(early),
        )));
        registry.register(Arc::new(Fixed(
            vec![
                (&B, vec![Sample::int(vec![], 7)]),
                (
                    &A,
                    vec![
                        Sample::int(vec!["x".into()], 3),
                        Sample::int(vec!["y".into()], 1),
                    ],
                ),
            ],
            None,
        )));
        let snapshot = registry.snapshot();
        let names: Vec<&str> = snapshot.families.iter().map(|(f, _)| f.name).collect();
        assert_eq!(names, ["authstat_a_total", "authstat_b"]);
        assert_eq!(
            snapshot.samples("authstat_a_total"),
            [
                Sample::int(vec!["x".into()], 5),
                Sample::int(vec!["y".into()], 1)
            ]
        );
        assert_eq!(registry.start_time(&A), early);
        assert_ne!(registry.start_time(&B), early);
    }

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
