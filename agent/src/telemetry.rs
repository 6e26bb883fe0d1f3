//! The agent's metric registry (`authstat_core::metrics::Registry`), filled by the subsystems
//! it starts: each registers its own collector. This module adds what belongs to the process:
//! its build.

use std::sync::Arc;

use authstat_core::metrics::{Collector, Families, Registry, Sample};

authstat_core::family!(
    BUILD_INFO,
    "authstat_build_info",
    Gauge,
    "",
    true,
    ["version", "commit", "build_date", "backends"],
    "1, labelled with this binary's version, commit, build date and compiled-in backends."
);

/// The collector of [`BUILD_INFO`].
#[derive(Debug, Default)]
pub(crate) struct Build;

impl Collector for Build {
    fn collect(&self, out: &mut Families) {
        let build = crate::build_info::INFO;
        let labels = vec![
            build.version.to_owned(),
            build.commit.to_owned(),
            build.date.to_owned(),
            build.backends().join(","),
        ];
        out.push((&BUILD_INFO, vec![Sample::int(labels, 1)]));
    }
}

/// A registry with the process's collectors (its build, its tasks' panics); the pipeline, the
/// API and the exporters register theirs as they start.
pub fn registry() -> Arc<Registry> {
    let registry = Arc::new(Registry::new());
    registry.register(Arc::new(Build));
    registry.register(Arc::new(authstat_runtime::tasks::Panics));
    registry
}
