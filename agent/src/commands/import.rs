//! `authstat import janssen`: every month of Janssen's own statistics rows, stored once as
//! snapshots (the history an agent's `janssen_stat_entries` source, reading only recent months,
//! does not read). Idempotent: a snapshot replaces what is stored for its row.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use authstat_core::store::{Snapshot, SnapshotOutcome, StatStore, StoreError};
use authstat_plugins::sources::janssen::{
    Converted, Database, JANSSEN_STAT_ENTRIES, JanssenStatEntriesConfig,
};

use super::{Failure, load_config};

/// Progress is printed at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Attempts to store one snapshot while the backend is unavailable.
const ATTEMPTS: u32 = 5;

/// `authstat import janssen`.
pub async fn import_janssen(path: &Path, source: Option<&str>) -> Result<(), Failure> {
    let resolved = load_config(path)?;
    let config = pick_source(&resolved.config.sources, source)?;
    let store = crate::connect(&resolved).await?;
    let mut db = Database::new(&config.url, &config.table);
    let place = db.describe();
    eprintln!("authstat import janssen: reading every row of {place}");
    let rows = tokio::task::spawn_blocking(move || db.read(None))
        .await
        .context("reading Janssen's rows")?
        .map_err(|e| Failure::Other(anyhow!(e)))?;
    let total = rows.len();
    eprintln!("authstat import janssen: {total} rows read; storing them");
    let mut report = Report::default();
    let mut last_progress = Instant::now();
    for (done, row) in rows.into_iter().enumerate() {
        match row.to_snapshot() {
            Ok(Converted {
                snapshot,
                bad_users,
            }) => {
                if let Some(bad) = bad_users {
                    eprintln!(
                        "authstat import janssen: row {}: {}",
                        row.doc_id, bad.message
                    );
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
            Err(e) => {
                eprintln!(
                    "authstat import janssen: row {} skipped: {}",
                    row.doc_id, e.message
                );
                report.skipped += 1;
            }
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            eprintln!("authstat import janssen: {}/{total} rows", done + 1);
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

/// The `janssen_stat_entries` source to import from: the one named, or the only one.
fn pick_source(
    sources: &[authstat_config::SourceConfig],
    name: Option<&str>,
) -> Result<JanssenStatEntriesConfig, Failure> {
    let candidates: Vec<(&str, JanssenStatEntriesConfig)> = sources
        .iter()
        .filter(|s| s.kind == JANSSEN_STAT_ENTRIES && name.is_none_or(|n| n == s.name))
        // Checked when the configuration was loaded.
        .filter_map(|s| {
            Some((
                s.name.as_str(),
                JanssenStatEntriesConfig::decode(&s.options).ok()?,
            ))
        })
        .collect();
    match (candidates.as_slice(), name) {
        ([(_, config)], _) => Ok(config.clone()),
        ([], Some(name)) => Err(Failure::Usage(format!(
            "--source {name}: the configuration has no janssen_stat_entries source of that name"
        ))),
        ([], None) => Err(Failure::Usage(
            "the configuration has no source of type janssen_stat_entries (docs/janssen.md)".into(),
        )),
        (many, _) => Err(Failure::Usage(format!(
            "several janssen_stat_entries sources ({}): choose one with --source",
            many.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
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
                eprintln!("authstat import janssen: {e}; trying again");
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
