//! `check-config`'s reading of every certificate and key the configuration names: files
//! readable, the key the certificate's, the chain signed link by link, every certificate in its
//! dates. Nothing is started.

use std::path::Path;

use authstat_tls::{Usage, ca_line as ca, pair_line as pair};

use crate::resolve::Resolved;

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
    results.extend(sources(resolved));
    let (mut lines, mut problems) = (Vec::new(), Vec::new());
    for result in results {
        match result {
            Ok(line) => lines.push(line),
            Err(problem) => problems.push(problem),
        }
    }
    (lines, problems)
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

/// The certificates each source's options name, as its kind reads them (`SourceKind::certificates`).
fn sources(resolved: &Resolved) -> Vec<Result<String, String>> {
    let kinds = resolved.plugins.source_kinds();
    let mut out = Vec::new();
    for (i, source) in resolved.config.sources.iter().enumerate() {
        let Some(certificates) = kinds
            .iter()
            .find(|k| k.name == source.kind)
            .and_then(|k| k.certificates)
        else {
            continue;
        };
        out.extend(
            certificates(&source.options, &resolved.base)
                .into_iter()
                .map(|r| {
                    r.map(|line| format!("sources[{i}].{line}"))
                        .map_err(|e| format!("sources[{i}].{e}"))
                }),
        );
    }
    out
}
