//! Throwaway certificates for TLS tests: a CA made in the test, and the server and client
//! certificates it signs (ECDSA P-256, Ed25519 or RSA keys; valid, expired, or about to expire).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// The kind of a certificate's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// ECDSA on P-256.
    Ecdsa,
    /// Ed25519.
    Ed25519,
    /// RSA 2048 (made by `openssl`: *ring* cannot make RSA keys).
    Rsa,
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The subject's common name.
    pub common_name: String,
    /// Host names and IP addresses (subjectAltName).
    pub names: Vec<String>,
    /// The key's kind.
    pub key: Key,
    /// A client certificate (clientAuth) rather than a server one (serverAuth).
    pub client: bool,
    /// Valid from this many days ago (negative: not valid yet) ...
    pub from_days_ago: i64,
    /// ... to this many days from now (negative: expired).
    pub days_left: i64,
}

impl Leaf {
    /// A server certificate for `localhost` and 127.0.0.1, valid for 30 days.
    pub fn server() -> Self {
        Leaf {
            common_name: "localhost".into(),
            names: vec!["localhost".into(), "127.0.0.1".into()],
            key: Key::Ecdsa,
            client: false,
            from_days_ago: 1,
            days_left: 30,
        }
    }

    /// A client certificate with the common name `name`, valid for 30 days.
    pub fn client(name: &str) -> Self {
        Leaf {
            common_name: name.into(),
            names: vec![name.into()],
            client: true,
            ..Leaf::server()
        }
    }
}

/// A certificate and its key, as PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (the leaf, then the CA's when the CA is an intermediate one).
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
    /// Its serial number, in hexadecimal as `authstat_tls::CertInfo` writes it.
    pub serial: String,
}

impl Issued {
    /// Writes `<name>.pem` and `<name>.key` into `dir`; their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert, &self.cert_pem).expect("write the certificate");
        std::fs::write(&key, &self.key_pem).expect("write the key");
        (cert, key)
    }
}

/// A certificate authority made for one test.
#[derive(Debug)]
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate.
    pub pem: String,
    intermediate: bool,
}

static SERIAL: AtomicU64 = AtomicU64::new(1);

fn key_pair(kind: Key) -> KeyPair {
    match kind {
        Key::Ecdsa => KeyPair::generate().expect("an ECDSA key"),
        Key::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("an Ed25519 key"),
        Key::Rsa => {
            let out = Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ])
                .output()
                .expect("openssl (scripts/install-deps installs it)");
            assert!(out.status.success(), "openssl genpkey failed");
            let pem = String::from_utf8(out.stdout).expect("PEM");
            KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).expect("an RSA key")
        }
    }
}

fn dates(params: &mut CertificateParams, from_days_ago: i64, days_left: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(from_days_ago);
    params.not_after = now + Duration::days(days_left);
}

fn serial(params: &mut CertificateParams) -> String {
    // Unique in the process, and across processes for the same test's runs.
    let n =
        SERIAL.fetch_add(1, Ordering::Relaxed) << 24 | u64::from(std::process::id() & 0xff_ffff);
    let serial = SerialNumber::from(n);
    let bytes = serial.to_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(0);
    let text = bytes[first..].iter().map(|b| format!("{b:02x}")).collect();
    params.serial_number = Some(serial);
    text
}

/// A CA's parameters: its common name, valid from yesterday for 60 days.
fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    dates(&mut params, 1, 60);
    serial(&mut params);
    params
}

impl Ca {
    /// A self-signed CA named `name`, valid from yesterday for 60 days.
    pub fn new(name: &str) -> Self {
        let params = ca_params(name);
        let key = key_pair(Key::Ecdsa);
        let cert = params.self_signed(&key).expect("a self-signed CA");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
            intermediate: false,
        }
    }

    /// A CA made elsewhere (scripts/services.sh), to issue more: its certificate and key files
    /// (PEM; the key PKCS#8) and its subject's common name (the issuer of what it signs).
    pub fn load(cert: &Path, key: &Path, common_name: &str) -> Self {
        let pem = std::fs::read_to_string(cert).expect("the CA's certificate");
        let key = KeyPair::from_pem(&std::fs::read_to_string(key).expect("the CA's key"))
            .expect("the CA's key");
        Ca {
            issuer: Issuer::new(ca_params(common_name), key),
            pem,
            intermediate: false,
        }
    }

    /// A CA that this one signs (its `Issued::cert_pem` of leaves holds the leaf and itself).
    pub fn intermediate(&self, name: &str) -> Ca {
        let params = ca_params(name);
        let key = key_pair(Key::Ecdsa);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("an intermediate CA");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
            intermediate: true,
        }
    }

    /// Writes the CA's certificate to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, &self.pem).expect("write the CA");
    }

    /// Issues a certificate (followed, in `cert_pem`, by this CA's when this CA is an
    /// intermediate one: a full chain as a server presents it).
    pub fn issue(&self, leaf: &Leaf) -> Issued {
        let mut params = CertificateParams::new(leaf.names.clone()).expect("names");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, &leaf.common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "authstat tests");
        params.extended_key_usages = vec![if leaf.client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        dates(&mut params, leaf.from_days_ago, leaf.days_left);
        let serial = serial(&mut params);
        let key = key_pair(leaf.key);
        let cert = params.signed_by(&key, &self.issuer).expect("a certificate");
        let mut cert_pem = cert.pem();
        if self.intermediate {
            cert_pem.push_str(&self.pem);
        }
        Issued {
            cert_pem,
            key_pem: key.serialize_pem(),
            serial,
        }
    }
}
