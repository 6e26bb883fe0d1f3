//! Certificates and keys in PEM files, checked the way an operator needs them checked (readable,
//! the key belonging to the certificate, the chain signed link by link, in their dates), and the
//! rustls configurations made of them: the API's server side, reloaded when the files change,
//! and the client side of the agent's outward connections (a CA of its own, a client
//! certificate). One crypto provider everywhere: *ring*.

use std::sync::Arc;

mod files;
mod server;

pub use files::{
    CertInfo, Identity, MAX_FILE_BYTES, Usage, ca_line, check_ca_file, check_identity_files,
    hex_serial, identity, pair_line, read_file, roots,
};
pub use server::{Reload, ServerFiles, ServerTls};

/// The crypto provider of every TLS configuration authstat makes.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client side of an outward connection: the servers' certificates checked against
/// `roots`, and `identity` presented when the server asks for a client certificate.
pub fn client_config(
    roots: rustls::RootCertStore,
    identity: Option<Identity>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain, identity.key)
            .map_err(|e| format!("the client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
