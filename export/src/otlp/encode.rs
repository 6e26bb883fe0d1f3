//! The metric registry's snapshot as an OTLP request (the official protobuf definitions).
//!
//! Counters are cumulative, monotonic sums; gauges are gauges; histograms are cumulative
//! explicit-bucket histograms. Each series carries its start time: for this node's stored
//! statistics the start of its earliest month (the same after every restart: a restart is not
//! a reset), for the process's own counters the process's start.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use authstat_core::metrics::{Family, MetricKind, Sample, Value};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// Nanoseconds since the epoch.
pub fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn key_value(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn attributes(family: &Family, sample: &Sample) -> Vec<KeyValue> {
    family
        .labels
        .iter()
        .zip(&sample.labels)
        .map(|(k, v)| key_value(k, v))
        .collect()
}

/// One family's samples as an OTLP metric, `start` and `now` in nanoseconds; `None` when it
/// has nothing to push.
pub fn metric(family: &Family, samples: &[Sample], start: u64, now: u64) -> Option<Metric> {
    let numbers = || -> Vec<NumberDataPoint> {
        samples
            .iter()
            .filter_map(|s| match s.value {
                Value::Int(n) => Some(NumberDataPoint {
                    attributes: attributes(family, s),
                    start_time_unix_nano: start,
                    time_unix_nano: now,
                    value: Some(number_data_point::Value::AsInt(
                        i64::try_from(n).unwrap_or(i64::MAX),
                    )),
                    ..Default::default()
                }),
                Value::Histogram(_) => None,
            })
            .collect()
    };
    let data = match family.kind {
        MetricKind::Counter => metric::Data::Sum(Sum {
            data_points: numbers(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        // A gauge is a value at `now`; the specification leaves its start time out.
        MetricKind::Gauge => metric::Data::Gauge(Gauge {
            data_points: numbers()
                .into_iter()
                .map(|p| NumberDataPoint {
                    start_time_unix_nano: 0,
                    ..p
                })
                .collect(),
        }),
        MetricKind::Histogram => metric::Data::Histogram(Histogram {
            data_points: samples
                .iter()
                .filter_map(|s| match &s.value {
                    Value::Histogram(h) => {
                        let mut bucket_counts = h.counts.clone();
                        bucket_counts.push(h.over);
                        Some(HistogramDataPoint {
                            attributes: attributes(family, s),
                            start_time_unix_nano: start,
                            time_unix_nano: now,
                            count: bucket_counts.iter().sum(),
                            sum: Some(h.sum),
                            bucket_counts,
                            explicit_bounds: h.bounds.clone(),
                            ..Default::default()
                        })
                    }
                    Value::Int(_) => None,
                })
                .collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
    };
    let empty = match &data {
        metric::Data::Sum(s) => s.data_points.is_empty(),
        metric::Data::Gauge(g) => g.data_points.is_empty(),
        metric::Data::Histogram(h) => h.data_points.is_empty(),
        _ => true,
    };
    (!empty).then(|| Metric {
        name: family.otlp_name(),
        description: family.help.to_owned(),
        unit: family.unit.to_owned(),
        data: Some(data),
        ..Default::default()
    })
}

/// The request for `metrics` under `resource`.
pub fn request(
    resource: &BTreeMap<String, String>,
    metrics: Vec<Metric>,
) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| key_value(k, v)).collect(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "authstat".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use authstat_core::metrics::HistogramValue;

    use super::*;

    static COUNTER: Family = Family {
        name: "authstat_tokens_issued_total",
        kind: MetricKind::Counter,
        unit: "{token}",
        help: "Tokens.",
        labels: &["grant_type"],
        pushed: true,
    };

    #[test]
    fn a_counter_is_a_cumulative_monotonic_sum_with_its_start_time() {
        let m = metric(
            &COUNTER,
            &[Sample::int(vec!["password".into()], 7)],
            1_000,
            5_000,
        )
        .unwrap();
        assert_eq!(m.name, "authstat.tokens_issued");
        assert_eq!(m.unit, "{token}");
        let Some(metric::Data::Sum(sum)) = m.data else {
            panic!("{m:?}")
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.aggregation_temporality, 2);
        let p = &sum.data_points[0];
        assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (1_000, 5_000));
        assert_eq!(p.value, Some(number_data_point::Value::AsInt(7)));
        assert_eq!(p.attributes, vec![key_value("grant_type", "password")]);
    }

    #[test]
    fn a_gauge_has_no_start_time_and_nothing_is_no_metric() {
        let gauge = Family {
            kind: MetricKind::Gauge,
            ..COUNTER
        };
        let m = metric(&gauge, &[Sample::int(vec!["x".into()], 3)], 1_000, 5_000).unwrap();
        let Some(metric::Data::Gauge(g)) = m.data else {
            panic!("{m:?}")
        };
        assert_eq!(g.data_points[0].start_time_unix_nano, 0);
        assert!(metric(&COUNTER, &[], 1, 2).is_none());
    }

    #[test]
    fn a_histogram_has_one_bucket_more_than_bounds() {
        let family = Family {
            kind: MetricKind::Histogram,
            labels: &[],
            ..COUNTER
        };
        let sample = Sample {
            labels: vec![],
            value: Value::Histogram(HistogramValue {
                bounds: vec![0.1, 1.0],
                counts: vec![2, 3],
                over: 1,
                sum: 4.5,
            }),
        };
        let m = metric(&family, &[sample], 1, 2).unwrap();
        let Some(metric::Data::Histogram(h)) = m.data else {
            panic!("{m:?}")
        };
        let p = &h.data_points[0];
        assert_eq!(p.bucket_counts, vec![2, 3, 1]);
        assert_eq!(p.explicit_bounds, vec![0.1, 1.0]);
        assert_eq!((p.count, p.sum), (6, Some(4.5)));
    }
}
