//! The real binary serving HTTPS (docs/tls.md), with a CA made in the test: statistics over
//! TLS, plain HTTP refused, a renewed certificate in use within 30 s without a restart, a bad
//! pair kept out (on /readyz and in the metrics), client certificates as the only credential,
//! Secure cookies, and check-config reading every certificate it is given.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authstat_test_support::certs::{Ca, Issued, Leaf};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::support::*;

/// The example configuration with `api_keys` added under `api:`.
fn fixture(api_keys: &str) -> Fixture {
    let fixture = Fixture::new("");
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "api:\n  scope: jans_stat\n",
        &format!("api:\n  scope: jans_stat\n{api_keys}"),
    );
    std::fs::write(&path, text).unwrap();
    fixture
}

const TLS: &str = "  tls:\n    cert_file: server.pem\n    key_file: server.key\n";

pub(crate) fn client(ca: &Ca, identity: Option<&Issued>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(authstat_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some(id) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

/// One request over HTTPS: the response and the serial of the server's certificate.
pub(crate) fn https(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    target: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(Response, String)> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("localhost").unwrap();
    let session =
        rustls::ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(session, tcp);
    let response = exchange(&mut tls, "GET", target, headers, "")?;
    let serial = authstat_tls::CertInfo::of(&tls.conn.peer_certificates().unwrap()[0])
        .unwrap()
        .serial;
    Ok((response, serial))
}

fn metric(addr: SocketAddr, config: &Arc<rustls::ClientConfig>, name: &str) -> Option<f64> {
    let (metrics, _) = https(addr, config, "/metrics", &[]).ok()?;
    metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[test]
fn statistics_over_https_a_renewed_certificate_within_30_s_and_a_bad_pair_kept_out() {
    let fixture = fixture(TLS);
    let dir = fixture.dir.path();
    let ca = Ca::new("authstat test CA");
    let first = ca.issue(&Leaf::server());
    first.write(dir, "server");
    let agent = fixture.spawn();
    assert!(agent.logged(&["listening", "https"]), "the log says HTTPS");
    let trusting = client(&ca, None);
    let bearer = format!("Bearer {TOKEN}");
    let stat = "/jans-auth/restv1/internal/stat?month=202401";
    let (response, serial) =
        https(agent.addr, &trusting, stat, &[("authorization", &bearer)]).unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(serial, first.serial);

    // Plain HTTP on the port: a 400 that says why, never the statistics.
    let plain = get(agent.addr, stat, Some(TOKEN));
    assert_eq!(plain.status, 400, "{plain:?}");
    assert!(plain.body.contains("serves HTTPS only"), "{plain:?}");
    let expiry = metric(agent.addr, &trusting, "authstat_tls_cert_expiry_seconds").unwrap();
    assert!(
        (29.0 * 86_400.0..=30.0 * 86_400.0).contains(&expiry),
        "{expiry}"
    );
    assert_eq!(
        metric(
            agent.addr,
            &trusting,
            "authstat_tls_handshake_failures_total{reason=\"plain_http\"}"
        ),
        Some(1.0)
    );

    // Renewed as cert-manager does: both files replaced. New handshakes see it within 30 s.
    let second = ca.issue(&Leaf::server());
    second.write(dir, "server");
    let renewed = Instant::now();
    wait_until("the renewed certificate", || {
        https(agent.addr, &trusting, "/livez", &[]).is_ok_and(|(_, s)| s == second.serial)
    });
    assert!(renewed.elapsed() < Duration::from_secs(30));

    // Half a renewal (a certificate whose key is not there yet): the old pair stays, and says so.
    let third = ca.issue(&Leaf::server());
    std::fs::write(dir.join("server.pem"), &third.cert_pem).unwrap();
    wait_until("/readyz to name the refused files", || {
        https(agent.addr, &trusting, "/readyz", &[]).is_ok_and(|(r, _)| {
            r.status == 503
                && r.body
                    .contains("tls: the certificate files were not reloaded")
        })
    });
    assert_eq!(
        metric(agent.addr, &trusting, "authstat_tls_files_refused"),
        Some(1.0)
    );
    let (_, serial) = https(agent.addr, &trusting, "/livez", &[]).unwrap();
    assert_eq!(serial, second.serial, "the previous certificate is served");
    assert!(agent.logged(&["were not loaded", "is not the key of the certificate"]));
    third.write(dir, "server");
    wait_until("the completed renewal", || {
        https(agent.addr, &trusting, "/livez", &[]).is_ok_and(|(_, s)| s == third.serial)
    });
    assert_eq!(
        metric(agent.addr, &trusting, "authstat_tls_files_refused"),
        Some(0.0)
    );

    // The dashboard's session cookie is Secure over HTTPS.
    let config = client(&ca, None);
    let tcp = TcpStream::connect(agent.addr).unwrap();
    let session =
        rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(session, tcp);
    let login = exchange(
        &mut tls,
        "POST",
        "/dashboard/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("token={TOKEN}"),
    )
    .unwrap();
    assert_eq!(login.status, 303, "{login:?}");
    let cookie = login.header("set-cookie").unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

#[test]
fn a_client_certificate_can_be_the_only_credential_and_the_probes_may_go_without() {
    let allowed = "O=authstat tests,CN=reporting";
    let fixture = fixture(&format!(
        "{TLS}    client_ca_file: clients.pem\n    probes_without_client_cert: true\n"
    ));
    let dir = fixture.dir.path();
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("  auth:\n").unwrap();
    let end = text.find("\nlogging:").unwrap();
    let auth = format!("  auth:\n    type: client_cert\n    allowed_subjects: [\"{allowed}\"]\n");
    std::fs::write(&path, format!("{}{auth}{}", &text[..start], &text[end..])).unwrap();
    let ca = Ca::new("authstat test CA");
    ca.issue(&Leaf::server()).write(dir, "server");
    let clients = Ca::new("clients CA");
    clients.write(&dir.join("clients.pem"));
    let agent = fixture.spawn();

    let stat = "/jans-auth/restv1/internal/stat?month=202401";
    let reporting = clients.issue(&Leaf::client("reporting"));
    let (ok, _) = https(agent.addr, &client(&ca, Some(&reporting)), stat, &[]).unwrap();
    assert_eq!(ok.status, 200, "{ok:?}");
    let intruder = clients.issue(&Leaf::client("intruder"));
    let (refused, _) = https(agent.addr, &client(&ca, Some(&intruder)), stat, &[]).unwrap();
    assert_eq!(refused.status, 401);
    assert!(
        refused.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("allowed_subjects")
    );
    let (none, _) = https(agent.addr, &client(&ca, None), stat, &[]).unwrap();
    assert_eq!(none.status, 401, "{none:?}");
    let (probe, _) = https(agent.addr, &client(&ca, None), "/livez", &[]).unwrap();
    assert_eq!(probe.status, 200);
    // The dashboard needs no login for a listed certificate; another is sent to the login page.
    let (page, _) = https(
        agent.addr,
        &client(&ca, Some(&reporting)),
        "/dashboard",
        &[],
    )
    .unwrap();
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("Monthly active users"), "{}", page.body);
    let (login, _) = https(agent.addr, &client(&ca, Some(&intruder)), "/dashboard", &[]).unwrap();
    assert_eq!(login.status, 303, "{login:?}");
    assert_eq!(login.header("location"), Some("/dashboard/login"));
    // A certificate from a CA the agent does not trust ends at the handshake.
    let stranger = Ca::new("other CA").issue(&Leaf::client("reporting"));
    assert!(https(agent.addr, &client(&ca, Some(&stranger)), "/livez", &[]).is_err());
}

/// `check-config`'s output, which must be a success.
fn check_config_ok(fixture: &Fixture) -> String {
    let out = check_config(fixture);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn check_config(fixture: &Fixture) -> std::process::Output {
    authstat()
        .args(["check-config", "--skip-backend"])
        .arg(fixture.config_path())
        .output()
        .unwrap()
}

#[test]
fn check_config_reads_every_certificate_and_names_what_is_wrong() {
    let fixture = fixture(&format!("{TLS}    client_ca_file: clients.pem\n"));
    let dir = fixture.dir.path();
    let ca = Ca::new("authstat test CA");
    let issued = ca.issue(&Leaf::server());
    issued.write(dir, "server");
    ca.write(&dir.join("clients.pem"));
    let text = check_config_ok(&fixture);
    assert!(
        text.contains(&format!(
            "api.tls certificate: O=authstat tests,CN=localhost (serial {})",
            issued.serial
        )),
        "{text}"
    );
    assert!(
        text.contains("api.tls.client_ca_file:") && text.contains("(1 certificate(s))"),
        "{text}"
    );

    let expired = ca.issue(&Leaf {
        from_days_ago: 30,
        days_left: -2,
        ..Leaf::server()
    });
    for (name, write) in [
        (
            "expired",
            Box::new(|d: &Path| {
                expired.write(d, "server");
            }) as Box<dyn Fn(&Path)>,
        ),
        (
            "not the key",
            Box::new(|d: &Path| {
                std::fs::write(d.join("server.key"), ca.issue(&Leaf::server()).key_pem).unwrap();
            }),
        ),
        (
            "missing",
            Box::new(|d: &Path| std::fs::remove_file(d.join("clients.pem")).unwrap()),
        ),
    ] {
        issued.write(dir, "server");
        ca.write(&dir.join("clients.pem"));
        write(dir);
        let out = check_config(&fixture);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{name}: {err}");
        let says = match name {
            "expired" => "server.pem: the certificate of O=authstat tests,CN=localhost expired on",
            "not the key" => "server.key is not the key of the certificate in",
            _ => "api.tls.client_ca_file: cannot read",
        };
        assert!(err.contains(says), "{name}: {err}");
        // The agent itself refuses to start on it, with the same reason.
        let mut command = authstat();
        command.args(["run", "--config"]).arg(fixture.config_path());
        let run = command.output().unwrap();
        assert_eq!(
            run.status.code(),
            Some(78),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let says = says.replace("api.tls.client_ca_file: ", "");
        assert!(
            String::from_utf8_lossy(&run.stderr).contains(&says),
            "{name}"
        );
    }
}

#[test]
fn check_config_reads_the_backends_and_the_queues_certificates() {
    let fixture = Fixture::new("");
    let dir = fixture.dir.path();
    let ca = Ca::new("authstat test CA");
    ca.write(&dir.join("ca.pem"));
    let agent = ca.issue(&Leaf::client("agent"));
    let mut both = agent.cert_pem.clone();
    both.push_str(&agent.key_pem);
    std::fs::write(dir.join("agent-both.pem"), &both).unwrap();
    let path = fixture.config_path();
    let original = std::fs::read_to_string(&path).unwrap();
    let uri = format!(
        "mongodb://localhost:27017/?tls=true&tlsCAFile={}&tlsCertificateKeyFile={}",
        dir.join("ca.pem").display(),
        dir.join("agent-both.pem").display()
    );
    let mongo = original.replace(
        "backend:\n  type: sqlite\n  path: data/authstat.db\n",
        &format!("backend:\n  type: mongodb\n  uri: \"{uri}\"\n"),
    );
    std::fs::write(&path, &mongo).unwrap();
    let text = check_config_ok(&fixture);
    assert!(text.contains("backend mongodb tlsCAFile:"), "{text}");
    assert!(
        text.contains("backend mongodb tlsCertificateKeyFile: O=authstat tests,CN=agent"),
        "{text}"
    );

    // The same file with an expired certificate: named, with the reason.
    let expired = ca.issue(&Leaf {
        from_days_ago: 10,
        days_left: -1,
        ..Leaf::client("agent")
    });
    std::fs::write(
        dir.join("agent-both.pem"),
        format!("{}{}", expired.cert_pem, expired.key_pem),
    )
    .unwrap();
    let out = check_config(&fixture);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("backend mongodb tlsCertificateKeyFile:") && err.contains("expired on"),
        "{err}"
    );

    // A queue's client certificate that is not its key's: the source's option is named.
    agent.write(dir, "agent");
    std::fs::write(
        dir.join("agent.key"),
        ca.issue(&Leaf::client("other")).key_pem,
    )
    .unwrap();
    let queue = "sources:\n  - name: mq\n    type: activemq\n    format: janssen_audit\n    brokers: [\"stomp+ssl://127.0.0.1:1\"]\n    tls:\n      ca_file: ca.pem\n      cert_file: agent.pem\n      key_file: agent.key\n";
    std::fs::write(&path, original.replacen("sources:\n", queue, 1)).unwrap();
    let out = check_config(&fixture);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("sources[0].tls.cert_file")
            && err.contains("is not the key of the certificate"),
        "{err}"
    );
}

/// libpq does TLS with OpenSSL, which used to free its state at exit while the connection pool's
/// threads were still in a handshake: `authstat query` on a PostgreSQL server with TLS (libpq's
/// default `sslmode=prefer`; the test server has TLS on) died of SIGSEGV in about one run in
/// three. Fifteen runs in a row end cleanly now (before the fix: 0.7^15, well under 1 %).
#[cfg(feature = "postgres")]
#[test]
fn one_shot_commands_on_postgres_over_tls_exit_cleanly() {
    use std::os::unix::process::ExitStatusExt as _;
    let dir = tempfile::tempdir().unwrap();
    let url = authstat_test_support::db::postgres("authstat_exit");
    let config = dir.path().join("authstat.yaml");
    std::fs::write(
        &config,
        format!(
            "node_id: exit\nsources:\n  - {{name: audit, type: file, format: janssen_audit, paths: [x.log]}}\nbackend: {{type: postgres, url: \"{url}?sslmode=require\"}}\n"
        ),
    )
    .unwrap();
    for run in 0..15 {
        let out = authstat()
            .args(["query", "--month", "202402", "--format", "json", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), None, "run {run}: {:?}", out.status);
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
