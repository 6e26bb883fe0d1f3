//! `check-config`'s reading of every certificate and key the configuration names: files
//! readable, the key the certificate's, the chain signed link by link, every certificate in its
//! dates. Nothing is started.

use std::path::Path;
use std::time::SystemTime;

use authstat_tls::{CertInfo, Usage, check_ca_file, check_identity_files};

use crate::resolve::Resolved;

/// A certificate's line: its subject and how long it has left.
fn describe(what: &str, info: &CertInfo) -> String {
    let days = info
        .not_after
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs()
        / 86_400;
    let warning = if days < 14 { " — renew it soon" } else { "" };
    format!(
        "{what}: {} (serial {}), expires {} ({days} days){warning}",
        info.subject, info.serial, info.not_after_text
    )
}

/// A pair's line, or what is wrong with it.
pub(crate) fn pair(what: &str, cert: &Path, key: &Path, usage: Usage) -> Result<String, String> {
    check_identity_files(cert, key, usage)
        .map(|info| describe(what, &info))
        .map_err(|e| format!("{what}: {e}"))
}

/// A CA file's line, or what is wrong with it.
pub(crate) fn ca(what: &str, path: &Path) -> Result<String, String> {
    check_ca_file(path)
        .map(|n| format!("{what}: {} ({n} certificate(s))", path.display()))
        .map_err(|e| format!("{what}: {e}"))
}

/// Every certificate of the configuration, checked: a line each, or the problems.
pub(crate) fn check(resolved: &Resolved) -> (Vec<String>, Vec<String>) {
    let mut results = Vec::new();
    if let Some(tls) = &resolved.config.api.tls {
        results.push(pair(
            "api.tls certificate",
            &tls.cert_file,
            &tls.key_file,
            Usage::Server,
        ));
        if let Some(path) = &tls.client_ca_file {
            results.push(ca("api.tls.client_ca_file", path));
        }
    }
    results.into_iter().partition_result()
}

trait Partition {
    fn partition_result(self) -> (Vec<String>, Vec<String>);
}

impl<I: Iterator<Item = Result<String, String>>> Partition for I {
    fn partition_result(self) -> (Vec<String>, Vec<String>) {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for r in self {
            match r {
                Ok(line) => good.push(line),
                Err(e) => bad.push(e),
            }
        }
        (good, bad)
    }
}
