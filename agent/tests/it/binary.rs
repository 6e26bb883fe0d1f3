//! The real binary: the README's run command, exit codes, and the other subcommands.

use std::path::Path;

use crate::support::*;

/// The README's first command, in a copy of the repository's examples: it starts on the
/// embedded default, ingests the sample logs, and serves the numbers with the example token.
/// SIGTERM stops it with exit code 0 after a final flush.
#[test]
fn the_readme_run_command_serves_the_sample_statistics() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let command = "cargo run --release -p authstat -- run --config examples/authstat.yaml";
    assert!(readme.contains(command), "the README must show: {command}");
    assert!(
        readme.contains("Authorization: Bearer example-token"),
        "the README shows the curl with the token"
    );

    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    std::fs::create_dir_all(dir.path().join("examples/logs")).unwrap();
    std::fs::copy(
        examples.join("authstat.yaml"),
        dir.path().join("examples/authstat.yaml"),
    )
    .unwrap();
    for f in ["jans-auth_audit.log", "token-events.jsonl"] {
        std::fs::copy(
            examples.join("logs").join(f),
            dir.path().join("examples/logs").join(f),
        )
        .unwrap();
    }
    let mut agent = spawn_agent(
        Path::new("examples/authstat.yaml"),
        dir.path(),
        &[("AUTHSTAT_LISTEN_ADDR", "127.0.0.1:0")],
    );
    let addr = agent.addr;
    wait_until("the health check to say running", || {
        get(addr, "/jans-auth/sys/health-check", None).body
            == r#"{"status": "running", "db_status":"online"}"#
    });
    // The example flushes every 5 seconds; local flushes refresh cached answers.
    wait_until("February's statistics", || {
        let r = get(
            addr,
            "/jans-auth/restv1/internal/stat?month=202402",
            Some(TOKEN),
        );
        r.status == 200 && r.json()["response"][0]["monthly_active_users"] == 2
    });
    let r = get(
        addr,
        "/jans-auth/restv1/internal/stat?month=202402",
        Some(TOKEN),
    );
    assert_eq!(
        r.json()["response"][0]["token_count_per_granttype"]["client_credentials"]["access_token"],
        2
    );

    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
    assert!(
        dir.path().join("examples/data/authstat.db").exists(),
        "the SQLite file of the embedded default"
    );

    // What it stored, without a server.
    let out = run_ok(
        authstat()
            .args([
                "query",
                "--config",
                "examples/authstat.yaml",
                "--month",
                "202401 202402",
                "--format",
                "json",
            ])
            .current_dir(dir.path()),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let feb = &json["months"][1];
    assert_eq!(feb["month"], "202402");
    assert_eq!(feb["monthly_active_users"], 2);
    assert_eq!(feb["tokens"]["client_credentials"]["access_token"], 2);
}

#[test]
fn a_bad_configuration_exits_78_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "sources:\n  - name: a\n    type: file\n    format: janssen_audit\n    paths: [x.log]\nflush_interval_secs: never\n").unwrap();
    for args in [vec!["run", "--config"], vec!["check-config"]] {
        let out = authstat().args(&args).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.yaml:6:22: flush_interval_secs: invalid type"),
            "{err}"
        );
    }
    let out = authstat()
        .args([
            "query",
            "--config",
            "/nonexistent.yaml",
            "--month",
            "202402",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "a missing configuration file");
    // Formats and source types come from the plugin registry.
    for (source, says) in [
        (
            "{name: a, type: file, format: syslog, paths: [x.log]}",
            "sources[0].format: unknown format `syslog` (the formats: janssen_audit, token_events, keycloak_events)",
        ),
        (
            "{name: a, type: kafka, format: janssen_audit}",
            "sources[0].type: unknown source type `kafka` (the types: file, activemq, janssen_stat_entries)",
        ),
        (
            "{name: j, type: janssen_stat_entries, url: 'redis://u:secret@db/0'}",
            "must start with postgres://, postgresql:// or mysql://, not redis://u:***@db/0",
        ),
        (
            "{name: j, type: janssen_stat_entries, format: janssen_audit, url: 'postgres://db/j'}",
            "bad.yaml:2:51: sources[0].format: source type janssen_stat_entries takes no `format` (it reads rows, not records)",
        ),
        (
            "{name: j, type: janssen_stat_entries, url: 'postgres://db/j', table: 'x; drop'}",
            "`table` must be a plain table name",
        ),
        (
            "{name: q, type: activemq, format: janssen_audit, brokers: ['mq.example.com']}",
            "sources[0].brokers[0]: 'mq.example.com' is not host:port (or stomp://host:port, or stomp+ssl://host:port for TLS)",
        ),
        (
            "{name: q, type: activemq, format: janssen_audit, brokers: ['ssl://mq.example.com/']}",
            "sources[0].brokers[0]: 'ssl://mq.example.com/' is not host:port",
        ),
        (
            "{name: q, type: activemq, format: janssen_audit}",
            "source type activemq needs `brokers`",
        ),
        (
            "{name: j, type: file, format: janssen_audit, paths: [x.log], url: 'postgres://db/j'}",
            "sources[0].url: unknown field `url`, expected one of `paths`",
        ),
    ] {
        std::fs::write(&path, format!("sources:\n  - {source}\n")).unwrap();
        let out = authstat().arg("check-config").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(78));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
    // A bad command-line value is a usage error, named as such.
    let fixture = Fixture::new("");
    let out = authstat()
        .args(["query", "--month", "2024-02", "--config"])
        .arg(fixture.config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--month") && !err.contains("bad configuration"),
        "{err}"
    );
}

#[test]
fn check_config_reports_sources_and_backend() {
    let fixture = Fixture::new("");
    let out = run_ok(authstat().arg("check-config").arg(fixture.config_path()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("source audit (file, janssen_audit): 1 input(s) now"),
        "{text}"
    );
    // No side effects: the database file is not created by a check.
    let db = fixture.dir.path().join("data/authstat.db");
    assert!(
        text.contains(&format!(
            "backend sqlite: {} will be created at start",
            db.display()
        )),
        "{text}"
    );
    assert!(!db.exists() && !db.parent().unwrap().exists());
    // A node id copied from an example is called out; a real one is not.
    assert!(
        text.contains("warning: node id 'example-node' looks like a placeholder"),
        "{text}"
    );
    let path = fixture.config_path();
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        config.replace("node_id: example-node", "node_id: auth-7"),
    )
    .unwrap();
    let out = run_ok(authstat().args(["check-config", "--config"]).arg(&path));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("warning"), "{text}");

    // A database file that exists is checked, not migrated; --skip-backend skips it.
    std::fs::create_dir(db.parent().unwrap()).unwrap();
    std::fs::write(&db, "not a database").unwrap();
    let out = authstat()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a SQLite database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_ok(
        authstat()
            .args(["check-config", "--skip-backend", "--config"])
            .arg(&path),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("backend sqlite: not checked"), "{text}");
    assert_eq!(std::fs::read(&db).unwrap(), b"not a database");
}

/// check-config against a database server writes nothing: no tables are created.
#[cfg(feature = "postgres")]
#[test]
fn check_config_creates_no_tables() {
    let url = authstat_test_support::db::postgres("authstat_check");
    let psql = |url: &str, sql: &str| {
        let out = std::process::Command::new("psql")
            .arg(url)
            .args(["-tAc", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let fixture = Fixture::new("");
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "backend:\n  type: sqlite\n  path: data/authstat.db\n",
        &format!("backend:\n  type: postgres\n  url: \"{url}\"\n"),
    );
    std::fs::write(&path, text).unwrap();
    let out = run_ok(authstat().args(["check-config", "--config"]).arg(&path));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("answers"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let tables = psql(
        &url,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert_eq!(tables, "0");
}

#[test]
fn hll_inspect_decodes_janssen_values() {
    let out = authstat()
        .args(["hll", "inspect", "Eo9/AAAAAAWGA08AAAAABqaNxgAAAAAGpo3H"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "type:               EXPLICIT",
        "log2m:              15 (32768 registers)",
        "cardinality:        3",
    ] {
        assert!(text.contains(line), "{text}");
    }
    let out = authstat()
        .args(["hll", "inspect", "\\x118f7f"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("EMPTY"));
    let out = authstat()
        .args(["hll", "inspect", "not-an-hll!"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("neither Base64 nor hex") && !err.contains("bad configuration"),
        "{err}"
    );
}

/// The startup log says what runs where: version and commit, the configuration, each source's
/// files, the backend (its password hidden); a missing `api.auth` is a warning.
#[test]
fn the_startup_log_names_the_files_the_backend_and_missing_auth() {
    let fixture = Fixture::new("");
    let mut agent = fixture.spawn();
    // The first scan comes right after the agent starts serving.
    wait_until("the files in the log", || {
        agent.logged(&["following source=\"tokens\""])
    });
    let log = agent.log.lock().unwrap().join("\n");
    assert!(
        log.contains(&format!(
            "authstat starting version={}",
            env!("CARGO_PKG_VERSION")
        )) && log.contains("commit="),
        "{log}"
    );
    assert!(
        log.contains("following source=\"audit\" count=1 inputs=")
            && log.contains("jans-auth_audit.log"),
        "{log}"
    );
    let db = fixture.dir.path().join("data/authstat.db");
    assert!(
        log.contains(&format!("backend ready backend=sqlite {}", db.display())),
        "{log}"
    );
    assert!(!log.contains("api.auth is not configured"), "{log}");
    // A new file appears: named in the log.
    append(
        &fixture.dir.path().join("logs/token-events-2.jsonl"),
        "{\"timestamp\":1706780000000,\"grant_type\":\"client_credentials\",\"token_type\":\"access_token\",\"client_id\":\"c\"}\n",
    );
    wait_until("the new file in the log", || {
        agent.logged(&["following a new input", "token-events-2.jsonl"])
    });
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));

    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let (start, end) = (
        text.find("\napi:\n").unwrap(),
        text.find("\nlogging:").unwrap(),
    );
    std::fs::write(&path, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let mut agent = fixture.spawn();
    assert!(agent.logged(&["WARN", "api.auth is not configured"]));
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
    let out = run_ok(authstat().args(["check-config", "--config"]).arg(&path));
    assert!(String::from_utf8_lossy(&out.stdout).contains("warning: api.auth is not configured"));
}

/// `version` names the commit the binary was built from (the checkout's own), the build date
/// and the backends; `completions` writes scripts the shells load.
#[test]
fn version_and_completions() {
    let out = run_ok(authstat().arg("version"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    assert!(
        text.starts_with(&format!("authstat {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains(&format!("commit: {head}\n")), "{text}");
    let date = text
        .lines()
        .find_map(|l| l.strip_prefix("built: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
        "{date}"
    );
    assert!(text.contains("backends: memory, sqlite"), "{text}");

    for (shell, marker) in [
        ("bash", "complete -F _authstat"),
        ("zsh", "#compdef authstat"),
        ("fish", "complete -c authstat"),
    ] {
        let out = run_ok(authstat().args(["completions", shell]));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains(marker) && script.contains("check-config"),
            "{shell}"
        );
    }
    // bash accepts its script.
    let out = run_ok(authstat().args(["completions", "bash"]));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("authstat.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    run_ok(std::process::Command::new("bash").arg("-c").arg(format!(
        "source {} && complete -p authstat",
        script.display()
    )));
}

/// `run`'s flags win over the file, also across a reload: `--listen-addr`, `--log-format`,
/// `-q`; a bad `--log-level` is a usage error.
#[test]
fn run_flags_override_the_file() {
    let fixture = Fixture::new("");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    drop(taken);
    let mut command = authstat();
    command
        .args(["run", "--config"])
        .arg(fixture.config_path())
        .args([
            "--listen-addr",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
        ])
        .current_dir(fixture.dir.path())
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped());
    let mut agent = spawn_until(command, "\"addr\":\"");
    wait_until("the agent to serve", || agent.logged(&["\"serving\""]));
    assert_eq!(agent.addr.port(), port);
    let lines = agent.log.lock().unwrap().clone();
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    // A reload keeps the flags (the file's listen_addr would be a refused change otherwise).
    agent.signal("HUP");
    wait_until("the reload", || agent.logged(&["configuration reloaded"]));
    assert!(!agent.logged(&["not reloaded"]));
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));

    // -q: warnings and errors only.
    let mut command = authstat();
    command
        .args(["run", "-q", "--config"])
        .arg(fixture.config_path())
        .args(["--listen-addr", &format!("127.0.0.1:{port}")])
        .current_dir(fixture.dir.path())
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped());
    let quiet = command.spawn().unwrap();
    // Nothing to wait for in the log (it is quiet): ask the agent.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until("the agent to be ready", || {
        std::net::TcpStream::connect(addr).is_ok() && get(addr, "/readyz", None).status == 200
    });
    let pid = quiet.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = quiet.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains(" INFO "), "{err}");
    assert_eq!(&february(&fixture)[..4], ["202402", "2", "2", "1"]);

    // A typo is no level (tracing would read it as a target and log nothing meant).
    for level in ["degub", "info,=x=y"] {
        let mut refused = spawn_command_raw(
            authstat()
                .args([
                    "run",
                    "--log-level",
                    level,
                    "--listen-addr",
                    "127.0.0.1:0",
                    "--config",
                ])
                .arg(fixture.config_path()),
        );
        assert_eq!(refused.wait_exit().code(), Some(64), "{level}");
        assert!(
            refused.logged(&[&format!("--log-level '{level}'")]),
            "{:?}",
            refused.log.lock().unwrap()
        );
    }
}

/// Renaming a source (its stored positions are keyed by its name) neither loses its files nor
/// reads them twice: the renamed source continues where the old name stood.
#[test]
fn a_renamed_source_continues_where_it_stood() {
    let fixture = Fixture::new("");
    let mut agent = fixture.spawn();
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
    assert_eq!(&february(&fixture)[..4], ["202402", "2", "2", "1"]);

    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("  - name: audit\n", "  - name: audit-renamed\n"),
    )
    .unwrap();
    // One more successful authorization by a new user, in February.
    append(
        &fixture.dir.path().join("logs/jans-auth_audit.log"),
        "2024-02-05 10:00:00,000 INFO  [m] [t]  [c] (A.java:1) - {\n  \"action\" : \"USER_AUTHORIZATION\",\n  \"timestamp\" : 1707127200000,\n  \"username\" : \"newcomer\",\n  \"success\" : true\n}\n",
    );
    let mut agent = fixture.spawn();
    wait_until("the renamed source to continue", || {
        agent.logged(&["a renamed source continues where it stood"])
    });
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
    assert_eq!(&february(&fixture)[..4], ["202402", "3", "3", "1"]);
}

/// check-config shows the OTLP settings the file and the environment resolve to, the variables
/// it ignored, and refuses OTLP values in the file that cannot be used (exit 78, naming them).
#[test]
fn check_config_shows_the_resolved_otlp_settings() {
    let fixture = Fixture::new("export:\n  otlp:\n    interval_secs: 30\n");
    let out = run_ok(
        authstat()
            .args(["check-config", "--skip-backend"])
            .arg(fixture.config_path())
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
            .env("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for says in [
        "export otlp: http/protobuf to http://collector:4317/v1/metrics every 30 s",
        "warning: the OTLP endpoint http://collector:4317/v1/metrics uses port 4317",
        "warning: OTEL_EXPORTER_OTLP_TIMEOUT=\"soon\" ignored",
    ] {
        assert!(text.contains(says), "{says:?} not in:\n{text}");
    }
    for (otlp, says) in [
        (
            "endpoint: collector:4317",
            "export.otlp.endpoint: not an http:// or https:// URL",
        ),
        ("client_key: k.pem", "export.otlp.client_certificate"),
        ("protocol: http", "unknown variant `http`"),
    ] {
        let fixture = Fixture::new(&format!("export:\n  otlp:\n    {otlp}\n"));
        let out = authstat()
            .args(["check-config", "--skip-backend"])
            .arg(fixture.config_path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "{otlp}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{otlp}: {err}");
    }
}

/// A task that panics is never left dead in silence: the panic is logged at ERROR with the
/// task's name, and the agent stops through its shutdown with exit code 70 for its supervisor
/// to restart it. The ingest thread and a runtime task, each made to panic by the test hook
/// (`AUTHSTAT_TEST_PANIC_TASK`, `test-hooks` feature).
#[test]
fn a_panicking_task_stops_the_agent_with_exit_code_70() {
    for task in ["ingest", "daily-users"] {
        let fixture = Fixture::new("");
        let mut agent = spawn_agent(
            &fixture.config_path(),
            fixture.dir.path(),
            &[("AUTHSTAT_TEST_PANIC_TASK", task)],
        );
        let status = agent.wait_exit();
        let log = agent.log.lock().unwrap().join("\n");
        assert_eq!(status.code(), Some(70), "{task}: {log}");
        assert!(
            agent.logged(&[
                "ERROR",
                "a task of the agent panicked",
                &format!("task=\"{task}\"")
            ]),
            "{task}: {log}"
        );
        assert!(
            agent.logged(&[&format!("AUTHSTAT_TEST_PANIC_TASK={task}")]),
            "the panic's message is logged: {log}"
        );
    }
}
