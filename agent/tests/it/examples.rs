//! The deployment examples are valid: YAML parsed, the embedded authstat configurations parsed by
//! authstat itself, the systemd unit checked by `systemd-analyze verify` where it is installed.

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

#[test]
fn kubernetes_sidecar_shares_the_log_volume_and_its_config_parses() {
    let docs = yaml_documents(&example("kubernetes/authstat-sidecar.yaml"));
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment"]);
    let config = docs[0]["data"]["authstat.yaml"].as_str().unwrap();
    let parsed = authstat_config::parse(config, "configmap authstat.yaml", &env()).unwrap();
    assert_eq!(parsed.backend.kind(), "postgres");
    let containers = docs[1]["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    let mount = |name: &str| {
        let c = containers.iter().find(|c| c["name"] == name).unwrap();
        c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "auth-logs")
            .unwrap()["mountPath"]
            .clone()
    };
    assert_eq!(mount("jans-auth"), mount("authstat"));
    let log_dir = mount("authstat");
    assert!(parsed.sources[0].paths[0].starts_with(log_dir.as_str().unwrap()));
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

#[test]
fn systemd_unit_verifies() {
    let Ok(output) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze is not installed: the unit's syntax is not checked");
        return;
    };
    assert!(output.status.success());
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(example("systemd/authstat.service"))
        .unwrap()
        .replace("/usr/local/bin/authstat", env!("CARGO_BIN_EXE_authstat"));
    let path = dir.path().join("authstat.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    // Only the unit itself matters; messages about the host's other units are not ours.
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("authstat.service"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{text}");
}
