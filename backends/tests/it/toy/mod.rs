//! A backend from outside authstat's crates, from this folder plus one registration call
//! ([`Backends::with`]): its own options type, opened through the registry by its `type` name,
//! and the whole conformance suite run against it.
//!
//! The toy keeps its data in memory, in a store per `label` that outlives the handles (so that
//! opening it again is a restart, as for a database); it is the memory backend under another
//! name, which is what a toy needs: the seam is what is tested.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use authstat_backends::memory::{FailAt, MemoryStore};
use authstat_backends::{BackendKind, Backends, SessionLimits};
use authstat_config::BackendConfig;
use authstat_config::options::{OptionError, decode};
use authstat_core::store::StatStore;
use serde::{Deserialize, Serialize};

use crate::conformance::conformance_tests;
use crate::support::{Fail, Harness, Opened, unique_name};

/// The toy's options.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToyOptions {
    /// Which store.
    label: String,
}

/// The stores, by label.
fn stores() -> &'static Mutex<HashMap<String, Arc<MemoryStore>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<MemoryStore>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

fn store_of(label: &str) -> Arc<MemoryStore> {
    stores()
        .lock()
        .unwrap()
        .entry(label.to_owned())
        .or_default()
        .clone()
}

/// The one registration.
fn toy() -> BackendKind {
    BackendKind {
        name: "toy",
        about: "a toy backend registered from outside",
        feature: None,
        built: true,
        server: false,
        check: |o| decode::<ToyOptions>(o).map(|_| ()),
        location: |o| format!("toy {:?}", o.get("label")),
        connect_timeout: |_| Duration::ZERO,
        resolve_paths: |_, _| {},
        open: |o, _| {
            Box::pin(async move {
                let options: ToyOptions = decode(o).map_err(|e: OptionError| {
                    authstat_core::store::StoreError::Rejected {
                        backend: "toy",
                        message: e.message,
                    }
                })?;
                Ok(store_of(&options.label) as Arc<dyn StatStore>)
            })
        },
        probe: |_| Box::pin(async { Ok("toy: always there".into()) }),
    }
}

struct Toy {
    config: BackendConfig,
    label: String,
}

#[async_trait]
impl Harness for Toy {
    async fn open(&self) -> Opened {
        let backends = Backends::builtin().with(toy());
        let store = backends
            .open(&self.config, SessionLimits::default())
            .await
            .unwrap();
        let hooks = store_of(&self.label);
        let fold_hooks = hooks.clone();
        Opened {
            store,
            fail_next_flush: Box::new(move |at| {
                hooks.inject_flush_failure(match at {
                    Fail::Before(n) => FailAt::AfterMonths(n),
                    Fail::AfterCommit => FailAt::AfterCommit,
                })
            }),
            fail_next_fold: Box::new(move |at| {
                fold_hooks.inject_fold_failure(match at {
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

async fn harness() -> Toy {
    let label = unique_name("toy");
    let config = BackendConfig::new(
        "toy",
        &ToyOptions {
            label: label.clone(),
        },
    );
    Toy { config, label }
}

conformance_tests!(harness);

#[test]
fn the_toy_is_checked_like_any_backend() {
    let backends = Backends::builtin().with(toy());
    let text = "sources:\n  - {name: a, type: file, format: janssen_audit, paths: [x]}\nbackend:\n  type: toy\n  lable: x\n";
    let e = authstat_config::parse_checked(
        text,
        "authstat.yaml",
        &HashMap::<String, String>::new(),
        &|c| backends.check_config(c),
    )
    .unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(5), Some("backend.lable")),
        "{e}"
    );
    // Without the registration, the type is unknown.
    let e = authstat_config::parse_checked(
        text,
        "authstat.yaml",
        &HashMap::<String, String>::new(),
        &|c| Backends::builtin().check_config(c),
    )
    .unwrap_err();
    assert!(e.message.contains("unknown backend type `toy`"), "{e}");
}
