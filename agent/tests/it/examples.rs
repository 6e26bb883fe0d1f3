//! The deployment examples are valid: YAML parsed, the embedded authstat configurations parsed by
//! authstat itself, the Kubernetes manifests against the Kubernetes schemas, the systemd unit by
//! `systemd-analyze`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(path)
}

fn env() -> HashMap<String, String> {
    [
        ("POD_NAME", "jans-auth-0"),
        ("DB_PASSWORD", "x"),
        ("STAT_TOKEN_SHA256", &"ab".repeat(32)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn yaml_documents(path: &Path) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

/// The Kubernetes example: valid against the Kubernetes API's schemas, authstat's port clear of
/// the auth server's, no readiness probe on authstat (it would take the auth server out of
/// service while the statistics database is down), the log volume shared, and its configuration
/// parsed by authstat.
#[test]
fn kubernetes_sidecar_is_valid_and_clear_of_the_auth_server() {
    let path = example("kubernetes/authstat-sidecar.yaml");
    let validate = Path::new(&crate::support::python()).with_file_name("kubernetes-validate");
    let out = std::process::Command::new(validate)
        .args(["--strict", "--kubernetes-version", "1.31"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = yaml_documents(&path);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ConfigMap", "Service", "StatefulSet"]);
    let config = docs[0]["data"]["authstat.yaml"].as_str().unwrap();
    let parsed = authstat_config::parse(config, "configmap authstat.yaml", &env()).unwrap();
    assert_eq!(parsed.backend.kind(), "postgres");
    let pod = &docs[2]["spec"]["template"]["spec"];
    let containers = pod["containers"].as_sequence().unwrap();
    let container = |name: &str| containers.iter().find(|c| c["name"] == name).unwrap();
    let ports = |c: &serde_yaml::Value| -> Vec<u64> {
        c["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| p["containerPort"].as_u64().unwrap())
            .collect()
    };
    let authstat = container("authstat");
    assert_eq!(ports(authstat), [u64::from(parsed.listen_addr.port())]);
    for other in containers.iter().filter(|c| c["name"] != "authstat") {
        assert!(
            !ports(other).contains(&u64::from(parsed.listen_addr.port())),
            "{:?} listens on authstat's port",
            other["name"]
        );
    }
    assert!(authstat.get("readinessProbe").is_none());
    assert_eq!(authstat["livenessProbe"]["httpGet"]["path"], "/livez");
    let mount = |name: &str, volume: &str| {
        container(name)["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume)
            .unwrap()
            .clone()
    };
    assert_eq!(
        mount("jans-auth", "auth-logs")["mountPath"],
        mount("authstat", "auth-logs")["mountPath"]
    );
    // A ConfigMap mounted with subPath is never updated in the pod.
    assert!(
        mount("authstat", "authstat-config")
            .get("subPath")
            .is_none()
    );
    // HTTPS from a Secret mounted as a directory (a subPath mount is never updated: no renewal).
    let tls = parsed.api.tls.as_ref().expect("the example serves HTTPS");
    assert_eq!(authstat["livenessProbe"]["httpGet"]["scheme"], "HTTPS");
    let secret = mount("authstat", "authstat-tls");
    assert!(secret.get("subPath").is_none());
    let secret_dir = std::path::Path::new(secret["mountPath"].as_str().unwrap());
    assert!(tls.cert_file.starts_with(secret_dir) && tls.key_file.starts_with(secret_dir));
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "authstat-tls")
        .unwrap();
    assert_eq!(volume["secret"]["secretName"], "authstat-tls");
    let log_dir = mount("authstat", "auth-logs")["mountPath"].clone();
    assert_eq!(parsed.sources[0].kind, "file", "the sidecar follows files");
    let file =
        authstat_plugins::sources::file::FileOptions::decode(&parsed.sources[0].options).unwrap();
    assert!(file.paths[0].starts_with(log_dir.as_str().unwrap()));
}

/// The example's configuration on the real binary, its database unreachable (the pod's first
/// minutes, or an outage): the agent starts and stays up, the liveness probe's path answers 200,
/// `/readyz` says what it waits for.
#[cfg(feature = "postgres")]
#[test]
fn kubernetes_sidecar_starts_without_its_database() {
    let docs = yaml_documents(&example("kubernetes/authstat-sidecar.yaml"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("authstat.yaml");
    // The Secret's files, from a CA of the test's.
    let ca = authstat_test_support::certs::Ca::new("authstat test CA");
    let issued = ca.issue(&authstat_test_support::certs::Leaf::server());
    std::fs::write(dir.path().join("tls.crt"), &issued.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &issued.key_pem).unwrap();
    let text = docs[0]["data"]["authstat.yaml"]
        .as_str()
        .unwrap()
        .replace("/etc/authstat-tls/", &format!("{}/", dir.path().display()));
    std::fs::write(&config, text).unwrap();
    let probe = docs[2]["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "authstat")
        .unwrap()["livenessProbe"]["httpGet"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authstat"));
    command
        .args(["run", "--config"])
        .arg(&config)
        // The example's port may be in use on this machine, and its JSON logs are for a log
        // collector; everything else is as deployed.
        .args(["--listen-addr", "127.0.0.1:0", "--log-format", "text"])
        .envs(env())
        .env("RUST_LOG", "info");
    let mut agent = crate::support::spawn_until(command, "backend is ready) addr=");
    crate::support::wait_until("a failed attempt", || {
        agent.logged(&["the backend is unavailable"])
    });
    let trusting = crate::tls::client(&ca, None);
    let get = |path: &str| {
        crate::tls::https(agent.addr, &trusting, path, &[])
            .unwrap()
            .0
    };
    assert_eq!(get(&probe).status, 200);
    let ready = get("/readyz");
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("postgres"), "{}", ready.body);
    assert!(agent.child.try_wait().unwrap().is_none(), "still running");
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
}

#[test]
fn compose_file_and_its_config_parse() {
    let docs = yaml_documents(&example("compose/docker-compose.yaml"));
    let services = docs[0]["services"].as_mapping().unwrap();
    for name in ["auth-server", "postgres", "authstat"] {
        assert!(services.contains_key(name), "{name}");
    }
    authstat_config::load(&example("compose/authstat.yaml"), &env()).unwrap();
}

fn systemd_analyze(args: &[&str], unit: &Path) -> (bool, String) {
    let out = std::process::Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/install-deps installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The systemd unit: `systemd-analyze verify` finds nothing, `systemd-analyze security` rates it
/// under 3, and the unit and its configuration agree: the configuration file where `ExecStart`
/// reads it, absolute paths only, the SQLite file in the `StateDirectory` (the only place the
/// service may write), a limit of open files.
#[test]
fn systemd_unit_is_hardened_and_agrees_with_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example("systemd/authstat.service")).unwrap();
    let unit = dir.path().join("authstat.service");
    std::fs::write(
        &unit,
        text.replace("/usr/local/bin/authstat", env!("CARGO_BIN_EXE_authstat")),
    )
    .unwrap();
    let (ok, report) = systemd_analyze(&["verify", "--man=no"], &unit);
    // Only the unit itself matters; messages about the host's other units are not ours.
    let ours: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("authstat.service"))
        .collect();
    assert!(ok && ours.is_empty(), "{report}");

    let (_, report) = systemd_analyze(&["security", "--offline=true"], &unit);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for authstat.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(exposure < 3.0, "exposure {exposure}:\n{report}");

    let setting = |key: &str| -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .collect()
    };
    let exec = setting("ExecStart")[0];
    let config_path = exec.split_once("--config ").unwrap().1.trim();
    let configuration_dir = format!("/etc/{}", setting("ConfigurationDirectory")[0]);
    assert_eq!(
        Path::new(config_path).parent().unwrap(),
        Path::new(&configuration_dir)
    );
    let state_dir = format!("/var/lib/{}", setting("StateDirectory")[0]);
    assert!(!setting("LimitNOFILE").is_empty());
    assert!(setting("ProtectSystem") == ["strict"]);

    let config = authstat_config::load(&example("systemd/authstat.yaml"), &env()).unwrap();
    assert_eq!(
        config.backend.kind(),
        "sqlite",
        "the systemd example uses SQLite"
    );
    let sqlite = authstat_backends::options::SqliteConfig::decode(&config.backend.options).unwrap();
    assert!(
        sqlite.path.starts_with(&state_dir),
        "{} is not in the StateDirectory {state_dir}",
        sqlite.path.display()
    );
    for source in &config.sources {
        if source.kind != "file" {
            continue;
        }
        let file = authstat_plugins::sources::file::FileOptions::decode(&source.options).unwrap();
        for path in &file.paths {
            assert!(path.starts_with('/'), "{path} is relative to /etc/authstat");
        }
    }
}

/// The Janssen update-token script writes lines authstat's token-event parser reads: its
/// formatting and grant inspection run under CPython with stand-ins for Janssen's objects.
#[test]
fn janssen_token_script_writes_token_events() {
    use authstat_core::event::Event;
    use authstat_core::ingest::{Frame, Parser};
    use authstat_plugins::parse::TokenEventsParser;

    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let driver = format!(
        r#"
import importlib.util, sys
spec = importlib.util.spec_from_file_location("script", {script:?})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
class V:
    def __init__(s, v): s.v = v
    def getValue(s): return s.v
    def getValue2(s): return s.v
    def getUserId(s): return s.v
class Grant:
    def __init__(s, gt, user): s.gt, s.user = gt, user
    def getGrantType(s): return V(s.gt)
    def getClientId(s): return "client-1"
    def getUser(s): return V(s.user) if s.user else None
class Ctx:
    def __init__(s, g): s.g = g
    def getGrant(s): return s.g
class Attrs:
    def containsKey(s, k): return k == "events_file"
    def get(s, k): return V({events:?})
t = m.UpdateToken(0)
assert t.init(None, Attrs())
assert t.modifyAccessToken(None, Ctx(Grant("authorization_code", "admin")))
assert t.modifyIdToken(None, Ctx(Grant("authorization_code", "admin")))
assert t.modifyAccessToken(None, Ctx(Grant("client_credentials", None)))
assert t.getApiVersion() == 11
"#,
        script = example("janssen/update_token_events.py")
            .display()
            .to_string(),
        events = events.display().to_string(),
    );
    let out = std::process::Command::new(crate::support::python())
        .arg("-c")
        .arg(&driver)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read(&events).unwrap();
    let mut at = 0;
    let mut parsed = Vec::new();
    while let Frame::Record { len } = TokenEventsParser.frame(&text[at..]) {
        let Event {
            tokens: Some(t),
            user,
            ..
        } = TokenEventsParser.parse(&text[at..at + len]).unwrap()
        else {
            panic!()
        };
        parsed.push((t.grant_type, t.token_type, user));
        at += len;
    }
    assert_eq!(
        parsed,
        [
            (
                "authorization_code".into(),
                "access_token".into(),
                Some("admin".into())
            ),
            (
                "authorization_code".into(),
                "id_token".into(),
                Some("admin".into())
            ),
            ("client_credentials".into(), "access_token".into(), None),
        ]
    );
}

/// The collector configuration routes OTLP to Prometheus, and every series each dashboard query
/// uses exists on both routes: a Prometheus scrape of `/metrics` (the registry's names) and OTLP
/// through the collector (the collector's Prometheus exporter: `.` becomes `_`, monotonic sums
/// get `_total`; brace units add no suffix).
#[test]
fn otel_collector_and_grafana_dashboard_fit_both_routes() {
    use authstat_core::metrics::MetricKind;
    let collector = &yaml_documents(&example("otel/collector.yaml"))[0];
    let pipeline = &collector["service"]["pipelines"]["metrics"];
    assert_eq!(pipeline["receivers"][0], "otlp");
    assert_eq!(pipeline["exporters"][0], "prometheus");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(example("otel/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    // Every collector the agent can register: the process's, the pipeline's, the API's and the
    // OTLP exporter's (with the cluster figure).
    let registry = authstat::telemetry::registry();
    registry.register(std::sync::Arc::new(
        authstat::pipeline::PipelineStats::default(),
    ));
    registry.register(std::sync::Arc::new(
        authstat_api::http::ConnectionStats::default(),
    ));
    registry.register(std::sync::Arc::new(authstat_api::ApiStats::default()));
    registry.register(std::sync::Arc::new(authstat_export::ExportStats::default()));
    let cluster = authstat_export::ClusterUsers::default();
    cluster.set("202402".parse().unwrap(), 1);
    registry.register(std::sync::Arc::new(cluster));
    let families: Vec<_> = registry
        .snapshot()
        .families
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    let scraped: Vec<String> = families.iter().map(|f| f.name.to_owned()).collect();
    let via_collector: Vec<String> = families
        .iter()
        .filter(|f| f.pushed)
        .map(|f| {
            let name = f.otlp_name().replace('.', "_");
            match f.kind {
                MetricKind::Counter => format!("{name}_total"),
                _ => name,
            }
        })
        .collect();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 4);
    let mut used = 0;
    for panel in panels {
        let expr = panel["targets"][0]["expr"].as_str().unwrap();
        for series in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("authstat_"))
        {
            used += 1;
            assert!(
                scraped.iter().any(|s| s == series),
                "{series} is not on /metrics"
            );
            assert!(
                via_collector.iter().any(|s| s == series),
                "{series} does not come out of the collector"
            );
        }
    }
    assert!(used >= panels.len());
    // The cluster figure needs cluster_users on one node: the board and the collector say so.
    for panel in panels {
        if panel["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .contains("authstat_cluster_monthly_active_users")
        {
            let description = panel["description"].as_str().unwrap_or_default();
            assert!(
                description.contains("export.otlp.cluster_users: true"),
                "panel {} does not say what it needs",
                panel["title"]
            );
        }
    }
    let collector_text = std::fs::read_to_string(example("otel/collector.yaml")).unwrap();
    assert!(collector_text.contains("cluster_users: true"));
}
