//! Access tokens that are JWTs, verified against the auth server's JWKS with `jsonwebtoken`
//! (its RustCrypto backend: one crypto backend, no second TLS provider).
//!
//! Public keys only: RS256/384/512, PS256/384/512, ES256, ES384 and EdDSA. HMAC algorithms
//! (HS*) are never accepted and keys of type `oct` are never loaded, so an attacker cannot make
//! a public key act as an HMAC secret; `alg: none` is not an algorithm `jsonwebtoken` knows. A
//! key verifies only its own family (an RSA key never verifies an EC algorithm), and only its
//! `alg` if it names one; a key whose `use` is not `sig` (or whose `key_ops` lack `verify`) is
//! ignored. A token with a `crit` header is refused: authstat understands no JWS extension,
//! and RFC 7515 (4.1.11) requires refusing what is not understood.

use std::time::{Duration, Instant};

use authstat_config::JwtConfig;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::denied::Denied;

/// A usable key: its id, the one algorithm it is restricted to (if any), the key.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    alg: Option<String>,
    key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// The key of `jwk`, if it is a public signature-verification key.
    fn from_jwk(jwk: &Jwk) -> Option<Self> {
        let common = &jwk.common;
        if common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            return None;
        }
        if common
            .key_operations
            .as_ref()
            .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
        {
            return None;
        }
        // Never a symmetric key: it would turn into an HMAC secret.
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return None;
        }
        Some(Self {
            kid: common.key_id.clone(),
            alg: common.key_algorithm.map(|a| a.to_string()),
            key: DecodingKey::from_jwk(jwk).ok()?,
        })
    }
}

#[derive(Debug, Deserialize)]
struct JwkSet {
    /// Each key on its own: one the library cannot read does not hide the others.
    keys: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    scope: Option<String>,
    scp: Option<Vec<String>>,
}

#[derive(Debug, Default)]
struct KeyCache {
    keys: Vec<Key>,
    fetched: Option<Instant>,
}

/// The JWT authenticator.
#[derive(Debug)]
pub struct JwtVerifier {
    config: JwtConfig,
    client: reqwest::Client,
    cache: tokio::sync::RwLock<KeyCache>,
    /// Serializes refreshes so that a burst of unknown `kid`s fetches once.
    refreshing: tokio::sync::Mutex<()>,
}

/// What a failed check means for the caller.
fn denied(kind: &ErrorKind) -> Denied {
    match kind {
        ErrorKind::InvalidSignature => Denied::BadSignature,
        ErrorKind::ExpiredSignature => Denied::Expired,
        ErrorKind::ImmatureSignature => Denied::NotYetValid,
        ErrorKind::InvalidIssuer => Denied::WrongIssuer,
        ErrorKind::InvalidAudience => Denied::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => Denied::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => Denied::WrongAudience,
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => Denied::BadAlgorithm,
        _ => Denied::Malformed,
    }
}

/// Whether `kind` says this key does not fit the token (another key may).
fn wrong_key(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
    )
}

impl JwtVerifier {
    /// A verifier; the JWKS is fetched at the first request.
    pub fn new(config: JwtConfig, client: reqwest::Client) -> Self {
        Self {
            config,
            client,
            cache: tokio::sync::RwLock::new(KeyCache::default()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    async fn fetch(&self) -> Result<Vec<Key>, String> {
        let response = self
            .client
            .get(&self.config.jwks_uri)
            .timeout(Duration::from_secs(self.config.timeout_secs))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("JWKS answered {}", response.status()));
        }
        let set: JwkSet = response.json().await.map_err(|e| e.to_string())?;
        Ok(set
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
            .filter_map(|k| Key::from_jwk(&k))
            .collect())
    }

    /// Fetches the JWKS again unless that happened less than `jwks_refresh_min_secs` ago.
    async fn refresh(&self) -> Result<(), Denied> {
        let _guard = self.refreshing.lock().await;
        let min = Duration::from_secs(self.config.jwks_refresh_min_secs);
        if self
            .cache
            .read()
            .await
            .fetched
            .is_some_and(|at| at.elapsed() < min)
        {
            return Ok(());
        }
        match self.fetch().await {
            Ok(keys) => {
                *self.cache.write().await = KeyCache {
                    keys,
                    fetched: Some(Instant::now()),
                };
                Ok(())
            }
            Err(e) => {
                tracing::warn!(jwks_uri = %self.config.jwks_uri, error = %e, "fetching the JWKS failed");
                let mut cache = self.cache.write().await;
                cache.fetched = Some(Instant::now());
                if cache.keys.is_empty() {
                    Err(Denied::Unavailable)
                } else {
                    Ok(())
                }
            }
        }
    }

    async fn find(&self, kid: Option<&str>) -> Vec<Key> {
        let cache = self.cache.read().await;
        cache
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .cloned()
            .collect()
    }

    /// The claim checks for tokens of `alg`.
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.config.leeway_secs;
        v.validate_nbf = true;
        v.set_issuer(&[&self.config.issuer]);
        let mut required = vec!["exp", "iss"];
        match &self.config.audience {
            Some(audience) => {
                v.set_audience(&[audience]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        v
    }

    /// Verifies `token`; its scopes when valid.
    pub async fn verify(&self, token: &str) -> Result<Vec<String>, Denied> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // An algorithm the library does not know (`none` among them).
            ErrorKind::Json(_) if token_names_an_algorithm(token) => Denied::BadAlgorithm,
            _ => Denied::Malformed,
        })?;
        let alg = format!("{:?}", header.alg);
        if !self.config.algorithms.contains(&alg) {
            return Err(Denied::BadAlgorithm);
        }
        if header.crit.is_some() {
            return Err(Denied::Malformed);
        }
        let mut keys = self.find(header.kid.as_deref()).await;
        if keys.is_empty() {
            // An unknown key id: the auth server may have rotated its keys.
            self.refresh().await?;
            keys = self.find(header.kid.as_deref()).await;
        }
        if keys.is_empty() {
            return Err(Denied::Unknown);
        }
        let validation = self.validation(header.alg);
        let mut claims = None;
        for key in keys
            .iter()
            .filter(|k| k.alg.as_deref().is_none_or(|a| a == alg))
        {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) if wrong_key(e.kind()) => {}
                Err(e) => return Err(denied(e.kind())),
            }
        }
        let claims = claims.ok_or(Denied::BadSignature)?;
        let mut scopes: Vec<String> = claims
            .scope
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        scopes.extend(claims.scp.unwrap_or_default());
        Ok(scopes)
    }
}

/// Whether the token's header is JSON with a string `alg` (so a header the library refused
/// names an algorithm it does not know, such as `none`).
fn token_names_an_algorithm(token: &str) -> bool {
    use base64::Engine as _;
    token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["alg"].is_string())
}
