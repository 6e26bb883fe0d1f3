//! The derivation rules over the sample logs.

use authstat_config::{DeriveConfig, FailedAuthRule};
use authstat_core::Month;
use authstat_core::counters::{CounterKey, Outcome};
use authstat_core::event::{AuditAction, Event};
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::HllParams;
use authstat_core::ingest::Deriver;
use authstat_core::stats::MonthlyAggregate;
use authstat_plugins::derive::RulesDeriver;
use authstat_plugins::parse::{JanssenAuditParser, KeycloakEventsParser, TokenEventsParser};

use crate::parse::{frame_all, sample_log};

fn aggregate(config: &DeriveConfig) -> MonthlyAggregate {
    let deriver = RulesDeriver::new(config, HashAlgorithm::Murmur3);
    let mut agg = MonthlyAggregate::new(HllParams::janssen());
    let tokens = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/logs/token-events.jsonl"
    ))
    .unwrap();
    let log = sample_log();
    let events: Vec<Event<'_>> = frame_all(&JanssenAuditParser, &log)
        .0
        .into_iter()
        .chain(frame_all(&TokenEventsParser, &tokens).0)
        .map(Result::unwrap)
        .collect();
    for e in &events {
        deriver.derive(e, &mut agg).unwrap();
    }
    agg
}

fn m(s: &str) -> Month {
    s.parse().unwrap()
}

#[test]
fn sample_logs_give_the_expected_statistics() {
    let agg = aggregate(&DeriveConfig::default());
    let jan = agg.get(m("202401")).unwrap();
    let feb = agg.get(m("202402")).unwrap();
    // January: one redirect to the login page (no user): a raw failure, not an authentication.
    assert_eq!(
        jan.counters.get(&CounterKey::Audit {
            action: AuditAction::UserAuthorization,
            outcome: Outcome::Failure
        }),
        1
    );
    assert_eq!(
        jan.counters
            .get(&CounterKey::Authentication(Outcome::Failure)),
        0
    );
    assert_eq!(jan.monthly_active_users(), 0);
    // February: admin and jose@example.com were active; jose failed once before succeeding.
    assert_eq!(feb.monthly_active_users(), 2);
    assert_eq!(
        feb.counters
            .get(&CounterKey::Authentication(Outcome::Success)),
        2
    );
    assert_eq!(
        feb.counters
            .get(&CounterKey::Authentication(Outcome::Failure)),
        1
    );
    assert_eq!(
        feb.counters.get(&CounterKey::Audit {
            action: AuditAction::TokenRequest,
            outcome: Outcome::Success
        }),
        2
    );
    assert_eq!(
        feb.counters
            .tokens
            .get("client_credentials", "access_token"),
        2
    );
    assert_eq!(feb.counters.tokens.get("authorization_code", "id_token"), 1);
    assert_eq!(feb.counters.tokens.get("refresh_token", "access_token"), 1);
}

#[test]
fn the_failed_authentication_rule_is_configurable() {
    let config = DeriveConfig {
        failed_authentication: FailedAuthRule::All,
        ..DeriveConfig::default()
    };
    let agg = aggregate(&config);
    assert_eq!(
        agg.get(m("202401"))
            .unwrap()
            .counters
            .get(&CounterKey::Authentication(Outcome::Failure)),
        1
    );
}

#[test]
fn active_user_actions_are_configurable() {
    let config = DeriveConfig {
        active_user_actions: vec!["TOKEN_REVOCATION".into()],
        ..DeriveConfig::default()
    };
    // Only admin revoked a token.
    assert_eq!(
        aggregate(&config)
            .get(m("202402"))
            .unwrap()
            .monthly_active_users(),
        1
    );
}

/// The Keycloak samples (plain, both generations, with stack traces, admin events and other
/// loggers' `type=` text; and JSON logging) through the parser and the rules.
fn keycloak(config: &DeriveConfig) -> (MonthlyAggregate, usize) {
    let deriver = RulesDeriver::new(config, HashAlgorithm::Murmur3);
    let mut agg = MonthlyAggregate::new(HllParams::janssen());
    let mut malformed = 0;
    for file in ["keycloak.log", "keycloak.json.log"] {
        let bytes = std::fs::read(format!(
            "{}/../examples/logs/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let (records, framed) = frame_all(&KeycloakEventsParser, &bytes);
        assert_eq!(framed, bytes.len(), "{file}: every line framed");
        for record in records {
            match record {
                Ok(event) => deriver.derive(&event, &mut agg).unwrap(),
                Err(_) => malformed += 1,
            }
        }
    }
    (agg, malformed)
}

fn count(stats: &authstat_core::MonthStats, key: CounterKey) -> u64 {
    stats.counters.get(&key)
}

fn kc(action: &str, success: bool) -> CounterKey {
    CounterKey::Audit {
        action: AuditAction::parse(action),
        outcome: Outcome::from(success),
    }
}

fn access(grant: &str) -> CounterKey {
    CounterKey::Token {
        grant_type: grant.into(),
        token_type: "access_token".into(),
    }
}

#[test]
fn keycloak_events_give_the_expected_statistics() {
    let (agg, malformed) = keycloak(&DeriveConfig::default());
    assert_eq!(malformed, 1, "the unterminated event line");
    let jan = agg.get(m("202401")).unwrap();
    assert_eq!(count(jan, kc("LOGIN", true)), 1);
    assert_eq!(jan.monthly_active_users(), 1);
    let feb = agg.get(m("202402")).unwrap();
    // LOGIN: bob, carol, dave (older form), erin (JSON); LOGIN_ERROR: nobody, bob, mallory.
    assert_eq!(count(feb, kc("LOGIN", true)), 4);
    assert_eq!(count(feb, kc("LOGIN", false)), 3);
    // Failures without a user do not count as authentications (with_username).
    assert_eq!(count(feb, CounterKey::Authentication(Outcome::Success)), 4);
    assert_eq!(count(feb, CounterKey::Authentication(Outcome::Failure)), 1);
    assert_eq!(count(feb, kc("CODE_TO_TOKEN", true)), 2);
    assert_eq!(count(feb, kc("CLIENT_LOGIN", true)), 1);
    assert_eq!(count(feb, kc("REFRESH_TOKEN", true)), 1);
    assert_eq!(count(feb, access("authorization_code")), 2);
    assert_eq!(count(feb, access("client_credentials")), 1);
    assert_eq!(
        count(feb, access("refresh_token")),
        1,
        "implied by the type"
    );
    assert_eq!(feb.counters.tokens.iter().count(), 3);
    // u-2, u-3, u-4, u-5; not the service account of CLIENT_LOGIN, not the admin event's user.
    assert_eq!(feb.monthly_active_users(), 4);
    let actions: Vec<String> = feb
        .counters
        .iter()
        .filter_map(|(k, _)| match k {
            CounterKey::Audit { action, .. } => Some(action.to_string()),
            _ => None,
        })
        .collect();
    assert!(
        !actions
            .iter()
            .any(|a| a.contains("operationType") || a == "CREATE"),
        "{actions:?}"
    );

    // `all`: every LOGIN_ERROR is a failed authentication.
    let all = DeriveConfig {
        failed_authentication: FailedAuthRule::All,
        ..DeriveConfig::default()
    };
    let (agg, _) = keycloak(&all);
    let feb = agg.get(m("202402")).unwrap();
    assert_eq!(count(feb, CounterKey::Authentication(Outcome::Failure)), 3);
}

#[test]
fn keycloak_realms_filter_by_name_or_id() {
    // By name: the older-form line names only the realm's id, so it is left out too.
    let by_name = DeriveConfig {
        keycloak_realms: vec!["acme".into()],
        ..DeriveConfig::default()
    };
    let (agg, _) = keycloak(&by_name);
    let feb = agg.get(m("202402")).unwrap();
    assert_eq!(count(feb, kc("LOGIN", true)), 2, "bob and erin");
    assert_eq!(feb.monthly_active_users(), 2);
    let by_both = DeriveConfig {
        keycloak_realms: vec!["acme".into(), "0b1c2d3e-acme".into()],
        ..DeriveConfig::default()
    };
    let (agg, _) = keycloak(&by_both);
    let feb = agg.get(m("202402")).unwrap();
    assert_eq!(
        count(feb, kc("LOGIN", true)),
        3,
        "bob, dave and erin; not carol"
    );
    assert_eq!(feb.monthly_active_users(), 3);
}

/// Active clients: the clients named by a successful USER_AUTHORIZATION or TOKEN_REQUEST, or by
/// an event that issued tokens, with or without a user; never by a failure or another action.
#[test]
fn active_clients_follow_the_rule() {
    use authstat_core::event::{Tenant, Tokens, UserActivity};
    let deriver = RulesDeriver::new(&DeriveConfig::default(), HashAlgorithm::Murmur3);
    let at = 1_706_745_600_000; // 2024-02-01
    let event = |action: Option<AuditAction>, success: bool, client: &'static str| Event {
        timestamp: at,
        action,
        success,
        authentication: false,
        user: None,
        user_activity: UserActivity::ByAction,
        client: Some(client.into()),
        tenant: Tenant::None,
        tokens: None,
        ip: None,
    };
    let mut agg = MonthlyAggregate::new(HllParams::janssen());
    let mut derive = |e: Event<'_>| deriver.derive(&e, &mut agg).unwrap();
    derive(event(Some(AuditAction::UserAuthorization), true, "web"));
    derive(event(Some(AuditAction::TokenRequest), true, "service")); // no user
    derive(event(Some(AuditAction::TokenRequest), true, "service")); // the same client
    derive(event(Some(AuditAction::UserAuthorization), false, "failed"));
    derive(event(Some(AuditAction::UserInfo), true, "userinfo"));
    let mut issued = event(None, true, "tokens");
    issued.tokens = Some(Tokens {
        grant_type: "client_credentials".into(),
        token_type: "access_token".into(),
    });
    derive(issued);
    let mut nameless = event(Some(AuditAction::TokenRequest), true, "");
    nameless.client = Some("".into());
    derive(nameless);
    let feb = agg.get(m("202402")).unwrap();
    assert_eq!(feb.monthly_active_clients(), 3, "web, service, tokens");
}

/// Each event's figures are counted once per client and per realm, with its UTC day; an empty
/// client id or realm name is no dimension (the table keeps the empty id for "the rest").
#[test]
fn figures_are_counted_under_the_client_and_the_realm_never_an_empty_one() {
    use authstat_core::dims::DimKind;
    use authstat_core::event::{Tenant, UserActivity};
    use authstat_core::stats::{DimFigures, UpdateSink};
    use std::borrow::Cow;

    #[derive(Default)]
    struct Recorder(Vec<(DimKind, String, bool, usize, i64)>);
    impl UpdateSink for Recorder {
        fn add_user(&mut self, _: Month, _: i64) {}
        fn add_count(&mut self, _: Month, _: &CounterKey, _: u64) {}
        fn add_client(&mut self, _: Month, _: i64) {}
        fn add_dim(&mut self, _: Month, kind: DimKind, id: &str, f: &DimFigures<'_>) {
            let counts = f.counts.iter().flatten().count();
            self.0
                .push((kind, id.to_owned(), f.user.is_some(), counts, f.day));
        }
    }
    let deriver = RulesDeriver::new(&DeriveConfig::default(), HashAlgorithm::Murmur3);
    let login = |client: &'static str, realm: &'static str| Event {
        timestamp: 1_709_251_199_999, // 2024-02-29 23:59:59.999
        action: Some(AuditAction::Other("LOGIN".into())),
        success: true,
        authentication: true,
        user: Some(Cow::Borrowed("bob")),
        user_activity: UserActivity::Always,
        client: Some(Cow::Borrowed(client)),
        tenant: Tenant::Named {
            name: Some(Cow::Borrowed(realm)),
            id: None,
        },
        tokens: None,
        ip: None,
    };
    let mut sink = Recorder::default();
    deriver.derive(&login("web", "acme"), &mut sink).unwrap();
    deriver.derive(&login("", ""), &mut sink).unwrap();
    let feb29 = authstat_core::dims::day_of_millis(1_709_251_199_999);
    assert_eq!(
        sink.0,
        [
            (DimKind::Client, "web".into(), true, 1, feb29),
            (DimKind::Realm, "acme".into(), true, 1, feb29),
        ],
        "one call per dimension, none for empty ids"
    );
}
