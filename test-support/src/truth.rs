//! Ground truth for end-to-end tests: a generator of Janssen audit records that counts what it
//! writes itself, by the documented derivation rules (docs/metrics.md), without any of the
//! agent's parsing or derivation code.

use std::collections::{BTreeMap, BTreeSet};

use authstat_core::counters::{CounterKey, Counters, Outcome};
use authstat_core::event::AuditAction;
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::{Month, MonthStats};

use crate::janssen::AuditRecord;
use crate::rng::Rng;

const ACTIONS: [&str; 4] = [
    "USER_AUTHORIZATION",
    "TOKEN_REQUEST",
    "USER_INFO",
    "SESSION_AUTHENTICATED",
];

/// One client's figures of a month, counted by the rules.
#[derive(Default, Clone, Debug)]
pub struct ClientTruth {
    /// Its distinct active users.
    pub users: BTreeSet<String>,
    /// Its successful authentications.
    pub success: u64,
    /// Its failed authentications.
    pub failure: u64,
}

/// What was written, per month: every counter, the distinct active users and clients, and
/// each client's figures.
#[derive(Default)]
pub struct Truth {
    months: BTreeMap<Month, (Counters, BTreeSet<String>, BTreeSet<String>)>,
    per_client: BTreeMap<Month, BTreeMap<String, ClientTruth>>,
    pub records: u64,
    /// How many clients the records name (0: 8), the first ones far more often than the last.
    pub clients: u64,
}

impl Truth {
    /// A random record in `month`, counted here; its text (Janssen's pretty-printed form).
    pub fn record(&mut self, month: Month, rng: &mut Rng) -> String {
        let client = match self.clients {
            0 => format!("2000.{:08x}-69d3-458c-9309-4268085fe71c", rng.below(8)),
            n => {
                // Skewed: a cube of a uniform draw puts most records on the first clients.
                let x = rng.below(1 << 20) as f64 / (1u64 << 20) as f64;
                format!("app-{:05}", (x * x * x * n as f64) as u64)
            }
        };
        self.record_of(month, rng, &client)
    }

    /// A random record in `month` naming `client`, counted here; its text.
    pub fn record_of(&mut self, month: Month, rng: &mut Rng, client: &str) -> String {
        let client = client.to_owned();
        let i = self.records;
        self.records += 1;
        let action = ACTIONS[rng.below(4) as usize];
        let success = rng.below(5) != 0;
        let user = (rng.below(4) != 0).then(|| format!("user{}", rng.below(3000)));
        let ts =
            month.start_epoch_millis() + (i % 1_000_000) as i64 * 1000 + rng.below(1000) as i64;
        self.count(month, action, success, user.as_deref(), &client);
        AuditRecord {
            thread: format!("ForkJoinPool.commonPool-worker-{}", i % 8),
            ip: format!(
                "10.{}.{}.{}",
                rng.below(256),
                rng.below(256),
                rng.below(256)
            ),
            action: action.to_owned(),
            timestamp: ts,
            mac_address: Some("02-42-AC-11-00-02".into()),
            client_id: client,
            username: user,
            scope: Some("openid profile".into()),
            success,
        }
        .text()
    }

    /// The derivation rules, written out: every record counts under (action, outcome); a
    /// USER_AUTHORIZATION is a successful authentication, or a failed one if it names a user;
    /// the user and the client of a successful USER_AUTHORIZATION or TOKEN_REQUEST are active.
    fn count(
        &mut self,
        month: Month,
        action: &str,
        success: bool,
        user: Option<&str>,
        client: &str,
    ) {
        let (counters, users, clients) = self.months.entry(month).or_default();
        let outcome = if success {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        counters.add(
            &CounterKey::Audit {
                action: AuditAction::parse(action),
                outcome,
            },
            1,
        );
        // Per client: its authentications and its active users, by the same rules.
        let of_client = self
            .per_client
            .entry(month)
            .or_default()
            .entry(client.to_owned())
            .or_default();
        if action == "USER_AUTHORIZATION" && (success || user.is_some()) {
            counters.add(&CounterKey::Authentication(outcome), 1);
            match outcome {
                Outcome::Success => of_client.success += 1,
                Outcome::Failure => of_client.failure += 1,
            }
        }
        let active = success && (action == "USER_AUTHORIZATION" || action == "TOKEN_REQUEST");
        if let Some(user) = user.filter(|_| active) {
            users.insert(user.to_owned());
            of_client.users.insert(user.to_owned());
        }
        if active {
            clients.insert(client.to_owned());
        }
    }

    /// Each client's figures of `month` (clients whose records counted nothing included).
    pub fn per_client(&self, month: Month) -> BTreeMap<String, ClientTruth> {
        self.per_client.get(&month).cloned().unwrap_or_default()
    }

    /// The distinct active clients of `month`.
    pub fn active_clients(&self, month: Month) -> BTreeSet<String> {
        self.months
            .get(&month)
            .map(|(_, _, c)| c.clone())
            .unwrap_or_default()
    }

    /// The expected stored stats: counters and the HLL of the distinct users (murmur3).
    pub fn expected(&self) -> Vec<MonthStats> {
        self.months
            .iter()
            .map(|(&month, (counters, users, clients))| {
                let hll = |names: &BTreeSet<String>| {
                    let mut hll = Hll::new(HllParams::janssen());
                    for n in names {
                        hll.add_raw(HashAlgorithm::Murmur3.hash(n));
                    }
                    hll
                };
                MonthStats {
                    month,
                    users: hll(users),
                    counters: counters.clone(),
                    foreign_users: None,
                    clients: (!clients.is_empty()).then(|| hll(clients)),
                }
            })
            .collect()
    }

    /// The exact number of distinct active users of `month`.
    pub fn distinct_users(&self, month: Month) -> usize {
        self.months.get(&month).map_or(0, |(_, u, _)| u.len())
    }
}
