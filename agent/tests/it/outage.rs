//! The backend goes away: reading pauses at `max_pending_records` (backpressure), the failed
//! batch is retried unchanged, and when the backend is back every record is stored exactly once.
//! And the backend applies flushes whose answers are lost: the retried batches are recognised
//! and nothing is counted twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use authstat::pipeline::{Control, PipelineStats};
use authstat::resolve::resolve;
use authstat_backends::memory::MemoryStore;
use authstat_core::store::{
    ClaimRequest, FlushBatch, FlushOutcome, FoldReport, FoldRequest, KeyClaim, KeyOwner, Lease,
    NodeClaim, NodeState, NodeSummary, StatStore, StoreError,
};
use authstat_core::{Month, MonthStats, NodeId};

use crate::support::wait_until;

/// A memory store that fails every flush while `down` is set, and applies the next
/// `lose_answers` flushes but answers them with an error (a connection lost after the commit).
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    down: AtomicBool,
    lose_answers: AtomicU64,
    /// Flushes applied whose answers were lost.
    lost: AtomicU64,
    failed: AtomicU64,
}

#[async_trait]
impl StatStore for Flaky {
    fn kind(&self) -> &'static str {
        "flaky"
    }
    async fn flush(&self, batch: &FlushBatch) -> Result<FlushOutcome, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable {
                backend: "flaky",
                message: "down".into(),
                cause: Default::default(),
            });
        }
        let outcome = self.inner.flush(batch).await?;
        if self
            .lose_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.lost.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable {
                backend: "flaky",
                message: "the connection was lost after the commit".into(),
                cause: Default::default(),
            });
        }
        Ok(outcome)
    }
    async fn load_node(&self, node: &NodeId) -> Result<NodeState, StoreError> {
        self.inner.load_node(node).await
    }
    async fn read_months(&self, months: &[Month]) -> Result<Vec<MonthStats>, StoreError> {
        self.inner.read_months(months).await
    }
    async fn drop_days_before(&self, month: authstat_core::Month) -> Result<u64, StoreError> {
        self.inner.drop_days_before(month).await
    }

    async fn node_dims(
        &self,
        node: &authstat_core::NodeId,
        months: &[authstat_core::Month],
    ) -> Result<Vec<authstat_core::dims::MonthDims>, StoreError> {
        self.inner.node_dims(node, months).await
    }
    async fn read_dims(
        &self,
        months: &[Month],
        kind: authstat_core::dims::DimKind,
    ) -> Result<Vec<authstat_core::dims::MonthDims>, StoreError> {
        self.inner.read_dims(months, kind).await
    }
    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn claim_node(&self, request: &ClaimRequest) -> Result<NodeClaim, StoreError> {
        self.inner.claim_node(request).await
    }
    async fn release_node(&self, node: &NodeId, epoch: u64) -> Result<(), StoreError> {
        self.inner.release_node(node, epoch).await
    }
    async fn lease(&self, node: &NodeId) -> Result<Option<Lease>, StoreError> {
        self.inner.lease(node).await
    }
    async fn nodes(&self) -> Result<Vec<NodeSummary>, StoreError> {
        self.inner.nodes().await
    }
    async fn data_version(&self) -> Result<u64, StoreError> {
        self.inner.data_version().await
    }
    async fn month_versions(&self) -> Result<std::collections::BTreeMap<Month, u64>, StoreError> {
        self.inner.month_versions().await
    }
    async fn put_snapshot(
        &self,
        snapshot: &authstat_core::store::Snapshot,
    ) -> Result<authstat_core::store::SnapshotOutcome, StoreError> {
        self.inner.put_snapshot(snapshot).await
    }
    async fn record_daily_users(
        &self,
        month: Month,
        day: u32,
        users: u64,
    ) -> Result<(), StoreError> {
        self.inner.record_daily_users(month, day, users).await
    }
    async fn daily_users(
        &self,
        month: Month,
    ) -> Result<std::collections::BTreeMap<u32, u64>, StoreError> {
        self.inner.daily_users(month).await
    }
    async fn fold_silent(&self, request: &FoldRequest) -> Result<FoldReport, StoreError> {
        self.inner.fold_silent(request).await
    }
    async fn claim_keys(
        &self,
        owner: &KeyOwner,
        keys: &[String],
    ) -> Result<Vec<KeyClaim>, StoreError> {
        self.inner.claim_keys(owner, keys).await
    }
    async fn take_over_key(
        &self,
        key: &str,
        from: &KeyOwner,
        to: &KeyOwner,
    ) -> Result<bool, StoreError> {
        self.inner.take_over_key(key, from, to).await
    }
}

fn events(from: u64, n: u64) -> String {
    (from..from + n)
        .map(|i| {
            authstat_test_support::janssen::token_event(
                1706745604011,
                &format!("g{}", i % 7),
                "access_token",
                &format!("c{i}"),
            )
        })
        .collect()
}

/// A pipeline over `dir/tokens.jsonl` (configuration `extra` added) writing to `store`, on a
/// thread of its own: its control channel, its thread, its stats.
async fn start(
    dir: &std::path::Path,
    extra: &str,
    store: &Arc<Flaky>,
) -> (
    std::sync::mpsc::Sender<Control>,
    std::thread::JoinHandle<()>,
    Arc<PipelineStats>,
) {
    let (pipeline, stats) = pipeline_over(dir, extra, store).await;
    let (control, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        pipeline.run(rx, Duration::from_millis(10), Duration::from_millis(20))
    });
    (control, thread, stats)
}

/// A pipeline over `dir/tokens.jsonl` (configuration `extra` added) writing to `store`, and its
/// stats.
async fn pipeline_over(
    dir: &std::path::Path,
    extra: &str,
    store: &Arc<Flaky>,
) -> (authstat::pipeline::Pipeline, Arc<PipelineStats>) {
    let path = dir.join("authstat.yaml");
    std::fs::write(&path, format!("node_id: n\n{extra}sources:\n  - {{name: t, type: file, format: token_events, paths: [tokens.jsonl]}}\nbackend: {{type: memory}}\n")).unwrap();
    let resolved = resolve(
        &path,
        authstat_config::load(&path, &std::collections::HashMap::new()).unwrap(),
    )
    .unwrap();
    let stats = Arc::new(PipelineStats::default());
    let dyn_store: Arc<dyn StatStore> = store.clone();
    let owner = authstat::own::claim(
        dyn_store.as_ref(),
        &resolved.node,
        Duration::from_secs(60),
        false,
    )
    .await
    .unwrap();
    let pipeline = authstat::pipeline(
        &resolved,
        owner,
        dyn_store,
        |positions| authstat::sources(&resolved, positions),
        stats.clone(),
        authstat::pipeline::Role::Agent,
    )
    .await
    .unwrap();
    (pipeline, stats)
}

/// The tokens stored for February 2024 (every event of `events`).
fn tokens(stored: &[MonthStats]) -> u64 {
    stored.first().map_or(0, |m| {
        m.counters.tokens.iter().map(|(_, _, n)| n).sum::<u64>()
    })
}

/// Asks for flushes until at least `records` tokens are stored, then stops the pipeline and
/// returns what is stored.
async fn flush_until_stored_and_stop(
    store: &Flaky,
    control: std::sync::mpsc::Sender<Control>,
    thread: std::thread::JoinHandle<()>,
    records: u64,
) -> Vec<MonthStats> {
    let month: Month = "202402".parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tokens(&store.read_months(&[month]).await.unwrap()) < records {
        let _ = control.send(Control::Flush);
        assert!(
            std::time::Instant::now() < deadline,
            "not every record was stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = control.send(Control::Shutdown);
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
    store.read_months(&[month]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_while_the_backend_is_down_and_nothing_lost_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    std::fs::write(&log, events(0, 5000)).unwrap();
    let store = Arc::new(Flaky::default());
    store.down.store(true, Ordering::SeqCst);
    let (control, thread, stats) = start(dir.path(), "max_pending_records: 1000\n", &store).await;

    // The first 5000 records are read and their batch fails.
    wait_until("the first batch to fail", || {
        store.failed.load(Ordering::SeqCst) >= 1
    });
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(events(5000, 15000).as_bytes()).unwrap();
    }
    // Several more failed flushes: plenty of time to read 15000 more records, were it allowed.
    let failed = store.failed.load(Ordering::SeqCst);
    wait_until("more failed flushes", || {
        store.failed.load(Ordering::SeqCst) >= failed + 20
    });
    let read = stats.reading.records.load(Ordering::Relaxed);
    assert!(
        read < 5000 + 1000 + 1000,
        "reading went on past the limit: {read} records"
    );
    assert!(
        read >= 5000 + 1000,
        "reading stopped before the limit: {read}"
    );

    // The backend is back: everything lands, once.
    store.down.store(false, Ordering::SeqCst);
    let stored = flush_until_stored_and_stop(&store, control, thread, 20000).await;
    assert_eq!(
        tokens(&stored),
        20000,
        "nothing counted twice after the retries"
    );
    assert_eq!(
        stored[0].counters.tokens.get("g0", "access_token"),
        (0..20000).filter(|i| i % 7 == 0).count() as u64
    );
}

/// Flushes applied by the backend whose answers never arrive, while records keep coming: every
/// retried batch is recognised (`AlreadyApplied`), and the stored counts are exactly the
/// records written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_whose_answers_are_lost_are_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.jsonl");
    std::fs::write(&log, events(0, 1000)).unwrap();
    let store = Arc::new(Flaky::default());
    let lost_answers = 8;
    store.lose_answers.store(lost_answers, Ordering::SeqCst);
    let (control, thread, stats) = start(dir.path(), "", &store).await;
    // More records after each lost answer, so that retries and new batches interleave.
    let mut written = 1000;
    for lost in 1..=lost_answers {
        wait_until("a lost answer", || {
            store.lost.load(Ordering::SeqCst) >= lost
        });
        authstat_test_support::files::append(&log, &events(written, 500));
        written += 500;
    }
    let stored = flush_until_stored_and_stop(&store, control, thread, written).await;
    assert!(
        stats.flushing.already_applied.load(Ordering::Relaxed) >= 1,
        "the retries were recognised as applied"
    );
    assert_eq!(
        stats.reading.records.load(Ordering::Relaxed),
        written,
        "every record read, once"
    );
    assert_eq!(tokens(&stored), written, "nothing counted twice");
    assert_eq!(
        stored[0].counters.tokens.get("g0", "access_token"),
        (0..written).filter(|i| i % 7 == 0).count() as u64
    );
}

/// Reading to the end (a backfill) flushes along the way; when a flush fails, the reading stops
/// there instead of going on with what cannot be stored: what the earlier flushes stored stays,
/// and the failed batch is not half stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_to_the_end_stops_at_a_failed_flush() {
    let dir = tempfile::tempdir().unwrap();
    let total = 300_000;
    std::fs::write(dir.path().join("tokens.jsonl"), events(0, total)).unwrap();
    let store = Arc::new(Flaky::default());
    let (pipeline, stats) = pipeline_over(dir.path(), "", &store).await;
    let (flaky, watched) = (store.clone(), stats.clone());
    // A flush after every read (8 MiB, ~85,000 events); the backend goes down once one is stored.
    tokio::task::spawn_blocking(move || {
        pipeline.run_to_end(Duration::ZERO, || {
            if watched.flushing.applied.load(Ordering::Acquire) >= 1 {
                flaky.down.store(true, Ordering::SeqCst);
            }
        })
    })
    .await
    .unwrap();
    let month: Month = "202402".parse().unwrap();
    let stored = tokens(&store.read_months(&[month]).await.unwrap());
    let read = stats.reading.records.load(Ordering::Relaxed);
    assert_eq!(stats.flushing.applied.load(Ordering::Acquire), 1);
    assert!(store.failed.load(Ordering::SeqCst) >= 1);
    assert!(stored > 0, "the first flush is stored");
    assert!(
        stored < read,
        "the failed batch is not stored: {stored} of {read}"
    );
    assert!(
        read < total,
        "reading stopped at the failed flush: {read} of {total}"
    );
}
