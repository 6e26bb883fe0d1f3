//! The OTLP exporter's settings from the file's `export.otlp`, the standard OpenTelemetry
//! environment variables and the defaults, by one rule for every option:
//!
//! 1. a value in the configuration file wins;
//! 2. then the metrics-specific variable (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, …);
//! 3. then the generic one (`OTEL_EXPORTER_OTLP_ENDPOINT`, …);
//! 4. then the default.
//!
//! Maps (headers, resource attributes) are merged key by key under the same rule, so a stray
//! variable can add a header but never replace one the file sets. As the specification asks,
//! an empty variable counts as unset, and a variable that cannot be used is ignored with a
//! warning (the file's values are checked strictly when the configuration is loaded).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::config::{OtlpCompression, OtlpConfig, OtlpProtocol};
use authstat_core::NodeId;

/// The default protocol: `http/protobuf`, which the specification recommends as the default
/// (and which passes through any HTTP proxy or load balancer).
pub(crate) const DEFAULT_PROTOCOL: OtlpProtocol = OtlpProtocol::HttpProtobuf;
/// The default timeout of one request (`OTEL_EXPORTER_OTLP_TIMEOUT`'s default).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default interval (`OTEL_METRIC_EXPORT_INTERVAL`'s default).
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The default bound of one export with its retries (`OTEL_METRIC_EXPORT_TIMEOUT`'s default).
pub(crate) const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default `service.name`.
pub(crate) const DEFAULT_SERVICE_NAME: &str = "jans-auth";

/// Everything the exporter needs, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The transport.
    pub protocol: OtlpProtocol,
    /// The URL requests go to (for HTTP, with its `/v1/metrics` path).
    pub endpoint: String,
    /// Request headers (gRPC metadata), names in lower case.
    pub headers: BTreeMap<String, String>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Compression of request bodies.
    pub compression: OtlpCompression,
    /// Time between exports.
    pub interval: Duration,
    /// Bound of one export with its retries (never longer than the interval).
    pub export_timeout: Duration,
    /// Resource attributes.
    pub resource: BTreeMap<String, String>,
    /// Trusted certificate authorities (PEM), instead of the system's.
    pub certificate: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub client_certificate: Option<PathBuf>,
    /// The client certificate's key (PEM).
    pub client_key: Option<PathBuf>,
    /// Whether the cluster's monthly active users are pushed.
    pub cluster_users: bool,
    /// Variables that were set but ignored, and why.
    pub warnings: Vec<String>,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("export.otlp.{key}: {message}")]
pub struct SettingsError {
    /// The key in `export.otlp`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn error(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Reads the environment (a function, so that tests pass a map).
struct Lookup<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    warnings: Vec<String>,
}

impl Lookup<'_> {
    /// The variable's value; empty counts as unset.
    fn var(&self, name: &str) -> Option<String> {
        (self.env)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// `OTEL_EXPORTER_OTLP_METRICS_<suffix>`, else `OTEL_EXPORTER_OTLP_<suffix>`, each parsed;
    /// a value `parse` refuses is ignored with a warning.
    fn signal<T>(
        &mut self,
        suffix: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<(String, T)> {
        for name in [
            format!("OTEL_EXPORTER_OTLP_METRICS_{suffix}"),
            format!("OTEL_EXPORTER_OTLP_{suffix}"),
        ] {
            if let Some(value) = self.parsed(&name, &parse) {
                return Some((name, value));
            }
        }
        None
    }

    fn parsed<T>(&mut self, name: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let raw = self.var(name)?;
        match parse(&raw) {
            Ok(v) => Some(v),
            Err(why) => {
                self.warnings.push(format!("{name}={raw:?} ignored: {why}"));
                None
            }
        }
    }

    /// A `key=value,key=value` list (W3C Baggage form, values percent-decoded) from `name`.
    fn pairs(&mut self, name: &str) -> BTreeMap<String, String> {
        let Some(raw) = self.var(name) else {
            return BTreeMap::new();
        };
        let mut pairs = BTreeMap::new();
        for item in raw.split(',').filter(|i| !i.trim().is_empty()) {
            let parsed = item
                .split_once('=')
                .map(|(k, v)| (k.trim(), percent_decode(v.trim())))
                .filter(|(k, _)| !k.is_empty());
            match parsed {
                Some((k, Some(v))) => {
                    pairs.insert(k.to_owned(), v);
                }
                _ => self.warnings.push(format!(
                    "{name}: {item:?} ignored: not key=value (values percent-encoded)"
                )),
            }
        }
        pairs
    }
}

/// `%XX` sequences decoded; `None` if the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

fn millis(raw: &str) -> Result<Duration, String> {
    match raw.parse::<u64>() {
        Ok(0) | Err(_) => Err("not a positive whole number of milliseconds".into()),
        Ok(ms) if ms > authstat_config::MAX_DURATION_SECS * 1000 => Err(format!(
            "too long: at most {} ms (ten years)",
            authstat_config::MAX_DURATION_SECS * 1000
        )),
        Ok(ms) => Ok(Duration::from_millis(ms)),
    }
}

fn protocol(raw: &str) -> Result<OtlpProtocol, String> {
    match raw {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        "http/json" => Err("http/json is not supported: use http/protobuf or grpc".into()),
        _ => Err("not one of grpc, http/protobuf".into()),
    }
}

fn compression(raw: &str) -> Result<OtlpCompression, String> {
    match raw {
        "gzip" => Ok(OtlpCompression::Gzip),
        "none" => Ok(OtlpCompression::None),
        _ => Err("not one of gzip, none".into()),
    }
}

/// An `http://` or `https://` URL with a host.
fn endpoint(raw: &str) -> Result<String, String> {
    let uri: tonic::codegen::http::Uri = raw.parse().map_err(|e| format!("not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(h)) if !h.is_empty() => Ok(raw.to_owned()),
        _ => Err("not an http:// or https:// URL with a host".into()),
    }
}

fn path(raw: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(raw))
}

fn header(name: &str, value: &str) -> Result<(String, String), String> {
    let name = name.to_ascii_lowercase();
    tonic::codegen::http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("'{name}' is not a valid header name"))?;
    tonic::codegen::http::HeaderValue::from_str(value)
        .map_err(|_| format!("the value of '{name}' is not valid"))?;
    Ok((name, value.to_owned()))
}

/// The URL for `OTEL_EXPORTER_OTLP_ENDPOINT`'s base: gRPC uses it as it is, HTTP appends the
/// signal's path.
fn from_base(base: &str, protocol: OtlpProtocol) -> String {
    match protocol {
        OtlpProtocol::Grpc => base.to_owned(),
        OtlpProtocol::HttpProtobuf => format!("{}/v1/metrics", base.trim_end_matches('/')),
    }
}

/// What looks wrong with an HTTP/protobuf endpoint: gRPC's port, or no path.
fn http_endpoint_warning(endpoint: &str) -> Option<String> {
    let uri: tonic::codegen::http::Uri = endpoint.parse().ok()?;
    if uri.port_u16() == Some(4317) {
        return Some(format!(
            "the OTLP endpoint {endpoint} uses port 4317, gRPC's by convention, with \
             http/protobuf: set protocol: grpc if the collector speaks gRPC there"
        ));
    }
    matches!(uri.path(), "" | "/").then(|| {
        format!(
            "the OTLP endpoint {endpoint} has no path: collectors take OTLP/HTTP metrics at \
             /v1/metrics (an endpoint in the file is used as written)"
        )
    })
}

fn default_endpoint(protocol: OtlpProtocol) -> &'static str {
    match protocol {
        OtlpProtocol::Grpc => "http://localhost:4317",
        OtlpProtocol::HttpProtobuf => "http://localhost:4318/v1/metrics",
    }
}

impl Settings {
    /// The settings of `config` for `node` on `host`, with `env` for the environment.
    pub fn resolve(
        config: &OtlpConfig,
        node: &NodeId,
        host: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let mut env = Lookup {
            env,
            warnings: Vec::new(),
        };
        let protocol = config
            .protocol
            .or_else(|| env.signal("PROTOCOL", protocol).map(|(_, p)| p))
            .unwrap_or(DEFAULT_PROTOCOL);
        let endpoint = the_endpoint(config, protocol, &mut env)?;
        if protocol == OtlpProtocol::HttpProtobuf {
            env.warnings.extend(http_endpoint_warning(&endpoint));
        }
        let timeout = config
            .timeout_secs
            .map(Duration::from_secs)
            .or_else(|| env.signal("TIMEOUT", millis).map(|(_, t)| t))
            .unwrap_or(DEFAULT_TIMEOUT);
        let compression = config
            .compression
            .or_else(|| env.signal("COMPRESSION", compression).map(|(_, c)| c))
            .unwrap_or(OtlpCompression::None);
        let interval = config
            .interval_secs
            .map(Duration::from_secs)
            .or_else(|| env.parsed("OTEL_METRIC_EXPORT_INTERVAL", millis))
            .unwrap_or(DEFAULT_INTERVAL);
        let export_timeout = env
            .parsed("OTEL_METRIC_EXPORT_TIMEOUT", millis)
            .unwrap_or(DEFAULT_EXPORT_TIMEOUT)
            .min(interval);
        let headers = headers(config, &mut env)?;
        let resource = resource(config, node, host, &mut env)?;
        let (certificate, client_certificate, client_key) = tls_files(config, &mut env)?;
        if let Some(t) = env.var("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")
            && !t.eq_ignore_ascii_case("cumulative")
        {
            env.warnings.push(format!(
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE={t:?} ignored: authstat's \
                 statistics are stored totals and always pushed as cumulative sums"
            ));
        }
        Ok(Settings {
            protocol,
            endpoint,
            headers,
            timeout,
            compression,
            interval,
            export_timeout,
            resource,
            certificate,
            client_certificate,
            client_key,
            cluster_users: config.cluster_users,
            warnings: env.warnings,
        })
    }
}

/// The file's endpoint, else `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` as it is, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` with the signal's path, else the protocol's default.
fn the_endpoint(
    config: &OtlpConfig,
    protocol: OtlpProtocol,
    env: &mut Lookup<'_>,
) -> Result<String, SettingsError> {
    if let Some(url) = &config.endpoint {
        return endpoint(url).map_err(|m| error("endpoint", m));
    }
    Ok(
        if let Some(url) = env.parsed("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint) {
            url
        } else if let Some(base) = env.parsed("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint) {
            from_base(&base, protocol)
        } else {
            default_endpoint(protocol).to_owned()
        },
    )
}

/// The CA certificate, the client certificate and the client key.
type TlsFiles = (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>);

/// The CA certificate, client certificate and client key files: the file's, else the
/// environment's; a client certificate and its key go together.
fn tls_files(config: &OtlpConfig, env: &mut Lookup<'_>) -> Result<TlsFiles, SettingsError> {
    let mut file_or_env = |file: &Option<PathBuf>, suffix: &str| {
        file.clone()
            .or_else(|| env.signal(suffix, path).map(|(_, p)| p))
    };
    let certificate = file_or_env(&config.certificate, "CERTIFICATE");
    let client_certificate = file_or_env(&config.client_certificate, "CLIENT_CERTIFICATE");
    let client_key = file_or_env(&config.client_key, "CLIENT_KEY");
    if client_certificate.is_some() != client_key.is_some() {
        return Err(error(
            "client_certificate",
            "a client certificate and its key go together (client_certificate and client_key)",
        ));
    }
    Ok((certificate, client_certificate, client_key))
}

/// The file's headers, then `OTEL_EXPORTER_OTLP_METRICS_HEADERS`', then
/// `OTEL_EXPORTER_OTLP_HEADERS`', key by key (names compared ignoring case).
fn headers(
    config: &OtlpConfig,
    env: &mut Lookup<'_>,
) -> Result<BTreeMap<String, String>, SettingsError> {
    let mut merged = BTreeMap::new();
    for (k, v) in &config.headers {
        let (k, v) = header(k, v).map_err(|m| error(&format!("headers.{k}"), m))?;
        merged.insert(k, v);
    }
    for name in [
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ] {
        for (k, v) in env.pairs(name) {
            match header(&k, &v) {
                Ok((k, v)) => {
                    merged.entry(k).or_insert(v);
                }
                Err(why) => env.warnings.push(format!("{name}: {k:?} ignored: {why}")),
            }
        }
    }
    Ok(merged)
}

/// The resource: the file's attributes (with `service_name` for `service.name`), then
/// `OTEL_SERVICE_NAME`, then `OTEL_RESOURCE_ATTRIBUTES`, then what the agent knows (node, host,
/// version); `telemetry.sdk.*` always describe authstat.
fn resource(
    config: &OtlpConfig,
    node: &NodeId,
    host: &str,
    env: &mut Lookup<'_>,
) -> Result<BTreeMap<String, String>, SettingsError> {
    let mut resource = config.resource_attributes.clone();
    if let Some(name) = &config.service_name {
        if resource.contains_key("service.name") {
            return Err(error(
                "service_name",
                "service.name is also set in resource_attributes: keep one",
            ));
        }
        resource.insert("service.name".into(), name.clone());
    }
    if let Some(name) = env.var("OTEL_SERVICE_NAME") {
        resource.entry("service.name".into()).or_insert(name);
    }
    for (k, v) in env.pairs("OTEL_RESOURCE_ATTRIBUTES") {
        resource.entry(k).or_insert(v);
    }
    let version = env!("CARGO_PKG_VERSION");
    for (k, v) in [
        ("service.name", DEFAULT_SERVICE_NAME),
        ("service.instance.id", node.as_str()),
        ("service.version", version),
        ("host.name", host),
    ] {
        resource.entry(k.into()).or_insert_with(|| v.to_owned());
    }
    for (k, v) in [
        ("telemetry.sdk.name", "authstat"),
        ("telemetry.sdk.language", "rust"),
        ("telemetry.sdk.version", version),
    ] {
        resource.insert(k.into(), v.into());
    }
    Ok(resource)
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
