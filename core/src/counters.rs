//! The counters kept per node and month, and their flat form for storage.
//!
//! In memory the counters are nested maps shaped like the API wants them
//! ([`TokenCounts`] is exactly Janssen's `token_count_per_granttype`). Backends store them as
//! flat rows `(kind, first, second) → value` through [`CounterKey`], so a new kind of counter
//! needs no schema change.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::event::AuditAction;

/// Whether an audited action succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `success: true`.
    Success,
    /// `success: false`.
    Failure,
}

impl Outcome {
    /// `success` or `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

impl From<bool> for Outcome {
    fn from(success: bool) -> Self {
        if success {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tokens issued, by grant type and then token type: Janssen's `token_count_per_granttype`.
///
/// Serializes as `{"client_credentials": {"access_token": 62}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenCounts(BTreeMap<String, BTreeMap<String, u64>>);

impl TokenCounts {
    /// Adds `n` tokens of `token_type` issued under `grant_type`.
    pub fn add(&mut self, grant_type: &str, token_type: &str, n: u64) {
        let by_type = match self.0.get_mut(grant_type) {
            Some(by_type) => by_type,
            None => self.0.entry(grant_type.to_owned()).or_default(),
        };
        match by_type.get_mut(token_type) {
            Some(count) => *count += n,
            None => {
                by_type.insert(token_type.to_owned(), n);
            }
        }
    }

    /// The count for one grant type and token type (0 when absent).
    pub fn get(&self, grant_type: &str, token_type: &str) -> u64 {
        self.0
            .get(grant_type)
            .and_then(|t| t.get(token_type))
            .copied()
            .unwrap_or(0)
    }

    /// `(grant type, token type, count)` in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, u64)> + '_ {
        self.0.iter().flat_map(|(grant, by_type)| {
            by_type
                .iter()
                .map(move |(token_type, &n)| (grant.as_str(), token_type.as_str(), n))
        })
    }

    /// The grant types present, sorted.
    pub fn grant_types(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.keys().map(String::as_str)
    }

    /// The nested map, grant type → token type → count.
    pub fn as_map(&self) -> &BTreeMap<String, BTreeMap<String, u64>> {
        &self.0
    }

    /// True when no token was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &TokenCounts) {
        for (grant, token_type, n) in other.iter() {
            self.add(grant, token_type, n);
        }
    }
}

/// A counter, flattened for storage as `(kind, first, second)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CounterKey {
    /// Tokens issued: kind `token`, then grant type and token type.
    Token {
        /// OAuth grant type.
        grant_type: String,
        /// Token type.
        token_type: String,
    },
    /// Audit records by action and outcome: kind `audit`, then action and `success`/`failure`.
    Audit {
        /// The audited action.
        action: AuditAction,
        /// Its outcome.
        outcome: Outcome,
    },
    /// User authentications, by the configured rule (see `docs/metrics.md`): kind `authn`, then
    /// `success`/`failure` and an empty second part.
    Authentication(Outcome),
}

impl CounterKey {
    /// The stored form `(kind, first, second)`.
    pub fn parts(&self) -> (&'static str, &str, &str) {
        match self {
            CounterKey::Token {
                grant_type,
                token_type,
            } => ("token", grant_type, token_type),
            CounterKey::Audit { action, outcome } => ("audit", action.as_str(), outcome.as_str()),
            CounterKey::Authentication(outcome) => ("authn", outcome.as_str(), ""),
        }
    }

    /// Reads the stored form back.
    pub fn from_parts(kind: &str, first: &str, second: &str) -> Result<Self, Error> {
        let bad = |reason| Error::InvalidCounterKey {
            kind: kind.to_owned(),
            first: first.to_owned(),
            second: second.to_owned(),
            reason,
        };
        match kind {
            "token" if !first.is_empty() && !second.is_empty() => Ok(CounterKey::Token {
                grant_type: first.to_owned(),
                token_type: second.to_owned(),
            }),
            "token" => Err(bad("grant type and token type must not be empty")),
            "audit" => match Outcome::parse(second) {
                Some(outcome) if !first.is_empty() => Ok(CounterKey::Audit {
                    action: AuditAction::parse(first),
                    outcome,
                }),
                _ => Err(bad("expected an action and success or failure")),
            },
            "authn" => match (Outcome::parse(first), second) {
                (Some(outcome), "") => Ok(CounterKey::Authentication(outcome)),
                _ => Err(bad("expected success or failure and an empty second part")),
            },
            _ => Err(bad("unknown kind")),
        }
    }
}

/// All counters of one node (or of all nodes, merged) for one month.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Tokens issued by grant type and token type.
    pub tokens: TokenCounts,
    /// Audit records by action and outcome (raw counts, every action).
    pub audit: BTreeMap<(AuditAction, Outcome), u64>,
    /// Authentications by outcome, as the configured derivation rule decides.
    pub authentications: BTreeMap<Outcome, u64>,
}

impl Counters {
    /// Adds `n` to one counter.
    pub fn add(&mut self, key: &CounterKey, n: u64) {
        match key {
            CounterKey::Token {
                grant_type,
                token_type,
            } => self.tokens.add(grant_type, token_type, n),
            CounterKey::Audit { action, outcome } => {
                match self.audit.get_mut(&(action.clone(), *outcome)) {
                    Some(count) => *count += n,
                    None => {
                        self.audit.insert((action.clone(), *outcome), n);
                    }
                }
            }
            CounterKey::Authentication(outcome) => {
                *self.authentications.entry(*outcome).or_default() += n
            }
        }
    }

    /// The value of one counter (0 when absent).
    pub fn get(&self, key: &CounterKey) -> u64 {
        match key {
            CounterKey::Token {
                grant_type,
                token_type,
            } => self.tokens.get(grant_type, token_type),
            CounterKey::Audit { action, outcome } => self
                .audit
                .get(&(action.clone(), *outcome))
                .copied()
                .unwrap_or(0),
            CounterKey::Authentication(outcome) => {
                self.authentications.get(outcome).copied().unwrap_or(0)
            }
        }
    }

    /// Every non-absent counter with its key, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (CounterKey, u64)> + '_ {
        let tokens = self.tokens.iter().map(|(g, t, n)| {
            (
                CounterKey::Token {
                    grant_type: g.to_owned(),
                    token_type: t.to_owned(),
                },
                n,
            )
        });
        let audit = self.audit.iter().map(|((action, outcome), &n)| {
            (
                CounterKey::Audit {
                    action: action.clone(),
                    outcome: *outcome,
                },
                n,
            )
        });
        let authn = self
            .authentications
            .iter()
            .map(|(&o, &n)| (CounterKey::Authentication(o), n));
        tokens.chain(audit).chain(authn)
    }

    /// Adds every counter of `other`.
    pub fn merge(&mut self, other: &Counters) {
        for (key, n) in other.iter() {
            self.add(&key, n);
        }
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.audit.is_empty() && self.authentications.is_empty()
    }

    /// Takes every counter of `other` away (a snapshot replaced by a newer one); a counter that
    /// reaches 0 is gone. Saturating: a counter never goes below 0.
    pub fn subtract(&mut self, other: &Counters) {
        for (key, n) in other.iter() {
            let left = self.get(&key).saturating_sub(n);
            self.remove(&key);
            if left > 0 {
                self.add(&key, left);
            }
        }
    }

    /// The same counters without those that are 0 (a stored 0 and an absent counter read
    /// alike).
    pub fn without_zeros(mut self) -> Self {
        let zeros: Vec<CounterKey> = self
            .iter()
            .filter(|(_, n)| *n == 0)
            .map(|(k, _)| k)
            .collect();
        for key in &zeros {
            self.remove(key);
        }
        self
    }

    fn remove(&mut self, key: &CounterKey) {
        match key {
            CounterKey::Token {
                grant_type,
                token_type,
            } => {
                if let Some(by_type) = self.tokens.0.get_mut(grant_type.as_str()) {
                    by_type.remove(token_type.as_str());
                    if by_type.is_empty() {
                        self.tokens.0.remove(grant_type.as_str());
                    }
                }
            }
            CounterKey::Audit { action, outcome } => {
                self.audit.remove(&(action.clone(), *outcome));
            }
            CounterKey::Authentication(outcome) => {
                self.authentications.remove(outcome);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtracting_takes_counters_away_and_drops_those_at_zero() {
        let key = |g: &str| CounterKey::Token {
            grant_type: g.into(),
            token_type: "access_token".into(),
        };
        let mut total = Counters::default();
        total.add(&key("a"), 5);
        total.add(&key("b"), 2);
        total.add(&CounterKey::Authentication(Outcome::Success), 3);
        let mut old = Counters::default();
        old.add(&key("a"), 2);
        old.add(&key("b"), 2);
        old.add(&CounterKey::Authentication(Outcome::Failure), 1);
        total.subtract(&old);
        assert_eq!(total.get(&key("a")), 3);
        assert!(!total.tokens.as_map().contains_key("b"), "{total:?}");
        assert_eq!(total.authentications.len(), 1, "nothing below 0");
        let mut zero = Counters::default();
        zero.add(&key("z"), 0);
        assert!(zero.without_zeros().is_empty());
    }

    #[test]
    fn token_counts_serialize_like_janssen() {
        let mut t = TokenCounts::default();
        t.add("client_credentials", "access_token", 60);
        t.add("client_credentials", "access_token", 2);
        t.add("authorization_code", "id_token", 1);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"authorization_code":{"id_token":1},"client_credentials":{"access_token":62}}"#
        );
        assert_eq!(t.get("client_credentials", "access_token"), 62);
        assert_eq!(t.get("password", "access_token"), 0);
    }

    #[test]
    fn counter_keys_round_trip_through_parts() {
        let keys = [
            CounterKey::Token {
                grant_type: "urn:openid:params:grant-type:ciba".into(),
                token_type: "access_token".into(),
            },
            CounterKey::Audit {
                action: AuditAction::UserAuthorization,
                outcome: Outcome::Failure,
            },
            CounterKey::Audit {
                action: AuditAction::Other("PAR_CREATE".into()),
                outcome: Outcome::Success,
            },
            CounterKey::Authentication(Outcome::Failure),
        ];
        for key in keys {
            let (kind, a, b) = key.parts();
            assert_eq!(CounterKey::from_parts(kind, a, b).unwrap(), key);
        }
        assert!(CounterKey::from_parts("audit", "X", "maybe").is_err());
        assert!(CounterKey::from_parts("token", "", "access_token").is_err());
        assert!(CounterKey::from_parts("authn", "success", "x").is_err());
        let err = CounterKey::from_parts("bogus", "a", "b")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus/a/b"), "{err}");
    }

    #[test]
    fn merge_sums_every_counter() {
        let mut a = Counters::default();
        a.add(&CounterKey::Authentication(Outcome::Success), 3);
        a.add(
            &CounterKey::Token {
                grant_type: "password".into(),
                token_type: "access_token".into(),
            },
            1,
        );
        let mut b = Counters::default();
        b.add(&CounterKey::Authentication(Outcome::Success), 4);
        b.add(
            &CounterKey::Audit {
                action: AuditAction::TokenRequest,
                outcome: Outcome::Success,
            },
            5,
        );
        a.merge(&b);
        assert_eq!(a.get(&CounterKey::Authentication(Outcome::Success)), 7);
        assert_eq!(
            a.get(&CounterKey::Audit {
                action: AuditAction::TokenRequest,
                outcome: Outcome::Success
            }),
            5
        );
        assert_eq!(a.iter().count(), 3);
        let mut rebuilt = Counters::default();
        for (k, n) in a.iter() {
            rebuilt.add(&k, n);
        }
        assert_eq!(rebuilt, a);
    }
}
