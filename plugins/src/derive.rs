//! The derivation rules: events → per-month users and counters (documented in
//! `docs/metrics.md`).

use authstat_config::{DeriveConfig, FailedAuthRule};
use authstat_core::Error;
use authstat_core::counters::{CounterKey, Outcome};
use authstat_core::event::{AuditAction, Event};
use authstat_core::hash::HashAlgorithm;
use authstat_core::ingest::Deriver;
use authstat_core::stats::UpdateSink;

/// The configurable rules.
///
/// - Every audit record counts under `(action, success|failure)`.
/// - `USER_AUTHORIZATION` with `success: true` is a successful authentication; with
///   `success: false` a failed one only if it names a user (rule `with_username`, the default:
///   Janssen logs a username-less failure for every redirect to the login page) or always (rule
///   `all`).
/// - The `username` of a successful record whose action is one of `active_user_actions`
///   (default `USER_AUTHORIZATION`, `TOKEN_REQUEST`) is an active user of the record's month.
/// - Every token event counts under `(grant type, token type)`.
/// - Keycloak events (of the configured realms, if any): every one counts under
///   `(type, success|failure)`; `LOGIN` is a successful authentication, `LOGIN_ERROR` a failed one
///   under the same rule as `USER_AUTHORIZATION` (with a `userId`, or always); the `userId` of a
///   successful event is an active user (not of `CLIENT_LOGIN`: a service account); an event
///   that issued tokens counts one `access_token` under its grant type.
#[derive(Debug, Clone)]
pub struct RulesDeriver {
    failed_authentication: FailedAuthRule,
    active_user_actions: Vec<AuditAction>,
    keycloak_realms: Vec<String>,
    hash: HashAlgorithm,
}

impl RulesDeriver {
    /// Rules from the configuration, hashing user names with `hash`.
    pub fn new(config: &DeriveConfig, hash: HashAlgorithm) -> Self {
        Self {
            failed_authentication: config.failed_authentication,
            active_user_actions: config
                .active_user_actions
                .iter()
                .map(|a| AuditAction::parse(a))
                .collect(),
            keycloak_realms: config.keycloak_realms.clone(),
            hash,
        }
    }
}

impl Deriver for RulesDeriver {
    fn derive(&self, event: &Event<'_>, sink: &mut dyn UpdateSink) -> Result<(), Error> {
        let month = event.month()?;
        match event {
            Event::Audit(e) => {
                let outcome = Outcome::from(e.success);
                sink.add_count(
                    month,
                    &CounterKey::Audit {
                        action: e.action.clone(),
                        outcome,
                    },
                    1,
                );
                let username = e.username.as_deref().filter(|u| !u.is_empty());
                if e.action == AuditAction::UserAuthorization {
                    let counts = e.success
                        || username.is_some()
                        || self.failed_authentication == FailedAuthRule::All;
                    if counts {
                        sink.add_count(month, &CounterKey::Authentication(outcome), 1);
                    }
                }
                if let Some(user) = username.filter(|_| e.success)
                    && self.active_user_actions.contains(&e.action)
                {
                    sink.add_user(month, self.hash.hash(user));
                }
            }
            Event::Token(t) => {
                let key = CounterKey::Token {
                    grant_type: t.grant_type.to_string(),
                    token_type: t.token_type.to_string(),
                };
                sink.add_count(month, &key, 1);
            }
            Event::Keycloak(k) => {
                let wanted = self.keycloak_realms.is_empty()
                    || [&k.realm, &k.realm_id].into_iter().flatten().any(|realm| {
                        self.keycloak_realms
                            .iter()
                            .any(|w| w.as_str() == realm.as_ref())
                    });
                if !wanted {
                    return Ok(());
                }
                let outcome = Outcome::from(k.success);
                sink.add_count(
                    month,
                    &CounterKey::Audit {
                        action: AuditAction::parse(&k.kind),
                        outcome,
                    },
                    1,
                );
                let user = k.user_id.as_deref().filter(|u| !u.is_empty());
                if k.kind == "LOGIN" {
                    let counts = k.success
                        || user.is_some()
                        || self.failed_authentication == FailedAuthRule::All;
                    if counts {
                        sink.add_count(month, &CounterKey::Authentication(outcome), 1);
                    }
                }
                // A client's own login (client credentials) names its service-account user:
                // not a person.
                if let Some(user) = user.filter(|_| k.success && k.kind != "CLIENT_LOGIN") {
                    sink.add_user(month, self.hash.hash(user));
                }
                if let Some(grant) = k.grant_type.as_deref().filter(|_| k.success) {
                    sink.add_count(
                        month,
                        &CounterKey::Token {
                            grant_type: grant.to_owned(),
                            token_type: "access_token".to_owned(),
                        },
                        1,
                    );
                }
            }
        }
        Ok(())
    }
}
