//! The memory backend: every "open" returns the same store (a process restart would lose it).

use std::sync::Arc;

use async_trait::async_trait;
use authstat_backends::memory::{FailAt, MemoryStore};

use crate::conformance::conformance_tests;
use crate::support::{Fail, Harness, Opened};

struct Memory(Arc<MemoryStore>);

#[async_trait]
impl Harness for Memory {
    async fn open(&self) -> Opened {
        let store = self.0.clone();
        let fold_hook = self.0.clone();
        Opened {
            store: store.clone(),
            fail_next_flush: Box::new(move |at| {
                store.inject_flush_failure(match at {
                    Fail::Before(n) => FailAt::AfterMonths(n),
                    Fail::AfterCommit => FailAt::AfterCommit,
                })
            }),
            fail_next_fold: Box::new(move |at| {
                fold_hook.inject_fold_failure(match at {
                    Fail::Before(n) => FailAt::AfterMonths(n),
                    Fail::AfterCommit => FailAt::AfterCommit,
                })
            }),
            flush_points: 2,
            fold_points: usize::MAX,
            fold_after_commit: true,
        }
    }
}

async fn harness() -> Memory {
    Memory(Arc::new(MemoryStore::new()))
}

conformance_tests!(harness);
