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
    results.extend(backend(resolved));
    results.extend(activemq(resolved));
    results.into_iter().partition_result()
}

/// The certificate files a backend's URL names (PostgreSQL's `sslrootcert`, `sslcert`,
/// `sslkey`; MySQL's `ssl_ca`, `ssl_cert`, `ssl_key`; MongoDB's `tlsCAFile`,
/// `tlsCertificateKeyFile`), as the driver will read them (relative to the working directory).
fn backend(resolved: &Resolved) -> Vec<Result<String, String>> {
    let options = &resolved.config.backend.options;
    let Some(url) = ["url", "uri"]
        .iter()
        .find_map(|k| options.get(*k).and_then(|v| v.as_str()))
    else {
        return Vec::new();
    };
    let query: Vec<(String, String)> = url
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
            (k.to_owned(), v.into_owned())
        })
        .collect();
    let get = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| Path::new(v.as_str()))
    };
    let kind = resolved.config.backend.kind();
    let mut out = Vec::new();
    for key in ["sslrootcert", "ssl_ca", "tlsCAFile"] {
        if let Some(path) = get(key) {
            out.push(ca(&format!("backend {kind} {key}"), path));
        }
    }
    for (cert, key) in [("sslcert", "sslkey"), ("ssl_cert", "ssl_key")] {
        if let (Some(c), Some(k)) = (get(cert), get(key)) {
            out.push(pair(&format!("backend {kind} {cert}"), c, k, Usage::Client));
        }
    }
    if let Some(both) = get("tlsCertificateKeyFile") {
        let what = format!("backend {kind} tlsCertificateKeyFile");
        out.push(pair(&what, both, both, Usage::Client));
    }
    out
}

/// The files of the `tls:` options of every `activemq` source.
fn activemq(resolved: &Resolved) -> Vec<Result<String, String>> {
    use authstat_plugins::sources::activemq::{ACTIVEMQ, ActivemqConfig};
    let mut out = Vec::new();
    for (i, source) in resolved.config.sources.iter().enumerate() {
        let tls = (source.kind == ACTIVEMQ)
            .then(|| ActivemqConfig::decode(&source.options).ok())
            .flatten()
            .and_then(|c| c.tls);
        let Some(tls) = tls else { continue };
        let at = |p: &Path| resolved.base.join(p);
        if let Some(ca_file) = &tls.ca_file {
            out.push(ca(&format!("sources[{i}].tls.ca_file"), &at(ca_file)));
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            let what = format!("sources[{i}].tls.cert_file");
            out.push(pair(&what, &at(cert), &at(key), Usage::Client));
        }
    }
    out
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
