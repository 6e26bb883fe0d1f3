//! OTLP push of this node's statistics and the agent's health (gRPC or HTTP/protobuf), built
//! on the official protobuf definitions (`opentelemetry-proto`).
//!
//! Every `interval` the registry's snapshot (`authstat_core::metrics::Registry`, the same one `/metrics` renders)
//! is encoded ([`encode`]) and sent ([`transport`]). Temporality is cumulative: a failed export
//! loses nothing (the next one carries the totals), so there is no queue to bound. An export
//! is retried here and nowhere else, only when the specification calls the failure retryable,
//! with exponential backoff and jitter (or the delay the collector asks for), within the
//! export's deadline (`OTEL_METRIC_EXPORT_TIMEOUT`, never past the next interval); a shutdown
//! cancels the retries and makes one last export. The settings come from the file and the
//! standard environment variables by one rule ([`settings`]).

mod config;
mod encode;
mod settings;
mod transport;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use authstat_core::metrics::{Collector, Families, Registry, Sample};
use authstat_core::store::StatStore;
use authstat_core::{Month, NodeId};
pub use config::{OtlpCompression, OtlpConfig, OtlpProtocol};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use tokio::sync::watch;
use tokio::time::Instant;

pub use settings::{Settings, SettingsError};
use transport::{Failed, Transport};

use authstat_runtime::RateLimited;

authstat_core::family!(
    OTLP_EXPORTS,
    "authstat_otlp_exports_total",
    Counter,
    "{export}",
    false,
    ["result"],
    "OTLP exports by result (a failed one is superseded by the next)."
);

authstat_core::family!(
    CLUSTER_MONTHLY_ACTIVE_USERS,
    "authstat_cluster_monthly_active_users",
    Gauge,
    "{user}",
    true,
    ["month"],
    "Distinct active users of the current month over all nodes (from the backend; export.otlp.cluster_users)."
);

/// Counters of the OTLP exporter (a collector of the registry).
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Exports delivered.
    pub exports: AtomicU64,
    /// Exports that failed (dropped: the next one carries the cumulative totals).
    pub failures: AtomicU64,
}

impl Collector for ExportStats {
    fn collect(&self, out: &mut Families) {
        let row = |result: &str, n: &AtomicU64| {
            Sample::int(vec![result.to_owned()], n.load(Ordering::Relaxed))
        };
        out.push((
            &OTLP_EXPORTS,
            vec![
                row("success", &self.exports),
                row("failure", &self.failures),
            ],
        ));
    }
}

/// The cluster's distinct users of the current month, as last read (`cluster_users: true`).
#[derive(Debug, Default)]
pub struct ClusterUsers(std::sync::Mutex<Option<(Month, u64)>>);

impl ClusterUsers {
    /// Sets the figure of `month`.
    pub fn set(&self, month: Month, users: u64) {
        *self.0.lock().expect("lock") = Some((month, users));
    }
}

impl Collector for ClusterUsers {
    fn collect(&self, out: &mut Families) {
        if let Some((month, users)) = *self.0.lock().expect("lock") {
            out.push((
                &CLUSTER_MONTHLY_ACTIVE_USERS,
                vec![Sample::int(vec![month.to_string()], users)],
            ));
        }
    }
}

/// The first pause before a retry; it doubles with each one, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// At most one warning about failed exports this often (the others are counted in it).
const WARN_EVERY: Duration = Duration::from_secs(60);

/// A running OTLP export.
#[derive(Debug)]
pub(crate) struct Export {
    /// Set once, to the shutdown's deadline.
    stop: watch::Sender<Option<Duration>>,
    task: tokio::task::JoinHandle<()>,
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
        let _ = this.stop.send(Some(deadline));
        if tokio::time::timeout(deadline + Duration::from_secs(1), this.task)
            .await
            .is_err()
        {
            tracing::warn!("the final OTLP export did not finish in time");
        }
    }
}

/// The settings for `config`, from the process's environment.
pub fn settings(config: &OtlpConfig, node: &NodeId) -> Result<Settings, SettingsError> {
    let host = authstat_runtime::host_name().unwrap_or_else(|| "unknown".into());
    Settings::resolve(config, node, &host, &|name| std::env::var(name).ok())
}

/// The OTLP exporter's registration ([`super::Exporters`]).
pub(super) fn kind() -> super::ExporterKind {
    super::ExporterKind {
        name: "otlp",
        about: "OTLP push (HTTP/protobuf or gRPC) of this node's statistics and the agent's health",
        check: |o| authstat_config::options::decode::<OtlpConfig>(o).map(|_| ()),
        resolve_paths: |o, base| {
            let Ok(mut config) = authstat_config::options::decode::<OtlpConfig>(o) else {
                return;
            };
            for path in [
                &mut config.certificate,
                &mut config.client_certificate,
                &mut config.client_key,
            ]
            .into_iter()
            .flatten()
            {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
            if let Ok(serde_yaml::Value::Mapping(m)) = serde_yaml::to_value(&config) {
                // Written back whole: every key the file gave, with its paths absolute.
                for (key, value) in m {
                    if o.contains_key(&key) {
                        o.insert(key, value);
                    }
                }
            }
        },
        settings: |o, node| {
            let config: OtlpConfig = authstat_config::options::decode(o)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.message))?;
            let s = settings(&config, node)?;
            let mut lines = vec![format!(
                "export otlp: {} to {} every {} s (request timeout {} s, compression {:?})",
                s.protocol.as_str(),
                s.endpoint,
                s.interval.as_secs_f64(),
                s.timeout.as_secs_f64(),
                s.compression
            )];
            lines.extend(s.warnings.iter().map(|w| format!("warning: {w}")));
            lines.extend(certificate_lines(&s)?);
            Ok(lines)
        },
        start: |spec| {
            let config: OtlpConfig = authstat_config::options::decode(spec.options)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.message))?;
            Ok(Box::new(start(
                &config,
                spec.node,
                spec.registry,
                spec.store,
            )?))
        },
    }
}

/// `check-config`'s lines of the collector's CA file and the client certificate, read and
/// checked (an error names the file and the problem).
fn certificate_lines(s: &Settings) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    if let Some(ca) = &s.certificate {
        lines.push(
            authstat_tls::ca_line("export otlp certificate", ca).map_err(anyhow::Error::msg)?,
        );
    }
    if let (Some(cert), Some(key)) = (&s.client_certificate, &s.client_key) {
        let what = "export otlp client_certificate";
        let usage = authstat_tls::Usage::Client;
        lines.push(authstat_tls::pair_line(what, cert, key, usage).map_err(anyhow::Error::msg)?);
    }
    Ok(lines)
}

/// Starts pushing. Must run inside the tokio runtime.
pub fn start(
    config: &OtlpConfig,
    node: &NodeId,
    registry: Arc<Registry>,
    store: Arc<dyn StatStore>,
) -> anyhow::Result<Export> {
    let settings = settings(config, node)?;
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        endpoint = %settings.endpoint,
        protocol = settings.protocol.as_str(),
        interval_secs = settings.interval.as_secs_f64(),
        "pushing metrics with OTLP"
    );
    let stats = Arc::new(ExportStats::default());
    registry.register(stats.clone());
    let cluster = settings.cluster_users.then(|| {
        let users = Arc::new(ClusterUsers::default());
        registry.register(users.clone());
        authstat_runtime::tasks::spawn(
            "otlp-cluster-users",
            cluster_users(store, users, settings.interval),
        )
    });
    let pusher = Pusher::new(settings, registry, stats)?;
    let (stop, stopped) = watch::channel(None);
    let task = authstat_runtime::tasks::spawn("otlp-export", pusher.run(stopped));
    Ok(Export {
        stop,
        task,
        cluster,
    })
}

/// The cluster figure, read from the backend on the export's pace (one node of the cluster
/// should have it on: `export.otlp.cluster_users`).
async fn cluster_users(store: Arc<dyn StatStore>, figure: Arc<ClusterUsers>, every: Duration) {
    loop {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        if let Ok(month) = Month::from_epoch_millis(now)
            && let Ok(stats) = store.read_months(&[month]).await
        {
            let users = stats.first().map_or(0, |s| s.monthly_active_users());
            figure.set(month, users);
        }
        tokio::time::sleep(every).await;
    }
}

/// Rate-limited warnings (failed exports, partial successes).
#[derive(Debug)]
struct Warnings(RateLimited);

impl Warnings {
    fn warn(&mut self, message: &str) {
        match self.0.admit() {
            Some(held_back) => tracing::warn!(more_since_last_warning = held_back, "{message}"),
            None => tracing::debug!("{message}"),
        }
    }
}

/// What the exporter loop owns.
struct Pusher {
    settings: Settings,
    transport: Transport,
    registry: Arc<Registry>,
    stats: Arc<ExportStats>,
    warnings: Warnings,
    first_backoff: Duration,
}

impl Pusher {
    fn new(
        settings: Settings,
        registry: Arc<Registry>,
        stats: Arc<ExportStats>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            transport: Transport::new(&settings)?,
            settings,
            registry,
            stats,
            warnings: Warnings(RateLimited::new(WARN_EVERY)),
            first_backoff: FIRST_BACKOFF,
        })
    }

    /// Exports every interval until `stop` carries a deadline, then once more within it.
    async fn run(mut self, mut stop: watch::Receiver<Option<Duration>>) {
        let interval = self.settings.interval;
        let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => break,
            }
            let deadline = Instant::now() + self.settings.export_timeout;
            tokio::select! {
                _ = self.export(deadline) => {}
                // A shutdown cancels the retries: the final export follows.
                _ = stop.changed() => break,
            }
        }
        let grace = stop.borrow().unwrap_or(Duration::ZERO);
        let deadline = Instant::now() + grace.min(self.settings.export_timeout);
        self.export(deadline).await;
    }

    /// The request for the registry's snapshot now.
    fn request(&self) -> ExportMetricsServiceRequest {
        let now = encode::nanos(SystemTime::now());
        let snapshot = self.registry.snapshot();
        let metrics = snapshot
            .families
            .iter()
            .filter(|(family, _)| family.pushed)
            .filter_map(|(family, samples)| {
                let start = encode::nanos(self.registry.start_time(family));
                encode::metric(family, samples, start, now)
            })
            .collect();
        encode::request(&self.settings.resource, metrics)
    }

    /// One export, retried while the failure is retryable and the deadline allows; counted
    /// and, when it fails, logged. Returns the number of requests sent and whether it arrived.
    async fn export(&mut self, deadline: Instant) -> (u32, bool) {
        let request = self.request();
        let mut backoff = self.first_backoff;
        let mut sent = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let failure = if left.is_zero() {
                Failed {
                    status: "no time left before the export's deadline".into(),
                    retryable: false,
                    retry_after: None,
                }
            } else {
                sent += 1;
                match self
                    .transport
                    .send(&request, self.settings.timeout.min(left))
                    .await
                {
                    Ok(accepted) => {
                        self.stats.exports.fetch_add(1, Ordering::Relaxed);
                        if accepted.rejected > 0 || !accepted.message.is_empty() {
                            self.warnings.warn(&format!(
                                "the OTLP collector at {} rejected {} data point(s): {}",
                                self.settings.endpoint, accepted.rejected, accepted.message
                            ));
                        }
                        return (sent, true);
                    }
                    Err(failure) => failure,
                }
            };
            let pause = pause(backoff, failure.retry_after);
            let retry = failure.retryable
                && Instant::now()
                    .checked_add(pause)
                    .is_some_and(|resume| resume < deadline);
            if !retry {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                let why = if failure.retryable {
                    "no time for another try before the export's deadline"
                } else {
                    "not retryable"
                };
                self.warnings.warn(&format!(
                    "OTLP export to {} failed: {} ({why}; {sent} request(s)); dropped, the next \
                     export carries the totals",
                    self.settings.endpoint, failure.status
                ));
                return (sent, false);
            }
            tracing::debug!(endpoint = %self.settings.endpoint, status = %failure.status, pause_ms = pause.as_millis(), "OTLP export failed; retrying");
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// The pause before the next try: the exponential backoff (jittered), lengthened by the
/// collector's delay when it asks for a longer one, never shortened by it (a `Retry-After: 0`
/// must not turn the retries into a storm), and never longer than
/// [`transport::MAX_SERVER_DELAY`].
fn pause(backoff: Duration, asked: Option<Duration>) -> Duration {
    let floor = jittered(backoff);
    asked
        .map_or(floor, |asked| asked.max(floor))
        .min(transport::MAX_SERVER_DELAY)
}

/// `base` scaled by a random factor in [0.5, 1.0) ("equal jitter"), so that agents that failed
/// together do not retry together.
fn jittered(base: Duration) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(encode::nanos(SystemTime::now()).into());
    let unit = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
    base.mul_f64(0.5 + unit / 2.0)
}
