//! `type: janssen_stat_entries`: Janssen's own statistics, read from its database.
//!
//! Janssen counts MAU and tokens per grant type in-process and writes them, one row per
//! auth-server node and month, into `jansStatEntry` (see `row.rs`), overwriting the row every
//! few minutes: each row is a running total. This source reads the rows of the configured
//! months at every poll and hands each changed row to the pipeline as a
//! [`SourceEvent::Snapshot`] of the foreign node `authstat:janssen:<doc_id>`, which the store
//! replaces (never adds): reading a row twice, or a row that grew, leaves exactly its values
//! stored. It keeps no position: every poll reads the rows whole.

mod db;
mod row;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::options::{OptionError, decode, positive};
use authstat_core::Month;
use authstat_core::month::now_ms;
use authstat_core::source::{Origin, Source, SourceEvent, SourceProblem, SourceStatus};
use authstat_core::store::{Snapshot, SourcePosition};

pub use db::Database;
pub use row::{Converted, RowError, StatEntry};

use crate::registry::{BuildError, SourceSpec};

/// The `type` name of this source kind.
pub(crate) const JANSSEN_STAT_ENTRIES: &str = "janssen_stat_entries";

/// The options of `type: janssen_stat_entries`: the rows Janssen writes into its own database
/// (one per auth-server node and month: its MAU as an HLL, its tokens per grant type), stored
/// as snapshots that replace what was read before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JanssenStatEntriesConfig {
    /// Janssen's database: `postgres://user:password@host/db` or `mysql://…` (MySQL and
    /// MariaDB). Use `${VAR}` for the password; it is never logged.
    pub url: String,
    /// The table (Janssen's is `jansStatEntry`).
    #[serde(default = "default_table")]
    pub table: String,
    /// Which months are read at every poll.
    #[serde(default)]
    pub months: StatMonths,
    /// How often the table is read, in milliseconds (Janssen rewrites its rows every
    /// `statTimerIntervalInSeconds`, 15 minutes by default).
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
}

fn default_table() -> String {
    "jansStatEntry".into()
}

fn default_poll_interval_ms() -> u64 {
    300_000
}

/// Which months of Janssen's statistics are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StatMonths {
    /// The current and the previous month (by the UTC clock): what Janssen still updates.
    #[default]
    Recent,
    /// Every month in the table (the history; `authstat import janssen` reads it once).
    All,
}

impl JanssenStatEntriesConfig {
    /// Decodes and checks the options of a `janssen_stat_entries` source.
    pub fn decode(options: &serde_yaml::Mapping) -> Result<Self, OptionError> {
        let o: Self = decode(options)?;
        if !(o.url.starts_with("postgres://")
            || o.url.starts_with("postgresql://")
            || o.url.starts_with("mysql://"))
        {
            return Err(OptionError::new(
                "url",
                format!(
                    "`url` of source type {JANSSEN_STAT_ENTRIES} must start with postgres://, \
                     postgresql:// or mysql://, not {}",
                    authstat_config::redact_url(&o.url)
                ),
            ));
        }
        if o.table.is_empty()
            || !o
                .table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(OptionError::new(
                "table",
                format!(
                    "`table` must be a plain table name (letters, digits, `_`), not '{}'",
                    o.table
                ),
            ));
        }
        positive("poll_interval_ms", o.poll_interval_ms)?;
        Ok(o)
    }
}

/// Checks the options of a `janssen_stat_entries` source.
pub(super) fn check(options: &serde_yaml::Mapping) -> Result<(), OptionError> {
    JanssenStatEntriesConfig::decode(options).map(|_| ())
}

/// Builds a `janssen_stat_entries` source.
pub(super) fn build(spec: SourceSpec<'_>) -> Result<Box<dyn Source>, BuildError> {
    let config = &JanssenStatEntriesConfig::decode(&spec.config.options)
        .map_err(|e| spec.option_error(&e))?;
    Ok(Box::new(JanssenStatEntries::new(
        spec.config.name.clone(),
        config,
    )))
}

/// The months Janssen still updates: the current one and the one before (UTC).
pub(crate) fn recent_months(now_ms: i64) -> Vec<Month> {
    let Ok(now) = Month::from_epoch_millis(now_ms) else {
        return Vec::new();
    };
    now.pred().into_iter().chain([now]).collect()
}

/// What one read of a row gave, for the pipeline.
enum Item {
    Snapshot(Snapshot),
    Bad { doc_id: String, error: RowError },
}

/// The source (see the module docs).
pub(crate) struct JanssenStatEntries {
    name: String,
    months: StatMonths,
    poll_interval: Duration,
    db: Database,
    last_read: Option<Instant>,
    /// What each row held when it was last handed out (a hash): unchanged rows are not handed
    /// out again (storing them again would change nothing but the data version).
    seen: HashMap<String, u64>,
    ready: Vec<Item>,
    /// Why the last read failed, until one succeeds (the pipeline's scans between two reads
    /// must still see it).
    problem: Option<SourceProblem>,
}

impl std::fmt::Debug for JanssenStatEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JanssenStatEntries")
            .field("name", &self.name)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl JanssenStatEntries {
    /// A source over `config`'s table; nothing is read before the first poll.
    pub fn new(name: String, config: &JanssenStatEntriesConfig) -> Self {
        Self {
            name,
            months: config.months,
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            db: Database::new(&config.url, &config.table),
            last_read: None,
            seen: HashMap::new(),
            ready: Vec::new(),
            problem: None,
        }
    }

    /// Reads the table now and queues every row that changed since it was last handed out.
    fn read_table(&mut self) -> Result<(), SourceProblem> {
        let months = match self.months {
            StatMonths::Recent => Some(recent_months(now_ms())),
            StatMonths::All => None,
        };
        let rows = self
            .db
            .read(months.as_deref())
            .map_err(|message| SourceProblem {
                place: self.db.describe(),
                reason: "unavailable",
                message,
            })?;
        // Rows no longer read (months that left the window) are forgotten.
        let read: std::collections::HashSet<&str> =
            rows.iter().map(|r| r.doc_id.as_str()).collect();
        self.seen.retain(|doc_id, _| read.contains(doc_id.as_str()));
        for row in rows {
            let digest = digest(&row);
            if self.seen.get(&row.doc_id) == Some(&digest) {
                continue;
            }
            self.seen.insert(row.doc_id.clone(), digest);
            match row.to_snapshot() {
                Ok(Converted {
                    snapshot,
                    bad_users,
                }) => {
                    if let Some(error) = bad_users {
                        self.ready.push(Item::Bad {
                            doc_id: row.doc_id.clone(),
                            error,
                        });
                    }
                    // Rows of other months than asked for (legacy rows without jansData).
                    let wanted = months
                        .as_ref()
                        .is_none_or(|m| m.contains(&snapshot.months[0].month));
                    if wanted {
                        self.ready.push(Item::Snapshot(snapshot));
                    }
                }
                Err(error) => self.ready.push(Item::Bad {
                    doc_id: row.doc_id,
                    error,
                }),
            }
        }
        Ok(())
    }
}

fn digest(row: &StatEntry) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    row.hash(&mut h);
    h.finish()
}

impl Source for JanssenStatEntries {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    fn inputs(&self) -> Vec<String> {
        vec![self.db.describe()]
    }

    /// Reads the table when the poll interval has passed since the last read (the pipeline
    /// also scans on other occasions); until a read succeeds, the last failure stands.
    fn poll(&mut self) -> Vec<SourceProblem> {
        let due = self
            .last_read
            .is_none_or(|at| at.elapsed() >= self.poll_interval);
        if due {
            self.last_read = Some(Instant::now());
            self.problem = self.read_table().err();
        }
        self.problem.iter().cloned().collect()
    }

    fn read(
        &mut self,
        _budget: usize,
        on_event: &mut dyn FnMut(SourceEvent<'_>),
    ) -> (usize, Vec<SourceProblem>) {
        let items = std::mem::take(&mut self.ready);
        let handed = items.len();
        for item in items {
            match item {
                Item::Snapshot(snapshot) => on_event(SourceEvent::Snapshot(snapshot)),
                Item::Bad { doc_id, error } => {
                    let place = format!("{} row {doc_id}: {}", self.db.describe(), error.message);
                    on_event(SourceEvent::Skipped {
                        kind: error.kind,
                        origin: Origin {
                            place: &place,
                            offset: 0,
                        },
                    });
                }
            }
        }
        (handed, Vec::new())
    }

    fn positions(&self) -> Vec<SourcePosition> {
        Vec::new()
    }

    fn status(&self) -> SourceStatus {
        SourceStatus {
            open: u64::from(self.db.connected()),
            lag: self.ready.len() as u64,
        }
    }
}

/// Every row of the table, as snapshots (`authstat import`; reads as Janssen does: a row whose
/// users do not decode counts no users, with a warning).
pub(super) fn history(options: &serde_yaml::Mapping) -> Result<crate::registry::History, String> {
    let config = JanssenStatEntriesConfig::decode(options).map_err(|e| e.message)?;
    let mut db = Database::new(&config.url, &config.table);
    let rows = db.read(None)?;
    let items = rows
        .iter()
        .map(|row| crate::registry::HistoryItem {
            label: format!("row {}", row.doc_id),
            result: match row.to_snapshot() {
                Ok(Converted {
                    snapshot,
                    bad_users,
                }) => Ok((snapshot, bad_users.map(|b| b.message))),
                Err(e) => Err(e.message),
            },
        })
        .collect();
    Ok(crate::registry::History {
        place: db.describe(),
        items,
    })
}

/// How Janssen's monthly active users combine with authstat's under the agent's `hll`, in
/// words (what `check-config` says).
pub(super) fn users_rule(config: &authstat_config::AgentConfig) -> String {
    let hll = &config.hll;
    use authstat_core::ForeignUsers;
    match ForeignUsers::for_janssen(hll.hash, &hll.params()) {
        ForeignUsers::Union => "Janssen's monthly active users: unioned with authstat's (both \
             hash with java_string_hashcode into HLL(15, 5)); token counts are added"
            .to_owned(),
        ForeignUsers::Larger => format!(
            "Janssen's monthly active users: kept apart, since authstat hashes with {} into \
             HLL({}, {}) and Janssen with java_string_hashcode into HLL(15, 5): a month's MAU \
             is the larger of the two estimates (never their sum); token counts are added. \
             For a union, set hll.hash: java_string_hashcode, log2m: 15, regwidth: 5 \
             (docs/janssen.md)",
            hll.hash, hll.log2m, hll.regwidth
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database that cannot be reached is a problem of every poll until a read succeeds,
    /// also of the polls between two reads; the password is never in it.
    #[cfg(feature = "postgres")]
    #[test]
    fn a_failed_read_stands_until_the_next_one() {
        // Port 1 on loopback: refused at once.
        let config = JanssenStatEntriesConfig {
            url: "postgres://reader:s3cret@127.0.0.1:1/jans".into(),
            table: "jansStatEntry".into(),
            months: StatMonths::Recent,
            poll_interval_ms: 3_600_000,
        };
        let mut source = JanssenStatEntries::new("janssen".into(), &config);
        let first = source.poll();
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].reason, "unavailable");
        assert!(!first[0].to_string().contains("s3cret"), "{}", first[0]);
        assert!(
            first[0].to_string().contains("jansStatEntry"),
            "{}",
            first[0]
        );
        assert_eq!(source.poll(), first, "not read again within the interval");
        assert_eq!(source.status().open, 0);
        let mut events = 0;
        assert_eq!(source.read(1 << 20, &mut |_| events += 1).0, 0);
        assert_eq!(events, 0);
    }

    #[test]
    fn recent_months_are_this_one_and_the_one_before() {
        let feb: Month = "202402".parse().unwrap();
        let months = recent_months(feb.start_epoch_millis() + 1);
        assert_eq!(months, ["202401".parse().unwrap(), feb]);
        let jan: Month = "202401".parse().unwrap();
        assert_eq!(
            recent_months(jan.start_epoch_millis()),
            ["202312".parse().unwrap(), jan]
        );
    }
}
