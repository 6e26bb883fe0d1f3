//! One OTLP request over gRPC (tonic) or HTTP/protobuf (reqwest), and what its answer means
//! for a retry, as the OTLP specification defines it:
//!
//! - gRPC: `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE` and
//!   `DATA_LOSS` are retryable, `RESOURCE_EXHAUSTED` only when the server sends `RetryInfo`
//!   (its delay is honoured); everything else is not.
//! - HTTP: 429, 502, 503 and 504 are retryable (`Retry-After` honoured, seconds or a date);
//!   every other status is not.
//! - A request that never reached the collector (connection refused, reset, timed out) is
//!   retryable.
//!
//! There is no retry in here: the exporter retries, in one place.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use super::config::{OtlpCompression, OtlpProtocol};
use anyhow::Context as _;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message as _;
use tonic::transport::Channel;

use super::settings::{Settings, SettingsError};

/// The collector took the request; it may have rejected some data points.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Data points the collector rejected (partial success).
    pub rejected: i64,
    /// Its explanation.
    pub message: String,
}

/// The request failed.
#[derive(Debug, PartialEq, Eq)]
pub struct Failed {
    /// What happened, for the log: the status or the gRPC code and the message.
    pub status: String,
    /// Whether the specification allows another try.
    pub retryable: bool,
    /// The delay the collector asked for (`Retry-After`, `RetryInfo`).
    pub retry_after: Option<Duration>,
}

/// A connection to one collector.
#[derive(Debug)]
pub(crate) enum Transport {
    /// gRPC.
    Grpc {
        /// The client (its channel connects lazily and reconnects by itself).
        client: MetricsServiceClient<Channel>,
        /// Headers as gRPC metadata.
        metadata: tonic::metadata::MetadataMap,
    },
    /// HTTP/protobuf.
    Http {
        /// The client.
        client: reqwest::Client,
        /// The full URL.
        url: String,
        /// Headers.
        headers: reqwest::header::HeaderMap,
        /// Whether bodies are gzipped.
        gzip: bool,
    },
}

fn read(path: &std::path::Path, key: &str) -> Result<Vec<u8>, SettingsError> {
    std::fs::read(path).map_err(|e| SettingsError {
        key: key.to_owned(),
        message: format!("cannot read {}: {e}", path.display()),
    })
}

impl Transport {
    /// The transport `settings` ask for (certificates read now; nothing is connected yet).
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = settings
            .certificate
            .as_deref()
            .map(|p| read(p, "certificate"))
            .transpose()?;
        let identity = match (&settings.client_certificate, &settings.client_key) {
            (Some(cert), Some(key)) => {
                Some((read(cert, "client_certificate")?, read(key, "client_key")?))
            }
            _ => None,
        };
        match settings.protocol {
            OtlpProtocol::Grpc => grpc(settings, ca, identity),
            OtlpProtocol::HttpProtobuf => http(settings, ca, identity),
        }
    }

    /// Sends `request` once, within `timeout`.
    pub async fn send(
        &mut self,
        request: &ExportMetricsServiceRequest,
        timeout: Duration,
    ) -> Result<Accepted, Failed> {
        match self {
            Transport::Grpc { client, metadata } => {
                let mut call = tonic::Request::new(request.clone());
                *call.metadata_mut() = metadata.clone();
                call.set_timeout(timeout);
                match tokio::time::timeout(timeout, client.export(call)).await {
                    Ok(Ok(response)) => Ok(accepted(response.into_inner())),
                    Ok(Err(status)) => Err(grpc_failure(&status)),
                    Err(_) => Err(timed_out(timeout)),
                }
            }
            Transport::Http {
                client,
                url,
                headers,
                gzip,
            } => {
                let mut body = request.encode_to_vec();
                let mut call = client
                    .post(url.as_str())
                    .headers(headers.clone())
                    .header("content-type", "application/x-protobuf")
                    .timeout(timeout);
                if *gzip {
                    body = gzipped(&body);
                    call = call.header("content-encoding", "gzip");
                }
                match tokio::time::timeout(timeout, call.body(body).send()).await {
                    Ok(Ok(response)) => http_answer(response).await,
                    Ok(Err(e)) => Err(Failed {
                        status: error_chain(&e),
                        retryable: true,
                        retry_after: None,
                    }),
                    Err(_) => Err(timed_out(timeout)),
                }
            }
        }
    }
}

fn grpc(
    settings: &Settings,
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
) -> anyhow::Result<Transport> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let mut endpoint = Endpoint::from_shared(settings.endpoint.clone())
        .with_context(|| format!("the OTLP endpoint {}", settings.endpoint))?
        .connect_timeout(settings.timeout)
        .user_agent(concat!("authstat/", env!("CARGO_PKG_VERSION")))?;
    if settings.endpoint.starts_with("https://") {
        let mut tls = match ca {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint
            .tls_config(tls)
            .context("the OTLP endpoint's TLS settings")?;
    }
    let mut client = MetricsServiceClient::new(endpoint.connect_lazy());
    if settings.compression == OtlpCompression::Gzip {
        client = client
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    }
    let mut metadata = tonic::metadata::MetadataMap::new();
    for (k, v) in &settings.headers {
        let key = tonic::metadata::MetadataKey::from_bytes(k.as_bytes())
            .with_context(|| format!("'{k}' is not a valid gRPC metadata name"))?;
        let value = v
            .parse()
            .with_context(|| format!("the value of '{k}' is not valid gRPC metadata"))?;
        metadata.insert(key, value);
    }
    Ok(Transport::Grpc { client, metadata })
}

fn http(
    settings: &Settings,
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
) -> anyhow::Result<Transport> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("authstat/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(settings.timeout);
    if let Some(pem) = ca {
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .context("the OTLP certificate is not PEM")?;
        builder = builder.tls_certs_only(certs);
    }
    if let Some((mut cert, key)) = identity {
        cert.extend_from_slice(b"\n");
        cert.extend_from_slice(&key);
        builder = builder.identity(
            reqwest::Identity::from_pem(&cert)
                .context("the OTLP client certificate and key are not PEM")?,
        );
    }
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in &settings.headers {
        headers.insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .with_context(|| format!("'{k}' is not a valid header name"))?,
            v.parse()
                .with_context(|| format!("the value of '{k}' is not a valid header"))?,
        );
    }
    Ok(Transport::Http {
        client: builder.build().context("the OTLP HTTP client")?,
        url: settings.endpoint.clone(),
        headers,
        gzip: settings.compression == OtlpCompression::Gzip,
    })
}

fn gzipped(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .expect("gzip into memory")
}

fn accepted(response: ExportMetricsServiceResponse) -> Accepted {
    let partial = response.partial_success.unwrap_or_default();
    Accepted {
        rejected: partial.rejected_data_points,
        message: partial.error_message,
    }
}

fn timed_out(timeout: Duration) -> Failed {
    Failed {
        status: format!("no answer within {} ms", timeout.as_millis()),
        retryable: true,
        retry_after: None,
    }
}

/// An error with its causes, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

fn grpc_failure(status: &tonic::Status) -> Failed {
    use tonic::Code;
    use tonic_types::StatusExt as _;
    let retry_after = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .map(|delay| delay.min(MAX_SERVER_DELAY));
    let retryable = match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => retry_after.is_some(),
        _ => false,
    };
    let mut text = format!("gRPC {:?}", status.code());
    if !status.message().is_empty() {
        text = format!("{text}: {}", status.message());
    }
    if let Some(source) = std::error::Error::source(status) {
        text = format!("{text}: {}", error_chain(source));
    }
    Failed {
        status: text,
        retryable,
        retry_after,
    }
}

async fn http_answer(response: reqwest::Response) -> Result<Accepted, Failed> {
    let status = response.status();
    if status.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        // An empty body is a full success; a body that is not the response message too (the
        // collector took the data).
        return Ok(ExportMetricsServiceResponse::decode(body)
            .map(accepted)
            .unwrap_or(Accepted {
                rejected: 0,
                message: String::new(),
            }));
    }
    let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, SystemTime::now()));
    Err(Failed {
        status: format!("HTTP {status}"),
        retryable,
        retry_after,
    })
}

/// The longest delay a collector can ask for (`Retry-After`, `RetryInfo`): a longer one is
/// taken as this. A delay past the export's deadline ends the export anyway; the bound keeps
/// every sum with an instant from overflowing, whatever a collector sends.
pub(crate) const MAX_SERVER_DELAY: Duration = Duration::from_secs(3600);

/// A `Retry-After` value: seconds, or an HTTP date (as a delay from `now`), at most
/// [`MAX_SERVER_DELAY`]. A date in the past is no delay.
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Any number of digits: one too large for a u64 is still a (very long) delay.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_SERVER_DELAY));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_SERVER_DELAY),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        for huge in ["18446744073709551615", "99999999999999999999999"] {
            assert_eq!(retry_after(huge, now), Some(MAX_SERVER_DELAY), "{huge}");
        }
        assert_eq!(
            retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            Some(MAX_SERVER_DELAY)
        );
    }

    #[test]
    fn grpc_codes_the_specification_calls_retryable() {
        use tonic::Code;
        for (code, retryable) in [
            (Code::Unavailable, true),
            (Code::Cancelled, true),
            (Code::DeadlineExceeded, true),
            (Code::Aborted, true),
            (Code::OutOfRange, true),
            (Code::DataLoss, true),
            (Code::ResourceExhausted, false),
            (Code::InvalidArgument, false),
            (Code::Unauthenticated, false),
            (Code::PermissionDenied, false),
            (Code::NotFound, false),
            (Code::Unimplemented, false),
        ] {
            let failed = grpc_failure(&tonic::Status::new(code, "x"));
            assert_eq!(failed.retryable, retryable, "{code:?}");
        }
        let with_info = <tonic::Status as tonic_types::StatusExt>::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_millis(1500))),
        );
        let failed = grpc_failure(&with_info);
        assert!(failed.retryable);
        assert_eq!(failed.retry_after, Some(Duration::from_millis(1500)));
    }
}
