//! What the page shows, read through the stat API's answer cache and the metric registry.

use std::sync::atomic::Ordering;

use authstat_core::Month;
use authstat_core::metrics::{BACKEND_ERRORS, Sample, Value};
use authstat_core::store::StoreError;
use axum::http::StatusCode;

use super::*;

/// Clients in the table of the top clients.
const TOP_CLIENTS: usize = 10;
use crate::ApiState;

/// The pipeline's families the page shows (by name: the pipeline registers them).
pub(super) const RECORDS_SKIPPED: &str = "authstat_records_skipped_total";

pub(super) const FLUSHES: &str = "authstat_flushes_total";

/// Nodes whose months are looked up for the page (each is one read).
pub(super) const NODES_LOOKED_UP: usize = 100;

/// The months of the page: `from`..`to`, by default the 12 months up to the current one.
pub(super) fn month_range(q: &PageQuery, current: Month, max: u64) -> Result<Vec<Month>, String> {
    let parse = |name: &str, v: &Option<String>| -> Result<Option<Month>, String> {
        match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(text) => text
                .parse::<Month>()
                .map(Some)
                .map_err(|e| format!("{name}: {e}")),
        }
    };
    let to = parse("to", &q.to)?.unwrap_or(current);
    let from = match parse("from", &q.from)? {
        Some(from) => from,
        None => {
            let mut from = to;
            for _ in 0..11 {
                from = from.pred().unwrap_or(from);
            }
            from
        }
    };
    let range = from.to(to).map_err(|e| e.to_string())?;
    if range.len() as u64 > max.min(120) {
        return Err(format!("at most {} months at once", max.min(120)));
    }
    Ok(range.iter().collect())
}

pub(super) async fn page_data(
    state: &ApiState,
    months: Vec<Month>,
    node: Option<String>,
    current: Month,
    now_ms: i64,
    path: &str,
    logout: bool,
) -> Result<PageData, (StatusCode, String)> {
    let failed = |e, counted| backend_failed(state, &e, counted);
    let unavailable = |e| failed(e, false);
    let summaries = state.store.nodes().await.map_err(unavailable)?;
    if let Some(id) = &node
        && !summaries.iter().any(|s| s.node.as_str() == id)
    {
        return Err((StatusCode::NOT_FOUND, format!("There is no node {id}.")));
    }
    // The merged months through the stat API's cache (or one node's own), and every listed
    // node's months, read at once.
    let settings = state.settings();
    let stats = async {
        match &node {
            None => merged(state, &settings.config, &months).await,
            Some(id) => {
                let id = authstat_core::NodeId::stored(id.clone()).expect("a listed node");
                state.store.load_node(&id).await.map(|s| {
                    (
                        s.months.iter().map(MonthFigures::of).collect::<Vec<_>>(),
                        None,
                    )
                })
            }
        }
    };
    let mut loads = tokio::task::JoinSet::new();
    for (i, s) in summaries.iter().take(NODES_LOOKED_UP).enumerate() {
        let (store, id) = (state.store.clone(), s.node.clone());
        loads.spawn(async move { (i, store.load_node(&id).await) });
    }
    let (stored, loaded) = tokio::join!(stats, loads.join_all());
    let mut listed: Vec<Option<_>> = (0..summaries.len()).map(|_| None).collect();
    for (i, result) in loaded {
        listed[i] = Some(result);
    }
    let (stored, top_clients) = stored.map_err(|e| failed(e, node.is_none()))?;
    let filled = fill(&months, &stored);
    let nodes = node_lines(&summaries, listed).map_err(unavailable)?;
    let same_day_last_month = match node {
        None => same_day_last_month(state, current, now_ms)
            .await
            .map_err(unavailable)?,
        Some(_) => None,
    };
    let health = health(state);
    let recent = match node {
        None => Some(recent_days(state, now_ms).await.map_err(unavailable)?),
        Some(_) => None,
    };
    Ok(PageData {
        months: filled,
        current,
        node,
        nodes,
        health,
        path: path.to_owned(),
        css_version: css_version().to_owned(),
        logout,
        now_ms,
        same_day_last_month,
        top_clients,
        recent,
    })
}

/// The months' figures over all nodes and the top clients of the last one (through the stat
/// API's cache).
async fn merged(
    state: &ApiState,
    config: &authstat_config::ApiConfig,
    months: &[Month],
) -> Result<(Vec<MonthFigures>, Option<MonthGroup>), StoreError> {
    let grouping = crate::stat::Grouping {
        kind: authstat_core::dims::DimKind::Client,
        top: TOP_CLIENTS,
    };
    let last = months.last().copied();
    let answer = state
        .cache
        .answer(config, months.to_vec(), Some(grouping))
        .await?;
    let top = answer.groups().iter().find(|g| Some(g.month) == last);
    let top = top.cloned().or_else(|| {
        last.map(|month| MonthGroup {
            month,
            rows: Vec::new(),
            others: GroupRow::default(),
        })
    });
    Ok((answer.figures().to_vec(), top))
}

/// The last 30 days' daily active users, this week's and the 30 days' (through the cache).
async fn recent_days(state: &ApiState, now_ms: i64) -> Result<RecentDays, StoreError> {
    use crate::active::{By, Range};
    let settings = state.settings();
    let today = authstat_core::dims::day_of_millis(now_ms);
    let month = Range {
        from: today - 29,
        to: today,
        by: Some(By::Day),
        clients: None,
    };
    let thirty = state.cache.active_users(&settings.config, month).await?;
    // 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays.
    let week = Range {
        from: today - (today + 3).rem_euclid(7),
        to: today,
        by: None,
        clients: None,
    };
    let week = state.cache.active_users(&settings.config, week).await?;
    Ok(RecentDays {
        daily: thirty.periods.iter().map(|&(d, _, n)| (d, n)).collect(),
        week: week.users,
        thirty: thirty.users,
    })
}

/// A failed read of the backend, as the page answers it (counted, unless the cache counted it).
fn backend_failed(
    state: &ApiState,
    e: &authstat_core::store::StoreError,
    counted: bool,
) -> (StatusCode, String) {
    if !counted {
        state
            .api_stats
            .backend_errors
            .fetch_add(1, Ordering::Relaxed);
    }
    tracing::warn!(error = %e, "dashboard: backend unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "The statistics backend is unavailable; try again shortly.".to_owned(),
    )
}

/// Every month of `months`, with its figures where `stored` has them.
fn fill(months: &[Month], stored: &[MonthFigures]) -> Vec<MonthFigures> {
    months
        .iter()
        .map(|&m| {
            stored
                .iter()
                .find(|s| s.month == m)
                .cloned()
                .unwrap_or_else(|| MonthFigures::empty(m))
        })
        .collect()
}

/// The nodes' lines: each node with its months when they were looked up.
fn node_lines(
    summaries: &[authstat_core::store::NodeSummary],
    listed: Vec<Option<Result<authstat_core::store::NodeState, StoreError>>>,
) -> Result<Vec<NodeLine>, StoreError> {
    let mut nodes = Vec::with_capacity(summaries.len());
    for (s, loaded) in summaries.iter().zip(listed) {
        let months = match loaded {
            Some(loaded) => Some(loaded?.months.iter().map(|m| m.month).collect()),
            None => None,
        };
        nodes.push(NodeLine {
            node: s.node.to_string(),
            last_flush_ms: s.updated_at_ms,
            months,
        });
    }
    Ok(nodes)
}

/// Last month's users up to the same day (the largest day recorded up to it: a shorter month).
async fn same_day_last_month(
    state: &ApiState,
    current: Month,
    now_ms: i64,
) -> Result<Option<(u32, u64)>, StoreError> {
    let Some(last) = current.pred() else {
        return Ok(None);
    };
    let day = authstat_core::month::day_of_month(now_ms);
    Ok(state
        .store
        .daily_users(last)
        .await?
        .range(..=day)
        .next_back()
        .map(|(&day, &users)| (day, users)))
}

/// The agent's own health, from the metric registry's snapshot (what `/metrics` shows) and
/// the agent's problems now.
pub(super) fn health(state: &ApiState) -> Health {
    let snapshot = state.registry.snapshot();
    let int = |sample: &Sample| match sample.value {
        Value::Int(n) => n,
        Value::Histogram(_) => 0,
    };
    let total = |name: &str, label: Option<&str>| -> u64 {
        snapshot
            .samples(name)
            .iter()
            .filter(|s| label.is_none_or(|l| s.labels.first().is_some_and(|x| x == l)))
            .map(int)
            .sum()
    };
    Health {
        skipped: snapshot
            .samples(RECORDS_SKIPPED)
            .iter()
            .filter_map(|s| Some((s.labels.first()?.clone(), int(s))))
            .filter(|(_, n)| *n > 0)
            .collect(),
        backend_errors: total(BACKEND_ERRORS.name, None),
        flush_failures: total(FLUSHES, Some("failure")),
        problems: state.status.problems(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_range_is_twelve_months() {
        let current: Month = "202403".parse().unwrap();
        let months = month_range(&PageQuery::default(), current, 120).unwrap();
        assert_eq!(months.len(), 12);
        assert_eq!(months[0].to_string(), "202304");
        let q = PageQuery {
            from: Some("202001".into()),
            to: Some("202403".into()),
            node: None,
        };
        assert!(
            month_range(&q, current, 24)
                .unwrap_err()
                .contains("at most 24")
        );
        let bad = PageQuery {
            from: Some("2024-01".into()),
            ..PageQuery::default()
        };
        assert!(
            month_range(&bad, current, 24)
                .unwrap_err()
                .starts_with("from:")
        );
    }
}
