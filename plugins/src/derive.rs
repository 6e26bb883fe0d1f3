//! The derivation rules: events → per-month users and counters (documented in
//! `docs/metrics.md`).

use authstat_config::{DeriveConfig, FailedAuthRule};
use authstat_core::Error;
use authstat_core::counters::{CounterKey, Outcome};
use authstat_core::dims::{DimKind, day_of_millis};
use authstat_core::event::{AuditAction, Event, Tenant, UserActivity};
use authstat_core::hash::HashAlgorithm;
use authstat_core::ingest::Deriver;
use authstat_core::stats::{DimFigures, UpdateSink};

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
/// - Per client and per realm (`per_client.enabled`, the default): an event's authentication,
///   active user and tokens count also under the client it names and under its realm.
/// - An active user is also active on the event's UTC day.
#[derive(Debug, Clone)]
pub struct RulesDeriver {
    failed_authentication: FailedAuthRule,
    active_user_actions: Vec<AuditAction>,
    keycloak_realms: Vec<String>,
    per_client: bool,
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
            per_client: config.per_client.enabled,
            hash,
        }
    }
}

impl RulesDeriver {
    /// Whether the event's tenant is one the configuration keeps (`keycloak_realms`; none
    /// configured: all; a server without tenants: all).
    fn wanted(&self, tenant: &Tenant<'_>) -> bool {
        match tenant {
            Tenant::None => true,
            Tenant::Named { name, id } => {
                self.keycloak_realms.is_empty()
                    || [name, id].into_iter().flatten().any(|realm| {
                        self.keycloak_realms
                            .iter()
                            .any(|w| w.as_str() == realm.as_ref())
                    })
            }
        }
    }
}

/// The client and the realm an event's figures are also counted under.
fn dims_of<'e>(
    e: &'e Event<'_>,
    client: Option<&'e str>,
) -> impl Iterator<Item = (DimKind, &'e str)> {
    let realm = match &e.tenant {
        Tenant::Named { name, id } => name.as_deref().or(id.as_deref()),
        Tenant::None => None,
    };
    [(DimKind::Client, client), (DimKind::Realm, realm)]
        .into_iter()
        .filter_map(|(kind, id)| Some((kind, id.filter(|id| !id.is_empty())?)))
}

impl Deriver for RulesDeriver {
    fn derive(&self, e: &Event<'_>, sink: &mut dyn UpdateSink) -> Result<(), Error> {
        let month = e.month()?;
        if !self.wanted(&e.tenant) {
            return Ok(());
        }
        let outcome = Outcome::from(e.success);
        if let Some(action) = &e.action {
            sink.add_count(
                month,
                &CounterKey::Audit {
                    action: action.clone(),
                    outcome,
                },
                1,
            );
        }
        let user = e.user.as_deref().filter(|u| !u.is_empty());
        let client = e.client.as_deref().filter(|c| !c.is_empty());
        // What the event counts, counted also under its client and realm (one call each).
        let mut counted: [Option<CounterKey>; 2] = [None, None];
        let mut active_user = None;
        if e.authentication
            && (e.success || user.is_some() || self.failed_authentication == FailedAuthRule::All)
        {
            let key = CounterKey::Authentication(outcome);
            sink.add_count(month, &key, 1);
            counted[0] = Some(key);
        }
        if let Some(user) = user.filter(|_| e.success) {
            let active = match e.user_activity {
                UserActivity::ByAction => e
                    .action
                    .as_ref()
                    .is_some_and(|a| self.active_user_actions.contains(a)),
                UserActivity::Always => true,
                UserActivity::Never => false,
            };
            if active {
                let hash = self.hash.hash(user);
                sink.add_user(month, hash);
                sink.add_day_user(month, day_of_millis(e.timestamp), hash);
                active_user = Some(hash);
            }
        }
        // An active client: named by a successful authorization (an authentication: Janssen's
        // USER_AUTHORIZATION, Keycloak's LOGIN) or token request, or by an event that issued
        // tokens, with or without a user.
        let authorizes = e.authentication
            || matches!(
                e.action,
                Some(AuditAction::UserAuthorization | AuditAction::TokenRequest)
            )
            || e.tokens.is_some();
        if let Some(client) = client
            && e.success
            && authorizes
        {
            sink.add_client(month, self.hash.hash(client));
        }
        if let Some(tokens) = &e.tokens {
            let key = CounterKey::Token {
                grant_type: tokens.grant_type.to_string(),
                token_type: tokens.token_type.to_string(),
            };
            sink.add_count(month, &key, 1);
            counted[1] = Some(key);
        }
        if self.per_client && (active_user.is_some() || counted.iter().any(Option::is_some)) {
            let figures = DimFigures {
                user: active_user,
                counts: &counted,
                day: day_of_millis(e.timestamp),
            };
            for (kind, id) in dims_of(e, client) {
                sink.add_dim(month, kind, id, &figures);
            }
        }
        Ok(())
    }
}
