//! TLS to the collector: a certificate authority of our own (`certificate`), mutual TLS
//! (`client_certificate`, `client_key`), over gRPC and HTTP/protobuf. The certificates are
//! made by the openssl command (scripts/install-deps installs it).

use std::path::Path;
use std::process::Command;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::tests::{pusher_with, soon};
use super::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`), a server certificate for localhost (`server.pem`, `server.key`) and a client
/// certificate (`client.pem`, `client.key`), both signed by the CA.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=authstat test CA",
    ]);
    openssl(dir, &ca);
    for (name, usage, san) in [
        (
            "server",
            "serverAuth",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ),
        ("client", "clientAuth", "subjectAltName=DNS:authstat-client"),
    ] {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
        openssl(dir, &req);
        let ext = format!("{name}.ext");
        std::fs::write(
            dir.join(&ext),
            format!("{san}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

#[derive(Clone)]
struct Accepting;

#[tonic::async_trait]
impl MetricsService for Accepting {
    async fn export(
        &self,
        _request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

/// A gRPC collector with TLS on localhost; with `client_ca`, it requires a client certificate.
async fn grpc_tls_collector(dir: &Path, client_ca: bool) -> String {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
        read(dir, "server.pem"),
        read(dir, "server.key"),
    ));
    if client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(dir, "ca.pem")));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tonic::transport::Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(MetricsServiceServer::new(Accepting));
    tokio::spawn(server.serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)));
    format!("https://localhost:{port}")
}

/// An HTTP/1.1 collector with TLS on localhost that accepts every export.
async fn http_tls_collector(dir: &Path) -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let app = axum::Router::new().route(
        "/v1/metrics",
        axum::routing::post(|| async { axum::http::StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://localhost:{port}/v1/metrics")
}

fn short() -> Instant {
    Instant::now() + Duration::from_millis(800)
}

#[tokio::test]
async fn a_collector_signed_by_our_own_ca() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let ca = format!("certificate: {}\n", dir.path().join("ca.pem").display());
    for protocol in ["grpc", "http/protobuf"] {
        let endpoint = match protocol {
            "grpc" => grpc_tls_collector(dir.path(), false).await,
            _ => http_tls_collector(dir.path()).await,
        };
        let mut trusting = pusher_with(protocol, &endpoint, &ca);
        assert!(trusting.export(soon()).await.1, "{protocol}: with our CA");
        // The system's trust store does not know our CA: the handshake fails.
        let mut system = pusher_with(protocol, &endpoint, "");
        assert!(
            !system.export(short()).await.1,
            "{protocol}: without our CA"
        );
    }
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let endpoint = grpc_tls_collector(dir.path(), true).await;
    let ca = format!("certificate: {}\n", dir.path().join("ca.pem").display());
    let client = format!(
        "{ca}client_certificate: {}\nclient_key: {}\n",
        dir.path().join("client.pem").display(),
        dir.path().join("client.key").display()
    );
    let mut with = pusher_with("grpc", &endpoint, &client);
    assert!(with.export(soon()).await.1, "with the client certificate");
    let mut without = pusher_with("grpc", &endpoint, &ca);
    assert!(
        !without.export(short()).await.1,
        "without a client certificate"
    );
}

#[test]
fn a_certificate_file_that_cannot_be_read_is_a_configuration_error() {
    let config: OtlpConfig = serde_yaml::from_str("certificate: /nonexistent/ca.pem\n").unwrap();
    let node = NodeId::new("node-1".to_owned()).unwrap();
    let settings = Settings::resolve(&config, &node, "host", &|_| None).unwrap();
    let e = Transport::new(&settings).unwrap_err();
    let e = e.downcast_ref::<SettingsError>().expect("a SettingsError");
    assert_eq!(e.key, "certificate");
    assert!(e.message.contains("/nonexistent/ca.pem"), "{e}");
}
