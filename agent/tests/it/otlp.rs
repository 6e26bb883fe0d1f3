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

type Received = Arc<Mutex<Vec<ExportMetricsServiceRequest>>>;

/// (metric, attributes) → (value, monotonic for sums).
type Points = BTreeMap<(String, String), (i64, Option<bool>)>;

#[derive(Clone, Default)]
struct Receiver(Received);

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A gRPC receiver on `addr` until the returned sender is dropped or used.
async fn grpc_receiver(addr: SocketAddr, received: Received) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let server = tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(Receiver(received)))
            .serve_with_shutdown(addr, async {
                let _ = stopped.await;
            });
        let _ = ready_tx.send(());
        server.await.unwrap();
    });
    ready.await.unwrap();
    // Wait until it accepts connections.
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn text(v: &KeyValue) -> String {
    match v.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// (metric, attributes) → (value, monotonic sum?) of the newest request, and its resource.
fn flatten(request: &ExportMetricsServiceRequest) -> (BTreeMap<String, String>, Points) {
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
        "export:\n  otlp:\n    protocol: {protocol}\n    endpoint: {endpoint}\n    interval_secs: 1\n    timeout_secs: 2\n    resource_attributes:\n      deployment.environment: test\n"
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_export_of_a_real_run() {
    let addr = free_port();
    let received = Received::default();
    let _receiver = grpc_receiver(addr, received.clone()).await;
    let fixture = otlp_fixture("grpc", &format!("http://{addr}"));
    let agent = start_and_flush(&fixture).await;
    wait_until("an export with the sample's tokens", || {
        newest_with_tokens(&received).is_some()
    });
    assert_sample_run(&newest_with_tokens(&received).unwrap());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_protobuf_export_of_a_real_run() {
    let received = Received::default();
    let sink = received.clone();
    let gzipped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen_gzip = gzipped.clone();
    let app = axum::Router::new().route(
        "/v1/metrics",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let sink = sink.clone();
                let seen_gzip = seen_gzip.clone();
                async move {
                    let body = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
                        seen_gzip.store(true, Ordering::SeqCst);
                        let mut plain = Vec::new();
                        let mut decoder = flate2::read::GzDecoder::new(&body[..]);
                        std::io::Read::read_to_end(&mut decoder, &mut plain).unwrap();
                        axum::body::Bytes::from(plain)
                    } else {
                        body
                    };
                    sink.lock()
                        .unwrap()
                        .push(ExportMetricsServiceRequest::decode(body).unwrap());
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let endpoint = format!("http://{addr}/v1/metrics\n    compression: gzip");
    let fixture = otlp_fixture("http_protobuf", &endpoint);
    let agent = start_and_flush(&fixture).await;
    wait_until("an export with the sample's tokens", || {
        newest_with_tokens(&received).is_some()
    });
    assert_sample_run(&newest_with_tokens(&received).unwrap());
    assert!(
        gzipped.load(Ordering::SeqCst),
        "the body arrived gzip-compressed"
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

/// The collector is absent at start, appears, goes away and comes back: ingestion and the API
/// go on, failures are counted, and exports resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collector_that_comes_and_goes() {
    let collector = free_port();
    let fixture = otlp_fixture("grpc", &format!("http://{collector}"));
    let agent = start_and_flush(&fixture).await;
    let api = agent.addr;
    wait_until("a failed export", || otlp_failures(api) >= 1);
    assert_eq!(get(api, "/livez", None).status, 200);

    let received = Received::default();
    let stop = grpc_receiver(collector, received.clone()).await;
    wait_until("an export once the collector is there", || {
        newest_with_tokens(&received).is_some()
    });
    let _ = stop.send(());
    let failures = otlp_failures(api);
    wait_until("a failure while it is gone", || {
        otlp_failures(api) > failures
    });

    let again = Received::default();
    let _receiver = grpc_receiver(collector, again.clone()).await;
    wait_until("exports to resume", || newest_with_tokens(&again).is_some());
    assert_sample_run(&newest_with_tokens(&again).unwrap());
    agent.shutdown().await;
}

/// Without an endpoint in the file the standard `OTEL_EXPORTER_OTLP_ENDPOINT` is used; with one,
/// the file wins. (The real binary, so the test's own environment is not touched; SIGTERM makes
/// the final flush and the final export.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_standard_environment_variables_and_their_precedence() {
    let addr = free_port();
    let received = Received::default();
    let _receiver = grpc_receiver(addr, received.clone()).await;
    let wrong = free_port();
    for (file_endpoint, env_endpoint) in [(None, addr), (Some(addr), wrong)] {
        received.lock().unwrap().clear();
        let endpoint_line = file_endpoint
            .map(|a| format!("    endpoint: http://{a}\n"))
            .unwrap_or_default();
        let fixture = Fixture::new(&format!(
            "export:\n  otlp:\n{endpoint_line}    interval_secs: 3600\n"
        ));
        let env_url = format!("http://{env_endpoint}");
        let mut agent = spawn_agent(
            &fixture.config_path(),
            fixture.dir.path(),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", &env_url)],
        );
        let api = agent.addr;
        // Everything read; SIGTERM then flushes and exports once more.
        wait_until("the sample logs to be read", || {
            get(api, "/metrics", None)
                .body
                .lines()
                .any(|l| l == "authstat_records_read_total 15")
        });
        agent.signal("TERM");
        assert!(agent.wait_exit().success());
        assert!(
            newest_with_tokens(&received).is_some(),
            "file endpoint {file_endpoint:?}, environment {env_endpoint}: nothing arrived at {addr}"
        );
    }
}
