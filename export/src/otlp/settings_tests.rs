//! One test per environment variable and per precedence rule.

use super::*;

fn config(yaml: &str) -> OtlpConfig {
    serde_yaml::from_str(if yaml.is_empty() { "{}" } else { yaml }).unwrap()
}

fn resolve(yaml: &str, vars: &[(&str, &str)]) -> Settings {
    try_resolve(yaml, vars).unwrap()
}

fn try_resolve(yaml: &str, vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let env = move |name: &str| vars.get(name).cloned();
    Settings::resolve(
        &config(yaml),
        &NodeId::new("node-1".to_owned()).unwrap(),
        "host-1",
        &env,
    )
}

#[test]
fn defaults_follow_the_specification() {
    let s = resolve("", &[]);
    assert_eq!(s.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(s.endpoint, "http://localhost:4318/v1/metrics");
    assert_eq!(s.timeout, Duration::from_secs(10));
    assert_eq!(s.compression, OtlpCompression::None);
    assert_eq!(s.interval, Duration::from_secs(60));
    assert_eq!(s.export_timeout, Duration::from_secs(30));
    assert!(s.headers.is_empty());
    assert!(s.warnings.is_empty());
    let grpc = resolve("protocol: grpc", &[]);
    assert_eq!(grpc.endpoint, "http://localhost:4317");
}

#[test]
fn protocol_file_then_metrics_variable_then_generic() {
    let generic = [("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];
    assert_eq!(resolve("", &generic).protocol, OtlpProtocol::Grpc);
    let both = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
    ];
    assert_eq!(resolve("", &both).protocol, OtlpProtocol::HttpProtobuf);
    let file = resolve("protocol: http/protobuf", &generic);
    assert_eq!(file.protocol, OtlpProtocol::HttpProtobuf);
    // The old spelling still reads.
    assert_eq!(
        resolve("protocol: http_protobuf", &generic).protocol,
        OtlpProtocol::HttpProtobuf
    );
}

#[test]
fn the_generic_endpoint_is_a_base_for_http_and_used_as_is_for_grpc() {
    let base = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")];
    assert_eq!(
        resolve("", &base).endpoint,
        "http://collector:4318/v1/metrics"
    );
    let grpc = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ];
    assert_eq!(resolve("", &grpc).endpoint, "https://collector:4317");
}

#[test]
fn endpoint_file_then_metrics_variable_then_generic() {
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://metrics:9000/custom",
        ),
    ];
    // The metrics-specific URL is used exactly as written.
    assert_eq!(resolve("", &vars).endpoint, "http://metrics:9000/custom");
    assert_eq!(
        resolve("endpoint: http://file:4318/v1/metrics", &vars).endpoint,
        "http://file:4318/v1/metrics"
    );
}

#[test]
fn headers_merge_key_by_key_and_the_file_wins() {
    let vars = [
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "X-Api-Key=env-key,x-team=env%20team",
        ),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-team=metrics-team"),
    ];
    let s = resolve("headers: {x-api-key: file-key}", &vars);
    assert_eq!(
        s.headers["x-api-key"], "file-key",
        "a stray variable never replaces the file's key"
    );
    assert_eq!(
        s.headers["x-team"], "metrics-team",
        "metrics-specific before generic"
    );
    assert_eq!(s.headers.len(), 2);
    // Without the file, the variable's key arrives (names in lower case, values decoded).
    let s = resolve("", &vars[..1]);
    assert_eq!(s.headers["x-api-key"], "env-key");
    assert_eq!(s.headers["x-team"], "env team");
}

#[test]
fn timeout_is_milliseconds_in_the_environment() {
    assert_eq!(
        resolve("", &[("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")]).timeout,
        Duration::from_millis(2500)
    );
    let both = [
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "700"),
    ];
    assert_eq!(resolve("", &both).timeout, Duration::from_millis(700));
    assert_eq!(
        resolve("timeout_secs: 3", &both).timeout,
        Duration::from_secs(3)
    );
}

#[test]
fn compression_none_in_the_file_beats_gzip_in_the_environment() {
    let gzip = [("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")];
    assert_eq!(resolve("", &gzip).compression, OtlpCompression::Gzip);
    assert_eq!(
        resolve("compression: none", &gzip).compression,
        OtlpCompression::None
    );
    let metrics = [
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "none"),
    ];
    assert_eq!(resolve("", &metrics).compression, OtlpCompression::None);
}

#[test]
fn export_interval_and_timeout() {
    let vars = [
        ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "2000"),
    ];
    let s = resolve("", &vars);
    assert_eq!(s.interval, Duration::from_secs(5));
    assert_eq!(s.export_timeout, Duration::from_secs(2));
    let file = resolve("interval_secs: 1", &vars);
    assert_eq!(file.interval, Duration::from_secs(1));
    assert_eq!(
        file.export_timeout,
        Duration::from_secs(1),
        "an export never runs into the next one"
    );
}

#[test]
fn service_name_file_then_otel_service_name_then_resource_attributes() {
    let vars = [
        ("OTEL_SERVICE_NAME", "from-service-name"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-attributes,team=ops",
        ),
    ];
    let s = resolve("", &vars);
    assert_eq!(s.resource["service.name"], "from-service-name");
    assert_eq!(s.resource["team"], "ops");
    assert_eq!(
        resolve("", &vars[1..]).resource["service.name"],
        "from-attributes"
    );
    assert_eq!(
        resolve("service_name: file-name", &vars).resource["service.name"],
        "file-name"
    );
    assert_eq!(
        resolve("resource_attributes: {service.name: file-attr}", &vars).resource["service.name"],
        "file-attr"
    );
    assert_eq!(resolve("", &[]).resource["service.name"], "jans-auth");
    let e = try_resolve(
        "service_name: a\nresource_attributes: {service.name: b}",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.key, "service_name");
}

#[test]
fn resource_attributes_merge_and_the_sdk_attributes_describe_authstat() {
    let vars = [(
        "OTEL_RESOURCE_ATTRIBUTES",
        "deployment.environment=env,region=eu%2Cwest,telemetry.sdk.name=other",
    )];
    let s = resolve("resource_attributes: {deployment.environment: prod}", &vars);
    assert_eq!(s.resource["deployment.environment"], "prod");
    assert_eq!(s.resource["region"], "eu,west");
    assert_eq!(s.resource["telemetry.sdk.name"], "authstat");
    assert_eq!(s.resource["telemetry.sdk.language"], "rust");
    assert_eq!(
        s.resource["telemetry.sdk.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(s.resource["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s.resource["service.instance.id"], "node-1");
    assert_eq!(s.resource["host.name"], "host-1");
}

#[test]
fn certificates_from_the_file_or_the_environment() {
    let vars = [
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/env/ca.pem"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
            "/env/client.pem",
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/env/client.key"),
    ];
    let s = resolve("", &vars);
    assert_eq!(s.certificate, Some(PathBuf::from("/env/ca.pem")));
    assert_eq!(s.client_certificate, Some(PathBuf::from("/env/client.pem")));
    assert_eq!(s.client_key, Some(PathBuf::from("/env/client.key")));
    let s = resolve("certificate: /file/ca.pem", &vars);
    assert_eq!(s.certificate, Some(PathBuf::from("/file/ca.pem")));
    let e = try_resolve("", &vars[..2]).unwrap_err();
    assert_eq!(e.key, "client_certificate", "{e}");
}

#[test]
fn empty_variables_are_unset_and_unusable_ones_are_ignored_with_a_warning() {
    let vars = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", ""),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "novalue,ok=1,bad name=2,x=%ff",
        ),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
    ];
    let s = resolve("", &vars);
    assert_eq!(s.protocol, DEFAULT_PROTOCOL);
    assert_eq!(s.timeout, DEFAULT_TIMEOUT);
    assert_eq!(s.endpoint, "http://localhost:4318/v1/metrics");
    assert_eq!(s.interval, DEFAULT_INTERVAL);
    assert_eq!(s.headers.keys().collect::<Vec<_>>(), ["ok"]);
    let all = s.warnings.join("\n");
    for name in [
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "\"novalue\"",
        "\"bad name\"",
        "\"x=%ff\"",
        "OTEL_METRIC_EXPORT_INTERVAL",
        "TEMPORALITY_PREFERENCE",
    ] {
        assert!(all.contains(name), "{name} not warned about in:\n{all}");
    }
    assert!(
        !all.contains("OTEL_EXPORTER_OTLP_PROTOCOL="),
        "empty is unset: {all}"
    );
}

#[test]
fn the_files_values_are_checked_strictly() {
    let e = try_resolve("endpoint: collector:4317", &[]).unwrap_err();
    assert_eq!(e.key, "endpoint", "{e}");
    let e = try_resolve("headers: {\"bad name\": v}", &[]).unwrap_err();
    assert_eq!(e.key, "headers.bad name", "{e}");
}

#[test]
fn an_http_endpoint_on_grpcs_port_or_without_a_path_is_warned_about() {
    let s = resolve("endpoint: http://collector:4317", &[]);
    assert!(
        s.warnings.iter().any(|w| w.contains("port 4317")),
        "{:?}",
        s.warnings
    );
    let s = resolve("endpoint: http://collector:4318", &[]);
    assert!(
        s.warnings.iter().any(|w| w.contains("no path")),
        "{:?}",
        s.warnings
    );
    assert!(
        resolve("endpoint: http://collector:4318/v1/metrics", &[])
            .warnings
            .is_empty()
    );
    assert!(
        resolve("protocol: grpc\nendpoint: http://collector:4317", &[])
            .warnings
            .is_empty()
    );
}

#[test]
fn durations_from_the_environment_are_bounded() {
    let huge = u64::MAX.to_string();
    let s = resolve(
        "",
        &[
            ("OTEL_METRIC_EXPORT_INTERVAL", huge.as_str()),
            ("OTEL_METRIC_EXPORT_TIMEOUT", huge.as_str()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", huge.as_str()),
        ],
    );
    assert_eq!(s.interval, DEFAULT_INTERVAL);
    assert_eq!(s.timeout, DEFAULT_TIMEOUT);
    assert!(s.export_timeout <= DEFAULT_EXPORT_TIMEOUT);
    let all = s.warnings.join("\n");
    assert!(all.contains("too long"), "{all}");
}
