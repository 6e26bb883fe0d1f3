//! `api.tls`: the API over HTTPS (docs/tls.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The API listener's TLS. With it, the port speaks HTTPS only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTlsConfig {
    /// The certificate chain, leaf first (PEM; RSA, ECDSA or Ed25519). Reloaded when it changes.
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Every request needs a client certificate signed by a CA of this file (PEM).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: `/livez`, `/readyz` and the health check are served without a
    /// client certificate (for a kubelet that cannot present one).
    #[serde(default)]
    pub probes_without_client_cert: bool,
}
