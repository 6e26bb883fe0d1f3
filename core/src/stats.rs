//! Statistics per month, the node that produced them, and the in-memory aggregate.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::counters::{CounterKey, Counters};
use crate::dims::DimKind;
use crate::hll::{Hll, HllParams};
use crate::{Error, Month};

/// The identity of one agent (one auth-server node). Every agent writes only its own node's
/// data; reads merge all nodes. Two agents must never share a node id.
///
/// 1 to 128 characters from `A-Z a-z 0-9 . _ : -` (host names and pod names fit). Ids that
/// start with `authstat:` are reserved for rows authstat writes itself (the row that silent
/// nodes are folded into, [`NodeId::folded`]): no agent can be configured with one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

/// The prefix of reserved node ids.
const RESERVED_PREFIX: &str = "authstat:";

impl NodeId {
    /// Validates `id` as an agent's node id (reserved ids are refused).
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = Self::stored(id)?;
        if id.is_reserved() {
            return Err(Error::ReservedNodeId(id.0));
        }
        Ok(id)
    }

    /// Validates `id` as read back from a store: an agent's node id or a reserved one.
    pub fn stored(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        let ok = (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        if ok {
            Ok(Self(id))
        } else {
            Err(Error::InvalidNodeId(id))
        }
    }

    /// The row that the rows of long-silent nodes are folded into (one per month).
    pub fn folded() -> Self {
        Self(format!("{RESERVED_PREFIX}folded"))
    }

    /// Whether this id is reserved for authstat's own rows.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with(RESERVED_PREFIX)
    }

    /// The node that holds the snapshot `id` of the foreign `system` (`janssen`: one of
    /// Janssen's own statistics rows): `authstat:<system>:<id>`. Such a node is written only by
    /// [`crate::store::StatStore::put_snapshot`]; its HLLs are hashed by the foreign system.
    pub fn foreign(system: &str, id: &str) -> Result<Self, Error> {
        let node = Self::stored(format!("{RESERVED_PREFIX}{system}:{id}"))?;
        if system.is_empty() || system.contains(':') || id.is_empty() || !node.is_foreign() {
            return Err(Error::InvalidNodeId(node.0));
        }
        Ok(node)
    }

    /// Whether this node holds a foreign system's snapshot ([`NodeId::foreign`]).
    pub fn is_foreign(&self) -> bool {
        Self::is_foreign_id(&self.0)
    }

    /// [`NodeId::is_foreign`] of a stored id, without validating or copying it (the read
    /// path asks for every row).
    pub fn is_foreign_id(id: &str) -> bool {
        id.strip_prefix(RESERVED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(system, id)| !system.is_empty() && !id.is_empty())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = Error;
    fn try_from(id: String) -> Result<Self, Error> {
        NodeId::new(id)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything known about one month: the distinct users (an HLL) and the counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthStats {
    /// The month.
    pub month: Month,
    /// Distinct active users.
    pub users: Hll,
    /// Counters.
    pub counters: Counters,
    /// Distinct users counted by foreign systems (Janssen's own statistics rows), unioned over
    /// their snapshots: hashed by the foreign system, so kept apart from `users` until
    /// [`MonthStats::settle_foreign`] decides how they combine. `None` when there are none.
    pub foreign_users: Option<Hll>,
    /// Distinct active clients: those named by a successful authorization or token request
    /// (with or without a user). `None` when no client was recorded (foreign snapshots, months
    /// stored before clients were counted).
    pub clients: Option<Hll>,
}

/// How [`MonthStats::settle_foreign`] combines foreign users with authstat's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForeignUsers {
    /// Both are hashed alike with the same HLL parameters: their union.
    Union,
    /// They are hashed differently (a union would count one user twice): the larger of the
    /// two estimates, a lower bound of the union that never counts a user twice.
    Larger,
}

impl ForeignUsers {
    /// Union when authstat's own users are hashed as Janssen hashes (`java_string_hashcode`)
    /// into HLLs with Janssen's parameters; the larger estimate otherwise.
    pub fn for_janssen(hash: crate::hash::HashAlgorithm, params: &HllParams) -> Self {
        if hash == crate::hash::HashAlgorithm::JavaStringHashCode && *params == HllParams::janssen()
        {
            ForeignUsers::Union
        } else {
            ForeignUsers::Larger
        }
    }
}

impl MonthStats {
    /// Nothing counted yet.
    pub fn new(month: Month, params: HllParams) -> Self {
        Self {
            month,
            users: Hll::new(params),
            counters: Counters::default(),
            foreign_users: None,
            clients: None,
        }
    }

    /// Folds [`MonthStats::foreign_users`] into `users` as `how` says and clears it: after
    /// this, [`MonthStats::monthly_active_users`] answers for both.
    pub fn settle_foreign(&mut self, how: ForeignUsers) {
        let Some(foreign) = self.foreign_users.take() else {
            return;
        };
        let union = how == ForeignUsers::Union
            && self.users.params() == foreign.params()
            && self.users.union(&foreign).is_ok();
        if !union && foreign.cardinality().unwrap_or(0) > self.users.cardinality().unwrap_or(0) {
            self.users = foreign;
        }
    }

    /// Merges another node's (or another batch's) stats of the same month: HLL union, counter
    /// sums. Fails for a different month or HLLs with different parameters.
    pub fn merge(&mut self, other: &MonthStats) -> Result<(), Error> {
        if self.month != other.month {
            return Err(Error::MonthMismatch {
                left: self.month.to_string(),
                right: other.month.to_string(),
            });
        }
        self.users.union(&other.users)?;
        if let Some(theirs) = &other.foreign_users {
            match &mut self.foreign_users {
                Some(ours) => ours.union(theirs)?,
                None => self.foreign_users = Some(theirs.clone()),
            }
        }
        if let Some(theirs) = &other.clients {
            match &mut self.clients {
                Some(ours) => ours.union(theirs)?,
                None => self.clients = Some(theirs.clone()),
            }
        }
        self.counters.merge(&other.counters);
        Ok(())
    }

    /// Monthly active users as the API reports them (0 for an UNDEFINED HLL read from storage).
    pub fn monthly_active_users(&self) -> u64 {
        self.users.cardinality().unwrap_or(0)
    }

    /// Monthly active clients as the API reports them (0 when none was recorded).
    pub fn monthly_active_clients(&self) -> u64 {
        self.clients
            .as_ref()
            .and_then(Hll::cardinality)
            .unwrap_or(0)
    }
}

/// Where a deriver puts what it learned from one event.
///
/// Implemented by [`MonthlyAggregate`]; an agent may implement it to add bookkeeping.
pub trait UpdateSink {
    /// A user (already hashed) was active in `month`.
    fn add_user(&mut self, month: Month, raw_hash: i64);
    /// A counter of `month` grows by `n`.
    fn add_count(&mut self, month: Month, key: &CounterKey, n: u64);
    /// A client (already hashed) was active in `month`.
    fn add_client(&mut self, month: Month, raw_hash: i64);
    /// What one event counted in `month`, counted also under the client or realm `id` (not yet
    /// checked: the sink bounds it). Ignored unless the sink keeps dimensions.
    fn add_dim(&mut self, _month: Month, _kind: DimKind, _id: &str, _figures: &DimFigures<'_>) {}
    /// A user (already hashed) was active on a UTC day (days since 1970-01-01) of `month`.
    /// Ignored unless the sink keeps days.
    fn add_day_user(&mut self, _month: Month, _day: i64, _raw_hash: i64) {}
}

/// What one event counted, for a client or realm ([`UpdateSink::add_dim`]).
#[derive(Debug, Clone, Copy)]
pub struct DimFigures<'a> {
    /// The user it made active (already hashed), if any.
    pub user: Option<i64>,
    /// The counters it added 1 to (an authentication, tokens).
    pub counts: &'a [Option<CounterKey>],
    /// The UTC day of the event (days since 1970-01-01).
    pub day: i64,
}

/// Stats per month, built up in memory from events; all months share one HLL setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthlyAggregate {
    params: HllParams,
    months: BTreeMap<Month, MonthStats>,
}

impl MonthlyAggregate {
    /// No months yet; new months get EMPTY HLLs with `params`.
    pub fn new(params: HllParams) -> Self {
        Self {
            params,
            months: BTreeMap::new(),
        }
    }

    /// The HLL parameters of new months.
    pub fn params(&self) -> &HllParams {
        &self.params
    }

    /// The stats of `month`, created empty if absent.
    pub fn month_mut(&mut self, month: Month) -> &mut MonthStats {
        let params = self.params;
        self.months
            .entry(month)
            .or_insert_with(|| MonthStats::new(month, params))
    }

    /// The stats of `month`, if anything was recorded.
    pub fn get(&self, month: Month) -> Option<&MonthStats> {
        self.months.get(&month)
    }

    /// All months in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = &MonthStats> + '_ {
        self.months.values()
    }

    /// Merges stats in (creating the month if absent).
    pub fn merge(&mut self, stats: &MonthStats) -> Result<(), Error> {
        self.month_mut(stats.month).merge(stats)
    }

    /// Removes and returns every month.
    pub fn take(&mut self) -> Vec<MonthStats> {
        std::mem::take(&mut self.months).into_values().collect()
    }

    /// True when no month was recorded.
    pub fn is_empty(&self) -> bool {
        self.months.is_empty()
    }
}

impl UpdateSink for MonthlyAggregate {
    fn add_user(&mut self, month: Month, raw_hash: i64) {
        self.month_mut(month).users.add_raw(raw_hash);
    }

    fn add_count(&mut self, month: Month, key: &CounterKey, n: u64) {
        self.month_mut(month).counters.add(key, n);
    }

    fn add_client(&mut self, month: Month, raw_hash: i64) {
        let params = self.params;
        self.month_mut(month)
            .clients
            .get_or_insert_with(|| Hll::new(params))
            .add_raw(raw_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Outcome;

    #[test]
    fn node_ids_are_validated() {
        assert!(NodeId::new("auth-0.jans.svc:8443").is_ok());
        assert!(NodeId::new("").is_err());
        assert!(NodeId::new("a b").is_err());
        assert!(NodeId::new("x".repeat(129)).is_err());
        let err = NodeId::new("bad/node").unwrap_err().to_string();
        assert!(err.contains("'bad/node'"), "{err}");
        assert!(serde_json::from_str::<NodeId>("\"bad node\"").is_err());
    }

    #[test]
    fn reserved_node_ids_are_for_stored_rows_only() {
        let folded = NodeId::folded();
        assert!(folded.is_reserved());
        let err = NodeId::new(folded.as_str()).unwrap_err().to_string();
        assert!(err.contains("reserved"), "{err}");
        assert!(serde_json::from_str::<NodeId>("\"authstat:x\"").is_err());
        assert_eq!(NodeId::stored(folded.as_str()).unwrap(), folded);
        assert!(NodeId::stored("a b").is_err());
        assert!(!NodeId::new("authstat-0").unwrap().is_reserved());
    }

    #[test]
    fn foreign_node_ids() {
        let node = NodeId::foreign("janssen", "02-42-AC-11-00-02_202401").unwrap();
        assert_eq!(node.as_str(), "authstat:janssen:02-42-AC-11-00-02_202401");
        assert!(node.is_foreign() && node.is_reserved());
        assert!(!NodeId::folded().is_foreign());
        assert!(!NodeId::new("janssen-1").unwrap().is_foreign());
        assert!(NodeId::new(node.as_str()).is_err());
        assert!(NodeId::foreign("janssen", "").is_err());
        assert!(NodeId::foreign("", "x").is_err());
        assert!(NodeId::foreign("a:b", "x").is_err());
        assert!(NodeId::foreign("janssen", "a b").is_err());
    }

    fn users(params: HllParams, hash: crate::hash::HashAlgorithm, names: &[&str]) -> Hll {
        let mut hll = Hll::new(params);
        for name in names {
            hll.add_raw(hash.hash(name));
        }
        hll
    }

    #[test]
    fn foreign_users_are_unioned_only_when_hashed_alike() {
        use crate::hash::HashAlgorithm::{JavaStringHashCode as Java, Murmur3};
        let p = HllParams::janssen();
        let month: Month = "202401".parse().unwrap();
        let janssen = users(p, Java, &["a", "b", "c"]);
        // Hashed alike: the union (b and c are counted once).
        let mut stats = MonthStats::new(month, p);
        stats.users = users(p, Java, &["b", "c", "d", "e"]);
        stats.foreign_users = Some(janssen.clone());
        stats.settle_foreign(ForeignUsers::for_janssen(Java, &p));
        assert_eq!(stats.monthly_active_users(), 5);
        assert_eq!(stats.foreign_users, None);
        // Hashed differently: the larger estimate, whichever it is.
        let mut stats = MonthStats::new(month, p);
        stats.users = users(p, Murmur3, &["b", "c", "d", "e"]);
        stats.foreign_users = Some(janssen.clone());
        assert_eq!(ForeignUsers::for_janssen(Murmur3, &p), ForeignUsers::Larger);
        stats.settle_foreign(ForeignUsers::Larger);
        assert_eq!(stats.monthly_active_users(), 4);
        let mut stats = MonthStats::new(month, p);
        stats.foreign_users = Some(janssen);
        stats.settle_foreign(ForeignUsers::Larger);
        assert_eq!(stats.monthly_active_users(), 3);
        // Other parameters never union, even with the same hash.
        let other = HllParams::new(14, 5).unwrap();
        assert_eq!(
            ForeignUsers::for_janssen(Java, &other),
            ForeignUsers::Larger
        );
        let mut stats = MonthStats::new(month, other);
        stats.users = users(other, Java, &["x"]);
        stats.foreign_users = Some(users(p, Java, &["y"]));
        stats.settle_foreign(ForeignUsers::Union);
        assert_eq!(stats.monthly_active_users(), 1);
    }

    #[test]
    fn merge_keeps_foreign_users_apart() {
        use crate::hash::HashAlgorithm::JavaStringHashCode as Java;
        let p = HllParams::janssen();
        let month: Month = "202401".parse().unwrap();
        let mut a = MonthStats::new(month, p);
        let mut b = MonthStats::new(month, p);
        b.foreign_users = Some(users(p, Java, &["a"]));
        a.merge(&b).unwrap();
        let mut c = MonthStats::new(month, p);
        c.foreign_users = Some(users(p, Java, &["a", "b"]));
        a.merge(&c).unwrap();
        assert_eq!(a.monthly_active_users(), 0);
        assert_eq!(a.foreign_users.unwrap().cardinality(), Some(2));
    }

    #[test]
    fn merge_refuses_other_months() {
        let p = HllParams::janssen();
        let mut a = MonthStats::new("202401".parse().unwrap(), p);
        let b = MonthStats::new("202402".parse().unwrap(), p);
        let err = a.merge(&b).unwrap_err().to_string();
        assert!(err.contains("202401") && err.contains("202402"), "{err}");
    }

    #[test]
    fn aggregate_collects_by_month() {
        let mut agg = MonthlyAggregate::new(HllParams::janssen());
        let jan: Month = "202401".parse().unwrap();
        let feb: Month = "202402".parse().unwrap();
        agg.add_user(feb, 1 << 20);
        agg.add_user(feb, 1 << 20);
        agg.add_user(jan, 7 << 20);
        agg.add_count(feb, &CounterKey::Authentication(Outcome::Success), 2);
        let months: Vec<Month> = agg.iter().map(|s| s.month).collect();
        assert_eq!(months, [jan, feb]);
        assert_eq!(agg.get(feb).unwrap().monthly_active_users(), 1);
        assert_eq!(
            agg.get(feb)
                .unwrap()
                .counters
                .get(&CounterKey::Authentication(Outcome::Success)),
            2
        );
        assert_eq!(agg.take().len(), 2);
        assert!(agg.is_empty());
    }
}
