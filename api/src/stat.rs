//! The stat endpoint's request rules and response formats (janssen-compat.md section 1).

use std::collections::BTreeMap;
use std::fmt::Write;

use authstat_core::counters::{CounterKey, Outcome};
use authstat_core::dims::{DimKind, DimStats, MonthDims};
use authstat_core::{Month, MonthRange, MonthStats};
use serde::{Deserialize, Serialize};

/// The four parameters, from the query string (GET) or the form body (POST).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct StatParams {
    /// Months separated by single spaces.
    pub month: Option<String>,
    /// Start of an inclusive range.
    #[serde(rename = "start-month")]
    pub start_month: Option<String>,
    /// End of an inclusive range.
    #[serde(rename = "end-month")]
    pub end_month: Option<String>,
    /// `json` (default), `jsonmonth` or `openmetrics`.
    pub format: Option<String>,
    /// authstat's: `client` or `realm`, figures per client or realm in each month.
    pub group_by: Option<String>,
    /// authstat's: with `group_by`, how many clients (realms) get figures of their own.
    pub top: Option<String>,
}

/// Figures per client or per realm (`group_by=client|realm&top=N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grouping {
    /// Clients or realms.
    pub kind: DimKind,
    /// How many get figures of their own (the rest are `other_clients`).
    pub top: usize,
}

/// `top` when not given.
pub const DEFAULT_TOP: usize = 100;
/// The largest `top`.
pub const MAX_TOP: usize = 10_000;

/// The grouping a request asks for (`None`: Janssen's answer), or why it is a bad request.
pub fn requested_grouping(p: &StatParams, format: Format) -> Result<Option<Grouping>, String> {
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (group_by, top) = (given(&p.group_by), given(&p.top));
    let Some(group_by) = group_by else {
        return match top {
            Some(_) => Err("top: needs group_by=client or group_by=realm".into()),
            None => Ok(None),
        };
    };
    let kind = DimKind::parse(&group_by).ok_or_else(|| {
        format!(
            "group_by: '{}' is neither client nor realm",
            group_by.chars().take(64).collect::<String>()
        )
    })?;
    let top = match top {
        None => DEFAULT_TOP,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_TOP).contains(&n) => n,
            _ => {
                return Err(format!(
                    "top: '{}' is not a whole number from 1 to {MAX_TOP}",
                    text.chars().take(64).collect::<String>()
                ));
            }
        },
    };
    if format == Format::OpenMetrics {
        return Err("group_by: answered in format json or jsonmonth, not openmetrics".into());
    }
    Ok(Some(Grouping { kind, top }))
}

/// The response format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"response": [...]}` in ascending month order.
    Json,
    /// `{"response": {"yyyyMM": {...}}}`.
    JsonMonth,
    /// Prometheus text 0.0.4 with Janssen's families.
    OpenMetrics,
}

impl Format {
    /// Janssen: anything but `jsonmonth` and `openmetrics` is the flat list; the names are
    /// matched ignoring case (`equalsIgnoreCase`).
    pub fn parse(format: Option<&str>) -> Self {
        match format.map(str::trim) {
            Some(f) if f.eq_ignore_ascii_case("jsonmonth") => Format::JsonMonth,
            Some(f) if f.eq_ignore_ascii_case("openmetrics") => Format::OpenMetrics,
            _ => Format::Json,
        }
    }
}

impl StatParams {
    /// The parameters from decoded name/value pairs. A repeated parameter counts with its first
    /// value, as JAX-RS gives Janssen's `@QueryParam`/`@FormParam` strings; unknown names are
    /// ignored, as there.
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut params = Self::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "month" => &mut params.month,
                "start-month" => &mut params.start_month,
                "end-month" => &mut params.end_month,
                "format" => &mut params.format,
                "group_by" => &mut params.group_by,
                "top" => &mut params.top,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        params
    }
}

/// Why a stat request's months cannot be answered (a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonthsError {
    /// A month that is not `yyyyMM`, or a range that ends before it starts.
    #[error("{parameter}: {source}")]
    Invalid {
        /// `month`, `start-month` or `end-month`.
        parameter: &'static str,
        /// What is wrong with it.
        source: authstat_core::Error,
    },
    /// Both forms, or half a range, or nothing.
    #[error("{0}")]
    Parameters(&'static str),
    /// More months than `api.max_months`.
    #[error("{asked} months asked for, more than the maximum of {max}")]
    TooMany {
        /// How many.
        asked: usize,
        /// `api.max_months`.
        max: u64,
    },
}

/// The months a request asks for (distinct, ascending), or why it is a bad request.
pub fn requested_months(p: &StatParams, max_months: u64) -> Result<Vec<Month>, MonthsError> {
    let blank = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (month, start, end) = (blank(&p.month), blank(&p.start_month), blank(&p.end_month));
    let parse = |parameter: &'static str, text: &str| {
        text.parse::<Month>()
            .map_err(|source| MonthsError::Invalid { parameter, source })
    };
    let months: Vec<Month> = match (month, start, end) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(MonthsError::Parameters(
                "use either month or start-month and end-month, not both",
            ));
        }
        (Some(list), None, None) => {
            // Single spaces separate months (`%20` or `+` in the URL); a comma does not.
            let mut months = Vec::new();
            for text in list.split(' ').filter(|t| !t.is_empty()) {
                months.push(parse("month", text)?);
            }
            months.sort_unstable();
            months.dedup();
            months
        }
        (None, Some(start), Some(end)) => {
            let range = MonthRange::new(parse("start-month", &start)?, parse("end-month", &end)?)
                .map_err(|source| MonthsError::Invalid {
                parameter: "end-month",
                source,
            })?;
            // Checked before the months are listed: a range of centuries is refused unbuilt.
            if range.len() as u64 > max_months {
                return Err(MonthsError::TooMany {
                    asked: range.len(),
                    max: max_months,
                });
            }
            range.iter().collect()
        }
        (None, Some(_), None) => {
            return Err(MonthsError::Parameters("start-month needs end-month"));
        }
        (None, None, Some(_)) => {
            return Err(MonthsError::Parameters("end-month needs start-month"));
        }
        (None, None, None) => {
            return Err(MonthsError::Parameters(
                "give month, or start-month and end-month",
            ));
        }
    };
    if months.len() as u64 > max_months {
        return Err(MonthsError::TooMany {
            asked: months.len(),
            max: max_months,
        });
    }
    Ok(months)
}

/// One month in Janssen's JSON shape (field order as Janssen writes it).
#[derive(Debug, Serialize)]
struct Item<'a> {
    month: String,
    monthly_active_users: u64,
    /// authstat's addition: the distinct clients of successful authorizations and token
    /// requests.
    monthly_active_clients: u64,
    token_count_per_granttype: &'a BTreeMap<String, BTreeMap<String, u64>>,
}

fn item(stats: &MonthStats) -> Item<'_> {
    Item {
        month: stats.month.to_string(),
        monthly_active_users: stats.monthly_active_users(),
        monthly_active_clients: stats.monthly_active_clients(),
        token_count_per_granttype: stats.counters.tokens.as_map(),
    }
}

/// One client's (realm's) figures as the stat API answers them (`users`: its active users).
pub fn dim_json(stats: &DimStats, users: u64) -> serde_json::Value {
    let c = &stats.counters;
    serde_json::json!({
        "monthly_active_users": users,
        "authentications": {
            "success": c.get(&CounterKey::Authentication(Outcome::Success)),
            "failure": c.get(&CounterKey::Authentication(Outcome::Failure)),
        },
        "token_count_per_granttype": c.tokens.as_map(),
    })
}

/// `clients` (or `realms`): the top `grouping.top` by active users, and `other_clients` (or
/// `other_realms`): the rest together, of one month.
pub fn grouped_json(
    dims: Option<&MonthDims>,
    grouping: Grouping,
) -> serde_json::Map<String, serde_json::Value> {
    let empty;
    let dims = match dims {
        Some(dims) => dims,
        None => {
            empty = MonthDims::new(Month::from_yyyymm(197001).expect("a month"));
            &empty
        }
    };
    let ranked = dims.ranked(grouping.top);
    let kind = grouping.kind.as_str();
    let top: serde_json::Map<String, serde_json::Value> = ranked
        .top
        .iter()
        .map(|t| {
            let id = t.dim.id().unwrap_or_default().to_owned();
            (id, dim_json(t.stats, t.users))
        })
        .collect();
    let mut out = serde_json::Map::new();
    out.insert(format!("{kind}s"), top.into());
    let others = &ranked.others;
    out.insert(
        format!("other_{kind}s"),
        dim_json(others, others.active_users()),
    );
    out
}

/// The JSON body for `format` (with figures per client or realm when `grouped`).
pub(crate) fn json_body(
    stats: &[MonthStats],
    format: Format,
    grouped: Option<(Grouping, &[MonthDims])>,
) -> String {
    let Some((grouping, dims)) = grouped else {
        // Janssen's answer, its fields in Janssen's order.
        let value = match format {
            Format::JsonMonth => {
                let map: BTreeMap<String, Item<'_>> = stats
                    .iter()
                    .map(|s| (s.month.to_string(), item(s)))
                    .collect();
                serde_json::json!({ "response": map })
            }
            _ => serde_json::json!({ "response": stats.iter().map(item).collect::<Vec<_>>() }),
        };
        return value.to_string();
    };
    let items = stats.iter().map(|s| {
        let mut value = serde_json::to_value(item(s)).expect("an item serializes");
        if let serde_json::Value::Object(fields) = &mut value {
            let month = dims.iter().find(|d| d.month == s.month);
            fields.extend(grouped_json(month, grouping));
        }
        (s.month.to_string(), value)
    });
    let value = match format {
        Format::JsonMonth => {
            let map: serde_json::Map<String, serde_json::Value> = items.collect();
            serde_json::json!({ "response": map })
        }
        _ => serde_json::json!({ "response": items.map(|(_, v)| v).collect::<Vec<_>>() }),
    };
    value.to_string()
}

/// The token families of Janssen's openmetrics output, with their HELP text.
const TOKEN_FAMILIES: [(&str, &str); 4] = [
    ("access_token", "Access Token"),
    ("id_token", "Id Token"),
    ("refresh_token", "Refresh Token"),
    ("uma_token", "UMA Token"),
];

/// Prometheus text 0.0.4 with Janssen's five families and label names, and authstat's
/// `monthly_active_clients`. Every grant type of a
/// month gets a sample in all four token families (0 where absent).
pub(crate) fn openmetrics_body(stats: &[MonthStats]) -> String {
    let mut out = String::new();
    let monthly = [
        (
            "monthly_active_users",
            "Monthly active users",
            "counter",
            MonthStats::monthly_active_users as fn(&MonthStats) -> u64,
        ),
        (
            "monthly_active_clients",
            "Monthly active clients",
            "gauge",
            MonthStats::monthly_active_clients,
        ),
    ];
    for (family, help, kind, value) in monthly {
        let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
        for s in stats {
            let _ = writeln!(out, "{family}{{month=\"{}\"}} {}", s.month, value(s));
        }
    }
    for (family, help) in TOKEN_FAMILIES {
        let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} counter");
        for s in stats {
            for grant in s.counters.tokens.grant_types() {
                let _ = writeln!(
                    out,
                    "{family}{{month=\"{}\",grantType=\"{}\"}} {}",
                    s.month,
                    escape_label(grant),
                    s.counters.tokens.get(grant, family)
                );
            }
        }
    }
    out
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(month: Option<&str>, start: Option<&str>, end: Option<&str>) -> StatParams {
        StatParams {
            month: month.map(Into::into),
            start_month: start.map(Into::into),
            end_month: end.map(Into::into),
            ..StatParams::default()
        }
    }

    fn months(p: &StatParams) -> Result<Vec<String>, String> {
        requested_months(p, 24)
            .map(|m| m.iter().map(ToString::to_string).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn month_rules_follow_janssen_where_it_is_right() {
        assert_eq!(
            months(&params(Some("202402 202401 202402"), None, None)).unwrap(),
            ["202401", "202402"]
        );
        assert_eq!(
            months(&params(None, Some("202311"), Some("202402")))
                .unwrap()
                .len(),
            4
        );
        assert_eq!(
            months(&params(None, Some("202402"), Some("202402"))).unwrap(),
            ["202402"],
            "start == end"
        );
        let err = |p| months(&p).unwrap_err();
        assert!(
            err(params(Some("202401,202402"), None, None)).contains("'202401,202402'"),
            "comma does not separate"
        );
        assert!(err(params(Some("202413"), None, None)).contains("202413"));
        assert!(err(params(Some("202401"), Some("202401"), Some("202402"))).contains("not both"));
        assert!(err(params(None, Some("202402"), None)).contains("needs end-month"));
        assert!(err(params(None, None, Some("202402"))).contains("needs start-month"));
        assert!(err(params(None, Some("202403"), Some("202402"))).contains("after end"));
        assert!(err(params(None, Some("x"), Some("202402"))).contains("start-month"));
        assert!(err(params(None, Some("202001"), Some("202402"))).contains("maximum of 24"));
        assert!(err(params(None, None, None)).contains("give month"));
        assert_eq!(
            requested_months(&params(None, Some("000101"), Some("999912")), 24),
            Err(MonthsError::TooMany {
                asked: 119_988,
                max: 24
            }),
            "a range is measured, not listed"
        );
    }
}
