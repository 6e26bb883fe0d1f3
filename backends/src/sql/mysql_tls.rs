//! MySQL / MariaDB over TLS as the URL asks (`ssl_mode`, `ssl_ca`, `ssl_cert`, `ssl_key`), also
//! where the client library does not: MariaDB's Connector/C (what Debian ships as
//! libmariadb) ignores `ssl_mode`, so with it `ssl_mode=verify_identity` would check no host
//! name, and `required` would not refuse a server without TLS. So authstat enforces the mode on
//! every new connection itself:
//!
//! - `required`, `verify_ca`, `verify_identity`: the session must be encrypted (its
//!   `Ssl_version` is asked), or the connection is refused;
//! - `verify_ca`, `verify_identity`: `ssl_ca` is required (the library checks the server's
//!   chain against it);
//! - `verify_identity`: before the connection is used, a TLS handshake of authstat's own
//!   (rustls, the MySQL protocol's SSL request) checks the server's certificate against
//!   `ssl_ca` and the URL's host name.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use diesel::RunQueryDsl as _;

/// How the URL asks for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Required,
    VerifyCa,
    VerifyIdentity,
}

/// What the URL asks of TLS, and what checking it needs.
#[derive(Debug)]
pub(crate) struct MysqlTls {
    mode: Mode,
    host: String,
    port: u16,
    ca: Option<PathBuf>,
    client: Option<(PathBuf, PathBuf)>,
    timeout: Duration,
}

impl MysqlTls {
    /// What `url` asks for; `None` when it asks for no TLS (no `ssl_mode`, or `disabled` /
    /// `preferred`); an error for a mode that cannot be checked as asked.
    pub(crate) fn from_url(url: &str, timeout: Duration) -> Result<Option<Arc<Self>>, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("the URL: {e}"))?;
        let query = |key: &str| {
            parsed
                .query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let mode = match query("ssl_mode").map(|m| m.to_ascii_lowercase()).as_deref() {
            None | Some("disabled" | "preferred") => return Ok(None),
            Some("required") => Mode::Required,
            Some("verify_ca") => Mode::VerifyCa,
            Some("verify_identity") => Mode::VerifyIdentity,
            Some(other) => {
                return Err(format!(
                    "ssl_mode={other}: expected disabled, preferred, required, verify_ca or verify_identity"
                ));
            }
        };
        let ca = query("ssl_ca").map(PathBuf::from);
        if mode != Mode::Required && ca.is_none() {
            return Err(format!(
                "ssl_mode={}: needs ssl_ca, the CA file to check the server's certificate with",
                query("ssl_mode").unwrap_or_default()
            ));
        }
        let client = match (query("ssl_cert"), query("ssl_key")) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => return Err("ssl_cert and ssl_key go together".into()),
        };
        Ok(Some(Arc::new(MysqlTls {
            mode,
            host: parsed.host_str().unwrap_or("localhost").to_owned(),
            port: parsed.port().unwrap_or(3306),
            ca,
            client,
            timeout,
        })))
    }

    /// Checks a new connection: the server's identity (`verify_identity`), then that the
    /// session is encrypted.
    pub(crate) fn check(&self, conn: &mut diesel::MysqlConnection) -> Result<(), String> {
        if self.mode == Mode::VerifyIdentity {
            self.verify_identity()?;
        }
        #[derive(diesel::QueryableByName)]
        struct Status {
            #[diesel(sql_type = diesel::sql_types::Text, column_name = "Value")]
            value: String,
        }
        let status: Vec<Status> = diesel::sql_query("SHOW SESSION STATUS LIKE 'Ssl_version'")
            .load(conn)
            .map_err(|e| format!("asking the session's TLS version: {e}"))?;
        match status.first() {
            Some(s) if !s.value.is_empty() => Ok(()),
            _ => Err(
                "the session is not encrypted although the URL's ssl_mode requires TLS \
                      (does the server have TLS on?)"
                    .into(),
            ),
        }
    }

    /// A TLS handshake with the server, checking its certificate against `ssl_ca` and the
    /// host name, after the MySQL protocol's greeting and SSL request.
    fn verify_identity(&self) -> Result<(), String> {
        let now = std::time::SystemTime::now();
        let ca = self.ca.as_ref().expect("verify_identity has a CA");
        let roots =
            authstat_tls::read_file(ca).and_then(|pem| authstat_tls::roots(ca, &pem, now))?;
        let identity = match &self.client {
            Some((cert, key)) => {
                let (c, k) = (
                    authstat_tls::read_file(cert)?,
                    authstat_tls::read_file(key)?,
                );
                Some(authstat_tls::identity(
                    (cert, &c),
                    (key, &k),
                    authstat_tls::Usage::Client,
                    now,
                )?)
            }
            None => None,
        };
        let config = authstat_tls::client_config(roots, identity)?;
        let mut tcp = self.greeted()?;
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| format!("host name {}: {e}", self.host))?;
        let mut session = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        while session.is_handshaking() {
            session.complete_io(&mut tcp).map_err(|e| {
                format!(
                    "the server's certificate was refused (ssl_mode=verify_identity, host {}): {e}",
                    self.host
                )
            })?;
        }
        Ok(())
    }

    /// A connection to the server that has read its greeting and sent the SSL request.
    fn greeted(&self) -> Result<TcpStream, String> {
        let io = |e: std::io::Error| format!("{}:{}: {e}", self.host, self.port);
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| format!("{}: no address", self.host))?;
        let mut tcp = TcpStream::connect_timeout(&addr, self.timeout).map_err(io)?;
        tcp.set_read_timeout(Some(self.timeout)).map_err(io)?;
        tcp.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let mut header = [0u8; 4];
        tcp.read_exact(&mut header).map_err(io)?;
        let len =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        let mut greeting = vec![0u8; len.min(1 << 16)];
        tcp.read_exact(&mut greeting).map_err(io)?;
        if !server_offers_tls(&greeting) {
            return Err(
                "the server does not offer TLS although the URL's ssl_mode requires it".into(),
            );
        }
        // SSLRequest: capabilities, the largest packet, utf8mb4, 23 zero bytes.
        const CAPABILITIES: u32 =
            0x0000_0001 | 0x0000_0200 | 0x0000_0800 | 0x0000_8000 | 0x0008_0000;
        let mut request = vec![32, 0, 0, header[3].wrapping_add(1)];
        request.extend(CAPABILITIES.to_le_bytes());
        request.extend((16u32 << 20).to_le_bytes());
        request.push(45);
        request.extend([0u8; 23]);
        tcp.write_all(&request).map_err(io)?;
        Ok(tcp)
    }
}

/// Whether a greeting (protocol 10) has the CLIENT_SSL capability.
fn server_offers_tls(greeting: &[u8]) -> bool {
    if greeting.first() != Some(&10) {
        return false;
    }
    // Protocol version, the server's version (NUL-terminated), thread id (4), the first part of
    // the scramble (8), a filler (1), then the lower capability flags (2).
    let Some(end) = greeting[1..].iter().position(|b| *b == 0) else {
        return false;
    };
    let flags = 1 + end + 1 + 4 + 8 + 1;
    greeting
        .get(flags..flags + 2)
        .is_some_and(|f| u16::from_le_bytes([f[0], f[1]]) & 0x0800 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(1);

    #[test]
    fn the_url_says_what_to_enforce() {
        let of = |url: &str| MysqlTls::from_url(url, T);
        assert!(of("mysql://u@h/db").unwrap().is_none());
        assert!(of("mysql://u@h/db?ssl_mode=PREFERRED").unwrap().is_none());
        let required = of("mysql://u@h/db?ssl_mode=required").unwrap().unwrap();
        assert_eq!(required.mode, Mode::Required);
        let identity =
            of("mysql://u@db.example.com:3307/x?ssl_mode=VERIFY_IDENTITY&ssl_ca=/ca.pem")
                .unwrap()
                .unwrap();
        assert_eq!(
            (identity.mode, identity.host.as_str(), identity.port),
            (Mode::VerifyIdentity, "db.example.com", 3307)
        );
        assert!(
            of("mysql://u@h/db?ssl_mode=verify_ca")
                .unwrap_err()
                .contains("needs ssl_ca")
        );
        assert!(
            of("mysql://u@h/db?ssl_mode=strict")
                .unwrap_err()
                .contains("expected disabled")
        );
        assert!(
            of("mysql://u@h/db?ssl_mode=required&ssl_cert=/c.pem")
                .unwrap_err()
                .contains("go together")
        );
    }

    #[test]
    fn the_greeting_says_whether_the_server_offers_tls() {
        // Protocol 10, "10.11.6-MariaDB\0", thread id, 8 bytes of scramble, a filler, the flags.
        let greeting = |flags: u16| {
            let mut g = vec![10];
            g.extend(b"10.11.6-MariaDB\0");
            g.extend([1, 0, 0, 0]);
            g.extend([b'x'; 8]);
            g.push(0);
            g.extend(flags.to_le_bytes());
            g
        };
        assert!(server_offers_tls(&greeting(0xfffe)));
        assert!(!server_offers_tls(&greeting(0xfffe & !0x0800)));
        assert!(!server_offers_tls(&[0xff, 0x15, 0x04]));
        assert!(!server_offers_tls(&greeting(0x0800)[..20]));
    }
}
