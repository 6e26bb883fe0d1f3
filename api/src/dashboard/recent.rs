//! The page's sections of clients and days: the recent days' tiles, daily active users, the
//! top clients.

use std::fmt::Write as _;

use super::model::{GroupRow, PageData};
use super::svg::{LineChart, escape};

/// This week's and the last 30 days' active users, with the stickiness (`tile` writes one).
pub(super) fn recent_tiles(
    out: &mut String,
    d: &PageData,
    tile: impl Fn(&mut String, &str, &str, String, String),
) {
    if let Some(recent) = &d.recent {
        tile(
            out,
            "tile-week",
            "Active users this week",
            recent.week.to_string(),
            "Monday to today (UTC)".into(),
        );
        tile(
            out,
            "tile-30d",
            "Active users, last 30 days",
            recent.thirty.to_string(),
            match recent.stickiness() {
                Some(s) => format!("stickiness {s:.1} % (average daily over 30-day users)"),
                None => "no active user".into(),
            },
        );
    }
}

/// Daily active users of the last 30 days, all nodes merged (a line).
pub(super) fn daily_chart(out: &mut String, d: &PageData) {
    let Some(recent) = &d.recent else {
        return;
    };
    out.push_str("<section><h2>Daily active users, last 30 days</h2>");
    let chart = LineChart {
        id: "dau",
        title: "Daily active users",
        description: format!(
            "Distinct active users of each UTC day of the last 30 days, all nodes; today is not over. Stickiness: {}.",
            recent
                .stickiness()
                .map_or_else(|| "none".to_owned(), |s| format!("{s:.1} %"))
        ),
        points: recent
            .daily
            .iter()
            .map(|&(day, users)| (crate::active::day_text(day)[5..].to_owned(), users))
            .collect(),
    };
    let _ = write!(
        out,
        "<figure>{}<details><summary>Data: daily active users</summary>{}</details></figure></section>",
        chart.render(),
        chart.table()
    );
}

/// The clients with the most active users in the last month shown (all nodes merged), with
/// their authentications and failure rate, and the rest together.
pub(super) fn clients_table(out: &mut String, d: &PageData) {
    let Some(group) = &d.top_clients else {
        return;
    };
    let _ = write!(
        out,
        "<section><h2>Top clients by active users, {}</h2><table id=\"clients\"><thead><tr>\
         <th scope=\"col\">client</th><th scope=\"col\">active users</th>\
         <th scope=\"col\">authentications</th><th scope=\"col\">failed</th>\
         <th scope=\"col\">failure rate</th></tr></thead><tbody>",
        group.month
    );
    if group.rows.is_empty() {
        out.push_str("<tr><td colspan=\"5\">none</td></tr>");
    }
    let mut row = |name: String, r: &GroupRow| {
        let rate = r
            .failure_rate()
            .map_or_else(|| "-".to_owned(), |p| format!("{p:.1} %"));
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{name}</th><td>{}</td><td>{}</td><td>{}</td><td>{rate}</td></tr>",
            r.users,
            r.success + r.failure,
            r.failure
        );
    };
    for r in &group.rows {
        row(escape(r.id.as_deref().unwrap_or("")), r);
    }
    if !group.rows.is_empty()
        && (group.others.users > 0 || group.others.success + group.others.failure > 0)
    {
        row("<em>all other clients</em>".to_owned(), &group.others);
    }
    out.push_str("</tbody></table></section>");
}
