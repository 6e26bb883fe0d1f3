//! The record formats: [`JanssenAuditParser`], [`TokenEventsParser`] and
//! [`KeycloakEventsParser`].

mod fast;
mod janssen;
mod keycloak;
mod token;

use authstat_core::ingest::{ParseError, ParseErrorKind};

pub use janssen::JanssenAuditParser;
pub use keycloak::KeycloakEventsParser;
pub use token::TokenEventsParser;

use crate::registry::Format;

/// authstat's own record formats (one line each).
pub(crate) fn formats() -> Vec<Format> {
    vec![
        Format {
            name: "janssen_audit",
            about: "Janssen's audit log (pretty-printed or compact JSON records)",
            parser: || Box::new(JanssenAuditParser),
        },
        Format {
            name: "token_events",
            about: "JSON lines, one issued token each (docs/token-events.md)",
            parser: || Box::new(TokenEventsParser),
        },
        Format {
            name: "keycloak_events",
            about: "Keycloak's event log (org.keycloak.events; plain or JSON logging; docs/keycloak.md)",
            parser: || Box::new(KeycloakEventsParser),
        },
    ]
}

/// The longest grant type, token type or action kept (what the SQL backends can store).
pub(crate) const MAX_KEY_LEN: usize = 255;

/// Classifies a serde_json error by what was wrong.
fn json_error(e: serde_json::Error) -> ParseError {
    use serde_json::error::Category;
    let message = e.to_string();
    let kind = match e.classify() {
        Category::Data if message.starts_with("missing field") => ParseErrorKind::MissingField,
        Category::Data => ParseErrorKind::WrongType,
        Category::Syntax | Category::Eof | Category::Io => ParseErrorKind::MalformedJson,
    };
    ParseError { kind, message }
}

fn error(kind: ParseErrorKind, message: impl Into<String>) -> ParseError {
    ParseError {
        kind,
        message: message.into(),
    }
}

/// Records must be UTF-8: the record as text.
fn require_utf8(bytes: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(bytes)
        .map_err(|_| error(ParseErrorKind::InvalidUtf8, "record is not valid UTF-8"))
}

/// An event's timestamp must fall in a month authstat can store.
fn require_month(event: &authstat_core::event::Event<'_>) -> Result<(), ParseError> {
    event.month().map(|_| ()).map_err(|_| {
        let timestamp = event.timestamp();
        error(
            ParseErrorKind::BadTimestamp,
            format!("timestamp {timestamp} is outside the years 0000-9999"),
        )
    })
}

/// The first line of `buf` without its terminator, and the length with it.
fn first_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let nl = memchr::memchr(b'\n', buf)?;
    let line = &buf[..nl];
    Some((line.strip_suffix(b"\r").unwrap_or(line), nl + 1))
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}
