//! The SQL backends over TLS, against the test servers that scripts/test starts with the run's
//! throwaway CA (`AUTHSTAT_TEST_TLS_DIR`: their certificate names `localhost`, not 127.0.0.1):
//! a verified connection that presents a client certificate (the servers' `authstat_tls` user
//! may log in with nothing else), and refusals that name the backend and the reason — the
//! wrong host name, a CA the agent was not told to trust, no client certificate.

use std::path::{Path, PathBuf};

#[cfg(any(feature = "postgres", feature = "mysql"))]
use authstat_backends::options::SqlServerConfig;
use authstat_core::store::{StatStore, StoreError};
use authstat_test_support::certs::Ca;

use crate::support::{batch, month, own, required_env};

/// The run's TLS files, with the client key copied to a file of our own (libpq refuses a key
/// that is readable by others or owned by another user).
pub(crate) struct Files {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A CA made here, which signed nothing the servers present.
    pub stranger: PathBuf,
    _own: tempfile::TempDir,
}

pub(crate) fn files() -> Files {
    let dir = PathBuf::from(required_env("AUTHSTAT_TEST_TLS_DIR", "TLS"));
    let own = tempfile::tempdir().unwrap();
    let key = own.path().join("client.key");
    std::fs::copy(dir.join("client.key"), &key).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let stranger = own.path().join("stranger.pem");
    Ca::new("a CA nobody uses").write(&stranger);
    Files {
        ca: dir.join("ca.pem"),
        cert: dir.join("client.pem"),
        dir,
        key,
        stranger,
        _own: own,
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn port(url: &str) -> &str {
    url.rsplit_once(':').unwrap().1.split('/').next().unwrap()
}

async fn works(store: &dyn StatStore, node: &str) {
    own(store, node).await;
    let b = batch(node, 1, &["202403"], 0, 3, 0);
    store.flush(&b).await.unwrap();
    let read = store.read_months(&[month("202403")]).await.unwrap();
    assert_eq!(read[0].users, b.months[0].users);
}

fn refused(result: Result<std::sync::Arc<dyn StatStore>, StoreError>, backend: &str, why: &str) {
    let err = match result {
        Ok(_) => panic!("{backend}: connected, expected a refusal ({why})"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{backend} backend unavailable")),
        "{text}"
    );
    assert!(text.contains(why), "{why:?} not in: {text}");
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn config(url: String) -> SqlServerConfig {
    SqlServerConfig {
        url,
        pool_size: 1,
        connect_timeout_secs: 3,
    }
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_verify_full_with_a_client_certificate() {
    let f = files();
    let db = authstat_test_support::db::postgres("authstat_tls");
    let (_, name) = db.rsplit_once('/').unwrap();
    let port = port(&db);
    let url = |host: &str, ca: &Path, client: bool| {
        let mut url = format!(
            "postgres://authstat_tls@{host}:{port}/{name}?sslmode=verify-full&sslrootcert={}",
            ca.display()
        );
        if client {
            url.push_str(&format!(
                "&sslcert={}&sslkey={}",
                f.cert.display(),
                f.key.display()
            ));
        }
        url
    };
    let build =
        async |u: String| authstat_backends::build(&SqlServerConfig::postgres(&config(u))).await;
    works(
        build(url("localhost", &f.ca, true)).await.unwrap().as_ref(),
        "tls-node",
    )
    .await;
    refused(
        build(url("127.0.0.1", &f.ca, true)).await,
        "postgres",
        "does not match host name \"127.0.0.1\"",
    );
    refused(
        build(url("localhost", &f.stranger, true)).await,
        "postgres",
        "certificate verify failed",
    );
    refused(
        build(url("localhost", &f.ca, false)).await,
        "postgres",
        "requires a valid client certificate",
    );
    assert!(f.dir.join("server.pem").exists());
}

/// MySQL / MariaDB: every case in turn (the wrong-host case swaps the server's certificate).
#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_verify_identity_with_a_client_certificate() {
    let f = files();
    let admin = authstat_test_support::db::mysql("authstat_tls");
    let (_, name) = admin.rsplit_once('/').unwrap();
    let port = port(&admin);
    let url = |mode: &str, ca: &Path, client: bool| {
        let mut url = format!(
            "mysql://authstat_tls@127.0.0.1:{port}/{name}?ssl_mode={mode}&ssl_ca={}",
            ca.display()
        );
        if client {
            url.push_str(&format!(
                "&ssl_cert={}&ssl_key={}",
                f.cert.display(),
                f.key.display()
            ));
        }
        url
    };
    let build =
        async |u: String| authstat_backends::build(&SqlServerConfig::mysql(&config(u))).await;
    works(
        build(url("verify_identity", &f.ca, true))
            .await
            .unwrap()
            .as_ref(),
        "tls-node",
    )
    .await;
    refused(
        build(url("verify_identity", &f.stranger, true)).await,
        "mysql",
        "certificate",
    );
    refused(
        build(url("verify_ca", &f.stranger, true)).await,
        "mysql",
        "certificate",
    );
    refused(
        build(url("verify_identity", &f.ca, false)).await,
        "mysql",
        "Access denied",
    );
    refused(
        build(url("verify_ca", Path::new(""), true).replace("&ssl_ca=", "&x=")).await,
        "mysql",
        "needs ssl_ca",
    );

    // The server presents a certificate of the same CA for another name.
    let (pem, key) = (
        f.dir.join("mysql-server.pem"),
        f.dir.join("mysql-server.key"),
    );
    let original = (std::fs::read(&pem).unwrap(), std::fs::read(&key).unwrap());
    let ca = Ca::load(&f.ca, &f.dir.join("ca.key"), "authstat test services CA");
    let elsewhere = ca.issue(&authstat_test_support::certs::Leaf {
        common_name: "db.elsewhere.invalid".into(),
        names: vec!["db.elsewhere.invalid".into()],
        ..authstat_test_support::certs::Leaf::server()
    });
    let swap = |cert: &[u8], k: &[u8]| {
        // Rewritten in place: owner and mode stay the server's.
        std::fs::write(&pem, cert).unwrap();
        std::fs::write(&key, k).unwrap();
        authstat_test_support::db::mariadb(&admin, "FLUSH SSL");
    };
    swap(elsewhere.cert_pem.as_bytes(), elsewhere.key_pem.as_bytes());
    let wrong_host = build(url("verify_identity", &f.ca, true)).await;
    let chain_only = build(url("verify_ca", &f.ca, true)).await;
    swap(&original.0, &original.1);
    refused(wrong_host, "mysql", "not valid for name");
    // verify_ca checks the chain only, as MySQL defines it.
    works(chain_only.unwrap().as_ref(), "chain-only").await;
}

/// A TLS endpoint in front of the MongoDB-protocol test server (which speaks no TLS): the
/// run's certificate for `localhost`, a client certificate of the run's CA required; the
/// bytes inside go to the real server. What it tests is the driver's side: the CA it trusts,
/// the host name it checks, the certificate it presents.
#[cfg(feature = "mongodb")]
async fn tls_front(f: &Files, target: String) -> u16 {
    use std::sync::Arc;
    let read = |p: &Path| authstat_tls::read_file(p).unwrap();
    let (server_pem, server_key) = (f.dir.join("server.pem"), f.dir.join("server.key"));
    let now = std::time::SystemTime::now();
    let identity = authstat_tls::identity(
        (&server_pem, &read(&server_pem)),
        (&server_key, &read(&server_key)),
        authstat_tls::Usage::Server,
        now,
    )
    .unwrap();
    let roots = Arc::new(authstat_tls::roots(&f.ca, &read(&f.ca), now).unwrap());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots,
        authstat_tls::provider(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(authstat_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, target) = (acceptor.clone(), target.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
            });
        }
    });
    port
}

#[cfg(feature = "mongodb")]
#[tokio::test]
async fn mongodb_tls_with_a_ca_file_and_a_client_certificate() {
    use authstat_backends::options::MongoConfig;
    let f = files();
    let uri = required_env("AUTHSTAT_TEST_MONGODB_URI", "MongoDB");
    let port = tls_front(&f, crate::mongo_proxy::host_port(&uri)).await;
    // The driver reads the client's certificate and key from one file.
    let combined = f.key.with_file_name("client-combined.pem");
    let mut both = std::fs::read(&f.cert).unwrap();
    both.extend(std::fs::read(&f.key).unwrap());
    std::fs::write(&combined, both).unwrap();
    let database = authstat_test_support::env::unique_name("authstat_tls");
    let build = async |host: &str, ca: &Path, client: bool| {
        let mut uri = format!(
            "mongodb://{host}:{port}/?tls=true&tlsCAFile={}&serverSelectionTimeoutMS=2000",
            ca.display()
        );
        if client {
            uri.push_str(&format!("&tlsCertificateKeyFile={}", combined.display()));
        }
        let config = MongoConfig {
            uri,
            database: database.clone(),
            collection: "nodes".into(),
            connect_timeout_secs: 2,
        };
        authstat_backends::mongo::MongoStore::open(&config)
            .await
            .map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn StatStore>)
    };
    works(
        build("localhost", &f.ca, true).await.unwrap().as_ref(),
        "tls-node",
    )
    .await;
    refused(
        build("127.0.0.1", &f.ca, true).await,
        "mongodb",
        "invalid peer certificate",
    );
    refused(
        build("localhost", &f.stranger, true).await,
        "mongodb",
        "UnknownIssuer",
    );
    refused(
        build("localhost", &f.ca, false).await,
        "mongodb",
        "CertificateRequired",
    );
}
