//! A TCP proxy in front of the MongoDB-protocol test server that cuts the connection at a chosen
//! operation: the server "stops" before it sees the operation, or after it applied it and
//! before its answer reaches the client. jongodb keeps its data in memory only, so stopping
//! the real server would lose the very data the tests check; cutting the wire is the same fault
//! as seen by authstat.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Where the next cut happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Every operation passes.
    Never,
    /// After `n` more data operations pass, the next one is refused (the connection closes
    /// before the server sees it), and so is everything after it until [`Proxy::heal`].
    Refuse(usize),
    /// After `n` more data operations pass, the next one reaches the server and is applied,
    /// but its answer is dropped and the connection closed; later ones are refused until
    /// [`Proxy::heal`].
    LoseAnswer(usize),
}

/// The proxy; dropped, it stops accepting.
pub struct Proxy {
    pub uri: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    target: String,
    cut: Mutex<Cut>,
    /// Set once a cut happened: everything is refused until healed.
    down: AtomicBool,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `host:port` of a `mongodb://host:port…` URI.
pub fn host_port(uri: &str) -> String {
    uri.trim_start_matches("mongodb://")
        .split(['/', '?'])
        .next()
        .unwrap()
        .to_owned()
}

impl Proxy {
    /// A proxy to the server of `uri` (`mongodb://host:port…`).
    pub async fn start(uri: &str) -> Self {
        let target = host_port(uri);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            target,
            cut: Mutex::new(Cut::Never),
            down: Default::default(),
        });
        let accepting = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, accepting.clone()));
            }
        });
        Self {
            uri: format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
            state,
            task,
        }
    }

    /// Cuts as `cut` says (from now on).
    pub fn cut(&self, cut: Cut) {
        *self.state.cut.lock().unwrap() = cut;
    }

    /// The server is reachable again.
    pub fn heal(&self) {
        *self.state.cut.lock().unwrap() = Cut::Never;
        self.state.down.store(false, Ordering::SeqCst);
    }

    /// Whether a cut happened since the last heal.
    pub fn is_down(&self) -> bool {
        self.state.down.load(Ordering::SeqCst)
    }
}

/// One wire-protocol message: its bytes (the length prefix included).
async fn read_message(stream: &mut (impl AsyncRead + Unpin)) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.ok()?;
    let total = u32::from_le_bytes(len) as usize;
    let mut message = len.to_vec();
    message.resize(total.max(4), 0);
    stream.read_exact(&mut message[4..]).await.ok()?;
    Some(message)
}

/// The command of an `OP_MSG` (the first key of its body), if it is one.
fn command(message: &[u8]) -> Option<&str> {
    const OP_MSG: i32 = 2013;
    let opcode = i32::from_le_bytes(message.get(12..16)?.try_into().ok()?);
    // Header (16), flag bits (4), section kind 0 (1), the body's length (4), the first
    // element's type (1), then its name.
    if opcode != OP_MSG || *message.get(20)? != 0 {
        return None;
    }
    let name = message.get(26..)?;
    let end = name.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&name[..end]).ok()
}

/// Commands that read or write data, and the health check's `ping` (not the driver's
/// handshakes and heartbeats).
fn is_data(command: Option<&str>) -> bool {
    matches!(
        command,
        Some(
            "find"
                | "insert"
                | "update"
                | "delete"
                | "findAndModify"
                | "aggregate"
                | "getMore"
                | "ping"
        )
    )
}

/// Relays one connection, message by message in both directions (the driver's monitoring
/// connections may stream answers), cutting data operations as the state says.
async fn relay(client: TcpStream, state: Arc<State>) {
    let Ok(server) = TcpStream::connect(&state.target).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // The answer to drop (the cut operation's), once the server sends it.
    let lose = AtomicBool::new(false);
    let up = async {
        while let Some(request) = read_message(&mut from_client).await {
            if is_data(command(&request)) {
                if state.down.load(Ordering::SeqCst) {
                    return;
                }
                let mut cut = state.cut.lock().unwrap();
                match &mut *cut {
                    Cut::Never => {}
                    Cut::Refuse(0) => {
                        state.down.store(true, Ordering::SeqCst);
                        return;
                    }
                    Cut::LoseAnswer(0) => {
                        state.down.store(true, Ordering::SeqCst);
                        lose.store(true, Ordering::SeqCst);
                    }
                    Cut::Refuse(n) | Cut::LoseAnswer(n) => *n -= 1,
                }
                drop(cut);
            }
            if to_server.write_all(&request).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        while let Some(answer) = read_message(&mut from_server).await {
            // The server applied the cut operation; the client never hears.
            if lose.load(Ordering::SeqCst) {
                return;
            }
            if to_client.write_all(&answer).await.is_err() {
                return;
            }
        }
    };
    // Either side ending closes both.
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
