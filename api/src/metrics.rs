//! `GET /metrics`: this node's statistics and the agent's own telemetry, as Prometheus text
//! 0.0.4, or OpenMetrics 1.0 when the scraper asks for it (`Accept: application/openmetrics-text`).

use std::fmt::Write;

use authstat_core::metrics::{HistogramValue, Snapshot, Value};

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
    pub(crate) fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Exposition::OpenMetrics,
            _ => Exposition::Prometheus,
        }
    }

    /// The response's content type.
    pub(crate) fn content_type(self) -> &'static str {
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

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramValue) {
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (bound, count) in h.bounds.iter().zip(&h.counts) {
            cumulative += count;
            let le = bound.to_string();
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        cumulative += h.over;
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, cumulative);
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }
}

/// The exposition of a snapshot: every family, its `# HELP` and `# TYPE`, its samples.
pub fn render(snapshot: &Snapshot, format: Exposition) -> String {
    let mut out = Out {
        text: String::new(),
        format,
    };
    for (family, samples) in &snapshot.families {
        out.family(family.name, family.kind.as_str(), family.help);
        for sample in samples {
            let labels: Vec<(&str, &str)> = family
                .labels
                .iter()
                .copied()
                .zip(sample.labels.iter().map(String::as_str))
                .collect();
            match &sample.value {
                Value::Int(n) => out.sample(family.name, &labels, n),
                Value::Histogram(h) => out.histogram(family.name, &labels, h),
            }
        }
    }
    if format == Exposition::OpenMetrics {
        out.text.push_str("# EOF\n");
    }
    out.text
}
