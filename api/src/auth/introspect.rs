//! RFC 7662 token introspection against the auth server.
//!
//! Results are cached by the token's SHA-256 (never the token itself) for at most the token's
//! remaining lifetime and `cache_max_secs`; an inactive answer is cached for a few seconds. An
//! introspection endpoint that cannot be reached gives 503 (the token may well be fine),
//! never 500.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use authstat_config::IntrospectionConfig;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::denied::Denied;

/// How long an inactive answer is reused.
const INACTIVE_CACHE: Duration = Duration::from_secs(5);
const CACHE_ENTRIES: usize = 10_000;

#[derive(Debug, Deserialize)]
struct Answer {
    active: bool,
    scope: Option<String>,
    exp: Option<f64>,
}

type Cached = (Result<Vec<String>, Denied>, Instant);

/// The introspection authenticator.
#[derive(Debug)]
pub struct Introspector {
    config: IntrospectionConfig,
    client: reqwest::Client,
    cache: std::sync::Mutex<HashMap<[u8; 32], Cached>>,
}

impl Introspector {
    /// An introspector.
    pub fn new(config: IntrospectionConfig, client: reqwest::Client) -> Self {
        Self {
            config,
            client,
            cache: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The token's scopes if the auth server says it is active.
    pub async fn check(&self, token: &str) -> Result<Vec<String>, Denied> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((answer, until)) = self.cache.lock().expect("lock").get(&key)
            && Instant::now() < *until
        {
            return answer.clone();
        }
        let response = self
            .client
            .post(&self.config.endpoint)
            .basic_auth(&self.config.client_id, Some(&self.config.client_secret))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .timeout(Duration::from_secs(self.config.timeout_secs))
            .send()
            .await;
        let response = match response {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                tracing::warn!(endpoint = %self.config.endpoint, status = %r.status(), "introspection failed");
                return Err(Denied::Unavailable);
            }
            Err(e) => {
                tracing::warn!(endpoint = %self.config.endpoint, error = %e, "introspection endpoint unreachable");
                return Err(Denied::Unavailable);
            }
        };
        let answer: Answer = response.json().await.map_err(|e| {
            tracing::warn!(endpoint = %self.config.endpoint, error = %e, "introspection answer unreadable");
            Denied::Unavailable
        })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let (result, ttl) = if !answer.active {
            (Err(Denied::Inactive), INACTIVE_CACHE)
        } else if answer.exp.is_some_and(|exp| exp <= now) {
            (Err(Denied::Expired), INACTIVE_CACHE)
        } else {
            let scopes = answer
                .scope
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let remaining = answer.exp.map_or(f64::MAX, |exp| exp - now);
            let ttl =
                Duration::from_secs_f64(remaining.min(self.config.cache_max_secs as f64).max(0.0));
            (Ok(scopes), ttl)
        };
        let mut cache = self.cache.lock().expect("lock");
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, (_, until)| Instant::now() < *until);
        }
        cache.insert(key, (result.clone(), Instant::now() + ttl));
        result
    }
}
