//! Starting, the hard cases: the port is taken (a clear error at once); the database is down
//! when the agent starts (it keeps trying, answers its probes meanwhile, and counts everything
//! once the database is up); a stop signal while it waits (exit 0 at once).

use std::net::TcpListener;
#[cfg(feature = "postgres")]
use std::net::{SocketAddr, TcpStream};

use crate::support::*;

/// A port that refuses connections now (bound, not listening) and that nobody else can take
/// while the socket lives; [`listen`] hands it to a server without releasing it.
fn refusing() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// The port of `socket` starts listening (a server comes up on it).
#[cfg(feature = "postgres")]
fn listen(socket: tokio::net::TcpSocket) -> TcpListener {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let listener = runtime.block_on(async { socket.listen(16).unwrap().into_std().unwrap() });
    listener.set_nonblocking(false).unwrap();
    listener
}

fn agent_command(fixture: &Fixture) -> std::process::Command {
    let mut command = authstat();
    command
        .args(["run", "--config"])
        .arg(fixture.config_path())
        .current_dir(fixture.dir.path())
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped());
    command
}

/// Replaces the example's SQLite backend with `backend` (YAML, at the top level).
fn with_backend(fixture: &Fixture, backend: &str) {
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let sqlite = "backend:\n  type: sqlite\n  path: data/authstat.db\n";
    assert!(text.contains(sqlite));
    std::fs::write(&path, text.replace(sqlite, backend)).unwrap();
}

#[test]
fn a_port_in_use_is_a_clear_error_at_once() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let fixture = Fixture::new("");
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("listen_addr: 127.0.0.1:0", &format!("listen_addr: {addr}")),
    )
    .unwrap();
    let out = agent_command(&fixture).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("binding {addr} (listen_addr)")) && err.contains("in use"),
        "{err}"
    );
    assert!(
        !fixture.dir.path().join("data/authstat.db").exists(),
        "nothing was opened before the port"
    );
}

/// A MongoDB backend on a port where nothing listens yet: the agent waits, probes answer, and
/// SIGTERM ends the wait with exit code 0.
#[cfg(feature = "mongodb")]
#[test]
fn a_stop_signal_ends_the_wait_for_the_database() {
    let fixture = Fixture::new("");
    let (_refusing, port) = refusing();
    with_backend(
        &fixture,
        &format!(
            "backend:\n  type: mongodb\n  uri: mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=300\n  database: authstat_startup\n"
        ),
    );
    let mut agent = spawn_until(agent_command(&fixture), "backend is ready) addr=");
    wait_until("a failed attempt", || {
        agent.logged(&[
            "the backend is unavailable",
            "connecting to the mongodb backend",
        ])
    });
    assert_eq!(get(agent.addr, "/livez", None).status, 200);
    let ready = get(agent.addr, "/readyz", None);
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("connecting to the mongodb backend"),
        "{}",
        ready.body
    );
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
    assert!(agent.logged(&["stopped while starting"]));
}

#[cfg(feature = "postgres")]
/// Forwards every connection to `to` (a database that "comes up" when this starts).
fn forward(listener: TcpListener, to: SocketAddr) {
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(to) else {
                continue;
            };
            for (mut from, mut into) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut into);
                    let _ = into.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
}

/// PostgreSQL is down when the agent starts: it binds its port, answers `/livez` (200),
/// `/readyz` (503, naming the wait), the health check (`starting`) and the stat endpoint (503
/// with a JSON error), retries, and once the database is up counts the logs exactly as an
/// agent started with the database up.
#[cfg(feature = "postgres")]
#[test]
fn the_database_down_at_start() {
    let admin = required_env("AUTHSTAT_TEST_POSTGRES_URL", "PostgreSQL");
    let url = authstat_test_support::db::postgres("authstat_startup");
    let db = url.rsplit_once('/').unwrap().1;
    let real: SocketAddr = {
        let host_port = admin.split('@').nth(1).unwrap().split('/').next().unwrap();
        host_port.parse().unwrap()
    };
    let (socket, port) = refusing();
    let fixture = Fixture::new("");
    with_backend(
        &fixture,
        &format!(
            "backend:\n  type: postgres\n  url: postgres://postgres@127.0.0.1:{port}/{db}?connect_timeout=1\n"
        ),
    );
    let mut agent = spawn_until(agent_command(&fixture), "backend is ready) addr=");
    wait_until("a failed attempt", || {
        agent.logged(&[
            "the backend is unavailable",
            "connecting to the postgres backend",
        ])
    });
    assert_eq!(get(agent.addr, "/livez", None).status, 200);
    let ready = get(agent.addr, "/readyz", None);
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("connecting to the postgres backend"),
        "{}",
        ready.body
    );
    let health = get(agent.addr, "/jans-auth/sys/health-check", None);
    assert_eq!(health.json()["status"], "starting", "{}", health.body);
    let stat = get(
        agent.addr,
        "/jans-auth/restv1/internal/stat?month=202402",
        Some(TOKEN),
    );
    assert_eq!(stat.status, 503);
    assert_eq!(stat.json()["error"], "temporarily_unavailable");

    // The database comes up.
    forward(listen(socket), real);
    wait_until("the agent to serve", || agent.logged(&["serving addr="]));
    wait_until("ready", || get(agent.addr, "/readyz", None).status == 200);
    let stat = get(
        agent.addr,
        "/jans-auth/restv1/internal/stat?month=202402",
        Some(TOKEN),
    );
    assert_eq!(stat.status, 200, "{}", stat.body);
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
    // What an agent started with the database up stores (see binary.rs).
    assert_eq!(&february(&fixture)[..4], ["202402", "2", "2", "1"]);
}
