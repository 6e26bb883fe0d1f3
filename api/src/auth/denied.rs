//! Why a request is refused.

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
    /// `client_cert` auth: no client certificate.
    NoClientCert,
    /// `client_cert` auth: the certificate's subject is not listed.
    SubjectNotAllowed,
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
            Denied::NoClientCert => "a client certificate is required".into(),
            Denied::SubjectNotAllowed => {
                "the client certificate's subject is not in api.auth.allowed_subjects".into()
            }
        }
    }
}
