//! The agent's long-running tasks and threads, watched: one that panics is never left dead in
//! silence. The panic is logged at ERROR (with the task's name and the panic's message),
//! counted in `authstat_task_panics_total{task}`, and `authstat run` stops the agent with exit
//! code 70 (EX_SOFTWARE) through its normal shutdown, so that its supervisor restarts it:
//! everything resumes from the stored positions, nothing is lost or counted twice.
//!
//! Restarting a task in place was the other choice; it was not taken because a task that
//! panicked may have left shared state half-changed, and a restarted process starts from what
//! is stored, which is known to be whole.

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, OnceLock};

use futures_util::FutureExt as _;

/// A task that panicked: its name and the panic's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    /// The task's name (`ingest`, `otlp-export`, ...).
    pub task: &'static str,
    /// The panic's message.
    pub message: String,
}

impl std::fmt::Display for Death {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the task {} panicked: {}", self.task, self.message)
    }
}

#[derive(Default)]
struct Watch {
    panics: Mutex<BTreeMap<&'static str, u64>>,
    first: Mutex<Option<Death>>,
    died: tokio::sync::Notify,
}

fn watch() -> &'static Watch {
    static WATCH: OnceLock<Watch> = OnceLock::new();
    WATCH.get_or_init(Watch::default)
}

authstat_core::family!(
    TASK_PANICS,
    "authstat_task_panics_total",
    Counter,
    "{panic}",
    true,
    ["task"],
    "Tasks of the agent that panicked, by task. A panic is logged at ERROR and stops the agent (exit code 70): a supervisor restarts it from the stored positions."
);

/// The collector of [`TASK_PANICS`] (panics of every watched task of this process).
#[derive(Debug, Default)]
pub struct Panics;

impl authstat_core::metrics::Collector for Panics {
    fn collect(&self, out: &mut authstat_core::metrics::Families) {
        let samples = panics()
            .into_iter()
            .map(|(task, n)| authstat_core::metrics::Sample::int(vec![task.to_owned()], n))
            .collect();
        out.push((&TASK_PANICS, samples));
    }
}

/// Panics so far, per task (for `/metrics`).
pub fn panics() -> BTreeMap<&'static str, u64> {
    watch().panics.lock().expect("lock").clone()
}

/// Waits until a watched task panics; the first one's death.
pub async fn died() -> Death {
    loop {
        if let Some(death) = watch().first.lock().expect("lock").clone() {
            return death;
        }
        watch().died.notified().await;
    }
}

fn panicked(task: &'static str, payload: &(dyn Any + Send)) {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_owned());
    tracing::error!(
        task,
        panic = %message,
        "a task of the agent panicked: the agent stops (exit code 70) so that its supervisor \
         restarts it from the stored positions"
    );
    let w = watch();
    *w.panics.lock().expect("lock").entry(task).or_default() += 1;
    w.first
        .lock()
        .expect("lock")
        .get_or_insert(Death { task, message });
    // A permit is kept if nobody waits yet: the death is not missed.
    w.died.notify_one();
}

/// Spawns `future` on the runtime as the watched task `task`.
pub fn spawn<F>(task: &'static str, future: F) -> tokio::task::JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let future = hooks::maybe_panic(task, future);
    tokio::spawn(async move {
        if let Err(payload) = AssertUnwindSafe(future).catch_unwind().await {
            panicked(task, payload.as_ref());
        }
    })
}

/// Starts `body` on a thread of its own as the watched task `task`.
pub fn thread<F>(task: &'static str, body: F) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    std::thread::Builder::new()
        .name(format!("authstat-{task}"))
        .spawn(move || {
            let run = || {
                hooks::maybe_panic_now(task);
                body();
            };
            if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(run)) {
                panicked(task, payload.as_ref());
            }
        })
}

#[cfg(feature = "test-hooks")]
mod hooks {
    //! Test hook (`AUTHSTAT_TEST_PANIC_TASK=<task>`): the named task panics when it starts.
    //! Compiled only with the `test-hooks` feature.
    use std::future::Future;

    fn chosen(task: &str) -> bool {
        std::env::var("AUTHSTAT_TEST_PANIC_TASK").is_ok_and(|t| t == task)
    }

    pub fn maybe_panic_now(task: &str) {
        if chosen(task) {
            panic!("test hook: AUTHSTAT_TEST_PANIC_TASK={task}");
        }
    }

    pub async fn maybe_panic<F: Future<Output = ()>>(task: &'static str, future: F) {
        maybe_panic_now(task);
        future.await;
    }
}

#[cfg(not(feature = "test-hooks"))]
mod hooks {
    use std::future::Future;

    pub fn maybe_panic_now(_task: &str) {}

    pub fn maybe_panic<F: Future<Output = ()>>(_task: &'static str, future: F) -> F {
        future
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_logged_counted_and_waited_for() {
        let before = panics().get("unit-test-task").copied().unwrap_or(0);
        let handle = spawn("unit-test-task", async { panic!("boom {}", 42) });
        handle.await.expect("the wrapper itself does not panic");
        assert_eq!(panics()["unit-test-task"], before + 1);
        let death = tokio::time::timeout(std::time::Duration::from_secs(5), died())
            .await
            .expect("the death is reported");
        // Another test of this process may have died first; this one's is counted either way.
        assert!(!death.message.is_empty());

        let t = thread("unit-test-thread", || panic!("thread boom"))
            .unwrap()
            .join();
        assert!(t.is_ok(), "the panic is caught on the thread");
        assert_eq!(panics()["unit-test-thread"], 1);
    }
}
