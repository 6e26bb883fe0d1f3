//! The cluster roll-up: per month, what a read of all nodes answers, kept up to date by every
//! write, so that such a read costs one row per month however many nodes wrote it.
//!
//! - A flush unions the node's HLL of each month in (a union is idempotent: a node's HLL of a
//!   month only grows, and its latest one holds every earlier one) and adds its counter deltas
//!   (exactly once: in the flush's own atomic unit, after its sequence check).
//! - A snapshot (a foreign node's rows) replaces its own contribution: its old counters are
//!   taken away and its new ones added, and the foreign users are the union of every foreign
//!   node's current HLL of the month, made anew (foreign nodes are few).
//! - A fold moves node rows into the folded node: unions and sums stay the same, so the roll-up
//!   does not change.
//! - Nodes whose HLLs have different parameters (a misconfigured agent) cannot be unioned: the
//!   month is marked `mixed` and read from the node rows, as before roll-ups (which reports the
//!   mismatch).
//!
//! Every change bumps the month's `version` (see `StatStore::month_versions`).

use authstat_core::counters::Counters;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::{Month, MonthStats};

/// One month of the roll-up.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Rolled {
    /// The union of authstat's own nodes' users (`None`: no node stored users).
    pub(crate) users: Option<Hll>,
    /// The union of foreign nodes' users, kept apart (hashed by their upstream).
    pub(crate) foreign: Option<Hll>,
    /// Sums over every node.
    pub(crate) counters: Counters,
    /// The union of every node's active clients.
    pub(crate) clients: Option<Hll>,
    /// Nodes with different HLL parameters wrote the month: read it from the node rows.
    pub(crate) mixed: bool,
    /// Bumped by every change.
    pub(crate) version: u64,
}

impl Rolled {
    /// A node's flush of the month: its HLLs unioned in, its counter deltas added.
    pub(crate) fn add_flush(&mut self, users: &Hll, clients: Option<&Hll>, deltas: &Counters) {
        union_into(&mut self.users, users, &mut self.mixed);
        if let Some(clients) = clients {
            union_into(&mut self.clients, clients, &mut self.mixed);
        }
        self.counters.merge(deltas);
        self.version += 1;
    }

    /// A foreign node's snapshot of the month replaced `old` counters (none: it had none) with
    /// `new`; `foreign` is the union of every foreign node's users of the month now.
    pub(crate) fn replace_snapshot(
        &mut self,
        old: Option<&Counters>,
        new: &Counters,
        foreign: Option<Hll>,
    ) {
        if let Some(old) = old {
            self.counters.subtract(old);
        }
        self.counters.merge(new);
        self.foreign = foreign;
        self.version += 1;
    }

    /// The month as a merged read answers it.
    pub(crate) fn stats(&self, month: Month) -> MonthStats {
        MonthStats {
            month,
            users: self
                .users
                .clone()
                .unwrap_or_else(|| Hll::new(HllParams::janssen())),
            counters: self.counters.clone().without_zeros(),
            foreign_users: self.foreign.clone(),
            clients: self.clients.clone(),
        }
    }
}

/// Unions `hll` into `into`; HLLs of other parameters mark the month mixed.
pub(crate) fn union_into(into: &mut Option<Hll>, hll: &Hll, mixed: &mut bool) {
    match into {
        None => *into = Some(hll.clone()),
        Some(acc) => {
            if acc.union(hll).is_err() {
                *mixed = true;
            }
        }
    }
}

/// The union of `hlls` (foreign users), `None` when there is none; HLLs of other parameters
/// mark the month mixed.
pub(crate) fn union_all<'a>(
    hlls: impl IntoIterator<Item = &'a Hll>,
    mixed: &mut bool,
) -> Option<Hll> {
    let mut out = None;
    for hll in hlls {
        union_into(&mut out, hll, mixed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use authstat_core::counters::{CounterKey, Outcome};

    fn hll(users: &[&str]) -> Hll {
        let mut h = Hll::new(HllParams::new(11, 5).unwrap());
        for u in users {
            h.add_raw(authstat_core::hash::HashAlgorithm::Murmur3.hash(u));
        }
        h
    }

    #[test]
    fn flushes_union_users_and_add_counters_and_snapshots_replace_theirs() {
        let mut r = Rolled::default();
        let mut deltas = Counters::default();
        deltas.add(&CounterKey::Authentication(Outcome::Success), 2);
        r.add_flush(&hll(&["a", "b"]), Some(&hll(&["app-1"])), &deltas);
        r.add_flush(&hll(&["a", "b", "c"]), None, &deltas);
        assert_eq!(r.version, 2);
        assert_eq!(r.users.as_ref().unwrap().cardinality(), Some(3));
        assert_eq!(
            r.counters
                .get(&CounterKey::Authentication(Outcome::Success)),
            4
        );

        let mut old = Counters::default();
        old.add(&CounterKey::Authentication(Outcome::Success), 1);
        r.replace_snapshot(None, &old, Some(hll(&["x"])));
        let mut new = Counters::default();
        new.add(&CounterKey::Authentication(Outcome::Failure), 7);
        r.replace_snapshot(Some(&old), &new, Some(hll(&["y"])));
        let s = r.stats("202401".parse().unwrap());
        assert_eq!(
            s.counters
                .get(&CounterKey::Authentication(Outcome::Success)),
            4
        );
        assert_eq!(
            s.counters
                .get(&CounterKey::Authentication(Outcome::Failure)),
            7
        );
        assert_eq!(s.foreign_users, Some(hll(&["y"])));
        assert_eq!(s.monthly_active_clients(), 1);
        assert!(!r.mixed);

        r.add_flush(
            &Hll::new(HllParams::new(12, 5).unwrap()),
            None,
            &Counters::default(),
        );
        assert!(r.mixed, "other parameters cannot be unioned");
    }
}
