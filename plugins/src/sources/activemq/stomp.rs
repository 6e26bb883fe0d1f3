//! A minimal STOMP 1.2 client over a blocking TCP socket, with or without TLS: connect,
//! subscribe with client-individual acknowledgement, receive frames without waiting,
//! acknowledge with a receipt. Only what the `activemq` source needs.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The prefix of a broker reached over TLS (ActiveMQ's `stomp+ssl` transport connector).
pub(crate) const TLS_SCHEME: &str = "stomp+ssl://";

/// The longest frame accepted (a larger one is a protocol error: the connection is dropped).
const MAX_FRAME: usize = 16 << 20;

/// One received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `MESSAGE`, `RECEIPT`, `ERROR`, `CONNECTED`.
    pub command: String,
    /// Headers, unescaped (the first of a repeated header wins, as STOMP 1.2 says).
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Frame {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// The bytes to and from a broker: plain TCP, or TLS over it (`stomp+ssl://`).
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// How a source talks TLS to its brokers: the system's trusted certificates (or those of
/// `SSL_CERT_FILE` / `SSL_CERT_DIR`), TLS 1.2 or 1.3, *ring*'s cryptography as everywhere in
/// authstat. Fails when no trusted certificate can be loaded.
pub fn tls_config() -> io::Result<Arc<rustls::ClientConfig>> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no trusted certificate to check the broker's with ({why}); set SSL_CERT_FILE"),
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The TLS configuration of a source's `tls:` options (paths relative to `base`): the brokers'
/// CA (or the system's), and the client certificate. An error names the option and the problem.
pub fn tls_config_of(
    tls: &super::options::StompTls,
    base: &std::path::Path,
) -> Result<Arc<rustls::ClientConfig>, (String, String)> {
    let now = std::time::SystemTime::now();
    let roots = match &tls.ca_file {
        Some(ca) => {
            let ca = base.join(ca);
            authstat_tls::read_file(&ca)
                .and_then(|pem| authstat_tls::roots(&ca, &pem, now))
                .map_err(|e| ("tls.ca_file".to_owned(), e))?
        }
        None => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            roots
        }
    };
    let identity = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let (cert, key) = (base.join(cert), base.join(key));
            let read = |p: &std::path::Path| authstat_tls::read_file(p);
            let pair = read(&cert).and_then(|c| {
                let k = read(&key)?;
                authstat_tls::identity((&cert, &c), (&key, &k), authstat_tls::Usage::Client, now)
            });
            Some(pair.map_err(|e| ("tls.cert_file".to_owned(), e))?)
        }
        _ => None,
    };
    authstat_tls::client_config(roots, identity).map_err(|e| ("tls".to_owned(), e))
}

/// A connection to one broker.
pub struct Connection {
    stream: Stream,
    buf: Vec<u8>,
    /// When anything (a frame or a heart-beat) last arrived.
    last_heard: Instant,
    /// The broker promised to send something at least this often.
    heart_beat: Option<Duration>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.stream.tcp().peer_addr().ok())
            .finish_non_exhaustive()
    }
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ':' => out.push_str("\\c"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(':'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Encodes a frame (headers escaped, no content-length: bodies here are text without NUL).
pub fn encode(command: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = String::with_capacity(64 + body.len());
    out.push_str(command);
    out.push('\n');
    for (name, value) in headers {
        out.push_str(&escape(name));
        out.push(':');
        out.push_str(&escape(value));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(body);
    let mut bytes = out.into_bytes();
    bytes.push(0);
    bytes
}

/// The first complete frame in `buf`: the frame and the bytes it took (heart-beat newlines
/// before it included); `Ok(None)` when more bytes are needed.
pub fn decode(buf: &[u8]) -> io::Result<Option<(Frame, usize)>> {
    let start = buf
        .iter()
        .position(|&b| b != b'\n' && b != b'\r')
        .unwrap_or(buf.len());
    let rest = &buf[start..];
    let Some(head_end) = rest
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, 2))
        .or_else(|| {
            rest.windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| (i, 4))
        })
    else {
        if rest.len() > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "frame too large",
            ));
        }
        return Ok(None);
    };
    let (head_len, separator) = head_end;
    let (command, headers) = decode_head(&rest[..head_len])?;
    let body_start = head_len + separator;
    let (body, end) = match headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(len) => {
            if len > MAX_FRAME {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "frame too large",
                ));
            }
            if rest.len() < body_start + len + 1 {
                return Ok(None);
            }
            (
                rest[body_start..body_start + len].to_vec(),
                body_start + len + 1,
            )
        }
        None => match memchr::memchr(0, &rest[body_start..]) {
            Some(nul) => (
                rest[body_start..body_start + nul].to_vec(),
                body_start + nul + 1,
            ),
            None if rest.len() > MAX_FRAME => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "frame too large",
                ));
            }
            None => return Ok(None),
        },
    };
    Ok(Some((
        Frame {
            command,
            headers,
            body,
        },
        start + end,
    )))
}

/// A frame's command and headers (the first of a repeated header counts, as STOMP 1.2 says).
fn decode_head(head: &[u8]) -> io::Result<(String, HashMap<String, String>)> {
    let head = std::str::from_utf8(head)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "frame headers are not UTF-8"))?;
    let mut lines = head.lines();
    let command = lines.next().unwrap_or("").trim_end_matches('\r').to_owned();
    let mut headers = HashMap::new();
    for line in lines {
        let line = line.trim_end_matches('\r');
        if let Some((name, value)) = line.split_once(':') {
            headers
                .entry(unescape(name))
                .or_insert_with(|| unescape(value));
        }
    }
    Ok((command, headers))
}

impl Connection {
    /// Connects to `addr` (`host:port`, or `stomp+ssl://host:port` for TLS with `tls`) and
    /// logs in; waits at most `timeout` (for each step).
    pub fn open(
        addr: &str,
        tls: Option<&Arc<rustls::ClientConfig>>,
        login: Option<(&str, &str)>,
        timeout: Duration,
    ) -> io::Result<Connection> {
        let (addr, secure) = match addr.strip_prefix(TLS_SCHEME) {
            Some(rest) => (rest, true),
            None => (addr, false),
        };
        let target = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
        let tcp = TcpStream::connect_timeout(&target, timeout)?;
        tcp.set_nodelay(true)?;
        tcp.set_write_timeout(Some(timeout))?;
        // The TLS handshake reads before the first frame is answered.
        tcp.set_read_timeout(Some(timeout))?;
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let stream = if secure {
            Stream::Tls(Box::new(tls_stream(tcp, host, tls)?))
        } else {
            Stream::Plain(tcp)
        };
        let mut conn = Connection {
            stream,
            buf: Vec::new(),
            last_heard: Instant::now(),
            heart_beat: None,
        };
        let mut headers = vec![
            ("accept-version", "1.2"),
            ("host", host),
            // We send nothing between frames; the broker sends a beat every 10 s, so a silent
            // broker is noticed.
            ("heart-beat", "0,10000"),
        ];
        if let Some((user, pass)) = login {
            headers.push(("login", user));
            headers.push(("passcode", pass));
        }
        conn.send(&encode("CONNECT", &headers, ""))?;
        conn.connected(timeout)?;
        Ok(conn)
    }

    /// Waits for the broker's answer to CONNECT (within `timeout`) and takes its heart-beat.
    fn connected(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let frame = loop {
            if let Some(frame) = self.receive(Duration::from_millis(50))? {
                break frame;
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the broker did not answer CONNECT",
                ));
            }
        };
        match frame.command.as_str() {
            "CONNECTED" => {
                // heart-beat:<cx>,<cy>: the broker sends every max(cy, our 10000) ms if cx > 0.
                self.heart_beat = frame
                    .header("heart-beat")
                    .and_then(|v| v.split_once(','))
                    .and_then(|(sx, _)| sx.trim().parse::<u64>().ok())
                    .filter(|&ms| ms > 0)
                    .map(|ms| Duration::from_millis(ms.max(10_000)));
                Ok(())
            }
            "ERROR" => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                frame
                    .header("message")
                    .unwrap_or("the broker refused the connection")
                    .to_owned(),
            )),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected {other} frame"),
            )),
        }
    }

    /// Writes a frame.
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.stream.write_all(frame)?;
        self.stream.flush()
    }

    /// The next frame, waiting at most `wait` for bytes (`None`: none complete yet).
    pub fn receive(&mut self, wait: Duration) -> io::Result<Option<Frame>> {
        if let Some((frame, used)) = decode(&self.buf)? {
            self.buf.drain(..used);
            return Ok(Some(frame));
        }
        self.stream
            .tcp()
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let mut chunk = [0u8; 64 << 10];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the broker closed the connection",
                ));
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                self.last_heard = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
        if let Some(beat) = self.heart_beat
            && self.last_heard.elapsed() > beat * 3
        {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the broker sent nothing for three heart-beats",
            ));
        }
        match decode(&self.buf)? {
            Some((frame, used)) => {
                self.buf.drain(..used);
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }
}

/// A TLS session over `tcp` with the broker `host` (its certificate checked for that name).
fn tls_stream(
    tcp: TcpStream,
    host: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let config =
        tls.ok_or_else(|| io::Error::other("a stomp+ssl:// broker needs the TLS configuration"))?;
    let name = rustls::pki_types::ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let session = rustls::ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    Ok(rustls::StreamOwned::new(session, tcp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_escapes() {
        let bytes = encode(
            "SEND",
            &[("destination", "/queue/a:b"), ("x", "1\n2")],
            "body",
        );
        let (frame, used) = decode(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(frame.command, "SEND");
        assert_eq!(frame.header("destination"), Some("/queue/a:b"));
        assert_eq!(frame.header("x"), Some("1\n2"));
        assert_eq!(frame.body, b"body");
    }

    #[test]
    fn heart_beats_partial_frames_and_content_length() {
        let mut wire = b"\n\n".to_vec();
        wire.extend(
            b"MESSAGE\nmessage-id:ID\\c1\ncontent-length:3\n\na\0b\0\nRECEIPT\nreceipt-id:7\n\n\0",
        );
        assert_eq!(decode(&wire[..10]).unwrap(), None);
        let (first, used) = decode(&wire).unwrap().unwrap();
        assert_eq!(first.header("message-id"), Some("ID:1"));
        assert_eq!(first.body, b"a\0b", "content-length allows NUL in the body");
        let (second, _) = decode(&wire[used..]).unwrap().unwrap();
        assert_eq!(second.command, "RECEIPT");
        assert_eq!(second.header("receipt-id"), Some("7"));
    }
}
