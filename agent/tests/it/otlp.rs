//! OTLP export of a real run over the sample logs, received by an OTLP receiver built from the
//! official protobuf definitions (opentelemetry-proto): gRPC (tonic) and HTTP/protobuf.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Number;
use prost::Message;

use crate::support::*;

pub(crate) type Received = Arc<Mutex<Vec<ExportMetricsServiceRequest>>>;

/// (metric, attributes) → (value, monotonic for sums).
pub(crate) type Points = BTreeMap<(String, String), (i64, Option<bool>)>;

/// A gRPC collector that answers UNAVAILABLE while `down` is set.
#[derive(Clone, Default)]
struct Receiver {
    received: Received,
    down: Arc<std::sync::atomic::AtomicBool>,
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        if self.down.load(Ordering::SeqCst) {
            return Err(tonic::Status::unavailable("collector down for the test"));
        }
        self.received.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A gRPC receiver serving on `listener` (bound by the caller: no port is released and taken
/// again).
fn grpc_receiver(listener: tokio::net::TcpListener, receiver: Receiver) {
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(receiver))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
}

async fn bound() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A port that refuses connections (bound, not listening) and that nobody else can take.
fn refusing() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// An HTTP/protobuf receiver at `/v1/metrics`: requests (gunzipped) and their headers.
#[derive(Clone, Default)]
pub(crate) struct HttpReceiver {
    pub(crate) received: Received,
    headers: Arc<Mutex<Vec<axum::http::HeaderMap>>>,
}

pub(crate) async fn http_receiver() -> (HttpReceiver, SocketAddr) {
    let receiver = HttpReceiver::default();
    let sink = receiver.clone();
    let app = axum::Router::new().route(
        "/v1/metrics",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let body = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
                        let mut plain = Vec::new();
                        let mut decoder = flate2::read::GzDecoder::new(&body[..]);
                        std::io::Read::read_to_end(&mut decoder, &mut plain).unwrap();
                        axum::body::Bytes::from(plain)
                    } else {
                        body
                    };
                    sink.received
                        .lock()
                        .unwrap()
                        .push(ExportMetricsServiceRequest::decode(body).unwrap());
                    sink.headers.lock().unwrap().push(headers);
                    let response = ExportMetricsServiceResponse {
                        partial_success: None,
                    };
                    (
                        [("content-type", "application/x-protobuf")],
                        response.encode_to_vec(),
                    )
                }
            },
        ),
    );
    let listener = bound().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, addr)
}

fn text(v: &KeyValue) -> String {
    match v.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// (metric, attributes) → (value, monotonic sum?) of the newest request, and its resource.
pub(crate) fn flatten(request: &ExportMetricsServiceRequest) -> (BTreeMap<String, String>, Points) {
    let mut resource = BTreeMap::new();
    let mut points = BTreeMap::new();
    for rm in &request.resource_metrics {
        for kv in rm.resource.iter().flat_map(|r| &r.attributes) {
            resource.insert(kv.key.clone(), text(kv));
        }
        for metric in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            let (data_points, monotonic) = match &metric.data {
                Some(Data::Sum(sum)) => {
                    assert_eq!(
                        sum.aggregation_temporality, 2,
                        "{}: cumulative",
                        metric.name
                    );
                    (&sum.data_points, Some(sum.is_monotonic))
                }
                Some(Data::Gauge(g)) => (&g.data_points, None),
                Some(Data::Histogram(h)) => {
                    assert_eq!(h.aggregation_temporality, 2, "{}: cumulative", metric.name);
                    for p in &h.data_points {
                        assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
                        assert_eq!(p.count, p.bucket_counts.iter().sum::<u64>());
                        points.insert((metric.name.clone(), String::new()), (p.count as i64, None));
                    }
                    continue;
                }
                other => panic!("{}: unexpected {other:?}", metric.name),
            };
            for p in data_points {
                let attrs: Vec<String> = p
                    .attributes
                    .iter()
                    .map(|kv| format!("{}={}", kv.key, text(kv)))
                    .collect();
                let value = match p.value {
                    Some(Number::AsInt(i)) => i,
                    Some(Number::AsDouble(d)) => d as i64,
                    None => panic!("no value"),
                };
                points.insert((metric.name.clone(), attrs.join(",")), (value, monotonic));
            }
        }
    }
    (resource, points)
}

fn otlp_fixture(protocol: &str, endpoint: &str) -> Fixture {
    let mut fixture = Fixture::new(&format!(
        "derive:\n  per_client:\n    metrics: true\nexport:\n  otlp:\n    protocol: {protocol}\n    endpoint: {endpoint}\n    interval_secs: 1\n    timeout_secs: 2\n    resource_attributes:\n      deployment.environment: test\n"
    ));
    fixture.add_current_month_users(&["now-user-1", "now-user-2"]);
    fixture
}

fn newest_with_tokens(received: &Received) -> Option<ExportMetricsServiceRequest> {
    received
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|r| {
            flatten(r).1.contains_key(&(
                "authstat.tokens_issued".into(),
                "grant_type=client_credentials,token_type=access_token".into(),
            ))
        })
        .cloned()
}

fn assert_sample_run(request: &ExportMetricsServiceRequest) {
    let (resource, points) = flatten(request);
    assert_eq!(
        resource.get("service.name").map(String::as_str),
        Some("jans-auth")
    );
    assert_eq!(
        resource.get("service.instance.id").map(String::as_str),
        Some("example-node")
    );
    assert_eq!(
        resource.get("deployment.environment").map(String::as_str),
        Some("test")
    );
    assert!(resource.contains_key("host.name"));
    let expect = |name: &str, attrs: &str, value: i64, monotonic: Option<bool>| {
        assert_eq!(
            points.get(&(name.to_owned(), attrs.to_owned())),
            Some(&(value, monotonic)),
            "{name}{{{attrs}}} in {points:#?}"
        );
    };
    expect(
        "authstat.tokens_issued",
        "grant_type=client_credentials,token_type=access_token",
        2,
        Some(true),
    );
    expect(
        "authstat.tokens_issued",
        "grant_type=authorization_code,token_type=id_token",
        1,
        Some(true),
    );
    expect(
        "authstat.authorizations",
        "action=USER_AUTHORIZATION,outcome=failure",
        2,
        Some(true),
    );
    expect(
        "authstat.authorizations",
        "action=TOKEN_REQUEST,outcome=success",
        2,
        Some(true),
    );
    expect("authstat.authentications", "outcome=failure", 1, Some(true));
    expect(
        "authstat.monthly_active_users",
        &format!("month={}", crate::support::current_month()),
        2,
        None,
    );
    // Per-client series (derive.per_client.metrics) and the cluster's recent active users.
    let of = |name: &str| {
        points
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, attrs), (value, _))| (attrs.clone(), *value))
            .collect::<Vec<_>>()
    };
    let client_tokens: i64 = of("authstat.client_tokens_issued")
        .iter()
        .map(|p| p.1)
        .sum();
    let tokens: i64 = of("authstat.tokens_issued").iter().map(|p| p.1).sum();
    assert_eq!(
        client_tokens, tokens,
        "every token under its client: {points:#?}"
    );
    let windows: Vec<String> = of("authstat.cluster_active_users")
        .into_iter()
        .map(|(attrs, _)| attrs)
        .collect();
    assert_eq!(windows, ["days=1", "days=30", "days=7"], "{points:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_export_of_a_real_run() {
    let listener = bound().await;
    let addr = listener.local_addr().unwrap();
    let receiver = Receiver::default();
    grpc_receiver(listener, receiver.clone());
    let fixture = otlp_fixture("grpc", &format!("http://{addr}"));
    let agent = start_and_flush(&fixture).await;
    wait_until("an export with the sample's tokens", || {
        newest_with_tokens(&receiver.received).is_some()
    });
    assert_sample_run(&newest_with_tokens(&receiver.received).unwrap());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_protobuf_export_of_a_real_run() {
    let (receiver, addr) = http_receiver().await;
    let endpoint = format!("http://{addr}/v1/metrics\n    compression: gzip");
    let fixture = otlp_fixture("http/protobuf", &endpoint);
    let agent = start_and_flush(&fixture).await;
    wait_until("an export with the sample's tokens", || {
        newest_with_tokens(&receiver.received).is_some()
    });
    assert_sample_run(&newest_with_tokens(&receiver.received).unwrap());
    let headers = receiver.headers.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        headers.get("content-encoding").map(|v| v.to_str().unwrap()),
        Some("gzip"),
        "the body arrived gzip-compressed"
    );
    assert_eq!(
        headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/x-protobuf")
    );
    agent.shutdown().await;
}

fn otlp_failures(addr: SocketAddr) -> u64 {
    let body = get(addr, "/metrics", None).body;
    body.lines()
        .find_map(|l| l.strip_prefix("authstat_otlp_exports_total{result=\"failure\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The collector is absent at start (connections refused), appears, fails (UNAVAILABLE) and
/// comes back: ingestion and the API go on, failures are counted, and exports resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collector_that_comes_and_goes() {
    let (socket, collector) = refusing();
    let fixture = otlp_fixture("grpc", &format!("http://{collector}"));
    let agent = start_and_flush(&fixture).await;
    let api = agent.addr;
    wait_until("a failed export", || otlp_failures(api) >= 1);
    assert_eq!(get(api, "/livez", None).status, 200);

    let receiver = Receiver::default();
    grpc_receiver(socket.listen(64).unwrap(), receiver.clone());
    wait_until("an export once the collector is there", || {
        newest_with_tokens(&receiver.received).is_some()
    });
    receiver.down.store(true, Ordering::SeqCst);
    let failures = otlp_failures(api);
    wait_until("a failure while it is down", || {
        otlp_failures(api) > failures
    });

    receiver.received.lock().unwrap().clear();
    receiver.down.store(false, Ordering::SeqCst);
    wait_until("exports to resume", || {
        newest_with_tokens(&receiver.received).is_some()
    });
    assert_sample_run(&newest_with_tokens(&receiver.received).unwrap());
    agent.shutdown().await;
}

/// Runs the real binary on `fixture` with `env` until it has read the sample logs, then stops
/// it (SIGTERM makes the final flush and the final export).
fn run_binary_once(fixture: &Fixture, env: &[(&str, &str)]) {
    let mut agent = spawn_agent(&fixture.config_path(), fixture.dir.path(), env);
    let api = agent.addr;
    wait_until("the sample logs to be read", || {
        get(api, "/metrics", None)
            .body
            .lines()
            .any(|l| l == "authstat_records_read_total 15")
    });
    agent.signal("TERM");
    assert!(agent.wait_exit().success());
}

/// The standard variables, with the file winning key by key: the endpoint variable is a base
/// URL for HTTP/protobuf (the default protocol), headers and resource attributes merge, and
/// `OTEL_SERVICE_NAME` names the service. (The real binary, so that the test's own environment
/// is not touched.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_standard_environment_variables_and_their_precedence() {
    let (receiver, addr) = http_receiver().await;
    let fixture = Fixture::new(
        "export:\n  otlp:\n    interval_secs: 3600\n    headers: {x-api-key: file-key}\n",
    );
    let base = format!("http://{addr}");
    run_binary_once(
        &fixture,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &base),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-api-key=env-key,x-tenant=t%201",
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_SERVICE_NAME", "auth-eu"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging"),
        ],
    );
    let request = newest_with_tokens(&receiver.received).expect("an export at the base URL");
    let (resource, _) = flatten(&request);
    assert_eq!(resource["service.name"], "auth-eu");
    assert_eq!(resource["deployment.environment"], "staging");
    let headers = receiver.headers.lock().unwrap().last().cloned().unwrap();
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        header("x-api-key").as_deref(),
        Some("file-key"),
        "the file's key wins"
    );
    assert_eq!(header("x-tenant").as_deref(), Some("t 1"));
    assert_eq!(header("content-encoding").as_deref(), Some("gzip"));

    // The file's endpoint wins over the variable (which points at a port that refuses).
    receiver.received.lock().unwrap().clear();
    let (_socket, wrong) = refusing();
    let fixture = Fixture::new(&format!(
        "export:\n  otlp:\n    endpoint: http://{addr}/v1/metrics\n    interval_secs: 3600\n"
    ));
    run_binary_once(
        &fixture,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://{wrong}"))],
    );
    assert!(newest_with_tokens(&receiver.received).is_some());
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` makes the agent speak gRPC to the variable's endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_protocol_variable_is_honoured() {
    let listener = bound().await;
    let addr = listener.local_addr().unwrap();
    let receiver = Receiver::default();
    grpc_receiver(listener, receiver.clone());
    let fixture = Fixture::new("export:\n  otlp:\n    interval_secs: 3600\n");
    run_binary_once(
        &fixture,
        &[
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                &format!("http://{addr}"),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );
    assert!(newest_with_tokens(&receiver.received).is_some());
}

/// (start time, value) of `metric{attrs}` in `request`.
fn point(request: &ExportMetricsServiceRequest, metric: &str, attrs: &str) -> (u64, i64) {
    let m = request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == metric)
        .unwrap_or_else(|| panic!("{metric} missing"));
    let Some(Data::Sum(sum)) = &m.data else {
        panic!("{metric} is not a sum")
    };
    let p = sum
        .data_points
        .iter()
        .find(|p| {
            let a: Vec<String> = p
                .attributes
                .iter()
                .map(|kv| format!("{}={}", kv.key, text(kv)))
                .collect();
            a.join(",") == attrs
        })
        .unwrap_or_else(|| panic!("{metric}{{{attrs}}} missing"));
    let Some(Number::AsInt(v)) = p.value else {
        panic!("not an integer")
    };
    (p.start_time_unix_nano, v)
}

/// After a restart the stored statistics continue with the same start time (one cumulative
/// series, no reset), while the process's own counters start again with the new process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_keeps_the_start_time_of_the_stored_statistics() {
    let (receiver, addr) = http_receiver().await;
    let fixture = otlp_fixture("http/protobuf", &format!("http://{addr}/v1/metrics"));
    let tokens = "grant_type=client_credentials,token_type=access_token";
    let mut runs = Vec::new();
    for run in 0..2 {
        receiver.received.lock().unwrap().clear();
        // The second run has nothing new to read: its totals come from the backend.
        let agent = if run == 0 {
            start_and_flush(&fixture).await
        } else {
            fixture.start().await
        };
        wait_until("an export with the sample's tokens", || {
            newest_with_tokens(&receiver.received).is_some()
        });
        let request = newest_with_tokens(&receiver.received).unwrap();
        runs.push((
            point(&request, "authstat.tokens_issued", tokens),
            point(&request, "authstat.records_read", ""),
        ));
        agent.shutdown().await;
    }
    let ((start1, tokens1), (process1, _)) = runs[0];
    let ((start2, tokens2), (process2, read2)) = runs[1];
    assert_eq!(
        (start1, tokens1),
        (start2, tokens2),
        "the same series, continued"
    );
    assert_eq!(read2, 0, "the second process read nothing new");
    assert!(
        process2 > process1,
        "the process's own counters restart with it"
    );
    // The start is the first instant of the node's earliest month with counts: the sample's
    // first record is at 2024-01-31T23:59:58Z.
    let millis = i64::try_from(start1 / 1_000_000).unwrap();
    assert_eq!(millis * 1_000_000, i64::try_from(start1).unwrap());
    assert_eq!(
        authstat_core::Month::from_epoch_millis(millis)
            .unwrap()
            .to_string(),
        "202401"
    );
    assert_eq!(
        authstat_core::Month::from_epoch_millis(millis)
            .unwrap()
            .start_epoch_millis(),
        millis
    );
}

/// A failed export is logged with the endpoint and the status (a 404 once: not retryable).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_export_names_the_endpoint_and_the_status() {
    let (receiver, addr) = http_receiver().await;
    // Nothing is served at /wrong: the receiver answers 404.
    let url = format!("http://{addr}/wrong");
    let fixture = otlp_fixture("http/protobuf", &url);
    let mut agent = fixture.spawn();
    wait_until("the warning", || {
        agent.logged(&[&format!(
            "OTLP export to {url} failed: HTTP 404 Not Found (not retryable; 1 request(s))"
        )])
    });
    agent.signal("TERM");
    assert!(agent.wait_exit().success());
    assert!(receiver.received.lock().unwrap().is_empty());
}
