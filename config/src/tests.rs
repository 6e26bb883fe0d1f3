use std::collections::HashMap;

use super::*;

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

const MINIMAL: &str = "sources:\n  - name: audit\n    type: file\n    format: janssen_audit\n    paths: [/var/log/jans/jans-auth_audit.log]\n";

fn err(text: &str) -> ConfigError {
    parse(text, "authstat.yaml", &no_env()).unwrap_err()
}

#[test]
fn minimal_file_gets_documented_defaults() {
    let c = parse(MINIMAL, "authstat.yaml", &no_env()).unwrap();
    assert_eq!(c.node_id, None);
    assert_eq!(c.listen_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(c.flush_interval_secs, 10);
    assert_eq!(c.backend.kind(), "sqlite");
    assert_eq!(c.hll, HllConfig::default());
    assert_eq!(c.api.scope, "jans_stat");
    assert_eq!(c.api.cache_ttl_secs, 3600);
    assert_eq!(c.api.current_month_ttl_secs, 60);
    assert_eq!(c.api.auth, AuthConfig::Deny);
    // The envelope; the options are the source kind's (authstat-plugins) to decode.
    assert_eq!(c.sources[0].kind, "file");
    assert_eq!(c.sources[0].format, "janssen_audit");
    assert_eq!(c.sources[0].options.len(), 1);
    assert!(c.sources[0].options.contains_key("paths"));
    assert_eq!(c.derive.failed_authentication, FailedAuthRule::WithUsername);
}

#[test]
fn unknown_key_names_file_line_column_and_key() {
    let e = err(&format!("{MINIMAL}hll:\n  log2m: 15\n  pool: 3\n"));
    assert_eq!((e.line, e.column), (Some(8), Some(3)), "{e}");
    assert_eq!(e.key.as_deref(), Some("hll.pool"));
    assert!(e.message.starts_with("unknown field `pool`"), "{e}");
    assert!(e.message.contains("log2m"), "says what is expected: {e}");
    assert!(
        e.to_string()
            .starts_with("authstat.yaml:8:3: hll.pool: unknown field"),
        "{e}"
    );
    // The backend's options are its own (authstat-backends checks them, with their place).
    let c = parse(
        &format!("{MINIMAL}backend:\n  type: sqlite\n  path: /x.db\n  pool: 3\n"),
        "authstat.yaml",
        &no_env(),
    )
    .unwrap();
    assert_eq!(c.backend.options["pool"], 3);
}

#[test]
fn values_are_checked_where_they_stand() {
    let e = err(&format!("{MINIMAL}hll:\n  log2m: 31\n"));
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(7), Some("hll.log2m")),
        "{e}"
    );
    assert!(e.message.contains("31 is outside 4..=30"), "{e}");

    let e = err(&format!("{MINIMAL}flush_interval_secs: 0\n"));
    assert_eq!(e.key.as_deref(), Some("flush_interval_secs"), "{e}");
    assert!(e.message.contains("greater than 0"), "{e}");

    let e = err(&format!("{MINIMAL}node_id: bad node\n"));
    assert_eq!(e.key.as_deref(), Some("node_id"), "{e}");
    assert!(e.message.contains("'bad node'"), "{e}");

    let e = err(&format!("{MINIMAL}node_id: authstat:folded\n"));
    assert_eq!(e.key.as_deref(), Some("node_id"), "{e}");
    assert!(e.message.contains("reserved"), "{e}");

    let e = err(&format!("{MINIMAL}hll:\n  hash: md5\n"));
    assert_eq!(e.key.as_deref(), Some("hll.hash"), "{e}");

    let e = err(&format!(
        "{MINIMAL}api:\n  auth:\n    type: static\n    tokens:\n      - sha256: my-secret-token\n        scopes: [jans_stat]\n"
    ));
    assert_eq!(e.key.as_deref(), Some("api.auth.tokens[0].sha256"), "{e}");
    assert!(e.message.contains("SHA-256 of the token"), "{e}");

    let e = err(&format!("{MINIMAL}listen_addr: localhost\n"));
    assert_eq!(e.key.as_deref(), Some("listen_addr"), "{e}");

    // Which types and formats exist, and their options, are the plugin registry's to say
    // (authstat-plugins); the envelope is checked here.
    let e = err("sources:\n  - name: a\n    paths: [x]\n");
    assert_eq!(e.key.as_deref(), Some("sources[0]"), "{e}");
    assert!(e.message.contains("missing field `type`"), "{e}");
}

#[test]
fn checks_across_keys_name_the_key() {
    let e = err("sources: []\n");
    assert_eq!(e.key.as_deref(), Some("sources"), "{e}");
    let twice = "sources:\n  - {name: a, type: file, format: janssen_audit, paths: [x]}\n  - {name: a, type: file, format: token_events, paths: [y]}\n";
    let e = err(twice);
    assert_eq!(e.key.as_deref(), Some("sources[1].name"), "{e}");
    assert!(e.message.contains("'a' is used twice"), "{e}");
    // Placed by the key's position too.
    assert_eq!(e.line, Some(3), "{e}");
}

#[test]
fn syntax_errors_have_a_location() {
    let e = err("sources:\n  - name: [unclosed\n");
    assert!(e.line.is_some(), "{e}");
    let e = err("sources: {a: 1\n");
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn environment_variables_are_expanded() {
    let env: HashMap<String, String> = [("DB_PASSWORD".to_string(), "pw".to_string())]
        .into_iter()
        .collect();
    let text = format!(
        "{MINIMAL}node_id: ${{POD_NAME:-auth-0}}\nbackend:\n  type: postgres\n  url: postgres://app:${{DB_PASSWORD}}@db/stats\n"
    );
    let c = parse(&text, "authstat.yaml", &env).unwrap();
    assert_eq!(c.node_id.unwrap().as_str(), "auth-0");
    assert_eq!(c.backend.kind(), "postgres");
    assert_eq!(c.backend.options["url"], "postgres://app:pw@db/stats");

    let e = err(&format!("{MINIMAL}node_id: ${{POD_NAME}}\n"));
    assert_eq!((e.line, e.column), (Some(6), Some(10)), "{e}");
    assert!(e.message.contains("POD_NAME is not set"), "{e}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let e = load(
        std::path::Path::new("/nonexistent/authstat.yaml"),
        &no_env(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/authstat.yaml: cannot read the file"),
        "{e}"
    );
}

#[test]
fn every_example_configuration_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("authstat") && name.ends_with(".yaml") {
            let env: HashMap<String, String> = [("DB_PASSWORD".to_string(), "x".to_string())]
                .into_iter()
                .collect();
            load(&path, &env).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 1, "no examples/authstat*.yaml found");
}

#[test]
fn a_source_is_an_envelope_and_its_kinds_options() {
    let c = parse(
        "sources:\n  - name: q\n    type: toy\n    format: toy_lines\n    every: 3\n    nested: {a: [1]}\n",
        "authstat.yaml",
        &no_env(),
    )
    .unwrap();
    let source = &c.sources[0];
    assert_eq!(
        (source.kind.as_str(), source.format.as_str()),
        ("toy", "toy_lines")
    );
    assert_eq!(source.options["every"], 3);
    assert_eq!(source.options["nested"]["a"][0], 1);
    // Written back as it was read.
    let again: Vec<SourceConfig> =
        serde_yaml::from_str(&serde_yaml::to_string(&c.sources).unwrap()).unwrap();
    assert_eq!(again, c.sources);
    // A key given twice is refused where it stands.
    let e = err("sources:\n  - {name: q, type: t, every: 1, every: 2}\n");
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn a_check_of_the_plugins_names_line_column_and_key() {
    let text =
        "sources:\n  - name: q\n    type: file\n    format: f\n    paths: [x]\n    pathz: [y]\n";
    let check = |_: &AgentConfig| -> Result<(), (String, String)> {
        Err(("sources[0].pathz".into(), "unknown field `pathz`".into()))
    };
    let e = parse_checked(text, "authstat.yaml", &no_env(), &check).unwrap_err();
    assert_eq!(
        (e.line, e.column, e.key.as_deref()),
        (Some(6), Some(12), Some("sources[0].pathz")),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("authstat.yaml:6:12: sources[0].pathz: unknown field"),
        "{e}"
    );
    let ok = |_: &AgentConfig| -> Result<(), (String, String)> { Ok(()) };
    parse_checked(text, "authstat.yaml", &no_env(), &ok).unwrap();
}

#[test]
fn the_dashboard_path_cannot_hide_another_endpoint() {
    let c = parse(MINIMAL, "authstat.yaml", &no_env()).unwrap();
    assert!(c.api.dashboard.enabled && !c.api.dashboard.anonymous);
    assert_eq!(c.api.dashboard.path, "/dashboard");
    assert_eq!(c.api.dashboard.session_ttl_secs, 3600);
    for (path, says) in [
        ("/metrics", "would hide /metrics"),
        ("/jans-auth", "would hide /jans-auth/restv1/internal/stat"),
        ("/", "must start with / and not be / alone"),
        ("dashboard", "must start with /"),
    ] {
        let e = err(&format!("{MINIMAL}api:\n  dashboard:\n    path: {path}\n")).to_string();
        assert!(
            e.contains("api.dashboard.path") && e.contains(says),
            "{path}: {e}"
        );
    }
    // Off: its path does not matter.
    parse(
        &format!("{MINIMAL}api:\n  dashboard:\n    enabled: false\n    path: /metrics\n"),
        "authstat.yaml",
        &no_env(),
    )
    .unwrap();
}

#[test]
fn every_duration_is_bounded() {
    // u64::MAX seconds would overflow the first clock reading it is added to.
    for (text, key) in [
        (
            format!("flush_interval_secs: {}\n{MINIMAL}", u64::MAX),
            "flush_interval_secs",
        ),
        (
            format!("node_lease_secs: {}\n{MINIMAL}", u64::MAX),
            "node_lease_secs",
        ),
        (
            format!("api:\n  request_timeout_secs: {}\n{MINIMAL}", u64::MAX),
            "api.request_timeout_secs",
        ),
        (
            "sources:\n  - {name: a, type: file, format: janssen_audit, paths: [x], poll_interval_ms: 18446744073709551615}\n".to_owned(),
            "sources[0].poll_interval_ms",
        ),
        (
            format!("export:\n  otlp: {{endpoint: \"http://c:4318/v1/metrics\", interval_secs: 999999999999}}\n{MINIMAL}"),
            "export.otlp.interval_secs",
        ),
    ] {
        let e = err(&text);
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.message.contains("too long"), "{e}");
    }
    // Ten years is the bound, inclusive.
    let ten_years = format!("fold_silent_nodes_after_secs: {MAX_DURATION_SECS}\n{MINIMAL}");
    parse(&ten_years, "authstat.yaml", &no_env()).unwrap();
}

#[test]
fn api_tls_and_client_certificate_auth_are_read_and_checked_across_keys() {
    let tls =
        "api:\n  tls:\n    cert_file: /etc/authstat/tls.crt\n    key_file: /etc/authstat/tls.key\n";
    let c = parse(&format!("{MINIMAL}{tls}"), "authstat.yaml", &no_env()).unwrap();
    let t = c.api.tls.unwrap();
    assert_eq!(t.cert_file, std::path::Path::new("/etc/authstat/tls.crt"));
    assert_eq!(
        (t.client_ca_file, t.probes_without_client_cert),
        (None, false)
    );

    let e = err(&format!("{MINIMAL}{tls}    cert: x\n"));
    assert!(e.message.contains("unknown field `cert`"), "{e}");
    assert_eq!(e.line, Some(MINIMAL.lines().count() + 5), "{e}");
    let e = err(&format!(
        "{MINIMAL}{tls}    probes_without_client_cert: true\n"
    ));
    assert_eq!(
        e.key.as_deref(),
        Some("api.tls.probes_without_client_cert"),
        "{e}"
    );

    let auth =
        "  auth:\n    type: client_cert\n    allowed_subjects: [\"CN=reporting,O=Example\"]\n";
    let e = err(&format!("{MINIMAL}api:\n{auth}"));
    assert_eq!(e.key.as_deref(), Some("api.auth.type"), "{e}");
    assert!(e.message.contains("client_ca_file"), "{e}");
    let with_ca = format!("{MINIMAL}{tls}    client_ca_file: /etc/authstat/clients.pem\n{auth}");
    let c = parse(&with_ca, "authstat.yaml", &no_env()).unwrap();
    assert_eq!(
        c.api.auth,
        AuthConfig::ClientCert {
            allowed_subjects: vec!["CN=reporting,O=Example".into()]
        }
    );
    let e = err(&format!("{MINIMAL}api:\n  auth:\n    type: client_cert\n"));
    assert!(e.message.contains("needs `allowed_subjects`"), "{e}");
}
