//! `authstat import`: everything a configured source's system keeps (Janssen's own statistics
//! rows), stored once as snapshots (the history that a running source, reading only recent
//! months, does not read). Idempotent: a snapshot replaces what is stored for its row.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use authstat_core::store::{Snapshot, SnapshotOutcome, StatStore, StoreError};
use authstat_plugins::registry::{History, HistoryItem};

use super::{Failure, load_config};

/// Progress is printed at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Attempts to store one snapshot while the backend is unavailable.
const ATTEMPTS: u32 = 5;

/// `authstat import [FROM] [--source NAME]`.
pub async fn import(path: &Path, from: Option<&str>, source: Option<&str>) -> Result<(), Failure> {
    let resolved = load_config(path)?;
    let (name, read) = pick_source(&resolved, from, source)?;
    let store = crate::connect(&resolved).await?;
    eprintln!("authstat import: reading everything source {name} keeps");
    let History { place, items } = tokio::task::spawn_blocking(read)
        .await
        .context("reading the source's history")?
        .map_err(|e| Failure::Other(anyhow!(e)))?;
    let total = items.len();
    eprintln!("authstat import: {total} rows read from {place}; storing them");
    let mut report = Report::default();
    let mut last_progress = Instant::now();
    for (done, HistoryItem { label, result }) in items.into_iter().enumerate() {
        match result {
            Ok((snapshot, warning)) => {
                if let Some(warning) = warning {
                    eprintln!("authstat import: {label}: {warning}");
                    report.no_users += 1;
                }
                report
                    .months
                    .extend(snapshot.months.iter().map(|m| m.month));
                match put(store.as_ref(), &snapshot).await? {
                    SnapshotOutcome::Applied => report.applied += 1,
                    SnapshotOutcome::Stale => report.stale += 1,
                }
            }
            Err(why) => {
                eprintln!("authstat import: {label} skipped: {why}");
                report.skipped += 1;
            }
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            eprintln!("authstat import: {}/{total} rows", done + 1);
            last_progress = Instant::now();
        }
    }
    println!(
        "imported {total} rows of {place}: {} stored, {} already stored in a newer version, \
         {} skipped; {} months; {} rows with unreadable users (stored without users, as Janssen \
         reads them)",
        report.applied,
        report.stale,
        report.skipped,
        report.months.len(),
        report.no_users,
    );
    Ok(())
}

#[derive(Default)]
struct Report {
    applied: usize,
    stale: usize,
    skipped: usize,
    no_users: usize,
    months: std::collections::BTreeSet<authstat_core::Month>,
}

/// Reads a source's history (blocking).
type Read = Box<dyn FnOnce() -> Result<History, String> + Send>;

/// The source to import from: of a kind that keeps a history, of the type `from` names (or
/// starts with), named `name`; it must be the only one that fits.
fn pick_source(
    resolved: &crate::resolve::Resolved,
    from: Option<&str>,
    name: Option<&str>,
) -> Result<(String, Read), Failure> {
    let mut candidates: Vec<(String, Read)> = Vec::new();
    for source in &resolved.config.sources {
        let Some(kind) = resolved
            .plugins
            .source_kinds()
            .iter()
            .find(|k| k.name == source.kind)
        else {
            continue;
        };
        let Some(history) = kind.history else {
            continue;
        };
        if from.is_some_and(|f| !kind.name.starts_with(f)) || name.is_some_and(|n| n != source.name)
        {
            continue;
        }
        let options = source.options.clone();
        candidates.push((source.name.clone(), Box::new(move || history(&options))));
    }
    let importable: Vec<&str> = resolved
        .plugins
        .source_kinds()
        .iter()
        .filter(|k| k.history.is_some())
        .map(|k| k.name)
        .collect();
    let wanted = match (from, name) {
        (Some(from), Some(name)) => format!("source {name} of a type {from}…"),
        (Some(from), None) => format!("source of a type {from}…"),
        (None, Some(name)) => format!("source {name}"),
        (None, None) => "source".to_owned(),
    };
    match candidates.len() {
        1 => Ok(candidates.pop().expect("one")),
        0 => Err(Failure::Usage(format!(
            "the configuration has no {wanted} to import from (the types that keep statistics \
             of their own: {}; docs/janssen.md)",
            importable.join(", ")
        ))),
        _ => Err(Failure::Usage(format!(
            "several sources to import from ({}): choose one with --source",
            candidates
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Stores `snapshot`, trying again a few times while the backend is unavailable.
async fn put(store: &dyn StatStore, snapshot: &Snapshot) -> Result<SnapshotOutcome, Failure> {
    let mut attempt = 1;
    loop {
        match store.put_snapshot(snapshot).await {
            Ok(outcome) => return Ok(outcome),
            Err(e @ StoreError::Unavailable { .. }) if attempt < ATTEMPTS => {
                eprintln!("authstat import: {e}; trying again");
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => {
                return Err(Failure::Other(anyhow!(e).context(format!(
                    "storing {}; run the import again: what is stored stays, and nothing is \
                     counted twice",
                    snapshot.node
                ))));
            }
        }
    }
}
