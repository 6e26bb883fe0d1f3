//! The memory backend: every "open" returns the same store (a process restart would lose it).

use std::sync::Arc;

use async_trait::async_trait;
use authstat_backends::memory::MemoryStore;

use crate::conformance::conformance_tests;
use crate::support::{Harness, Opened};

struct Memory(Arc<MemoryStore>);

#[async_trait]
impl Harness for Memory {
    async fn open(&self) -> Opened {
        let store = self.0.clone();
        Opened {
            store: store.clone(),
            fail_next_flush: Box::new(move || store.inject_flush_failure(1)),
        }
    }
}

async fn harness() -> Memory {
    Memory(Arc::new(MemoryStore::new()))
}

conformance_tests!(harness);
