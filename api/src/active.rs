//! `GET /authstat/v1/active-users`: the distinct users of any range of UTC days, and of its
//! days, weeks or months (docs/api.md).

use authstat_core::Month;
use authstat_core::dims::MILLIS_PER_DAY;
use authstat_core::hll::Hll;
use authstat_core::month::{civil_from_days, days_from_civil};
use std::collections::BTreeMap;

/// The longest range, in days.
pub const MAX_RANGE_DAYS: i64 = 400;

/// How a range is cut into periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum By {
    /// Each day.
    Day,
    /// ISO 8601 weeks (Monday to Sunday), the first and last cut at the range.
    Week,
    /// Calendar months, the first and last cut at the range.
    Month,
}

/// A request: its days (days since 1970-01-01, inclusive) and periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Range {
    /// The first day.
    pub from: i64,
    /// The last day.
    pub to: i64,
    /// The periods asked for, if any.
    pub by: Option<By>,
    /// `group_by=client`: how many clients get their figure (`top`).
    pub clients: Option<usize>,
}

/// A day as `YYYY-MM-DD`.
pub fn day_text(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Reads a `YYYY-MM-DD` date that exists (`parameter` names it in the error).
pub fn parse_day(parameter: &str, text: &str) -> Result<i64, String> {
    let shown: String = text.chars().take(32).collect();
    let bad = || format!("{parameter}: '{shown}' is not a date YYYY-MM-DD");
    let b = text.as_bytes();
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return Err(bad());
    }
    let (y, m, d): (i64, u32, u32) = (
        text[..4].parse().map_err(|_| bad())?,
        text[5..7].parse().map_err(|_| bad())?,
        text[8..].parse().map_err(|_| bad())?,
    );
    let day = days_from_civil(y, m, d);
    if !(1..=12).contains(&m) || civil_from_days(day) != (y, m, d) {
        return Err(format!("{parameter}: {shown} does not exist"));
    }
    Ok(day)
}

/// The range a request asks for, checked: both dates exist, `from` is not after `to`, at most
/// [`MAX_RANGE_DAYS`] days, not before `first_kept` (the retention), `by` is known.
pub fn requested_range(
    pairs: &[(String, String)],
    first_kept: i64,
    per_client_daily: bool,
) -> Result<Range, String> {
    let first = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let from = parse_day(
        "from",
        first("from").ok_or("from: missing (a date YYYY-MM-DD)")?,
    )?;
    let to = parse_day("to", first("to").ok_or("to: missing (a date YYYY-MM-DD)")?)?;
    if from > to {
        return Err(format!(
            "from: {} is after to ({})",
            day_text(from),
            day_text(to)
        ));
    }
    if to - from + 1 > MAX_RANGE_DAYS {
        return Err(format!(
            "to: the range has {} days, more than {MAX_RANGE_DAYS}",
            to - from + 1
        ));
    }
    if from < first_kept {
        return Err(format!(
            "from: {} is before {}, the first day kept (daily_retention_days)",
            day_text(from),
            day_text(first_kept)
        ));
    }
    let by = match first("by") {
        None => None,
        Some("day") => Some(By::Day),
        Some("week") => Some(By::Week),
        Some("month") => Some(By::Month),
        Some(other) => {
            let shown: String = other.chars().take(32).collect();
            return Err(format!("by: '{shown}' is none of day, week, month"));
        }
    };
    let clients = requested_clients(first("group_by"), first("top"), per_client_daily)?;
    Ok(Range {
        from,
        to,
        by,
        clients,
    })
}

/// `group_by=client[&top=N]`: how many clients get their figure (`None`: no grouping).
fn requested_clients(
    group_by: Option<&str>,
    top: Option<&str>,
    per_client_daily: bool,
) -> Result<Option<usize>, String> {
    Ok(match (group_by, top) {
        (None, None) => None,
        (None, Some(_)) => return Err("top: needs group_by=client".into()),
        (Some("client"), _) if !per_client_daily => {
            return Err("group_by: each client's active users per day are not kept \
                 (derive.per_client.daily: true keeps them; per month: the stat API's \
                 group_by=client)"
                .into());
        }
        (Some("client"), top) => Some(match top {
            None => crate::stat::DEFAULT_TOP,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=crate::stat::MAX_TOP).contains(&n) => n,
                _ => {
                    let shown: String = text.chars().take(32).collect();
                    return Err(format!(
                        "top: '{shown}' is not a whole number from 1 to {}",
                        crate::stat::MAX_TOP
                    ));
                }
            },
        }),
        (Some(other), _) => {
            let shown: String = other.chars().take(32).collect();
            return Err(format!("group_by: '{shown}' is not client"));
        }
    })
}

impl Range {
    /// The months its days fall in, ascending.
    pub fn months(&self) -> Vec<Month> {
        let first = Month::from_epoch_millis(self.from * MILLIS_PER_DAY).expect("a valid date");
        let last = Month::from_epoch_millis(self.to * MILLIS_PER_DAY).expect("a valid date");
        authstat_core::MonthRange::new(first, last)
            .expect("from is not after to")
            .iter()
            .collect()
    }

    /// Its periods `(first day, last day)`, ascending (empty without `by`).
    pub fn periods(&self) -> Vec<(i64, i64)> {
        let Some(by) = self.by else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut start = self.from;
        while start <= self.to {
            let end = match by {
                By::Day => start,
                // 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays.
                By::Week => start + 6 - (start + 3).rem_euclid(7),
                By::Month => {
                    let (y, m, _) = civil_from_days(start);
                    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                    days_from_civil(ny, nm, 1) - 1
                }
            }
            .min(self.to);
            out.push((start, end));
            start = end + 1;
        }
        out
    }
}

/// The answer: the union over the range and over each period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// The range asked for.
    pub range: Range,
    /// Distinct users over the whole range.
    pub users: u64,
    /// Each period's `(first day, last day, distinct users)`.
    pub periods: Vec<(i64, i64, u64)>,
    /// With `group_by=client`: the top clients' users over the range, most first, and the
    /// other clients' together (a union).
    pub clients: Option<(Vec<(String, u64)>, u64)>,
}

/// Unions the HLLs of `hlls` (HLLs of other parameters than the first count by the larger
/// estimate).
fn union_of<'a>(hlls: impl IntoIterator<Item = &'a Hll>) -> Option<Hll> {
    let mut acc: Option<Hll> = None;
    for hll in hlls {
        match &mut acc {
            None => acc = Some(hll.clone()),
            Some(a) if a.params() == hll.params() => {
                a.union(hll).expect("equal parameters");
            }
            Some(a) => {
                if hll.cardinality() > a.cardinality() {
                    *a = hll.clone();
                }
            }
        }
    }
    acc
}

/// Each client's users over `range` (`days`: by client, its stored days), the top `n` and the
/// rest together (the kind's other bucket always among the rest).
pub fn clients_of(
    range: &Range,
    n: usize,
    days: &BTreeMap<authstat_core::dims::Dim, BTreeMap<i64, Hll>>,
) -> (Vec<(String, u64)>, u64) {
    let mut all: Vec<(u64, &authstat_core::dims::Dim, Hll)> = days
        .iter()
        .filter_map(|(client, by_day)| {
            let union = union_of(by_day.range(range.from..=range.to).map(|(_, h)| h))?;
            Some((union.cardinality().unwrap_or(0), client, union))
        })
        .collect();
    all.sort_by(|a, b| {
        (a.1.is_other(), std::cmp::Reverse(a.0), a.1).cmp(&(
            b.1.is_other(),
            std::cmp::Reverse(b.0),
            b.1,
        ))
    });
    let named = all
        .iter()
        .take_while(|(_, client, _)| !client.is_other())
        .take(n)
        .count();
    let top = all[..named]
        .iter()
        .map(|(users, client, _)| (client.id().unwrap_or_default().to_owned(), *users))
        .collect();
    let others = union_of(all[named..].iter().map(|(_, _, u)| u))
        .and_then(|u| u.cardinality())
        .unwrap_or(0);
    (top, others)
}

/// Unions the days' HLLs of `range` (`days`: the stored days, by day); days nobody stored are
/// empty. HLLs of other parameters than the first (nodes configured differently) count by the
/// larger estimate.
pub fn active(range: Range, days: &BTreeMap<i64, Hll>) -> Active {
    let union = |from: i64, to: i64| -> u64 {
        union_of(days.range(from..=to).map(|(_, h)| h))
            .and_then(|a| a.cardinality())
            .unwrap_or(0)
    };
    Active {
        range,
        users: union(range.from, range.to),
        periods: range
            .periods()
            .into_iter()
            .map(|(a, b)| (a, b, union(a, b)))
            .collect(),
        clients: None,
    }
}

/// The JSON body.
pub fn body(a: &Active) -> String {
    let mut value = serde_json::json!({
        "from": day_text(a.range.from),
        "to": day_text(a.range.to),
        "active_users": a.users,
    });
    if let Some((top, others)) = &a.clients {
        let clients: serde_json::Map<String, serde_json::Value> = top
            .iter()
            .map(|(id, n)| (id.clone(), serde_json::json!({ "active_users": n })))
            .collect();
        value["clients"] = clients.into();
        value["other_clients"] = serde_json::json!({ "active_users": others });
    }
    if a.range.by.is_some() {
        value["periods"] = a
            .periods
            .iter()
            .map(|&(f, t, n)| {
                serde_json::json!({"from": day_text(f), "to": day_text(t), "active_users": n})
            })
            .collect();
    }
    value.to_string()
}

authstat_core::family!(
    CLUSTER_ACTIVE_USERS,
    "authstat_cluster_active_users",
    Gauge,
    "{user}",
    true,
    ["days"],
    "Distinct active users over all nodes of today so far (days=\"1\"), the last 7 days and the last 30 days (today included; UTC days; read through the API's cache every minute)."
);

/// The cluster's active users of today, the last 7 and the last 30 days, as last read (a
/// collector of the metric registry).
#[derive(Debug, Default)]
pub struct RecentUsers(std::sync::Mutex<Vec<(u32, u64)>>);

/// The windows [`RecentUsers`] reports, in days (today included).
pub const RECENT_WINDOWS: [u32; 3] = [1, 7, 30];

/// How often [`RecentUsers`] is read.
pub const RECENT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl RecentUsers {
    /// Reads the windows ending `today` (days since 1970-01-01) through the cache.
    pub async fn refresh(&self, state: &crate::ApiState, today: i64) {
        let settings = state.settings();
        let mut figures = Vec::new();
        for days in RECENT_WINDOWS {
            let range = Range {
                from: today - i64::from(days) + 1,
                to: today,
                by: None,
                clients: None,
            };
            match state.cache.active_users(&settings.config, range).await {
                Ok(answer) => figures.push((days, answer.users)),
                Err(e) => tracing::debug!(error = %e, "recent active users not read"),
            }
        }
        if figures.len() == RECENT_WINDOWS.len() {
            *self.0.lock().expect("lock") = figures;
        }
    }

    /// Refreshes every [`RECENT_EVERY`] until the agent stops.
    pub async fn run(self: std::sync::Arc<Self>, state: std::sync::Arc<crate::ApiState>) {
        let mut tick = tokio::time::interval(RECENT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let today = authstat_core::dims::day_of_millis(authstat_core::month::now_ms());
            self.refresh(&state, today).await;
        }
    }

    /// The figures as last read: `(days, users)`.
    pub fn figures(&self) -> Vec<(u32, u64)> {
        self.0.lock().expect("lock").clone()
    }
}

impl authstat_core::metrics::Collector for RecentUsers {
    fn collect(&self, out: &mut authstat_core::metrics::Families) {
        let figures = self.figures();
        if !figures.is_empty() {
            out.push((
                &CLUSTER_ACTIVE_USERS,
                figures
                    .into_iter()
                    .map(|(days, users)| {
                        authstat_core::metrics::Sample::int(vec![days.to_string()], users)
                    })
                    .collect(),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
