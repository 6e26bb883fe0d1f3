//! OTLP push of this node's statistics (gRPC or HTTP/protobuf), with the OpenTelemetry SDK.
//!
//! The instruments are observable and read what `/metrics` reads: the node's stored totals,
//! cumulative and continued from the backend after a restart, so a restart never looks like a
//! counter reset. Temporality is cumulative: a failed export loses nothing (the next one carries
//! the totals), so there is no queue to bound. An export is retried twice with backoff, then
//! dropped, counted (`/metrics`) and logged.
//! The SDK's periodic reader runs on its own thread: a slow or absent collector never blocks
//! ingestion or the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use authstat_config::{OtlpCompression, OtlpConfig, OtlpProtocol};
use authstat_core::counters::{CounterKey, Outcome};
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

use crate::pipeline::PipelineStats;

/// Counters of the exporter, for `/metrics`.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Exports delivered.
    pub exports: AtomicU64,
    /// Exports that failed (dropped: the next one carries the cumulative totals).
    pub failures: AtomicU64,
}

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
    /// The exporter's counters.
    pub stats: Arc<ExportStats>,
    cluster: Option<tokio::task::JoinHandle<()>>,
}

impl Export {
    /// A final export within `deadline`, then stop.
    pub async fn shutdown(self, deadline: Duration) {
        if let Some(task) = self.cluster {
            task.abort();
        }
        let provider = self.provider;
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

/// Starts pushing. Must run inside the tokio runtime (the gRPC client is built on it).
pub fn start(
    config: &OtlpConfig,
    node: &NodeId,
    pipeline: Arc<PipelineStats>,
    store: Arc<dyn StatStore>,
) -> anyhow::Result<Export> {
    let timeout = config.timeout_secs.map(Duration::from_secs);
    let inner = match config.protocol {
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
    let stats = Arc::new(ExportStats::default());
    let exporter = Counting {
        inner,
        stats: stats.clone(),
    };
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

    let totals = pipeline.clone();
    meter
        .u64_observable_counter("authstat.authorizations")
        .with_unit("{record}")
        .with_description("Audit records of this node by action and outcome, all months.")
        .with_callback(move |observer| {
            for (key, n) in totals.node_totals.lock().expect("lock").counters.iter() {
                if let CounterKey::Audit { action, outcome } = key {
                    observer.observe(
                        n,
                        &[
                            KeyValue::new("action", action.as_str().to_owned()),
                            KeyValue::new("outcome", outcome.as_str()),
                        ],
                    );
                }
            }
        })
        .build();
    let totals = pipeline.clone();
    meter
        .u64_observable_counter("authstat.authentication.failures")
        .with_unit("{authentication}")
        .with_description(
            "Failed user authentications of this node, by the configured rule, all months.",
        )
        .with_callback(move |observer| {
            let counters = &totals.node_totals.lock().expect("lock").counters;
            observer.observe(
                counters.get(&CounterKey::Authentication(Outcome::Failure)),
                &[],
            );
        })
        .build();
    let totals = pipeline.clone();
    meter
        .u64_observable_counter("authstat.tokens.issued")
        .with_unit("{token}")
        .with_description("Tokens issued on this node by grant type and token type, all months.")
        .with_callback(move |observer| {
            for (grant, token_type, n) in totals
                .node_totals
                .lock()
                .expect("lock")
                .counters
                .tokens
                .iter()
            {
                observer.observe(
                    n,
                    &[
                        KeyValue::new("grant_type", grant.to_owned()),
                        KeyValue::new("token_type", token_type.to_owned()),
                    ],
                );
            }
        })
        .build();
    let totals = pipeline;
    meter
        .u64_observable_gauge("authstat.users.active")
        .with_unit("{user}")
        .with_description("Distinct active users of the newest month on this node.")
        .with_callback(move |observer| {
            if let Some((month, users)) = totals.node_totals.lock().expect("lock").current_month {
                observer.observe(users, &[KeyValue::new("month", month.to_string())]);
            }
        })
        .build();

    let cluster = config.cluster_users.then(|| {
        let latest = Arc::new(std::sync::Mutex::new(None::<(Month, u64)>));
        let reader_side = latest.clone();
        meter
            .u64_observable_gauge("authstat.cluster.users.active")
            .with_unit("{user}")
            .with_description(
                "Distinct active users of the current month over all nodes (from the backend).",
            )
            .with_callback(move |observer| {
                if let Some((month, users)) = *reader_side.lock().expect("lock") {
                    observer.observe(users, &[KeyValue::new("month", month.to_string())]);
                }
            })
            .build();
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
                    *latest.lock().expect("lock") = Some((month, users));
                }
                tokio::time::sleep(every).await;
            }
        })
    });
    Ok(Export {
        provider,
        stats,
        cluster,
    })
}
