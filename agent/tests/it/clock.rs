//! The pipeline's time is the runtime's: with the clock paused, no flush happens however long
//! the test really takes, and advancing the clock by the flush interval (or a third of the
//! lease) makes exactly the flush that is due — no sleeping, no hoping.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use authstat::pipeline::{Control, PipelineStats, Role};
use authstat::resolve::resolve;
use authstat_backends::memory::MemoryStore;
use authstat_core::store::StatStore;

use crate::support::wait_until;

async fn blocking(what: &'static str, f: impl FnMut() -> bool + Send + 'static) {
    tokio::task::spawn_blocking(move || wait_until(what, f))
        .await
        .unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn flushes_and_lease_renewals_follow_the_runtime_clock() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/logs/jans-auth_audit.log"
        ),
        dir.path().join("audit.log"),
    )
    .unwrap();
    let path = dir.path().join("authstat.yaml");
    std::fs::write(
        &path,
        "node_id: clock\nflush_interval_secs: 10\nnode_lease_secs: 60\n\
         sources: [{name: a, type: file, format: janssen_audit, paths: [audit.log]}]\n\
         backend: {type: memory}\n",
    )
    .unwrap();
    let resolved = resolve(
        &path,
        authstat_config::load(&path, &std::collections::HashMap::new()).unwrap(),
    )
    .unwrap();
    let store: Arc<dyn StatStore> = Arc::new(MemoryStore::new());
    let owner = authstat::own::claim(
        store.as_ref(),
        &resolved.node,
        Duration::from_secs(60),
        false,
    )
    .await
    .unwrap();
    let stats = Arc::new(PipelineStats::default());
    let pipeline = authstat::pipeline(
        &resolved,
        owner,
        store.clone(),
        |positions| authstat::sources(&resolved, positions),
        stats.clone(),
        Role::Agent,
    )
    .await
    .unwrap();
    let (control, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        pipeline.run(rx, Duration::from_secs(1), Duration::from_secs(10))
    });
    let read = stats.clone();
    blocking("the log to be read", move || {
        read.reading.records.load(Ordering::Relaxed) == 9
    })
    .await;
    assert_eq!(
        stats.flushing.applied.load(Ordering::Acquire),
        0,
        "the clock stands still"
    );

    // The flush interval passes: the records are flushed.
    tokio::time::advance(Duration::from_secs(10)).await;
    control.send(Control::Wake).unwrap();
    let flushes = stats.clone();
    blocking("the flush of the interval", move || {
        flushes.flushing.applied.load(Ordering::Acquire) == 1
    })
    .await;
    let lease = store.lease(&resolved.node).await.unwrap().unwrap();

    // Nothing new, but a third of the lease has passed: the lease is renewed by a flush.
    tokio::time::advance(Duration::from_secs(20)).await;
    control.send(Control::Wake).unwrap();
    let flushes = stats.clone();
    blocking("the lease renewal", move || {
        flushes.flushing.applied.load(Ordering::Acquire) == 2
    })
    .await;
    let renewed = store.lease(&resolved.node).await.unwrap().unwrap();
    assert!(
        renewed.until_ms >= lease.until_ms,
        "{renewed:?} after {lease:?}"
    );
    assert_eq!(renewed.epoch, lease.epoch);
    let state = store.load_node(&resolved.node).await.unwrap();
    assert_eq!(
        state.seq, 2,
        "one flush with the records, one that only renews the lease"
    );

    control.send(Control::Shutdown).unwrap();
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
}
