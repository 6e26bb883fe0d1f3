//! What this binary is: version, commit, build date, backends (`authstat version`, the
//! `authstat_build_info` metric, the first log line).

/// This build.
#[derive(Debug, Clone, Copy)]
pub struct BuildInfo {
    /// The crate's version.
    pub version: &'static str,
    /// The commit it was built from (12 hex digits), or `unknown`.
    pub commit: &'static str,
    /// The build date, `yyyy-mm-dd` (UTC).
    pub date: &'static str,
}

/// This binary's build.
pub const INFO: BuildInfo = BuildInfo {
    version: env!("CARGO_PKG_VERSION"),
    commit: env!("AUTHSTAT_COMMIT"),
    date: env!("AUTHSTAT_BUILD_DATE"),
};

impl BuildInfo {
    /// The storage backends compiled in.
    pub fn backends(&self) -> Vec<&'static str> {
        authstat_backends::Backends::builtin()
            .kinds()
            .iter()
            .filter(|k| k.built)
            .map(|k| k.name)
            .collect()
    }
}
