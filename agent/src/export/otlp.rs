//! OTLP push of this node's statistics (gRPC or HTTP/protobuf), with the OpenTelemetry SDK.
//!
//! The instruments are observable and made from the metric registry (`telemetry.rs`): every
//! pushed family, read from the same snapshot `/metrics` renders. The node's statistics are
//! stored totals, cumulative and continued from the backend after a restart, so a restart
//! never looks like a counter reset. Temporality is cumulative: a failed export loses nothing (the next one carries
//! the totals), so there is no queue to bound. An export is retried twice with backoff, then
//! dropped, counted (`/metrics`) and logged.
//! The SDK's periodic reader runs on its own thread: a slow or absent collector never blocks
//! ingestion or the API.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use authstat_config::{OtlpCompression, OtlpConfig, OtlpProtocol};
use authstat_core::metrics::{Family, MetricKind, Value};
use authstat_core::store::StatStore;
use authstat_core::{Month, NodeId};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

use crate::telemetry::{ExportStats, Telemetry};

/// Wraps the OTLP exporter to count and log failures.
#[derive(Debug)]
struct Counting<E> {
    inner: E,
    stats: Arc<ExportStats>,
}

/// Retries of one export, with doubling pauses from [`FIRST_BACKOFF`].
const RETRIES: u32 = 2;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

impl<E: PushMetricExporter> PushMetricExporter for Counting<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 0..=RETRIES {
            match self.inner.export(metrics).await {
                Ok(()) => {
                    self.stats.exports.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) if attempt < RETRIES => {
                    tracing::debug!(error = %e, attempt, "OTLP export failed; retrying");
                    // The SDK's reader thread is ours alone: pausing it blocks nothing else.
                    std::thread::sleep(backoff);
                    backoff *= 2;
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "OTLP export failed; dropped, the next one carries the totals");
                    return Err(e);
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// A running OTLP export.
#[derive(Debug)]
pub struct Export {
    provider: SdkMeterProvider,
    cluster: Option<tokio::task::JoinHandle<()>>,
}

#[async_trait::async_trait]
impl super::Exporter for Export {
    fn name(&self) -> &'static str {
        "otlp"
    }

    async fn shutdown(self: Box<Self>, deadline: Duration) {
        let this = *self;
        if let Some(task) = this.cluster {
            task.abort();
        }
        let provider = this.provider;
        let done = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(deadline));
        match tokio::time::timeout(deadline + Duration::from_secs(1), done).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the final OTLP export failed"),
            _ => tracing::warn!("the final OTLP export did not finish in time"),
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The OTLP exporter of `config`'s protocol, endpoint, headers, timeout and compression.
fn otlp_exporter(config: &OtlpConfig) -> anyhow::Result<opentelemetry_otlp::MetricExporter> {
    let timeout = config.timeout_secs.map(Duration::from_secs);
    let exporter = match config.protocol {
        OtlpProtocol::Grpc => {
            let mut builder = opentelemetry_otlp::MetricExporter::builder().with_tonic();
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(timeout) = timeout {
                builder = builder.with_timeout(timeout);
            }
            if config.compression == OtlpCompression::Gzip {
                builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            if !config.headers.is_empty() {
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (k, v) in &config.headers {
                    let key =
                        tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                            .with_context(|| {
                                format!("export.otlp.headers: '{k}' is not a valid header name")
                            })?;
                    let value = v
                        .parse()
                        .with_context(|| format!("export.otlp.headers.{k}: invalid value"))?;
                    metadata.insert(key, value);
                }
                builder = builder.with_metadata(metadata);
            }
            builder
                .with_temporality(Temporality::Cumulative)
                .build()
                .context("building the OTLP gRPC exporter")?
        }
        OtlpProtocol::HttpProtobuf => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut builder = opentelemetry_otlp::MetricExporter::builder().with_http();
            if config.compression == OtlpCompression::Gzip {
                builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(timeout) = timeout {
                builder = builder.with_timeout(timeout);
            }
            if !config.headers.is_empty() {
                builder = builder.with_headers(config.headers.clone().into_iter().collect());
            }
            builder
                .with_temporality(Temporality::Cumulative)
                .build()
                .context("building the OTLP HTTP exporter")?
        }
    };
    Ok(exporter)
}

/// Starts pushing. Must run inside the tokio runtime (the gRPC client is built on it).
pub fn start(
    config: &OtlpConfig,
    node: &NodeId,
    telemetry: Arc<Telemetry>,
    store: Arc<dyn StatStore>,
) -> anyhow::Result<Export> {
    let inner = otlp_exporter(config)?;
    let stats = telemetry
        .export
        .clone()
        .expect("the registry counts exports when OTLP is configured");
    let exporter = Counting { inner, stats };
    let reader = PeriodicReader::builder(exporter)
        .with_interval(Duration::from_secs(config.interval_secs))
        .build();
    let mut attributes = vec![
        KeyValue::new("service.name", config.service_name.clone()),
        KeyValue::new("service.instance.id", node.to_string()),
        KeyValue::new("host.name", host_name()),
    ];
    attributes.extend(
        config
            .resource_attributes
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    let resource = Resource::builder_empty()
        .with_attributes(attributes)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();
    let meter = provider.meter("authstat");
    // One instrument per pushed family of the registry, each reading the same snapshot.
    for (family, _) in telemetry.snapshot().families {
        if family.pushed {
            observe(&meter, family, telemetry.clone());
        }
    }
    // The cluster figure is read from the backend on the export's pace (one node of the
    // cluster should have it on: export.otlp.cluster_users).
    let cluster = config.cluster_users.then(|| {
        let family = &crate::telemetry::CLUSTER_MONTHLY_ACTIVE_USERS;
        observe(&meter, family, telemetry.clone());
        let every = Duration::from_secs(config.interval_secs);
        tokio::spawn(async move {
            loop {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                if let Ok(month) = Month::from_epoch_millis(now)
                    && let Ok(stats) = store.read_months(&[month]).await
                {
                    let users = stats.first().map_or(0, |s| s.monthly_active_users());
                    *telemetry.cluster_users.lock().expect("lock") = Some((month, users));
                }
                tokio::time::sleep(every).await;
            }
        })
    });
    Ok(Export { provider, cluster })
}

/// An observable instrument of `family` whose callback reads the family's samples from a fresh
/// snapshot; labels become attributes.
fn observe(
    meter: &opentelemetry::metrics::Meter,
    family: &'static Family,
    telemetry: Arc<Telemetry>,
) {
    let callback = move |observer: &dyn opentelemetry::metrics::AsyncInstrument<u64>| {
        let snapshot = telemetry.snapshot();
        for sample in snapshot.samples(family.name) {
            if let Value::Int(n) = sample.value {
                let attributes: Vec<KeyValue> = family
                    .labels
                    .iter()
                    .zip(&sample.labels)
                    .map(|(k, v)| KeyValue::new(*k, v.clone()))
                    .collect();
                observer.observe(n, &attributes);
            }
        }
    };
    let name = family.otlp_name();
    match family.kind {
        MetricKind::Counter => {
            meter
                .u64_observable_counter(name)
                .with_unit(family.unit)
                .with_description(family.help)
                .with_callback(move |o| callback(o))
                .build();
        }
        MetricKind::Gauge => {
            meter
                .u64_observable_gauge(name)
                .with_unit(family.unit)
                .with_description(family.help)
                .with_callback(move |o| callback(o))
                .build();
        }
        // The SDK has no observable histogram; histograms stay on /metrics.
        MetricKind::Histogram => {}
    }
}
