//! What the page shows: the figures of each month, the nodes, this agent's health.

use authstat_core::Month;
use authstat_core::counters::Counters;

/// One month's figures: its distinct users and clients and its counters (no HLL is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthFigures {
    /// The month.
    pub month: Month,
    /// Distinct active users.
    pub users: u64,
    /// Distinct active clients.
    pub clients: u64,
    /// Counters.
    pub counters: Counters,
}

impl MonthFigures {
    /// The figures of `stats`.
    pub fn of(stats: &authstat_core::MonthStats) -> Self {
        Self {
            month: stats.month,
            users: stats.monthly_active_users(),
            clients: stats.monthly_active_clients(),
            counters: stats.counters.clone(),
        }
    }

    /// Nothing stored for `month`.
    pub fn empty(month: Month) -> Self {
        Self {
            month,
            users: 0,
            clients: 0,
            counters: Counters::default(),
        }
    }

    pub(super) fn monthly_active_users(&self) -> u64 {
        self.users
    }
}

/// One node as the page lists it.
#[derive(Debug, Clone)]
pub struct NodeLine {
    /// Its id.
    pub node: String,
    /// Its last flush (milliseconds since the Unix epoch; 0: never).
    pub last_flush_ms: i64,
    /// The months it holds rows for (`None`: not looked up, too many nodes).
    pub months: Option<Vec<Month>>,
}

/// The agent's own health, as the page shows it.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Skipped records by reason (only reasons with a count).
    pub skipped: Vec<(String, u64)>,
    /// Backend errors (flushes and reads).
    pub backend_errors: u64,
    /// Flushes that failed.
    pub flush_failures: u64,
    /// Source problems now, one line each.
    pub problems: Vec<String>,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct PageData {
    /// The months shown, ascending, one entry per month (empty stats where nothing is stored).
    pub months: Vec<MonthFigures>,
    /// The current month (by the clock, UTC).
    pub current: Month,
    /// The node shown (`None`: every node merged).
    pub node: Option<String>,
    /// Every node.
    pub nodes: Vec<NodeLine>,
    /// The agent's health.
    pub health: Health,
    /// The dashboard's path (links and forms).
    pub path: String,
    /// The CSS's version (its hash, for immutable caching).
    pub css_version: String,
    /// Whether there is a session to log out of.
    pub logout: bool,
    /// When it was made (milliseconds since the Unix epoch).
    pub now_ms: i64,
    /// Last month's users up to the same day of the month, over all nodes, as recorded then:
    /// (the day recorded, its figure); `None` when nothing was recorded (or one node is shown).
    pub same_day_last_month: Option<(u32, u64)>,
    /// The top clients of the last month shown, all nodes merged (`None` when one node is
    /// shown).
    pub top_clients: Option<MonthGroup>,
    /// The last 30 days, all nodes merged (`None` when one node is shown).
    pub recent: Option<RecentDays>,
}

/// Active users of the last 30 days, all nodes merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentDays {
    /// Each day's active users, oldest first, today last: `(day, users)` (days since
    /// 1970-01-01).
    pub daily: Vec<(i64, u64)>,
    /// This ISO week's active users so far (Monday to today).
    pub week: u64,
    /// The last 30 days' active users (today included).
    pub thirty: u64,
}

impl RecentDays {
    /// Stickiness: the average daily active users over the 30 days' active users, in percent
    /// (`None` without any).
    pub fn stickiness(&self) -> Option<f64> {
        let days = self.daily.len().max(1) as f64;
        let average = self.daily.iter().map(|d| d.1 as f64).sum::<f64>() / days;
        (self.thirty > 0).then(|| 100.0 * average / self.thirty as f64)
    }
}

/// A grant type's short name (`urn:…:device_code` → `device_code`).
pub(crate) fn short_grant(grant: &str) -> &str {
    if grant.starts_with("urn:") {
        grant.rsplit(':').next().unwrap_or(grant)
    } else {
        grant
    }
}

/// A time (ms since the epoch) as UTC text.
pub(super) fn utc(ms: i64) -> String {
    if ms <= 0 {
        return "never".into();
    }
    let secs = ms.div_euclid(1000);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = authstat_core::month::civil_from_days(secs.div_euclid(86_400));
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_types_are_shortened() {
        assert_eq!(
            short_grant("urn:ietf:params:oauth:grant-type:device_code"),
            "device_code"
        );
        assert_eq!(short_grant("urn:openid:params:grant-type:ciba"), "ciba");
        assert_eq!(
            short_grant("urn:ietf:params:oauth:grant-type:uma-ticket"),
            "uma-ticket"
        );
        assert_eq!(short_grant("authorization_code"), "authorization_code");
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(utc(1_706_745_600_123), "2024-02-01 00:00 UTC");
        assert_eq!(utc(0), "never");
    }
}

/// One client's (realm's) figures in a month, for the table of the top clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRow {
    /// The client id (realm); `None` for the rest together.
    pub id: Option<String>,
    /// Distinct active users.
    pub users: u64,
    /// Successful authentications.
    pub success: u64,
    /// Failed authentications.
    pub failure: u64,
}

impl GroupRow {
    fn of(id: Option<String>, stats: &authstat_core::dims::DimStats, users: u64) -> Self {
        use authstat_core::counters::{CounterKey, Outcome};
        Self {
            id,
            users,
            success: stats
                .counters
                .get(&CounterKey::Authentication(Outcome::Success)),
            failure: stats
                .counters
                .get(&CounterKey::Authentication(Outcome::Failure)),
        }
    }

    /// Failed over all authentications, in percent (`None` without any).
    pub fn failure_rate(&self) -> Option<f64> {
        let all = self.success + self.failure;
        (all > 0).then(|| 100.0 * self.failure as f64 / all as f64)
    }
}

/// A month's top clients (realms) by active users, and the rest together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthGroup {
    /// The month.
    pub month: Month,
    /// The top ones, most active users first.
    pub rows: Vec<GroupRow>,
    /// The rest together (users unioned).
    pub others: GroupRow,
}

impl MonthGroup {
    /// The top `n` of `dims` and the rest.
    pub fn of(dims: &authstat_core::dims::MonthDims, n: usize) -> Self {
        let ranked = dims.ranked(n);
        Self {
            month: dims.month,
            rows: ranked
                .top
                .iter()
                .map(|t| GroupRow::of(t.dim.id().map(str::to_owned), t.stats, t.users))
                .collect(),
            others: GroupRow::of(None, &ranked.others, ranked.others.active_users()),
        }
    }
}
