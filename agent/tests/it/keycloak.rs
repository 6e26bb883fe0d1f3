//! `examples/keycloak/authstat.yaml` run as written over the sample Keycloak logs (plain, both
//! generations, stack traces, admin events, other loggers; and JSON logging): the stat API and
//! `/metrics` show what the events mean, the malformed event line is counted, nothing else is.

use std::path::Path;

use authstat::resolve::resolve;
use authstat_core::ingest::ParseErrorKind;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keycloak_example_serves_the_sample_events() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keycloak")).unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    for f in ["keycloak.log", "keycloak.json.log"] {
        std::fs::copy(
            examples.join("logs").join(f),
            dir.path().join("logs").join(f),
        )
        .unwrap();
    }
    let text = std::fs::read_to_string(examples.join("keycloak/authstat.yaml"))
        .unwrap()
        .replace("${AUTHSTAT_LISTEN_ADDR:-127.0.0.1:8080}", "127.0.0.1:0");
    let config_path = dir.path().join("keycloak/authstat.yaml");
    std::fs::write(&config_path, text).unwrap();
    let check = run_ok(authstat().arg("check-config").arg(&config_path));
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        said.contains("source keycloak (file, keycloak_events): 2 input(s)"),
        "{said}"
    );

    let config = authstat_config::load(&config_path, &std::collections::HashMap::new()).unwrap();
    let agent = authstat::start(resolve(&config_path, config).unwrap(), Default::default())
        .await
        .unwrap();
    let stats = agent.stats.clone();
    use std::sync::atomic::Ordering;
    // 13 event lines of the two files are read (12 events, 1 malformed); nothing else counts.
    wait_until("the sample events", || {
        stats.reading.records.load(Ordering::Relaxed)
            + stats.reading.skipped.load(Ordering::Relaxed)
            >= 13
    });
    agent.flush_now();
    wait_until("a flush", || {
        stats.flushing.applied.load(Ordering::Acquire) >= 1
    });
    assert_eq!(stats.reading.records.load(Ordering::Relaxed), 12);
    assert_eq!(stats.reading.skipped.load(Ordering::Relaxed), 1);
    assert_eq!(
        stats.reading.skipped_by_kind[ParseErrorKind::Garbage.index()].load(Ordering::Relaxed),
        1
    );
    let addr = agent.addr;
    let (stat, metrics) = tokio::task::spawn_blocking(move || {
        let r = get(
            addr,
            "/jans-auth/restv1/internal/stat?start-month=202401&end-month=202402&format=jsonmonth",
            Some(TOKEN),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let realms = get(
            addr,
            "/jans-auth/restv1/internal/stat?month=202402&group_by=realm",
            Some(TOKEN),
        );
        // Per realm: by name, or by id where the event logs no name (older Keycloak).
        let figures = |users: u64, ok: u64, failed: u64| {
            serde_json::json!({"monthly_active_users": users,
                "authentications": {"success": ok, "failure": failed}})
        };
        let realms = &realms.json()["response"][0]["realms"];
        for (realm, want) in [
            ("acme", figures(2, 2, 1)),
            ("0b1c2d3e-acme", figures(1, 1, 0)),
            ("other", figures(1, 1, 0)),
        ] {
            let got = &realms[realm];
            assert_eq!(
                got["monthly_active_users"], want["monthly_active_users"],
                "{realm}"
            );
            assert_eq!(got["authentications"], want["authentications"], "{realm}");
        }
        assert_eq!(realms.as_object().unwrap().len(), 3, "{realms}");
        // Per client: the service account's token counts, its login makes no active user.
        let clients = get(
            addr,
            "/jans-auth/restv1/internal/stat?month=202402&group_by=client",
            Some(TOKEN),
        )
        .json();
        let clients = &clients["response"][0]["clients"];
        assert_eq!(clients["web"]["monthly_active_users"], 3);
        assert_eq!(
            clients["web"]["authentications"],
            figures(0, 3, 1)["authentications"]
        );
        assert_eq!(clients["reporting"]["monthly_active_users"], 0);
        assert_eq!(
            clients["reporting"]["token_count_per_granttype"],
            serde_json::json!({"client_credentials": {"access_token": 1}})
        );
        (r.json(), get(addr, "/metrics", None).body)
    })
    .await
    .unwrap();
    assert_eq!(
        stat["response"]["202402"],
        serde_json::json!({
            "month": "202402",
            "monthly_active_users": 4,
            // web (LOGIN, CODE_TO_TOKEN), reporting (CLIENT_LOGIN), portal (LOGIN); admin-cli's
            // is an admin event.
            "monthly_active_clients": 3,
            "token_count_per_granttype": {
                "authorization_code": {"access_token": 2},
                "client_credentials": {"access_token": 1},
                "refresh_token": {"access_token": 1}
            }
        })
    );
    assert_eq!(stat["response"]["202401"]["monthly_active_users"], 1);
    for line in [
        "authstat_authentications_total{outcome=\"success\"} 5",
        "authstat_authentications_total{outcome=\"failure\"} 1",
        "authstat_authorizations_total{action=\"LOGIN\",outcome=\"failure\"} 3",
        "authstat_authorizations_total{action=\"CLIENT_LOGIN\",outcome=\"success\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    agent.shutdown().await;
}
