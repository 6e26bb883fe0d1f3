//! Starting agents and talking HTTP to them (a minimal HTTP/1.1 client over a real socket).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use authstat::RunningAgent;
use authstat::resolve::resolve;
use authstat_test_support::janssen::AuditRecord;

/// A temporary directory with the sample logs and a configuration using `backend`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// The records its logs hold (the sample: 9 audit records and 6 token events).
    pub records: u64,
}

/// The current month (UTC), `yyyyMM`.
pub fn current_month() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    authstat_core::Month::from_epoch_millis(now)
        .unwrap()
        .to_string()
}

pub const TOKEN: &str = "example-token";

impl Fixture {
    pub fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        for f in ["jans-auth_audit.log", "token-events.jsonl"] {
            std::fs::copy(
                examples.join("logs").join(f),
                dir.path().join("logs").join(f),
            )
            .unwrap();
        }
        let config = std::fs::read_to_string(examples.join("authstat.yaml"))
            .unwrap()
            .replace("${AUTHSTAT_LISTEN_ADDR:-127.0.0.1:8080}", "127.0.0.1:0")
            .replace("flush_interval_secs: 5", "flush_interval_secs: 3600");
        std::fs::write(
            dir.path().join("authstat.yaml"),
            format!("node_id: example-node\n{config}\n{extra}"),
        )
        .unwrap();
        Self { dir, records: 15 }
    }

    /// Appends a successful `USER_AUTHORIZATION` of each of `users`, stamped now, to the audit
    /// log: the current month gets active users.
    pub fn add_current_month_users(&mut self, users: &[&str]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let log = self.dir.path().join("logs/jans-auth_audit.log");
        for user in users {
            let record = AuditRecord::new("USER_AUTHORIZATION", now as i64, Some(user), true);
            append(&log, &record.text());
            self.records += 1;
        }
    }

    /// The real binary on this fixture's configuration.
    pub fn spawn(&self) -> Spawned {
        spawn_agent(&self.config_path(), self.dir.path(), &[])
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("authstat.yaml")
    }

    pub async fn start(&self) -> RunningAgent {
        let config =
            authstat_config::load(&self.config_path(), &std::collections::HashMap::new()).unwrap();
        authstat::start(
            resolve(&self.config_path(), config).unwrap(),
            Default::default(),
        )
        .await
        .unwrap()
    }
}

/// A response: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request over a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    exchange(&mut stream, method, target, headers, body).unwrap()
}

/// One HTTP/1.1 request and its response over `stream` (a socket, or a TLS session over one).
pub fn exchange<S: Read + Write>(
    stream: &mut S,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Response> {
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers_chunked(&text) {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn headers_chunked(text: &str) -> bool {
    text.to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

pub fn get(addr: SocketAddr, target: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    request(addr, "GET", target, &headers, "")
}

/// Waits until `f` holds (explicit synchronisation on an observable condition).
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg_attr(not(feature = "postgres"), allow(unused_imports))]
pub use authstat_test_support::env::required_env;
pub use authstat_test_support::files::append;

/// The Python of the tests' tools (prometheus_client, kubernetes-validate): a virtual
/// environment that scripts/test makes.
pub fn python() -> String {
    std::env::var("AUTHSTAT_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("AUTHSTAT_TEST_PYTHON is not set: run the suite with scripts/test, which makes a virtual environment with the Python tools the tests use")
    })
}

/// Starts an agent in-process and waits until it has read the sample logs (15 records) and
/// flushed once.
pub async fn start_and_flush(fixture: &Fixture) -> RunningAgent {
    start_and_flush_records(fixture, fixture.records).await
}

/// Starts an agent in-process and waits until it has read (or skipped) `records` records and
/// flushed once.
pub async fn start_and_flush_records(fixture: &Fixture, records: u64) -> RunningAgent {
    use std::sync::atomic::Ordering;
    let agent = fixture.start().await;
    let stats = agent.stats.clone();
    wait_until("the logs to be read", || {
        stats.reading.records.load(Ordering::Relaxed)
            + stats.reading.skipped.load(Ordering::Relaxed)
            >= records
    });
    agent.flush_now();
    wait_until("a flush", || {
        stats.flushing.applied.load(Ordering::Acquire) >= 1
    });
    agent
}

/// The real binary running `authstat run --config <config>`.
pub struct Spawned {
    pub child: std::process::Child,
    /// Where it listens (from its `listening addr=` log line).
    pub addr: SocketAddr,
    /// Everything it logged so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The thread that reads its stderr into `log` (joined by `wait_exit`, so that the log is
    /// complete once the process has exited).
    reader: Option<std::thread::JoinHandle<()>>,
}

/// A test that fails must not leave its agent running (it would hold the test runner's pipes).
impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Spawned {
    /// Sends a signal (`TERM`, `HUP`, …).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([&format!("-{name}"), &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits (at most 30 s) for the process to end; a process that does not is killed and the
    /// test fails.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the agent did not exit within 30 s; its log:\n{}",
                    self.log.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether a logged line contains every one of `needles`.
    pub fn logged(&self, needles: &[&str]) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    }
}

/// Runs the binary in `cwd` with `envs`, waiting until it listens.
pub fn spawn_agent(config: &Path, cwd: &Path, envs: &[(&str, &str)]) -> Spawned {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authstat"));
    command
        .args(["run", "--config"])
        .arg(config)
        .current_dir(cwd)
        .env_remove("AUTHSTAT_CONFIG")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped());
    for (k, v) in envs {
        command.env(k, v);
    }
    spawn_command(command)
}

/// Runs `command` (an `authstat run` with its stderr piped), waiting until it serves.
pub fn spawn_command(command: std::process::Command) -> Spawned {
    spawn_until(command, "serving addr=")
}

/// Runs `command` (an `authstat run` with its stderr piped), waiting until it has logged
/// `marker` followed by its address: `"listening (probes answer now; statistics once the
/// backend is ready) addr="` as soon as the port is bound, `"serving addr="` when it is ready.
pub fn spawn_until(command: std::process::Command, marker: &str) -> Spawned {
    let mut spawned = spawn_command_raw(command);
    let mut addr = None;
    wait_until("the agent to listen", || {
        addr = spawned.log.lock().unwrap().iter().find_map(|l| {
            let rest = &l[l.find(marker)? + marker.len()..];
            rest.split(|c: char| c.is_whitespace() || c == '"')
                .next()?
                .parse()
                .ok()
        });
        addr.is_some()
    });
    spawned.addr = addr.unwrap();
    spawned
}

/// Runs `command` with its stderr collected, without waiting for anything (its `addr` is
/// unspecified).
pub fn spawn_command_raw(
    mut command: impl std::borrow::BorrowMut<std::process::Command>,
) -> Spawned {
    use std::io::BufRead;
    let mut child = command
        .borrow_mut()
        .env_remove("AUTHSTAT_CONFIG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Spawned {
        child,
        addr: ([0, 0, 0, 0], 0).into(),
        log,
        reader: Some(reader),
    }
}

// ---- The real binary

/// Runs `command` and fails the test, showing its stderr, unless it succeeds.
pub fn run_ok(command: &mut std::process::Command) -> std::process::Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn authstat() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_authstat"));
    c.env_remove("RUST_LOG").env_remove("AUTHSTAT_CONFIG");
    c
}

/// The columns of `authstat query --month 202402`'s February row: month, active users,
/// authentications ok, failed, tokens.
pub fn february(fixture: &Fixture) -> Vec<String> {
    february_row(fixture).unwrap_or_else(|| panic!("no February row"))
}

pub fn february_row(fixture: &Fixture) -> Option<Vec<String>> {
    let out = authstat()
        .args(["query", "--month", "202402", "--config"])
        .arg(fixture.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().find(|l| l.starts_with("202402"))?;
    Some(row.split_whitespace().map(str::to_owned).collect())
}

/// The SQLite backend in the file at `path` (one connection), as the tests read it beside an
/// agent.
pub async fn sqlite_store(path: &Path) -> std::sync::Arc<dyn authstat_core::store::StatStore> {
    let options = authstat_backends::options::SqliteConfig {
        path: path.to_path_buf(),
        busy_timeout_ms: 5000,
        pool_size: 1,
    };
    authstat_backends::build(&options.backend()).await.unwrap()
}

/// [`sqlite_store`] with a runtime of its own, for tests without one.
pub fn sqlite_store_blocking(
    path: &Path,
) -> (
    tokio::runtime::Runtime,
    std::sync::Arc<dyn authstat_core::store::StatStore>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(sqlite_store(path));
    (rt, store)
}

/// The dashboard page at `target`, after a login with the example token (blocking).
pub fn dashboard_page(addr: SocketAddr, target: &str) -> Response {
    let login = request(
        addr,
        "POST",
        "/dashboard/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "http://test"),
        ],
        &format!("token={TOKEN}"),
    );
    let cookie = login.header("set-cookie").expect("a session").to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    request(addr, "GET", target, &[("cookie", &cookie)], "")
}

/// Writes the configuration of one of several agents on one SQLite database: `node`, its own
/// logs folder `logs-<node>` (audit records `*.log`, token events `*.jsonl`), the example
/// token; `extra` is appended (top-level keys).
pub fn node_config(dir: &Path, node: &str, extra: &str) -> PathBuf {
    let logs = dir.join(format!("logs-{node}"));
    std::fs::create_dir_all(&logs).unwrap();
    let path = dir.join(format!("{node}.yaml"));
    std::fs::write(
        &path,
        format!(
            "node_id: {node}\nlisten_addr: 127.0.0.1:0\nflush_interval_secs: 3600\n\
             sources:\n  - {{name: audit, type: file, format: janssen_audit, paths: [{logs}/*.log]}}\n\
             \x20 - {{name: tokens, type: file, format: token_events, paths: [{logs}/*.jsonl]}}\n\
             backend: {{type: sqlite, path: {db}}}\n\
             api:\n  scope: jans_stat\n  auth:\n    type: static\n    tokens:\n      - name: t\n        sha256: {sha}\n        scopes: [jans_stat]\n{extra}",
            logs = logs.display(),
            db = dir.join("db.sqlite").display(),
            sha = authstat_test_support::token::sha256_hex(TOKEN),
        ),
    )
    .unwrap();
    path
}

/// Starts the agent of `path` in-process and waits until it read `records` records and flushed.
pub async fn start_node(path: &Path, records: u64) -> RunningAgent {
    use std::sync::atomic::Ordering;
    let config = authstat_config::load(path, &std::collections::HashMap::new()).unwrap();
    let agent = authstat::start(resolve(path, config).unwrap(), Default::default())
        .await
        .unwrap();
    let stats = agent.stats.clone();
    wait_until("the log to be read", || {
        stats.reading.records.load(Ordering::Relaxed) >= records
    });
    agent.flush_now();
    wait_until("a flush", || {
        stats.flushing.applied.load(Ordering::Acquire) >= 1
    });
    agent
}
