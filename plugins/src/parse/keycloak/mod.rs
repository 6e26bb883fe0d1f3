//! `format: keycloak_events`: the lines of Keycloak's `org.keycloak.events` logger (its
//! `jboss-logging` event listener), in the plain and the JSON log formats (docs/keycloak.md).
//!
//! ```text
//! 08:12:20,561 WARN  [org.keycloak.events] (default task-3) type=LOGIN_ERROR, realmId=7512…, clientId=null, userId=null, ipAddress=172.20.0.1, error=expired_code
//! 2024-10-17 10:43:38,199 WARN  [org.keycloak.events] (executor-thread-26) type="LOGIN_ERROR", realmId="15b3…", realmName="test", clientId="account-console", userId="4e2f…", ipAddress="192.168.65.1", error="invalid_user_credentials"
//! {"timestamp":"2024-10-17T10:43:38.199Z","loggerName":"org.keycloak.events","level":"WARN","message":"type=\"LOGIN\", …"}
//! ```
//!
//! A Keycloak log is mostly other loggers' lines (and their stack traces): every line that is
//! not one of the events logger's is skipped without being counted. An events line that cannot
//! be read is counted as malformed. The logger is told by its place in the line (or the JSON
//! `loggerName`), so `type=` text in another logger's message is never taken for an event.
//!
//! Times without a zone are read as UTC (Keycloak's container default). The older console
//! format has no date: such a line gets the date (UTC) of the moment it is read, the day before
//! if its time of day is more than a minute ahead of the clock — right when following a live
//! log, not for old files.

use std::borrow::Cow;

use authstat_core::event::{Event, KeycloakEvent};
use authstat_core::ingest::{Frame, ParseError, ParseErrorKind, Parser};
use authstat_core::month::days_from_civil;
use authstat_core::month::now_ms;

use super::{MAX_KEY_LEN, error, first_line, is_blank, require_month, require_utf8};

/// The logger of Keycloak's event listener.
const LOGGER: &str = "org.keycloak.events";

const DAY_MS: i64 = 86_400_000;

/// The Keycloak event-log format.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeycloakEventsParser;

impl Parser for KeycloakEventsParser {
    fn format(&self) -> &'static str {
        "keycloak_events"
    }

    fn frame(&self, buf: &[u8]) -> Frame {
        match first_line(buf) {
            None => Frame::Incomplete,
            Some((line, len)) if is_blank(line) || !is_event_line(line) => Frame::Blank { len },
            Some((_, len)) => Frame::Record { len },
        }
    }

    fn parse<'a>(&self, record: &'a [u8]) -> Result<Event<'a>, ParseError> {
        let event = Event::from(keycloak_event(record)?);
        require_month(&event)?;
        Ok(event)
    }

    fn oversized_record_end(&self, buf: &[u8]) -> Option<usize> {
        memchr::memchr(b'\n', buf).map(|nl| nl + 1)
    }
}

/// A time of day (ms) on the day of `now_ms` (UTC), or the day before if it is more than a
/// minute ahead of `now_ms`.
fn dated_today(time_ms: i64, now_ms: i64) -> i64 {
    let today = now_ms - now_ms.rem_euclid(DAY_MS);
    let at = today + time_ms;
    if at > now_ms + 60_000 {
        at - DAY_MS
    } else {
        at
    }
}

/// Whether a line is one of the events logger's (plain or JSON); cheap for other lines.
fn is_event_line(line: &[u8]) -> bool {
    if memchr::memmem::find(line, LOGGER.as_bytes()).is_none() {
        return false;
    }
    let Ok(text) = std::str::from_utf8(line) else {
        // Counted as invalid UTF-8 by the parser.
        return true;
    };
    if text.trim_start().starts_with('{') {
        #[derive(serde::Deserialize)]
        struct Logger<'a> {
            #[serde(rename = "loggerName", borrow)]
            logger_name: Option<Cow<'a, str>>,
            #[serde(borrow)]
            message: Option<Cow<'a, str>>,
        }
        return match serde_json::from_str::<Logger<'_>>(text) {
            Ok(l) => {
                l.logger_name.as_deref() == Some(LOGGER)
                    && !is_admin_event(l.message.as_deref().unwrap_or(""))
            }
            // Broken JSON that names the logger: counted as malformed.
            Err(_) => text.contains(&format!("\"loggerName\":\"{LOGGER}\"")),
        };
    }
    plain_header(text).is_some_and(|h| !is_admin_event(h.message))
}

/// Admin events (`operationType=CREATE, …`) share the logger; they are not user events.
fn is_admin_event(message: &str) -> bool {
    message.trim_start().starts_with("operationType=")
}

/// The parts of a plain line of the events logger.
struct Header<'a> {
    /// Days since 1970-01-01, if the line has a date.
    date: Option<i64>,
    /// Milliseconds since midnight.
    time_ms: i64,
    /// What follows the logger and the thread.
    message: &'a str,
}

/// `[yyyy-MM-dd ]HH:mm:ss,SSS LEVEL [org.keycloak.events] (thread) message`, if `line` is that.
fn plain_header(line: &str) -> Option<Header<'_>> {
    let (date, rest) = match take_date(line) {
        Some((days, rest)) => (Some(days), rest.strip_prefix(' ')?),
        None => (None, line),
    };
    let (time_ms, rest) = take_time(rest, ',')?;
    let rest = rest.strip_prefix(' ')?.trim_start();
    let level_end = rest.find(' ')?;
    if !rest[..level_end].bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let rest = rest[level_end..].trim_start();
    let rest = rest
        .strip_prefix('[')?
        .strip_prefix(LOGGER)?
        .strip_prefix(']')?;
    let rest = rest.trim_start();
    let message = match rest.strip_prefix('(') {
        Some(thread) => {
            let end = thread.find(") ").map_or(thread.len(), |i| i + 2);
            thread.get(end..).unwrap_or("")
        }
        None => rest,
    };
    Some(Header {
        date,
        time_ms,
        message,
    })
}

fn digits(s: &str, n: usize) -> Option<(i64, &str)> {
    let head = s.get(..n)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, &s[n..]))
}

/// `yyyy-MM-dd` at the start of `s`: days since 1970-01-01 and the rest.
fn take_date(s: &str) -> Option<(i64, &str)> {
    let (year, rest) = digits(s, 4)?;
    let (month, rest) = digits(rest.strip_prefix('-')?, 2)?;
    let (day, rest) = digits(rest.strip_prefix('-')?, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some((days_from_civil(year, month as u32, day as u32), rest))
}

/// `HH:mm:ss` and an optional fraction after `separator`: milliseconds since midnight, rest.
fn take_time(s: &str, separator: char) -> Option<(i64, &str)> {
    let (h, rest) = digits(s, 2)?;
    let (m, rest) = digits(rest.strip_prefix(':')?, 2)?;
    let (sec, mut rest) = digits(rest.strip_prefix(':')?, 2)?;
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut ms = 0;
    if let Some(fraction) = rest.strip_prefix(separator) {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let first3 = &fraction[..n.min(3)];
        ms = first3.parse::<i64>().ok()? * 10_i64.pow(3 - first3.len() as u32);
        rest = &fraction[n..];
    }
    Some(((h * 3600 + m * 60 + sec) * 1000 + ms, rest))
}

/// An ISO-8601 time (`2024-10-17T10:43:38.199+02:00`, `…Z`, or no zone: UTC) in epoch ms.
fn iso_millis(s: &str) -> Option<i64> {
    let (days, rest) = take_date(s)?;
    let rest = rest.strip_prefix(['T', ' '])?;
    let (time_ms, zone) = take_time(rest, '.')?;
    let offset_ms = match zone {
        "" | "Z" | "z" => 0,
        zone => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = &zone[1..];
            let (h, rest) = digits(zone, 2)?;
            let (m, rest) = digits(rest.strip_prefix(':').unwrap_or(rest), 2)?;
            if !rest.is_empty() {
                return None;
            }
            sign * (h * 60 + m) * 60_000
        }
    };
    Some(days * DAY_MS + time_ms - offset_ms)
}

/// A JSON log line whose `loggerName` is the events logger.
/// The Keycloak event of a record (plain or JSON logging), before it becomes the neutral
/// [`Event`].
fn keycloak_event(record: &[u8]) -> Result<KeycloakEvent<'_>, ParseError> {
    let text = require_utf8(record)?.trim_end_matches(['\r', '\n']);
    if text.trim_start().starts_with('{') {
        return parse_json(text);
    }
    let header = plain_header(text)
        .ok_or_else(|| error(ParseErrorKind::Garbage, "not a line of org.keycloak.events"))?;
    let timestamp = match header.date {
        Some(days) => days * DAY_MS + header.time_ms,
        None => dated_today(header.time_ms, now_ms()),
    };
    event_of(header.message, timestamp)
}

fn parse_json(text: &str) -> Result<KeycloakEvent<'_>, ParseError> {
    #[derive(serde::Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        timestamp: Cow<'a, str>,
        #[serde(borrow)]
        message: Cow<'a, str>,
    }
    let line: Line<'_> = serde_json::from_str(text).map_err(super::json_error)?;
    let timestamp = iso_millis(&line.timestamp).ok_or_else(|| {
        error(
            ParseErrorKind::BadTimestamp,
            format!("timestamp '{}' is not an ISO-8601 time", line.timestamp),
        )
    })?;
    match line.message {
        Cow::Borrowed(message) => event_of(message, timestamp),
        Cow::Owned(message) => event_of(&message, timestamp).map(KeycloakEvent::into_owned),
    }
}

/// The `key=value, …` pairs of an event message. Values are bare (up to `, `), single-quoted
/// (older Keycloak, values with spaces) or double-quoted with backslash escapes (newer).
fn pairs(message: &str) -> Result<Vec<(&str, Cow<'_, str>)>, ParseError> {
    let mut out = Vec::new();
    let mut rest = message.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| error(ParseErrorKind::Garbage, "an event detail without `=`"))?;
        let key = rest[..eq].trim();
        let after = &rest[eq + 1..];
        let (value, next) = match after.as_bytes().first() {
            Some(b'"') => {
                let body = &after[1..];
                let mut owned: Option<String> = None;
                let mut end = None;
                let mut chars = body.char_indices();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        '\\' => {
                            let buf = owned.get_or_insert_with(|| body[..i].to_owned());
                            match chars.next() {
                                Some((_, 'n')) => buf.push('\n'),
                                Some((_, 't')) => buf.push('\t'),
                                Some((_, 'r')) => buf.push('\r'),
                                Some((_, other)) => buf.push(other),
                                None => {}
                            }
                        }
                        c => {
                            if let Some(buf) = owned.as_mut() {
                                buf.push(c);
                            }
                        }
                    }
                }
                let end = end.ok_or_else(|| {
                    error(
                        ParseErrorKind::Garbage,
                        format!("unterminated value of {key}"),
                    )
                })?;
                let value = match owned {
                    Some(s) => Cow::Owned(s),
                    None => Cow::Borrowed(&body[..end]),
                };
                (value, &body[end + 1..])
            }
            Some(b'\'') => {
                let body = &after[1..];
                let end = body.find('\'').ok_or_else(|| {
                    error(
                        ParseErrorKind::Garbage,
                        format!("unterminated value of {key}"),
                    )
                })?;
                (Cow::Borrowed(&body[..end]), &body[end + 1..])
            }
            _ => {
                let end = after.find(", ").unwrap_or(after.len());
                (Cow::Borrowed(after[..end].trim_end()), &after[end..])
            }
        };
        out.push((key, value));
        rest = next.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(out)
}

/// The grant type an event's type implies when it issued tokens without saying so.
fn implied_grant(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "CODE_TO_TOKEN" => "authorization_code",
        "REFRESH_TOKEN" => "refresh_token",
        "CLIENT_LOGIN" => "client_credentials",
        "TOKEN_EXCHANGE" => "urn:ietf:params:oauth:grant-type:token-exchange",
        "OAUTH2_DEVICE_CODE_TO_TOKEN" => "urn:ietf:params:oauth:grant-type:device_code",
        "AUTHREQID_TO_TOKEN" => "urn:openid:params:grant-type:ciba",
        _ => return None,
    })
}

/// The event a message describes.
fn event_of(message: &str, timestamp: i64) -> Result<KeycloakEvent<'_>, ParseError> {
    let mut event = KeycloakEvent {
        timestamp,
        kind: Cow::Borrowed(""),
        success: true,
        realm: None,
        realm_id: None,
        client_id: None,
        user_id: None,
        ip: None,
        grant_type: None,
    };
    let mut realm_name = None;
    let mut detail_grant = None;
    for (key, value) in pairs(message)? {
        let value = Some(value).filter(|v| !v.is_empty() && v != "null");
        match key {
            "type" => event.kind = value.unwrap_or_default(),
            "realmId" => event.realm_id = value,
            "realmName" => realm_name = value,
            "clientId" => event.client_id = value,
            "userId" => event.user_id = value,
            "ipAddress" => event.ip = value,
            "grant_type" => detail_grant = value,
            _ => {}
        }
    }
    if event.kind.is_empty() {
        return Err(error(
            ParseErrorKind::MissingField,
            "no event type (type=…)",
        ));
    }
    if event.kind.len() > MAX_KEY_LEN
        || !event
            .kind
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(error(
            ParseErrorKind::WrongType,
            "the event type is not an upper-case name",
        ));
    }
    if let Some(kind) = event.kind.strip_suffix("_ERROR") {
        event.success = false;
        event.kind = match event.kind {
            Cow::Borrowed(k) => Cow::Borrowed(&k[..kind.len()]),
            Cow::Owned(ref k) => Cow::Owned(k[..kind.len()].to_owned()),
        };
    }
    event.grant_type = match detail_grant {
        Some(grant) if grant.len() > MAX_KEY_LEN => {
            return Err(error(
                ParseErrorKind::WrongType,
                format!("grant_type longer than {MAX_KEY_LEN} bytes"),
            ));
        }
        Some(grant) => Some(grant),
        None => implied_grant(&event.kind).map(Cow::Borrowed),
    };
    // Older Keycloak logs only the id: then it names the realm.
    event.realm = realm_name.or_else(|| event.realm_id.clone());
    Ok(event)
}

#[cfg(test)]
mod tests;
