//! Statistics per client (application) and per realm: *dimensions* of a month.
//!
//! Every input names the OAuth client of an event, and Keycloak's name its realm. Per node,
//! month and dimension authstat keeps the distinct active users (an HLL of a smaller precision
//! than the cluster's, [`DIM_LOG2M`]) and the authentications and tokens ([`Counters`] without
//! the raw audit counts). They merge over nodes exactly like the months: HLL union, counter
//! sums.
//!
//! A dimension's id is data from outside, so it is bounded: an id longer than
//! [`MAX_DIM_ID_LEN`] bytes is skipped (and counted), and a node keeps at most a configured
//! number of distinct ids per month and kind; the rest is counted together under the kind's
//! *other* dimension ([`Dim::other`]).

use std::collections::BTreeMap;
use std::fmt;

use crate::counters::Counters;
use crate::hll::{Hll, HllParams};
use crate::{Error, Month};

/// The longest client id or realm name kept, in bytes.
pub const MAX_DIM_ID_LEN: usize = 256;

/// log2 of the registers of a dimension's HLL of users: 2,048 registers, a standard error of
/// 1.04/√2048 ≈ 2.3 %, at most 1,280 bytes stored (FULL at 5 bits a register; SPARSE or
/// EXPLICIT, and much smaller, while the client has few users).
pub const DIM_LOG2M: u8 = 11;

/// What a dimension is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DimKind {
    /// An OAuth client (application), by its client id.
    Client,
    /// A tenant (Keycloak's realm), by its name.
    Realm,
    /// A UTC day (`yyyyMMdd`): its active users only.
    Day,
    /// A client on a UTC day (`yyyyMMdd:c:<client id>`): its active users only
    /// (`derive.per_client.daily`).
    ClientDay,
}

impl DimKind {
    /// The kinds figures can be grouped by (`group_by=`), bounded per month by a cap.
    pub const ALL: [DimKind; 2] = [DimKind::Client, DimKind::Realm];

    /// `client`, `realm` or `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            DimKind::Client => "client",
            DimKind::Realm => "realm",
            DimKind::Day => "day",
            DimKind::ClientDay => "client_day",
        }
    }

    /// Reads `client` or `realm` (the kinds of `group_by=`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client" => Some(DimKind::Client),
            "realm" => Some(DimKind::Realm),
            _ => None,
        }
    }

    /// The first character of its dimensions' stored text (SQL reads select by it).
    pub fn prefix(self) -> char {
        match self {
            DimKind::Client => 'c',
            DimKind::Realm => 'r',
            DimKind::Day => 'd',
            DimKind::ClientDay => 'e',
        }
    }
}

/// Milliseconds in a day.
pub const MILLIS_PER_DAY: i64 = 86_400_000;

/// log2 of the registers of a day's HLL of users: 8,192 registers, a standard error of
/// 1.04/√8192 ≈ 1.15 %, at most 5,123 bytes stored (much less while the day has few users).
pub const DAY_LOG2M: u8 = 13;

/// The HLL parameters of a day's users, given the cluster's: [`DAY_LOG2M`] registers (or the
/// cluster's, if fewer) of the same width.
pub fn day_params(cluster: &HllParams) -> HllParams {
    HllParams::new(DAY_LOG2M.min(cluster.log2m()), cluster.regwidth())
        .expect("a valid log2m and regwidth")
}

/// The first month whose days are kept at `now_ms` with a retention of `retention_days`: the
/// month of the day that many days ago (so at least that many days are kept; older months'
/// days are removed whole).
pub fn first_kept_month(now_ms: i64, retention_days: u32) -> Month {
    let oldest = now_ms - i64::from(retention_days) * MILLIS_PER_DAY;
    Month::from_epoch_millis(oldest).expect("the clock is within years 0-9999")
}

/// The UTC day of a time (days since 1970-01-01).
pub fn day_of_millis(ms: i64) -> i64 {
    ms.div_euclid(MILLIS_PER_DAY)
}

impl fmt::Display for DimKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One dimension: a client, a realm, or the kind's *other* bucket (everything beyond the cap).
///
/// Stored as text: `c:<client id>`, `r:<realm>`, and `c` / `r` for the other buckets (no id
/// can make those).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dim(String);

impl Dim {
    /// The dimension of one id, or `None` when the id is empty or longer than
    /// [`MAX_DIM_ID_LEN`] bytes.
    pub fn of(kind: DimKind, id: &str) -> Option<Self> {
        if id.is_empty() || id.len() > MAX_DIM_ID_LEN {
            return None;
        }
        let mut s = String::with_capacity(id.len() + 2);
        s.push(kind.prefix());
        s.push(':');
        s.push_str(id);
        Some(Dim(s))
    }

    /// The kind's bucket of everything beyond the per-month cap.
    pub fn other(kind: DimKind) -> Self {
        Dim(kind.prefix().to_string())
    }

    /// The dimension of a UTC day (days since 1970-01-01): `d:yyyyMMdd`.
    pub fn day(day: i64) -> Self {
        let (y, m, d) = crate::month::civil_from_days(day);
        Dim(format!("d:{y:04}{m:02}{d:02}"))
    }

    /// A client's dimension on a UTC day: `e:yyyyMMdd:` and the client's text (`c:<id>`, or
    /// `c` for the other bucket).
    pub fn client_day(day: i64, client: &Dim) -> Self {
        let date = &Dim::day(day).0[2..];
        Dim(format!("e:{date}:{}", client.0))
    }

    /// The day and the client of a client's dimension on a day.
    pub fn as_client_day(&self) -> Option<(i64, Dim)> {
        let rest = self.0.strip_prefix("e:")?;
        let (date, client) = (rest.get(..8)?, rest.get(9..)?);
        if rest.as_bytes().get(8) != Some(&b':') {
            return None;
        }
        let day = Dim(format!("d:{date}")).as_day()?;
        let client = Dim::parse(client).ok()?;
        (client.kind() == DimKind::Client).then_some((day, client))
    }

    /// The UTC day of a day's dimension (days since 1970-01-01).
    pub fn as_day(&self) -> Option<i64> {
        let text = self.0.strip_prefix("d:")?;
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u32 = text.parse().ok()?;
        let (y, m, d) = (n / 10_000, n / 100 % 100, n % 100);
        let day = crate::month::days_from_civil(i64::from(y), m, d);
        // Only a real date reads back the same (not 20240230).
        (crate::month::civil_from_days(day) == (i64::from(y), m, d) && (1..=12).contains(&m))
            .then_some(day)
    }

    /// The kind.
    pub fn kind(&self) -> DimKind {
        match self.0.as_bytes().first() {
            Some(b'r') => DimKind::Realm,
            Some(b'd') => DimKind::Day,
            Some(b'e') => DimKind::ClientDay,
            _ => DimKind::Client,
        }
    }

    /// The id (`None` for the other bucket).
    pub fn id(&self) -> Option<&str> {
        self.0.get(2..).filter(|_| self.0.len() > 1)
    }

    /// Whether it is the other bucket.
    pub fn is_other(&self) -> bool {
        self.0.len() == 1
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads the stored text back.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidDim(s.chars().take(64).collect());
        let kind = match s.as_bytes().first() {
            Some(b'c') => DimKind::Client,
            Some(b'r') => DimKind::Realm,
            Some(b'd') => {
                let dim = Dim(s.to_owned());
                return dim.as_day().map(|_| dim).ok_or_else(bad);
            }
            Some(b'e') => {
                let dim = Dim(s.to_owned());
                return dim.as_client_day().map(|_| dim).ok_or_else(bad);
            }
            _ => return Err(bad()),
        };
        match s.len() {
            1 => Ok(Dim::other(kind)),
            _ if s.as_bytes()[1] == b':' => Dim::of(kind, &s[2..]).ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The HLL parameters of a dimension's users, given the cluster's: [`DIM_LOG2M`] registers (or
/// the cluster's, if fewer) of the same width.
pub fn dim_params(cluster: &HllParams) -> HllParams {
    HllParams::new(DIM_LOG2M.min(cluster.log2m()), cluster.regwidth())
        .expect("a valid log2m and regwidth")
}

/// One dimension's statistics of a month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DimStats {
    /// Distinct active users.
    pub users: Hll,
    /// Authentications by outcome and tokens by grant type and token type.
    pub counters: Counters,
}

impl DimStats {
    /// Nothing counted yet.
    pub fn new(params: HllParams) -> Self {
        Self {
            users: Hll::new(params),
            counters: Counters::default(),
        }
    }

    /// Adds another node's statistics of the same dimension: HLL union, counter sums. Users
    /// counted with other HLL parameters (nodes configured differently) cannot be unioned: the
    /// larger of the two estimates is kept, a lower bound that never counts a user twice.
    pub fn merge(&mut self, other: &DimStats) -> Result<(), Error> {
        self.add(&other.users, &other.counters)
    }

    /// Adds `users` (unioned) and `counters` (summed); see [`DimStats::merge`].
    pub fn add(&mut self, users: &Hll, counters: &Counters) -> Result<(), Error> {
        if self.users.params() == users.params() {
            self.users.union(users)?;
        } else if users.cardinality().unwrap_or(0) > self.users.cardinality().unwrap_or(0) {
            self.users = users.clone();
        }
        self.counters.merge(counters);
        Ok(())
    }

    /// The distinct active users (0 for an UNDEFINED HLL).
    pub fn active_users(&self) -> u64 {
        self.users.cardinality().unwrap_or(0)
    }
}

/// Every dimension of one month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthDims {
    /// The month.
    pub month: Month,
    /// The dimensions, by their stored text.
    pub dims: BTreeMap<Dim, DimStats>,
}

impl MonthDims {
    /// Nothing yet.
    pub fn new(month: Month) -> Self {
        Self {
            month,
            dims: BTreeMap::new(),
        }
    }

    /// Adds `stats` of `dim` (merged with what is there).
    pub fn add(&mut self, dim: &Dim, stats: &DimStats) -> Result<(), Error> {
        self.add_parts(dim, &stats.users, &stats.counters)
    }

    /// Adds a flush's part of one dimension.
    pub fn add_flush(&mut self, flush: &DimFlush) -> Result<(), Error> {
        self.add_parts(&flush.dim, &flush.users, &flush.counter_deltas)
    }

    fn add_parts(&mut self, dim: &Dim, users: &Hll, counters: &Counters) -> Result<(), Error> {
        match self.dims.get_mut(dim) {
            Some(ours) => ours.add(users, counters),
            None => {
                self.dims.insert(
                    dim.clone(),
                    DimStats {
                        users: users.clone(),
                        counters: counters.clone(),
                    },
                );
                Ok(())
            }
        }
    }

    /// Only the dimensions of `kind`.
    pub fn of_kind(mut self, kind: DimKind) -> Self {
        self.dims.retain(|d, _| d.kind() == kind);
        self
    }
}

/// One of the top dimensions of a month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Top<'a> {
    /// The dimension.
    pub dim: &'a Dim,
    /// Its statistics.
    pub stats: &'a DimStats,
    /// Its active users (the estimate, computed once).
    pub users: u64,
}

/// A month's dimensions ranked: the `n` with the most active users, and the rest together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ranked<'a> {
    /// The first `n`, by active users (then authentications, then id), descending.
    pub top: Vec<Top<'a>>,
    /// Every other dimension, and the kind's other bucket (beyond the cap): their users
    /// unioned (not summed), their counters summed.
    pub others: DimStats,
}

impl MonthDims {
    /// The `n` dimensions with the most active users and the rest together.
    pub fn ranked(&self, n: usize) -> Ranked<'_> {
        let mut all: Vec<(u64, u64, &Dim, &DimStats)> = self
            .dims
            .iter()
            .filter(|(dim, _)| !dim.is_other())
            .map(|(dim, stats)| {
                let authentications = stats.counters.authentications.values().sum();
                (stats.active_users(), authentications, dim, stats)
            })
            .collect();
        all.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)));
        let params = self
            .dims
            .values()
            .next()
            .map_or_else(|| dim_params(&HllParams::janssen()), |s| *s.users.params());
        let mut others = DimStats::new(params);
        let rest = all.iter().skip(n).map(|(_, _, _, stats)| *stats);
        let bucket = self
            .dims
            .iter()
            .filter(|(d, _)| d.is_other())
            .map(|(_, s)| s);
        for stats in rest.chain(bucket) {
            others
                .merge(stats)
                .expect("a union of equal parameters succeeds");
        }
        Ranked {
            top: all
                .into_iter()
                .take(n)
                .map(|(users, _, dim, stats)| Top { dim, stats, users })
                .collect(),
            others,
        }
    }
}

/// One dimension of a flush: the node's whole HLL of the dimension's users (replaces the stored
/// one) and the counter increments since the previous flush (added).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DimFlush {
    /// The dimension.
    pub dim: Dim,
    /// The node's whole HLL of the dimension's users this month.
    pub users: Hll,
    /// Counter increments since the previous flush.
    pub counter_deltas: Counters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_round_trip_through_their_text_and_bound_their_ids() {
        let c = Dim::of(DimKind::Client, "web-app:1").unwrap();
        assert_eq!(c.as_str(), "c:web-app:1");
        assert_eq!(Dim::parse(c.as_str()).unwrap(), c);
        assert_eq!(c.id(), Some("web-app:1"));
        assert_eq!(c.kind(), DimKind::Client);
        let r = Dim::of(DimKind::Realm, "master").unwrap();
        assert_eq!(r.kind(), DimKind::Realm);
        let other = Dim::other(DimKind::Realm);
        assert!(other.is_other() && other.id().is_none());
        assert_eq!(Dim::parse("r").unwrap(), other);
        assert!(Dim::of(DimKind::Client, "").is_none());
        assert!(Dim::of(DimKind::Client, &"x".repeat(MAX_DIM_ID_LEN)).is_some());
        assert!(Dim::of(DimKind::Client, &"x".repeat(MAX_DIM_ID_LEN + 1)).is_none());
        for bad in ["", "x:a", "cx", "c:", "q"] {
            assert!(Dim::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranking_keeps_the_largest_and_unions_the_rest() {
        let params = dim_params(&HllParams::janssen());
        let mut month = MonthDims::new("202403".parse().unwrap());
        let stats = |users: std::ops::Range<i64>| {
            let mut s = DimStats::new(params);
            for u in users {
                s.users
                    .add_raw(crate::hash::HashAlgorithm::Murmur3.hash(&u.to_string()));
            }
            s
        };
        month
            .add(&Dim::of(DimKind::Client, "big").unwrap(), &stats(0..50))
            .unwrap();
        month
            .add(&Dim::of(DimKind::Client, "mid").unwrap(), &stats(0..20))
            .unwrap();
        month
            .add(&Dim::of(DimKind::Client, "a").unwrap(), &stats(100..105))
            .unwrap();
        month
            .add(&Dim::of(DimKind::Client, "b").unwrap(), &stats(100..105))
            .unwrap();
        month
            .add(&Dim::other(DimKind::Client), &stats(200..203))
            .unwrap();
        let ranked = month.ranked(2);
        let top: Vec<_> = ranked.top.iter().map(|t| t.dim.id().unwrap()).collect();
        assert_eq!(top, ["big", "mid"]);
        assert_eq!(
            ranked.others.active_users(),
            8,
            "a and b share their users: a union"
        );
        let ties = month.ranked(3);
        assert_eq!(ties.top[2].dim.id(), Some("a"), "ties by id");
        assert_eq!(month.ranked(10).top.len(), 4, "the bucket is never ranked");
    }

    #[test]
    fn days_round_trip_and_only_real_dates_read_back() {
        for (text, ms) in [
            ("d:19700101", 0),
            ("d:20240229", 1_709_164_800_000),
            ("d:20241231", 1_735_689_599_999),
        ] {
            let day = day_of_millis(ms);
            assert_eq!(Dim::day(day).as_str(), text);
            assert_eq!(Dim::parse(text).unwrap().as_day(), Some(day));
            assert_eq!(Dim::day(day).kind(), DimKind::Day);
        }
        assert_eq!(day_of_millis(-1), -1, "before 1970: the day before");
        for bad in ["d:20240230", "d:2024021", "d:2024010x", "d:20241301", "d:"] {
            assert!(Dim::parse(bad).is_err(), "{bad}");
        }
        let web = Dim::of(DimKind::Client, "web:1").unwrap();
        let day = day_of_millis(1_709_164_800_000);
        let on_day = Dim::client_day(day, &web);
        assert_eq!(on_day.as_str(), "e:20240229:c:web:1");
        assert_eq!(
            Dim::parse(on_day.as_str()).unwrap().as_client_day(),
            Some((day, web))
        );
        assert_eq!(on_day.kind(), DimKind::ClientDay);
        let other = Dim::client_day(day, &Dim::other(DimKind::Client));
        assert_eq!(
            other.as_client_day().unwrap().1,
            Dim::other(DimKind::Client)
        );
        for bad in [
            "e:20240229",
            "e:20240229c:x",
            "e:20240230:c:x",
            "e:20240229:r:x",
        ] {
            assert!(Dim::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_dimensions_precision_is_at_most_the_clusters() {
        assert_eq!(dim_params(&HllParams::janssen()).log2m(), DIM_LOG2M);
        let small = HllParams::new(8, 4).unwrap();
        assert_eq!(dim_params(&small), HllParams::new(8, 4).unwrap());
    }
}
