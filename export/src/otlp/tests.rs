//! The exporter against receivers that answer with chosen statuses and count requests.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use tokio::sync::mpsc;

use super::*;

/// Arrival times of requests.
type Arrivals = mpsc::UnboundedReceiver<Instant>;

authstat_core::family!(
    RECORDS,
    "authstat_test_records_total",
    Counter,
    "{record}",
    true,
    [],
    "A pushed counter."
);
authstat_core::family!(
    SECONDS,
    "authstat_test_seconds",
    Histogram,
    "s",
    true,
    [],
    "A pushed histogram."
);
authstat_core::family!(
    HIDDEN,
    "authstat_test_hidden",
    Gauge,
    "1",
    false,
    [],
    "Not pushed."
);

/// A collector of the test's families.
#[derive(Debug)]
struct Sampled;

impl authstat_core::metrics::Collector for Sampled {
    fn collect(&self, out: &mut authstat_core::metrics::Families) {
        use authstat_core::metrics::{HistogramValue, Sample, Value};
        let histogram = Value::Histogram(HistogramValue {
            bounds: vec![0.1, 1.0],
            counts: vec![1, 0],
            over: 0,
            sum: 0.05,
        });
        out.extend([
            (&RECORDS, vec![Sample::int(Vec::new(), 7)]),
            (
                &SECONDS,
                vec![Sample {
                    labels: Vec::new(),
                    value: histogram,
                }],
            ),
            (&HIDDEN, vec![Sample::int(Vec::new(), 1)]),
        ]);
    }
}

/// A pusher to `endpoint` with `extra` options (YAML lines), fast retries.
pub(super) fn pusher_with(protocol: &str, endpoint: &str, extra: &str) -> Pusher {
    let config: OtlpConfig = serde_yaml::from_str(&format!(
        "protocol: {protocol}\nendpoint: {endpoint}\ntimeout_secs: 2\n{extra}"
    ))
    .unwrap();
    let node = NodeId::new("node-1".to_owned()).unwrap();
    let settings = Settings::resolve(&config, &node, "host", &|_| None).unwrap();
    let stats = Arc::new(ExportStats::default());
    let registry = Arc::new(Registry::new());
    registry.register(Arc::new(Sampled));
    registry.register(stats.clone());
    let mut pusher = Pusher::new(settings, registry, stats).unwrap();
    pusher.first_backoff = Duration::from_millis(20);
    pusher
}

fn pusher(protocol: &str, endpoint: &str) -> Pusher {
    pusher_with(protocol, endpoint, "")
}

/// An HTTP collector that answers with `answers` in turn (then 200).
async fn http_collector(answers: Vec<(u16, Option<&'static str>)>) -> (String, Arrivals) {
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let (arrived, arrivals) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/v1/metrics",
        axum::routing::post(move |body: axum::body::Bytes| {
            let answers = answers.clone();
            let arrived = arrived.clone();
            async move {
                arrived.send(Instant::now()).unwrap();
                assert!(
                    ExportMetricsServiceRequest::decode(body).is_ok(),
                    "a protobuf request"
                );
                let (status, retry_after) =
                    answers.lock().unwrap().pop_front().unwrap_or((200, None));
                let mut response = axum::response::Response::new(axum::body::Body::empty());
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                if let Some(after) = retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", after.parse().unwrap());
                }
                response
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1/metrics"), arrivals)
}

use prost::Message as _;

#[derive(Clone)]
struct Shared(Arc<Scripted>);

struct Scripted {
    answers: Mutex<VecDeque<tonic::Status>>,
    arrived: mpsc::UnboundedSender<Instant>,
}

#[tonic::async_trait]
impl MetricsService for Shared {
    async fn export(
        &self,
        _request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.arrived.send(Instant::now()).unwrap();
        match self.0.answers.lock().unwrap().pop_front() {
            Some(status) => Err(status),
            None => Ok(tonic::Response::new(ExportMetricsServiceResponse::default())),
        }
    }
}

/// A gRPC collector that fails with `answers` in turn (then succeeds).
async fn grpc_collector(answers: Vec<tonic::Status>) -> (String, Arrivals) {
    let (arrived, arrivals) = mpsc::unbounded_channel();
    let service = Shared(Arc::new(Scripted {
        answers: Mutex::new(answers.into()),
        arrived,
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(service))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (format!("http://{addr}"), arrivals)
}

fn count(arrivals: &mut Arrivals) -> Vec<Instant> {
    let mut all = Vec::new();
    while let Ok(at) = arrivals.try_recv() {
        all.push(at);
    }
    all
}

pub(super) fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn http_statuses_that_are_not_retryable_are_sent_once() {
    for status in [400, 401, 403, 404, 413, 500] {
        let (url, mut arrivals) = http_collector(vec![(status, None)]).await;
        let mut p = pusher("http/protobuf", &url);
        assert_eq!(p.export(soon()).await, (1, false), "HTTP {status}");
        assert_eq!(count(&mut arrivals).len(), 1, "HTTP {status}");
        assert_eq!(p.stats.failures.load(Ordering::Relaxed), 1);
        assert_eq!(p.stats.exports.load(Ordering::Relaxed), 0);
    }
}

#[tokio::test]
async fn http_429_502_503_504_are_retried_until_they_succeed() {
    let (url, mut arrivals) =
        http_collector(vec![(429, None), (502, None), (503, None), (504, None)]).await;
    let mut p = pusher("http/protobuf", &url);
    assert_eq!(p.export(soon()).await, (5, true));
    assert_eq!(count(&mut arrivals).len(), 5);
    assert_eq!(p.stats.exports.load(Ordering::Relaxed), 1);
    assert_eq!(p.stats.failures.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (url, mut arrivals) = http_collector(vec![(503, Some("1"))]).await;
    let mut p = pusher("http/protobuf", &url);
    assert_eq!(p.export(soon()).await, (2, true));
    let at = count(&mut arrivals);
    assert!(
        at[1] - at[0] >= Duration::from_secs(1),
        "retried after {:?}, asked for 1 s",
        at[1] - at[0]
    );
}

#[tokio::test]
async fn a_delay_past_the_deadline_ends_the_export() {
    let (url, mut arrivals) = http_collector(vec![(503, Some("30"))]).await;
    let mut p = pusher("http/protobuf", &url);
    let started = Instant::now();
    assert_eq!(
        p.export(Instant::now() + Duration::from_secs(5)).await,
        (1, false)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "gave up at once"
    );
    assert_eq!(count(&mut arrivals).len(), 1);
}

#[tokio::test]
async fn retries_back_off_exponentially_within_the_deadline() {
    let (url, mut arrivals) = http_collector(vec![(503, None); 100]).await;
    let mut p = pusher("http/protobuf", &url);
    p.first_backoff = Duration::from_millis(100);
    let deadline = Instant::now() + Duration::from_millis(1500);
    let (sent, ok) = p.export(deadline).await;
    assert!(!ok);
    assert!(Instant::now() <= deadline, "the deadline bounds the export");
    let at = count(&mut arrivals);
    assert_eq!(at.len() as u32, sent);
    // Pauses of 100, 200, 400, 800 ms, each scaled by [0.5, 1): 4 or 5 requests fit.
    assert!((4..=5).contains(&sent), "{sent} requests");
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, gap) in gaps.iter().enumerate() {
        let base = Duration::from_millis(100 << i);
        assert!(*gap >= base / 2, "pause {i} was {gap:?}, base {base:?}");
    }
    assert!(gaps[2] > gaps[0], "pauses grow: {gaps:?}");
}

#[tokio::test]
async fn grpc_codes_are_retried_as_the_specification_says() {
    use tonic::Code;
    let (url, mut arrivals) = grpc_collector(vec![
        tonic::Status::new(Code::Unavailable, "busy"),
        tonic::Status::new(Code::DeadlineExceeded, "slow"),
    ])
    .await;
    let mut p = pusher("grpc", &url);
    assert_eq!(p.export(soon()).await, (3, true));
    assert_eq!(count(&mut arrivals).len(), 3);

    for code in [
        Code::InvalidArgument,
        Code::Unauthenticated,
        Code::ResourceExhausted,
    ] {
        let (url, mut arrivals) = grpc_collector(vec![tonic::Status::new(code, "no")]).await;
        let mut p = pusher("grpc", &url);
        assert_eq!(p.export(soon()).await, (1, false), "{code:?}");
        assert_eq!(count(&mut arrivals).len(), 1, "{code:?}");
    }
}

#[tokio::test]
async fn resource_exhausted_with_retry_info_waits_as_asked() {
    let status = <tonic::Status as tonic_types::StatusExt>::with_error_details(
        tonic::Code::ResourceExhausted,
        "slow down",
        tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_millis(400))),
    );
    let (url, mut arrivals) = grpc_collector(vec![status]).await;
    let mut p = pusher("grpc", &url);
    assert_eq!(p.export(soon()).await, (2, true));
    let at = count(&mut arrivals);
    assert!(
        at[1] - at[0] >= Duration::from_millis(400),
        "{:?}",
        at[1] - at[0]
    );
}

#[tokio::test]
async fn an_absent_collector_is_retried() {
    // A port that is bound but not listening refuses connections, and nobody else can take it.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    for (protocol, url) in [
        ("http/protobuf", format!("http://{addr}/v1/metrics")),
        ("grpc", format!("http://{addr}")),
    ] {
        let mut p = pusher(protocol, &url);
        let (sent, ok) = p.export(Instant::now() + Duration::from_millis(500)).await;
        assert!(!ok);
        assert!(sent >= 2, "{protocol}: {sent} request(s)");
    }
    drop(socket);
}

#[tokio::test]
async fn a_shutdown_cancels_the_retries_and_exports_once_more() {
    let (url, mut arrivals) = http_collector(vec![(503, Some("30")); 2]).await;
    let mut p = pusher("http/protobuf", &url);
    p.settings.interval = Duration::from_millis(50);
    p.settings.export_timeout = Duration::from_secs(120);
    let stats = p.stats.clone();
    let (stop, stopped) = watch::channel(None);
    let task = tokio::spawn(p.run(stopped));
    // The first export is waiting 30 s to retry.
    arrivals.recv().await.unwrap();
    let asked = Instant::now();
    stop.send(Some(Duration::from_secs(5))).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the retry was cancelled")
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(6));
    // The final export: its Retry-After is past the shutdown's deadline, so it is one request.
    assert_eq!(count(&mut arrivals).len(), 1);
    assert_eq!(stats.failures.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn the_request_carries_every_pushed_family_and_the_resource() {
    let p = pusher("http/protobuf", "http://127.0.0.1:1/v1/metrics");
    let request = p.request();
    let rm = &request.resource_metrics[0];
    let resource: Vec<&str> = rm
        .resource
        .iter()
        .flat_map(|r| &r.attributes)
        .map(|kv| kv.key.as_str())
        .collect();
    for key in [
        "service.name",
        "service.instance.id",
        "service.version",
        "host.name",
        "telemetry.sdk.name",
        "telemetry.sdk.language",
        "telemetry.sdk.version",
    ] {
        assert!(resource.contains(&key), "{key} in {resource:?}");
    }
    let names: Vec<&str> = rm.scope_metrics[0]
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    for name in ["authstat.test_records", "authstat.test_seconds"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert!(!names.contains(&"authstat.test_hidden"), "not pushed");
    assert!(!names.contains(&"authstat.otlp_exports"), "not pushed");
}

/// A collector that asks for no delay at all (`Retry-After: 0`, a date in the past, a gRPC
/// `RetryInfo` of 0 s) gets the exponential backoff, not a storm of requests: the server's
/// delay may lengthen the pause, never shorten it below the backoff's floor.
#[tokio::test]
async fn a_zero_delay_from_the_collector_does_not_shorten_the_backoff() {
    let past = "Sun, 06 Nov 1994 08:49:37 GMT";
    for answer in [Some("0"), Some(past)] {
        let (url, mut arrivals) = http_collector(vec![(503, answer); 10_000]).await;
        let mut p = pusher("http/protobuf", &url);
        p.first_backoff = Duration::from_millis(100);
        let (sent, ok) = p.export(Instant::now() + Duration::from_millis(1500)).await;
        assert!(!ok);
        // Pauses of at least 50, 100, 200, 400, 800 ms: at most 5 requests fit in 1.5 s.
        assert!((2..=5).contains(&sent), "{answer:?}: {sent} requests");
        assert_eq!(count(&mut arrivals).len() as u32, sent);
    }
    let zero = <tonic::Status as tonic_types::StatusExt>::with_error_details(
        tonic::Code::ResourceExhausted,
        "slow down",
        tonic_types::ErrorDetails::with_retry_info(Some(Duration::ZERO)),
    );
    let (url, mut arrivals) = grpc_collector(vec![zero; 10_000]).await;
    let mut p = pusher("grpc", &url);
    p.first_backoff = Duration::from_millis(100);
    let (sent, ok) = p.export(Instant::now() + Duration::from_millis(1500)).await;
    assert!(!ok);
    assert!((2..=5).contains(&sent), "gRPC: {sent} requests");
    assert_eq!(count(&mut arrivals).len() as u32, sent);
}

/// A delay too large for any clock (2^64-1 seconds): the export ends at once, as for any
/// delay past its deadline, and the exporter goes on with the next interval and the final
/// export at shutdown (it used to panic: "overflow when adding duration to instant").
#[tokio::test]
async fn a_huge_delay_from_the_collector_ends_one_export_not_the_exporter() {
    let huge = "18446744073709551615";
    let (url, mut arrivals) = http_collector(vec![
        (503, Some(huge)),
        (503, Some("99999999999999999999999")),
    ])
    .await;
    let mut p = pusher("http/protobuf", &url);
    assert_eq!(p.export(soon()).await, (1, false));
    assert_eq!(p.export(soon()).await, (1, false));
    // The collector recovers: the same exporter still exports.
    assert_eq!(p.export(soon()).await, (1, true));
    assert_eq!(count(&mut arrivals).len(), 3);

    let grpc_huge = <tonic::Status as tonic_types::StatusExt>::with_error_details(
        tonic::Code::Unavailable,
        "later",
        tonic_types::ErrorDetails::with_retry_info(Some(Duration::MAX)),
    );
    let (url, mut arrivals) = grpc_collector(vec![grpc_huge]).await;
    let mut p = pusher("grpc", &url);
    assert_eq!(p.export(soon()).await, (1, false));
    assert_eq!(p.export(soon()).await, (1, true));
    assert_eq!(count(&mut arrivals).len(), 2);

    // The loop itself: exports on its interval, then the final export at shutdown.
    let (url, mut arrivals) = http_collector(vec![(503, Some(huge))]).await;
    let mut p = pusher("http/protobuf", &url);
    p.settings.interval = Duration::from_millis(50);
    let (stop, stopped) = watch::channel(None);
    let task = tokio::spawn(p.run(stopped));
    arrivals.recv().await.unwrap();
    arrivals
        .recv()
        .await
        .expect("the exporter goes on after the huge delay");
    stop.send(Some(Duration::from_secs(2))).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the exporter stops")
        .expect("the exporter did not panic");
}
