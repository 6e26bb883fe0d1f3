//! Bearer-token checks for the stat endpoint.

use std::sync::Arc;

use authstat_config::AuthConfig;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::introspect::Introspector;
use super::jwt::JwtVerifier;

/// Why a request is refused (every case is a 401; the token itself is never logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer …` header (or an empty token).
    Missing,
    /// Not a bearer token.
    WrongScheme,
    /// No such token.
    Unknown,
    /// The token lacks the scope.
    Scope,
    /// Not a well-formed JWT (or it lacks `exp`).
    Malformed,
    /// The JWT's algorithm is not allowed (`none`, HMAC, or not configured).
    BadAlgorithm,
    /// The JWT's signature does not verify with the key it names.
    BadSignature,
    /// Past `exp` (with leeway).
    Expired,
    /// Before `nbf` (with leeway).
    NotYetValid,
    /// Another issuer.
    WrongIssuer,
    /// Not for this audience.
    WrongAudience,
    /// Introspection says the token is not active.
    Inactive,
    /// The auth server (JWKS or introspection) cannot be reached: 503, not 401.
    Unavailable,
}

impl Denied {
    /// The `error_description`.
    pub fn description(self, scope: &str) -> String {
        match self {
            Denied::Missing => "missing bearer token".into(),
            Denied::WrongScheme => "the Authorization header is not a Bearer token".into(),
            Denied::Unknown => "invalid token".into(),
            Denied::Scope => format!("the token does not have the scope {scope}"),
            Denied::Malformed => "the token is not a well-formed JWT".into(),
            Denied::BadAlgorithm => "the token's algorithm is not accepted".into(),
            Denied::BadSignature => "the token's signature is invalid".into(),
            Denied::Expired => "the token has expired".into(),
            Denied::NotYetValid => "the token is not valid yet".into(),
            Denied::WrongIssuer => "the token was issued by another issuer".into(),
            Denied::WrongAudience => "the token is not meant for this audience".into(),
            Denied::Inactive => "the token is not active".into(),
            Denied::Unavailable => "the authorization server cannot be reached".into(),
        }
    }
}

/// The configured authenticator.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// Tokens by SHA-256, with their scopes.
    Static(Vec<([u8; 32], Vec<String>)>),
    /// JWTs verified against a JWKS.
    Jwt(Arc<JwtVerifier>),
    /// RFC 7662 introspection.
    Introspection(Arc<Introspector>),
    /// Nobody.
    Deny,
}

impl Authenticator {
    /// From the configuration.
    pub fn new(config: &AuthConfig) -> Self {
        match config {
            AuthConfig::Deny => Authenticator::Deny,
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
            Authenticator::Deny => return Err(Denied::Unknown),
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
}
