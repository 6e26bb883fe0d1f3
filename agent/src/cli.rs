//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

/// authstat: usage statistics (monthly active users, authentications, tokens) from an auth
/// server's audit log, served through the Janssen-compatible stat API.
#[derive(Debug, Parser)]
#[command(name = "authstat", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: read the configured logs, store statistics, serve the API.
    Run {
        /// The configuration file.
        #[arg(long, short, env = "AUTHSTAT_CONFIG")]
        config: PathBuf,
        /// Take the node id over from another agent whose claim has not expired yet (a
        /// replacement after a crash). That agent's flushes are refused from then on.
        #[arg(long, env = "AUTHSTAT_TAKE_OVER")]
        take_over: bool,
        /// Settings that override the file's.
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Check a configuration file: syntax, values, the files each source matches (all must be
    /// readable), and that the backend answers (a SQLite file: that it can be written). Writes
    /// nothing. Exit code 0 when fine, 78 for a bad configuration, 1 when the backend is
    /// unreachable.
    CheckConfig {
        /// The configuration file.
        #[arg(long, short, env = "AUTHSTAT_CONFIG", conflicts_with = "file")]
        config: Option<PathBuf>,
        /// The configuration file, as a plain argument (the same as --config).
        #[arg(value_name = "CONFIG")]
        file: Option<PathBuf>,
        /// Do not contact the backend (for example where the database is not reachable from).
        #[arg(long, env = "AUTHSTAT_SKIP_BACKEND")]
        skip_backend: bool,
    },
    /// Read old log files once (for example rotated ones) into the backend. Running it again on
    /// the same files adds nothing.
    Backfill {
        /// The configuration file (its backend, node id and HLL settings are used).
        #[arg(long, short, env = "AUTHSTAT_CONFIG")]
        config: PathBuf,
        /// The record format of the files (the formats of the plugin registry).
        #[arg(
            long,
            value_parser = format_values(),
            default_value = "janssen_audit",
            env = "AUTHSTAT_BACKFILL_FORMAT"
        )]
        format: String,
        /// Files read at once, each by one thread (default: the number of CPUs).
        #[arg(long, env = "AUTHSTAT_BACKFILL_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// The files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the statistics stored for some months, merged over all nodes.
    Query {
        /// The configuration file (its backend is read).
        #[arg(long, short, env = "AUTHSTAT_CONFIG")]
        config: PathBuf,
        /// Months (yyyyMM); repeat the option or separate them with spaces.
        #[arg(long, required_unless_present = "from", num_args = 1.., value_delimiter = ' ', env = "AUTHSTAT_QUERY_MONTH")]
        month: Vec<String>,
        /// Instead of months: the active users from this UTC day (YYYY-MM-DD) …
        #[arg(
            long,
            requires = "to",
            conflicts_with = "month",
            env = "AUTHSTAT_QUERY_FROM"
        )]
        from: Option<String>,
        /// … to this one (inclusive, at most 400 days).
        #[arg(long, requires = "from", env = "AUTHSTAT_QUERY_TO")]
        to: Option<String>,
        /// With --from and --to: also each day's, week's (ISO, Monday to Sunday) or month's.
        #[arg(long, value_parser = ["day", "week", "month"], requires = "from", env = "AUTHSTAT_QUERY_BY")]
        by: Option<String>,
        /// Output format.
        #[arg(
            long,
            value_enum,
            default_value = "table",
            env = "AUTHSTAT_QUERY_FORMAT"
        )]
        format: QueryFormat,
        /// Also each node's own figures.
        #[arg(long, env = "AUTHSTAT_QUERY_BY_NODE")]
        by_node: bool,
        /// Also the figures per client or per realm (the top ones by active users, and the
        /// rest together).
        #[arg(long, value_enum, env = "AUTHSTAT_QUERY_GROUP_BY")]
        group_by: Option<GroupBy>,
        /// With --group-by: how many clients (realms) get figures of their own.
        #[arg(long, default_value_t = 100, env = "AUTHSTAT_QUERY_TOP",
              value_parser = clap::value_parser!(u16).range(1..=10_000))]
        top: u16,
    },
    /// Import the statistics another system keeps, for the history: everything a configured
    /// source's system keeps (Janssen's own statistics rows: `authstat import janssen`), stored
    /// once as snapshots. Running it again changes nothing unless the rows changed.
    Import {
        /// The type of source to import from, or the start of its name (`janssen` for
        /// `janssen_stat_entries`); by default any source whose system keeps statistics.
        from: Option<String>,
        /// The configuration file: its backend, and the source's settings.
        #[arg(long, short, env = "AUTHSTAT_CONFIG")]
        config: PathBuf,
        /// The source to import from, when several are configured (its `name`).
        #[arg(long)]
        source: Option<String>,
    },
    /// HyperLogLog tools.
    Hll {
        /// What to do with an HLL.
        #[command(subcommand)]
        command: HllCommand,
    },
    /// Print the version, the commit it was built from, the build date and the backends.
    Version,
    /// Print a shell completion script: `authstat completions bash > /etc/bash_completion.d/authstat`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Settings of `run` that override the configuration file's, also when it is reloaded.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Where the HTTP API listens (instead of `listen_addr`).
    #[arg(long, value_name = "ADDR:PORT", env = "AUTHSTAT_LISTEN_ADDR")]
    pub listen_addr: Option<SocketAddr>,
    /// The log level or filter (instead of `logging.level`): error, warn, info, debug, trace,
    /// or a filter such as `info,authstat=debug`. `RUST_LOG` wins over both.
    #[arg(long, env = "AUTHSTAT_LOG_LEVEL", conflicts_with_all = ["verbose", "quiet"])]
    pub log_level: Option<String>,
    /// The log format (instead of `logging.format`).
    #[arg(long, value_enum, env = "AUTHSTAT_LOG_FORMAT")]
    pub log_format: Option<LogFormatArg>,
    /// More logs: -v debug, -vv trace.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Fewer logs: -q warnings and errors, -qq errors only.
    #[arg(short, long, action = ArgAction::Count)]
    pub quiet: u8,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Lines for people.
    Text,
    /// One JSON object per line.
    Json,
}

impl Overrides {
    /// The level `-v`/`-q`/`--log-level` ask for, if any.
    pub fn level(&self) -> Option<String> {
        if let Some(level) = &self.log_level {
            return Some(level.clone());
        }
        match (self.verbose, self.quiet) {
            (0, 0) => None,
            (1, _) => Some("debug".into()),
            (v, _) if v >= 2 => Some("trace".into()),
            (_, 1) => Some("warn".into()),
            _ => Some("error".into()),
        }
    }

    /// Applies the overrides to a configuration read from its file.
    pub fn apply(&self, config: &mut authstat_config::AgentConfig) {
        if let Some(addr) = self.listen_addr {
            config.listen_addr = addr;
        }
        if let Some(level) = self.level() {
            config.logging.level = level;
        }
        if let Some(format) = self.log_format {
            config.logging.format = match format {
                LogFormatArg::Text => authstat_config::LogFormat::Text,
                LogFormatArg::Json => authstat_config::LogFormat::Json,
            };
        }
    }
}

/// HLL subcommands.
#[derive(Debug, Subcommand)]
pub enum HllCommand {
    /// Decode a stored HLL (Janssen's Base64 `dat`, or hex with or without `\x`): its type,
    /// parameters, registers in use and cardinality.
    Inspect {
        /// Base64 or hex.
        value: String,
    },
}

/// The record formats of the plugin registry, as command-line values (with the dashed
/// spellings earlier versions took as aliases).
fn format_values() -> clap::builder::PossibleValuesParser {
    let values: Vec<clap::builder::PossibleValue> = authstat_plugins::builtin()
        .formats()
        .iter()
        .map(|f| {
            let dashed: &'static str = Box::leak(f.name.replace('_', "-").into_boxed_str());
            clap::builder::PossibleValue::new(f.name)
                .alias(dashed)
                .help(f.about)
        })
        .collect();
    clap::builder::PossibleValuesParser::new(values)
}

/// `query --group-by`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GroupBy {
    /// Per OAuth client.
    Client,
    /// Per realm (Keycloak).
    Realm,
}

/// `query` output.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum QueryFormat {
    /// A table for people.
    Table,
    /// JSON: every stored figure (users, authentications, tokens, audit records).
    Json,
}
