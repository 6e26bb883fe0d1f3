//! `authstat query` (what is stored, merged over all nodes or per node) and `authstat hll
//! inspect`.

use std::path::Path;

use anyhow::Context;
use authstat_core::counters::{CounterKey, Outcome};
use authstat_core::hll::Hll;
use authstat_core::{Month, MonthStats};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::{Failure, load_config};
use crate::cli::QueryFormat;

/// `authstat query`: every stored figure of `months`, merged over all nodes, and per node
/// with `by_node`.
pub async fn query(
    path: &Path,
    months: &[String],
    format: QueryFormat,
    by_node: bool,
    grouping: Option<authstat_api::Grouping>,
) -> Result<(), Failure> {
    let resolved = load_config(path)?;
    let mut wanted = Vec::new();
    for text in months
        .iter()
        .flat_map(|m| m.split(' '))
        .filter(|m| !m.is_empty())
    {
        wanted.push(
            text.parse::<Month>()
                .map_err(|e| Failure::Usage(format!("--month: {e}")))?,
        );
    }
    let store = crate::connect(&resolved).await?;
    let merged = store
        .read_months(&wanted)
        .await
        .context("reading statistics")?;
    let dims = match grouping {
        Some(g) => store
            .read_dims(&wanted, g.kind)
            .await
            .context("reading the figures per client")?,
        None => Vec::new(),
    };
    let mut per_node = Vec::new();
    if by_node {
        for summary in store.nodes().await.context("listing the nodes")? {
            let state = store
                .load_node(&summary.node)
                .await
                .with_context(|| format!("reading node {}", summary.node))?;
            let months: Vec<MonthStats> = state
                .months
                .into_iter()
                .filter(|m| wanted.contains(&m.month))
                .collect();
            per_node.push((summary.node.to_string(), months));
        }
    }
    match format {
        QueryFormat::Json => {
            let mut out = to_json(&merged, &per_node);
            if let (Some(g), Some(Value::Array(months))) = (grouping, out.get_mut("months")) {
                for (month, stats) in months.iter_mut().zip(&merged) {
                    let of_month = dims.iter().find(|d| d.month == stats.month);
                    if let Value::Object(fields) = month {
                        fields.extend(authstat_api::grouped_json(of_month, g));
                    }
                }
            }
            println!("{out}");
        }
        QueryFormat::Table => {
            print_table("all nodes", &merged);
            if let Some(g) = grouping {
                print_groups(g, &dims);
            }
            for (node, months) in &per_node {
                print_table(&format!("node {node}"), months);
            }
        }
    }
    Ok(())
}

/// One month's figures as JSON: everything that is stored.
fn month_json(s: &MonthStats) -> Value {
    let c = &s.counters;
    let mut audit = Map::new();
    for ((action, outcome), n) in &c.audit {
        let entry = audit
            .entry(action.as_str().to_owned())
            .or_insert_with(|| json!({"success": 0, "failure": 0}));
        entry[outcome.as_str()] = json!(n);
    }
    json!({
        "month": s.month.to_string(),
        "monthly_active_users": s.monthly_active_users(),
        "monthly_active_clients": s.monthly_active_clients(),
        "authentications": {
            "success": c.get(&CounterKey::Authentication(Outcome::Success)),
            "failure": c.get(&CounterKey::Authentication(Outcome::Failure)),
        },
        "tokens": c.tokens.as_map(),
        "audit": audit,
    })
}

fn to_json(merged: &[MonthStats], per_node: &[(String, Vec<MonthStats>)]) -> Value {
    let mut out = json!({ "months": merged.iter().map(month_json).collect::<Vec<_>>() });
    if !per_node.is_empty() {
        out["nodes"] = per_node
            .iter()
            .map(|(node, months)| {
                json!({ "node": node, "months": months.iter().map(month_json).collect::<Vec<_>>() })
            })
            .collect();
    }
    out
}

fn print_table(title: &str, stats: &[MonthStats]) {
    println!("{title}");
    println!(
        "{:<8} {:>12} {:>10} {:>10} {:>12}",
        "month", "active users", "auth ok", "auth fail", "tokens"
    );
    for s in stats {
        let tokens: u64 = s.counters.tokens.iter().map(|(_, _, n)| n).sum();
        println!(
            "{:<8} {:>12} {:>10} {:>10} {:>12}",
            s.month.to_string(),
            s.monthly_active_users(),
            s.counters
                .get(&CounterKey::Authentication(Outcome::Success)),
            s.counters
                .get(&CounterKey::Authentication(Outcome::Failure)),
            tokens
        );
        for (grant, token_type, n) in s.counters.tokens.iter() {
            println!("         {grant} / {token_type}: {n}");
        }
        for ((action, outcome), n) in &s.counters.audit {
            println!(
                "         audit {} {}: {n}",
                action.as_str(),
                outcome.as_str()
            );
        }
    }
}

/// `authstat query --from --to [--by]`: the active users of a range of UTC days (and of its
/// periods), merged over all nodes, checked like the API's requests.
pub async fn query_days(
    path: &Path,
    from: &str,
    to: &str,
    by: Option<&str>,
    format: QueryFormat,
) -> Result<(), Failure> {
    use authstat_api::active;
    let resolved = load_config(path)?;
    let mut pairs = vec![
        ("from".to_owned(), from.to_owned()),
        ("to".to_owned(), to.to_owned()),
    ];
    if let Some(by) = by {
        pairs.push(("by".to_owned(), by.to_owned()));
    }
    let first_kept = authstat_core::dims::first_kept_month(
        authstat_core::month::now_ms(),
        resolved.config.daily_retention_days,
    )
    .start_epoch_millis()
    .div_euclid(authstat_core::dims::MILLIS_PER_DAY);
    let range = active::requested_range(&pairs, first_kept, false)
        .map_err(|why| Failure::Usage(format!("--{why}")))?;
    let store = crate::connect(&resolved).await?;
    let mut days = std::collections::BTreeMap::new();
    for month in store
        .read_dims(&range.months(), authstat_core::dims::DimKind::Day)
        .await
        .context("reading the active users of the days")?
    {
        for (dim, stats) in month.dims {
            if let Some(day) = dim.as_day() {
                days.insert(day, stats.users);
            }
        }
    }
    let answer = active::active(range, &days);
    match format {
        QueryFormat::Json => println!("{}", active::body(&answer)),
        QueryFormat::Table => {
            println!(
                "{} to {}: {} active users",
                active::day_text(range.from),
                active::day_text(range.to),
                answer.users
            );
            for (first, last, users) in &answer.periods {
                println!(
                    "  {} to {} {:>12}",
                    active::day_text(*first),
                    active::day_text(*last),
                    users
                );
            }
        }
    }
    Ok(())
}

/// The top clients (realms) of each month and the rest together, as a table.
fn print_groups(grouping: authstat_api::Grouping, dims: &[authstat_core::dims::MonthDims]) {
    let kind = grouping.kind.as_str();
    for month in dims {
        let ranked = month.ranked(grouping.top);
        println!("{kind}s of {}", month.month);
        println!(
            "  {:<40} {:>12} {:>10} {:>10}",
            kind, "active users", "auth ok", "auth fail"
        );
        let others = format!("(all other {kind}s)");
        let rows = ranked
            .top
            .iter()
            .map(|t| (t.dim.id().unwrap_or_default(), t.stats, t.users))
            .chain([(
                others.as_str(),
                &ranked.others,
                ranked.others.active_users(),
            )]);
        for (name, stats, users) in rows {
            let c = &stats.counters;
            println!(
                "  {:<40} {:>12} {:>10} {:>10}",
                name,
                users,
                c.get(&CounterKey::Authentication(Outcome::Success)),
                c.get(&CounterKey::Authentication(Outcome::Failure)),
            );
        }
    }
}

/// `authstat hll inspect`.
pub fn hll_inspect(value: &str) -> Result<(), Failure> {
    let text = value.trim();
    let hex = text.strip_prefix("\\x").or_else(|| text.strip_prefix("0x"));
    let bytes = match hex {
        Some(hex) => decode_hex(hex),
        None if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) => {
            decode_hex(text)
        }
        None => base64::engine::general_purpose::STANDARD.decode(text).ok(),
    }
    .ok_or_else(|| Failure::Usage(format!("'{text}' is neither Base64 nor hex")))?;
    let hll = Hll::from_bytes(&bytes)
        .map_err(|e| Failure::Usage(format!("'{text}' is not a stored HLL: {e}")))?;
    let p = hll.params();
    println!("type:               {}", hll.hll_type());
    println!("log2m:              {} ({} registers)", p.log2m(), p.m());
    println!("regwidth:           {}", p.regwidth());
    println!(
        "explicit threshold: {:?} ({} values)",
        p.explicit(),
        p.explicit_threshold()
    );
    println!(
        "sparse:             {}",
        if p.sparse() { "on" } else { "off" }
    );
    println!("bytes:              {}", bytes.len());
    if let Some(values) = hll.explicit_values() {
        println!("explicit values:    {}", values.len());
    }
    match (hll.nonzero_registers(), hll.cardinality()) {
        (Some(registers), Some(cardinality)) => {
            println!("registers in use:   {registers}");
            println!("cardinality:        {cardinality}");
        }
        _ => println!("cardinality:        undefined"),
    }
    Ok(())
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}
