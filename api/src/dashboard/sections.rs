//! The sections of the dashboard's page, in the order it shows them: the tiles of this month,
//! the charts, the audit records of the last month, the nodes, and this agent's health.

use std::fmt::Write as _;

use authstat_core::counters::{CounterKey, Outcome};

use super::model::{MonthFigures, PageData, short_grant, utc};
use super::recent::recent_tiles;
use super::svg::{BarChart, Series, escape, per_mille_text};

fn auth(stats: &MonthFigures, outcome: Outcome) -> u64 {
    stats.counters.get(&CounterKey::Authentication(outcome))
}

fn tokens(stats: &MonthFigures) -> u64 {
    stats.counters.tokens.iter().map(|(_, _, n)| n).sum()
}

/// Series per key over the months, ordered by their total, largest first.
fn series_by<F>(months: &[MonthFigures], key: F) -> Vec<Series>
where
    F: Fn(&str, &str) -> String,
{
    let mut totals: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for (i, m) in months.iter().enumerate() {
        for (grant, token_type, n) in m.counters.tokens.iter() {
            totals
                .entry(key(grant, token_type))
                .or_insert_with(|| vec![0; months.len()])[i] += n;
        }
    }
    let mut list: Vec<(String, Vec<u64>)> = totals.into_iter().collect();
    list.sort_by(|a, b| {
        b.1.iter()
            .sum::<u64>()
            .cmp(&a.1.iter().sum::<u64>())
            .then(a.0.cmp(&b.0))
    });
    list.into_iter()
        .enumerate()
        .map(|(i, (name, values))| Series {
            name,
            class: format!("s{}", i % 8),
            values,
        })
        .collect()
}

/// A chart with its legend and its data table.
fn figure(out: &mut String, chart: &BarChart<'_>, legend: &[(String, String, String)]) {
    let _ = write!(out, "<figure>{}", chart.render());
    out.push_str("<figcaption><ul class=\"legend\">");
    for (class, short, full) in legend {
        if short == full {
            let _ = write!(
                out,
                "<li><span class=\"key {class}\"></span>{}</li>",
                escape(short)
            );
        } else {
            let _ = write!(
                out,
                "<li><span class=\"key {class}\"></span><abbr title=\"{}\">{}</abbr></li>",
                escape(full),
                escape(short)
            );
        }
    }
    let _ = write!(
        out,
        "</ul></figcaption><details><summary>Data: {}</summary>{}</details></figure>",
        escape(chart.title),
        chart.table()
    );
}

fn legend_of(series: &[Series], short: fn(&str) -> &str) -> Vec<(String, String, String)> {
    series
        .iter()
        .map(|s| (s.class.clone(), short(&s.name).to_owned(), s.name.clone()))
        .collect()
}

fn same(name: &str) -> &str {
    name
}

/// The tiles: this month's active users (against the same day of last month), authentications,
/// tokens and active clients.
pub(super) fn tiles(out: &mut String, d: &PageData) {
    // Tiles: this month.
    let this = d.months.iter().find(|m| m.month == d.current);
    let before = d
        .current
        .pred()
        .and_then(|p| d.months.iter().find(|m| m.month == p));
    let tile = |out: &mut String, id: &str, label: &str, value: String, note: String| {
        let _ = write!(
            out,
            "<section class=\"tile\" id=\"{id}\"><h2>{label}</h2><p class=\"value\">{value}</p><p class=\"note\">{note}</p></section>"
        );
    };
    out.push_str("<div class=\"tiles\">");
    let mau = this.map_or(0, MonthFigures::monthly_active_users);
    tile(
        out,
        "tile-mau",
        &format!("Monthly active users, {}", d.current),
        mau.to_string(),
        match (d.same_day_last_month, d.current.pred()) {
            (Some((day, then)), Some(last)) => {
                let change = mau as i64 - then as i64;
                let percent = match then {
                    0 => String::new(),
                    then => format!(
                        " ({}{}%)",
                        if change >= 0 { "+" } else { "−" },
                        per_mille_text(change.unsigned_abs() * 1000 / then)
                    ),
                };
                format!(
                    "{}{}{percent} against {then} on day {day} of {last}",
                    if change >= 0 { "+" } else { "−" },
                    change.unsigned_abs()
                )
            }
            _ => match before {
                Some(b) => format!(
                    "{} in {} (whole month); no figure recorded for this day of it",
                    b.monthly_active_users(),
                    b.month
                ),
                None => "this month is not over".into(),
            },
        },
    );
    let (ok, failed) = this.map_or((0, 0), |m| {
        (auth(m, Outcome::Success), auth(m, Outcome::Failure))
    });
    tile(
        out,
        "tile-auth",
        "Authentications this month",
        format!(
            "{ok} <span class=\"ok\">ok</span> · {failed} <span class=\"failed\">failed</span>"
        ),
        match ok + failed {
            0 => "none yet".into(),
            all => format!("{}% failed", per_mille_text(failed * 1000 / all)),
        },
    );
    tile(
        out,
        "tile-tokens",
        "Tokens issued this month",
        this.map_or(0, tokens).to_string(),
        "all grant types".into(),
    );
    tile(
        out,
        "tile-clients",
        "Active clients this month",
        this.map_or(0, |m| m.clients).to_string(),
        "with a successful authorization or token request".into(),
    );
    recent_tiles(out, d, tile);
    out.push_str("</div>");
}

/// The charts of active users, authentications and tokens over the months shown.
pub(super) fn charts(out: &mut String, d: &PageData, range: &str) {
    let columns: Vec<(String, bool)> = d
        .months
        .iter()
        .map(|m| (m.month.to_string(), m.month >= d.current))
        .collect();

    mau_chart(out, d, range, columns.clone());
    auth_chart(out, d, range, columns.clone());
    token_charts(out, d, range, columns);
}

fn mau_chart(out: &mut String, d: &PageData, range: &str, columns: Vec<(String, bool)>) {
    out.push_str("<section><h2>Monthly active users</h2>");
    let mau_chart = BarChart {
        id: "mau",
        title: "Monthly active users per month",
        description: format!(
            "Distinct active users per month, {range}; the current month is not over."
        ),
        columns,
        series: vec![Series {
            name: "active users".into(),
            class: "s0".into(),
            values: d
                .months
                .iter()
                .map(MonthFigures::monthly_active_users)
                .collect(),
        }],
        stacked: false,
        rate: None,
    };
    figure(out, &mau_chart, &legend_of(&mau_chart.series, same));
    out.push_str("</section>");
}

fn auth_chart(out: &mut String, d: &PageData, range: &str, columns: Vec<(String, bool)>) {
    out.push_str("<section><h2>Authentications</h2>");
    let rates = d
        .months
        .iter()
        .map(|m| {
            let (ok, failed) = (auth(m, Outcome::Success), auth(m, Outcome::Failure));
            (ok + failed > 0).then(|| failed * 1000 / (ok + failed))
        })
        .collect();
    let auth_chart = BarChart {
        id: "auth",
        title: "Authentications per month",
        description: format!(
            "Successful and failed authentications per month, and the failure rate on its own axis, {range}."
        ),
        columns,
        series: vec![
            Series {
                name: "success".into(),
                class: "ok".into(),
                values: d.months.iter().map(|m| auth(m, Outcome::Success)).collect(),
            },
            Series {
                name: "failure".into(),
                class: "failed".into(),
                values: d.months.iter().map(|m| auth(m, Outcome::Failure)).collect(),
            },
        ],
        stacked: false,
        rate: Some(("failure rate".into(), rates)),
    };
    let mut legend = legend_of(&auth_chart.series, same);
    legend.push((
        "rate".into(),
        "failure rate (right axis)".into(),
        "failure rate (right axis)".into(),
    ));
    figure(out, &auth_chart, &legend);
    out.push_str("</section>");
}

fn token_charts(out: &mut String, d: &PageData, range: &str, columns: Vec<(String, bool)>) {
    out.push_str("<section><h2>Tokens issued</h2>");
    let by_grant = BarChart {
        id: "grant",
        title: "Tokens issued per month by grant type",
        description: format!("Tokens issued per month, stacked by grant type, {range}."),
        columns: columns.clone(),
        series: series_by(&d.months, |g, _| g.to_owned()),
        stacked: true,
        rate: None,
    };
    figure(out, &by_grant, &legend_of(&by_grant.series, short_grant));
    let by_type = BarChart {
        id: "token-type",
        title: "Tokens issued per month by token type",
        description: format!("Tokens issued per month, stacked by token type, {range}."),
        columns,
        series: series_by(&d.months, |_, t| t.to_owned()),
        stacked: true,
        rate: None,
    };
    figure(out, &by_type, &legend_of(&by_type.series, same));
    out.push_str("</section>");
}

/// The audit records of the last month shown, by action.
pub(super) fn audit_table(out: &mut String, d: &PageData) {
    // Audit records of the last month shown.
    if let Some(m) = d.months.last() {
        let _ = write!(
            out,
            "<section><h2>Audit records by action, {}</h2><table id=\"audit\"><thead><tr>\
             <th scope=\"col\">action</th><th scope=\"col\">success</th><th scope=\"col\">failure</th></tr></thead><tbody>",
            m.month
        );
        if m.counters.audit.is_empty() {
            out.push_str("<tr><td colspan=\"3\">none</td></tr>");
        }
        let mut actions: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        for ((action, outcome), n) in &m.counters.audit {
            let entry = actions.entry(action.to_string()).or_default();
            match outcome {
                Outcome::Success => entry.0 += n,
                Outcome::Failure => entry.1 += n,
            }
        }
        for (action, (ok, failed)) in actions {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{}</th><td>{ok}</td><td>{failed}</td></tr>",
                escape(&action)
            );
        }
        out.push_str("</tbody></table></section>");
    }
}

/// The nodes, each a link to the page of that node.
pub(super) fn nodes_table(out: &mut String, d: &PageData, path: &str, first: &str, last: &str) {
    // The nodes.
    out.push_str(
        "<section><h2>Nodes</h2><table id=\"nodes\"><thead><tr><th scope=\"col\">node</th>\
         <th scope=\"col\">last flush</th><th scope=\"col\">months stored</th></tr></thead><tbody>",
    );
    for n in &d.nodes {
        let silent = n.last_flush_ms > 0 && d.now_ms - n.last_flush_ms > 3_600_000;
        let months = match &n.months {
            Some(list) if list.is_empty() => "none".to_owned(),
            Some(list) => format!(
                "{} ({} to {})",
                list.len(),
                list.first().expect("not empty"),
                list.last().expect("not empty")
            ),
            None => "not looked up".to_owned(),
        };
        let _ = write!(
            out,
            "<tr{cls}><th scope=\"row\"><a href=\"{path}?node={id}&amp;from={first}&amp;to={last}\">{id}</a></th>\
             <td>{flush}{note}</td><td>{months}</td></tr>",
            cls = if silent { " class=\"silent\"" } else { "" },
            id = escape(&n.node),
            flush = utc(n.last_flush_ms),
            note = if silent {
                " (silent for over an hour)"
            } else {
                ""
            },
        );
    }
    out.push_str("</tbody></table></section>");
}

/// This agent's health, and the page's end.
pub(super) fn health_and_footer(out: &mut String, d: &PageData) {
    // The agent's own health.
    let h = &d.health;
    out.push_str("<section><h2>This agent</h2><table id=\"health\"><tbody>");
    let _ = write!(
        out,
        "<tr><th scope=\"row\">backend errors</th><td>{}</td></tr>\
         <tr><th scope=\"row\">failed flushes</th><td>{}</td></tr>",
        h.backend_errors, h.flush_failures
    );
    for (reason, n) in &h.skipped {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">skipped records: {reason}</th><td>{n}</td></tr>"
        );
    }
    for problem in &h.problems {
        let _ = write!(
            out,
            "<tr class=\"problem\"><th scope=\"row\">problem</th><td>{}</td></tr>",
            escape(problem)
        );
    }
    let _ = write!(
        out,
        "</tbody></table></section></main><footer>Made {}; months marked * are not over.</footer></body></html>",
        utc(d.now_ms)
    );
}
