//! Reading and checking certificates and keys.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::sign::CertifiedKey;
use x509_cert::der::Decode as _;

/// What a certificate is for: its chain is checked for that use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A server's (the API).
    Server,
    /// A client's (presented to a backend, a collector, a broker).
    Client,
}

/// The facts of a certificate an operator asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject, as RFC 4514 writes it (`CN=agent,O=Example`; `openssl x509 -noout
    /// -subject -nameopt RFC2253` prints the same).
    pub subject: String,
    /// The serial number in hexadecimal.
    pub serial: String,
    /// When it becomes valid.
    pub not_before: SystemTime,
    /// When it expires.
    pub not_after: SystemTime,
    /// `not_after` as RFC 3339 text.
    pub not_after_text: String,
}

impl CertInfo {
    /// The facts of a DER certificate.
    pub fn of(der: &[u8]) -> Result<Self, String> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| format!("not an X.509 certificate ({e})"))?;
        let tbs = &cert.tbs_certificate;
        Ok(CertInfo {
            subject: tbs.subject.to_string(),
            serial: hex_serial(tbs.serial_number.as_bytes()),
            not_before: tbs.validity.not_before.to_system_time(),
            not_after: tbs.validity.not_after.to_system_time(),
            not_after_text: tbs.validity.not_after.to_date_time().to_string(),
        })
    }

    /// An error when the certificate is not valid at `now`.
    pub fn check_dates(&self, now: SystemTime) -> Result<(), String> {
        if now > self.not_after {
            return Err(format!(
                "the certificate of {} expired on {}",
                self.subject, self.not_after_text
            ));
        }
        if now < self.not_before {
            return Err(format!(
                "the certificate of {} is not valid yet",
                self.subject
            ));
        }
        Ok(())
    }
}

/// Whether a certificate is X.509 v3 (what rustls, and browsers, accept for a leaf).
fn is_v3(der: &[u8]) -> bool {
    x509_cert::Certificate::from_der(der)
        .is_ok_and(|c| c.tbs_certificate.version == x509_cert::certificate::Version::V3)
}

/// A serial number's bytes in hexadecimal, without leading zero bytes (as `openssl x509
/// -serial` writes it).
pub fn hex_serial(bytes: &[u8]) -> String {
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    bytes[first..].iter().map(|b| format!("{b:02x}")).collect()
}

/// A certificate chain and its private key, checked: the key is the certificate's, the chain
/// is signed link by link, the leaf is within its dates.
#[derive(Debug)]
pub struct Identity {
    /// The leaf first, then the certificates that signed it.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// The leaf's facts.
    pub leaf: CertInfo,
}

impl Identity {
    /// The chain and key in the form rustls signs with.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, String> {
        let signing = crate::provider()
            .key_provider
            .load_private_key(self.key.clone_key())
            .map_err(|e| format!("the key cannot sign ({e})"))?;
        Ok(Arc::new(CertifiedKey::new(self.chain.clone(), signing)))
    }
}

/// The most a certificate, key or CA file may hold (a system's whole CA bundle is ~200 KiB).
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The bytes of `path` (at most [`MAX_FILE_BYTES`]), or an error naming it.
pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{}: larger than {} MiB, not a certificate or key file",
            path.display(),
            MAX_FILE_BYTES >> 20
        ));
    }
    Ok(bytes)
}

fn chain_of(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: unreadable PEM ({e})", path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{}: no certificate in it (a PEM `BEGIN CERTIFICATE` block)",
            path.display()
        ));
    }
    Ok(chain)
}

/// Checks a chain and key read from `cert_path` and `key_path` (`cert` and `key` their
/// contents) for `usage` at `now`.
pub fn identity(
    (cert_path, cert): (&Path, &[u8]),
    (key_path, key): (&Path, &[u8]),
    usage: Usage,
    now: SystemTime,
) -> Result<Identity, String> {
    let chain = chain_of(cert, cert_path)?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
        format!(
            "{}: no private key in it (PKCS#8, PKCS#1 or SEC1 PEM): {e}",
            key_path.display()
        )
    })?;
    let leaf = CertInfo::of(&chain[0]).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    if !is_v3(&chain[0]) {
        return Err(format!(
            "{}: an X.509 v1 certificate, which TLS peers refuse: issue a v3 one (with \
             extensions, e.g. `openssl x509 -req … -extfile` with a subjectAltName)",
            cert_path.display()
        ));
    }
    let identity = Identity { chain, key, leaf };
    let certified = identity
        .certified_key()
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        certified.keys_match()
    {
        return Err(format!(
            "{} is not the key of the certificate in {} ({})",
            key_path.display(),
            cert_path.display(),
            identity.leaf.subject
        ));
    }
    identity
        .leaf
        .check_dates(now)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    check_chain(&identity.chain, usage, now)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    Ok(identity)
}

/// Each certificate of a chain of two or more is signed by the next and within its dates (the
/// last one is taken as the anchor: whether the peer trusts it is the peer's to say).
fn check_chain(chain: &[CertificateDer<'_>], usage: Usage, now: SystemTime) -> Result<(), String> {
    let [leaf, between @ .., last] = chain else {
        return Ok(());
    };
    for cert in between.iter().chain([last]) {
        CertInfo::of(cert)?.check_dates(now)?;
    }
    let anchor = webpki::anchor_from_trusted_cert(last)
        .map_err(|e| format!("the last certificate of the chain is unreadable ({e})"))?;
    let end = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("the first certificate is unreadable ({e})"))?;
    let time = UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let usage = match usage {
        Usage::Server => webpki::KeyUsage::server_auth(),
        Usage::Client => webpki::KeyUsage::client_auth(),
    };
    end.verify_for_usage(
        crate::provider().signature_verification_algorithms.all,
        &[anchor],
        between,
        time,
        usage,
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("the chain does not hold together: {e:?}"))
}

/// Trusted CA certificates from a PEM file's contents (each within its dates).
pub fn roots(path: &Path, pem: &[u8], now: SystemTime) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in chain_of(pem, path)? {
        CertInfo::of(&cert)
            .and_then(|info| info.check_dates(now))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a CA certificate ({e})", path.display()))?;
    }
    Ok(roots)
}

/// Reads and checks a certificate chain and its key (what `check-config` does for every pair
/// it is given); the leaf's facts.
pub fn check_identity_files(cert: &Path, key: &Path, usage: Usage) -> Result<CertInfo, String> {
    let (cert_pem, key_pem) = (read_file(cert)?, read_file(key)?);
    identity((cert, &cert_pem), (key, &key_pem), usage, SystemTime::now()).map(|i| i.leaf)
}

/// Reads and checks a file of CA certificates; how many it holds.
pub fn check_ca_file(path: &Path) -> Result<usize, String> {
    roots(path, &read_file(path)?, SystemTime::now()).map(|r| r.len())
}

/// `check-config`'s line of a certificate and its key — `what: subject (serial …), expires …
/// (N days)` — or `what: ` and the problem.
pub fn pair_line(what: &str, cert: &Path, key: &Path, usage: Usage) -> Result<String, String> {
    let info = check_identity_files(cert, key, usage).map_err(|e| format!("{what}: {e}"))?;
    let days = info
        .not_after
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs()
        / 86_400;
    let warning = if days < 14 { " — renew it soon" } else { "" };
    Ok(format!(
        "{what}: {} (serial {}), expires {} ({days} days){warning}",
        info.subject, info.serial, info.not_after_text
    ))
}

/// `check-config`'s line of a CA file — `what: path (N certificate(s))` — or `what: ` and the
/// problem.
pub fn ca_line(what: &str, path: &Path) -> Result<String, String> {
    check_ca_file(path)
        .map(|n| format!("{what}: {} ({n} certificate(s))", path.display()))
        .map_err(|e| format!("{what}: {e}"))
}
