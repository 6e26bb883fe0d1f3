//! `authstat backfill`: old files read once, through the same pipeline as the agent, with a
//! finite file source.
//!
//! It runs as the node `<node>-backfill` (claimed like an agent's node id, so two backfills of
//! one node cannot run at once) under the source name `backfill`. Every file is claimed by its
//! content before it is read: a file that an agent (of any node) or an earlier backfill of
//! another node has read is refused, naming who read it. Files that a source of the
//! configuration follows are refused up front. Compressed files (`.gz`) are decompressed into
//! a private temporary directory; their content identity is that of the decompressed bytes, so
//! a `.gz` of a file read before (by anyone) is recognised too. Running it again on the same
//! files adds nothing: the backfill node remembers every file it read.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use authstat_config::BACKFILL_SOURCE;
use authstat_core::NodeId;
use authstat_core::source::Source;
use authstat_plugins::sources::file::DEFAULT_MAX_RECORD_BYTES;
use authstat_plugins::tail::{PathPattern, Tailer};

use super::{Failure, load_config};
use crate::pipeline::{PipelineStats, Role};

/// `authstat backfill`.
pub async fn backfill(
    path: &Path,
    format: &str,
    threads: Option<u16>,
    files: &[PathBuf],
) -> Result<(), Failure> {
    let resolved = load_config(path)?;
    let _ = crate::logging::init(&resolved.config.logging);
    let node = NodeId::new(format!("{}-backfill", resolved.node))
        .map_err(|e| Failure::Config(e.into()))?;
    let format = *resolved
        .plugins
        .format(&format.replace('-', "_"))
        .ok_or_else(|| Failure::Usage(format!("--format: unknown format `{format}`")))?;
    let temp = private_temp_dir().context("creating a temporary directory")?;
    let Files {
        patterns,
        total_bytes,
        refused,
    } = files_to_read(&resolved, files, temp.path(), threads_wanted(threads))?;
    let patterns_count = patterns.len();
    let store = crate::connect(&resolved).await?;
    let lease = Duration::from_secs(resolved.config.node_lease_secs());
    let owner = crate::own::claim(store.as_ref(), &node, lease, false)
        .await
        .map_err(anyhow::Error::from)?;
    let stats = Arc::new(PipelineStats::default());
    let max = followed(&resolved)
        .next()
        .map_or(DEFAULT_MAX_RECORD_BYTES, |(_, f)| f.max_record_bytes);
    let pipeline = crate::pipeline(
        &resolved,
        owner,
        store,
        |positions| {
            let tailer = Tailer::new(
                BACKFILL_SOURCE,
                patterns,
                (format.parser)(),
                max,
                false,
                positions,
            )?;
            let source: Box<dyn Source> = Box::new(tailer.with_claims().remembering_everything());
            Ok(vec![source])
        },
        stats.clone(),
        Role::Backfill,
    )
    .await?;
    let threads = threads_wanted(threads).min(patterns_count.max(1));
    let pipeline = pipeline.with_threads(threads);
    let mut progress = Progress::new(stats.clone(), total_bytes, patterns_count);
    let flush_every = Duration::from_secs(resolved.config.flush_interval_secs);
    let refusals = tokio::task::spawn_blocking(move || {
        let refusals = pipeline.run_to_end(flush_every, || progress.show());
        progress.done();
        refusals
    })
    .await
    .context("backfill task")?;
    drop(temp);
    report(&stats, refusals, refused)
}

/// Where `.gz` files are decompressed: a new directory with a random name that only this user
/// can enter (mode 0700, whatever the umask).
fn private_temp_dir() -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt as _;
    tempfile::Builder::new()
        .prefix("authstat-backfill-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
}

/// `--threads`, or one per CPU.
fn threads_wanted(threads: Option<u16>) -> usize {
    threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        usize::from,
    )
}

/// Progress: on a terminal a bar (bytes, rate, ETA, records) on stderr; otherwise (a
/// service, a pipe, a CI log) a log line at the start, every [`LOG_EVERY`] and at the end.
struct Progress {
    stats: Arc<PipelineStats>,
    bar: indicatif::ProgressBar,
    tty: bool,
    files: usize,
    last_log: std::time::Instant,
}

/// How often a progress line is logged when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    fn new(stats: Arc<PipelineStats>, total_bytes: u64, files: usize) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = if tty {
            let style = indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> ");
            indicatif::ProgressBar::new(total_bytes).with_style(style)
        } else {
            // Hidden, but it still measures the rate and the ETA for the log lines.
            indicatif::ProgressBar::hidden()
        };
        bar.set_length(total_bytes);
        if !tty {
            tracing::info!(files, bytes = total_bytes, "backfill: reading");
        }
        Self {
            stats,
            bar,
            tty,
            files,
            last_log: std::time::Instant::now(),
        }
    }

    fn records(&self) -> u64 {
        self.stats.reading.records.load(Ordering::Relaxed)
    }

    fn show(&mut self) {
        let read = self.stats.reading.bytes.load(Ordering::Relaxed);
        self.bar.set_position(read);
        self.bar.set_message(format!("{} records", self.records()));
        if !self.tty && self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = std::time::Instant::now();
            let total = self.bar.length().unwrap_or(0);
            tracing::info!(
                percent = format!("{:.1}", percent(read, total)),
                bytes = read,
                of = total,
                records = self.records(),
                bytes_per_sec = self.bar.per_sec() as u64,
                eta_secs = self.bar.eta().as_secs(),
                "backfill: progress"
            );
        }
    }

    fn done(&self) {
        if self.tty {
            self.bar.finish_and_clear();
        } else {
            let elapsed = self.bar.elapsed();
            let read = self.bar.position();
            tracing::info!(
                files = self.files,
                bytes = read,
                records = self.records(),
                secs = format!("{:.1}", elapsed.as_secs_f64()),
                bytes_per_sec = (read as f64 / elapsed.as_secs_f64().max(1e-3)) as u64,
                "backfill: read"
            );
        }
    }
}

fn percent(read: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        read as f64 * 100.0 / total as f64
    }
}

/// Says what was read, and fails if nothing was stored or some files were refused.
fn report(
    stats: &PipelineStats,
    refusals: Vec<crate::pipeline::Refusal>,
    mut refused: Vec<String>,
) -> Result<(), Failure> {
    println!(
        "backfill: {} records, {} skipped, {} bytes",
        stats.reading.records.load(Ordering::Relaxed),
        stats.reading.skipped.load(Ordering::Relaxed),
        stats.reading.bytes.load(Ordering::Relaxed)
    );
    if stats.flushing.failed.load(Ordering::Relaxed) > 0
        || stats.health.fenced.lock().expect("lock").is_some()
    {
        return Err(Failure::Other(anyhow::anyhow!(
            "storing the statistics failed, so not everything was read and stored; run the same backfill again to go on from its last stored flush (nothing is counted twice)"
        )));
    }
    for r in refusals {
        refused.push(format!("{}: {}", r.paths.join(", "), r.why));
    }
    if !refused.is_empty() {
        for r in &refused {
            eprintln!("authstat: not read: {r}");
        }
        return Err(Failure::Other(anyhow::anyhow!(
            "{} file(s) were not read, because they are counted elsewhere (the rest was stored)",
            refused.len()
        )));
    }
    Ok(())
}

/// What a backfill reads: the files (decompressed into `temp` where compressed), their size,
/// and the files refused up front.
struct Files {
    patterns: Vec<PathPattern>,
    total_bytes: u64,
    refused: Vec<String>,
}

fn files_to_read(
    resolved: &crate::resolve::Resolved,
    files: &[PathBuf],
    temp: &Path,
    threads: usize,
) -> Result<Files, Failure> {
    let cwd = std::env::current_dir().context("current directory")?;
    let mut out = Files {
        patterns: Vec::new(),
        total_bytes: 0,
        refused: Vec::new(),
    };
    // (absolute path, where a `.gz` is decompressed to)
    let mut wanted: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let absolute = cwd
            .join(file)
            .canonicalize()
            .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?;
        if let Some(source) = followed_by(resolved, &absolute) {
            out.refused.push(format!(
                "{}: followed by source '{source}' of this configuration: the agent counts it; \
                 backfill would count it twice",
                file.display()
            ));
            continue;
        }
        let target = absolute
            .extension()
            .is_some_and(|e| e == "gz")
            .then(|| temp.join(format!("{i}.log")));
        wanted.push((absolute, target));
    }
    // `.gz` files are decompressed `threads` at a time.
    let gz: Vec<&(PathBuf, Option<PathBuf>)> = wanted.iter().filter(|(_, t)| t.is_some()).collect();
    for batch in gz.chunks(threads.max(1)) {
        let sizes: Vec<Result<u64, Failure>> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|(source, target)| {
                    scope.spawn(move || gunzip(source, target.as_deref().expect("a .gz target")))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a decompressing thread panicked"))
                .collect()
        });
        for size in sizes {
            out.total_bytes += size?;
        }
    }
    for (absolute, target) in &wanted {
        let readable = match target {
            Some(target) => target,
            None => {
                out.total_bytes += std::fs::metadata(absolute).map(|m| m.len()).unwrap_or(0);
                absolute
            }
        };
        out.patterns.push(pattern(readable)?);
    }
    Ok(out)
}

/// The configured sources that follow files, with what they follow.
fn followed(
    resolved: &crate::resolve::Resolved,
) -> impl Iterator<Item = (&str, authstat_plugins::registry::Followed)> {
    resolved.config.sources.iter().filter_map(|source| {
        let kind = resolved
            .plugins
            .source_kinds()
            .iter()
            .find(|k| k.name == source.kind)?;
        let followed = (kind.follows?)(&source.options, &resolved.base)?;
        Some((source.name.as_str(), followed))
    })
}

/// The configured source whose paths name `file`, if any.
fn followed_by(resolved: &crate::resolve::Resolved, file: &Path) -> Option<String> {
    followed(resolved)
        .find(|(_, f)| (f.matches)(file))
        .map(|(name, _)| name.to_owned())
}

fn pattern(file: &Path) -> Result<PathPattern, Failure> {
    let text = file
        .to_str()
        .ok_or_else(|| Failure::Usage(format!("{} is not UTF-8", file.display())))?;
    PathPattern::literal(&Path::new("/").join(text))
        .ok_or_else(|| Failure::Usage(format!("{text}: not a file path")))
}

/// Decompresses `gz` into `target`; the decompressed size.
fn gunzip(gz: &Path, target: &Path) -> Result<u64, Failure> {
    let input = std::fs::File::open(gz).with_context(|| format!("reading {}", gz.display()))?;
    let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(input));
    let mut output =
        std::fs::File::create(target).with_context(|| format!("writing {}", target.display()))?;
    let size = std::io::copy(&mut decoder, &mut output)
        .with_context(|| format!("decompressing {}", gz.display()))?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_decompression_directory_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = super::private_temp_dir().unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
