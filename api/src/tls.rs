//! The API over HTTPS: each connection's handshake (plain HTTP on the port is answered with a
//! 400 that says so, never served), the client's certificate for the requests, the files
//! re-read every few seconds (a renewed certificate is used by new handshakes without a
//! restart; a change that is not a valid pair keeps the one in use, on `/readyz`, in the log and
//! in `authstat_tls_files_refused`), and the certificate's expiry as a gauge and, within 14
//! days, a warning.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use authstat_config::ApiTlsConfig;
use authstat_core::metrics::{Collector, Families, Sample};
use authstat_tls::{Reload, ServerFiles, ServerTls};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::families::by;

/// How often the files are read again: a renewed certificate is in use within this.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);
/// A certificate that expires within this is warned about.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);

/// The client's certificate on a TLS connection: in every request's extensions when the API
/// serves HTTPS.
#[derive(Debug, Clone, Default)]
pub struct TlsPeer {
    /// The subject of the certificate the client presented (verified against
    /// `api.tls.client_ca_file`), as RFC 4514 writes it; `None` without one.
    pub subject: Option<String>,
}

/// Counters of the handshakes and reloads.
#[derive(Debug, Default)]
struct TlsStats {
    plain_http: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    applied: AtomicU64,
    refused: AtomicU64,
}

/// The API listener's TLS.
#[derive(Debug)]
pub struct ApiTls {
    server: ServerTls,
    stats: TlsStats,
    /// Requests other than the probes need a client certificate, which the handshake does not
    /// require (`probes_without_client_cert`).
    certs_checked_per_request: bool,
}

authstat_core::family!(
    TLS_CERT_EXPIRY,
    "authstat_tls_cert_expiry_seconds",
    Gauge,
    "s",
    true,
    [],
    "Seconds until the API's certificate expires (0 once it has)."
);

authstat_core::family!(
    TLS_FILES_REFUSED,
    "authstat_tls_files_refused",
    Gauge,
    "1",
    true,
    [],
    "1 while the certificate files on disk are not a valid pair and the previous one is served (the reason is on /readyz)."
);

authstat_core::family!(
    TLS_RELOADS,
    "authstat_tls_reloads_total",
    Counter,
    "{reload}",
    true,
    ["result"],
    "Changes of the certificate files: applied, or refused (the previous pair is kept)."
);

authstat_core::family!(
    TLS_HANDSHAKE_FAILURES,
    "authstat_tls_handshake_failures_total",
    Counter,
    "{connection}",
    false,
    ["reason"],
    "Connections that did not complete a TLS handshake: plain HTTP sent to the HTTPS port (plain_http), a failed handshake (failed: no shared version or cipher, an untrusted or missing client certificate), none within api.request_timeout_secs (timeout)."
);

impl Collector for ApiTls {
    fn collect(&self, out: &mut Families) {
        let left = self
            .server
            .leaf()
            .not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let stats = &self.stats;
        out.extend([
            (
                &TLS_CERT_EXPIRY,
                vec![Sample::int(Vec::new(), left.as_secs())],
            ),
            (
                &TLS_FILES_REFUSED,
                vec![Sample::int(
                    Vec::new(),
                    u64::from(self.server.problem().is_some()),
                )],
            ),
            (
                &TLS_RELOADS,
                by([("applied", &stats.applied), ("refused", &stats.refused)]),
            ),
            (
                &TLS_HANDSHAKE_FAILURES,
                by([
                    ("plain_http", &stats.plain_http),
                    ("failed", &stats.failed),
                    ("timeout", &stats.timed_out),
                ]),
            ),
        ]);
    }
}

/// What a client that speaks plain HTTP to the HTTPS port is told.
const PLAIN_HTTP_ANSWER: &str = r#"{"error":"invalid_request","error_description":"this port serves HTTPS only (api.tls): use https://"}"#;

impl ApiTls {
    /// Reads and checks the configured files; the error names the file and what is wrong.
    pub fn load(config: &ApiTlsConfig) -> Result<Arc<Self>, String> {
        let server = ServerTls::load(ServerFiles {
            cert_file: config.cert_file.clone(),
            key_file: config.key_file.clone(),
            client_ca_file: config.client_ca_file.clone(),
            client_cert_optional: config.probes_without_client_cert,
        })?;
        let tls = ApiTls {
            server,
            stats: TlsStats::default(),
            certs_checked_per_request: config.client_ca_file.is_some()
                && config.probes_without_client_cert,
        };
        let leaf = tls.server.leaf();
        info!(subject = %leaf.subject, serial = %leaf.serial, expires = %leaf.not_after_text, "serving HTTPS");
        tls.warn_if_expiring();
        Ok(Arc::new(tls))
    }

    /// What `/readyz` says of the API's TLS: certificate files that were not reloaded, a
    /// certificate in use that has expired.
    pub fn problem(&self) -> Option<String> {
        self.problem_at(SystemTime::now())
    }

    fn problem_at(&self, now: SystemTime) -> Option<String> {
        let leaf = self.server.leaf();
        let expired = (now > leaf.not_after).then(|| {
            format!(
                "tls: the API's certificate expired on {}: clients refuse it; renew {}",
                leaf.not_after_text,
                self.server.files().cert_file.display()
            )
        });
        let refused = self.server.problem().map(|why| {
            format!("tls: the certificate files were not reloaded ({why}); the previous certificate is served")
        });
        let lines: Vec<String> = refused.into_iter().chain(expired).collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    /// Whether a request without a client certificate to `path` must be refused here (the
    /// handshake let it through for the probes).
    pub fn needs_client_cert(&self, peer: &TlsPeer, is_probe: bool) -> bool {
        self.certs_checked_per_request && peer.subject.is_none() && !is_probe
    }

    fn warn_if_expiring(&self) {
        let leaf = self.server.leaf();
        let left = leaf
            .not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        if left < EXPIRY_WARNING {
            warn!(
                subject = %leaf.subject,
                expires = %leaf.not_after_text,
                days_left = left.as_secs() / 86_400,
                "the API's certificate expires within 14 days: renew it (authstat_tls_cert_expiry_seconds)"
            );
        }
    }

    /// Reads the files again now; what changed is applied or refused (and logged).
    pub fn reload_now(&self) -> Reload {
        let outcome = self.server.reload_if_changed();
        match &outcome {
            Reload::Unchanged => {}
            Reload::Applied(leaf) => {
                self.stats.applied.fetch_add(1, Ordering::Relaxed);
                info!(subject = %leaf.subject, serial = %leaf.serial, expires = %leaf.not_after_text, "the API's certificate was reloaded");
                self.warn_if_expiring();
            }
            Reload::Refused(why) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                warn!(reason = %why, "the API's certificate files changed but were not loaded; the previous certificate is served");
            }
        }
        outcome
    }

    /// Reads the files every [`RELOAD_EVERY`]; warns of a close expiry once a day.
    pub async fn reload_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            let tls = self.clone();
            let _ = tokio::task::spawn_blocking(move || tls.reload_now()).await;
            if warned.elapsed() >= Duration::from_secs(86_400) {
                warned = tokio::time::Instant::now();
                self.warn_if_expiring();
            }
        }
    }

    /// The TLS session of a new connection, with the client's certificate; `None` when there is
    /// none within `timeout` (counted; plain HTTP is answered with a 400 that says why).
    pub async fn accept(
        &self,
        stream: TcpStream,
        timeout: Duration,
    ) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, TlsPeer)> {
        let mut first = [0u8; 1];
        match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
            Ok(Ok(1)) => {}
            Ok(_) => return None,
            Err(_) => {
                self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        // Every TLS connection opens with a handshake record (content type 22).
        if first[0] != 0x16 {
            self.stats.plain_http.fetch_add(1, Ordering::Relaxed);
            answer_plain_http(stream, timeout).await;
            return None;
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(self.server.config());
        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                let subject = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| authstat_tls::CertInfo::of(leaf).ok())
                    .map(|info| info.subject);
                Some((stream, TlsPeer { subject }))
            }
            Ok(Err(e)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                debug!(error = %e, "a TLS handshake failed");
                None
            }
            Err(_) => {
                self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// Reads what a plain-HTTP client sent (so that closing does not reset the connection before it
/// reads the answer) and answers 400.
async fn answer_plain_http(mut stream: TcpStream, timeout: Duration) {
    let mut request = [0u8; 4096];
    let _ = tokio::time::timeout(timeout, stream.read(&mut request)).await;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PLAIN_HTTP_ANSWER}",
        PLAIN_HTTP_ANSWER.len()
    );
    let _ = tokio::time::timeout(timeout, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests;
