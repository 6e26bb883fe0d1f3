//! The `export:` section: push exporters (OTLP).

use serde::{Deserialize, Serialize};

use crate::agent::positive_u64;

/// The `export:` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// OTLP push; absent: no push.
    #[serde(default)]
    pub otlp: Option<OtlpConfig>,
}

/// The OTLP transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// gRPC (port 4317 by convention).
    #[default]
    Grpc,
    /// HTTP with protobuf bodies (port 4318; the endpoint must end in `/v1/metrics`).
    HttpProtobuf,
}

/// OTLP compression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpCompression {
    /// None.
    #[default]
    None,
    /// gzip.
    Gzip,
}

/// `export.otlp`. Options left out here are taken from the standard `OTEL_EXPORTER_OTLP_*`
/// environment variables; values in this file win.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// `grpc` (default) or `http_protobuf`.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// The collector, e.g. `http://otel-collector:4317`; `https://` turns TLS on.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Extra request headers (gRPC metadata), e.g. an API key.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Timeout of one export, in seconds.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// `none` (default) or `gzip`.
    #[serde(default)]
    pub compression: OtlpCompression,
    /// How often metrics are pushed, in seconds.
    #[serde(
        default = "default_export_interval_secs",
        deserialize_with = "positive_u64"
    )]
    pub interval_secs: u64,
    /// The `service.name` resource attribute.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// More resource attributes.
    #[serde(default)]
    pub resource_attributes: std::collections::BTreeMap<String, String>,
    /// Also export the cluster-wide monthly active users read from the backend (enable it on
    /// one node only, so that collectors do not add it up).
    #[serde(default)]
    pub cluster_users: bool,
}

fn default_export_interval_secs() -> u64 {
    60
}
fn default_service_name() -> String {
    "jans-auth".into()
}
