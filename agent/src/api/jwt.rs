//! Access tokens that are JWTs, verified against the auth server's JWKS.
//!
//! Verification uses `ring` (already linked for TLS) and public keys only: RS256/384/512,
//! PS256/384/512, ES256 and ES384. HMAC algorithms (HS*) are not supported at all, so an
//! attacker cannot make a public key act as an HMAC secret, and `alg: none` is never in the
//! allow-list. The key must match the algorithm's family (an RSA key never verifies an EC
//! algorithm and vice versa), and a key that names its `alg` only verifies that one.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use authstat_config::JwtConfig;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;
use serde::Deserialize;

use super::auth::Denied;

#[derive(Debug, Deserialize)]
struct JwkSet {
    keys: Vec<RawJwk>,
}

#[derive(Debug, Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// A usable public key.
#[derive(Debug, Clone)]
enum Key {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed point `0x04 || x || y`, on `curve`.
    Ec {
        curve: &'static str,
        point: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    alg: Option<String>,
    key: Key,
}

fn b64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

impl Jwk {
    fn parse(raw: RawJwk) -> Option<Self> {
        let key = match raw.kty.as_str() {
            "RSA" => Key::Rsa {
                n: b64(raw.n.as_deref()?)?,
                e: b64(raw.e.as_deref()?)?,
            },
            "EC" => {
                let curve = match raw.crv.as_deref()? {
                    "P-256" => "P-256",
                    "P-384" => "P-384",
                    _ => return None,
                };
                let mut point = vec![4u8];
                point.extend(b64(raw.x.as_deref()?)?);
                point.extend(b64(raw.y.as_deref()?)?);
                Key::Ec { curve, point }
            }
            _ => return None,
        };
        Some(Self {
            kid: raw.kid,
            alg: raw.alg,
            key,
        })
    }

    /// Verifies `signature` over `message` with `alg`, if this key may be used for it.
    fn verify(&self, alg: &str, message: &[u8], sig: &[u8]) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg) {
            return false;
        }
        match (&self.key, alg) {
            (Key::Rsa { n, e }, _) => {
                let params: &signature::RsaParameters = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            (
                Key::Ec {
                    curve: "P-256",
                    point,
                },
                "ES256",
            ) => signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, sig)
                .is_ok(),
            (
                Key::Ec {
                    curve: "P-384",
                    point,
                },
                "ES384",
            ) => signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                .verify(message, sig)
                .is_ok(),
            _ => false,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn contains(&self, value: &str) -> bool {
        match self {
            OneOrMany::One(v) => v == value,
            OneOrMany::Many(vs) => vs.iter().any(|v| v == value),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    exp: Option<f64>,
    nbf: Option<f64>,
    iss: Option<String>,
    aud: Option<OneOrMany>,
    scope: Option<String>,
    scp: Option<Vec<String>>,
}

#[derive(Debug, Default)]
struct KeyCache {
    keys: Vec<Jwk>,
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

    async fn fetch(&self) -> Result<Vec<Jwk>, String> {
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
        Ok(set.keys.into_iter().filter_map(Jwk::parse).collect())
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

    async fn find(&self, kid: Option<&str>) -> Vec<Jwk> {
        let cache = self.cache.read().await;
        cache
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .cloned()
            .collect()
    }

    /// Verifies `token`; its scopes when valid.
    pub async fn verify(&self, token: &str) -> Result<Vec<String>, Denied> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Denied::Malformed);
        };
        let header: Header = b64(h)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Denied::Malformed)?;
        if !self.config.algorithms.contains(&header.alg) {
            return Err(Denied::BadAlgorithm);
        }
        let sig = b64(s).ok_or(Denied::Malformed)?;
        let message = &token.as_bytes()[..h.len() + 1 + p.len()];
        let mut keys = self.find(header.kid.as_deref()).await;
        if keys.is_empty() {
            // An unknown key id: the auth server may have rotated its keys.
            self.refresh().await?;
            keys = self.find(header.kid.as_deref()).await;
        }
        if keys.is_empty() {
            return Err(Denied::Unknown);
        }
        if !keys.iter().any(|k| k.verify(&header.alg, message, &sig)) {
            return Err(Denied::BadSignature);
        }
        let claims: Claims = b64(p)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Denied::Malformed)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let leeway = self.config.leeway_secs as f64;
        match claims.exp {
            None => return Err(Denied::Malformed),
            Some(exp) if now > exp + leeway => return Err(Denied::Expired),
            Some(_) => {}
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + leeway) {
            return Err(Denied::NotYetValid);
        }
        if claims.iss.as_deref() != Some(self.config.issuer.as_str()) {
            return Err(Denied::WrongIssuer);
        }
        if let Some(audience) = &self.config.audience
            && !claims
                .aud
                .as_ref()
                .is_some_and(|aud| aud.contains(audience))
        {
            return Err(Denied::WrongAudience);
        }
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
