//! The listener over TLS with a throwaway CA: versions, ALPN, plain HTTP refused, rotation,
//! client certificates required, optional for the probes, and refused from another CA.

use std::net::SocketAddr;
use std::path::Path;

use authstat_test_support::certs::{Ca, Issued, Key, Leaf};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;
use crate::http::{ConnectionStats, Server, serve};

fn config(dir: &Path, client_ca: bool, probes_open: bool) -> ApiTlsConfig {
    ApiTlsConfig {
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server.key"),
        client_ca_file: client_ca.then(|| dir.join("clients.pem")),
        probes_without_client_cert: probes_open,
    }
}

/// An HTTPS server on a free port whose routes answer with the client's certificate subject.
async fn start(tls: Arc<ApiTls>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    start_with_timeout(tls, Duration::from_secs(5)).await
}

async fn start_with_timeout(
    tls: Arc<ApiTls>,
    timeout: Duration,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let subject = |peer: Option<axum::Extension<TlsPeer>>| async move {
        format!("{:?}", peer.and_then(|axum::Extension(p)| p.subject))
    };
    let app = axum::Router::new()
        .route("/livez", axum::routing::get(subject))
        .route("/stat", axum::routing::get(subject));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let server = Server {
        listener,
        app,
        timeout,
        cap: 16,
        requests: Arc::new(crate::ApiStats::default()),
        connections: Arc::new(ConnectionStats::default()),
        tls: Some(tls),
        probe_paths: vec!["/livez".to_owned()].into(),
    };
    tokio::spawn(serve(server, stopped));
    (addr, stop)
}

/// A client trusting `ca`, presenting `identity`, speaking only `version` if given.
fn client(
    ca: &Ca,
    identity: Option<&Issued>,
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let versions = version.map_or(
        vec![&rustls::version::TLS13, &rustls::version::TLS12],
        |v| vec![v],
    );
    let builder = rustls::ClientConfig::builder_with_provider(authstat_tls::provider())
        .with_protocol_versions(&versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(
                rustls::pki_types::CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                rustls::pki_types::PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// What a GET over TLS gave.
#[derive(Debug)]
struct Got {
    status: u16,
    body: String,
    serial: String,
    alpn: Option<Vec<u8>>,
    version: Option<rustls::ProtocolVersion>,
}

async fn get(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<Got, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let (_, session) = tls.get_ref();
    let serial = authstat_tls::CertInfo::of(&session.peer_certificates().unwrap()[0])
        .unwrap()
        .serial;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text[9..12].parse().map_err(|_| text.clone())?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(Got {
        status,
        body,
        serial,
        alpn: session.alpn_protocol().map(<[u8]>::to_vec),
        version: session.protocol_version(),
    })
}

#[tokio::test]
async fn tls_1_2_and_1_3_with_http_1_1_over_alpn_and_each_key_kind() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    for key in [Key::Ecdsa, Key::Ed25519, Key::Rsa] {
        let issued = ca.issue(&Leaf {
            key,
            ..Leaf::server()
        });
        issued.write(dir.path(), "server");
        let tls = ApiTls::load(&config(dir.path(), false, false)).unwrap();
        let (addr, _stop) = start(tls).await;
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            if key == Key::Ed25519 && version.version == rustls::ProtocolVersion::TLSv1_2 {
                continue; // rustls offers Ed25519 in TLS 1.3 only
            }
            let got = get(addr, client(&ca, None, Some(version)), "/stat")
                .await
                .unwrap();
            assert_eq!(got.status, 200, "{key:?} {version:?}: {got:?}");
            assert_eq!(got.version, Some(version.version));
            assert_eq!(got.alpn.as_deref(), Some(&b"http/1.1"[..]));
            assert_eq!(got.serial, issued.serial);
            assert_eq!(got.body, "None", "no client certificate");
        }
    }
}

#[tokio::test]
async fn plain_http_on_the_https_port_gets_a_400_that_says_so_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    Ca::new("test CA")
        .issue(&Leaf::server())
        .write(dir.path(), "server");
    let tls = ApiTls::load(&config(dir.path(), false, false)).unwrap();
    let (addr, _stop) = start(tls.clone()).await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("serves HTTPS only"), "{answer}");
    assert_eq!(tls.stats.plain_http.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn new_handshakes_use_a_renewed_certificate_and_a_bad_pair_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let first = ca.issue(&Leaf::server());
    first.write(dir.path(), "server");
    let tls = ApiTls::load(&config(dir.path(), false, false)).unwrap();
    let (addr, _stop) = start(tls.clone()).await;
    let serial = async || {
        get(addr, client(&ca, None, None), "/stat")
            .await
            .unwrap()
            .serial
    };
    assert_eq!(serial().await, first.serial);

    // Only the certificate renewed (its key not yet written): refused, the old pair served.
    let second = ca.issue(&Leaf::server());
    std::fs::write(dir.path().join("server.pem"), &second.cert_pem).unwrap();
    // (The server's own reload task may be the one that reads the change.)
    tls.reload_now();
    assert_eq!(serial().await, first.serial);
    let problem = tls.problem().unwrap();
    assert!(
        problem.contains("is not the key of the certificate"),
        "{problem}"
    );
    assert_eq!(tls.stats.refused.load(Ordering::Relaxed), 1);

    second.write(dir.path(), "server");
    tls.reload_now();
    assert_eq!(serial().await, second.serial);
    assert_eq!(tls.problem(), None);
    assert_eq!(tls.stats.applied.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_client_certificate_from_the_ca_is_required_and_its_subject_reaches_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    ca.issue(&Leaf::server()).write(dir.path(), "server");
    let clients = Ca::new("clients CA");
    clients.write(&dir.path().join("clients.pem"));
    let tls = ApiTls::load(&config(dir.path(), true, false)).unwrap();
    let (addr, _stop) = start(tls.clone()).await;

    let good = clients.issue(&Leaf::client("reporting"));
    let got = get(addr, client(&ca, Some(&good), None), "/stat")
        .await
        .unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, r#"Some("O=authstat tests,CN=reporting")"#);

    // No certificate, or one from another CA: no request is served, probes neither.
    let stranger = Ca::new("other CA").issue(&Leaf::client("reporting"));
    for identity in [None, Some(&stranger)] {
        for path in ["/stat", "/livez"] {
            let refused = get(addr, client(&ca, identity, None), path).await;
            assert!(refused.is_err(), "{path}: {refused:?}");
        }
    }
    assert!(tls.stats.failed.load(Ordering::Relaxed) >= 4);
}

#[tokio::test]
async fn probes_may_come_without_a_client_certificate_when_configured_so() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    ca.issue(&Leaf::server()).write(dir.path(), "server");
    let clients = Ca::new("clients CA");
    clients.write(&dir.path().join("clients.pem"));
    let tls = ApiTls::load(&config(dir.path(), true, true)).unwrap();
    let (addr, _stop) = start(tls).await;

    let probe = get(addr, client(&ca, None, None), "/livez").await.unwrap();
    assert_eq!((probe.status, probe.body.as_str()), (200, "None"));
    let stat = get(addr, client(&ca, None, None), "/stat").await.unwrap();
    assert_eq!(stat.status, 401);
    assert!(
        stat.body.contains("a client certificate is required"),
        "{stat:?}"
    );
    let good = clients.issue(&Leaf::client("reporting"));
    assert_eq!(
        get(addr, client(&ca, Some(&good), None), "/stat")
            .await
            .unwrap()
            .status,
        200
    );
    // An untrusted certificate is still refused at the handshake.
    let stranger = Ca::new("other CA").issue(&Leaf::client("reporting"));
    assert!(
        get(addr, client(&ca, Some(&stranger), None), "/livez")
            .await
            .is_err()
    );
}

#[test]
fn the_expiry_is_a_gauge() {
    let dir = tempfile::tempdir().unwrap();
    let soon = Leaf {
        days_left: 3,
        ..Leaf::server()
    };
    Ca::new("test CA").issue(&soon).write(dir.path(), "server");
    let tls = ApiTls::load(&config(dir.path(), false, false)).unwrap();
    let mut families = Vec::new();
    tls.collect(&mut families);
    let (_, samples) = families
        .iter()
        .find(|(f, _)| f.name == "authstat_tls_cert_expiry_seconds")
        .unwrap();
    let authstat_core::metrics::Value::Int(left) = samples[0].value else {
        panic!()
    };
    assert!((2 * 86_400..=3 * 86_400).contains(&left), "{left}");
}

#[test]
fn a_certificate_that_expires_in_use_shows_on_readyz() {
    let dir = tempfile::tempdir().unwrap();
    Ca::new("test CA")
        .issue(&Leaf::server())
        .write(dir.path(), "server");
    let tls = ApiTls::load(&config(dir.path(), false, false)).unwrap();
    assert_eq!(tls.problem(), None);
    let after = tls.server.leaf().not_after + Duration::from_secs(1);
    let problem = tls.problem_at(after).unwrap();
    assert!(
        problem.starts_with("tls: the API's certificate expired on"),
        "{problem}"
    );
    assert!(problem.contains("server.pem"), "{problem}");
}

#[tokio::test]
async fn a_client_that_offers_only_h2_is_refused_at_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    ca.issue(&Leaf::server()).write(dir.path(), "server");
    let tls = ApiTls::load(&config(dir.path(), false, false)).unwrap();
    let (addr, _stop) = start(tls.clone()).await;
    let mut h2_only = (*client(&ca, None, None)).clone();
    h2_only.alpn_protocols = vec![b"h2".to_vec()];
    let refused = get(addr, Arc::new(h2_only), "/stat").await.unwrap_err();
    assert!(refused.contains("NoApplicationProtocol"), "{refused}");
    // Without ALPN at all (curl --no-alpn), HTTP/1.1 is served.
    let mut plain = (*client(&ca, None, None)).clone();
    plain.alpn_protocols.clear();
    assert_eq!(
        get(addr, Arc::new(plain), "/stat").await.unwrap().status,
        200
    );
}

/// A client that starts a handshake and stalls (a slow-loris on TLS) is cut off after the
/// request timeout, and counted.
#[tokio::test]
async fn a_stalled_handshake_is_cut_off_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    Ca::new("test CA")
        .issue(&Leaf::server())
        .write(dir.path(), "server");
    let tls = ApiTls::load(&config(dir.path(), false, false)).unwrap();
    let (addr, _stop) = start_with_timeout(tls.clone(), Duration::from_millis(300)).await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The first bytes of a TLS record header, then nothing.
    tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the server kept a stalled handshake open");
    assert_eq!(tls.stats.timed_out.load(Ordering::Relaxed), 1);
}
