//! Bearer-token checks for the stat endpoint.

use std::sync::Arc;

use authstat_config::AuthConfig;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

mod denied;
mod introspect;
mod jwt;

pub use denied::Denied;
use introspect::Introspector;
use jwt::JwtVerifier;

/// The configured authenticator.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// Tokens by SHA-256, with their scopes.
    Static(Vec<([u8; 32], Vec<String>)>),
    /// JWTs verified against a JWKS.
    Jwt(Arc<JwtVerifier>),
    /// RFC 7662 introspection.
    Introspection(Arc<Introspector>),
    /// Client certificates with these subjects (verified by the TLS handshake).
    ClientCert(Vec<String>),
    /// Nobody.
    Deny,
}

impl Authenticator {
    /// From the configuration.
    pub fn new(config: &AuthConfig) -> Self {
        match config {
            AuthConfig::Deny => Authenticator::Deny,
            AuthConfig::ClientCert { allowed_subjects } => {
                Authenticator::ClientCert(allowed_subjects.clone())
            }
            AuthConfig::Jwt(c) => {
                Authenticator::Jwt(Arc::new(JwtVerifier::new(c.clone(), http_client())))
            }
            AuthConfig::Introspection(c) => {
                Authenticator::Introspection(Arc::new(Introspector::new(c.clone(), http_client())))
            }
            AuthConfig::Static { tokens } => Authenticator::Static(
                tokens
                    .iter()
                    .map(|t| {
                        let mut hash = [0u8; 32];
                        for (i, byte) in hash.iter_mut().enumerate() {
                            *byte = u8::from_str_radix(&t.sha256[2 * i..2 * i + 2], 16)
                                .expect("validated by the configuration");
                        }
                        (hash, t.scopes.clone())
                    })
                    .collect(),
            ),
        }
    }

    /// Checks a request: its client certificate under `client_cert` auth, its `Authorization`
    /// header otherwise.
    pub async fn check_request(
        &self,
        header: Option<&str>,
        peer: Option<&crate::tls::TlsPeer>,
        scope: &str,
    ) -> Result<(), Denied> {
        match self {
            Authenticator::ClientCert(allowed) => {
                let subject = peer
                    .and_then(|p| p.subject.as_deref())
                    .ok_or(Denied::NoClientCert)?;
                if allowed.iter().any(|a| a == subject) {
                    Ok(())
                } else {
                    Err(Denied::SubjectNotAllowed)
                }
            }
            _ => self.check(header, scope).await,
        }
    }

    /// Checks the `Authorization` header value for `scope` (exact membership, not Janssen's
    /// substring test).
    pub async fn check(&self, header: Option<&str>, scope: &str) -> Result<(), Denied> {
        let header = header
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(Denied::Missing)?;
        let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Denied::WrongScheme);
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(Denied::Missing);
        }
        let scopes = match self {
            Authenticator::Deny | Authenticator::ClientCert(_) => return Err(Denied::Unknown),
            Authenticator::Jwt(verifier) => verifier.verify(token).await?,
            Authenticator::Introspection(introspector) => introspector.check(token).await?,
            Authenticator::Static(tokens) => {
                let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                // Every entry is compared, each in constant time (subtle).
                let mut found: Option<&Vec<String>> = None;
                for (hash, scopes) in tokens {
                    if bool::from(hash.ct_eq(&digest)) {
                        found = Some(scopes);
                    }
                }
                found.ok_or(Denied::Unknown)?.clone()
            }
        };
        // Exact membership: Janssen's substring test would accept `my_jans_stat_x`.
        if scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(Denied::Scope)
        }
    }
}

/// The HTTP client for JWKS and introspection requests (rustls with the process's ring
/// provider; the platform's trust store).
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("authstat/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("an HTTP client with rustls and the ring provider")
}

#[cfg(test)]
mod tests {
    use authstat_config::StaticToken;

    use super::*;

    fn auth() -> Authenticator {
        let sha = |t: &str| {
            Sha256::digest(t.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        Authenticator::new(&AuthConfig::Static {
            tokens: vec![
                StaticToken {
                    sha256: sha("good"),
                    scopes: vec!["openid".into(), "jans_stat".into()],
                    name: None,
                },
                StaticToken {
                    sha256: sha("weak"),
                    scopes: vec!["my_jans_stat_x".into()],
                    name: None,
                },
            ],
        })
    }

    #[tokio::test]
    async fn bearer_tokens_are_checked_with_exact_scopes() {
        let a = auth();
        let check = |h: Option<&'static str>| {
            let a = a.clone();
            async move { a.check(h, "jans_stat").await }
        };
        assert_eq!(check(Some("Bearer good")).await, Ok(()));
        assert_eq!(
            check(Some("bEaReR good")).await,
            Ok(()),
            "scheme is case-insensitive"
        );
        assert_eq!(check(None).await, Err(Denied::Missing));
        assert_eq!(check(Some("  ")).await, Err(Denied::Missing));
        assert_eq!(check(Some("Bearer ")).await, Err(Denied::Missing));
        assert_eq!(
            check(Some("Basic Z29vZA==")).await,
            Err(Denied::WrongScheme)
        );
        assert_eq!(check(Some("Bearer nope")).await, Err(Denied::Unknown));
        assert_eq!(
            check(Some("Bearer weak")).await,
            Err(Denied::Scope),
            "no substring match"
        );
        assert_eq!(
            Authenticator::Deny
                .check(Some("Bearer good"), "jans_stat")
                .await,
            Err(Denied::Unknown)
        );
    }

    #[tokio::test]
    async fn client_certificates_are_checked_by_subject_and_tokens_do_not_count() {
        let a = Authenticator::new(&AuthConfig::ClientCert {
            allowed_subjects: vec!["CN=reporting,O=Example".into()],
        });
        let peer = |s: Option<&str>| crate::tls::TlsPeer {
            subject: s.map(str::to_owned),
        };
        let check = |p: Option<crate::tls::TlsPeer>| {
            let a = a.clone();
            async move {
                a.check_request(Some("Bearer good"), p.as_ref(), "jans_stat")
                    .await
            }
        };
        assert_eq!(
            check(Some(peer(Some("CN=reporting,O=Example")))).await,
            Ok(())
        );
        assert_eq!(
            check(Some(peer(Some("CN=other,O=Example")))).await,
            Err(Denied::SubjectNotAllowed)
        );
        assert_eq!(check(Some(peer(None))).await, Err(Denied::NoClientCert));
        assert_eq!(check(None).await, Err(Denied::NoClientCert));
        // Bearer tokens still work under the other types, whatever the certificate.
        assert_eq!(
            auth()
                .check_request(Some("Bearer good"), Some(&peer(None)), "jans_stat")
                .await,
            Ok(())
        );
    }
}
