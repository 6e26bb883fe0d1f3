//! Per client and per realm, between two flushes: the users seen and the counter increments of
//! every dimension touched, and the ids the node already holds per month (for the cap).

use std::collections::BTreeMap;

use authstat_core::Month;
use authstat_core::counters::Counters;
use authstat_core::dims::{Dim, DimFlush, DimKind, MAX_DIM_ID_LEN, MonthDims};
use authstat_core::hll::{Hll, HllParams};
use authstat_core::stats::DimFigures;
use tracing::warn;

/// What one dimension gathered since the last flush (`None`/empty once flushed: the id stays
/// known, for the cap).
#[derive(Debug, Default)]
struct Gathered {
    users: Option<Hll>,
    deltas: Counters,
    dirty: bool,
    /// A client's users per UTC day since the last flush (`derive.per_client.daily`).
    days: Vec<(i64, Hll)>,
}

/// The dimensions of one month and kind: by id (the other bucket under the empty id, which no
/// client can have).
type Ids = hashbrown::HashMap<String, Gathered, foldhash::fast::RandomState>;

/// Every month's dimensions, bounded per month and kind, and the users of each day seen since the
/// last flush.
#[derive(Debug)]
pub(crate) struct DimTable {
    params: HllParams,
    day_params: HllParams,
    days: BTreeMap<Month, BTreeMap<i64, Hll>>,
    /// The day records are counted into now (most records of a flush are of one day): one
    /// comparison per user instead of two map lookups.
    today: Option<(Month, i64, Hll)>,
    /// At most this many distinct ids per month and kind; the rest go to the other bucket.
    cap: usize,
    /// Also each client's users per day.
    pub daily: bool,
    months: BTreeMap<Month, [Ids; 2]>,
    /// Events whose id was skipped since the last flush: longer than [`MAX_DIM_ID_LEN`] bytes.
    pub skipped: u64,
    /// Events counted under the other bucket because of the cap, since the last flush.
    pub over_cap: u64,
    /// The (month, kind) pairs whose cap was reported already.
    warned: Vec<(Month, DimKind)>,
}

fn index(kind: DimKind) -> usize {
    match kind {
        DimKind::Client => 0,
        DimKind::Realm => 1,
        DimKind::Day | DimKind::ClientDay => unreachable!("days are kept apart"),
    }
}

impl DimTable {
    /// No dimensions yet; HLLs of users with `params` (days: `day_params`), at most `cap` ids
    /// per month and kind.
    pub fn new(params: HllParams, day_params: HllParams, cap: usize) -> Self {
        Self {
            params,
            day_params,
            days: BTreeMap::new(),
            today: None,
            cap,
            daily: false,
            months: BTreeMap::new(),
            skipped: 0,
            over_cap: 0,
            warned: Vec::new(),
        }
    }

    /// The same parameters, nothing gathered, no cap (a reading thread's part: the cap applies
    /// when the part is absorbed).
    pub fn empty_like(&self) -> Self {
        let mut part = Self::new(self.params, self.day_params, usize::MAX);
        part.daily = self.daily;
        part
    }

    pub fn add_day_user(&mut self, month: Month, day: i64, raw_hash: i64) {
        match &mut self.today {
            Some((m, d, users)) if *m == month && *d == day => users.add_raw(raw_hash),
            _ => {
                self.park_today();
                let mut users = Hll::new(self.day_params.with_sparse(false));
                users.add_raw(raw_hash);
                self.today = Some((month, day, users));
            }
        }
    }

    /// Moves the day counted into now to the others.
    fn park_today(&mut self) {
        if let Some((month, day, users)) = self.today.take() {
            let days = self.days.entry(month).or_default();
            match days.get_mut(&day) {
                Some(u) => u.union(&users).expect("days share the HLL parameters"),
                None => {
                    days.insert(day, users);
                }
            }
        }
    }

    /// Knows the node's stored ids (after a restart), for the cap.
    pub fn know(&mut self, stored: &[MonthDims]) {
        for m in stored {
            let ids = self.months.entry(m.month).or_default();
            // Days are not capped: only clients and realms count.
            for dim in m.dims.keys().filter(|d| DimKind::ALL.contains(&d.kind())) {
                let id = dim.id().unwrap_or("");
                ids[index(dim.kind())].entry(id.to_owned()).or_default();
            }
        }
    }

    /// The gathered entry of `id`: its own, or the other bucket's when the month has `cap` ids
    /// of the kind already; `None` for an id too long.
    fn entry(&mut self, month: Month, kind: DimKind, id: &str) -> Option<&mut Gathered> {
        if id.len() > MAX_DIM_ID_LEN {
            self.skipped += 1;
            return None;
        }
        let ids = &mut self.months.entry(month).or_default()[index(kind)];
        // Below the cap (almost always) one hash of the id: `entry_ref` below.
        let admitted = ids.len() < self.cap || ids.contains_key(id);
        if !admitted {
            self.over_cap += 1;
            if !self.warned.contains(&(month, kind)) {
                self.warned.push((month, kind));
                warn!(
                    %month,
                    kind = kind.as_str(),
                    cap = self.cap,
                    "too many distinct {kind}s this month: the figures of the rest are counted together as other_{kind}s (derive.per_client.max_per_month)"
                );
            }
        }
        let ids = &mut self.months.get_mut(&month).expect("made above")[index(kind)];
        let gathered = ids
            .entry_ref(if admitted { id } else { "" })
            .or_insert_with(Gathered::default);
        gathered.dirty = true;
        Some(gathered)
    }

    /// Adds what one event counted under the client or realm `id`.
    pub fn add(&mut self, month: Month, kind: DimKind, id: &str, figures: &DimFigures<'_>) {
        // Gathered without SPARSE (cheaper to add to), stored with it (`take`).
        let params = self.params.with_sparse(false);
        let daily = self.daily && kind == DimKind::Client;
        if let Some(g) = self.entry(month, kind, id) {
            if let Some(user) = figures.user {
                g.users
                    .get_or_insert_with(|| Hll::new(params))
                    .add_raw(user);
                if daily {
                    match g.days.last_mut() {
                        Some((day, users)) if *day == figures.day => users.add_raw(user),
                        _ => match g.days.iter_mut().find(|(day, _)| *day == figures.day) {
                            Some((_, users)) => users.add_raw(user),
                            None => {
                                let mut users = Hll::new(params);
                                users.add_raw(user);
                                g.days.push((figures.day, users));
                            }
                        },
                    }
                }
            }
            for key in figures.counts.iter().flatten() {
                g.deltas.add(key, 1);
            }
        }
    }

    /// Adds what `part` gathered (the cap applies here).
    pub fn absorb(&mut self, mut part: DimTable) {
        part.park_today();
        self.park_today();
        self.skipped += part.skipped;
        self.over_cap += part.over_cap;
        for (month, days) in part.days {
            let ours = self.days.entry(month).or_default();
            for (day, users) in days {
                match ours.get_mut(&day) {
                    Some(u) => u.union(&users).expect("the parts share the HLL parameters"),
                    None => {
                        ours.insert(day, users);
                    }
                }
            }
        }
        for (month, kinds) in part.months {
            for (kind, ids) in DimKind::ALL.into_iter().zip(kinds) {
                for (id, g) in ids {
                    let Some(ours) = self.entry(month, kind, &id) else {
                        continue;
                    };
                    if let Some(users) = g.users {
                        match &mut ours.users {
                            Some(u) => u.union(&users).expect("the parts share the HLL parameters"),
                            None => ours.users = Some(users),
                        }
                    }
                    ours.deltas.merge(&g.deltas);
                    for (day, users) in g.days {
                        match ours.days.iter_mut().find(|(d, _)| *d == day) {
                            Some((_, u)) => {
                                u.union(&users).expect("the parts share the HLL parameters")
                            }
                            None => ours.days.push((day, users)),
                        }
                    }
                }
            }
        }
    }

    /// Takes what `month`'s dimensions (and days) gathered since the last flush, in ascending
    /// order.
    pub fn take(&mut self, month: Month) -> Vec<DimFlush> {
        self.park_today();
        let mut out: Vec<DimFlush> = self
            .days
            .remove(&month)
            .into_iter()
            .flatten()
            .map(|(day, users)| DimFlush {
                dim: Dim::day(day),
                users: users
                    .with_params(self.day_params)
                    .expect("the same log2m and regwidth"),
                counter_deltas: Counters::default(),
            })
            .collect();
        let Some(kinds) = self.months.get_mut(&month) else {
            return out;
        };
        for (kind, ids) in DimKind::ALL.into_iter().zip(kinds.iter_mut()) {
            for (id, g) in ids.iter_mut().filter(|(_, g)| g.dirty) {
                let dim = if id.is_empty() {
                    Dim::other(kind)
                } else {
                    Dim::of(kind, id).expect("ids are checked when gathered")
                };
                for (day, users) in std::mem::take(&mut g.days) {
                    out.push(DimFlush {
                        dim: Dim::client_day(day, &dim),
                        users: users
                            .with_params(self.params)
                            .expect("the same log2m and regwidth"),
                        counter_deltas: Counters::default(),
                    });
                }
                out.push(DimFlush {
                    dim,
                    users: match g.users.take() {
                        Some(users) => users
                            .with_params(self.params)
                            .expect("the same log2m and regwidth"),
                        None => Hll::new(self.params),
                    },
                    counter_deltas: std::mem::take(&mut g.deltas),
                });
                g.dirty = false;
            }
        }
        out.sort_by(|a, b| a.dim.cmp(&b.dim));
        out
    }

    /// The records gathered but not flushed count in the aggregate already; this is only for
    /// tests: how many ids `month` knows of `kind` (the other bucket included).
    #[cfg(test)]
    pub fn known(&self, month: Month, kind: DimKind) -> usize {
        self.months.get(&month).map_or(0, |k| k[index(kind)].len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authstat_core::counters::{CounterKey, Outcome};

    #[test]
    fn ids_beyond_the_cap_go_to_the_other_bucket_and_long_ones_are_skipped() {
        let month: Month = "202403".parse().unwrap();
        let mut t = DimTable::new(
            HllParams::new(11, 5).unwrap(),
            HllParams::new(13, 5).unwrap(),
            2,
        );
        let ok = CounterKey::Authentication(Outcome::Success);
        let counts = [Some(ok.clone())];
        let authn = DimFigures {
            user: None,
            counts: &counts,
            day: 19_800,
        };
        for id in ["a", "b", "c", "d", "a"] {
            t.add(month, DimKind::Client, id, &authn);
        }
        let user = DimFigures {
            user: Some(7),
            counts: &[],
            day: 19_800,
        };
        t.add(
            month,
            DimKind::Client,
            &"x".repeat(MAX_DIM_ID_LEN + 1),
            &user,
        );
        assert_eq!((t.skipped, t.over_cap), (1, 2));
        let flushed = t.take(month);
        let dims: Vec<_> = flushed.iter().map(|f| f.dim.as_str()).collect();
        assert_eq!(dims, ["c", "c:a", "c:b"]);
        assert_eq!(flushed[0].counter_deltas.get(&ok), 2, "c and d, together");
        assert_eq!(flushed[1].counter_deltas.get(&ok), 2);
        assert!(t.take(month).is_empty(), "nothing new since");
        // A part has no cap; absorbing applies it.
        let mut part = t.empty_like();
        part.add(month, DimKind::Client, "e", &authn);
        part.add(month, DimKind::Realm, "r1", &authn);
        t.absorb(part);
        let dims: Vec<_> = t
            .take(month)
            .into_iter()
            .map(|f| f.dim.to_string())
            .collect();
        assert_eq!(dims, ["c", "r:r1"]);
        assert_eq!(t.known(month, DimKind::Client), 3);
        // After a restart the stored ids count (days are stored too, and are not capped).
        let mut stored = authstat_core::dims::MonthDims::new(month);
        let params = HllParams::new(11, 5).unwrap();
        for dim in [Dim::day(19_800), Dim::of(DimKind::Client, "a").unwrap()] {
            stored
                .add(&dim, &authstat_core::dims::DimStats::new(params))
                .unwrap();
        }
        let mut resumed = DimTable::new(params, HllParams::new(13, 5).unwrap(), 2);
        resumed.know(&[stored]);
        assert_eq!(resumed.known(month, DimKind::Client), 1);
    }
}
