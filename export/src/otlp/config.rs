//! `export.otlp`: the OTLP exporter's options, decoded from its section as written.
//!
//! Every option may be left out; the agent then takes it from the standard OpenTelemetry
//! environment variables, and only then from its default. The rule is the same for every
//! option (see docs/config.md, "OTLP"): a value in this file wins, then the metrics-specific
//! variable (`OTEL_EXPORTER_OTLP_METRICS_*`), then the generic one. Maps (headers, resource
//! attributes) are merged key by key under the same rule.

use std::collections::BTreeMap;
use std::path::PathBuf;

use authstat_config::options::optional_positive_u64;
use serde::{Deserialize, Serialize};

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OtlpProtocol {
    /// gRPC (port 4317 by convention).
    #[serde(rename = "grpc")]
    Grpc,
    /// HTTP with protobuf bodies (port 4318, path `/v1/metrics`); the default, as the
    /// specification recommends.
    #[serde(rename = "http/protobuf", alias = "http_protobuf")]
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The name in the file and in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// OTLP compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpCompression {
    /// None (the default).
    None,
    /// gzip.
    Gzip,
}

/// `export.otlp`. Every option may be left out (see the module's documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// `http/protobuf` (default) or `grpc`.
    #[serde(default)]
    pub protocol: Option<OtlpProtocol>,
    /// The collector's URL, used as written: e.g. `http://otel-collector:4318/v1/metrics`
    /// (HTTP) or `http://otel-collector:4317` (gRPC); `https://` turns TLS on.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Extra request headers (gRPC metadata), e.g. an API key.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Timeout of one request, in seconds (default 10).
    #[serde(default, deserialize_with = "optional_positive_u64")]
    pub timeout_secs: Option<u64>,
    /// `none` (default) or `gzip`.
    #[serde(default)]
    pub compression: Option<OtlpCompression>,
    /// How often metrics are pushed, in seconds (default 60).
    #[serde(default, deserialize_with = "optional_positive_u64")]
    pub interval_secs: Option<u64>,
    /// The `service.name` resource attribute (default `jans-auth`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// More resource attributes.
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, String>,
    /// A PEM file of the certificate authorities that sign the collector's certificate
    /// (default: the system's trust store).
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// A PEM file with this agent's client certificate (mutual TLS; with `client_key`).
    #[serde(default)]
    pub client_certificate: Option<PathBuf>,
    /// A PEM file with the client certificate's private key.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Also export the cluster-wide monthly active users read from the backend (enable it on
    /// one node only, so that collectors do not add it up).
    #[serde(default)]
    pub cluster_users: bool,
}
