//! Janssen's audit records and token events, as the server writes them.

/// The header Janssen's log4j layout puts before every audit record (the time, the MAC, the
/// thread, the logger, the caller), then ` - ` and the record.
pub fn header(thread: &str) -> String {
    format!(
        "2024-02-01 00:00:03,611 INFO  [02-42-AC-11-00-02] [{thread}]  \
         [io.jans.as.server.audit.ApplicationAuditLogger] (ApplicationAuditLogger.java:112) - "
    )
}

/// `body` (the lines between the braces) as a whole multi-line record with its header.
pub fn with_header(body: &str) -> String {
    format!("{}{{\n{body}\n}}\n", header("worker-1"))
}

/// One audit record (`OAuth2AuditLog`), written pretty-printed as Janssen does.
#[derive(Clone, Debug)]
pub struct AuditRecord {
    /// The logging thread (in the header).
    pub thread: String,
    pub ip: String,
    pub action: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub mac_address: Option<String>,
    pub client_id: String,
    pub username: Option<String>,
    pub scope: Option<String>,
    pub success: bool,
}

impl AuditRecord {
    /// A record of `action` at `timestamp` by `username`, with plain values for the rest.
    pub fn new(action: &str, timestamp: i64, username: Option<&str>, success: bool) -> Self {
        Self {
            thread: "worker-1".into(),
            ip: "10.0.0.9".into(),
            action: action.into(),
            timestamp,
            mac_address: None,
            client_id: "c".into(),
            username: username.map(str::to_owned),
            scope: None,
            success,
        }
    }

    /// The record's text: header, pretty-printed JSON, newline.
    pub fn text(&self) -> String {
        format!("{}{}\n", header(&self.thread), self.body())
    }

    /// The pretty-printed JSON alone: what Janssen sends to its audit queue.
    pub fn body(&self) -> String {
        let opt = |v: &Option<String>| v.as_ref().map_or("null".to_owned(), |s| format!("\"{s}\""));
        format!(
            "{{\n  \"ip\" : \"{}\",\n  \"action\" : \"{}\",\n  \"timestamp\" : {},\n  \
             \"macAddress\" : {},\n  \"clientId\" : {},\n  \"username\" : {},\n  \
             \"scope\" : {},\n  \"success\" : {}\n}}",
            self.ip,
            self.action,
            self.timestamp,
            opt(&self.mac_address),
            json_string(&self.client_id),
            opt(&self.username),
            opt(&self.scope),
            self.success
        )
    }
}

/// `s` as a JSON string, escaped as Jackson writes it.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One token event line (docs/token-events.md).
pub fn token_event(timestamp: i64, grant_type: &str, token_type: &str, client_id: &str) -> String {
    format!(
        "{{\"timestamp\":{timestamp},\"grant_type\":\"{grant_type}\",\"token_type\":\"{token_type}\",\"client_id\":\"{client_id}\"}}\n"
    )
}
