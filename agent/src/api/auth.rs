//! Bearer-token checks for the stat endpoint.

use authstat_config::AuthConfig;
use sha2::{Digest, Sha256};

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
}

impl Denied {
    /// The `error_description`.
    pub fn description(self, scope: &str) -> String {
        match self {
            Denied::Missing => "missing bearer token".into(),
            Denied::WrongScheme => "the Authorization header is not a Bearer token".into(),
            Denied::Unknown => "invalid token".into(),
            Denied::Scope => format!("the token does not have the scope {scope}"),
        }
    }
}

/// The configured authenticator.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// Tokens by SHA-256, with their scopes.
    Static(Vec<([u8; 32], Vec<String>)>),
    /// Nobody.
    Deny,
}

impl Authenticator {
    /// From the configuration.
    pub fn new(config: &AuthConfig) -> Self {
        match config {
            AuthConfig::Deny => Authenticator::Deny,
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
    pub fn check(&self, header: Option<&str>, scope: &str) -> Result<(), Denied> {
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
        match self {
            Authenticator::Deny => Err(Denied::Unknown),
            Authenticator::Static(tokens) => {
                let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                // Compare against every entry, in constant time per entry.
                let mut found: Option<&Vec<String>> = None;
                for (hash, scopes) in tokens {
                    let diff = hash
                        .iter()
                        .zip(&digest)
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
                    if diff == 0 {
                        found = Some(scopes);
                    }
                }
                let scopes = found.ok_or(Denied::Unknown)?;
                if scopes.iter().any(|s| s == scope) {
                    Ok(())
                } else {
                    Err(Denied::Scope)
                }
            }
        }
    }
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

    #[test]
    fn bearer_tokens_are_checked_with_exact_scopes() {
        let a = auth();
        assert_eq!(a.check(Some("Bearer good"), "jans_stat"), Ok(()));
        assert_eq!(
            a.check(Some("bEaReR good"), "jans_stat"),
            Ok(()),
            "scheme is case-insensitive"
        );
        assert_eq!(a.check(None, "jans_stat"), Err(Denied::Missing));
        assert_eq!(a.check(Some("  "), "jans_stat"), Err(Denied::Missing));
        assert_eq!(a.check(Some("Bearer "), "jans_stat"), Err(Denied::Missing));
        assert_eq!(
            a.check(Some("Basic Z29vZA=="), "jans_stat"),
            Err(Denied::WrongScheme)
        );
        assert_eq!(
            a.check(Some("Bearer nope"), "jans_stat"),
            Err(Denied::Unknown)
        );
        assert_eq!(
            a.check(Some("Bearer weak"), "jans_stat"),
            Err(Denied::Scope),
            "no substring match"
        );
        assert_eq!(
            Authenticator::Deny.check(Some("Bearer good"), "jans_stat"),
            Err(Denied::Unknown)
        );
    }
}
