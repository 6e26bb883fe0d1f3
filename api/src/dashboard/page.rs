//! The dashboard page: server-rendered HTML, charts as inline SVG (`svg.rs`), no script.

use std::fmt::Write as _;

use authstat_core::Month;
use authstat_core::counters::Counters;

use super::sections::{audit_table, charts, health_and_footer, nodes_table, tiles};
use super::svg::escape;

/// One month's figures: its distinct users and its counters (no HLL is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthFigures {
    /// The month.
    pub month: Month,
    /// Distinct active users.
    pub users: u64,
    /// Counters.
    pub counters: Counters,
}

impl MonthFigures {
    /// The figures of `stats`.
    pub fn of(stats: &authstat_core::MonthStats) -> Self {
        Self {
            month: stats.month,
            users: stats.monthly_active_users(),
            counters: stats.counters.clone(),
        }
    }

    /// Nothing stored for `month`.
    pub fn empty(month: Month) -> Self {
        Self {
            month,
            users: 0,
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
}

/// A grant type's short name (`urn:…:device_code` → `device_code`).
pub fn short_grant(grant: &str) -> &str {
    if grant.starts_with("urn:") {
        grant.rsplit(':').next().unwrap_or(grant)
    } else {
        grant
    }
}

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

/// The page.
pub fn render(d: &PageData) -> String {
    let mut out = String::with_capacity(16 << 10);
    let path = escape(&d.path);
    let scope = match &d.node {
        Some(node) => format!("node {}", escape(node)),
        None => "all nodes".to_owned(),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>authstat — {scope}</title>\
         <link rel=\"icon\" href=\"{path}/favicon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"{path}/style.css?v={v}\"></head><body>\
         <header><h1>authstat <small>{scope}</small></h1>",
        v = escape(&d.css_version)
    );
    if d.logout {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{path}/logout\"><button type=\"submit\">Log out</button></form>"
        );
    }
    out.push_str("</header><main>");

    // The month range and the node, as a plain GET form.
    let first = d
        .months
        .first()
        .map(|m| m.month.to_string())
        .unwrap_or_default();
    let last = d
        .months
        .last()
        .map(|m| m.month.to_string())
        .unwrap_or_default();
    let _ = write!(
        out,
        "<form class=\"range\" method=\"get\" action=\"{path}\">\
         <label>From <input name=\"from\" value=\"{first}\" pattern=\"[0-9]{{6}}\" size=\"6\" inputmode=\"numeric\"></label>\
         <label>to <input name=\"to\" value=\"{last}\" pattern=\"[0-9]{{6}}\" size=\"6\" inputmode=\"numeric\"></label>\
         <label>Node <select name=\"node\"><option value=\"\">all nodes</option>"
    );
    for n in &d.nodes {
        let selected = if d.node.as_deref() == Some(n.node.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<option value=\"{id}\"{selected}>{id}</option>",
            id = escape(&n.node)
        );
    }
    out.push_str("</select></label><button type=\"submit\">Show</button></form>");

    tiles(&mut out, d);
    let range = format!("{first} to {last}, {scope}");
    charts(&mut out, d, &range);
    audit_table(&mut out, d);
    nodes_table(&mut out, d, &path, &first, &last);
    health_and_footer(&mut out, d);
    out
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
