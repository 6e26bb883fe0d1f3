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
use authstat_plugins::parse::{JanssenAuditParser, TokenEventsParser};

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
